# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""overlay_layer's work: load the layer's state once, plan, and carry out the plan unless in check mode.

Everything the user typed is validated before the disk is read. The planner decides every
refusal (a layer that differs, a busy layer, a missing parent, an unsupported host, an export
directory that does not exist) through the driver's own rule functions, and stages
``operations``; check mode reports the plan and writes nothing (it may read and hash a diff to
decide), a real run carries it out with the same ``changed`` and ``modifications``.
"""

from __future__ import annotations

import dataclasses
import os

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import decompress, errors, kernel, layout, operations
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.layout import validate_id
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.rules import check_storage_opt
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.fsutil import file_digest


@dataclasses.dataclass(frozen=True)
class LayerState:
    """What the planner needs of one layer, read once before planning."""

    id: str
    exists: bool
    incomplete: bool
    pending: bool
    record: dict | None
    stored: dict | None


def load_layer(driver, layer_id: str) -> LayerState:
    """The layer's state: whether it exists or is incomplete, its public record and its stored one."""
    exists = driver.exists(layer_id)
    record = stored = None
    if exists:
        try:
            stored = driver.store.record(layer_id)
            record = driver.layer_record(layer_id)
        except errors.CorruptState as exc:
            # A damaged layer must still be removable: show what can be shown.
            record = {"id": layer_id, "problem": str(exc)}
    return LayerState(layer_id, exists, driver.incomplete(layer_id), driver.store.is_pending(layer_id), record, stored)


def diff_digest(path: str) -> str:
    """The digest the driver records for a diff file: sha256 of its uncompressed tar."""
    with decompress.open_diff(path) as stream:
        return decompress.digest_stream(stream)[0]


def _removed(plan: list) -> list[str]:
    """The ids a plan removes, in order."""
    return [operation.id for operation in plan if isinstance(operation, operations.RemoveLayer)]


def _size_or_none(path: str | None) -> int | None:
    try:
        return os.stat(path).st_size if path else None
    except OSError:
        return None


class LayerTask:
    """overlay_layer: present, absent, exported."""

    def __init__(self, driver, params: dict) -> None:
        self.driver = driver
        self.id = validate_id(params["id"])
        self.parent = params.get("parent")
        if self.parent is not None:
            validate_id(self.parent, "parent layer id")
            if self.parent == self.id:
                raise errors.InvalidArgument("layer %s cannot be its own parent" % self.id, layer_id=self.id)
        check_storage_opt(params.get("storage_opt"))
        self.state = params.get("state") or "present"
        self.diff = params.get("diff")
        self.dest = params.get("dest")
        self.force = bool(params.get("force"))
        self.recursive = bool(params.get("recursive"))
        self._digest: str | None = None
        self._export: dict | None = None

    def run(self, check_mode: bool = False, diff_mode: bool = False) -> dict:
        """Plan what ``state`` asks, carry it out unless in check mode; the module result."""
        state = load_layer(self.driver, self.id)
        plan = self.plan(state)
        if check_mode:
            result = self._planned_result(state, plan)
        else:
            result = self._executed_result(state, self.execute(plan), plan)
        result["changed"] = bool(plan)
        result["modifications"] = operations.render(plan)
        if diff_mode and self.state != "exported":
            after = result.get("layer") if self.state == "present" else None
            result["diff"] = {"before": state.record or {}, "after": after or {}}
        return result

    # -- planning

    def plan(self, state: LayerState) -> list:
        """The operations that bring the layer to ``state``; raises where the task must be refused."""
        if self.state == "absent":
            return self._plan_absent(state)
        if self.state == "exported":
            return self._plan_exported(state)
        return self._plan_present(state)

    def _plan_clearing(self, state: LayerState, plan: list) -> bool:
        """Stage the clearing of leftovers when there are any; whether the layer is still there after it."""
        if not state.incomplete:
            return state.exists
        plan.append(operations.ClearLeftovers(self.id))
        # Clearing removes a layer that was being changed in place; other leftovers leave it.
        return state.exists and not state.pending

    def _plan_present(self, state: LayerState) -> list:
        plan = []
        if self._plan_clearing(state, plan):
            differences = self._differences(state)
            if not differences:
                return plan
            if not self.force:
                raise errors.LayerConflict("layer %s exists but differs: %s" % (self.id, "; ".join(differences)),
                                           path=self.driver.dir(self.id), layer_id=self.id, fix=errors.FIX_REPLACE)
            self._require_parent()
            plan.append(operations.RemoveLayer(self.id, force=True, reason="; ".join(differences)))
        else:
            self._require_parent()
        self.driver.rules.require_supported()
        plan.append(operations.CreateLayer(self.id, self.parent, self.diff))
        return plan

    def _require_parent(self) -> None:
        self.driver.rules.require_parent(self.parent)

    def _digest_of_diff(self) -> str:
        if self._digest is None:
            self._digest = diff_digest(self.diff)
        return self._digest

    def _differences(self, state: LayerState) -> list[str]:
        """What differs between the existing layer and the options given; left-out options are not compared."""
        current = state.record or {}
        found = []
        if self.parent is not None:
            if state.stored is None:
                found.extend(self._unrecorded_parent_difference(current))
            elif current.get("parent") != self.parent:
                found.append("its parent is %s, not %s" % (current.get("parent") or "none (a base layer)", self.parent))
        if self.diff is not None:
            digest = self._digest_of_diff()
            if current.get("diff_digest") != digest:
                found.append("its diff digest is %s, but %s is %s" % (
                    current.get("diff_digest") or "none (it was made without a diff)", self.diff, digest))
        return found

    def _unrecorded_parent_difference(self, current: dict) -> list[str]:
        """A layer Docker made has no recorded parent: compare what its lower-id allows, else warn."""
        driver = self.driver
        if current.get("kind") == layout.CONTAINER and driver.exists(self.parent):
            expected = self.parent if driver.is_image(self.parent) else driver.lower_id(self.parent)
            actual = driver.lower_id(self.id)
            if actual != expected:
                return ["its lower layer is %s, but parent %s implies %s" % (actual, self.parent, expected)]
            return []
        driver.warn("layer %s has no recorded parent (a layer made by Docker?); parent %s was not compared" % (self.id, self.parent))
        return []

    def _plan_absent(self, state: LayerState) -> list:
        plan = []
        if self._plan_clearing(state, plan):
            self.driver.rules.require_layer(self.id)
            if self.recursive:
                return plan + self._plan_recursive()
            if not self.force:
                self.driver.rules.removal_blockers(self.id)
            plan.append(operations.RemoveLayer(self.id, force=self.force))
        return plan

    def _descendants(self) -> list[str]:
        """Every layer that descends from this one (by parent or lower), each after all of its own descendants."""
        index = self.driver.inventory.children_index()
        order: list[str] = []
        seen = {self.id}
        # Iterative post-order: a layer is listed once everything that descends from it is.
        stack = [(self.id, iter(index.get(self.id, ())))]
        while stack:
            current, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                if current != self.id:
                    order.append(current)
            elif child not in seen:
                seen.add(child)
                stack.append((child, iter(index.get(child, ()))))
        return order

    def _plan_recursive(self) -> list:
        """Remove the descendants deepest first, then the layer; a held or mounted one refuses the whole call unless forced."""
        descendants = self._descendants()
        if not self.force:
            mounts = kernel.read_mountinfo()
            busy = [layer for layer in descendants + [self.id]
                    if self.driver.store.holders(layer) or self.driver.is_mounted(layer, mounts)]
            if busy:
                raise errors.LayerBusy(
                    "layer %s cannot be removed recursively: %s %s mounted or held; unmount %s first, or set force: true"
                    % (self.id, ", ".join(busy), "is" if len(busy) == 1 else "are", "it" if len(busy) == 1 else "them"),
                    path=self.driver.dir(busy[0]), layer_id=busy[0])
        reason = "descends from %s" % self.id
        plan = [operations.RemoveLayer(layer, force=self.force, reason=reason) for layer in descendants]
        plan.append(operations.RemoveLayer(self.id, force=self.force))
        return plan

    def _export_parent(self, state: LayerState) -> str | None:
        if self.parent is not None:
            return self.parent
        if state.stored is None and not self.driver.is_image(self.id):
            # Docker records no parent; its container layers sit on their lower layer.
            return self.driver.lower_id(self.id)
        return (state.stored or {}).get("parent")

    def _plan_exported(self, state: LayerState) -> list:
        if not state.exists:
            raise errors.LayerNotFound("layer %s does not exist" % self.id, path=self.driver.dir(self.id), layer_id=self.id)
        self._require_parent()
        dest = self.driver.rules.export_target(self.id, self.dest)
        parent = self._export_parent(state)
        # Deciding needs the digest of the diff: it is written to no file, only hashed.
        self._export = self.driver.diff(self.id, parent, None)
        self._export["parent"] = parent
        if file_digest(dest) == self._export["diff_digest"]:
            return []
        return [operations.ExportDiff(self.id, parent, dest)]

    # -- carrying out

    def execute(self, plan: list) -> dict | None:
        """Carry out the plan through the driver; the outcome of its create or export, if any."""
        driver = self.driver
        outcome = None
        for operation in plan:
            if isinstance(operation, operations.ClearLeftovers):
                driver.clear_leftovers(operation.id)
            elif isinstance(operation, operations.RemoveLayer):
                driver.remove(operation.id, force=operation.force)
            elif isinstance(operation, operations.CreateLayer):
                outcome = driver.create(operation.id, operation.parent, None, operation.diff)
            elif isinstance(operation, operations.ExportDiff):
                outcome = driver.export(operation.id, operation.parent, operation.dest)
                outcome["parent"] = operation.parent
        return outcome

    # -- results

    def _export_result(self, outcome: dict) -> dict:
        return {
            "parent": outcome["parent"],
            "changes": [{"path": change.path, "kind": change.kind} for change in outcome["changes"]],
            "size": outcome["size"],
            "diff_digest": outcome["diff_digest"],
            "bytes": outcome["bytes"],
            "layer": self.driver.layer_record(self.id),
        }

    def _planned_result(self, state: LayerState, plan: list) -> dict:
        if self.state == "exported":
            return self._export_result(self._export)
        if self.state == "absent":
            return {"removed": _removed(plan)}
        if not any(isinstance(operation, operations.CreateLayer) for operation in plan):
            return {"layer": state.record}
        digest = self._digest_of_diff() if self.diff is not None else None
        result = {"layer": self._planned_record(digest)}
        if digest is not None:
            result.update({"diff_digest": digest, "applied_size": None, "bytes": _size_or_none(self.diff)})
        return result

    def _planned_record(self, digest: str | None) -> dict:
        """The record the planned create produces."""
        driver = self.driver
        parent_is_image = self.parent is not None and driver.is_image(self.parent)
        if self.parent is None or (parent_is_image and self.diff is not None):
            kind, metadata = layout.IMAGE, {"RootDir": driver.layout.root(self.id)}
        else:
            lower = self.parent if parent_is_image else driver.lower_id(self.parent)
            kind, metadata = layout.CONTAINER, driver.layout.container_metadata(self.id, lower)
        return {
            "id": self.id, "parent": self.parent, "kind": kind, "metadata": metadata, "mounted": False,
            "holders": [], "refcount": 0, "diff_digest": digest, "applied_size": None, "children": [], "incomplete": False,
        }

    def _executed_result(self, state: LayerState, outcome: dict | None, plan: list) -> dict:
        if self.state == "exported":
            return self._export_result(outcome or self._export)
        if self.state == "absent":
            return {"removed": _removed(plan)}
        if outcome is None:
            return {"layer": self.driver.layer_record(self.id) if state.incomplete else state.record}
        result = {"layer": self.driver.layer_record(self.id)}
        if outcome.get("diff_digest") is not None:
            result.update({
                "diff_digest": outcome["diff_digest"],
                "applied_size": outcome["applied_size"],
                "entries": outcome.get("entries"),
                "bytes": _size_or_none(self.diff),
            })
        return result
