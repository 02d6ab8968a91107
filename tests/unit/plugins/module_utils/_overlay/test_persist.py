# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""overlay_mount's persist and drift against real overlay mounts: the unit written, enabled and
removed through a recording systemctl in a scratch unit dir (this host's init is not systemd;
the molecule vm scenario reboots a real one), and drifted mounts replaced by the layer's own."""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, kernel, systemd
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.mountplan import MountTask
from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay.test_systemd import FAKE_SYSTEMCTL


class Host:
    """A home with one image layer and one container layer, a unit dir and a recording systemctl."""

    def __init__(self, scratch: str, home_name: str = "overlay") -> None:
        self.unit_dir = os.path.join(scratch, "system")
        self.run_dir = os.path.join(scratch, "run-systemd-system")
        self.log = os.path.join(scratch, "systemctl.log")
        os.mkdir(self.run_dir)
        script = os.path.join(scratch, "systemctl.py")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(FAKE_SYSTEMCTL)
        units = systemd.UnitFiles(self.unit_dir, systemctl=(sys.executable, script, self.unit_dir, self.log))
        self.driver = driver_mod.Driver(os.path.join(scratch, home_name), units=units, systemd_run_dir=self.run_dir)
        self.driver.create("base", None)
        self.driver.create("c1", "base")
        self.scratch = scratch

    def run(self, check_mode: bool = False, **params) -> dict:
        return MountTask(self.driver, dict({"id": "c1", "holder": "web"}, **params)).run(check_mode=check_mode, diff_mode=True)

    def calls(self) -> list:
        """The systemctl calls since the last look."""
        if not os.path.exists(self.log):
            return []
        with open(self.log, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        os.unlink(self.log)
        return lines

    @property
    def merged(self) -> str:
        return self.driver.layout.merged("c1")

    def unit_path(self) -> str:
        return os.path.join(self.unit_dir, self.driver.persisted.unit_name("c1"))


@pytest.fixture
def host(scratch):
    made = Host(scratch)
    try:
        yield made
    finally:
        made.driver.cleanup()


def test_persist_writes_the_live_mounts_options_and_enables_it_once(host):
    result = host.run(persist=True)
    name = host.driver.persisted.unit_name("c1")
    assert result["unit"] == name == systemd.unit_name_for(host.merged)
    assert host.calls() == ["daemon-reload", "enable " + name]
    with open(host.unit_path(), encoding="utf-8") as handle:
        text = handle.read()
    live = kernel.mount_at(kernel.read_mountinfo(), host.merged)
    assert live is not None and live.fstype == "overlay"
    options = kernel.overlay_mount_data(host.driver.layout.root("base"), host.driver.layout.upper("c1"),
                                        os.path.join(host.driver.dir("c1"), "work"))
    assert "What=overlay\n" in text and "Type=overlay\n" in text and "Where=%s\n" % host.merged in text
    assert "Options=%s\n" % options in text, text
    assert "WantedBy=local-fs.target\n" in text
    assert result["diff"] == {"before": {"mounted": False, "holders": [], "unit": None, "unit_text": None},
                              "after": {"mounted": True, "holders": ["web"], "unit": name, "unit_text": text}}
    assert host.driver.layer_record("c1")["unit"] == name

    again = host.run(persist=True)
    assert again["changed"] is False and again["unit"] == name
    assert host.calls() == [], "an unchanged unit must not reload or enable again"


def test_last_holder_out_removes_the_unit_before_unmounting(host):
    host.run(persist=True)
    host.run(holder="backup", persist=True)
    host.calls()
    kept = host.run(state="unmounted")
    assert [op["op"] for op in kept["modifications"]] == ["drop_holders"] and kept["unit"] is not None
    assert host.calls() == [] and os.path.exists(host.unit_path())
    gone = host.run(holder="backup", state="unmounted")
    assert [op["op"] for op in gone["modifications"]] == ["drop_holders", "remove_unit", "unmount"]
    assert gone["unit"] is None and gone["mounted"] is False
    assert host.calls() == ["disable " + host.driver.persisted.unit_name("c1"), "daemon-reload"]
    assert not os.path.exists(host.unit_path())
    assert host.driver.layer_record("c1")["unit"] is None


def test_persist_without_systemd_as_init_fails_and_mounts_nothing(host):
    os.rmdir(host.run_dir)
    for check_mode in (True, False):
        with pytest.raises(errors.NotSupported) as info:
            host.run(check_mode=check_mode, persist=True)
        assert "needs systemd as init" in str(info.value) and host.run_dir in str(info.value)
    assert kernel.mount_at(kernel.read_mountinfo(), host.merged) is None
    assert host.driver.store.holders("c1") == []
    assert not os.path.exists(host.unit_dir) and host.calls() == []


def test_a_home_the_unit_cannot_carry_fails_before_mounting(scratch):
    host = Host(scratch, home_name="over,lay")
    try:
        with pytest.raises(systemd.UnitError) as info:
            host.run(persist=True)
        assert "over,lay" in str(info.value)
        assert kernel.mount_at(kernel.read_mountinfo(), host.merged) is None
        assert host.driver.store.holders("c1") == [] and host.calls() == []
    finally:
        host.driver.cleanup()


def test_a_drifted_mount_is_remounted_with_the_layers_dirs(host):
    host.run()
    kernel.recursive_unmount(host.merged)
    other = os.path.join(host.scratch, "other")
    for name in ("upper", "work"):
        os.makedirs(os.path.join(other, name))
    kernel.mount("overlay", host.merged, "overlay", 0, kernel.overlay_mount_data(
        host.driver.layout.root("base"), os.path.join(other, "upper"), os.path.join(other, "work")))

    planned = host.run(check_mode=True)
    result = host.run()
    upper = host.driver.layout.upper("c1")
    work = os.path.join(host.driver.dir("c1"), "work")
    expected = [{"option": "upperdir", "live": os.path.join(other, "upper"), "expected": upper},
                {"option": "workdir", "live": os.path.join(other, "work"), "expected": work}]
    assert result["modifications"] == planned["modifications"] == [
        {"op": "remount", "id": "c1", "path": host.merged, "differences": expected}]
    assert result["changed"] is True
    assert result["diff"]["before"]["overlay"] == {"upperdir": os.path.join(other, "upper"), "workdir": os.path.join(other, "work")}
    assert result["diff"]["after"]["overlay"] == {"upperdir": upper, "workdir": work}
    assert host.driver.drift("c1") == []
    with open(os.path.join(host.merged, "written"), "w", encoding="utf-8") as handle:
        handle.write("after the remount\n")
    assert os.path.exists(os.path.join(upper, "written")), "the remounted overlay must write into the layer's upper"
    assert host.run()["changed"] is False
