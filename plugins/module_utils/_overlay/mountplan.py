# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""overlay_mount's work: load the layer's holders and mount once, plan, carry out unless in check mode.

The holder arithmetic lives here once: what a mount adds, what an unmount drops, and when the
last holder out unmounts. The driver's mount and unmount apply the same rules under the lock.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, layout, operations
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.driver import validate_id


@dataclasses.dataclass(frozen=True)
class MountState:
    """What the planner needs of one layer's mount, read once before planning."""

    id: str
    kind: str | None
    path: str
    holders: tuple
    mounted: bool

    def view(self) -> dict:
        """``mounted`` and ``holders`` as the result and the diff show them."""
        return {"mounted": self.mounted, "holders": list(self.holders)}


def load_mount(driver, layer_id: str) -> MountState:
    """The layer's kind, its path (merged dir or root), its holders and whether the kernel has it mounted."""
    if not driver.exists(layer_id):
        return MountState(layer_id, None, driver.layout.merged(layer_id), (), False)
    driver.require_layer(layer_id)
    if driver.is_image(layer_id):
        return MountState(layer_id, layout.IMAGE, driver.layout.root(layer_id), (), False)
    return MountState(layer_id, layout.CONTAINER, driver.layout.merged(layer_id), tuple(driver.store.holders(layer_id)),
                      driver.is_mounted(layer_id))


class MountTask:
    """overlay_mount: mounted, unmounted."""

    def __init__(self, driver, params: dict) -> None:
        self.driver = driver
        self.id = validate_id(params["id"])
        self.holder = validate_id("ansible" if params.get("holder") is None else params["holder"], "holder name")
        self.state = params.get("state") or "mounted"
        self.force = bool(params.get("force"))
        self.label = params.get("mount_label") or ""

    def run(self, check_mode: bool = False, diff_mode: bool = False) -> dict:
        """Plan the holder change and the mount or unmount, carry it out unless in check mode; the module result."""
        state = load_mount(self.driver, self.id)
        plan = self.plan(state)
        if check_mode or not plan:
            after = self._planned_view(state, plan)
        else:
            self.execute(plan)
            after = load_mount(self.driver, self.id).view()
        result = {
            "changed": bool(plan), "path": state.path, "kind": state.kind, "mounted": after["mounted"],
            "holders": after["holders"], "refcount": len(after["holders"]), "modifications": operations.render(plan),
        }
        if diff_mode:
            result["diff"] = {"before": state.view(), "after": after}
        return result

    def plan(self, state: MountState) -> list:
        """The holder and mount operations; raises where the task must be refused."""
        if state.kind is None:
            if self.state == "mounted":
                raise errors.LayerNotFound("layer %s does not exist" % self.id, path=self.driver.dir(self.id), layer_id=self.id)
            return []
        if state.kind == layout.IMAGE:
            return []
        if self.state == "mounted":
            self.label = self.driver.mount_label(self.label)
            plan = []
            if self.holder not in state.holders:
                plan.append(operations.AddHolder(self.id, holder=self.holder))
            if not state.mounted:
                plan.append(operations.Mount(self.id, path=state.path))
            return plan
        dropped = state.holders if self.force else tuple(h for h in state.holders if h == self.holder)
        releases = self.force or bool(dropped)
        plan = []
        if dropped:
            plan.append(operations.DropHolders(self.id, holders=dropped))
        if releases and state.mounted and len(dropped) == len(state.holders):
            plan.append(operations.Unmount(self.id, path=state.path))
        return plan

    @staticmethod
    def _planned_view(state: MountState, plan: list) -> dict:
        holders = set(state.holders)
        mounted = state.mounted
        for operation in plan:
            if isinstance(operation, operations.AddHolder):
                holders.add(operation.holder)
            elif isinstance(operation, operations.Mount):
                mounted = True
            elif isinstance(operation, operations.DropHolders):
                holders.difference_update(operation.holders)
            elif isinstance(operation, operations.Unmount):
                mounted = False
        return {"mounted": mounted, "holders": sorted(holders)}

    def execute(self, plan: list) -> None:
        """Carry out the plan: one driver mount for what mounting adds, one unmount for what unmounting drops."""
        if any(isinstance(operation, (operations.AddHolder, operations.Mount)) for operation in plan):
            self.driver.mount(self.id, self.holder, self.label)
        if any(isinstance(operation, (operations.DropHolders, operations.Unmount)) for operation in plan):
            self.driver.unmount(self.id, self.holder, self.force)
