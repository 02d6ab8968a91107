# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""overlay_facts ``problems``: each code made for real on a real store, and the cost at 1,000 layers."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import kernel, problems

from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay import test_faults as tf

# Measured on the 2-core test machine: 0.26 to 0.34 s; the bound leaves room for a loaded host.
FACTS_BUDGET_S = 1.0


@pytest.fixture
def drv(scratch):
    driver = driver_mod.Driver(os.path.join(scratch, "overlay"))
    driver.init()
    try:
        yield driver
    finally:
        driver.cleanup()


def codes(driver) -> list:
    return [(p["id"], p["code"]) for p in driver.facts()["problems"]]


def by_code(driver, code: str) -> dict:
    found = [p for p in driver.facts()["problems"] if p["code"] == code]
    assert len(found) == 1, found
    return found[0]


def base_and_container(driver) -> None:
    driver.create("base")
    driver.create("ctr", "base")


def test_a_healthy_store_has_no_problems(drv):
    base_and_container(drv)
    drv.mount("ctr", "web")
    assert drv.facts()["problems"] == []


def test_a_killed_create_is_incomplete(drv):
    drv.create("base")
    killed = tf.run_worker(drv.home, "create", {"id": "killed", "parent": "base"}, kill_at="create.commit:1")
    assert killed.returncode == -9, killed.stderr
    problem = by_code(drv, problems.INCOMPLETE)
    assert problem["id"] == "killed" and "overlay_prune" in problem["fix"], problem
    assert codes(drv) == [("killed", problems.INCOMPLETE)]


def test_a_removed_parent_dir_is_a_missing_parent_and_a_missing_lower(drv):
    base_and_container(drv)
    shutil.rmtree(drv.dir("base"))
    # The parent's record outlives its dir: state for an id with no layer.
    assert codes(drv) == [("base", problems.ORPHAN_STATE), ("ctr", problems.MISSING_LOWER), ("ctr", problems.MISSING_PARENT)]
    assert "recursive=true" in by_code(drv, problems.MISSING_PARENT)["fix"]


@pytest.mark.parametrize("damage, words", [
    (lambda path: shutil.rmtree(os.path.join(path, "work")), "lacks work/"),
    (lambda path: os.unlink(os.path.join(path, "lower-id")), "lacks lower-id"),
    (lambda path: open(os.path.join(path, "lower-id"), "wb").write(b"\xff/../x"), "not a layer id"),
])
def test_a_container_layer_with_a_part_gone_or_unreadable_is_damaged(drv, damage, words):
    base_and_container(drv)
    damage(drv.dir("ctr"))
    problem = by_code(drv, problems.DAMAGED)
    assert problem["id"] == "ctr" and words in problem["message"] and "state=absent force=true" in problem["fix"], problem


def test_holders_after_an_unmount_behind_the_drivers_back_are_held_not_mounted(drv):
    base_and_container(drv)
    drv.mount("ctr", "web")
    # What a reboot does: the mount is gone, the holders on disk stay.
    subprocess.run(["umount", drv.layout.merged("ctr")], check=True)
    problem = by_code(drv, problems.HELD_NOT_MOUNTED)
    assert problem["id"] == "ctr" and "web" in problem["message"] and "state=mounted" in problem["fix"], problem


def test_a_merged_dir_left_by_a_lazy_unmount_without_holders_is_stale(drv):
    base_and_container(drv)
    drv.mount("ctr", "web")
    subprocess.run(["umount", "-l", drv.layout.merged("ctr")], check=True)
    drv.store.set_holders("ctr", [])
    assert codes(drv) == [("ctr", problems.STALE_MERGED)]


def test_an_overlay_mounted_by_hand_without_a_holder_is_mounted_not_held(drv):
    base_and_container(drv)
    path = drv.dir("ctr")
    os.mkdir(drv.layout.merged("ctr"))
    data = kernel.overlay_mount_data(drv.layout.root("base"), os.path.join(path, "upper"), os.path.join(path, "work"))
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", data, drv.layout.merged("ctr")], check=True)
    problem = by_code(drv, problems.MOUNTED_NOT_HELD)
    assert problem["id"] == "ctr" and "state=unmounted force=true" in problem["fix"], problem
    assert codes(drv) == [("ctr", problems.MOUNTED_NOT_HELD)]


def test_a_holders_file_for_a_gone_id_is_orphan_state(drv):
    drv.create("base")
    drv.store.set_holders("gone", ["web"])
    problem = by_code(drv, problems.ORPHAN_STATE)
    assert problem["id"] == "gone" and "holders file" in problem["message"], problem


def test_problems_are_sorted_by_id_then_code(drv):
    base_and_container(drv)
    drv.create("zz", "base")
    drv.store.set_holders("aa-gone", ["x"])
    drv.mount("zz", "web")
    subprocess.run(["umount", drv.layout.merged("zz")], check=True)
    shutil.rmtree(drv.dir("base"))
    found = codes(drv)
    assert found == sorted(found) and len(found) == 7, found
    assert found[0] == ("aa-gone", problems.ORPHAN_STATE)
    assert ("zz", problems.HELD_NOT_MOUNTED) in found


def test_facts_with_problems_on_a_thousand_layers_stay_under_a_second(drv):
    os.makedirs(drv.layout.root("base"))
    # Layers made directly in Docker's shape: building 1,000 through create would measure create.
    for index in range(999):
        path = drv.dir("c%03d" % index)
        for part in ("upper", "work") if index % 7 else ("upper",):
            os.makedirs(os.path.join(path, part))
        with open(os.path.join(path, "lower-id"), "w", encoding="utf-8") as handle:
            handle.write("base" if index % 11 else "gone")
        if index % 5 == 0:
            os.mkdir(os.path.join(path, "merged"))
    for index in range(0, 999, 13):
        drv.store.set_holders("c%03d" % index, ["web"])
    started = time.monotonic()
    facts = drv.facts()
    elapsed = time.monotonic() - started
    assert len(facts["layers"]) == 1000
    found = {p["code"] for p in facts["problems"]}
    assert found == {problems.DAMAGED, problems.MISSING_LOWER, problems.STALE_MERGED, problems.HELD_NOT_MOUNTED}, found
    assert elapsed < FACTS_BUDGET_S, "facts took %.3f s on 1,000 layers" % elapsed
