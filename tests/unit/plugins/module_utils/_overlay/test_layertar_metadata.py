# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The applier leaves out a chown or chmod only where it would change nothing: every entry
still ends with the tar's owner and mode below setgid directories, default ACLs, and for
setuid files, whether its directory is new, existing, or made implicitly."""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
import tarfile

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import layertar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: owners are set by chown")


def _member(name, kind=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, data=b"data"):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, 1600000000
    if kind == tarfile.SYMTYPE:
        info.linkname = "target"
    payload = data if kind == tarfile.REGTYPE else None
    info.size = len(payload) if payload is not None else 0
    return info, payload


def _apply(dest, *members):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    out.seek(0)
    return layertar.apply_layer(dest, out)


def _owner_mode(path):
    info = os.lstat(path)
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


_MEMBERS = (
    _member("new", tarfile.DIRTYPE, mode=0o755),
    _member("new/f", mode=0o644),
    _member("new/suid", mode=0o4755),
    _member("new/sgid", mode=0o2750),
    _member("new/sym", tarfile.SYMTYPE, mode=0o777),
    _member("new/sub", tarfile.DIRTYPE, mode=0o2775),
    _member("new/sub/f", mode=0o600),
    _member("implicit/f", mode=0o640),
    _member("old", tarfile.DIRTYPE, mode=0o711),
    _member("old/f", mode=0o604),
    _member("owned", mode=0o640, uid=1000, gid=1000),
)

_EXPECTED = {
    "new": (0, 0, 0o755), "new/f": (0, 0, 0o644), "new/suid": (0, 0, 0o4755), "new/sgid": (0, 0, 0o2750),
    "new/sub": (0, 0, 0o2775), "new/sub/f": (0, 0, 0o600), "implicit/f": (0, 0, 0o640),
    "old": (0, 0, 0o711), "old/f": (0, 0, 0o604), "owned": (1000, 1000, 0o640),
}


def _check(dest):
    for rel, expected in _EXPECTED.items():
        assert _owner_mode(os.path.join(dest, rel)) == expected, rel
    assert os.lstat(os.path.join(dest, "new", "sym"))[stat.ST_UID:stat.ST_GID + 1] == (0, 0)


def _dest(scratch):
    dest = os.path.join(scratch, "dest")
    os.mkdir(dest)
    os.mkdir(os.path.join(dest, "old"), 0o755)
    return dest


def test_plain_destination_gets_the_tars_owners_and_modes(scratch):
    dest = _dest(scratch)
    _apply(dest, *_MEMBERS)
    _check(dest)


def test_setgid_destination_and_existing_dir_do_not_lend_their_group(scratch):
    dest = _dest(scratch)
    for path in (dest, os.path.join(dest, "old")):
        os.chown(path, 0, 4321)
        os.chmod(path, 0o2777)
    _apply(dest, *_MEMBERS)
    _check(dest)


def _default_acl(others: int) -> bytes:
    """A minimal default ACL in the kernel's xattr format: owner rwx, group rwx, others as given."""
    undefined = 0xFFFFFFFF
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, undefined)
                                           for tag, perm in ((0x01, 7), (0x04, 7), (0x20, others)))


def test_default_acl_does_not_narrow_the_tars_modes(scratch):
    dest = _dest(scratch)
    try:
        for path in (dest, os.path.join(dest, "old")):
            os.setxattr(path, "system.posix_acl_default", _default_acl(0))
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            pytest.skip("the scratch filesystem has no POSIX ACLs")
        raise
    probe = os.path.join(dest, "probe")
    os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o644))
    # The ACL is live: without the chmod a new file would lose the others' bits.
    assert stat.S_IMODE(os.lstat(probe).st_mode) & 0o007 == 0
    os.unlink(probe)
    _apply(dest, *_MEMBERS)
    _check(dest)
