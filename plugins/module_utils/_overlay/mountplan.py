# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""overlay_mount's work: load the layer's holders and mount once, plan, carry out unless in check mode.

The holder arithmetic lives here once: what a mount adds, what an unmount drops, and when the
last holder out unmounts. The driver's mount and unmount apply the same rules under the lock.
With ``persist``, the plan also writes the layer's systemd mount unit after the mount, and the
last holder out removes it before the unmount; a live overlay whose dirs are not the layer's
(drift) is remounted.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, kernel, layout, operations
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.driver import validate_id


@dataclasses.dataclass(frozen=True)
class MountState:
    """What the planner needs of one layer's mount, read once before planning."""

    id: str
    kind: str | None
    path: str
    holders: tuple
    mounted: bool
    drift: tuple = ()
    unit: str | None = None
    unit_text: str | None = None

    def view(self) -> dict:
        """``mounted``, ``holders``, the mount unit's name (when its file exists) and text, as the result and the diff show them."""
        return {"mounted": self.mounted, "holders": list(self.holders), "unit": self.unit if self.unit_text is not None else None,
                "unit_text": self.unit_text}


def _unit_file(driver, layer_id: str) -> tuple:
    """The layer's mount unit name and the text of its file (None when there is none)."""
    try:
        name = driver.persisted.unit_name(layer_id)
    except errors.OverlayError:
        # A path too long for a unit name has no unit; persist: true says why when asked for.
        return None, None
    return name, driver.units.read(name)


def load_mount(driver, layer_id: str) -> MountState:
    """The layer's kind, its path (merged dir or root), its holders, its live mount and its drift, its mount unit."""
    if not driver.exists(layer_id):
        return MountState(layer_id, None, driver.layout.merged(layer_id), (), False)
    driver.rules.require_layer(layer_id)
    if driver.is_image(layer_id):
        return MountState(layer_id, layout.IMAGE, driver.layout.root(layer_id), (), False)
    mounts = kernel.read_mountinfo()
    mounted = driver.is_mounted(layer_id, mounts)
    drift = tuple(driver.drift(layer_id, mounts)) if mounted else ()
    unit, unit_text = _unit_file(driver, layer_id)
    return MountState(layer_id, layout.CONTAINER, driver.layout.merged(layer_id), tuple(driver.store.holders(layer_id)),
                      mounted, drift, unit, unit_text)


class MountTask:
    """overlay_mount: mounted (optionally persisted as a systemd mount unit), unmounted."""

    def __init__(self, driver, params: dict) -> None:
        self.driver = driver
        self.id = validate_id(params["id"])
        self.holder = validate_id("ansible" if params.get("holder") is None else params["holder"], "holder name")
        self.state = params.get("state") or "mounted"
        self.force = bool(params.get("force"))
        self.persist = bool(params.get("persist"))
        self.label = params.get("mount_label") or ""
        self._unit_text: str | None = None

    def run(self, check_mode: bool = False, diff_mode: bool = False) -> dict:
        """Plan the holder change, the mount, remount or unmount and the unit, carry it out unless in check mode; the result."""
        state = load_mount(self.driver, self.id)
        plan = self.plan(state)
        if check_mode or not plan:
            after = self._planned_view(state, plan)
        else:
            self.execute(plan)
            after = load_mount(self.driver, self.id).view()
        result = {
            "changed": bool(plan), "path": state.path, "kind": state.kind, "mounted": after["mounted"],
            "holders": after["holders"], "refcount": len(after["holders"]), "unit": after["unit"],
            "modifications": operations.render(plan),
        }
        if diff_mode:
            before = state.view()
            for operation in plan:
                if isinstance(operation, operations.Remount):
                    before["overlay"] = {found["option"]: found["live"] for found in operation.differences}
                    after["overlay"] = {found["option"]: found["expected"] for found in operation.differences}
            result["diff"] = {"before": before, "after": after}
        return result

    def plan(self, state: MountState) -> list:
        """The holder, mount and unit operations; raises where the task must be refused."""
        if self.state == "mounted" and self.persist:
            # Before anything else: a host that cannot mount the layer at boot gets nothing mounted.
            self.driver.persisted.require_systemd()
        if state.kind is None:
            if self.state == "mounted":
                raise errors.LayerNotFound("layer %s does not exist" % self.id, path=self.driver.dir(self.id), layer_id=self.id)
            return []
        if state.kind == layout.IMAGE:
            return []
        if self.state == "mounted":
            return self._plan_mounted(state)
        dropped = state.holders if self.force else tuple(h for h in state.holders if h == self.holder)
        releases = self.force or bool(dropped)
        last_out = releases and len(dropped) == len(state.holders)
        plan = []
        if dropped:
            plan.append(operations.DropHolders(self.id, holders=dropped))
        # The unit goes before the mount: left behind, it would mount the layer at boot with no holder.
        if last_out and state.unit and self.driver.persisted.systemd_is_init() and self.driver.units.needs_uninstall(state.unit):
            plan.append(operations.RemoveUnit(self.id, unit=state.unit))
        if last_out and state.mounted:
            plan.append(operations.Unmount(self.id, path=state.path))
        return plan

    def _plan_mounted(self, state: MountState) -> list:
        self.label = self.driver.rules.mount_label(self.label)
        unit = None
        if self.persist:
            # Rendered before anything is mounted, so a path the unit cannot carry mounts nothing.
            unit, self._unit_text = self.driver.persisted.mount_unit(self.id, self.label)
        plan = []
        if self.holder not in state.holders:
            plan.append(operations.AddHolder(self.id, holder=self.holder))
        if not state.mounted:
            plan.append(operations.Mount(self.id, path=state.path))
        elif state.drift:
            plan.append(operations.Remount(self.id, path=state.path, differences=state.drift))
        if unit is not None and self.driver.units.needs_install(unit, self._unit_text):
            plan.append(operations.InstallUnit(self.id, unit=unit))
        return plan

    def _planned_view(self, state: MountState, plan: list) -> dict:
        view = state.view()
        holders = set(state.holders)
        for operation in plan:
            if isinstance(operation, operations.AddHolder):
                holders.add(operation.holder)
            elif isinstance(operation, operations.Mount):
                view["mounted"] = True
            elif isinstance(operation, operations.DropHolders):
                holders.difference_update(operation.holders)
            elif isinstance(operation, operations.Unmount):
                view["mounted"] = False
            elif isinstance(operation, operations.InstallUnit):
                view["unit"], view["unit_text"] = operation.unit, self._unit_text
            elif isinstance(operation, operations.RemoveUnit):
                view["unit"], view["unit_text"] = None, None
        view["holders"] = sorted(holders)
        return view

    def execute(self, plan: list) -> None:
        """Carry out the plan through the driver: holder and mount, remount, unit install or removal, holder drop and unmount."""
        staged = {type(operation) for operation in plan}
        if staged & {operations.AddHolder, operations.Mount}:
            self.driver.mount(self.id, self.holder, self.label)
        if operations.Remount in staged:
            self.driver.remount(self.id, self.label)
        if operations.InstallUnit in staged:
            self.driver.persisted.install_unit(self.id, self.label)
        if operations.RemoveUnit in staged:
            self.driver.persisted.remove_unit(self.id)
        if staged & {operations.DropHolders, operations.Unmount}:
            self.driver.unmount(self.id, self.holder, self.force)
