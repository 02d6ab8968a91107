# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of probe.py: Docker's tables and messages, and the probes on real filesystems."""

from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import kernel
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import probe

DT_DIR, DT_REG, DT_LNK = 4, 8, 10
MS_RDONLY, MS_REMOUNT = 1, 32

FS_NAME_CASES = [
    (0x61756673, "aufs"),
    (0x9123683E, "btrfs"),
    (0x28CD3D45, "cramfs"),
    (0xF15F, "ecryptfs"),
    (0xEF53, "extfs"),
    (0xF2F52010, "f2fs"),
    (0x65735546, "fuse"),
    (0x47504653, "gpfs"),
    (0x72B6, "jffs2"),
    (0x3153464A, "jfs"),
    (0x6969, "nfs"),
    (0x794C7630, "overlayfs"),
    (0x858458F6, "ramfs"),
    (0x52654973, "reiserfs"),
    (0x517B, "smb"),
    (0x73717368, "squashfs"),
    (0x01021994, "tmpfs"),
    (0, "unsupported"),
    (0xA501FCF5, "vxfs"),
    (0x58465342, "xfs"),
    (0x2FC12FC1, "zfs"),
    (0x9FA0, "<unknown>"),
    (0xDEADBEEF, "<unknown>"),
]


@pytest.mark.parametrize("magic, name", FS_NAME_CASES)
def test_fs_name_follows_docker_fsnames(magic, name):
    assert probe.fs_name(magic) == name, "magic %#x: expected %r, got %r" % (magic, name, probe.fs_name(magic))


def test_fs_names_table_is_exactly_docker_s():
    expected = {magic: name for magic, name in FS_NAME_CASES if name != "<unknown>"}
    assert probe.FS_NAMES == expected, "FS_NAMES: expected %r, got %r" % (expected, probe.FS_NAMES)


def test_incompatible_magics_are_the_v19_03_blacklist():
    names = sorted(probe.fs_name(magic) for magic in probe.INCOMPATIBLE_MAGICS)
    expected = ["aufs", "btrfs", "ecryptfs", "nfs", "overlayfs", "zfs"]
    assert names == expected, "blacklist: expected %r, got %r" % (expected, names)


HAS_OVERLAY_CASES = [
    pytest.param("nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n", True, id="listed"),
    pytest.param("nodev\toverlay", True, id="last-line-without-newline"),
    pytest.param("nodev\tsysfs\n\text4\n", False, id="absent"),
    pytest.param("nodev\toverlayfs\n", False, id="longer-name"),
    pytest.param("\toverlay\n", False, id="without-nodev"),
    pytest.param("nodev overlay\n", False, id="space-instead-of-tab"),
    pytest.param("nodev\toverlay \n", False, id="trailing-space"),
    pytest.param("", False, id="empty"),
]


@pytest.mark.parametrize("text, expected", HAS_OVERLAY_CASES)
def test_has_overlay_wants_the_exact_line(text, expected):
    assert probe.has_overlay(text) is expected, "%r: expected %r" % (text, expected)


_DTYPE_HEAD = "overlay: the backing %s filesystem is formatted without d_type support, which leads to incorrect behavior."
_DTYPE_TAIL = " Backing filesystems without d_type support are not supported."
D_TYPE_MESSAGE_CASES = [
    ("xfs", _DTYPE_HEAD % "xfs" + " Reformat the filesystem with ftype=1 to enable d_type support." + _DTYPE_TAIL),
    ("extfs", _DTYPE_HEAD % "extfs" + " Reformat the filesystem (or use tune2fs) with -O filetype flag to enable d_type support." + _DTYPE_TAIL),
    ("tmpfs", _DTYPE_HEAD % "tmpfs" + _DTYPE_TAIL),
    ("<unknown>", _DTYPE_HEAD % "<unknown>" + _DTYPE_TAIL),
]


@pytest.mark.parametrize("fs, expected", D_TYPE_MESSAGE_CASES)
def test_d_type_message_is_docker_s_text(fs, expected):
    assert probe.d_type_message(fs) == expected, "%s: expected %r, got %r" % (fs, expected, probe.d_type_message(fs))


STATFS_CASES = [
    ("ext4", 0xEF53, "extfs"),
    ("ext4-nodtype", 0xEF53, "extfs"),
    ("xfs", 0x58465342, "xfs"),
    ("btrfs", 0x9123683E, "btrfs"),
    ("tmpfs", 0x01021994, "tmpfs"),
]


@pytest.mark.parametrize("kind, magic, name", STATFS_CASES)
def test_statfs_magic_names_real_filesystems(loopfs, kind, magic, name):
    mountpoint = loopfs(kind)
    found = probe.statfs_magic(mountpoint)
    assert (found, probe.fs_name(found)) == (magic, name), "%s: expected %#x %s, got %#x %s" % (mountpoint, magic, name, found, probe.fs_name(found))


def _overlay(base):
    dirs = {name: os.path.join(base, name) for name in ("lower", "upper", "work", "merged")}
    for path in dirs.values():
        os.makedirs(path)
    kernel.mount("overlay", dirs["merged"], "overlay", 0, kernel.overlay_mount_data(dirs["lower"], dirs["upper"], dirs["work"]))
    return dirs["merged"]


def test_statfs_magic_of_an_overlay_mount_is_overlayfs(scratch):
    merged = _overlay(scratch)
    found = probe.statfs_magic(merged)
    assert found == kernel.OVERLAY_SUPER_MAGIC, "%s: expected %#x, got %#x" % (merged, kernel.OVERLAY_SUPER_MAGIC, found)


def test_statfs_magic_of_missing_path_raises_enoent_naming_it(scratch):
    missing = os.path.join(scratch, "missing")
    with pytest.raises(OSError) as caught:
        probe.statfs_magic(missing)
    assert (caught.value.errno, caught.value.filename) == (errno.ENOENT, missing), "expected ENOENT on %s, got %r" % (missing, caught.value)


def test_dirent_types_reads_every_record_with_its_type(loopfs):
    root = loopfs("tmpfs")
    os.mkdir(os.path.join(root, "dir"))
    os.symlink("dir", os.path.join(root, "link"))
    # Long names overflow one getdents64 buffer, so the read loop must go round.
    names = ["f%04d-%s" % (index, "n" * 200) for index in range(400)]
    for name in names:
        with open(os.path.join(root, name), "wb"):
            pass
    types = probe.dirent_types(root)
    expected = {".": DT_DIR, "..": DT_DIR, "dir": DT_DIR, "link": DT_LNK}
    expected.update((name, DT_REG) for name in names)
    assert types == expected, "%s: %d entries expected, got %d; differing: %r" % (
        root, len(expected), len(types), sorted(set(types.items()) ^ set(expected.items()))[:5])


def test_dirent_types_on_ext4_without_filetype_are_unknown(loopfs):
    root = loopfs("ext4-nodtype")
    with open(os.path.join(root, "file"), "wb"):
        pass
    found = probe.dirent_types(root).get("file")
    assert found == probe.DT_UNKNOWN, "%s/file: expected DT_UNKNOWN, got %r" % (root, found)


@pytest.mark.parametrize("kind, expected", [("ext4", True), ("xfs", True), ("tmpfs", True), ("btrfs", True), ("ext4-nodtype", False)])
def test_supports_d_type_per_filesystem(loopfs, kind, expected):
    root = loopfs(kind)
    found = probe.supports_d_type(root)
    assert found is expected, "%s (%s): expected %r, got %r" % (root, kind, expected, found)


@pytest.mark.parametrize("kind, expected", [("tmpfs", True), ("ext4-nodtype", False)])
def test_supports_d_type_in_empty_dir_uses_a_dummy_and_removes_it(loopfs, kind, expected):
    empty = os.path.join(loopfs(kind), "empty")
    os.mkdir(empty)
    found = probe.supports_d_type(empty)
    assert found is expected, "%s: expected %r, got %r" % (empty, expected, found)
    assert os.listdir(empty) == [], "%s: expected the dummy file gone, found %r" % (empty, os.listdir(empty))


def test_supports_d_type_of_missing_dir_raises(scratch):
    missing = os.path.join(scratch, "missing")
    with pytest.raises(FileNotFoundError):
        probe.supports_d_type(missing)


def test_is_initialized_follows_docker_rule(scratch):
    home = os.path.join(scratch, "home")
    assert probe.is_initialized(home) is False, "%s: missing home should not count as initialized" % home
    os.mkdir(home)
    assert probe.is_initialized(home) is False, "%s: empty home should not count as initialized" % home
    os.mkdir(os.path.join(home, "layer"))
    assert probe.is_initialized(home) is True, "%s: non-empty home should count as initialized" % home


def test_is_initialized_counts_an_unlistable_home_as_in_use(scratch):
    home = os.path.join(scratch, "home")
    with open(home, "wb"):
        pass
    assert probe.is_initialized(home) is True, "%s: a home that cannot be listed should count as initialized" % home


def test_modprobe_never_raises_and_names_the_module():
    result = probe.modprobe("gdo-no-such-module")
    assert isinstance(result, str) and "gdo-no-such-module" in result, "modprobe of a missing module: expected an error text, got %r" % (result,)


def test_modprobe_without_binary_returns_text(monkeypatch, scratch):
    monkeypatch.setenv("PATH", scratch)
    monkeypatch.setattr(probe, "_MODPROBE_DIRS", (scratch,))
    result = probe.modprobe()
    assert result == "modprobe overlay: modprobe not found", "expected the not-found text, got %r" % (result,)


def test_try_test_mount_on_tmpfs_succeeds_and_leaves_nothing(loopfs):
    testdir = loopfs("tmpfs")
    before = sorted(os.listdir(testdir))
    assert probe.try_test_mount(testdir) is None, "%s: expected the test mount to succeed" % testdir
    assert sorted(os.listdir(testdir)) == before, "%s: expected %r left, found %r" % (testdir, before, sorted(os.listdir(testdir)))
    below = kernel.mounts_at_or_below(kernel.read_mountinfo(), testdir)
    assert [info.mount_point for info in below] == [testdir], "%s: expected no mount left below, got %r" % (testdir, below)


def test_try_test_mount_over_overlay_reports_mount_error_and_leaves_nothing(scratch):
    merged = _overlay(scratch)
    result = probe.try_test_mount(merged)
    assert result == "failed to mount overlay: invalid argument", "%s: expected the EINVAL text, got %r" % (merged, result)
    assert os.listdir(merged) == [], "%s: expected nothing left, found %r" % (merged, os.listdir(merged))


def _assert_unchanged(path, before):
    after = sorted(os.listdir(path))
    assert after == before, "%s: expected %r, found %r" % (path, before, after)


def test_check_support_refuses_btrfs_with_docker_message(loopfs):
    testdir = loopfs("btrfs")
    home = os.path.join(testdir, "overlay")
    report = probe.check_support(home)
    expected = "'overlay' is not supported over btrfs"
    assert (report.supported, report.reason) == (False, expected), "%s: expected refusal %r, got %r" % (home, expected, report)
    assert (report.backing_fs, report.magic, report.testdir) == ("btrfs", 0x9123683E, testdir), "%s: got %r" % (home, report)
    # Docker refuses btrfs before its d_type check; facts measure it anyway (btrfs has d_type).
    assert report.supports_d_type is True, "%s: d_type must be measured on a refused filesystem, got %r" % (home, report)
    assert not os.path.lexists(home), "%s: check_support must not create the home" % home


def test_check_support_refuses_new_home_without_d_type(loopfs):
    testdir = loopfs("ext4-nodtype")
    before = sorted(os.listdir(testdir))
    home = os.path.join(testdir, "overlay")
    report = probe.check_support(home)
    expected = probe.d_type_message("extfs")
    assert (report.supported, report.reason) == (False, expected), "%s: expected refusal %r, got %r" % (home, expected, report)
    assert (report.backing_fs, report.supports_d_type, report.initialized) == ("extfs", False, False), "%s: got %r" % (home, report)
    assert not os.path.lexists(home), "%s: check_support must not create the home" % home
    _assert_unchanged(testdir, before)


def test_check_support_only_warns_for_initialized_home_without_d_type(loopfs):
    home = os.path.join(loopfs("ext4-nodtype"), "overlay")
    os.mkdir(home)
    os.mkdir(os.path.join(home, "layer"))
    report = probe.check_support(home)
    message = probe.d_type_message("extfs")
    assert report.supported is True, "%s: expected supported with a warning, got %r" % (home, report)
    assert message in report.warnings, "%s: expected the d_type warning in %r" % (home, report.warnings)
    assert (report.supports_d_type, report.initialized, report.testdir) == (False, True, home), "%s: got %r" % (home, report)
    _assert_unchanged(home, ["layer"])


def test_check_support_on_missing_home_probes_parent_and_leaves_it_missing(loopfs):
    testdir = loopfs("tmpfs")
    before = sorted(os.listdir(testdir))
    home = os.path.join(testdir, "overlay")
    report = probe.check_support(home)
    assert report.supported is True and report.reason is None, "%s: expected supported, got %r" % (home, report)
    assert (report.testdir, report.backing_fs, report.test_mount, report.supports_d_type) == (testdir, "tmpfs", True, True), "%s: got %r" % (home, report)
    assert not os.path.lexists(home), "%s: check_support must not create the home" % home
    _assert_unchanged(testdir, before)


def test_check_support_reports_missing_overlay_in_docker_words(scratch):
    fake = os.path.join(scratch, "filesystems")
    with open(fake, "w", encoding="utf-8") as handle:
        handle.write("nodev\tsysfs\nnodev\ttmpfs\n\text4\n")
    report = probe.check_support(scratch, proc_filesystems=fake, modprobe_first=False)
    expected = "'overlay' not found as a supported filesystem on this host. Please ensure kernel is new enough and has overlay support loaded."
    assert report.supported is False and report.reason.startswith(expected), "%s: expected %r, got %r" % (fake, expected, report)


def test_check_support_without_modprobe_says_the_module_was_not_loaded(scratch):
    fake = os.path.join(scratch, "filesystems")
    with open(fake, "w", encoding="utf-8") as handle:
        handle.write("nodev\ttmpfs\n")
    report = probe.check_support(scratch, proc_filesystems=fake, modprobe_first=False)
    assert report.supported is False and "check mode loads no kernel module" in report.reason, report
    assert isinstance(report.supports_d_type, bool), report


def test_check_support_on_a_home_that_is_a_file_reports_why(scratch):
    home = os.path.join(scratch, "home")
    with open(home, "wb") as handle:
        handle.write(b"not a dir")
    report = probe.check_support(home, test_mount=False)
    expected = "home %s is not a directory: point home at a directory (or a path that does not exist yet)" % home
    assert (report.supported, report.reason, report.testdir) == (False, expected, scratch), report
    assert isinstance(report.supports_d_type, bool) and report.initialized is False, report
    with open(home, "rb") as handle:
        assert handle.read() == b"not a dir"


def test_check_support_reports_unreadable_proc_filesystems(scratch):
    missing = os.path.join(scratch, "no-filesystems")
    report = probe.check_support(scratch, proc_filesystems=missing, modprobe_first=False)
    expected = "open %s: no such file or directory" % missing
    assert (report.supported, report.reason) == (False, expected), "%s: expected %r, got %r" % (missing, expected, report)


def _read_only_tmpfs(path, with_file):
    os.mkdir(path)
    kernel.mount("tmpfs", path, "tmpfs", 0, "size=4m")
    if with_file:
        with open(os.path.join(path, "file"), "wb"):
            pass
    kernel.mount("tmpfs", path, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=4m")
    return path


def test_check_support_fails_when_the_test_mount_cannot_run(scratch):
    readonly = _read_only_tmpfs(os.path.join(scratch, "ro"), with_file=True)
    report = probe.check_support(os.path.join(readonly, "overlay"))
    found = (report.supported, report.test_mount, report.supports_d_type)
    assert found == (False, False, True), "%s: expected a failed test mount, got %r" % (readonly, report)
    expected = "mkdir %s/check-overlayfs-support: read-only file system" % readonly
    assert report.reason == report.test_mount_error == expected, "%s: expected %r, got %r" % (readonly, expected, report)


def test_check_support_reports_d_type_probe_error_on_empty_read_only_dir(scratch):
    readonly = _read_only_tmpfs(os.path.join(scratch, "ro"), with_file=False)
    report = probe.check_support(os.path.join(readonly, "overlay"))
    prefix, suffix = "open %s/fsutils-dummy" % readonly, ": read-only file system"
    assert report.supported is False and report.reason.startswith(prefix) and report.reason.endswith(suffix), "%s: expected %r...%r, got %r" % (
        readonly, prefix, suffix, report)
    assert (report.supports_d_type, report.test_mount) == (False, None), "%s: got %r" % (readonly, report)


def test_check_support_skips_test_mount_when_asked(loopfs):
    testdir = loopfs("tmpfs")
    report = probe.check_support(testdir, test_mount=False)
    assert (report.supported, report.test_mount, report.test_mount_error) == (True, None, None), "%s: got %r" % (testdir, report)


def test_check_support_on_a_home_whose_ancestors_are_missing_probes_the_nearest_existing_one(loopfs):
    mountpoint = loopfs("tmpfs", size_mb=16)
    home = os.path.join(mountpoint, "var", "lib", "graphdriver", "overlay")
    report = probe.check_support(home)
    assert report.supported, "expected support on tmpfs, got reason %r" % report.reason
    assert report.testdir == mountpoint, "testdir: expected %s, got %s" % (mountpoint, report.testdir)
    assert os.listdir(mountpoint) == [], "the probe left %r in %s" % (os.listdir(mountpoint), mountpoint)


@pytest.mark.parametrize("layout", ["empty home", "home with state dir"])
def test_check_support_leaves_the_homes_mtime_and_entries_as_they_were(loopfs, layout):
    home = os.path.join(loopfs("ext4", size_mb=64), "overlay")
    os.mkdir(home)
    if layout == "home with state dir":
        os.mkdir(os.path.join(home, ".graphdriver"))
        os.utime(os.path.join(home, ".graphdriver"), ns=(1_000_000_000, 2_000_000_000))
    os.utime(home, ns=(1_000_000_000, 2_000_000_000))
    before = sorted(os.listdir(home))
    report = probe.check_support(home)
    after = os.stat(home)
    assert report.supported, report.reason
    assert report.test_mount is True
    # atime moves with any read of the dir (relatime); mtime only with a write.
    assert after.st_mtime_ns == 2_000_000_000, "%s: mtime changed to %d" % (home, after.st_mtime_ns)
    assert sorted(os.listdir(home)) == before, "%s: entries changed from %r to %r" % (home, before, sorted(os.listdir(home)))
    state_dir = os.path.join(home, ".graphdriver")
    if os.path.isdir(state_dir):
        assert os.listdir(state_dir) == [], "%s: the probe left %r" % (state_dir, os.listdir(state_dir))
        assert os.stat(state_dir).st_mtime_ns == 2_000_000_000, "%s: mtime changed" % state_dir
