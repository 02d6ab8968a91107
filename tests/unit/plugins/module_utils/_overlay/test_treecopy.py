# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of treecopy (Docker's DirCopy) on real filesystems, as root."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, treecopy

MODES = [treecopy.HARDLINK, treecopy.CONTENT]

OPAQUE = "trusted.overlay.opaque"
# struct vfs_cap_data, revision 2 with the effective flag: permitted = CAP_NET_RAW (bit 13).
CAPS_BLOB = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)
BASE_NS = 1_000_000_000 * 1_000_000_000

PYTHONPATH = os.pathsep.join(p for p in sys.path if p)


def _make_file(path, data=b"", perm=0o644, owner=None):
    with open(path, "wb") as handle:
        handle.write(data)
    if owner is not None:
        os.chown(path, *owner)
    os.chmod(path, perm)


def _make_tree(root):
    """A tree with every entry type, special mode bits, owners, xattrs and distinct times."""
    os.mkdir(root)
    _make_file(os.path.join(root, "a.txt"), b"hello\n")
    _make_file(os.path.join(root, "empty"))
    _make_file(os.path.join(root, "setuid"), b"#!/bin/sh\n", 0o4755, (1, 2))
    _make_file(os.path.join(root, "caps"), b"\x7fELF" * 100, 0o755, (1, 2))
    os.setxattr(os.path.join(root, "caps"), "security.capability", CAPS_BLOB)
    _make_file(os.path.join(root, "group1"), b"shared inode\n", 0o640, (1, 2))
    os.makedirs(os.path.join(root, "d1", "d2"))
    os.chmod(os.path.join(root, "d1"), 0o2775)
    os.link(os.path.join(root, "group1"), os.path.join(root, "d1", "group2"))
    os.chown(os.path.join(root, "d1", "d2"), 1, 2)
    os.chmod(os.path.join(root, "d1", "d2"), 0o750)
    _make_file(os.path.join(root, "d1", "d2", "deep.bin"), os.urandom(200_000) + b"x" * 3_000_000, 0o600)
    os.mkdir(os.path.join(root, "sticky"), 0o755)
    os.chmod(os.path.join(root, "sticky"), 0o1777)
    os.mkdir(os.path.join(root, "opaque"))
    os.setxattr(os.path.join(root, "opaque"), OPAQUE, b"y")
    _make_file(os.path.join(root, "opaque", "inside"), b"in opaque\n")
    os.mkdir(os.path.join(root, "ro"))
    _make_file(os.path.join(root, "ro", "f1"), b"one\n", 0o444)
    _make_file(os.path.join(root, "ro", "f2"), b"two\n", 0o444)
    os.chmod(os.path.join(root, "ro"), 0o555)
    os.mkdir(os.path.join(root, "links"))
    os.symlink("/nonexistent/absolute/target", os.path.join(root, "links", "abs"))
    os.symlink("../a.txt", os.path.join(root, "links", "rel"))
    os.lchown(os.path.join(root, "links", "rel"), 1, 2)
    os.mkdir(os.path.join(root, "dev"))
    os.mkfifo(os.path.join(root, "dev", "fifo"), 0o640)
    os.mknod(os.path.join(root, "dev", "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(os.path.join(root, "dev", "loop9"), stat.S_IFBLK | 0o660, os.makedev(7, 9))
    os.mknod(os.path.join(root, "dev", "whiteout"), stat.S_IFCHR, os.makedev(0, 0))
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.path.join(root, "sock"))
    finally:
        sock.close()
    _set_distinct_times(root)


def _set_distinct_times(root):
    """Give every entry its own atime and mtime, parents after children so they stick."""
    paths = []
    for top, dirs, files in os.walk(root):
        paths.extend(os.path.join(top, name) for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))])
        paths.append(top)
    for index, path in enumerate(sorted(paths, key=lambda p: -p.count("/"))):
        times = (BASE_NS + index * 7_000_003, BASE_NS + index * 1_000_017)
        os.utime(path, ns=times, follow_symlinks=False)


def _snapshot(root):
    """relpath -> facts, each entry lstat'ed before it is read or listed."""
    facts = {}

    def visit(path, rel):
        st = os.lstat(path)
        item = {
            "type": stat.S_IFMT(st.st_mode),
            "mode": oct(stat.S_IMODE(st.st_mode)),
            "owner": (st.st_uid, st.st_gid),
            "mtime_ns": st.st_mtime_ns,
            "ino": (st.st_dev, st.st_ino),
            "nlink": st.st_nlink,
        }
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as handle:
                item["sha256"] = hashlib.sha256(handle.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            item["target"] = os.readlink(path)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            item["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
        for name in ("security.capability", OPAQUE):
            try:
                item[name] = os.getxattr(path, name, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
                    raise
        facts[rel] = item
        if stat.S_ISDIR(st.st_mode):
            for name in sorted(os.listdir(path)):
                visit(os.path.join(path, name), os.path.join(rel, name))

    visit(root, ".")
    return facts


def _differences(expected, actual, ignore=("ino", "nlink"), missing_ok=()):
    """Human-readable differences between two snapshots: path, fact, expected, actual."""
    problems = []
    for rel in sorted(set(expected) | set(actual)):
        if rel in missing_ok:
            continue
        if rel not in actual:
            problems.append("%s: missing in the copy" % rel)
            continue
        if rel not in expected:
            problems.append("%s: in the copy but not in the source" % rel)
            continue
        for key in sorted(set(expected[rel]) | set(actual[rel])):
            if key in ignore:
                continue
            want, got = expected[rel].get(key), actual[rel].get(key)
            if want != got:
                problems.append("%s: %s expected %r, actual %r" % (rel, key, want, got))
    return problems


@pytest.fixture
def tree(scratch):
    """A full source tree in scratch, its snapshot taken before any copy, and a dst path."""
    src = os.path.join(scratch, "src")
    _make_tree(src)
    return src, os.path.join(scratch, "dst"), _snapshot(src)


@pytest.mark.parametrize("mode", MODES)
def test_copy_reproduces_types_modes_owners_mtimes_links_devices_and_xattrs(tree, mode):
    src, dst, before = tree
    warnings = []
    treecopy.dir_copy(src, dst, mode, warn=warnings.append)
    problems = _differences(before, _snapshot(dst), missing_ok=("./sock",))
    assert not problems, "%s copy of %s differs:\n%s" % (mode, src, "\n".join(problems))


def test_content_mode_makes_new_inodes_with_the_same_bytes(tree):
    src, dst, before = tree
    treecopy.dir_copy(src, dst, treecopy.CONTENT)
    after = _snapshot(dst)
    for rel, item in before.items():
        if item["type"] == stat.S_IFREG:
            assert after[rel]["ino"] != item["ino"], "%s: expected a new inode, actual the source inode %r" % (rel, item["ino"])
            assert after[rel]["sha256"] == item["sha256"], "%s: expected sha256 %s, actual %s" % (rel, item["sha256"], after[rel]["sha256"])


def test_content_mode_keeps_hardlink_groups_as_new_inodes(tree):
    src, dst, _before = tree
    treecopy.dir_copy(src, dst, treecopy.CONTENT)
    first, second = os.lstat(os.path.join(dst, "group1")), os.lstat(os.path.join(dst, "d1", "group2"))
    source = os.lstat(os.path.join(src, "group1"))
    assert first.st_ino == second.st_ino, "%s/d1/group2: expected inode %d (as group1), actual %d" % (dst, first.st_ino, second.st_ino)
    assert first.st_nlink == 2, "%s/group1: expected nlink 2, actual %d" % (dst, first.st_nlink)
    assert first.st_ino != source.st_ino, "%s/group1: expected an inode other than the source's %d" % (dst, source.st_ino)


def test_hardlink_mode_shares_file_inodes_and_recreates_everything_else(tree):
    src, dst, before = tree
    treecopy.dir_copy(src, dst, treecopy.HARDLINK)
    after = _snapshot(dst)
    for rel, item in before.items():
        if rel == "./sock":
            continue
        same = after[rel]["ino"] == item["ino"]
        if item["type"] == stat.S_IFREG:
            assert same, "%s: expected the source inode %r, actual %r" % (rel, item["ino"], after[rel]["ino"])
        else:
            assert not same, "%s: expected a new inode, actual the source inode %r" % (rel, item["ino"])


@pytest.mark.parametrize("mode", MODES)
def test_socket_is_skipped_with_a_warning_and_the_copy_succeeds(tree, mode):
    src, dst, _before = tree
    warnings = []
    stats = treecopy.dir_copy(src, dst, mode, warn=warnings.append)
    sock = os.path.join(src, "sock")
    assert stats.skipped == [sock], "skipped: expected [%r], actual %r" % (sock, stats.skipped)
    assert len(warnings) == 1 and sock in warnings[0], "warnings: expected one naming %s, actual %r" % (sock, warnings)
    assert not os.path.lexists(os.path.join(dst, "sock")), "%s/sock: expected absent, actual present" % dst


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("copy_opaque", [True, False])
def test_opaque_xattr_is_copied_only_when_asked(scratch, mode, copy_opaque):
    src, dst = os.path.join(scratch, "src"), os.path.join(scratch, "dst")
    os.makedirs(os.path.join(src, "opaque"))
    os.setxattr(os.path.join(src, "opaque"), OPAQUE, b"y")
    treecopy.dir_copy(src, dst, mode, copy_opaque_xattrs=copy_opaque)
    try:
        value = os.getxattr(os.path.join(dst, "opaque"), OPAQUE)
    except OSError as exc:
        assert exc.errno == errno.ENODATA, "%s/opaque: unexpected error %s" % (dst, exc)
        value = None
    expected = b"y" if copy_opaque else None
    assert value == expected, "%s/opaque %s: expected %r, actual %r" % (dst, OPAQUE, expected, value)


def test_content_mode_keeps_file_caps_and_setuid_through_the_chown(tree):
    src, dst, _before = tree
    treecopy.dir_copy(src, dst, treecopy.CONTENT)
    caps = os.path.join(dst, "caps")
    value = os.getxattr(caps, "security.capability")
    assert value == CAPS_BLOB, "%s security.capability: expected %r, actual %r" % (caps, CAPS_BLOB, value)
    st = os.lstat(os.path.join(dst, "setuid"))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4755, 1, 2), \
        "%s/setuid: expected (0o4755, 1, 2), actual (%s, %d, %d)" % (dst, oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid)


@pytest.mark.parametrize("mode", MODES)
def test_existing_dst_root_takes_the_source_root_metadata(scratch, mode):
    src, dst = os.path.join(scratch, "src"), os.path.join(scratch, "dst")
    os.mkdir(src)
    _make_file(os.path.join(src, "f"), b"f")
    os.chown(src, 1, 2)
    os.chmod(src, 0o1775)
    os.setxattr(src, OPAQUE, b"y")
    os.utime(src, ns=(BASE_NS + 5, BASE_NS + 7))
    os.mkdir(dst, 0o700)
    treecopy.dir_copy(src, dst, mode)
    st = os.lstat(dst)
    actual = (oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid, st.st_atime_ns, st.st_mtime_ns, os.getxattr(dst, OPAQUE))
    expected = (oct(0o1775), 1, 2, BASE_NS + 5, BASE_NS + 7, b"y")
    assert actual == expected, "%s (mode, uid, gid, atime, mtime, opaque): expected %r, actual %r" % (dst, expected, actual)


@pytest.mark.parametrize("mode", MODES)
def test_atimes_and_mtimes_of_dirs_symlinks_and_specials_are_preserved(tree, mode):
    src, dst, _before = tree
    rels = [".", "d1", "d1/d2", "ro", "links/abs", "links/rel", "dev/fifo", "dev/null"]
    if mode == treecopy.CONTENT:
        rels.append("a.txt")
    # The snapshot in the fixture read the source and may have moved its atimes; the copy
    # itself lstats each entry before reading it, so it must carry these values.
    wanted = {rel: os.lstat(os.path.join(src, rel)) for rel in rels}
    treecopy.dir_copy(src, dst, mode)
    for rel in rels:
        got = os.lstat(os.path.join(dst, rel))
        expected = (wanted[rel].st_atime_ns, wanted[rel].st_mtime_ns)
        actual = (got.st_atime_ns, got.st_mtime_ns)
        assert actual == expected, "%s/%s (atime, mtime): expected %r, actual %r" % (dst, rel, expected, actual)


@pytest.mark.parametrize("mode", MODES)
def test_read_only_dir_with_files_is_copied(scratch, mode):
    src, dst = os.path.join(scratch, "src"), os.path.join(scratch, "dst")
    os.makedirs(os.path.join(src, "ro", "sub"))
    _make_file(os.path.join(src, "ro", "sub", "f"), b"f", 0o444)
    _make_file(os.path.join(src, "ro", "g"), b"g", 0o400)
    os.chmod(os.path.join(src, "ro", "sub"), 0o555)
    os.chmod(os.path.join(src, "ro"), 0o555)
    before = _snapshot(src)
    treecopy.dir_copy(src, dst, mode)
    problems = _differences(before, _snapshot(dst))
    assert not problems, "%s copy of %s differs:\n%s" % (mode, src, "\n".join(problems))


def test_content_copy_across_filesystems_falls_back_from_reflink_and_copy_file_range(loopfs):
    tmpfs, ext4 = loopfs("tmpfs", 64), loopfs("ext4", 64)
    src, dst = os.path.join(tmpfs, "src"), os.path.join(ext4, "dst")
    os.mkdir(src)
    sizes = {"zero": 0, "one": 1, "odd": 65_543, "big": 3 * 1024 * 1024 + 17}
    for name, size in sizes.items():
        _make_file(os.path.join(src, name), os.urandom(size))
    os.link(os.path.join(src, "odd"), os.path.join(src, "odd-link"))
    before = _snapshot(src)
    stats = treecopy.dir_copy(src, dst, treecopy.CONTENT)
    problems = _differences(before, _snapshot(dst))
    assert not problems, "tmpfs -> ext4 copy of %s differs:\n%s" % (src, "\n".join(problems))
    expected_bytes = sum(sizes.values())
    assert stats.bytes == expected_bytes, "bytes copied: expected %d, actual %d" % (expected_bytes, stats.bytes)
    odd, odd_link = os.lstat(os.path.join(dst, "odd")), os.lstat(os.path.join(dst, "odd-link"))
    assert odd.st_ino == odd_link.st_ino, "%s/odd-link: expected inode %d, actual %d" % (dst, odd.st_ino, odd_link.st_ino)


def test_content_copy_on_xfs_with_reflink_gives_equal_bytes_in_new_inodes(loopfs):
    xfs = loopfs("xfs", 300)
    src, dst = os.path.join(xfs, "src"), os.path.join(xfs, "dst")
    os.mkdir(src)
    for index in range(3):
        _make_file(os.path.join(src, "f%d" % index), os.urandom(100_000 * (index + 1)))
    before = _snapshot(src)
    treecopy.dir_copy(src, dst, treecopy.CONTENT)
    after = _snapshot(dst)
    problems = _differences(before, after)
    assert not problems, "xfs copy of %s differs:\n%s" % (src, "\n".join(problems))
    shared = [rel for rel, item in before.items() if item["ino"] == after[rel]["ino"]]
    assert not shared, "expected new inodes everywhere, actual shared with the source: %r" % shared
    # FICLONE shares the extents, which filefrag reports with the "shared" flag.
    report = subprocess.run(["filefrag", "-v", os.path.join(dst, "f2")], capture_output=True, text=True, check=True).stdout
    assert "shared" in report, "%s/f2: expected reflinked (shared) extents, actual:\n%s" % (dst, report)


def test_file_times_outside_1970_to_2262_are_clamped_to_the_epoch_but_symlink_times_are_not(loopfs):
    root = loopfs("tmpfs", 16)
    src, dst = os.path.join(root, "src"), os.path.join(root, "dst")
    os.mkdir(src)
    _make_file(os.path.join(src, "old"))
    _make_file(os.path.join(src, "future"))
    os.symlink("old", os.path.join(src, "link"))
    before_1970 = -86_400 * 1_000_000_000
    after_2262 = 10_000_000_000 * 1_000_000_000
    os.utime(os.path.join(src, "old"), ns=(before_1970, before_1970))
    os.utime(os.path.join(src, "future"), ns=(after_2262, BASE_NS))
    os.utime(os.path.join(src, "link"), ns=(before_1970, before_1970), follow_symlinks=False)
    treecopy.dir_copy(src, dst, treecopy.CONTENT)
    cases = {"old": (0, 0), "future": (0, BASE_NS), "link": (before_1970, before_1970)}
    for rel, expected in cases.items():
        st = os.lstat(os.path.join(dst, rel))
        actual = (st.st_atime_ns, st.st_mtime_ns)
        assert actual == expected, "%s/%s (atime, mtime): expected %r, actual %r" % (dst, rel, expected, actual)


@pytest.mark.parametrize("mode", MODES)
def test_stats_count_entries_files_and_copied_bytes(tree, mode):
    src, dst, before = tree
    stats = treecopy.dir_copy(src, dst, mode)
    files = [item for item in before.values() if item["type"] == stat.S_IFREG]
    sizes = {}
    for rel, item in before.items():
        if item["type"] == stat.S_IFREG:
            sizes[item["ino"]] = os.lstat(os.path.join(src, rel)).st_size
    expected = (len(before), len(files), sum(sizes.values()) if mode == treecopy.CONTENT else 0)
    actual = (stats.entries, stats.files, stats.bytes)
    assert actual == expected, "%s (entries, files, bytes): expected %r, actual %r" % (src, expected, actual)


def test_existing_destination_file_fails_naming_the_source_path(scratch):
    src, dst = os.path.join(scratch, "src"), os.path.join(scratch, "dst")
    os.makedirs(os.path.join(src, "d"))
    _make_file(os.path.join(src, "d", "clash"), b"new")
    os.makedirs(os.path.join(dst, "d"))
    _make_file(os.path.join(dst, "d", "clash"), b"old")
    with pytest.raises(errors.CopyError) as caught:
        treecopy.dir_copy(src, dst, treecopy.CONTENT)
    message = str(caught.value)
    assert os.path.join(src, "d", "clash") in message and "File exists" in message, \
        "error: expected the source path %s and 'File exists', actual %r" % (os.path.join(src, "d", "clash"), message)
    with open(os.path.join(dst, "d", "clash"), "rb") as handle:
        kept = handle.read()
    assert kept == b"old", "%s/d/clash: expected the existing b'old' untouched, actual %r" % (dst, kept)


def test_hardlink_mode_across_filesystems_fails_naming_the_file(scratch, loopfs):
    tmpfs = loopfs("tmpfs", 16)
    src, dst = os.path.join(scratch, "src"), os.path.join(tmpfs, "dst")
    os.mkdir(src)
    _make_file(os.path.join(src, "file"), b"x")
    with pytest.raises(errors.CopyError) as caught:
        treecopy.dir_copy(src, dst, treecopy.HARDLINK)
    message = str(caught.value)
    assert os.path.join(src, "file") in message and "Invalid cross-device link" in message, \
        "error: expected %s and EXDEV, actual %r" % (os.path.join(src, "file"), message)


def test_missing_source_fails_naming_it(scratch):
    src = os.path.join(scratch, "absent")
    with pytest.raises(errors.CopyError) as caught:
        treecopy.dir_copy(src, os.path.join(scratch, "dst"), treecopy.CONTENT)
    assert src in str(caught.value), "error: expected %s named, actual %r" % (src, str(caught.value))


def test_unknown_mode_is_refused_before_touching_the_disk(scratch):
    dst = os.path.join(scratch, "dst")
    with pytest.raises(errors.InvalidArgument):
        treecopy.dir_copy(scratch, dst, "reflink")
    assert not os.path.lexists(dst), "%s: expected absent, actual present" % dst


UID_MAPS = [
    ("initial namespace", "         0          0 4294967295\n", False),
    ("root mapped to root only", "         0          0          1\n", True),
    ("remapped range", "         0     100000      65536\n", True),
    ("empty map", "", True),
]


@pytest.mark.parametrize("text, expected", [case[1:] for case in UID_MAPS], ids=[case[0] for case in UID_MAPS])
def test_in_user_namespace_reads_the_first_uid_map_line(scratch, text, expected):
    path = os.path.join(scratch, "uid_map")
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)
    actual = treecopy.in_user_namespace(path)
    assert actual is expected, "%r: expected %r, actual %r" % (text, expected, actual)


def test_no_uid_map_means_the_initial_namespace(scratch):
    path = os.path.join(scratch, "absent")
    assert treecopy.in_user_namespace(path) is False, "%s missing: expected False" % path


COPY_SCRIPT = """
import json, sys
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import treecopy
stats = treecopy.dir_copy(sys.argv[1], sys.argv[2], treecopy.CONTENT)
sys.stdout.write(json.dumps({"userns": treecopy.in_user_namespace(), "skipped": stats.skipped}))
"""


def test_devices_and_whiteouts_are_skipped_silently_inside_a_user_namespace(scratch):
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    src, dst = os.path.join(scratch, "src"), os.path.join(scratch, "dst")
    os.mkdir(src)
    _make_file(os.path.join(src, "file"), b"x")
    os.mknod(os.path.join(src, "whiteout"), stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(os.path.join(src, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mkfifo(os.path.join(src, "fifo"))
    result = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c", COPY_SCRIPT, src, dst],
                            env=dict(os.environ, PYTHONPATH=PYTHONPATH), capture_output=True, text=True, check=False)
    assert result.returncode == 0, "copy in a user namespace: expected rc 0, actual %d: %s" % (result.returncode, result.stderr)
    report = json.loads(result.stdout)
    expected = {"userns": True, "skipped": [os.path.join(src, "null"), os.path.join(src, "whiteout")]}
    assert report == expected, "user namespace copy report: expected %r, actual %r" % (expected, report)
    present = sorted(os.listdir(dst))
    assert present == ["fifo", "file"], "%s: expected ['fifo', 'file'], actual %r" % (dst, present)
    assert result.stderr == "", "expected no warning output, actual %r" % result.stderr


def test_walk_is_in_byte_order_with_one_checkpoint_per_entry_before_it_is_copied(scratch):
    src, dst = os.path.join(scratch, "src"), os.path.join(scratch, "dst")
    os.mkdir(src)
    names = ["b", "Z", "a", "_x", "h", "c", "A", "g"]
    for name in names:
        _make_file(os.path.join(src, name), name.encode())
    script = "import sys\n" + COPY_SCRIPT.split("sys.stdout", 1)[0]
    # Entry 1 is the root, so a kill at entry 5 leaves the first three names copied.
    result = subprocess.run([sys.executable, "-c", script, src, dst], capture_output=True, text=True, check=False,
                            env=dict(os.environ, PYTHONPATH=PYTHONPATH, GRAPHDRIVER_OVERLAY_KILL_AT="copy.entry:5"))
    assert result.returncode == -9, "expected SIGKILL at the 5th entry (rc -9), actual rc %d: %s" % (result.returncode, result.stderr)
    expected = sorted(names)[:3]
    present = sorted(os.listdir(dst))
    assert present == expected, "%s after a kill at entry 5: expected %r, actual %r" % (dst, expected, present)


@pytest.mark.parametrize("mode", MODES)
def test_copy_on_a_filesystem_without_d_type_still_tells_files_from_the_rest(loopfs, mode):
    root = loopfs("ext4-nodtype", 64)
    src, dst = os.path.join(root, "src"), os.path.join(root, "dst")
    os.makedirs(os.path.join(src, "dir"))
    _make_file(os.path.join(src, "dir", "file"), b"data")
    os.symlink("dir/file", os.path.join(src, "link"))
    os.mkfifo(os.path.join(src, "fifo"))
    before = _snapshot(src)
    treecopy.dir_copy(src, dst, mode)
    problems = _differences(before, _snapshot(dst))
    assert not problems, "%s copy on ext4 without d_type differs:\n%s" % (mode, "\n".join(problems))
