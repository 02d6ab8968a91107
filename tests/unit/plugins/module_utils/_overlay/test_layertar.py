# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of layertar: decompression by magic and Docker's UnpackLayer rules, on real files."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import subprocess
import sys
import tarfile

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import decompress, errors, layertar


# -- building archives ------------------------------------------------------------------------

def reg(name, data=b"", mode=0o644, uid=0, gid=0, mtime=1600000000, pax=None):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, mtime
    info.pax_headers = dict(pax or {})
    return info, data


def dir_(name, mode=0o755, uid=0, gid=0, mtime=1600000000, pax=None):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, mode, uid, gid, mtime
    info.pax_headers = dict(pax or {})
    return info, None


def sym(name, target, uid=0, gid=0, mtime=1600000000):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.uid, info.gid, info.mtime, info.mode = tarfile.SYMTYPE, target, uid, gid, mtime, 0o777
    return info, None


def lnk(name, target, mode=0o644, mtime=1600000000):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.LNKTYPE, target, mode, mtime
    return info, None


def dev(name, kind, major=0, minor=0, mode=0o600):
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor, info.mode = kind, major, minor, mode
    return info, None


def tar_bytes(*members, fmt=tarfile.PAX_FORMAT, pax=None):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, pax_headers=pax) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def apply(dest, raw, **kwargs):
    return layertar.apply_layer(dest, io.BytesIO(raw), **kwargs)


@pytest.fixture
def dest(scratch):
    path = os.path.join(scratch, "dest")
    os.mkdir(path)
    return path


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def write(path, data=b"", mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


# -- pure rules --------------------------------------------------------------------------------

COMPRESSION_CASES = [
    (b"\x1f\x8b\x08\x00", "gzip"),
    (b"BZh91AY", "bzip2"),
    (b"\xfd7zXZ\x00\x00", "xz"),
    (b"\x28\xb5\x2f\xfd\x04", "zstd"),
    (b"usr/\x00\x00", "none"),
    (b"", "none"),
    (b"\x1f", "none"),
    (b"\xfd7zXZ", "none"),
]


@pytest.mark.parametrize("head, expected", COMPRESSION_CASES)
def test_detect_compression_reads_the_magic_bytes(head, expected):
    assert decompress.detect_compression(head) == expected, "head %r: expected %s, got %s" % (head, expected, decompress.detect_compression(head))


CLEAN_CASES = [
    ("usr/bin/ls", "usr/bin/ls"),
    ("./usr/bin/ls", "usr/bin/ls"),
    ("usr/share/", "usr/share"),
    ("./", "."),
    ("", "."),
    (".", "."),
    ("/", "."),
    ("/etc/passwd", "etc/passwd"),
    ("//etc//passwd", "etc/passwd"),
    ("/../../etc/passwd", "etc/passwd"),
    ("a/./b/../c", "a/c"),
    ("a/b/../../c", "c"),
    (".hidden", ".hidden"),
    (".wh..wh..opq", ".wh..wh..opq"),
    ("a/.wh.b", "a/.wh.b"),
    ("..", None),
    ("../x", None),
    ("a/../../x", None),
    ("./../x", None),
    ("a/../..", None),
]


@pytest.mark.parametrize("name, expected", CLEAN_CASES)
def test_clean_name_confines_names_to_the_root(name, expected):
    got = layertar._clean_name(name)  # pylint: disable=protected-access
    assert got == expected, "name %r: expected %r, got %r" % (name, expected, got)


SYMLINK_CASES = [
    (".", "/", False),
    (".", "/etc/passwd", False),
    (".", "usr/lib", False),
    ("lib", "../usr/lib", False),
    (".", "..", True),
    (".", "../x", True),
    ("a/b", "../../..", True),
    ("a/b", "../../x", False),
    ("a", "b/../../..", True),
    ("a", "", False),
]


@pytest.mark.parametrize("rel_dir, target, escapes", SYMLINK_CASES)
def test_symlink_escape_rule(rel_dir, target, escapes):
    got = layertar._symlink_escapes(rel_dir, target)  # pylint: disable=protected-access
    assert got == escapes, "symlink in %r to %r: expected escapes=%s, got %s" % (rel_dir, target, escapes, got)


NS = 1000000000
TIME_CASES = [
    # atime, mtime, is_dir -> (atime, mtime)
    (None, 5 * NS, False, (5 * NS, 5 * NS)),
    (3 * NS, 5 * NS, False, (5 * NS, 5 * NS)),
    (9 * NS, 5 * NS, False, (9 * NS, 5 * NS)),
    (None, 5 * NS, True, (0, 5 * NS)),
    (3 * NS, 5 * NS, True, (3 * NS, 5 * NS)),
    (None, -NS, False, (0, 0)),
    (None, -NS, True, (0, 0)),
    (None, 1 << 63, False, (0, 0)),
    ((1 << 63) - 1, 5 * NS, False, ((1 << 63) - 1, 5 * NS)),
]


@pytest.mark.parametrize("atime, mtime, is_dir, expected", TIME_CASES)
def test_times_follow_docker_rules(atime, mtime, is_dir, expected):
    got = layertar._times(atime, mtime, is_dir)  # pylint: disable=protected-access
    assert got == expected, "atime %r mtime %r dir %s: expected %r, got %r" % (atime, mtime, is_dir, expected, got)


# -- open_diff ---------------------------------------------------------------------------------

def _zstd(raw):
    return subprocess.run(["zstd", "-q", "-c"], input=raw, stdout=subprocess.PIPE, check=True).stdout


COMPRESSORS = [
    ("none", lambda raw: raw),
    ("gzip", gzip.compress),
    ("bzip2", bz2.compress),
    ("xz", lzma.compress),
    ("zstd", _zstd),
]


@pytest.mark.parametrize("kind, compress", COMPRESSORS)
def test_open_diff_recognises_compression_and_apply_digests_the_uncompressed_tar(scratch, dest, kind, compress):
    raw = tar_bytes(dir_("etc"), reg("etc/hostname", b"layer\n"), reg("big", os.urandom(1 << 16) * 40))
    path = os.path.join(scratch, "layer.tar")
    with open(path, "wb") as handle:
        handle.write(compress(raw))
    with open(path, "rb") as handle:
        assert decompress.detect_compression(handle.read(8)) == kind
    with decompress.open_diff(path) as stream:
        result = layertar.apply_layer(dest, stream)
    expected = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert result.digest == expected, "%s: digest expected %s, got %s" % (kind, expected, result.digest)
    assert read(os.path.join(dest, "etc/hostname")) == b"layer\n"
    with decompress.open_diff(path) as stream:
        assert decompress.digest_stream(stream) == (expected, len(raw))


def test_open_diff_names_a_missing_file(scratch):
    path = os.path.join(scratch, "nope.tar")
    with pytest.raises(errors.ArchiveError, match="nope.tar"):
        with decompress.open_diff(path):
            pass


def test_open_diff_refuses_a_directory(scratch):
    with pytest.raises(errors.ArchiveError, match=scratch):
        with decompress.open_diff(scratch):
            pass


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="Python 3.14+ reads zstd itself")
def test_open_diff_zstd_without_the_tool_says_how_to_install_it(scratch, monkeypatch):
    path = os.path.join(scratch, "layer.tar.zst")
    with open(path, "wb") as handle:
        handle.write(_zstd(tar_bytes(reg("a", b"x"))))
    monkeypatch.setenv("PATH", os.path.join(scratch, "empty-path"))
    with pytest.raises(errors.ArchiveError, match="needs the zstd tool.*install"):
        with decompress.open_diff(path):
            pass


@pytest.mark.parametrize("kind, compress", COMPRESSORS[1:])
def test_corrupt_compressed_diff_is_an_archive_error(scratch, dest, kind, compress):
    packed = bytearray(compress(tar_bytes(reg("f", os.urandom(200000)))))
    del packed[len(packed) // 2:]
    path = os.path.join(scratch, "bad")
    with open(path, "wb") as handle:
        handle.write(packed)
    with pytest.raises(errors.ArchiveError):
        with decompress.open_diff(path) as stream:
            layertar.apply_layer(dest, stream)
    assert kind


# -- entry types, modes, owners ------------------------------------------------------------------

def test_every_entry_type_is_created(dest):
    raw = tar_bytes(
        dir_("d", mode=0o750),
        reg("d/file", b"content", mode=0o640),
        sym("d/link", "file"),
        lnk("d/hard", "d/file", mode=0o640),
        dev("d/char", tarfile.CHRTYPE, 1, 3),
        dev("d/block", tarfile.BLKTYPE, 7, 200),
        dev("d/fifo", tarfile.FIFOTYPE, mode=0o620),
    )
    apply(dest, raw)
    checks = [
        ("d", stat.S_ISDIR, 0o750),
        ("d/file", stat.S_ISREG, 0o640),
        ("d/link", stat.S_ISLNK, None),
        ("d/hard", stat.S_ISREG, 0o640),
        ("d/char", stat.S_ISCHR, 0o600),
        ("d/block", stat.S_ISBLK, 0o600),
        ("d/fifo", stat.S_ISFIFO, 0o620),
    ]
    for name, is_type, perm in checks:
        info = os.lstat(os.path.join(dest, name))
        assert is_type(info.st_mode), "%s: wrong type %o" % (name, info.st_mode)
        if perm is not None:
            assert stat.S_IMODE(info.st_mode) == perm, "%s: mode expected %o, got %o" % (name, perm, stat.S_IMODE(info.st_mode))
    assert os.readlink(os.path.join(dest, "d/link")) == "file"
    assert os.stat(os.path.join(dest, "d/char")).st_rdev == os.makedev(1, 3)
    assert os.stat(os.path.join(dest, "d/block")).st_rdev == os.makedev(7, 200)
    assert os.stat(os.path.join(dest, "d/hard")).st_ino == os.stat(os.path.join(dest, "d/file")).st_ino, "d/hard is not a hardlink of d/file"
    assert read(os.path.join(dest, "d/file")) == b"content"


MODE_CASES = [
    ("reg", 0o4755), ("reg", 0o2755), ("reg", 0o6711), ("reg", 0o1644), ("reg", 0o222), ("reg", 0o000),
    ("dir", 0o1777), ("dir", 0o2755), ("dir", 0o705), ("dir", 0o7777),
]


@pytest.mark.parametrize("kind, mode", MODE_CASES)
def test_modes_keep_setuid_setgid_and_sticky_bits_despite_chown(dest, kind, mode):
    member = reg("x", b"#!/bin/sh\n", mode=mode, uid=1, gid=2) if kind == "reg" else dir_("x", mode=mode, uid=1, gid=2)
    apply(dest, tar_bytes(member))
    info = os.lstat(os.path.join(dest, "x"))
    assert stat.S_IMODE(info.st_mode) == mode, "x: mode expected %o, got %o" % (mode, stat.S_IMODE(info.st_mode))
    assert (info.st_uid, info.st_gid) == (1, 2), "x: owner expected 1:2, got %d:%d" % (info.st_uid, info.st_gid)


def test_umask_is_restored_after_apply_and_after_failure(dest):
    old = os.umask(0o027)
    try:
        apply(dest, tar_bytes(reg("f", b"x", mode=0o666)))
        assert os.umask(0o027) == 0o027
        with pytest.raises(errors.ArchiveError):
            apply(dest, b"garbage" * 100)
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(os.path.join(dest, "f")).st_mode) == 0o666


def test_ownership_is_applied_to_every_kind(dest):
    apply(dest, tar_bytes(dir_("d", uid=10, gid=20), reg("d/f", b"x", uid=11, gid=21), sym("d/s", "f", uid=12, gid=22),
                          dev("d/p", tarfile.FIFOTYPE)))
    for name, owner in (("d", (10, 20)), ("d/f", (11, 21)), ("d/s", (12, 22)), ("d/p", (0, 0))):
        info = os.lstat(os.path.join(dest, name))
        assert (info.st_uid, info.st_gid) == owner, "%s: owner expected %r, got %r" % (name, owner, (info.st_uid, info.st_gid))


class ShiftMap:
    """A stand-in id map: container ids below 1000 shift by 100000, anything else is unmappable."""

    empty = False

    def to_host(self, uid, gid):
        if uid >= 1000 or gid >= 1000:
            raise errors.IdMapError("Container ID %d cannot be mapped to a host ID" % max(uid, gid))
        return uid + 100000, gid + 100000


def test_idmap_shifts_ownership_to_host_ids(dest):
    apply(dest, tar_bytes(dir_("d", uid=0, gid=0), reg("d/f", b"x", uid=5, gid=6), sym("d/s", "f", uid=7, gid=8)), idmap=ShiftMap())
    for name, owner in (("d", (100000, 100000)), ("d/f", (100005, 100006)), ("d/s", (100007, 100008))):
        info = os.lstat(os.path.join(dest, name))
        assert (info.st_uid, info.st_gid) == owner, "%s: owner expected %r, got %r" % (name, owner, (info.st_uid, info.st_gid))


def test_unmappable_id_fails_naming_the_entry(dest):
    with pytest.raises(errors.IdMapError, match='"d/f".*5000'):
        apply(dest, tar_bytes(reg("d/f", b"x", uid=5000)), idmap=ShiftMap())


def test_large_ids_in_base256_gnu_headers(dest):
    apply(dest, tar_bytes(reg("f", b"x", uid=3000000, gid=4000000), fmt=tarfile.GNU_FORMAT))
    info = os.lstat(os.path.join(dest, "f"))
    assert (info.st_uid, info.st_gid) == (3000000, 4000000)


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_in_every_format(dest, fmt):
    name = "/".join(["directory-%02d" % i for i in range(12)]) + "/file"
    members = [reg(name, b"deep")]
    if fmt != tarfile.USTAR_FORMAT:
        members.append(sym("link", "t" * 150))
    apply(dest, tar_bytes(*members, fmt=fmt))
    assert read(os.path.join(dest, name)) == b"deep"
    if fmt != tarfile.USTAR_FORMAT:
        assert os.readlink(os.path.join(dest, "link")) == "t" * 150


def test_xattrs_user_and_security_capability(loopfs):
    dest = loopfs("ext4", 64)
    cap = bytes.fromhex("0100000200200000000000000000000000000000")
    apply(dest, tar_bytes(
        reg("bin/ping", b"\x7fELF", mode=0o755, uid=1, pax={"SCHILY.xattr.security.capability": cap.decode("latin-1"),
                                                            "SCHILY.xattr.user.note": "hello"}),
        dir_("etc", pax={"SCHILY.xattr.user.dir": "d"}),
    ))
    got = os.getxattr(os.path.join(dest, "bin/ping"), "security.capability")
    assert got == cap, "bin/ping: security.capability expected %r, got %r" % (cap, got)
    assert os.getxattr(os.path.join(dest, "bin/ping"), "user.note") == b"hello"
    assert os.getxattr(os.path.join(dest, "etc"), "user.dir") == b"d"


def pax_record(key, value):
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length += 1
    return b"%d" % length + body


def test_binary_xattr_values_survive_byte_exact(dest):
    value = bytes(range(0, 256))
    apply(dest, _raw_member(b"x", pax_record(b"SCHILY.xattr.user.bin", value), b"f", b"data"))
    got = os.getxattr(os.path.join(dest, "f"), "user.bin")
    assert got == value, "f: user.bin expected %r, got %r" % (value, got)


def test_unsupported_xattrs_become_one_warning(dest):
    seen = []
    result = apply(dest, tar_bytes(reg("a", b"1", pax={"SCHILY.xattr.bogus.one": "x"}), reg("b", b"2", pax={"SCHILY.xattr.bogus.two": "y"})),
                   warn=seen.append)
    assert len(result.warnings) == 1, "expected one warning, got %r" % (result.warnings,)
    assert "ignored xattrs in archive" in result.warnings[0] and "bogus.one" in result.warnings[0] and "bogus.two" in result.warnings[0]
    assert seen == result.warnings
    assert read(os.path.join(dest, "b")) == b"2"


# -- times ---------------------------------------------------------------------------------------

def test_file_times_with_nanoseconds_and_atime_not_before_mtime(dest):
    apply(dest, tar_bytes(
        reg("a", b"x", pax={"mtime": "1500000000.123456789"}),
        reg("b", b"x", pax={"mtime": "1500000000", "atime": "1400000000"}),
        reg("c", b"x", pax={"mtime": "1500000000", "atime": "1600000000"}),
    ))
    for name, atime, mtime in (("a", 1500000000123456789, 1500000000123456789), ("b", 1500000000 * NS, 1500000000 * NS),
                               ("c", 1600000000 * NS, 1500000000 * NS)):
        info = os.lstat(os.path.join(dest, name))
        assert (info.st_atime_ns, info.st_mtime_ns) == (atime, mtime), "%s: times expected %r, got %r" % (
            name, (atime, mtime), (info.st_atime_ns, info.st_mtime_ns))


def test_directory_times_survive_later_entries_and_atime_defaults_to_the_epoch(dest):
    apply(dest, tar_bytes(dir_("d", mtime=1234567890), dir_("d/e", mtime=1234567000), reg("d/e/f", b"x"), reg("d/g", b"y"), sym("d/s", "g")))
    for name, mtime in (("d", 1234567890), ("d/e", 1234567000)):
        info = os.lstat(os.path.join(dest, name))
        assert info.st_mtime_ns == mtime * NS, "%s: mtime expected %d, got %d" % (name, mtime * NS, info.st_mtime_ns)
        assert info.st_atime_ns == 0, "%s: atime expected the epoch, got %d" % (name, info.st_atime_ns)


def test_symlink_times_are_set_on_the_link(dest):
    write(os.path.join(dest, "target"))
    os.utime(os.path.join(dest, "target"), ns=(7 * NS, 7 * NS))
    apply(dest, tar_bytes(sym("s", "target", mtime=1111111111)))
    assert os.lstat(os.path.join(dest, "s")).st_mtime_ns == 1111111111 * NS
    assert os.stat(os.path.join(dest, "target")).st_mtime_ns == 7 * NS, "the symlink's target must keep its time"


def test_out_of_range_times_become_the_epoch(dest):
    apply(dest, tar_bytes(reg("old", b"x", pax={"mtime": "-100"}), reg("new", b"x", pax={"mtime": "99999999999"})))
    assert os.lstat(os.path.join(dest, "old")).st_mtime_ns == 0
    assert os.lstat(os.path.join(dest, "new")).st_mtime_ns == 0


# -- Docker's layer rules --------------------------------------------------------------------------

def test_missing_parents_are_created_with_mode_0600(dest):
    apply(dest, tar_bytes(reg("a/b/c", b"x")))
    for name in ("a", "a/b"):
        mode = stat.S_IMODE(os.lstat(os.path.join(dest, name)).st_mode)
        assert mode == 0o600, "%s: auto-created parent mode expected 600, got %o" % (name, mode)
    assert read(os.path.join(dest, "a/b/c")) == b"x"


def test_root_entry_applies_its_metadata_to_dest(dest):
    apply(dest, tar_bytes(dir_("./", mode=0o751, uid=3, gid=4, mtime=1000000000), reg("./f", b"x")))
    info = os.lstat(dest)
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, info.st_mtime_ns) == (0o751, 3, 4, 1000000000 * NS)


def test_whiteouts_remove_files_and_directories_and_tolerate_missing_targets(dest):
    write(os.path.join(dest, "etc/gone"), b"old")
    write(os.path.join(dest, "var/lib/deep/file"), b"old")
    write(os.path.join(dest, "etc/kept"), b"old")
    result = apply(dest, tar_bytes(reg("etc/.wh.gone"), reg("var/.wh.lib"), reg(".wh.never-there"), reg("etc/.wh..wh.x")))
    assert not os.path.lexists(os.path.join(dest, "etc/gone")), "etc/gone should be whited out"
    assert not os.path.lexists(os.path.join(dest, "var/lib")), "var/lib should be whited out with its subtree"
    assert read(os.path.join(dest, "etc/kept")) == b"old"
    for name in ("etc/.wh.gone", "var/.wh.lib", ".wh.never-there"):
        assert not os.path.lexists(os.path.join(dest, name)), "%s: whiteout markers are never created" % name
    assert result.entries == 4


def test_opaque_dir_keeps_what_this_tar_extracted_earlier(dest):
    write(os.path.join(dest, "opt/old"), b"lower")
    write(os.path.join(dest, "opt/sub/old"), b"lower")
    write(os.path.join(dest, "opt/auto/lower"), b"lower")
    write(os.path.join(dest, "other/keep"), b"lower")
    apply(dest, tar_bytes(dir_("opt"), reg("opt/new", b"upper"), dir_("opt/sub"), reg("opt/sub/new", b"upper"),
                          reg("opt/auto/child", b"upper"), reg("opt/.wh..wh..opq"), reg("opt/after", b"upper")))
    found = sorted(os.path.relpath(os.path.join(root, name), dest) for root, dirs, files in os.walk(dest) for name in dirs + files)
    expected = ["opt", "opt/after", "opt/auto", "opt/auto/child", "opt/new", "opt/sub", "opt/sub/new", "other", "other/keep"]
    assert found == expected, "tree after opaque: expected %r, got %r" % (expected, found)


def test_top_level_opaque_marker_empties_the_root_of_lower_content(dest):
    write(os.path.join(dest, "lower"), b"x")
    apply(dest, tar_bytes(reg("upper", b"y"), reg(".wh..wh..opq")))
    assert sorted(os.listdir(dest)) == ["upper"]


def test_aufs_meta_entries_are_skipped_and_plnk_hardlinks_become_copies(dest):
    apply(dest, tar_bytes(
        dir_(".wh..wh.plnk"), reg(".wh..wh.plnk/1234.5678", b"linked data", mode=0o751, uid=9, gid=9, mtime=1300000000),
        reg(".wh..wh.aufs"), dir_("usr"), lnk("usr/a", ".wh..wh.plnk/1234.5678"), lnk("usr/b", "/.wh..wh.plnk/1234.5678"),
    ))
    assert sorted(os.listdir(dest)) == ["usr"], "meta names must not be extracted: %r" % sorted(os.listdir(dest))
    a, b = os.lstat(os.path.join(dest, "usr/a")), os.lstat(os.path.join(dest, "usr/b"))
    assert read(os.path.join(dest, "usr/a")) == read(os.path.join(dest, "usr/b")) == b"linked data"
    assert a.st_ino != b.st_ino, "aufs hardlinks become separate copies, as in Docker"
    assert (stat.S_IMODE(a.st_mode), a.st_uid, a.st_mtime_ns) == (0o751, 9, 1300000000 * NS)


def test_aufs_hardlink_without_its_plnk_file_fails(dest):
    with pytest.raises(errors.ArchiveError, match="invalid aufs hardlink"):
        apply(dest, tar_bytes(lnk("a", ".wh..wh.plnk/missing")))


@pytest.mark.parametrize("before, member, check", [
    ("file", dir_("p", mode=0o711), lambda p: stat.S_ISDIR(os.lstat(p).st_mode)),
    ("dir", reg("p", b"now a file"), lambda p: read(p) == b"now a file"),
    ("file", sym("p", "elsewhere"), lambda p: os.readlink(p) == "elsewhere"),
    ("symlink", dir_("p"), lambda p: stat.S_ISDIR(os.lstat(p).st_mode)),
    ("symlink", reg("p", b"f"), lambda p: stat.S_ISREG(os.lstat(p).st_mode)),
    ("dir", sym("p", "x"), os.path.islink),
    ("file", dev("p", tarfile.FIFOTYPE), lambda p: stat.S_ISFIFO(os.lstat(p).st_mode)),
    ("dir", lnk("p", "other"), lambda p: os.lstat(p).st_nlink == 2),
])
def test_existing_paths_are_replaced(dest, before, member, check):
    path = os.path.join(dest, "p")
    write(os.path.join(dest, "other"), b"o")
    if before == "file":
        write(path, b"old")
    elif before == "dir":
        write(os.path.join(path, "child"), b"old")
    else:
        os.symlink("other", path)
    apply(dest, tar_bytes(member))
    assert check(path), "p: %s was not replaced by %s" % (before, member[0].type)
    assert read(os.path.join(dest, "other")) == b"o", "a symlink's target must not be touched"


def test_dir_over_dir_merges_and_takes_the_new_metadata(dest):
    write(os.path.join(dest, "d/lower"), b"x")
    apply(dest, tar_bytes(dir_("d", mode=0o700, uid=5, mtime=1000000000), reg("d/upper", b"y")))
    assert sorted(os.listdir(os.path.join(dest, "d"))) == ["lower", "upper"]
    info = os.lstat(os.path.join(dest, "d"))
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_mtime_ns) == (0o700, 5, 1000000000 * NS)


def _hardlink_copy(src, dst):
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        for name in dirs:
            os.mkdir(os.path.join(dst, rel, name))
        for name in files:
            os.link(os.path.join(root, name), os.path.join(dst, rel, name))


def test_applying_onto_a_hardlinked_copy_never_changes_the_parent_inodes(scratch, dest):
    parent = os.path.join(scratch, "parent")
    write(os.path.join(parent, "etc/config"), b"parent config", mode=0o644)
    write(os.path.join(parent, "etc/shared"), b"shared", mode=0o644)
    write(os.path.join(parent, "bin/tool"), b"parent tool", mode=0o755)
    write(os.path.join(parent, "lib/gone"), b"parent", mode=0o644)
    before = {name: (read(os.path.join(parent, name)), os.lstat(os.path.join(parent, name))) for name in
              ("etc/config", "etc/shared", "bin/tool", "lib/gone")}
    parent_etc_mode = os.lstat(os.path.join(parent, "etc")).st_mode
    _hardlink_copy(parent, dest)
    apply(dest, tar_bytes(
        reg("etc/config", b"child config, longer than the parent's", mode=0o600, uid=7),
        reg("bin/tool", b"", mode=0o4711),
        lnk("etc/alias", "etc/shared", mode=0o777),
        sym("lib/gone", "/elsewhere"),
        dir_("etc", mode=0o700),
    ))
    for name, (data, info) in before.items():
        now = os.lstat(os.path.join(parent, name))
        assert read(os.path.join(parent, name)) == data, "parent %s: content changed" % name
        assert (now.st_ino, now.st_mode, now.st_uid, now.st_mtime_ns) == (info.st_ino, info.st_mode, info.st_uid, info.st_mtime_ns), \
            "parent %s: metadata changed from %r to %r" % (name, info, now)
    assert read(os.path.join(dest, "etc/config")) == b"child config, longer than the parent's"
    assert os.lstat(os.path.join(dest, "etc/config")).st_ino != before["etc/config"][1].st_ino
    assert os.lstat(os.path.join(dest, "etc/alias")).st_ino == before["etc/shared"][1].st_ino
    assert os.lstat(os.path.join(parent, "etc")).st_mode == parent_etc_mode, "parent etc: mode changed"
    assert stat.S_IMODE(os.lstat(os.path.join(dest, "etc")).st_mode) == 0o700


def test_size_is_the_sum_of_every_header_size_and_entries_counts_them(dest):
    members = [dir_("d"), reg("d/a", b"x" * 1000), reg("d/b", b"y" * 513), reg("d/.wh.zz", b"12345"), reg(".wh..wh.meta", b"abc"),
               sym("d/s", "a"), lnk("d/h", "d/a")]
    result = apply(dest, tar_bytes(*members))
    assert result.size == 1000 + 513 + 5 + 3, "size expected %d, got %d" % (1521, result.size)
    assert result.entries == len(members)


def test_global_pax_header_is_counted_and_ignored(dest):
    raw = tar_bytes(reg("f", b"x"), pax={"comment": "made by git"})
    result = apply(dest, raw)
    assert os.listdir(dest) == ["f"]
    assert result.entries == 2
    assert result.size > 1, "the global header's size counts, as in Docker"


def test_digest_covers_trailing_bytes_after_the_end_marker(dest):
    raw = tar_bytes(reg("f", b"x")) + b"\0" * 4096 + b"trailing junk"
    result = apply(dest, raw)
    expected = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert result.digest == expected, "digest expected %s, got %s" % (expected, result.digest)
    assert decompress.digest_stream(io.BytesIO(raw)) == (expected, len(raw))


def test_many_files_and_big_files_cross_buffer_boundaries(dest):
    members = [reg("many/%04d" % i, (b"%d" % i) * (i % 700)) for i in range(1500)]
    members.append(reg("big", bytes(range(256)) * 20000))
    raw = tar_bytes(*members)
    result = apply(dest, raw)
    assert result.entries == 1501
    for i in (0, 1, 699, 1000, 1499):
        assert read(os.path.join(dest, "many/%04d" % i)) == (b"%d" % i) * (i % 700), "many/%04d: wrong content" % i
    assert read(os.path.join(dest, "big")) == bytes(range(256)) * 20000


def test_unhandled_entry_type_is_an_error(dest):
    info, _unused = reg("c", b"abc")
    info.type = tarfile.CONTTYPE
    with pytest.raises(errors.ArchiveError, match=r'"c": unhandled tar header type 55'):
        apply(dest, tar_bytes((info, b"abc")))


def test_a_v7_regular_entry_with_a_trailing_slash_is_a_directory(dest):
    apply(dest, _raw_member(b"\0", b"", b"olddir/", b""))
    assert os.path.isdir(os.path.join(dest, "olddir"))


def _child_env(**extra):
    """The environment for a child interpreter that must import this collection as we do."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), **extra)


def test_devices_are_skipped_with_a_warning_in_a_user_namespace(dest):
    raw = tar_bytes(dev("null", tarfile.CHRTYPE, 1, 3), dev("fifo", tarfile.FIFOTYPE), reg("f", b"x"))
    code = ("import io, sys; from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import layertar; "
            "r = layertar.apply_layer(sys.argv[1], io.BytesIO(sys.stdin.buffer.read())); print(r.warnings)")
    proc = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c", code, dest], input=raw, env=_child_env(),
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert sorted(os.listdir(dest)) == ["f", "fifo"], sorted(os.listdir(dest))
    assert b"skipped 1 device node" in proc.stdout


def test_checkpoint_kills_at_the_nth_entry(dest):
    raw = tar_bytes(reg("one", b"1"), reg("two", b"2"), reg("three", b"3"))
    code = ("import io, sys; from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import layertar; "
            "layertar.apply_layer(sys.argv[1], io.BytesIO(sys.stdin.buffer.read()))")
    proc = subprocess.run([sys.executable, "-c", code, dest], input=raw, env=_child_env(GRAPHDRIVER_OVERLAY_KILL_AT="apply.entry:3"),
                          capture_output=True, check=False)
    assert proc.returncode == -9, "expected SIGKILL at the third entry, got %d: %s" % (proc.returncode, proc.stderr)
    assert sorted(os.listdir(dest)) == ["one", "two"]


def _raw_member(kind, data, name, payload):
    """A hand-made archive: an optional extended header of type ``kind`` with ``data``, then a regular ``name``."""
    out = io.BytesIO()
    if kind in (b"x", b"L", b"K"):
        out.write(_header(b"././@ext", kind, len(data)))
        out.write(data + b"\0" * (-len(data) % 512))
        kind = b"0"
    out.write(_header(name, kind, len(payload)))
    out.write(payload + b"\0" * (-len(payload) % 512))
    out.write(b"\0" * 1024)
    return out.getvalue()


def _header(name, kind, size):
    block = bytearray(512)
    block[0:len(name)] = name
    block[100:108] = b"0000644\0"
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    block[124:136] = b"%011o\0" % size
    block[136:148] = b"%011o\0" % 1600000000
    block[148:156] = b" " * 8
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def test_hand_made_headers_parse(dest):
    apply(dest, _raw_member(b"L", b"a/" + b"n" * 200 + b"\0", b"short", b"long named"))
    assert read(os.path.join(dest, "a", "n" * 200)) == b"long named"
