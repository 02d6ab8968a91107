# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Check mode is the plan: for every module and state, a check-mode run changes nothing on disk
or in the kernel, and the real run from the same state reports the same ``changed`` and the
same ``modifications`` (or fails with the same message)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
import tarfile

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, kernel, systemd
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.layerplan import LayerTask
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.mountplan import MountTask
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.pruneplan import PruneTask
from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay.test_systemd import FAKE_SYSTEMCTL


def _tar(path: str, files: dict) -> str:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = 0o644, 1700000000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


class World:
    """A home with tars beside it, and the steps that bring it to a case's starting state."""

    def __init__(self, scratch: str) -> None:
        self.scratch = scratch
        # A unit dir, a recording systemctl and a /run/systemd/system of the scratch dir: this
        # host's init is not systemd; the molecule vm scenario runs the real one.
        self.unit_dir = os.path.join(scratch, "system")
        self.run_dir = os.path.join(scratch, "run-systemd-system")
        os.mkdir(self.run_dir)
        script = os.path.join(scratch, "systemctl.py")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(FAKE_SYSTEMCTL)
        units = systemd.UnitFiles(self.unit_dir, systemctl=(sys.executable, script, self.unit_dir, os.path.join(scratch, "systemctl.log")))
        self.driver = driver_mod.Driver(os.path.join(scratch, "overlay"), units=units, systemd_run_dir=self.run_dir)
        self.files = os.path.join(scratch, "files")
        os.mkdir(self.files)
        self.base_tar = _tar(os.path.join(self.files, "base.tar"), {"etc": None, "etc/motd": b"base\n", "bin": None, "bin/sh": b"sh"})
        self.app_tar = _tar(os.path.join(self.files, "app.tar"), {"etc/motd": b"app\n", "opt": None, "opt/app": b"run"})

    def base(self) -> None:
        self.driver.create("base", None, None, self.base_tar)

    def app(self) -> None:
        self.base()
        self.driver.create("app", "base", None, self.app_tar)

    def c1(self) -> None:
        self.app()
        self.driver.create("c1", "app")
        with open(os.path.join(self.driver.dir("c1"), "upper", "new"), "wb") as handle:
            handle.write(b"new\n")

    def c1_held(self, *holders) -> None:
        self.c1()
        for holder in holders:
            self.driver.mount("c1", holder)

    def c1_persisted(self, *holders) -> None:
        self.c1_held(*holders)
        self.driver.persisted.install_unit("c1")

    def c1_drifted(self, *holders) -> None:
        """c1 held by ``holders`` and mounted by hand with another upperdir and workdir."""
        self.c1_held(*holders)
        merged = self.driver.layout.merged("c1")
        kernel.recursive_unmount(merged)
        other = os.path.join(self.files, "other")
        for name in ("upper", "work"):
            os.makedirs(os.path.join(other, name))
        os.makedirs(merged, exist_ok=True)
        kernel.mount("overlay", merged, "overlay", 0, kernel.overlay_mount_data(
            self.driver.layout.root("app"), os.path.join(other, "upper"), os.path.join(other, "work")))

    def path(self, name: str) -> str:
        return os.path.join(self.files, name)


def _no_systemd(world: World) -> None:
    world.c1()
    os.rmdir(world.run_dir)


def _stale_unit(world: World) -> None:
    world.c1_persisted("web")
    name = world.driver.persisted.unit_name("c1")
    with open(os.path.join(world.unit_dir, name), "a", encoding="utf-8") as handle:
        handle.write("# edited by hand\n")


def snapshot(root: str) -> dict:
    """Every entry below ``root`` with its type, mode, owner, size, times, content digest, and the mounts below it."""
    found = {}
    for directory, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(directory, d))]
        for name in [directory] + [os.path.join(directory, n) for n in dirs + names]:
            st = os.lstat(name)
            digest = None
            if stat.S_ISREG(st.st_mode):
                with open(name, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            found[os.path.relpath(name, root)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ino, digest)
    mounts = sorted((m.mount_point, m.fstype) for m in kernel.mounts_at_or_below(kernel.read_mountinfo(), root))
    return {"tree": found, "mounts": mounts}


def differences(before: dict, after: dict) -> list:
    keys = set(before["tree"]) | set(after["tree"])
    changed = sorted(k for k in keys if before["tree"].get(k) != after["tree"].get(k))
    return changed + ([("mounts", before["mounts"], after["mounts"])] if before["mounts"] != after["mounts"] else [])


def _staging_leftover(world: World, layer_id: str) -> None:
    world.driver.init()
    os.mkdir(os.path.join(world.driver.store.new_staging(layer_id), "root"))


def _pending(world: World) -> None:
    world.base()
    world.driver.store.mark_pending("base")


def _tmproot_leftover(world: World) -> None:
    world.base()
    os.mkdir(os.path.join(world.driver.dir("base"), "tmproot4242"))


def _held_not_mounted(world: World) -> None:
    world.c1()
    world.driver.store.set_holders("c1", ["web"])


def _foreign(world: World) -> None:
    world.driver.init()
    os.makedirs(os.path.join(world.driver.home, "volumes", "data"))


def _exported_before(world: World) -> None:
    world.app()
    world.driver.export("app", "base", world.path("app-diff.tar"))


def _export_dest_differs(world: World) -> None:
    world.app()
    with open(world.path("app-diff.tar"), "wb") as handle:
        handle.write(b"stale")


# (name, module, setup, params (callable on the world), expected ops, or an expected message fragment)
CASES = [
    ("present-missing-base", "layer", None, lambda w: {"id": "base", "diff": w.base_tar}, ["create"]),
    ("present-missing-base-no-diff", "layer", None, lambda w: {"id": "base"}, ["create"]),
    ("present-image-on-image-parent", "layer", World.base, lambda w: {"id": "app", "parent": "base", "diff": w.app_tar}, ["create"]),
    ("present-container-on-image-parent", "layer", World.app, lambda w: {"id": "c2", "parent": "app"}, ["create"]),
    ("present-container-on-container-parent", "layer", World.c1, lambda w: {"id": "c2", "parent": "c1"}, ["create"]),
    ("present-existing-same", "layer", World.base, lambda w: {"id": "base", "diff": w.base_tar}, []),
    ("present-existing-no-options", "layer", World.app, lambda w: {"id": "app"}, []),
    ("present-existing-same-parent", "layer", World.app, lambda w: {"id": "app", "parent": "base", "diff": w.app_tar}, []),
    ("present-existing-container-same", "layer", World.c1, lambda w: {"id": "c1", "parent": "app"}, []),
    ("present-different-diff", "layer", World.base, lambda w: {"id": "base", "diff": w.app_tar}, "layer base exists but differs: its diff digest is"),
    ("present-different-parent", "layer", World.c1, lambda w: {"id": "c1", "parent": "base"}, "layer c1 exists but differs: its parent is app, not base"),
    ("present-different-force", "layer", World.base, lambda w: {"id": "base", "diff": w.app_tar, "force": True}, ["remove", "create"]),
    ("present-different-parent-force", "layer", World.c1, lambda w: {"id": "c1", "parent": "base", "force": True}, ["remove", "create"]),
    ("present-missing-parent", "layer", None, lambda w: {"id": "x", "parent": "nope"}, "parent layer nope does not exist"),
    ("present-missing-diff-file", "layer", None, lambda w: {"id": "x", "diff": w.path("missing.tar")}, "missing.tar"),
    ("present-incomplete-missing", "layer", lambda w: _staging_leftover(w, "base"), lambda w: {"id": "base", "diff": w.base_tar},
     ["clear_leftovers", "create"]),
    ("present-incomplete-pending", "layer", _pending, lambda w: {"id": "base", "diff": w.base_tar}, ["clear_leftovers", "create"]),
    ("present-incomplete-tmproot-same", "layer", _tmproot_leftover, lambda w: {"id": "base", "diff": w.base_tar}, ["clear_leftovers"]),
    ("absent-missing", "layer", None, lambda w: {"id": "base", "state": "absent"}, []),
    ("absent-missing-home-exists", "layer", World.base, lambda w: {"id": "other", "state": "absent"}, []),
    ("absent-incomplete-missing", "layer", lambda w: _staging_leftover(w, "x"), lambda w: {"id": "x", "state": "absent"}, ["clear_leftovers"]),
    ("absent-incomplete-pending", "layer", _pending, lambda w: {"id": "base", "state": "absent"}, ["clear_leftovers"]),
    ("absent-image", "layer", World.app, lambda w: {"id": "app", "state": "absent"}, ["remove"]),
    ("absent-container", "layer", World.c1, lambda w: {"id": "c1", "state": "absent"}, ["remove"]),
    ("absent-with-children", "layer", World.c1, lambda w: {"id": "app", "state": "absent"}, "layer app has dependent layers: c1"),
    ("absent-with-children-force", "layer", World.c1, lambda w: {"id": "app", "state": "absent", "force": True}, ["remove"]),
    ("absent-mounted", "layer", lambda w: w.c1_held("web", "backup"), lambda w: {"id": "c1", "state": "absent"},
     "layer c1 is mounted (holders: backup, web)"),
    ("absent-mounted-force", "layer", lambda w: w.c1_held("web"), lambda w: {"id": "c1", "state": "absent", "force": True}, ["remove"]),
    ("absent-recursive", "layer", World.c1, lambda w: {"id": "base", "state": "absent", "recursive": True}, ["remove"] * 3),
    ("absent-recursive-leaf", "layer", World.c1, lambda w: {"id": "c1", "state": "absent", "recursive": True}, ["remove"]),
    ("absent-recursive-mounted", "layer", lambda w: w.c1_held("web"), lambda w: {"id": "base", "state": "absent", "recursive": True},
     "layer base cannot be removed recursively: c1 is mounted or held"),
    ("absent-recursive-mounted-force", "layer", lambda w: w.c1_held("web"),
     lambda w: {"id": "base", "state": "absent", "recursive": True, "force": True}, ["remove"] * 3),
    ("absent-foreign", "layer", _foreign, lambda w: {"id": "volumes", "state": "absent", "force": True}, "is not a layer"),
    ("exported-image-whole-tree", "layer", World.base, lambda w: {"id": "base", "state": "exported", "dest": w.path("base-out.tar")}, ["export"]),
    ("exported-image-on-parent", "layer", World.app, lambda w: {"id": "app", "state": "exported", "dest": w.path("app-diff.tar")}, ["export"]),
    ("exported-unchanged", "layer", _exported_before, lambda w: {"id": "app", "state": "exported", "dest": w.path("app-diff.tar")}, []),
    ("exported-dest-differs", "layer", _export_dest_differs, lambda w: {"id": "app", "state": "exported", "dest": w.path("app-diff.tar")},
     ["export"]),
    ("exported-container-on-lower", "layer", World.c1, lambda w: {"id": "c1", "state": "exported", "dest": w.path("c1.tar")}, ["export"]),
    ("exported-missing", "layer", World.base, lambda w: {"id": "nope", "state": "exported", "dest": w.path("x.tar")}, "layer nope does not exist"),
    ("exported-no-dest-dir", "layer", World.base, lambda w: {"id": "base", "state": "exported", "dest": w.path("no/x.tar")},
     "the directory"),
    ("mount-fresh", "mount", World.c1, lambda w: {"id": "c1", "holder": "web"}, ["add_holder", "mount"]),
    ("mount-same-holder", "mount", lambda w: w.c1_held("web"), lambda w: {"id": "c1", "holder": "web"}, []),
    ("mount-second-holder", "mount", lambda w: w.c1_held("web"), lambda w: {"id": "c1", "holder": "backup"}, ["add_holder"]),
    ("mount-held-not-mounted", "mount", _held_not_mounted, lambda w: {"id": "c1", "holder": "web"}, ["mount"]),
    ("mount-image-layer", "mount", World.app, lambda w: {"id": "app"}, []),
    ("mount-missing", "mount", World.base, lambda w: {"id": "nope"}, "layer nope does not exist"),
    ("unmount-one-of-two", "mount", lambda w: w.c1_held("web", "backup"), lambda w: {"id": "c1", "holder": "web", "state": "unmounted"},
     ["drop_holders"]),
    ("unmount-last", "mount", lambda w: w.c1_held("web"), lambda w: {"id": "c1", "holder": "web", "state": "unmounted"},
     ["drop_holders", "unmount"]),
    ("unmount-force", "mount", lambda w: w.c1_held("web", "backup"), lambda w: {"id": "c1", "state": "unmounted", "force": True},
     ["drop_holders", "unmount"]),
    ("unmount-unknown-holder", "mount", lambda w: w.c1_held("web"), lambda w: {"id": "c1", "holder": "other", "state": "unmounted"}, []),
    ("unmount-held-not-mounted", "mount", _held_not_mounted, lambda w: {"id": "c1", "holder": "web", "state": "unmounted"}, ["drop_holders"]),
    ("unmount-not-held", "mount", World.c1, lambda w: {"id": "c1", "state": "unmounted"}, []),
    ("unmount-missing", "mount", World.base, lambda w: {"id": "nope", "state": "unmounted"}, []),
    ("mount-persist-fresh", "mount", World.c1, lambda w: {"id": "c1", "holder": "web", "persist": True},
     ["add_holder", "mount", "install_unit"]),
    ("mount-persist-mounted", "mount", lambda w: w.c1_held("web"), lambda w: {"id": "c1", "holder": "web", "persist": True},
     ["install_unit"]),
    ("mount-persist-installed", "mount", lambda w: w.c1_persisted("web"), lambda w: {"id": "c1", "holder": "web", "persist": True}, []),
    ("mount-persist-second-holder", "mount", lambda w: w.c1_persisted("web"), lambda w: {"id": "c1", "holder": "backup", "persist": True},
     ["add_holder"]),
    ("mount-persist-unit-edited", "mount", _stale_unit, lambda w: {"id": "c1", "holder": "web", "persist": True}, ["install_unit"]),
    ("mount-persist-no-systemd", "mount", _no_systemd, lambda w: {"id": "c1", "holder": "web", "persist": True},
     "persist: true needs systemd as init"),
    ("mount-persisted-without-persist", "mount", lambda w: w.c1_persisted("web"), lambda w: {"id": "c1", "holder": "backup"}, ["add_holder"]),
    ("unmount-persisted-one-of-two", "mount", lambda w: w.c1_persisted("web", "backup"),
     lambda w: {"id": "c1", "holder": "web", "state": "unmounted"}, ["drop_holders"]),
    ("unmount-persisted-last", "mount", lambda w: w.c1_persisted("web"), lambda w: {"id": "c1", "holder": "web", "state": "unmounted"},
     ["drop_holders", "remove_unit", "unmount"]),
    ("unmount-persisted-force", "mount", lambda w: w.c1_persisted("web", "backup"), lambda w: {"id": "c1", "state": "unmounted", "force": True},
     ["drop_holders", "remove_unit", "unmount"]),
    ("mount-drifted", "mount", lambda w: w.c1_drifted("web"), lambda w: {"id": "c1", "holder": "web"}, ["remount"]),
    ("mount-drifted-new-holder", "mount", lambda w: w.c1_drifted("web"), lambda w: {"id": "c1", "holder": "backup"}, ["add_holder", "remount"]),
    ("mount-drifted-persist", "mount", lambda w: w.c1_drifted("web"), lambda w: {"id": "c1", "holder": "web", "persist": True},
     ["remount", "install_unit"]),
]


def _stale_merged(world: World) -> None:
    world.c1()
    os.mkdir(world.driver.layout.merged("c1"))


def _orphan_holders(world: World) -> None:
    world.base()
    world.driver.store.set_holders("gone", ["web"])


def _docker_layerdb_bad(world: World) -> None:
    world.driver = driver_mod.Driver(os.path.join(world.scratch, "docker", "overlay"))
    world.base()
    layerdb = os.path.join(world.scratch, "docker", "image", "overlay", "layerdb", "sha256", "abc")
    os.makedirs(layerdb)
    with open(os.path.join(layerdb, "cache-id"), "wb") as handle:
        handle.write(b"\xff\xfe")


CASES += [
    ("prune-nothing", "prune", World.c1, lambda w: {}, []),
    ("prune-missing-home", "prune", None, lambda w: {"layers": True}, []),
    ("prune-layers", "prune", World.c1, lambda w: {"layers": True}, ["prune"] * 3),
    ("prune-layers-keep", "prune", World.c1, lambda w: {"layers": True, "keep": ["app"]}, ["prune"]),
    ("prune-layers-held", "prune", lambda w: w.c1_held("web"), lambda w: {"layers": True}, []),
    ("prune-incomplete", "prune", lambda w: _staging_leftover(w, "x"), lambda w: {}, ["clear_stale"]),
    ("prune-incomplete-not-asked", "prune", lambda w: _staging_leftover(w, "x"), lambda w: {"leftovers": False}, []),
    ("prune-stale-merged", "prune", _stale_merged, lambda w: {}, ["clear_stale"]),
    ("prune-orphan-state", "prune", _orphan_holders, lambda w: {}, ["clear_stale"]),
    ("prune-pending-and-layers", "prune", _pending, lambda w: {"layers": True}, ["prune"]),
    ("prune-foreign", "prune", _foreign, lambda w: {"layers": True}, []),
    ("prune-docker-layerdb-unreadable", "prune", _docker_layerdb_bad, lambda w: {"layers": True}, "cannot read Docker's layer store file"),
]


# Refused while carrying out the plan, not while planning: the real run reads the diff only
# when it applies it, after Init made the home.
FAILS_WHILE_EXECUTING = {"present-missing-diff-file"}


@pytest.fixture
def world(scratch):
    made = World(scratch)
    try:
        yield made
    finally:
        made.driver.cleanup()


def _run(world: World, module: str, params: dict, check_mode: bool):
    """The task's result, or the error it failed with."""
    try:
        if module == "prune":
            return PruneTask(world.driver, params).run(check_mode=check_mode)
        task = LayerTask if module == "layer" else MountTask
        return task(world.driver, params).run(check_mode=check_mode, diff_mode=True)
    except errors.OverlayError as exc:
        return exc


@pytest.mark.parametrize("name, module, setup, params, expected", CASES, ids=[case[0] for case in CASES])
def test_check_mode_reports_the_plan_the_real_run_carries_out(world, name, module, setup, params, expected):
    if setup is not None:
        setup(world)
    args = params(world)
    before = snapshot(world.scratch)
    planned = _run(world, module, args, check_mode=True)
    assert differences(before, snapshot(world.scratch)) == [], "%s: check mode changed the disk or the mounts" % name
    done = _run(world, module, args, check_mode=False)
    if isinstance(expected, str):
        assert isinstance(planned, errors.OverlayError), "%s: check mode did not fail: %r" % (name, planned)
        assert isinstance(done, errors.OverlayError), "%s: the real run did not fail: %r" % (name, done)
        assert expected in str(planned), "%s: expected %r in %r" % (name, expected, str(planned))
        assert str(done) == str(planned), "%s: the real run failed otherwise: %r vs %r" % (name, str(done), str(planned))
        if name not in FAILS_WHILE_EXECUTING:
            assert differences(before, snapshot(world.scratch)) == [], "%s: a refused run changed the disk" % name
        return
    assert not isinstance(planned, Exception), "%s: check mode failed: %s" % (name, planned)
    assert not isinstance(done, Exception), "%s: the real run failed: %s" % (name, done)
    assert [op["op"] for op in planned["modifications"]] == expected, "%s: planned %r" % (name, planned["modifications"])
    assert planned["modifications"] == done["modifications"], "%s: check %r, real %r" % (name, planned["modifications"], done["modifications"])
    assert planned["changed"] is done["changed"] is bool(expected)
    if module == "mount":
        assert planned["diff"] == done["diff"], "%s: diff planned %r, real %r" % (name, planned["diff"], done["diff"])
    for key in ("mounted", "holders", "refcount", "kind", "path", "unit", "removed", "reclaimed_bytes", "reclaimed_inodes", "kept"):
        if key in planned:
            assert planned[key] == done[key], "%s: %s planned %r, real %r" % (name, key, planned[key], done[key])
    if "layer" in planned and module == "layer" and args.get("state", "present") == "present":
        for key in ("id", "parent", "kind", "metadata", "diff_digest"):
            assert planned["layer"][key] == done["layer"][key], "%s: layer %s planned %r, real %r" % (name, key, planned["layer"][key], done["layer"][key])
    again = _run(world, module, args, check_mode=False)
    assert not isinstance(again, Exception) and again["changed"] is False and again["modifications"] == [], "%s: a second run %r" % (name, again)


def test_the_table_covers_every_operation():
    ops = {op for case in CASES if not isinstance(case[4], str) for op in case[4]}
    assert ops == {"create", "remove", "clear_leftovers", "export", "add_holder", "mount", "drop_holders", "unmount",
                   "remount", "install_unit", "remove_unit", "clear_stale", "prune"}, ops


def test_recursive_removal_goes_deepest_first_and_returns_the_ids(world):
    world.c1()
    world.driver.create("c2", "app")
    world.driver.create("other", None)
    planned = _run(world, "layer", {"id": "base", "state": "absent", "recursive": True}, check_mode=True)
    done = _run(world, "layer", {"id": "base", "state": "absent", "recursive": True}, check_mode=False)
    assert planned["removed"] == done["removed"] == ["c1", "c2", "app", "base"]
    assert [op["reason"] for op in done["modifications"]] == ["descends from base"] * 3 + [None]
    assert world.driver.list_layers() == ["other"]
