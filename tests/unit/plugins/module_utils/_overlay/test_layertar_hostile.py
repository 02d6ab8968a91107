# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hostile archives: nothing outside the destination may change, and broken archives fail clearly.

Every test puts sentinel files beside the destination (and an absolute symlink pointing at
them) and compares a full snapshot of the scratch dir, the destination left out, before and
after the apply.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, layertar


def member(name, kind=tarfile.REGTYPE, data=b"", linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime, info.size = kind, linkname, mode, 1600000000, len(data)
    return info, data


def tar_bytes(*members):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def snapshot(top, skip):
    """Everything under ``top`` except ``skip``: type, mode, owner, size, mtime, content or target, inode links."""
    found = {}
    for root, dirs, files in os.walk(top):
        dirs[:] = [name for name in dirs if os.path.join(root, name) != skip]
        for name in dirs + files + ["."]:
            path = os.path.normpath(os.path.join(root, name))
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    body = hashlib.sha256(handle.read()).hexdigest()
            elif stat.S_ISLNK(info.st_mode):
                body = os.readlink(path)
            else:
                body = None
            found[path] = (info.st_mode, info.st_uid, info.st_gid, info.st_size, info.st_mtime_ns, info.st_nlink, info.st_ino, body)
    return found


@pytest.fixture
def sandbox(scratch):
    """(dest, outside): a destination and sentinel files beside it that no archive may reach."""
    outside = os.path.join(scratch, "outside")
    os.makedirs(os.path.join(outside, "etc"))
    for name, data in (("sentinel", b"keep me"), ("etc/passwd", b"root:x:0:0"), ("x", b"x")):
        with open(os.path.join(outside, name), "wb") as handle:
            handle.write(data)
    with open(os.path.join(scratch, "x"), "wb") as handle:
        handle.write(b"beside dest")
    dest = os.path.join(scratch, "dest")
    os.mkdir(dest)
    return dest, outside


def apply_hostile(scratch, dest, raw, expected=None, match=None):
    """Apply ``raw`` and check that nothing outside ``dest`` changed; ``expected`` is the error type, if any."""
    before = snapshot(scratch, dest)
    passwd = os.lstat("/etc/passwd")
    if expected is None:
        layertar.apply_layer(dest, io.BytesIO(raw))
    else:
        with pytest.raises(expected, match=match):
            layertar.apply_layer(dest, io.BytesIO(raw))
    after = snapshot(scratch, dest)
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, "outside dest changed: %r" % (changed,)
    now = os.lstat("/etc/passwd")
    assert (now.st_nlink, now.st_mtime_ns, now.st_ino) == (passwd.st_nlink, passwd.st_mtime_ns, passwd.st_ino), "/etc/passwd changed"


ESCAPING_NAMES = ["../x", "../outside/sentinel", "a/../../x", "./../x", "..", "../", "a/b/../../../outside/x"]


@pytest.mark.parametrize("name", ESCAPING_NAMES)
def test_names_that_climb_out_are_unsafe(scratch, sandbox, name):
    dest, _unused = sandbox
    apply_hostile(scratch, dest, tar_bytes(member(name, data=b"evil")), errors.UnsafePath, match='"%s"' % name.replace(".", r"\."))


@pytest.mark.parametrize("name", ["../x", "../outside"])
def test_directory_names_that_climb_out_are_unsafe(scratch, sandbox, name):
    dest, _unused = sandbox
    apply_hostile(scratch, dest, tar_bytes(member(name, tarfile.DIRTYPE, mode=0o777)), errors.UnsafePath)


def test_absolute_names_land_inside_dest(scratch, sandbox):
    dest, outside = sandbox
    evil = os.path.join(outside, "sentinel")
    apply_hostile(scratch, dest, tar_bytes(member(evil, data=b"evil"), member("/../../x", data=b"rooted")))
    with open(dest + evil, "rb") as handle:
        assert handle.read() == b"evil"
    with open(os.path.join(dest, "x"), "rb") as handle:
        assert handle.read() == b"rooted"


@pytest.mark.parametrize("target", ["/", "/.."])
def test_a_symlink_to_the_root_is_followed_as_dest(scratch, sandbox, target):
    dest, outside = sandbox
    raw = tar_bytes(member("root", tarfile.SYMTYPE, linkname=target), member("root" + outside + "/sentinel", data=b"evil"))
    apply_hostile(scratch, dest, raw)
    with open(dest + outside + "/sentinel", "rb") as handle:
        assert handle.read() == b"evil"


def test_a_symlink_to_dotdot_at_the_top_is_unsafe(scratch, sandbox):
    dest, _unused = sandbox
    raw = tar_bytes(member("up", tarfile.SYMTYPE, linkname=".."), member("up/x", data=b"evil"))
    apply_hostile(scratch, dest, raw, errors.UnsafePath, match='invalid symlink "up" -> ".."')


@pytest.mark.parametrize("link, target", [("a/b/up", "../../../outside"), ("a/up", "b/../../.."), ("x", "../x")])
def test_relative_symlinks_climbing_out_are_unsafe(scratch, sandbox, link, target):
    dest, _unused = sandbox
    apply_hostile(scratch, dest, tar_bytes(member(link, tarfile.SYMTYPE, linkname=target)), errors.UnsafePath)


def test_writing_through_a_symlink_to_dotdot_inside_stays_inside(scratch, sandbox):
    dest, _unused = sandbox
    raw = tar_bytes(member("a", tarfile.DIRTYPE), member("a/up", tarfile.SYMTYPE, linkname=".."), member("a/up/x", data=b"evil"))
    apply_hostile(scratch, dest, raw)
    with open(os.path.join(dest, "x"), "rb") as handle:
        assert handle.read() == b"evil"


def test_a_symlink_replacing_a_parent_mid_archive_cannot_redirect_writes(scratch, sandbox):
    dest, outside = sandbox
    raw = tar_bytes(
        member("etc", tarfile.DIRTYPE),
        member("etc/hostname", data=b"fine"),
        member("etc", tarfile.SYMTYPE, linkname=outside + "/etc"),
        member("etc/passwd", data=b"evil"),
        member("etc/.wh.hostname"),
        member("etc/.wh..wh..opq"),
    )
    apply_hostile(scratch, dest, raw)
    assert os.readlink(os.path.join(dest, "etc")) == outside + "/etc"
    with open(dest + outside + "/etc/passwd", "rb") as handle:
        assert handle.read() == b"evil"


def test_a_preexisting_absolute_symlink_in_dest_is_resolved_inside(scratch, sandbox):
    dest, outside = sandbox
    os.symlink(outside, os.path.join(dest, "lower-link"))
    raw = tar_bytes(member("lower-link/sentinel", data=b"evil"), member("lower-link/.wh.x"), member("lower-link/etc/.wh..wh..opq"))
    apply_hostile(scratch, dest, raw)
    with open(dest + outside + "/sentinel", "rb") as handle:
        assert handle.read() == b"evil"


def test_symlink_loops_fail_cleanly(scratch, sandbox):
    dest, _unused = sandbox
    raw = tar_bytes(member("a", tarfile.SYMTYPE, linkname="b"), member("b", tarfile.SYMTYPE, linkname="a"), member("a/x", data=b"x"))
    apply_hostile(scratch, dest, raw, errors.ArchiveError, match="too many levels of symbolic links")


def test_hardlink_to_etc_passwd_is_resolved_inside_dest(scratch, sandbox):
    dest, _unused = sandbox
    raw = tar_bytes(member("h", tarfile.LNKTYPE, linkname="/etc/passwd"))
    apply_hostile(scratch, dest, raw, errors.ArchiveError, match='hardlink target "/etc/passwd" does not exist')


@pytest.mark.parametrize("target", ["../outside/sentinel", "../x", "a/../../x", ".."])
def test_hardlinks_climbing_out_are_unsafe(scratch, sandbox, target):
    dest, _unused = sandbox
    apply_hostile(scratch, dest, tar_bytes(member("h", tarfile.LNKTYPE, linkname=target)), errors.UnsafePath, match="invalid hardlink")


def test_hardlink_through_a_symlink_to_outside_stays_inside(scratch, sandbox):
    dest, outside = sandbox
    raw = tar_bytes(member("l", tarfile.SYMTYPE, linkname=outside), member("h", tarfile.LNKTYPE, linkname="l/sentinel"))
    apply_hostile(scratch, dest, raw, errors.ArchiveError, match="does not exist")


def test_hardlink_to_a_symlink_links_the_symlink_itself(scratch, sandbox):
    dest, outside = sandbox
    raw = tar_bytes(member("s", tarfile.SYMTYPE, linkname=outside + "/sentinel"), member("h", tarfile.LNKTYPE, linkname="s", mode=0o777))
    apply_hostile(scratch, dest, raw)
    assert os.path.islink(os.path.join(dest, "h")), "h should be a second name of the symlink s"
    assert os.lstat(os.path.join(dest, "h")).st_ino == os.lstat(os.path.join(dest, "s")).st_ino


def test_hardlink_to_a_directory_is_refused(scratch, sandbox):
    dest, _unused = sandbox
    raw = tar_bytes(member("d", tarfile.DIRTYPE), member("h", tarfile.LNKTYPE, linkname="d"))
    apply_hostile(scratch, dest, raw, errors.ArchiveError, match="is a directory")


@pytest.mark.parametrize("name", ["../.wh.x", "../outside/.wh.sentinel", "a/../../.wh.x", "../.wh..wh..opq"])
def test_whiteouts_outside_dest_are_unsafe(scratch, sandbox, name):
    dest, _unused = sandbox
    apply_hostile(scratch, dest, tar_bytes(member(name)), errors.UnsafePath)


@pytest.mark.parametrize("name", [".wh..", ".wh...", "a/.wh..", "a/.wh..."])
def test_whiteouts_of_dot_and_dotdot_are_unsafe(scratch, sandbox, name):
    dest, _unused = sandbox
    os.mkdir(os.path.join(dest, "a"))
    apply_hostile(scratch, dest, tar_bytes(member(name)), errors.UnsafePath, match="does not name an entry")
    assert os.path.isdir(os.path.join(dest, "a")), "dest/a must survive"


def test_a_root_entry_that_is_not_a_directory_is_refused(scratch, sandbox):
    dest, _unused = sandbox
    apply_hostile(scratch, dest, tar_bytes(member("./", data=b"x")), errors.ArchiveError, match="layer root")
    assert os.path.isdir(dest)


def _valid():
    return tar_bytes(member("first", data=b"a" * 700), member("second", data=b"b" * 100))


TRUNCATIONS = [
    (512 + 300, 'in entry "first"'),
    (512 + 1024 + 100, 'after entry "first"'),
    (512 + 1024 + 512 + 50, 'in entry "second"'),
    (512 + 1024 + 512 + 512, 'without an end-of-archive marker, after entry "second"'),
    (200, "at the start of the archive"),
]


@pytest.mark.parametrize("cut, where", TRUNCATIONS)
def test_truncated_archives_fail_naming_the_entry(scratch, sandbox, cut, where):
    dest, _unused = sandbox
    raw = _valid()
    assert len(raw) > cut
    apply_hostile(scratch, dest, raw[:cut], errors.ArchiveError, match="truncated archive.*" + where)


def test_garbage_is_not_a_tar(scratch, sandbox):
    dest, _unused = sandbox
    apply_hostile(scratch, dest, os.urandom(4096), errors.ArchiveError, match="invalid tar header.*at the start of the archive")


def test_garbage_after_an_entry_names_that_entry(scratch, sandbox):
    dest, _unused = sandbox
    raw = _valid()
    apply_hostile(scratch, dest, raw[:512 + 1024] + b"\x01" * 2048, errors.ArchiveError, match='invalid tar header.*after entry "first"')


def test_an_empty_file_is_not_a_tar(scratch, sandbox):
    dest, _unused = sandbox
    apply_hostile(scratch, dest, b"", errors.ArchiveError, match="empty.*at the start of the archive")


def test_a_zero_block_followed_by_data_is_invalid(scratch, sandbox):
    dest, _unused = sandbox
    first = tar_bytes(member("a", data=b"1"))[:1024]
    second = tar_bytes(member("b", data=b"2"))
    apply_hostile(scratch, dest, first + b"\0" * 512 + second, errors.ArchiveError, match="zero block followed by data")


def test_an_oversized_extended_header_is_refused(scratch, sandbox):
    dest, _unused = sandbox
    info, _unused = member("f", data=b"x")
    info.pax_headers = {"comment": "c" * (1 << 20)}
    apply_hostile(scratch, dest, tar_bytes((info, b"x")), errors.ArchiveError, match="too long")


def test_a_nul_in_a_pax_path_is_refused(scratch, sandbox):
    dest, _unused = sandbox
    record = b"19 path=a\0/../../x\n"
    block = tar_bytes(member("././@PaxHeader", data=record))
    raw = bytearray(block[:1024])
    raw[156] = ord("x")
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\0 " % sum(raw[:512])
    raw += tar_bytes(member("f", data=b"x"))
    apply_hostile(scratch, dest, bytes(raw), errors.ArchiveError, match="invalid PAX path")
