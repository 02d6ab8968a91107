# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""overlay_prune on real stores: the in-use rules, reclaimed space once per inode, leftovers, the lock race."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import kernel, operations, pruneplan

from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay import test_faults as tf

BASE = [("etc", "dir", None), ("etc/os-release", "file", b"ID=test\n" * 512), ("bin", "dir", None), ("bin/sh", "file", b"#" * 8192)]
APP = [("opt", "dir", None), ("opt/app", "file", b"A" * 20000)]


@pytest.fixture
def drv(scratch):
    driver = driver_mod.Driver(os.path.join(scratch, "overlay"))
    driver.init()
    try:
        yield driver
    finally:
        driver.cleanup()


@pytest.fixture
def chain(drv, scratch):
    """base <- app (image, hardlinks to base's files) <- c1 (container), and an unrelated ``lone``."""
    drv.create("base", None, diff_path=tf.write_tar(os.path.join(scratch, "base.tar"), BASE))
    drv.create("app", "base", diff_path=tf.write_tar(os.path.join(scratch, "app.tar"), APP))
    drv.create("c1", "app")
    drv.create("lone", None, diff_path=tf.write_tar(os.path.join(scratch, "lone.tar"), APP))
    return drv


def prune(driver, check_mode=False, **params):
    return pruneplan.PruneTask(driver, params).run(check_mode=check_mode)


def removed_ids(result) -> list:
    return [(entry["id"], entry["reason"]) for entry in result["removed"]]


def test_layers_true_removes_what_nothing_uses_descendants_first(chain):
    result = prune(chain, layers=True, keep=["lone"])
    assert removed_ids(result) == [("c1", "unused"), ("app", "unused"), ("base", "unused")]
    assert chain.list_layers() == ["lone"] and result["kept"] == ["lone"]
    assert result["reclaimed_bytes"] == sum(e["bytes"] for e in result["removed"]) > 20000
    # Every inode of the three layers, each once: app's hardlinks to base count where base goes.
    assert result["reclaimed_inodes"] == sum(e["inodes"] for e in result["removed"])


def test_keep_holders_and_ancestors_are_in_use(chain):
    chain.mount("c1", "web")
    result = prune(chain, layers=True)
    assert removed_ids(result) == [("lone", "unused")]
    assert result["kept"] == ["app", "base", "c1"]
    assert chain.list_layers() == ["app", "base", "c1"]
    chain.unmount("c1", "web")
    result = prune(chain, layers=True, keep=["app"])
    assert removed_ids(result) == [("c1", "unused")] and result["kept"] == ["app", "base"]


def test_a_hardlink_shared_with_a_kept_layer_reclaims_nothing(chain):
    sh = os.path.join(chain.layout.root("base"), "bin", "sh")
    assert os.stat(sh).st_nlink == 2, "app's root shares base's files by hardlink"
    result = prune(chain, layers=True, keep=["base", "lone"])
    app = {e["id"]: e for e in result["removed"]}["app"]
    assert not os.path.exists(chain.dir("app"))
    # app held: its dir, root/, etc/, bin/, opt/, opt/app (new), plus etc/os-release and bin/sh shared with base.
    assert app["inodes"] == 6, app
    assert os.stat(sh).st_nlink == 1 and open(sh, "rb").read() == b"#" * 8192


def test_check_mode_lists_the_same_removals_and_removes_nothing_then_a_second_run_changes_nothing(chain):
    planned = prune(chain, check_mode=True, layers=True)
    assert chain.list_layers() == ["app", "base", "c1", "lone"]
    done = prune(chain, layers=True)
    assert planned["removed"] == done["removed"] and planned["modifications"] == done["modifications"]
    assert planned["reclaimed_bytes"] == done["reclaimed_bytes"] and planned["changed"] is done["changed"] is True
    again = prune(chain, layers=True)
    assert again["changed"] is False and again["removed"] == [] and again["modifications"] == []


def test_without_layers_no_layer_is_removed(chain):
    result = prune(chain)
    assert result["changed"] is False and chain.list_layers() == ["app", "base", "c1", "lone"]


def test_leftovers_clears_every_stale_kind_and_facts_are_clean_after(chain):
    killed = tf.run_worker(chain.home, "create", {"id": "killed", "parent": "base"}, kill_at="create.commit:1")
    assert killed.returncode == -9, killed.stderr
    chain.store.set_holders("gone", ["web"])
    chain.mount("c1", "web")
    subprocess.run(["umount", "-l", chain.layout.merged("c1")], check=True)
    chain.store.set_holders("c1", [])
    codes = {(p["id"], p["code"]) for p in chain.facts()["problems"]}
    assert codes == {("killed", "incomplete"), ("gone", "orphan_state"), ("c1", "stale_merged")}
    result = prune(chain)
    assert removed_ids(result) == [("c1", "stale_merged"), ("gone", "orphan_state"), ("killed", "incomplete")]
    assert all(e["inodes"] >= 1 for e in result["removed"]), result
    assert chain.facts()["problems"] == []
    assert chain.list_layers() == ["app", "base", "c1", "lone"]


def test_a_layer_that_gains_a_holder_after_planning_is_kept(chain):
    task = pruneplan.PruneTask(chain, {"layers": True, "keep": ["lone"]})
    plan = task.plan(pruneplan.load_prune(chain, task.keep))
    assert [op.id for op in plan] == ["c1", "app", "base"]
    chain.mount("c1", "late")
    done = task.execute(plan)
    assert done == [], "c1 is held again; app and base are its ancestors"
    assert chain.list_layers() == ["app", "base", "c1", "lone"]
    assert kernel.mount_at(kernel.read_mountinfo(), chain.layout.merged("c1")) is not None


def test_the_result_of_a_run_that_lost_the_race_lists_the_plan_and_keeps_the_layers(chain):
    task = pruneplan.PruneTask(chain, {"layers": True, "keep": ["lone"]})
    planner = task.plan

    def plan_then_mount(state):
        staged = planner(state)
        chain.mount("c1", "late")
        return staged

    task.plan = plan_then_mount
    result = task.run()
    assert [m["id"] for m in result["modifications"]] == ["c1", "app", "base"] and result["changed"] is True
    assert result["removed"] == [] and result["reclaimed_bytes"] == 0
    assert result["kept"] == ["app", "base", "c1", "lone"]


def test_a_layer_that_gains_a_child_after_planning_is_kept(chain):
    task = pruneplan.PruneTask(chain, {"layers": True, "keep": ["c1"]})
    plan = task.plan(pruneplan.load_prune(chain, task.keep))
    assert plan == [operations.PruneLayer("lone")]
    chain.create("on-lone", "lone")
    assert task.execute(plan) == [] and "lone" in chain.list_layers()


def test_dockers_layer_store_names_are_in_use(scratch):
    data_root = os.path.join(scratch, "docker")
    driver = driver_mod.Driver(os.path.join(data_root, "overlay"))
    driver.init()
    try:
        for layer_id in ("img", "ctr-init", "ctr", "dangling"):
            driver.create(layer_id)
        layerdb = os.path.join(data_root, "image", "overlay", "layerdb")
        for relative, value in (("sha256/abc/cache-id", "img"), ("mounts/c0ffee/mount-id", "ctr"), ("mounts/c0ffee/init-id", "ctr-init")):
            os.makedirs(os.path.dirname(os.path.join(layerdb, relative)), exist_ok=True)
            with open(os.path.join(layerdb, relative), "w", encoding="utf-8") as handle:
                handle.write(value)
        os.makedirs(os.path.join(data_root, "overlay", "not-a-layer", "data"))
        result = prune(driver, layers=True)
        assert removed_ids(result) == [("dangling", "unused")]
        assert driver.list_layers() == ["ctr", "ctr-init", "img"]
        assert os.path.isdir(os.path.join(data_root, "overlay", "not-a-layer", "data"))
    finally:
        driver.cleanup()


CHURN_WORKERS = 8
CHURN_OPS = 150
CHURN_SECONDS = 40


def test_prune_racing_eight_processes_leaves_every_held_and_kept_layer_whole(drv, scratch):
    """Prune with layers=true in a loop while 8 processes create, mount, unmount and remove on shared ids."""
    images, containers = ["img0", "img1"], ["c%d" % i for i in range(5)]
    diff = tf.write_tar(os.path.join(scratch, "diff.tar"), BASE)
    drv.create("img0", None, diff_path=diff)
    # Layers no worker touches: prune has something to remove however the race goes; and a
    # kept container that the workers can mount from the start.
    unused = ["unused%d" % i for i in range(3)]
    for layer_id in unused:
        drv.create(layer_id, None, diff_path=diff)
    drv.create("c0", "img0")
    procs = []
    for index in range(CHURN_WORKERS):
        args = {"seed": 9100 + index, "holder": "w%d" % index, "images": images, "containers": containers,
                "diff": diff, "ops": CHURN_OPS, "seconds": CHURN_SECONDS}
        procs.append(subprocess.Popen([tf.sys.executable, tf.WORKER, drv.home, "churn", tf.json.dumps(args)], env=tf.worker_env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    prunes = removed = 0
    swept: set = set()
    while any(proc.poll() is None for proc in procs):
        result = prune(driver_mod.Driver(drv.home), layers=True, keep=["img0", "c0"])
        prunes += 1
        removed += len(result["removed"])
        swept.update(entry["id"] for entry in result["removed"])
        # The workers themselves may remove img0 and c0; prune never does.
        assert not {"img0", "c0"} & {entry["id"] for entry in result["removed"]}, result
    results = []
    for index, proc in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "Traceback" not in stderr, "worker %d exited %d:\n%s" % (index, proc.returncode, stderr)
        results.append(tf.json.loads(stdout.splitlines()[-1])["result"])
    outcomes: dict = {}
    for result in results:
        for outcome, count in result["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
    unexpected = {o: n for o, n in outcomes.items() if not o.endswith(":ok") and o.split(":")[1] not in ("LayerConflict", "LayerNotFound", "LayerBusy")}
    assert unexpected == {}, outcomes
    assert prunes > 3 and set(unused) <= swept and outcomes.get("mount:ok"), (prunes, removed, sorted(swept), outcomes)

    believed = sorted((layer_id, "w%d" % index) for index, r in enumerate(results) for layer_id in r["held"])
    persisted = sorted((layer_id, holder) for layer_id in drv.list_layers() for holder in drv.store.holders(layer_id))
    assert persisted == believed, "holders on disk %r differ from what the workers hold %r" % (persisted, believed)
    mounts = kernel.read_mountinfo()
    for layer_id, _holder in believed:
        lower = drv.lower_id(layer_id)
        assert os.path.isdir(os.path.join(drv.dir(layer_id), "upper")) and os.path.isdir(drv.layout.root(lower)), layer_id
        assert kernel.mount_at(mounts, drv.layout.merged(layer_id)) is not None, "held layer %s is not mounted" % layer_id
        assert open(os.path.join(drv.layout.merged(layer_id), "bin", "sh"), "rb").read() == b"#" * 8192
    if drv.exists("img0"):
        assert open(os.path.join(drv.layout.root("img0"), "bin", "sh"), "rb").read() == b"#" * 8192
    assert drv.facts()["problems"] == []
