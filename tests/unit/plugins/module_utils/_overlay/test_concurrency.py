# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Sixteen processes on one home at once (issue 8): no lost holders, no half layers, no tracebacks.

Each ``fault_worker.py churn`` process runs a seeded random mix of create, mount, unmount and
remove on a small shared set of image and container ids, with its own holder name, for a fixed
number of operations (bounded in time too). Refusals that concurrency makes expected
(``LayerConflict``, ``LayerNotFound``, ``LayerBusy``) are counted; anything else fails the test.
Afterwards every layer must be whole, the holders on disk must be exactly what the workers believe
they hold and match the kernel's mounts, and a final cleanup must leave nothing mounted.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, kernel
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.statestore import STATE_DIR

from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay import test_faults as tf

WORKERS = 16
OPS_PER_WORKER = 200
TIME_LIMIT_S = 40
IMAGES = ["img0", "img1"]
CONTAINERS = ["c%d" % i for i in range(6)]
EXPECTED_REFUSALS = {"LayerConflict", "LayerNotFound", "LayerBusy"}
DIFF = [("etc", "dir", None), ("etc/os-release", "file", b"ID=test\n")] + [("bin/tool%d" % i, "file", b"#" * 512) for i in range(8)]


@pytest.fixture
def home(scratch):
    driver = driver_mod.Driver(os.path.join(scratch, "overlay"))
    try:
        yield driver
    finally:
        driver.cleanup()


def whole_layer_problems(drv, layer_id: str) -> list:
    """Why a layer dir is not a whole image or container layer ([] when it is)."""
    names = set(os.listdir(drv.dir(layer_id)))
    if "root" in names:
        return [] if names == {"root"} else ["image layer %s also holds %s" % (layer_id, sorted(names - {"root"}))]
    missing = {"upper", "work", "lower-id"} - names
    if missing:
        return ["container layer %s lacks %s" % (layer_id, sorted(missing))]
    lower = drv.lower_id(layer_id)
    if lower not in IMAGES:
        return ["container layer %s names lower %r" % (layer_id, lower)]
    if not os.path.isdir(os.path.join(drv.dir(lower), "root")):
        return ["container layer %s outlived its lower %s" % (layer_id, lower)]
    return []


def test_sixteen_processes_keep_layers_and_holders_consistent(home, scratch):
    drv = home
    drv.init()
    diff = tf.write_tar(os.path.join(scratch, "diff.tar"), DIFF)
    drv.create("img0", None, diff_path=diff)
    procs = []
    for index in range(WORKERS):
        args = {"seed": 8000 + index, "holder": "w%02d" % index, "images": IMAGES, "containers": CONTAINERS,
                "diff": diff, "ops": OPS_PER_WORKER, "seconds": TIME_LIMIT_S}
        procs.append(subprocess.Popen([sys.executable, tf.WORKER, drv.home, "churn", json.dumps(args)], env=tf.worker_env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for index, proc in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=TIME_LIMIT_S + 60)
        assert proc.returncode == 0 and "Traceback" not in stderr, "worker %d exited %d:\n%s" % (index, proc.returncode, stderr)
        results.append(json.loads(stdout.splitlines()[-1])["result"])

    ops = sum(r["ops"] for r in results)
    outcomes: dict = {}
    for result in results:
        for outcome, count in result["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
    unexpected = {o: n for o, n in outcomes.items() if not o.endswith(":ok") and o.split(":")[1] not in EXPECTED_REFUSALS}
    assert unexpected == {}, "unexpected errors: %r (all outcomes: %r)" % (unexpected, outcomes)
    assert ops == WORKERS * OPS_PER_WORKER, "only %d of %d operations ran in %d s: %r" % (ops, WORKERS * OPS_PER_WORKER, TIME_LIMIT_S, outcomes)
    for kind in ("create-image", "create-container", "mount", "unmount", "remove-container"):
        assert outcomes.get(kind + ":ok"), "no %s succeeded: the mix did not exercise it (%r)" % (kind, outcomes)

    facts = drv.facts()
    assert facts["incomplete"] == [] and facts["problems"] == [], facts
    for sub in ("staging", "trash", "pending"):
        directory = os.path.join(drv.home, STATE_DIR, sub)
        assert not os.path.isdir(directory) or os.listdir(directory) == [], "leftovers in %s: %r" % (sub, os.listdir(directory))
    problems = [p for layer_id in drv.list_layers() for p in whole_layer_problems(drv, layer_id)]
    assert problems == []

    believed = sorted((layer_id, r_holder) for index, r in enumerate(results) for layer_id in r["held"] for r_holder in ["w%02d" % index])
    persisted = sorted((layer_id, holder) for layer_id in drv.list_layers() for holder in drv.store.holders(layer_id))
    assert persisted == believed, "holders on disk %r differ from what the workers hold %r" % (persisted, believed)
    for layer_id, record in facts["layers"].items():
        assert record["mounted"] == bool(record["holders"]), "layer %s: mounted=%s with holders %r" % (layer_id, record["mounted"], record["holders"])

    for layer_id in CONTAINERS:
        drv.unmount(layer_id, force=True)
    for layer_id in CONTAINERS + IMAGES:
        drv.remove(layer_id, force=False)
    assert drv.list_layers() == []
    assert kernel.mounts_at_or_below(kernel.read_mountinfo(), drv.home) == []


@pytest.mark.parametrize("operation, args", [
    ("mount", {"id": "ctr", "holder": "a"}),
    ("apply", {"id": "ctr", "parent": "img", "diff": None}),
])
def test_an_operation_that_waited_for_a_concurrent_remove_reports_the_layer_missing(home, scratch, operation, args):
    """The layer exists when the call starts and is removed while it waits for the lock: LayerNotFound, nothing left."""
    drv = home
    drv.init()
    drv.create("img", None)
    drv.create("ctr", "img")
    if operation == "apply":
        args = dict(args, diff=tf.write_tar(os.path.join(scratch, "d.tar"), DIFF))
    fd = os.open(os.path.join(drv.home, STATE_DIR, "locks", "ctr.lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc = tf.start_worker(drv.home, operation, args)
        # Time for the worker to find the layer and block on its lock, which this test holds.
        time.sleep(1.0)
        drv.recovery.discard("ctr")
    finally:
        os.close(fd)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3 and stderr.startswith("LayerNotFound: layer ctr does not exist"), "exit %d: %s" % (proc.returncode, stderr)
    assert not drv.exists("ctr") and drv.store.holders("ctr") == [] and not drv.store.is_pending("ctr")
    assert drv.facts()["incomplete"] == []


def test_a_parent_cannot_be_removed_while_a_child_is_being_built_on_it(home, scratch):
    """remove(parent) during create(child, parent) waits for the child and then refuses: no dangling child, no odd error."""
    drv = home
    drv.init()
    drv.create("img", None, diff_path=tf.write_tar(os.path.join(scratch, "big.tar"), tf.big_entries(4000)))
    diff = tf.write_tar(os.path.join(scratch, "d.tar"), DIFF)
    proc = tf.start_worker(drv.home, "create", {"id": "child", "parent": "img", "diff": diff})
    staging = os.path.join(drv.home, STATE_DIR, "staging")
    deadline = time.monotonic() + 30
    while not (os.path.isdir(staging) and any(n.startswith("child.") for n in os.listdir(staging))):
        assert proc.poll() is None and time.monotonic() < deadline, "the create never started building"
        time.sleep(0.001)
    with pytest.raises(errors.LayerBusy) as caught:
        drv.remove("img", force=False)
    assert str(caught.value) == "layer img has dependent layers: child; remove the dependent layers first, or force the removal"
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert whole_layer_problems(drv, "child") == [] and drv.facts()["incomplete"] == []
