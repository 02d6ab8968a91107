# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""overlay_prune's work: which layers are in use, the plan that clears the rest, and its executor.

A layer is in use when it is in ``keep``, has holders, has a mount at or below its dir, is
named by Docker's layer store (when home is ``<data-root>/overlay``), or is an ancestor (parent
or lower, transitively) of a layer in use. The planner reads all of that once and stages
``ClearStale`` and ``PruneLayer`` records; check mode reports them. The executor carries each
out through the driver, which re-checks under the layer's lock: a layer that gained a holder
or a child after planning is refused there and reported as kept. That race is the one place
where a real run does less than its plan; ``modifications`` still lists the plan.

Reclaimed space is counted once per inode: an inode counts only when every one of its links
lies in what is removed (a file hardlinked into a kept layer reclaims nothing), and it counts
for the removal that drops its last link.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import stat

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, kernel, layout, operations
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.driver import validate_id

INCOMPLETE = "incomplete"
STALE_MERGED = "stale_merged"
ORPHAN_STATE = "orphan_state"
UNUSED = "unused"

_DOCKER_NAMES = (("sha256", "*", "cache-id"), ("mounts", "*", "mount-id"), ("mounts", "*", "init-id"))


def docker_layer_ids(home: str) -> set[str] | None:
    """The layer ids Docker's layer store names when ``home`` is ``<data-root>/overlay``, else None."""
    if os.path.basename(os.path.normpath(home)) != "overlay":
        return None
    layerdb = os.path.join(os.path.dirname(os.path.normpath(home)), "image", "overlay", "layerdb")
    if not os.path.isdir(layerdb):
        return None
    found = set()
    for parts in _DOCKER_NAMES:
        for path in glob.glob(os.path.join(layerdb, *parts)):
            try:
                with open(path, "rb") as handle:
                    found.add(handle.read().decode("utf-8").strip())
            except (OSError, UnicodeDecodeError) as exc:
                # Pruning without knowing what Docker uses could remove a layer it needs.
                raise errors.CorruptState("cannot read Docker's layer store file %s (%s): nothing was pruned" % (path, exc), path=path) from None
    return found


def deepest_first(starts, children: dict) -> list[str]:
    """``starts`` and what descends from them, each listed after everything that descends from it."""
    order: list[str] = []
    seen: set = set()
    for start in sorted(starts):
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(children.get(start, ())))]
        while stack:
            current, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                order.append(current)
            elif child not in seen:
                seen.add(child)
                stack.append((child, iter(children.get(child, ()))))
    return order


@dataclasses.dataclass(frozen=True)
class PruneState:
    """What the planner needs of the whole home, read once."""

    layers: tuple
    links: dict
    in_use: dict
    pending: frozenset
    leftover_ids: frozenset
    stale_merged: tuple
    orphans: tuple


def _busy_reason(driver, layer_id: str, keep: set, docker: set, mounts) -> str | None:
    if layer_id in keep:
        return "keep"
    if layer_id in docker:
        return "named by Docker's layer store"
    if kernel.mounts_at_or_below(mounts, driver.dir(layer_id)):
        return "mounted"
    try:
        if driver.store.holders(layer_id):
            return "holders"
    except errors.CorruptState:
        return "holders file unreadable"
    return None


def load_prune(driver, keep: set) -> PruneState:
    """The in-use layers (with why), the links between layers, and every kind of leftover."""
    ids = driver.list_layers()
    inventory = driver.inventory
    links = {layer_id: inventory.links(layer_id) for layer_id in ids}
    docker = docker_layer_ids(driver.home) or set()
    mounts = kernel.read_mountinfo()
    in_use = {}
    for layer_id in ids:
        reason = _busy_reason(driver, layer_id, keep, docker, mounts)
        if reason:
            in_use[layer_id] = reason
    for layer_id in deepest_first(list(in_use), {i: sorted(linked) for i, linked in links.items()}):
        for linked in links.get(layer_id, ()):
            in_use.setdefault(linked, "ancestor of %s" % layer_id)
    store = driver.store
    pending = frozenset(i for i in ids if store.is_pending(i))
    leftover_ids = set(store.leftover_ids()) | {i for i in ids if driver.layout.tmproots(i)}
    stale = []
    for layer_id in ids:
        merged = driver.layout.merged(layer_id)
        # Only an empty one: anything inside was written there by hand and is not ours to delete.
        if driver.kind(layer_id) == layout.CONTAINER and os.path.isdir(merged) and not os.listdir(merged) \
                and not kernel.mounts_at_or_below(mounts, merged) and not _holders(store, layer_id):
            stale.append(layer_id)
    orphans = sorted((store.record_ids() | store.holder_ids()) - set(ids) - leftover_ids)
    return PruneState(tuple(ids), links, in_use, pending, frozenset(leftover_ids), tuple(stale), tuple(orphans))


def _holders(store, layer_id: str) -> list:
    try:
        return store.holders(layer_id)
    except errors.CorruptState:
        return ["?"]


class PruneTask:
    """overlay_prune: clear leftovers and, with ``layers``, every layer not in use."""

    def __init__(self, driver, params: dict) -> None:
        self.driver = driver
        self.keep = {validate_id(layer_id, "layer id in keep") for layer_id in params.get("keep") or ()}
        self.layers = bool(params.get("layers"))
        self.leftovers = params.get("leftovers") is not False

    def run(self, check_mode: bool = False) -> dict:
        """Plan, carry out unless in check mode; the module result."""
        if not os.path.isdir(self.driver.home):
            return {"changed": False, "modifications": [], "removed": [], "reclaimed_bytes": 0, "reclaimed_inodes": 0, "kept": []}
        state = load_prune(self.driver, self.keep)
        plan = self.plan(state)
        usage = self._usage(plan)
        done = plan if check_mode else self.execute(plan)
        # A staged layer the driver refused under its lock (it gained a holder or a child) is kept; one that vanished is not.
        refused = [operation.id for operation in plan
                   if operation not in done and isinstance(operation, operations.PruneLayer) and self.driver.kind(operation.id)]
        removed = reclaimed(done, usage)
        return {
            "changed": bool(plan),
            "modifications": operations.render(plan),
            "removed": removed,
            "reclaimed_bytes": sum(entry["bytes"] for entry in removed),
            "reclaimed_inodes": sum(entry["inodes"] for entry in removed),
            "kept": sorted(set(state.in_use) | set(refused)),
        }

    # -- planning

    def plan(self, state: PruneState) -> list:
        """Leftovers first (by id), then the unused layers, descendants before ancestors."""
        plan = []
        pruned = set()
        if self.layers:
            unused = [i for i in state.layers if i not in state.in_use]
            children: dict = {}
            for layer_id, linked in state.links.items():
                for target in linked:
                    children.setdefault(target, []).append(layer_id)
            order = deepest_first(unused, {i: sorted(c) for i, c in children.items()})
            pruned = set(order)
            layer_ops = [operations.PruneLayer(layer_id) for layer_id in order]
        else:
            layer_ops = []
        if self.leftovers:
            stale = {}
            for layer_id in state.leftover_ids:
                # A pending layer is discarded by clearing: never one in use.
                if layer_id not in pruned and not (layer_id in state.pending and layer_id in state.in_use):
                    stale[layer_id] = INCOMPLETE
            for layer_id in state.stale_merged:
                if layer_id not in pruned:
                    stale.setdefault(layer_id, STALE_MERGED)
            for layer_id in state.orphans:
                stale.setdefault(layer_id, ORPHAN_STATE)
            plan.extend(operations.ClearStale(layer_id, reason) for layer_id, reason in sorted(stale.items()))
        return plan + layer_ops

    def _paths(self, operation) -> list[str]:
        """What carrying out one record deletes."""
        driver = self.driver
        if isinstance(operation, operations.PruneLayer):
            return [driver.dir(operation.id)] + driver.store.leftovers(operation.id)
        if operation.reason == STALE_MERGED:
            return [driver.layout.merged(operation.id)]
        paths = driver.store.leftovers(operation.id) + driver.layout.tmproots(operation.id)
        if driver.store.is_pending(operation.id) and driver.layout.exists(operation.id):
            paths.append(driver.dir(operation.id))
        state_dir = os.path.join(driver.home, layout.STATE_DIR)
        for sub in ("layers", "holders"):
            candidate = os.path.join(state_dir, sub, operation.id + ".json")
            if operation.reason == ORPHAN_STATE or not driver.layout.exists(operation.id):
                if os.path.lexists(candidate):
                    paths.append(candidate)
        return paths

    def _usage(self, plan: list) -> dict:
        """Per record, the inodes below what it deletes: (dev, ino) -> (links, blocks in bytes, is a dir)."""
        return {operation: inodes_below(self._paths(operation)) for operation in plan}

    # -- carrying out

    def execute(self, plan: list) -> list:
        """Carry out each record under its layer's lock; the records done (a layer in use again is skipped)."""
        driver = self.driver
        done = []
        for operation in plan:
            if isinstance(operation, operations.PruneLayer):
                try:
                    if driver.remove(operation.id, force=False):
                        done.append(operation)
                except (errors.LayerBusy, errors.NotALayer):
                    continue
            elif operation.reason == STALE_MERGED:
                if driver.recovery.clear_stale_merged(operation.id):
                    done.append(operation)
            elif driver.clear_leftovers(operation.id):
                done.append(operation)
        return done


def inodes_below(paths) -> dict:
    """Every inode at or below ``paths`` (not following symlinks, not crossing mounts): (dev, ino) -> [links seen, nlink, bytes, is dir]."""
    found: dict = {}
    stack = list(paths)
    while stack:
        path = stack.pop()
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        key = (info.st_dev, info.st_ino)
        entry = found.setdefault(key, [0, info.st_nlink, info.st_blocks * 512, stat.S_ISDIR(info.st_mode)])
        entry[0] += 1
        if stat.S_ISDIR(info.st_mode) and not os.path.ismount(path):
            try:
                with os.scandir(path) as entries:
                    stack.extend(item.path for item in entries)
            except OSError:
                continue
    return found


def reclaimed(done: list, usage: dict) -> list[dict]:
    """``removed``: per record done, the bytes and inodes whose last link it dropped (a dir counts once, where it is)."""
    seen: dict = {}
    for operation in done:
        for key, (count, nlink, size, is_dir) in usage[operation].items():
            total = seen.setdefault(key, [0, nlink, size, is_dir, None])
            total[0] += count
            total[4] = operation
    result = {operation: [0, 0] for operation in done}
    for count, nlink, size, is_dir, last in seen.values():
        # A directory cannot be hardlinked: removing its tree frees it.
        if is_dir or count >= nlink:
            result[last][0] += size
            result[last][1] += 1
    return [{"id": op.id, "reason": op.reason, "bytes": result[op][0], "inodes": result[op][1]} for op in done]
