# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What is wrong with a store, and the module call that repairs it (overlay_facts ``problems``).

Pure rules over what the inventory has already read for each layer (its record, holders, a
few ``lstat`` of its own dirs, the mount table, the state dir's listings): nothing here walks a
layer tree, so facts stay cheap on a home with thousands of layers.
"""

from __future__ import annotations

import dataclasses

INCOMPLETE = "incomplete"
MISSING_PARENT = "missing_parent"
MISSING_LOWER = "missing_lower"
DAMAGED = "damaged"
STALE_MERGED = "stale_merged"
HELD_NOT_MOUNTED = "held_not_mounted"
MOUNTED_NOT_HELD = "mounted_not_held"
ORPHAN_STATE = "orphan_state"

CODES = (INCOMPLETE, MISSING_PARENT, MISSING_LOWER, DAMAGED, STALE_MERGED, HELD_NOT_MOUNTED, MOUNTED_NOT_HELD, ORPHAN_STATE)

_PRUNE_LEFTOVERS = "graphdriver.overlay.overlay_prune with leftovers: true"


@dataclasses.dataclass(frozen=True)
class Observed:
    """What the inventory read of one layer, for the rules below.

    ``missing_parts`` names what a container layer lacks of ``upper/``, ``work/`` and
    ``lower-id``; ``unreadable`` is the message of a state file or lower-id that could not be read.
    """

    id: str
    kind: str
    parent: str | None = None
    lower: str | None = None
    missing_parts: tuple = ()
    unreadable: str | None = None
    merged_dir: bool = False
    mounted: bool = False
    holders: tuple = ()
    incomplete: bool = False


def _problem(layer_id: str, code: str, message: str, fix: str) -> dict:
    return {"id": layer_id, "code": code, "message": message, "fix": fix}


def _remove_fix(layer_id: str) -> str:
    return "graphdriver.overlay.overlay_layer id=%s state=absent force=true, then recreate it" % layer_id


def layer_problems(layer: Observed, layer_ids: frozenset) -> list[dict]:
    """The problems of one existing layer."""
    found = []
    lid = layer.id
    if layer.incomplete:
        found.append(_problem(lid, INCOMPLETE, "an interrupted operation left leftovers for layer %s" % lid,
                              "%s, or graphdriver.overlay.overlay_layer id=%s state=present to clear and recreate it" % (_PRUNE_LEFTOVERS, lid)))
    if layer.parent and layer.parent not in layer_ids:
        found.append(_problem(lid, MISSING_PARENT, "layer %s records parent %s, which does not exist" % (lid, layer.parent),
                              "graphdriver.overlay.overlay_layer id=%s state=absent recursive=true force=true, then recreate "
                              "the chain from %s" % (lid, layer.parent)))
    if layer.lower and layer.lower not in layer_ids:
        found.append(_problem(lid, MISSING_LOWER, "layer %s has lower-id %s, which does not exist: it cannot be mounted" % (lid, layer.lower),
                              _remove_fix(lid)))
    if layer.missing_parts or layer.unreadable:
        what = "container layer %s lacks %s" % (lid, ", ".join(layer.missing_parts)) if layer.missing_parts else layer.unreadable
        found.append(_problem(lid, DAMAGED, what, _remove_fix(lid)))
    if layer.merged_dir and not layer.mounted and not layer.holders:
        found.append(_problem(lid, STALE_MERGED, "layer %s has a merged/ dir but no mount and no holders" % lid, _PRUNE_LEFTOVERS))
    if layer.holders and not layer.mounted:
        found.append(_problem(lid, HELD_NOT_MOUNTED, "layer %s has holders (%s) but is not mounted (after a reboot?)" % (lid, ", ".join(layer.holders)),
                              "graphdriver.overlay.overlay_mount id=%s state=mounted mounts it again for them, or "
                              "graphdriver.overlay.overlay_mount id=%s state=unmounted force=true drops them" % (lid, lid)))
    if layer.mounted and not layer.holders:
        found.append(_problem(lid, MOUNTED_NOT_HELD, "layer %s is mounted at merged/ but has no holder (mounted by hand?)" % lid,
                              "graphdriver.overlay.overlay_mount id=%s state=unmounted force=true unmounts it, or "
                              "graphdriver.overlay.overlay_mount id=%s state=mounted holder=<name> adopts it" % (lid, lid)))
    return found


def gone_problems(layer_id: str, leftovers: bool, state: tuple) -> list[dict]:
    """The problems of an id that has no layer: leftovers of an interrupted operation, or state files alone."""
    if leftovers:
        return [_problem(layer_id, INCOMPLETE, "an interrupted operation left leftovers for %s, which has no layer" % layer_id,
                         _PRUNE_LEFTOVERS)]
    if state:
        return [_problem(layer_id, ORPHAN_STATE, "the state dir holds %s for %s, which has no layer" % (" and ".join(state), layer_id),
                         _PRUNE_LEFTOVERS)]
    return []


def find(layers: list, leftover_ids: set, record_ids: set, holder_ids: set) -> list[dict]:
    """Every problem of a home, sorted by id then code.

    ``layers`` are the ``Observed`` existing layers; the id sets are the state dir's listings
    (staging, trash or pending entries; layer records; holders files).
    """
    layer_ids = frozenset(layer.id for layer in layers)
    found = []
    for layer in layers:
        found.extend(layer_problems(layer, layer_ids))
    for gone in sorted((set(leftover_ids) | set(record_ids) | set(holder_ids)) - layer_ids):
        state = tuple(name for name, ids in (("a layer record", record_ids), ("a holders file", holder_ids)) if gone in ids)
        found.extend(gone_problems(gone, gone in leftover_ids, state))
    return sorted(found, key=lambda problem: (problem["id"], problem["code"]))
