# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Driver-level behaviour: Docker's semantics (driver.md 1.x) and where we deliberately do better.

Every test runs as root on a fresh home under the ``scratch`` fixture, against the real kernel;
each driver's ``cleanup()`` runs at teardown, and the scratch fixture unmounts whatever is left.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import changes as changes_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, kernel, probe, rules
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.faults import ENV_VAR
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.statestore import STATE_DIR

from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay import graphtest_helpers as gt

REMAP = [{"container_id": 0, "host_id": 100000, "size": 65536}]


@pytest.fixture
def make_driver(scratch):
    """Factory: a Driver on ``<scratch>/overlay`` (or a given home); every one is cleaned up."""
    made = []

    def make(home=None, **kwargs):
        driver = driver_mod.Driver(home or os.path.join(scratch, "overlay"), **kwargs)
        made.append(driver)
        return driver

    try:
        yield make
    finally:
        for driver in reversed(made):
            driver.cleanup()


@pytest.fixture
def drv(make_driver):
    """An initialised driver on ``<scratch>/overlay``."""
    driver = make_driver()
    driver.init()
    return driver


def make_tar(path: str, entries) -> str:
    """Write an uncompressed PAX tar: entries are (name, kind, data_or_target, mode, uid, gid)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload, mode, uid, gid in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, 1700000000
            data = None
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            else:
                info.size = len(payload)
                data = io.BytesIO(payload)
            tar.addfile(info, data)
    return path


def tar_bytes(entries) -> bytes:
    """The bytes of a tar made by make_tar."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload, mode, uid, gid in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, 1700000000
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return out.getvalue()


def read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def perm(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def owner(path: str) -> tuple:
    info = os.lstat(path)
    return info.st_uid, info.st_gid


def mountpoints() -> list:
    return [m.mount_point for m in kernel.read_mountinfo()]


def image_with_files(driver, layer_id: str, files: dict) -> str:
    """A base image layer holding ``files`` (name -> bytes); returns its root."""
    driver.create(layer_id, None)
    root = driver.get(layer_id)
    for name, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
        gt.write_file(os.path.join(root, name), data, 0o644)
    driver.put(layer_id)
    return root


def staging_entries(driver) -> list:
    try:
        return os.listdir(os.path.join(driver.home, STATE_DIR, "staging"))
    except FileNotFoundError:
        return []


# -- Init ------------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    (["noequals"], "Unable to parse key/value option: noequals"),
    ([" Size = 10G"], "overlay: unknown option size"),
])
def test_driver_options_are_refused_like_docker(scratch, options, message):
    with pytest.raises(errors.InvalidArgument) as caught:
        driver_mod.Driver(os.path.join(scratch, "overlay"), driver_options=options)
    assert str(caught.value) == message


def test_init_refuses_a_btrfs_home_as_not_supported(make_driver, loopfs):
    mountpoint = loopfs("btrfs", 300)
    driver = make_driver(os.path.join(mountpoint, "overlay"))
    with pytest.raises(errors.NotSupported) as caught:
        driver.init()
    assert "'overlay' is not supported over btrfs" in str(caught.value)
    assert not os.path.exists(driver.home), "a refused Init created %s" % driver.home


def test_init_refuses_a_new_home_without_d_type(make_driver, loopfs):
    mountpoint = loopfs("ext4-nodtype", 64)
    driver = make_driver(os.path.join(mountpoint, "overlay"))
    with pytest.raises(errors.NotSupported) as caught:
        driver.init()
    assert probe.d_type_message("extfs") in str(caught.value)
    assert "Reformat the filesystem (or use tune2fs) with -O filetype flag" in str(caught.value)
    assert not os.path.exists(driver.home)


def test_init_keeps_an_initialized_home_without_d_type_with_a_warning(make_driver, loopfs):
    mountpoint = loopfs("ext4-nodtype", 64)
    home = os.path.join(mountpoint, "overlay")
    os.makedirs(os.path.join(home, "existing-layer", "root"))
    driver = make_driver(home)
    report = driver.init()
    assert report.supported
    assert probe.d_type_message("extfs") in driver.warnings, "warnings: %r" % driver.warnings
    assert driver.status(report) == [["Backing Filesystem", "extfs"], ["Supports d_type", "false"]]


def test_init_makes_home_0700_owned_by_root(drv):
    assert perm(drv.home) == 0o700
    assert owner(drv.home) == (0, 0)


def test_status_reports_backing_fs_and_d_type(drv):
    assert drv.status() == [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]


def test_status_on_xfs_names_xfs(make_driver, loopfs):
    driver = make_driver(os.path.join(loopfs("xfs", 300), "overlay"))
    driver.init()
    assert driver.status() == [["Backing Filesystem", "xfs"], ["Supports d_type", "true"]]


# -- Create: layout, modes, owners ---------------------------------------------------

def test_create_base_layer_layout_and_modes(drv):
    drv.create("base", None)
    layer = drv.dir("base")
    assert sorted(os.listdir(layer)) == ["root"]
    assert perm(layer) == 0o700 and owner(layer) == (0, 0)
    assert perm(os.path.join(layer, "root")) == 0o755 and owner(os.path.join(layer, "root")) == (0, 0)


def test_create_on_image_parent_layout_and_modes(drv):
    drv.create("base", None)
    os.chmod(os.path.join(drv.dir("base"), "root"), 0o751)
    drv.create("child", "base")
    layer = drv.dir("child")
    assert sorted(os.listdir(layer)) == ["lower-id", "upper", "work"]
    assert perm(layer) == 0o700
    assert perm(os.path.join(layer, "upper")) == 0o751, "upper must take the parent root's mode"
    assert perm(os.path.join(layer, "work")) == 0o700
    assert read(os.path.join(layer, "lower-id")) == b"base"
    for name in ("upper", "work"):
        assert owner(os.path.join(layer, name)) == (0, 0)


def test_create_on_container_parent_copies_upper_and_inherits_lower_id(drv):
    image_with_files(drv, "base", {"keep": b"keep", "gone": b"gone"})
    drv.create("c1", "base")
    merged = drv.get("c1")
    gt.write_file(os.path.join(merged, "new"), b"new data", 0o640)
    os.unlink(os.path.join(merged, "gone"))
    drv.put("c1")
    drv.create("c2", "c1")
    upper1 = os.path.join(drv.dir("c1"), "upper")
    upper2 = os.path.join(drv.dir("c2"), "upper")
    assert read(os.path.join(drv.dir("c2"), "lower-id")) == b"base"
    assert read(os.path.join(upper2, "new")) == b"new data"
    assert perm(os.path.join(upper2, "new")) == 0o640
    assert os.lstat(os.path.join(upper2, "new")).st_ino != os.lstat(os.path.join(upper1, "new")).st_ino, "content copy, not a hardlink"
    whiteout = os.lstat(os.path.join(upper2, "gone"))
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0, "the whiteout of c1 must be kept in c2's upper"
    merged = drv.get("c2")
    try:
        assert sorted(os.listdir(merged)) == ["keep", "new"]
    finally:
        drv.put("c2")


def test_create_refuses_storage_opt(drv):
    with pytest.raises(errors.InvalidArgument) as caught:
        drv.create("quota", None, storage_opt={"size": "50M"})
    assert str(caught.value) == "--storage-opt is not supported for overlay"
    assert not drv.exists("quota")


def test_create_with_a_missing_parent_creates_nothing_not_even_home(make_driver):
    driver = make_driver()
    with pytest.raises(errors.LayerNotFound) as caught:
        driver.create("child", "nope")
    assert str(caught.value) == "parent layer nope does not exist"
    assert not os.path.exists(driver.home)


def test_create_never_deletes_a_layer_that_existed_before(drv):
    image_with_files(drv, "layer", {"data": b"precious"})
    with pytest.raises(errors.LayerNotFound):
        drv.create("layer", "missing-parent")
    with pytest.raises(errors.LayerConflict):
        drv.create("layer", None)
    assert read(os.path.join(drv.dir("layer"), "root", "data")) == b"precious"


@pytest.mark.parametrize("bad_id", ["", "..", "a/b", ".hidden", "x" * 129, "nul\0byte"])
def test_bad_ids_are_refused_before_touching_the_disk(make_driver, bad_id):
    driver = make_driver()
    with pytest.raises(errors.InvalidArgument) as caught:
        driver.create(bad_id, None)
    assert repr(bad_id) in str(caught.value)
    assert not os.path.exists(driver.home)


# -- GetMetadata, Exists ------------------------------------------------------------

def test_get_metadata_of_both_kinds(drv):
    drv.create("img", None)
    drv.create("ctr", "img")
    assert drv.get_metadata("img") == {"RootDir": os.path.join(drv.home, "img", "root")}
    assert drv.get_metadata("ctr") == {
        "LowerDir": os.path.join(drv.home, "img", "root"),
        "UpperDir": os.path.join(drv.home, "ctr", "upper"),
        "WorkDir": os.path.join(drv.home, "ctr", "work"),
        "MergedDir": os.path.join(drv.home, "ctr", "merged"),
    }
    with pytest.raises(errors.LayerNotFound):
        drv.get_metadata("missing")


def test_exists_counts_a_half_created_dir(drv):
    os.mkdir(os.path.join(drv.home, "half"))
    assert drv.exists("half")
    assert not drv.exists("other")


# -- uid/gid maps --------------------------------------------------------------------

def test_remapped_root_owns_home_and_layer_dirs(make_driver, scratch):
    driver = make_driver(uid_maps=REMAP, gid_maps=REMAP)
    driver.init()
    assert owner(driver.home) == (100000, 100000) and perm(driver.home) == 0o700
    driver.create("img", None)
    driver.create("ctr", "img")
    for path in ("img", "img/root", "ctr", "ctr/upper", "ctr/work"):
        assert owner(os.path.join(driver.home, path)) == (100000, 100000), path
    merged = driver.get("ctr")
    try:
        assert owner(merged) == (100000, 100000)
        assert owner(os.path.join(driver.home, "ctr", "work", "work")) == (100000, 100000)
    finally:
        driver.put("ctr")
    del scratch


def test_applied_diff_is_shifted_to_host_and_export_shifts_back(make_driver, scratch):
    driver = make_driver(uid_maps=REMAP, gid_maps=REMAP)
    driver.init()
    tar = make_tar(os.path.join(scratch, "layer.tar"), [
        ("etc", "dir", None, 0o755, 0, 0),
        ("etc/owned", "file", b"user data", 0o644, 1000, 1001),
        ("etc/rootfile", "file", b"root data", 0o600, 0, 0),
    ])
    driver.create("img", None, diff_path=tar)
    root = os.path.join(driver.dir("img"), "root")
    assert owner(os.path.join(root, "etc", "owned")) == (101000, 101001)
    assert owner(os.path.join(root, "etc", "rootfile")) == (100000, 100000)
    out = io.BytesIO()
    driver.diff("img", None, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as exported:
        owners = {m.name.rstrip("/"): (m.uid, m.gid) for m in exported.getmembers()}
    assert owners == {"etc": (0, 0), "etc/owned": (1000, 1001), "etc/rootfile": (0, 0)}


# -- Remove --------------------------------------------------------------------------

def test_remove_never_unmounts_a_sibling_sharing_a_prefix(drv):
    drv.create("img", None)
    drv.create("abc", "img")
    drv.create("abc-init", "img")
    drv.mount("abc", "a")
    drv.mount("abc-init", "a")
    drv.remove("abc")
    assert not drv.exists("abc")
    assert drv.is_mounted("abc-init"), "removing abc unmounted abc-init"
    assert os.path.join(drv.home, "abc-init", "merged") in mountpoints()


def test_remove_of_a_missing_id_is_fine(drv):
    assert drv.remove("never-was") is False
    assert drv.remove("never-was", force=False) is False


def test_remove_with_holders_without_force_is_refused(drv):
    drv.create("img", None)
    drv.create("ctr", "img")
    drv.mount("ctr", "b")
    drv.mount("ctr", "a")
    with pytest.raises(errors.LayerBusy) as caught:
        drv.remove("ctr", force=False)
    assert str(caught.value) == "layer ctr is mounted (holders: a, b); release its holders first, or force the removal"
    assert drv.is_mounted("ctr")
    assert drv.remove("ctr", force=True)
    assert not drv.exists("ctr")
    assert os.path.join(drv.home, "ctr", "merged") not in mountpoints()
    assert drv.store.holders("ctr") == []


def test_remove_with_children_is_refused_and_force_removes_only_this_layer(drv):
    drv.create("img", None)
    drv.create("kid1", "img")
    drv.create("kid2", "img")
    with pytest.raises(errors.LayerBusy) as caught:
        drv.remove("img", force=False)
    assert str(caught.value) == "layer img has dependent layers: kid1, kid2; remove the dependent layers first, or force the removal"
    assert drv.remove("img", force=True)
    assert not drv.exists("img")
    assert drv.exists("kid1") and drv.exists("kid2")
    with pytest.raises(errors.LayerNotFound) as caught:
        drv.mount("kid1", "a")
    assert "img" in str(caught.value) and "lower layer" in str(caught.value)
    assert drv.store.holders("kid1") == []


# -- Get / Put and holders ------------------------------------------------------------

def test_get_on_image_returns_root_without_mounting(drv):
    drv.create("img", None)
    before = mountpoints()
    assert drv.get("img") == os.path.join(drv.home, "img", "root")
    assert mountpoints() == before
    assert drv.store.holders("img") == []
    drv.put("img")
    assert drv.mount("img", "a") == {"changed": False, "path": os.path.join(drv.home, "img", "root")}


def test_get_put_count_references(drv):
    drv.create("img", None)
    drv.create("ctr", "img")
    merged = drv.get("ctr")
    assert drv.get("ctr") == merged
    assert drv.is_mounted("ctr")
    drv.put("ctr")
    assert drv.is_mounted("ctr"), "one Get is still outstanding"
    drv.put("ctr")
    assert not drv.is_mounted("ctr")
    assert not os.path.exists(merged)
    drv.put("ctr")
    drv.put("unknown-id")


def test_holders_are_persisted_and_the_last_one_unmounts(drv):
    drv.create("img", None)
    drv.create("ctr", "img")
    assert drv.mount("ctr", "a")["changed"] is True
    assert drv.mount("ctr", "b")["changed"] is True
    assert drv.mount("ctr", "b")["changed"] is False
    other = driver_mod.Driver(drv.home)
    assert other.store.holders("ctr") == ["a", "b"], "a second driver (another process) sees the holders"
    assert other.layer_record("ctr")["refcount"] == 2
    assert drv.unmount("ctr", "a")["changed"] is True
    assert drv.is_mounted("ctr")
    assert drv.unmount("ctr", "a")["changed"] is False
    assert drv.unmount("ctr", "b")["changed"] is True
    assert not drv.is_mounted("ctr")
    assert not os.path.exists(os.path.join(drv.dir("ctr"), "merged"))
    assert drv.store.holders("ctr") == []


def test_kernel_wins_over_stored_holders(drv):
    drv.create("img", None)
    drv.create("ctr", "img")
    merged = drv.mount("ctr", "a")["path"]
    kernel.unmount(merged, kernel.MNT_DETACH)
    record = drv.layer_record("ctr")
    assert record["mounted"] is False and record["holders"] == ["a"]
    assert drv.mount("ctr", "a")["changed"] is True
    assert drv.is_mounted("ctr")


def test_a_mount_made_by_someone_else_has_no_holders(drv):
    drv.create("img", None)
    drv.create("ctr", "img")
    meta = drv.get_metadata("ctr")
    os.mkdir(meta["MergedDir"])
    kernel.mount("overlay", meta["MergedDir"], "overlay", 0,
                 kernel.overlay_mount_data(meta["LowerDir"], meta["UpperDir"], meta["WorkDir"]))
    record = drv.layer_record("ctr")
    assert (record["mounted"], record["holders"], record["refcount"]) == (True, [], 0)
    assert drv.facts()["mounts"] == ["ctr"]


def test_mount_label_is_dropped_with_a_warning_without_selinux(drv):
    assert not rules.selinux_enabled(), "this test expects a host without SELinux"
    label = 'system_u:object_r:container_file_t:s0:c1,c2'
    assert kernel.overlay_mount_data("/l", "/u", "/w", label).endswith(',context="%s"' % label)
    drv.create("img", None)
    drv.create("ctr", "img")
    drv.mount("ctr", "a", mount_label=label)
    assert any("ignored" in w and label in w for w in drv.warnings), drv.warnings
    found = kernel.mount_at(kernel.read_mountinfo(), os.path.join(drv.dir("ctr"), "merged"))
    assert found is not None and not any(o.startswith("context=") for o in found.super_options), found


def test_mount_of_a_missing_layer_fails_and_unmount_is_a_no_op(drv):
    with pytest.raises(errors.LayerNotFound) as caught:
        drv.mount("ghost", "a")
    assert str(caught.value).startswith("layer ghost does not exist")
    assert drv.unmount("ghost", "a")["changed"] is False


# -- ApplyDiff -------------------------------------------------------------------------

def test_apply_diff_fast_path_on_an_image_parent(drv):
    image_with_files(drv, "base", {"shared": b"parent data", "kept": b"kept data"})
    base_root = os.path.join(drv.dir("base"), "root")
    drv.create("child", "base")
    applied = drv.apply_diff("child", "base", io.BytesIO(tar_bytes([
        ("shared", "file", b"child data", 0o644, 0, 0),
        ("added", "file", b"added", 0o644, 0, 0),
    ])))
    assert applied == len(b"child data") + len(b"added")
    assert sorted(os.listdir(drv.dir("child"))) == ["root"], "only root/ remains after the fast path"
    child_root = os.path.join(drv.dir("child"), "root")
    assert os.lstat(os.path.join(child_root, "kept")).st_ino == os.lstat(os.path.join(base_root, "kept")).st_ino
    assert read(os.path.join(child_root, "shared")) == b"child data"
    assert read(os.path.join(base_root, "shared")) == b"parent data", "the parent's inode was changed"
    assert drv.layer_record("child")["kind"] == "image"
    assert drv.get("child") == child_root


def test_create_with_diff_on_an_image_parent_takes_the_fast_path(drv, scratch):
    image_with_files(drv, "base", {"kept": b"kept data"})
    tar = make_tar(os.path.join(scratch, "l.tar"), [("added", "file", b"xyz", 0o644, 0, 0)])
    result = drv.create("child", "base", diff_path=tar)
    assert result["applied_size"] == 3
    assert sorted(os.listdir(drv.dir("child"))) == ["root"]
    root = os.path.join(drv.dir("child"), "root")
    assert os.lstat(os.path.join(root, "kept")).st_nlink == 2
    assert read(os.path.join(root, "added")) == b"xyz"


def test_apply_diff_on_a_base_layer_applies_into_root(drv):
    drv.create("base", None)
    applied = drv.apply_diff("base", None, io.BytesIO(tar_bytes([
        ("d", "dir", None, 0o755, 0, 0), ("d/f", "file", b"12345", 0o600, 0, 0)])))
    assert applied == 5
    assert read(os.path.join(drv.dir("base"), "root", "d", "f")) == b"12345"
    assert perm(os.path.join(drv.dir("base"), "root", "d", "f")) == 0o600


def test_apply_diff_on_a_container_parent_goes_through_merged(drv):
    image_with_files(drv, "base", {"gone": b"bye", "stay": b"hi"})
    drv.create("c1", "base")
    drv.create("c2", "c1")
    applied = drv.apply_diff("c2", "c1", io.BytesIO(tar_bytes([
        (".wh.gone", "file", b"", 0o600, 0, 0), ("new", "file", b"1234", 0o644, 0, 0)])))
    assert applied == 4
    layer = drv.dir("c2")
    assert "root" not in os.listdir(layer), "a container-parent apply keeps the layer overlay-type"
    whiteout = os.lstat(os.path.join(layer, "upper", "gone"))
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert read(os.path.join(layer, "upper", "new")) == b"1234"
    assert not drv.is_mounted("c2") and drv.store.holders("c2") == []
    assert not os.path.exists(os.path.join(layer, "merged"))


def test_apply_diff_returns_the_sum_of_header_sizes(drv):
    drv.create("base", None)
    data = tar_bytes([
        ("a", "dir", None, 0o755, 0, 0), ("a/one", "file", b"x" * 10, 0o644, 0, 0),
        ("a/two", "file", b"y" * 20, 0o644, 0, 0), ("a/.wh.three", "file", b"", 0o600, 0, 0)])
    assert drv.apply_diff("base", None, io.BytesIO(data)) == 30


def test_create_with_a_bad_tar_leaves_nothing(drv, scratch):
    image_with_files(drv, "base", {"kept": b"kept"})
    good = tar_bytes([("f", "file", b"z" * 2000, 0o644, 0, 0)])
    truncated = os.path.join(scratch, "truncated.tar")
    with open(truncated, "wb") as handle:
        handle.write(good[:1024])
    for parent in (None, "base"):
        with pytest.raises(errors.ArchiveError):
            drv.create("bad", parent, diff_path=truncated)
        assert not drv.exists("bad")
        assert staging_entries(drv) == []
        assert drv.store.record("bad") is None
        assert drv.store.leftovers("bad") == []
    assert sorted(os.listdir(os.path.join(drv.dir("base"), "root"))) == ["kept"]


# -- layer records, facts, exports -------------------------------------------------

def test_layer_record_fields(drv, scratch):
    tar = make_tar(os.path.join(scratch, "base.tar"), [("f", "file", b"hello", 0o644, 0, 0)])
    drv.create("base", None, diff_path=tar)
    drv.create("ctr", "base")
    digest = "sha256:" + hashlib.sha256(read(tar)).hexdigest()
    base = drv.layer_record("base")
    assert base == {
        "id": "base", "parent": None, "kind": "image", "metadata": {"RootDir": os.path.join(drv.home, "base", "root")},
        "mounted": False, "holders": [], "refcount": 0, "diff_digest": digest, "applied_size": 5,
        "children": ["ctr"], "incomplete": False, "unit": None,
    }
    ctr = drv.layer_record("ctr", sizes=True)
    assert (ctr["kind"], ctr["parent"], ctr["diff_digest"], ctr["applied_size"]) == ("container", "base", None, None)
    assert ctr["metadata"] == drv.get_metadata("ctr")
    assert (ctr["children"], ctr["incomplete"], ctr["size"], ctr["unit"]) == ([], False, 0, None)


def test_facts_on_a_missing_home_create_nothing(make_driver, scratch):
    driver = make_driver(os.path.join(scratch, "nothing", "overlay"))
    os.mkdir(os.path.join(scratch, "nothing"))
    facts = driver.facts()
    assert not os.path.exists(driver.home)
    assert os.listdir(os.path.join(scratch, "nothing")) == []
    assert (facts["supported"], facts["initialized"], facts["layers"], facts["mounts"]) == (True, False, {}, [])
    assert facts["status"] == [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]


def test_exports_are_reproducible(drv, scratch):
    image_with_files(drv, "base", {"gone": b"old", "dir/f": b"data"})
    drv.create("ctr", "base")
    merged = drv.get("ctr")
    gt.write_file(os.path.join(merged, "dir", "new"), b"new", 0o644)
    os.unlink(os.path.join(merged, "gone"))
    drv.put("ctr")
    dest = os.path.join(scratch, "ctr.tar")
    first = drv.export("ctr", "base", dest)
    content = read(dest)
    assert first["changed"] is True
    assert [(c.path, c.kind) for c in first["changes"]] == [("/dir", "C"), ("/dir/new", "A"), ("/gone", "D")]
    time.sleep(1.1)
    second = drv.export("ctr", "base", dest)
    assert second["changed"] is False
    assert read(dest) == content
    assert second["diff_digest"] == first["diff_digest"] == "sha256:" + hashlib.sha256(content).hexdigest()
    assert [n for n in os.listdir(scratch) if n.startswith(".ctr.tar")] == []


def test_corrupt_holders_file_names_the_file_and_facts_list_the_others(drv):
    drv.create("img", None)
    drv.create("ctr", "img")
    path = os.path.join(drv.home, STATE_DIR, "holders", "ctr.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"{not json")
    with pytest.raises(errors.CorruptState) as caught:
        drv.mount("ctr", "a")
    assert path in str(caught.value)
    facts = drv.facts()
    assert "img" in facts["layers"]
    assert [(p["id"], p["code"]) for p in facts["problems"] if path in p["message"]] == [("ctr", "damaged")], facts["problems"]


def test_corrupt_lower_id_names_the_file_and_facts_list_the_others(drv):
    drv.create("img", None)
    drv.create("ctr", "img")
    path = os.path.join(drv.dir("ctr"), "lower-id")
    with open(path, "wb") as handle:
        handle.write(b"../../etc\n")
    with pytest.raises(errors.CorruptState) as caught:
        drv.get_metadata("ctr")
    assert path in str(caught.value)
    with pytest.raises(errors.CorruptState):
        drv.mount("ctr", "a")
    facts = drv.facts()
    assert "img" in facts["layers"]
    problem = facts["layers"].get("ctr", {}).get("problem") or facts["problems"].get("ctr", "")
    assert path in problem


def test_leftover_staging_makes_the_id_incomplete_and_create_cleans_it(drv):
    staging = drv.store.new_staging("late")
    with open(os.path.join(staging, "partial"), "wb") as handle:
        handle.write(b"half")
    assert drv.incomplete("late")
    assert "late" in drv.facts()["incomplete"]
    drv.create("late", None)
    assert staging_entries(drv) == []
    assert not drv.incomplete("late")
    assert drv.layer_record("late")["incomplete"] is False


def test_pending_marker_makes_the_layer_incomplete_and_the_next_operation_clears_it(drv):
    drv.create("img", None)
    image_with_files(drv, "half", {"f": b"maybe"})
    drv.store.mark_pending("half")
    assert drv.layer_record("half")["incomplete"] is True
    assert drv.facts()["incomplete"] == ["half"]
    drv.create("half", None)
    assert drv.layer_record("half")["incomplete"] is False
    assert os.listdir(os.path.join(drv.dir("half"), "root")) == []
    assert not drv.store.is_pending("half")


def test_cleanup_unmounts_everything_below_home(drv):
    drv.create("img", None)
    for name in ("c1", "c2"):
        drv.create(name, "img")
        drv.mount(name, "a")
    drv.cleanup()
    assert not [m for m in mountpoints() if m.startswith(drv.home + "/")]


# -- further checks: applies, failures and change detection ----------------------------

def test_create_with_diff_on_a_container_parent_applies_through_merged(drv, scratch):
    image_with_files(drv, "base", {"gone": b"bye", "stay": b"hi"})
    drv.create("c1", "base")
    tar = make_tar(os.path.join(scratch, "l.tar"), [(".wh.gone", "file", b"", 0o600, 0, 0), ("new", "file", b"1234", 0o644, 0, 0)])
    result = drv.create("c2", "c1", diff_path=tar)
    assert result["applied_size"] == 4
    layer = drv.dir("c2")
    assert sorted(os.listdir(layer)) == ["lower-id", "upper", "work"]
    whiteout = os.lstat(os.path.join(layer, "upper", "gone"))
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert drv.layer_record("c2")["parent"] == "c1"
    assert not [m for m in mountpoints() if m.startswith(drv.home + "/")]
    assert staging_entries(drv) == []


def test_apply_diff_fast_path_failure_leaves_the_layer_as_it_was(drv):
    image_with_files(drv, "base", {"kept": b"kept"})
    drv.create("child", "base")
    before = sorted(os.listdir(drv.dir("child")))
    truncated = tar_bytes([("f", "file", b"z" * 2000, 0o644, 0, 0)])[:1024]
    with pytest.raises(errors.ArchiveError):
        drv.apply_diff("child", "base", io.BytesIO(truncated))
    assert sorted(os.listdir(drv.dir("child"))) == before
    assert drv.layer_record("child")["incomplete"] is False, "a failed apply that changed nothing must not mark the layer incomplete"
    drv.mount("child", "a")
    assert drv.exists("child"), "the next operation removed a layer that a failed apply never touched"


def test_apply_diff_failure_on_a_base_layer_leaves_its_root_as_it_was(drv):
    image_with_files(drv, "base", {"kept": b"kept"})
    root = os.path.join(drv.dir("base"), "root")
    before = {name: os.lstat(os.path.join(root, name)).st_ino for name in os.listdir(root)}
    hostile = tar_bytes([("new", "file", b"n" * 10, 0o644, 0, 0), ("kept", "file", b"z" * 2000, 0o644, 0, 0)])[:2048]
    with pytest.raises(errors.ArchiveError):
        drv.apply_diff("base", None, io.BytesIO(hostile))
    after = {name: os.lstat(os.path.join(root, name)).st_ino for name in os.listdir(root)}
    assert after == before, "root of base changed by a failed apply: expected %r, got %r" % (before, after)
    with open(os.path.join(root, "kept"), "rb") as handle:
        assert handle.read() == b"kept"
    assert drv.layer_record("base")["incomplete"] is False, "a failed apply that changed nothing must not mark the layer incomplete"


def test_same_size_rewrite_in_the_same_second_is_a_change(drv):
    drv.create("base", None)
    drv.apply_diff("base", None, io.BytesIO(tar_bytes([("f", "file", b"AAAA", 0o644, 0, 0)])))
    drv.create("child", "base")
    drv.apply_diff("child", "base", io.BytesIO(tar_bytes([("f", "file", b"BBBB", 0o644, 0, 0)])))
    base_f = os.lstat(os.path.join(drv.dir("base"), "root", "f"))
    child_f = os.lstat(os.path.join(drv.dir("child"), "root", "f"))
    assert (base_f.st_size, base_f.st_mtime_ns) == (child_f.st_size, child_f.st_mtime_ns), "the metadata must tie"
    assert [(c.path, c.kind) for c in drv.changes("child", "base")] == [("/f", "C")]
    out = io.BytesIO()
    result = drv.diff("child", "base", out)
    assert result["size"] == 4
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as exported:
        assert [m.name for m in exported.getmembers()] == ["f"]


def test_changes_read_from_upper_match_the_merged_view(drv):
    image_with_files(drv, "base", {"a/one": b"1", "a/two": b"2", "b/three": b"3", "c": b"c", "d/e/f": b"f", "link-me": b"x"})
    os.symlink("c", os.path.join(drv.dir("base"), "root", "sym"))
    drv.create("ctr", "base")
    merged = drv.get("ctr")
    try:
        shutil.rmtree(os.path.join(merged, "a"))
        os.mkdir(os.path.join(merged, "a"))
        gt.write_file(os.path.join(merged, "a", "two"), b"2", 0o644)
        gt.write_file(os.path.join(merged, "a", "new"), b"new", 0o644)
        os.chmod(os.path.join(merged, "b", "three"), 0o600)
        os.unlink(os.path.join(merged, "sym"))
        os.symlink("d", os.path.join(merged, "sym"))
        shutil.rmtree(os.path.join(merged, "d", "e"))
        os.link(os.path.join(merged, "link-me"), os.path.join(merged, "hard"))
        reference = changes_dirs_tuples(merged, os.path.join(drv.dir("base"), "root"))
    finally:
        drv.put("ctr")
    got = [(c.path, c.kind) for c in drv.changes("ctr", "base")]
    assert got == reference


def changes_dirs_tuples(new_root, old_root):
    """The reference: Docker's ChangesDirs of the merged view against the parent root."""
    return [(c.path, c.kind) for c in changes_mod.changes_dirs(new_root, old_root)]


def test_export_of_a_whole_container_tree_is_reproducible(drv, scratch):
    image_with_files(drv, "base", {"f": b"data", "d/g": b"more"})
    drv.create("ctr", "base")
    merged = drv.get("ctr")
    gt.write_file(os.path.join(merged, "d", "h"), b"new", 0o600)
    drv.put("ctr")
    dest = os.path.join(scratch, "whole.tar")
    first = drv.export("ctr", None, dest)
    content = read(dest)
    time.sleep(1.1)
    second = drv.export("ctr", None, dest)
    assert (first["changed"], second["changed"]) == (True, False)
    assert read(dest) == content
    with tarfile.open(dest) as exported:
        assert sorted(m.name.rstrip("/") for m in exported.getmembers()) == ["d", "d/g", "d/h", "f"]


def test_remapped_container_layer_exports_container_ids(make_driver, scratch):
    driver = make_driver(uid_maps=REMAP, gid_maps=REMAP)
    driver.init()
    tar = make_tar(os.path.join(scratch, "base.tar"), [("gone", "file", b"x", 0o644, 0, 0), ("keep", "file", b"y", 0o644, 0, 0)])
    driver.create("base", None, diff_path=tar)
    driver.create("ctr", "base")
    merged = driver.get("ctr")
    try:
        gt.write_file(os.path.join(merged, "mine"), b"z", 0o644)
        os.chown(os.path.join(merged, "mine"), 101000, 101000)
        os.unlink(os.path.join(merged, "gone"))
    finally:
        driver.put("ctr")
    out = io.BytesIO()
    driver.diff("ctr", "base", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as exported:
        owners = {m.name: (m.uid, m.gid) for m in exported.getmembers()}
    assert owners == {".wh.gone": (0, 0), "mine": (1000, 1000)}


CREATE_SCRIPT = """
import sys
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.driver import Driver
Driver(sys.argv[1]).create(sys.argv[2], sys.argv[3] or None, diff_path=sys.argv[4])
"""


def _killed_create(home: str, layer_id: str, parent, diff_path: str, point: str) -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env[ENV_VAR] = point
    proc = subprocess.run([sys.executable, "-c", CREATE_SCRIPT, home, layer_id, parent or "", diff_path],
                          env=env, capture_output=True, check=False, timeout=120)
    return proc.returncode


@pytest.mark.parametrize("parent, point", [
    (None, "apply.entry:2"),
    ("base", "copy.entry:2"),
    ("base", "apply.entry:2"),
    ("c1", "copy.entry:2"),
    ("c1", "apply.entry:2"),
    ("c1", "create.commit:1"),
])
def test_a_killed_create_leaves_an_incomplete_id_that_the_next_create_completes(drv, scratch, parent, point):
    image_with_files(drv, "base", {"kept": b"kept", "gone": b"gone"})
    drv.create("c1", "base")
    with gt.mounted(drv, "c1") as merged:
        os.makedirs(os.path.join(merged, "c1dir"))
        gt.write_file(os.path.join(merged, "c1dir", "c1file"), b"c1", 0o644)
    tar = make_tar(os.path.join(scratch, "l.tar"), [
        ("d", "dir", None, 0o755, 0, 0), ("d/one", "file", b"1", 0o644, 0, 0), ("d/two", "file", b"22", 0o644, 0, 0),
        (".wh.gone", "file", b"", 0o600, 0, 0)])
    assert _killed_create(drv.home, "new", parent, tar, point) == -signal.SIGKILL
    assert not drv.exists("new")
    assert "new" in drv.facts()["incomplete"]
    result = drv.create("new", parent, diff_path=tar)
    assert result["applied_size"] == 3
    assert staging_entries(drv) == [] and drv.store.leftovers("new") == []
    assert not [m for m in mountpoints() if m.startswith(os.path.join(drv.home, STATE_DIR))], "a mount was left in staging"
    assert drv.layer_record("new")["incomplete"] is False
    expected = {None: ["d"], "base": ["d", "kept"], "c1": ["c1dir", "d", "kept"]}[parent]
    with gt.mounted(drv, "new") as root:
        assert sorted(os.listdir(root)) == expected


CALL_SCRIPT = """
import json, sys
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.driver import Driver
getattr(Driver(sys.argv[1]), sys.argv[2])(*json.loads(sys.argv[3]))
"""


def _killed_call(home: str, method: str, args: list, point: str) -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env[ENV_VAR] = point
    proc = subprocess.run([sys.executable, "-c", CALL_SCRIPT, home, method, json.dumps(args)],
                          env=env, capture_output=True, check=False, timeout=120)
    return proc.returncode


@pytest.mark.parametrize("point", ["remove.rename:1", "remove.delete:1"])
def test_a_killed_remove_is_finished_by_the_next_operation(drv, point):
    image_with_files(drv, "base", {"f": b"data"})
    drv.create("ctr", "base")
    drv.mount("ctr", "a")
    assert _killed_call(drv.home, "remove", ["ctr", True], point) == -signal.SIGKILL
    assert not drv.is_mounted("ctr")
    facts = drv.facts()
    assert "ctr" in facts["incomplete"] or "ctr" in facts["layers"]
    drv.remove("ctr")
    assert not drv.exists("ctr")
    assert drv.store.leftovers("ctr") == [] and drv.store.holders("ctr") == [] and drv.store.record("ctr") is None
    assert "ctr" not in drv.facts()["incomplete"]


def test_a_kill_before_mounting_leaves_a_holder_that_the_next_mount_repairs(drv):
    drv.create("base", None)
    drv.create("ctr", "base")
    assert _killed_call(drv.home, "mount", ["ctr", "a"], "mount.before:1") == -signal.SIGKILL
    record = drv.layer_record("ctr")
    assert (record["mounted"], record["holders"]) == (False, ["a"])
    assert drv.mount("ctr", "a")["changed"] is True
    assert drv.is_mounted("ctr")


def test_a_kill_after_unmounting_leaves_a_holder_without_a_mount(drv):
    drv.create("base", None)
    drv.create("ctr", "base")
    drv.mount("ctr", "a")
    assert _killed_call(drv.home, "unmount", ["ctr", "a"], "unmount.after:1") == -signal.SIGKILL
    record = drv.layer_record("ctr")
    assert (record["mounted"], record["holders"]) == (False, ["a"])
    assert drv.unmount("ctr", "a")["changed"] is True
    assert drv.store.holders("ctr") == []
    assert not os.path.exists(os.path.join(drv.dir("ctr"), "merged"))


def test_corrupt_layer_record_names_the_file_and_facts_list_the_others(drv):
    drv.create("img", None)
    drv.create("ctr", "img")
    path = os.path.join(drv.home, STATE_DIR, "layers", "ctr.json")
    with open(path, "wb") as handle:
        handle.write(b"\xff\xfe garbage")
    with pytest.raises(errors.CorruptState) as caught:
        drv.layer_record("ctr")
    assert path in str(caught.value)
    facts = drv.facts()
    assert "img" in facts["layers"]
    assert [(p["id"], p["code"]) for p in facts["problems"] if path in p["message"]] == [("ctr", "damaged")], facts["problems"]


def test_a_corrupt_record_of_one_layer_does_not_break_the_others(drv):
    drv.create("img", None)
    drv.create("ctr", "img")
    drv.create("other", None)
    with open(os.path.join(drv.home, STATE_DIR, "layers", "ctr.json"), "wb") as handle:
        handle.write(b"{")
    assert drv.layer_record("img")["children"] == ["ctr"], "ctr still depends on img through its lower-id"
    assert drv.layer_record("other")["children"] == []
    with pytest.raises(errors.LayerBusy):
        drv.remove("img", force=False)
    assert drv.remove("other", force=False)


def _snapshot(top: str) -> dict:
    """Every path below ``top`` with its type, mode and mtime."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            seen[os.path.relpath(path, top)] = (st.st_mode, st.st_mtime_ns)
    return seen


def test_facts_with_sizes_on_a_docker_made_home_write_nothing_and_mount_nothing(make_driver, scratch):
    home = os.path.join(scratch, "docker", "overlay")
    os.makedirs(os.path.join(home, "img1", "root", "etc"))
    with open(os.path.join(home, "img1", "root", "etc", "os"), "w", encoding="ascii") as handle:
        handle.write("base")
    for sub in ("upper/etc", "work"):
        os.makedirs(os.path.join(home, "ctr1", sub))
    with open(os.path.join(home, "ctr1", "lower-id"), "w", encoding="ascii") as handle:
        handle.write("img1")
    with open(os.path.join(home, "ctr1", "upper", "etc", "new"), "w", encoding="ascii") as handle:
        handle.write("ab")
    before = _snapshot(home)
    facts = make_driver(home).facts(sizes=True)
    assert _snapshot(home) == before, "facts changed %s" % home
    assert facts["mounts"] == [], "facts mounted %r" % facts["mounts"]
    assert facts["layers"]["img1"]["size"] == 4, facts["layers"]["img1"]
    assert facts["layers"]["ctr1"]["size"] == 2, "a Docker container layer is measured against its lower: %r" % facts["layers"]["ctr1"]
