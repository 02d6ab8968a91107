# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of kernel.py: mountinfo parsing, overlay mount data, and real mounts on this kernel."""

from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import kernel
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.kernel import MountInfo

MOUNTINFO_CASES = [
    pytest.param(
        "22 27 0:21 / /proc rw,relatime - proc proc rw",
        MountInfo(22, 27, 0, 21, "/", "/proc", ("rw", "relatime"), (), "proc", "proc", ("rw",)),
        id="no-optional-fields",
    ),
    pytest.param(
        "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
        MountInfo(36, 35, 98, 0, "/mnt1", "/mnt2", ("rw", "noatime"), ("master:1",), "ext3", "/dev/root", ("rw", "errors=continue")),
        id="proc5-example-master",
    ),
    pytest.param(
        "40 29 0:35 / /var/lib/x rw shared:12 master:3 propagate_from:2 - tmpfs tmpfs rw,size=1024k",
        MountInfo(40, 29, 0, 35, "/", "/var/lib/x", ("rw",), ("shared:12", "master:3", "propagate_from:2"), "tmpfs", "tmpfs", ("rw", "size=1024k")),
        id="several-optional-fields",
    ),
    pytest.param(
        "41 29 0:36 / /mnt/u rw unbindable - tmpfs tmpfs rw",
        MountInfo(41, 29, 0, 36, "/", "/mnt/u", ("rw",), ("unbindable",), "tmpfs", "tmpfs", ("rw",)),
        id="unbindable",
    ),
    pytest.param(
        "50 29 253:1 /sub\\040dir /tmp/a\\040b\\011c\\012d\\134e rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw",
        MountInfo(50, 29, 253, 1, "/sub dir", "/tmp/a b\tc\nd\\e", ("rw", "relatime"), ("shared:1",), "ext4", "/dev/mapper/vg-root", ("rw",)),
        id="escaped-root-and-mount-point",
    ),
    pytest.param(
        "51 29 0:50 / /mnt/ssh rw,nosuid - fuse.sshfs user@host:/srv/my\\040files rw,user_id=0",
        MountInfo(51, 29, 0, 50, "/", "/mnt/ssh", ("rw", "nosuid"), (), "fuse.sshfs", "user@host:/srv/my files", ("rw", "user_id=0")),
        id="escaped-source",
    ),
    pytest.param(
        "52 29 0:51 / /mnt/empty rw - tmpfs  rw",
        MountInfo(52, 29, 0, 51, "/", "/mnt/empty", ("rw",), (), "tmpfs", "", ("rw",)),
        id="empty-source",
    ),
    pytest.param(
        "60 29 0:60 / /l/merged rw,relatime - overlay overlay rw,lowerdir=/l/a\\054b,upperdir=/l/u\\040x,workdir=/l/w",
        MountInfo(60, 29, 0, 60, "/", "/l/merged", ("rw", "relatime"), (), "overlay", "overlay",
                  ("rw", "lowerdir=/l/a,b", "upperdir=/l/u x", "workdir=/l/w")),
        id="overlay-escaped-comma-stays-in-option",
    ),
]


@pytest.mark.parametrize("line, expected", MOUNTINFO_CASES)
def test_parse_mountinfo_line_gives_unescaped_fields(line, expected):
    parsed = kernel.parse_mountinfo(line + "\n")
    assert parsed == [expected], "line %r: expected %r, got %r" % (line, expected, parsed)


def test_parse_mountinfo_keeps_kernel_order_and_skips_blank_lines():
    text = "\n".join(case.values[0] for case in MOUNTINFO_CASES) + "\n\n"
    ids = [info.mount_id for info in kernel.parse_mountinfo(text)]
    expected = [case.values[1].mount_id for case in MOUNTINFO_CASES]
    assert ids == expected, "mount ids: expected %r, got %r" % (expected, ids)


@pytest.mark.parametrize("line", ["22 27 0:21 / /proc rw,relatime proc proc rw", "x 27 0:21 / /proc rw - proc proc rw", "22 27 0:21 / /proc rw - proc"])
def test_parse_mountinfo_rejects_malformed_line_naming_it(line):
    with pytest.raises(ValueError) as caught:
        kernel.parse_mountinfo(line)
    assert repr(line) in str(caught.value), "error %r should name the line %r" % (str(caught.value), line)


MOUNT_DATA_CASES = [
    pytest.param("/h/a/root", "/h/b/upper", "/h/b/work", "", "lowerdir=/h/a/root,upperdir=/h/b/upper,workdir=/h/b/work", id="no-label"),
    pytest.param("/l", "/u", "/w", "system_u:object_r:container_file_t:s0:c1,c2",
                 'lowerdir=/l,upperdir=/u,workdir=/w,context="system_u:object_r:container_file_t:s0:c1,c2"', id="selinux-label"),
    pytest.param("/l", "/u", "/w", 'a"b\\c', 'lowerdir=/l,upperdir=/u,workdir=/w,context="a\\"b\\\\c"', id="quote-and-backslash"),
    pytest.param("/l", "/u", "/w", "t\tn\nr\r", 'lowerdir=/l,upperdir=/u,workdir=/w,context="t\\tn\\nr\\r"', id="short-escapes"),
    pytest.param("/l", "/u", "/w", "\x01\x7f\a\b\f\v", 'lowerdir=/l,upperdir=/u,workdir=/w,context="\\x01\\x7f\\a\\b\\f\\v"', id="control-bytes"),
    pytest.param("/l", "/u", "/w", "caf\u00e9 \U0001F600", 'lowerdir=/l,upperdir=/u,workdir=/w,context="caf\u00e9 \U0001F600"', id="printable-unicode-kept"),
    pytest.param("/l", "/u", "/w", "\u00a0\u200b\U000E0001",
                 'lowerdir=/l,upperdir=/u,workdir=/w,context="\\u00a0\\u200b\\U000e0001"', id="unprintable-unicode"),
    pytest.param("/l", "/u", "/w", os.fsdecode(b"s\xff"), 'lowerdir=/l,upperdir=/u,workdir=/w,context="s\\xff"', id="invalid-utf8-byte"),
]


@pytest.mark.parametrize("lower, upper, work, label, expected", MOUNT_DATA_CASES)
def test_overlay_mount_data_matches_docker_and_go_quoting(lower, upper, work, label, expected):
    data = kernel.overlay_mount_data(lower, upper, work, label)
    assert data == expected, "label %r: expected %r, got %r" % (label, expected, data)


def _info(mount_id, parent_id, mount_point):
    return MountInfo(mount_id, parent_id, 0, mount_id, "/", mount_point, ("rw",), (), "tmpfs", "tmpfs", ("rw",))


TABLE = [
    _info(1, 0, "/"),
    _info(2, 1, "/a"),
    _info(3, 2, "/a/bc"),
    _info(4, 2, "/a/b"),
    _info(5, 4, "/a/b/c"),
    _info(6, 5, "/a/b/c/d"),
    _info(7, 4, "/a/b"),
    _info(8, 2, "/a/b-init"),
]

BELOW_CASES = [
    pytest.param("/a/b", [6, 5, 7, 4], id="whole-components-not-string-prefix"),
    pytest.param("/a/b/", [6, 5, 7, 4], id="trailing-slash"),
    pytest.param("/a/b/c/d", [6], id="leaf"),
    pytest.param("/a/b/c/d/e", [], id="below-every-mount"),
    pytest.param("/a/bc", [3], id="sibling-sharing-a-prefix"),
    pytest.param("/", [6, 5, 8, 7, 4, 3, 2, 1], id="root-takes-all"),
    pytest.param("/zzz", [], id="nothing-there"),
]


@pytest.mark.parametrize("path, expected_ids", BELOW_CASES)
def test_mounts_at_or_below_orders_deepest_and_latest_first(path, expected_ids):
    ids = [info.mount_id for info in kernel.mounts_at_or_below(TABLE, path)]
    assert ids == expected_ids, "mounts at or below %s: expected %r, got %r" % (path, expected_ids, ids)


MOUNT_AT_CASES = [
    pytest.param(TABLE, "/a/b", 7, id="stacked-gives-top"),
    pytest.param([TABLE[0], TABLE[6], TABLE[3]], "/a/b", 7, id="stacked-top-listed-first"),
    pytest.param(TABLE, "/a/bc", 3, id="single"),
    pytest.param(TABLE, "/a/b/c/", 5, id="trailing-slash"),
    pytest.param(TABLE, "/a/x", None, id="not-a-mount-point"),
]


@pytest.mark.parametrize("mounts, path, expected_id", MOUNT_AT_CASES)
def test_mount_at_returns_topmost_mount_of_the_point(mounts, path, expected_id):
    found = kernel.mount_at(mounts, path)
    found_id = found.mount_id if found else None
    assert found_id == expected_id, "mount at %s: expected id %r, got %r" % (path, expected_id, found_id)


def _make_overlay(base):
    dirs = {name: os.path.join(base, name) for name in ("lower", "upper", "work", "merged")}
    for path in dirs.values():
        os.makedirs(path)
    with open(os.path.join(dirs["lower"], "from-lower"), "w", encoding="utf-8") as handle:
        handle.write("lower\n")
    return dirs


def test_overlay_mount_shows_in_mountinfo_and_unmount_removes_it(scratch):
    dirs = _make_overlay(os.path.join(scratch, "layer with space"))
    data = kernel.overlay_mount_data(dirs["lower"], dirs["upper"], dirs["work"])
    kernel.mount("overlay", dirs["merged"], "overlay", 0, data)
    try:
        info = kernel.mount_at(kernel.read_mountinfo(), dirs["merged"])
        assert info is not None, "%s: expected an overlay mount in mountinfo, found none" % dirs["merged"]
        assert (info.fstype, info.source) == ("overlay", "overlay"), "%s: expected overlay/overlay, got %s/%s" % (dirs["merged"], info.fstype, info.source)
        lowerdir = "lowerdir=" + dirs["lower"]
        assert lowerdir in info.super_options, "%s: expected %r in %r" % (dirs["merged"], lowerdir, info.super_options)
        merged_file = os.path.join(dirs["merged"], "from-lower")
        assert os.path.isfile(merged_file), "%s: expected the lower file through the mount" % merged_file
    finally:
        kernel.unmount(dirs["merged"])
    after = kernel.mount_at(kernel.read_mountinfo(), dirs["merged"])
    assert after is None, "%s: expected no mount after unmount, got %r" % (dirs["merged"], after)


def test_mount_error_carries_errno_and_target(scratch):
    target = os.path.join(scratch, "missing")
    with pytest.raises(OSError) as caught:
        kernel.mount("tmpfs", target, "tmpfs")
    assert (caught.value.errno, caught.value.filename) == (errno.ENOENT, target), "expected ENOENT on %s, got %r" % (target, caught.value)


def test_unmount_of_plain_dir_raises_einval_naming_it(scratch):
    with pytest.raises(OSError) as caught:
        kernel.unmount(scratch)
    assert (caught.value.errno, caught.value.filename) == (errno.EINVAL, scratch), "expected EINVAL on %s, got %r" % (scratch, caught.value)


def _mount_points_below(path):
    return sorted(info.mount_point for info in kernel.mounts_at_or_below(kernel.read_mountinfo(), path))


def test_recursive_unmount_removes_nested_mounts_but_not_prefix_siblings(scratch):
    top = os.path.join(scratch, "layer")
    sibling = os.path.join(scratch, "layer-init")
    os.makedirs(sibling)
    os.makedirs(top)
    kernel.mount("tmpfs", top, "tmpfs", 0, "size=16m")
    kernel.mount("tmpfs", sibling, "tmpfs", 0, "size=16m")
    inner = os.path.join(top, "inner")
    os.makedirs(inner)
    kernel.mount("tmpfs", inner, "tmpfs", 0, "size=16m")
    kernel.mount("tmpfs", inner, "tmpfs", 0, "size=16m")
    dirs = _make_overlay(os.path.join(inner, "ov"))
    kernel.mount("overlay", dirs["merged"], "overlay", 0, kernel.overlay_mount_data(dirs["lower"], dirs["upper"], dirs["work"]))

    kernel.recursive_unmount(top)

    left = _mount_points_below(top)
    assert left == [], "%s: expected no mounts left, got %r" % (top, left)
    still = _mount_points_below(sibling)
    assert still == [sibling], "%s: the sibling mount should stay, got %r" % (sibling, still)


def test_recursive_unmount_counts_einval_and_enoent_as_success(scratch):
    plain = os.path.join(scratch, "plain")
    os.mkdir(plain)
    stale = [_info(100, 1, plain), _info(101, 1, os.path.join(scratch, "gone"))]
    kernel.recursive_unmount(scratch, read=lambda: stale)


def test_recursive_unmount_raises_the_error_it_cannot_ignore(scratch):
    too_long = os.path.join(scratch, "x" * 300)
    stale = [_info(100, 1, too_long), _info(101, 1, os.path.join(scratch, "gone"))]
    with pytest.raises(OSError) as caught:
        kernel.recursive_unmount(scratch, read=lambda: stale)
    assert (caught.value.errno, caught.value.filename) == (errno.ENAMETOOLONG, too_long), "expected ENAMETOOLONG on %s, got %r" % (too_long, caught.value)
