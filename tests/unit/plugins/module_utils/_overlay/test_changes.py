# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of change detection: Docker's ChangesDirs rules, the read-from-upper path, ChangesSize.

Pure rules are table-driven; the tree tests run on real filesystems and a real overlay mount.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import changes, errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.changes import ADD, DELETE, MODIFY, Change, FileMeta

# struct vfs_cap_data, revision 2 with the effective flag: permitted = CAP_NET_RAW (bit 13).
CAPS_V2 = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)
T = 1700000000
NS = 1000000000

REG = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755
FILE_META = FileMeta(REG, 0, 0, 0, 4, T * NS + 500)
DIR_META = FileMeta(DIR, 0, 0, 0, 4096, T * NS + 500)

# (case id, old, new, Modify expected)
META_CASES = [
    ("identical file", FILE_META, FILE_META, False),
    ("perm bits differ", FILE_META, FILE_META._replace(mode=stat.S_IFREG | 0o600), True),
    ("setuid bit differs", FILE_META, FILE_META._replace(mode=stat.S_IFREG | 0o4644), True),
    ("type differs, same perm", FILE_META, FILE_META._replace(mode=stat.S_IFDIR | 0o644), True),
    ("uid differs", FILE_META, FILE_META._replace(uid=1), True),
    ("gid differs", FILE_META, FILE_META._replace(gid=1), True),
    ("rdev differs", FILE_META, FILE_META._replace(rdev=0x103), True),
    ("file size differs", FILE_META, FILE_META._replace(size=5), True),
    ("file mtime second differs", FILE_META, FILE_META._replace(mtime_ns=(T + 1) * NS + 500), True),
    ("file mtime ns differ, both non-zero", FILE_META, FILE_META._replace(mtime_ns=T * NS + 501), True),
    ("file mtime old ns zero, same second", FILE_META._replace(mtime_ns=T * NS), FILE_META, False),
    ("file mtime new ns zero, same second", FILE_META, FILE_META._replace(mtime_ns=T * NS), False),
    ("file mtime ns zero but other second", FILE_META._replace(mtime_ns=T * NS), FILE_META._replace(mtime_ns=(T + 1) * NS + 7), True),
    ("caps added", FILE_META, FILE_META._replace(caps=CAPS_V2), True),
    ("caps removed", FILE_META._replace(caps=CAPS_V2), FILE_META, True),
    ("caps equal", FILE_META._replace(caps=CAPS_V2), FILE_META._replace(caps=CAPS_V2), False),
    ("caps empty equals absent", FILE_META._replace(caps=b""), FILE_META, False),
    ("dir size differs", DIR_META, DIR_META._replace(size=8192), False),
    ("dir mtime differs", DIR_META, DIR_META._replace(mtime_ns=(T + 9) * NS), False),
    ("dir perm differs", DIR_META, DIR_META._replace(mode=stat.S_IFDIR | 0o700), True),
    ("dir owner differs", DIR_META, DIR_META._replace(uid=5, gid=5), True),
    ("dir caps differ", DIR_META, DIR_META._replace(caps=CAPS_V2), True),
]

# (case id, one time in ns, another, equal)
TIME_CASES = [
    ("exactly equal", T * NS + 1, T * NS + 1, True),
    ("same second, a zero ns", T * NS, T * NS + 999999999, True),
    ("same second, b zero ns", T * NS + 1, T * NS, True),
    ("same second, different ns", T * NS + 1, T * NS + 2, False),
    ("different second, both zero ns", T * NS, (T + 1) * NS, False),
    ("before the epoch, same second, zero ns", -NS, -NS + 5, True),
    ("before the epoch, different seconds", -1, -NS - 1, False),
]

# (case id, unsorted changes, sorted order)
ORDER_CASES = [
    ("kind order is Docker's C, A, D", [Change("/a", DELETE), Change("/a", ADD), Change("/a", MODIFY)],
     [Change("/a", MODIFY), Change("/a", ADD), Change("/a", DELETE)]),
    ("path before kind", [Change("/b", MODIFY), Change("/a", DELETE)], [Change("/a", DELETE), Change("/b", MODIFY)]),
    ("bytewise: '-' sorts before '/'", [Change("/a/b", ADD), Change("/a-b", ADD), Change("/a", MODIFY)],
     [Change("/a", MODIFY), Change("/a-b", ADD), Change("/a/b", ADD)]),
    ("bytewise for undecodable names", [Change("/\udcff", ADD), Change("/\u00e9", ADD)], [Change("/\u00e9", ADD), Change("/\udcff", ADD)]),
]


@pytest.mark.parametrize("old, new, expected", [case[1:] for case in META_CASES], ids=[case[0] for case in META_CASES])
def test_meta_differs_follows_dockers_modify_rule(old, new, expected):
    assert changes.meta_differs(old, new) is expected, "meta_differs(%r, %r): expected %s" % (old, new, expected)


@pytest.mark.parametrize("first, second, expected", [case[1:] for case in TIME_CASES], ids=[case[0] for case in TIME_CASES])
def test_same_fs_time_tolerates_a_zero_nanosecond_part(first, second, expected):
    assert changes.same_fs_time(first, second) is expected, "same_fs_time(%d, %d): expected %s" % (first, second, expected)
    assert changes.same_fs_time(second, first) is expected, "same_fs_time(%d, %d) is not symmetric" % (second, first)


@pytest.mark.parametrize("unsorted, expected", [case[1:] for case in ORDER_CASES], ids=[case[0] for case in ORDER_CASES])
def test_changes_sort_by_bytewise_path_then_kind(unsorted, expected):
    assert sorted(unsorted) == expected, "sorted(%r): expected %r" % (unsorted, expected)


def test_change_is_frozen_and_compares_by_value():
    change = Change("/a", ADD)
    assert change == Change("/a", ADD) and hash(change) == hash(Change("/a", ADD))
    with pytest.raises(AttributeError):
        change.kind = MODIFY  # type: ignore[misc]


def test_needs_merged_view_is_an_overlay_error():
    assert issubclass(changes.NeedsMergedView, errors.OverlayError)


# ---------------------------------------------------------------- helpers


def _write(path, data, perm=0o644, mtime_ns=None):
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, perm)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


def _tree(root, spec):
    """Build ``spec`` (relative path -> bytes for a file, None for a dir, ('->', target) for a symlink) under root."""
    os.makedirs(root, exist_ok=True)
    for rel, value in spec.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if value is None:
            os.makedirs(path, exist_ok=True)
        elif isinstance(value, tuple):
            os.symlink(value[1], path)
            os.utime(path, ns=(T * NS, T * NS), follow_symlinks=False)
        else:
            _write(path, value, mtime_ns=T * NS + 123)


def _clone(src, dst):
    """A copy with every inode new and all metadata equal (cp -a keeps ns mtimes, owners, xattrs)."""
    subprocess.run(["cp", "-a", src, dst], check=True)


def _mismatch(what, expected, actual):
    missing = [c for c in expected if c not in actual]
    extra = [c for c in actual if c not in expected]
    return "%s: expected %r, got %r (missing %r, unexpected %r)" % (what, expected, actual, missing, extra)


def _expect(*pairs):
    return sorted(Change(path, kind) for kind, path in pairs)


def _mount_overlay(lower, upper, work, merged, options=""):
    data = "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work)
    if options:
        data += "," + options
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", data, merged], check=True, capture_output=True)


def _umount(merged):
    subprocess.run(["umount", merged], check=True, capture_output=True)


def _layer_dirs(scratch):
    paths = {name: os.path.join(scratch, name) for name in ("lower", "upper", "work", "merged")}
    for name in ("upper", "work", "merged"):
        os.mkdir(paths[name])
    return paths


BASE_SPEC = {
    "etc/conf": b"abcd",
    "etc/link": ("->", "conf"),
    "bin/tool": b"#!/bin/sh\n",
    "d/e/f/deep": b"deep",
    "d/e/g": None,
    "top": b"top",
}


# ---------------------------------------------------------------- changes_dirs on plain trees


def test_changes_dirs_without_old_root_reports_every_node_as_add(scratch):
    new = os.path.join(scratch, "new")
    _tree(new, BASE_SPEC)
    actual = changes.changes_dirs(new)
    expected = _expect((ADD, "/bin"), (ADD, "/bin/tool"), (ADD, "/d"), (ADD, "/d/e"), (ADD, "/d/e/f"), (ADD, "/d/e/f/deep"),
                       (ADD, "/d/e/g"), (ADD, "/etc"), (ADD, "/etc/conf"), (ADD, "/etc/link"), (ADD, "/top"))
    assert actual == expected, _mismatch("changes_dirs(%s, None)" % new, expected, actual)


def test_changes_dirs_of_a_full_copy_is_empty_after_comparing_content(scratch):
    old, new = os.path.join(scratch, "old"), os.path.join(scratch, "new")
    _tree(old, BASE_SPEC)
    _clone(old, new)
    actual = changes.changes_dirs(new, old)
    assert not actual, _mismatch("changes_dirs of an identical copy", [], actual)


def test_changes_dirs_skips_same_inode_on_same_device_even_when_content_changed(scratch):
    # An image layer root hardlinks its parent's files: a shared inode is the same file, never a change.
    old, new = os.path.join(scratch, "old"), os.path.join(scratch, "new")
    _tree(old, BASE_SPEC)
    subprocess.run(["cp", "-a", "--link", old, new], check=True)
    assert os.stat(os.path.join(old, "etc/conf")).st_ino == os.stat(os.path.join(new, "etc/conf")).st_ino
    with open(os.path.join(new, "etc/conf"), "wb") as handle:
        handle.write(b"changed through the shared inode")
    _write(os.path.join(new, "d/e/added"), b"x")
    actual = changes.changes_dirs(new, old)
    expected = _expect((MODIFY, "/d"), (MODIFY, "/d/e"), (ADD, "/d/e/added"))
    assert actual == expected, _mismatch("changes_dirs of a hardlink copy", expected, actual)


def _chmod(root, rel, mode):
    os.chmod(os.path.join(root, rel), mode)


def _retime(root, rel, mtime_ns):
    os.utime(os.path.join(root, rel), ns=(mtime_ns, mtime_ns), follow_symlinks=False)


def _rewrite_keeping_times(root, rel, data):
    path = os.path.join(root, rel)
    st = os.lstat(path)
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _retarget_symlink(root, rel, target):
    path = os.path.join(root, rel)
    st = os.lstat(path)
    os.unlink(path)
    os.symlink(target, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _file_to_dir(root, rel):
    path = os.path.join(root, rel)
    os.unlink(path)
    os.mkdir(path)
    _write(os.path.join(path, "inner"), b"i")


def _dir_to_file(root, rel):
    path = os.path.join(root, rel)
    shutil.rmtree(path)
    _write(path, b"now a file")


def _add_tree(root, rel):
    _tree(os.path.join(root, rel), {"x": b"x", "y/z": b"z"})


# (case id, mutation of the new tree, expected changes)
MUTATIONS = [
    ("chmod a file", lambda r: _chmod(r, "etc/conf", 0o600), [(MODIFY, "/etc"), (MODIFY, "/etc/conf")]),
    ("chown a file", lambda r: os.lchown(os.path.join(r, "bin/tool"), 1000, 1000), [(MODIFY, "/bin"), (MODIFY, "/bin/tool")]),
    ("mtime to another second", lambda r: _retime(r, "top", (T + 5) * NS), [(MODIFY, "/top")]),
    ("mtime ns differ in the same second", lambda r: _retime(r, "top", T * NS + 999), [(MODIFY, "/top")]),
    ("mtime ns zeroed in the same second is no change", lambda r: _retime(r, "top", T * NS), []),
    ("same size same mtime new content (moby#31805)", lambda r: _rewrite_keeping_times(r, "d/e/f/deep", b"DEEP"),
     [(MODIFY, "/d"), (MODIFY, "/d/e"), (MODIFY, "/d/e/f"), (MODIFY, "/d/e/f/deep")]),
    ("same content rewritten with same times is no change", lambda r: _rewrite_keeping_times(r, "top", b"top"), []),
    ("symlink re-pointed to a same-length target", lambda r: _retarget_symlink(r, "etc/link", "CONF"), [(MODIFY, "/etc"), (MODIFY, "/etc/link")]),
    ("caps added", lambda r: os.setxattr(os.path.join(r, "bin/tool"), "security.capability", CAPS_V2), [(MODIFY, "/bin"), (MODIFY, "/bin/tool")]),
    ("delete a file", lambda r: os.unlink(os.path.join(r, "etc/conf")), [(MODIFY, "/etc"), (DELETE, "/etc/conf")]),
    ("delete a tree reports its top only", lambda r: shutil.rmtree(os.path.join(r, "d/e")), [(MODIFY, "/d"), (DELETE, "/d/e")]),
    ("delete at the root reports no root", lambda r: shutil.rmtree(os.path.join(r, "d")), [(DELETE, "/d")]),
    ("add a tree reports every node", lambda r: _add_tree(r, "d/e/new"),
     [(MODIFY, "/d"), (MODIFY, "/d/e"), (ADD, "/d/e/new"), (ADD, "/d/e/new/x"), (ADD, "/d/e/new/y"), (ADD, "/d/e/new/y/z")]),
    ("file becomes a dir", lambda r: _file_to_dir(r, "etc/conf"), [(MODIFY, "/etc"), (MODIFY, "/etc/conf"), (ADD, "/etc/conf/inner")]),
    ("dir becomes a file: no deletes below", lambda r: _dir_to_file(r, "d/e"), [(MODIFY, "/d"), (MODIFY, "/d/e")]),
    ("dir perm change reports the dir only", lambda r: _chmod(r, "d/e", 0o700), [(MODIFY, "/d"), (MODIFY, "/d/e")]),
    ("dir mtime change is no change", lambda r: _retime(r, "d/e", (T + 50) * NS), []),
    ("fifo and device added", lambda r: (os.mkfifo(os.path.join(r, "etc/fifo")), os.mknod(os.path.join(r, "etc/null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))),
     [(MODIFY, "/etc"), (ADD, "/etc/fifo"), (ADD, "/etc/null")]),
]


@pytest.mark.parametrize("mutate, expected", [case[1:] for case in MUTATIONS], ids=[case[0] for case in MUTATIONS])
def test_changes_dirs_reports_dockers_changes_for_each_mutation(scratch, mutate, expected):
    old, new = os.path.join(scratch, "old"), os.path.join(scratch, "new")
    _tree(old, BASE_SPEC)
    _clone(old, new)
    mutate(new)
    actual = changes.changes_dirs(new, old)
    assert actual == _expect(*expected), _mismatch("changes_dirs(%s, %s)" % (new, old), _expect(*expected), actual)


def test_changes_dirs_reports_a_dir_replaced_by_a_device_as_one_modify(scratch):
    old, new = os.path.join(scratch, "old"), os.path.join(scratch, "new")
    _tree(old, BASE_SPEC)
    _clone(old, new)
    shutil.rmtree(os.path.join(new, "d"))
    os.mknod(os.path.join(new, "d"), stat.S_IFBLK | 0o600, os.makedev(7, 0))
    actual = changes.changes_dirs(new, old)
    assert actual == [Change("/d", MODIFY)], _mismatch("dir replaced by a block device", [Change("/d", MODIFY)], actual)


# ---------------------------------------------------------------- changes_size


def test_changes_size_counts_added_and_modified_non_dirs_once_per_inode(scratch):
    root = os.path.join(scratch, "layer")
    _tree(root, {"dir/a": b"0123456789", "h1": b"1234567", "m": b"12345", "link": ("->", "abc")})
    os.link(os.path.join(root, "h1"), os.path.join(root, "dir/h2"))
    listed = [Change("/dir", ADD), Change("/dir/a", ADD), Change("/h1", ADD), Change("/dir/h2", ADD), Change("/link", ADD),
              Change("/m", MODIFY), Change("/gone", ADD), Change("/deleted", DELETE)]
    size = changes.changes_size(root, listed)
    assert size == 10 + 7 + 3 + 5, "changes_size(%s): expected %d, got %d" % (root, 25, size)


def test_changes_size_of_no_changes_is_zero(scratch):
    assert changes.changes_size(scratch, []) == 0


# ---------------------------------------------------------------- changes_from_upper vs the merged view


LOWER_SPEC = {
    "bin/capfile": b"\x7fELF-cap",
    "bin/owned": b"owned",
    "bin/tool": b"tool",
    "etc/dirturnsfile/child": b"c",
    "etc/fileturnsdir": b"f",
    "etc/hostname": b"host-a\n",
    "etc/rewritten-same": b"keep",
    "etc/untouched": b"u",
    "home/user/doc": b"document",
    "opt/keep": b"k",
    "run": None,
    "srv/a": b"alpha",
    "srv/b": b"beta",
    "srv/sub/c": b"gamma",
    "var/cache/x/y/z": b"cache",
    "var/cache/w": b"w",
    "var/log/old.log": b"old",
    "var/log/keep.log": b"keep",
}

EXPECTED_OVERLAY = [
    (MODIFY, "/bin"), (MODIFY, "/bin/capfile"), (MODIFY, "/bin/owned"), (MODIFY, "/bin/tool"),
    (ADD, "/data"), (ADD, "/data/h1"), (ADD, "/data/h2"),
    (MODIFY, "/etc"), (MODIFY, "/etc/dirturnsfile"), (MODIFY, "/etc/fileturnsdir"), (ADD, "/etc/fileturnsdir/inner"),
    (MODIFY, "/etc/hostname"), (MODIFY, "/etc/same"),
    (MODIFY, "/home"), (MODIFY, "/home/user"), (DELETE, "/home/user/doc"), (ADD, "/home/user/doc2"),
    (ADD, "/link"),
    (MODIFY, "/opt"), (ADD, "/opt/newdir"), (ADD, "/opt/newdir/x"), (ADD, "/opt/renamed"),
    (MODIFY, "/run"), (ADD, "/run/fifo"),
    (MODIFY, "/srv"), (MODIFY, "/srv/a"), (DELETE, "/srv/b"), (ADD, "/srv/new"), (DELETE, "/srv/sub"),
    (MODIFY, "/var"), (DELETE, "/var/cache"), (MODIFY, "/var/log"), (DELETE, "/var/log/old.log"),
]


def _build_lower(lower):
    _tree(lower, LOWER_SPEC)
    # The same-second rewrite below lands on a file whose time came out of a tar: zero nanoseconds.
    _write(os.path.join(lower, "etc/same"), b"aaaa", mtime_ns=T * NS)
    for rel in ("srv", "srv/sub", "run", "opt"):
        os.chmod(os.path.join(lower, rel), 0o755)


def _change_through_merged(m):
    """Every kind of change, made the way a container makes it: through the merged view."""
    _write(os.path.join(m, "etc/hostname"), b"host-b-longer\n")
    _write(os.path.join(m, "etc/same"), b"bbbb", mtime_ns=T * NS + 500)
    os.chmod(os.path.join(m, "etc/untouched"), 0o644)
    _rewrite_keeping_times(m, "etc/rewritten-same", b"keep")
    os.chmod(os.path.join(m, "bin/tool"), 0o4755)
    os.chown(os.path.join(m, "bin/owned"), 1000, 1000)
    os.setxattr(os.path.join(m, "bin/capfile"), "security.capability", CAPS_V2)
    os.unlink(os.path.join(m, "var/log/old.log"))
    shutil.rmtree(os.path.join(m, "var/cache"))
    shutil.rmtree(os.path.join(m, "srv"))
    os.mkdir(os.path.join(m, "srv"), 0o755)
    _write(os.path.join(m, "srv/a"), b"ALPHA!")
    _write(os.path.join(m, "srv/new"), b"new")
    _tree(os.path.join(m, "opt/newdir"), {"x": b"x"})
    os.mkdir(os.path.join(m, "opt/tmpd"))
    os.rename(os.path.join(m, "opt/tmpd"), os.path.join(m, "opt/renamed"))
    os.symlink("etc/hostname", os.path.join(m, "link"))
    os.rename(os.path.join(m, "home/user/doc"), os.path.join(m, "home/user/doc2"))
    _file_to_dir(m, "etc/fileturnsdir")
    _dir_to_file(m, "etc/dirturnsfile")
    os.mkfifo(os.path.join(m, "run/fifo"))
    _tree(os.path.join(m, "data"), {"h1": b"hard"})
    os.link(os.path.join(m, "data/h1"), os.path.join(m, "data/h2"))
    _write(os.path.join(m, "scratchfile"), b"made and removed in the layer")
    os.unlink(os.path.join(m, "scratchfile"))


def test_changes_from_upper_equals_changes_dirs_of_the_merged_view(scratch):
    paths = _layer_dirs(scratch)
    _build_lower(paths["lower"])
    expected = _expect(*EXPECTED_OVERLAY)
    _mount_overlay(paths["lower"], paths["upper"], paths["work"], paths["merged"])
    try:
        _change_through_merged(paths["merged"])
        from_merged = changes.changes_dirs(paths["merged"], paths["lower"])
        from_upper = changes.changes_from_upper(paths["upper"], paths["lower"])
    finally:
        _umount(paths["merged"])
    upper = paths["upper"]
    assert os.getxattr(os.path.join(upper, "srv"), "trusted.overlay.opaque") == b"y", "%s/srv should be opaque" % upper
    assert os.path.exists(os.path.join(upper, "etc/untouched")), "%s/etc/untouched should have been copied up" % upper
    assert from_upper == from_merged, _mismatch("changes_from_upper vs changes_dirs(merged)", from_merged, from_upper)
    assert from_merged == expected, _mismatch("changes_dirs(merged, lower)", expected, from_merged)
    after = changes.changes_from_upper(upper, paths["lower"])
    assert after == expected, _mismatch("changes_from_upper after unmount", expected, after)


def test_changes_from_upper_inherits_opacity_like_the_kernel(scratch):
    # A hand-made upper: o is opaque, o/sub is not, yet the kernel never merges o/sub with the lower.
    paths = _layer_dirs(scratch)
    _tree(paths["lower"], {"o/sub/x": b"x", "o/sub/y": b"y", "o/z": b"z", "p/q": b"q"})
    _clone(os.path.join(paths["lower"], "o"), os.path.join(paths["upper"], "o"))
    shutil.rmtree(os.path.join(paths["upper"], "o/sub"))
    os.unlink(os.path.join(paths["upper"], "o/z"))
    os.mkdir(os.path.join(paths["upper"], "o/sub"), 0o755)
    shutil.copy2(os.path.join(paths["lower"], "o/sub/x"), os.path.join(paths["upper"], "o/sub/x"))
    os.setxattr(os.path.join(paths["upper"], "o"), "trusted.overlay.opaque", b"y")
    os.mkdir(os.path.join(paths["upper"], "p"), 0o755)
    os.mknod(os.path.join(paths["upper"], "p/q"), stat.S_IFCHR, 0)
    os.mknod(os.path.join(paths["upper"], "p/never-existed"), stat.S_IFCHR, 0)
    expected = _expect((MODIFY, "/o"), (MODIFY, "/o/sub"), (DELETE, "/o/sub/y"), (DELETE, "/o/z"), (MODIFY, "/p"), (DELETE, "/p/q"))
    from_upper = changes.changes_from_upper(paths["upper"], paths["lower"])
    _mount_overlay(paths["lower"], paths["upper"], paths["work"], paths["merged"])
    try:
        from_merged = changes.changes_dirs(paths["merged"], paths["lower"])
    finally:
        _umount(paths["merged"])
    assert from_merged == expected, _mismatch("changes_dirs(merged) of a hand-made upper", expected, from_merged)
    assert from_upper == expected, _mismatch("changes_from_upper of a hand-made upper", expected, from_upper)


@pytest.mark.parametrize("xattr, target", [("trusted.overlay.redirect", "renamed"), ("trusted.overlay.metacopy", "renamed/file")],
                         ids=["redirect", "metacopy"])
def test_changes_from_upper_refuses_redirect_and_metacopy_entries(scratch, xattr, target):
    paths = _layer_dirs(scratch)
    _tree(paths["lower"], {"orig/file": b"f"})
    _tree(paths["upper"], {"renamed/file": b"f"})
    os.setxattr(os.path.join(paths["upper"], target), xattr, b"/orig" if xattr.endswith("redirect") else b"")
    with pytest.raises(changes.NeedsMergedView) as caught:
        changes.changes_from_upper(paths["upper"], paths["lower"])
    assert xattr in str(caught.value) and target in str(caught.value), "message %r should name %s and %s" % (str(caught.value), xattr, target)


def test_changes_from_upper_refuses_a_kernel_made_redirect_while_the_merged_view_stays_exact(scratch):
    paths = _layer_dirs(scratch)
    _tree(paths["lower"], {"dir/file": b"f"})
    try:
        _mount_overlay(paths["lower"], paths["upper"], paths["work"], paths["merged"], "redirect_dir=on")
    except subprocess.CalledProcessError as exc:
        pytest.skip("this kernel cannot mount with redirect_dir=on: %s" % exc.stderr)
    try:
        os.rename(os.path.join(paths["merged"], "dir"), os.path.join(paths["merged"], "moved"))
        from_merged = changes.changes_dirs(paths["merged"], paths["lower"])
    finally:
        _umount(paths["merged"])
    expected = _expect((DELETE, "/dir"), (ADD, "/moved"), (ADD, "/moved/file"))
    assert from_merged == expected, _mismatch("changes_dirs(merged) after a redirect rename", expected, from_merged)
    with pytest.raises(changes.NeedsMergedView):
        changes.changes_from_upper(paths["upper"], paths["lower"])
