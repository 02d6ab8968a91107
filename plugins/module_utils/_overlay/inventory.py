# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventory of a home: layer records (interface.md), parents and children, sizes, facts.

Everything here only reads. A damaged state file of one layer must not break the report on
the others: such a layer is listed with a ``problem`` naming the file.
"""

from __future__ import annotations

import contextlib
import os

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import changes as changes_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, kernel, layout, problems as problems_mod, systemd


class Inventory:
    """Records, links and facts of the layers of one home."""

    def __init__(self, paths: layout.Layout, store, mounts, recovery, units=None) -> None:
        self.layout = paths
        self.units = units
        self.store = store
        self.mounts = mounts
        self.recovery = recovery
        self._children_index: tuple | None = None

    def parent_of(self, layer_id: str) -> str | None:
        """The recorded parent, or None (base layers, and layers Docker made)."""
        record = self.store.record(layer_id)
        return record.get("parent") if record else None

    def links(self, layer_id: str) -> set[str]:
        """The ids a layer depends on: its recorded parent and its lower-id."""
        linked = set()
        # A damaged state file of one layer must not break operations on the others; the
        # layer's own record and lower-id still raise where that layer is used.
        with contextlib.suppress(errors.CorruptState):
            parent = self.parent_of(layer_id)
            if parent:
                linked.add(parent)
        if not self.layout.is_image(layer_id) and os.path.lexists(layout.lower_id_in(self.layout.dir(layer_id))):
            with contextlib.suppress(errors.OverlayError):
                linked.add(self.layout.lower_id(layer_id))
        return linked

    def children(self, layer_id: str) -> list[str]:
        """Ids of the layers that name this one as parent or lower."""
        return sorted(other for other in self.layout.list_layers() if other != layer_id and layer_id in self.links(other))

    def children_index(self) -> dict:
        """Every layer's children (id -> sorted ids naming it as parent or lower), reading each layer once."""
        links = {other: self.links(other) for other in self.layout.list_layers()}
        return {layer_id: self._children_in(links, layer_id) for layer_id in links}

    def _children_in(self, links: dict, layer_id: str) -> list[str]:
        """The ids whose links name ``layer_id``, sorted; the reverse index is built once per ``links`` dict (facts shares one)."""
        cached = self._children_index
        if cached is None or cached[0] is not links:
            index: dict = {}
            for other, linked in links.items():
                for target in linked:
                    index.setdefault(target, []).append(other)
            cached = self._children_index = (links, index)
        return sorted(other for other in cached[1].get(layer_id, ()) if other != layer_id)

    def layer_record(self, layer_id: str, sizes: bool = False, mounts=None, links=None) -> dict:
        """The public record of one existing layer: kind, Docker's metadata, holders, digests, children.

        ``mounts`` (a mountinfo list) and ``links`` (id -> ids it depends on) let facts share
        one reading across every layer.
        """
        path = self.layout.dir(layer_id)
        problems = []
        try:
            record = self.store.record(layer_id) or {}
        except errors.CorruptState as exc:
            record = {}
            problems.append(str(exc))
        image = self.layout.is_image(layer_id)
        try:
            metadata = self.layout.metadata(layer_id)
        except errors.OverlayError as exc:
            metadata = {}
            problems.append(str(exc))
        linked = layout.symlinked_parts(path)
        if linked:
            problems.insert(0, str(errors.CorruptState(layout.symlinks_message(layer_id, linked), fix=errors.FIX_RECREATE)))
        problem = problems[0] if problems else None
        upper = layout.upper_in(path)
        if image and os.path.lexists(upper):
            # Docker reads such a dir as an image layer and never looks at upper/ again.
            problem = problem or str(errors.CorruptState(
                "layer %s has both root/ and upper/ (%s): it is read as an image layer and its upper is ignored" % (layer_id, upper),
                path=upper, layer_id=layer_id, fix=errors.FIX_RECREATE))
        mounted = False if image else self.mounts.is_mounted(layer_id, mounts)
        try:
            holders = [] if image else self.store.holders(layer_id)
        except errors.CorruptState as exc:
            holders = []
            problem = problem or str(exc)
        if links is None:
            links = {other: self.links(other) for other in self.layout.list_layers()}
        result = {
            "id": layer_id,
            "parent": record.get("parent"),
            "kind": layout.IMAGE if image else layout.CONTAINER,
            "metadata": metadata,
            "mounted": mounted,
            "holders": holders,
            "refcount": len(holders),
            "diff_digest": record.get("diff_digest"),
            "applied_size": record.get("applied_size"),
            "children": self._children_in(links, layer_id),
            "unit": None if image else self._unit(layer_id),
            "incomplete": self.recovery.incomplete(layer_id) or (not image and not os.path.isdir(upper)),
        }
        if problem:
            result["problem"] = problem
        if sizes and linked:
            result["size"] = None
        elif sizes:
            try:
                result["size"] = self.size_without_mounting(layer_id, result["parent"])
            except errors.OverlayError as exc:
                result["size"] = None
                result.setdefault("problem", str(exc))
        return result

    def _unit(self, layer_id: str) -> str | None:
        """The name of the layer's systemd mount unit when its file exists."""
        if self.units is None:
            return None
        with contextlib.suppress(errors.OverlayError):
            name = systemd.unit_name_for(self.layout.merged(layer_id))
            if self.units.read(name) is not None:
                return name
        return None

    def size_without_mounting(self, layer_id: str, parent: str | None) -> int | None:
        """DiffSize for facts, which must not mount or write: None where only a mount could tell.

        A container layer without a recorded parent is measured against its lower, as Docker
        measures the layers it made.
        """
        if self.layout.is_image(layer_id):
            root = self.layout.root(layer_id)
            old = self.layout.root(parent) if parent else None
            if old is not None and not layout.is_real_dir(old):
                return None
            return changes_mod.changes_size(root, changes_mod.changes_dirs(root, old))
        lower = self.layout.lower_id(layer_id)
        if parent not in (None, lower) or self.layout.kind(lower) != layout.IMAGE:
            return None
        upper = self.layout.upper(layer_id)
        try:
            found = changes_mod.changes_from_upper(upper, self.layout.root(lower))
        except changes_mod.NeedsMergedView:
            return None
        return changes_mod.changes_size(upper, found)

    def observe(self, layer_id: str, record: dict | None, unreadable: str | None = None) -> problems_mod.Observed:
        """What the problem rules need of one layer: its record and a few lstat of its own dirs, no tree walk."""
        record = record or {}
        path = self.layout.dir(layer_id)
        unreadable = record.get("problem") or unreadable
        lower = None
        missing = ()
        if record.get("kind", self.layout.kind(layer_id)) == layout.CONTAINER:
            missing = tuple(name for name, present in (
                ("upper/", os.path.isdir(layout.upper_in(path))), ("work/", os.path.isdir(layout.work_in(path))),
                ("lower-id", os.path.isfile(layout.lower_id_in(path)))) if not present)
            if "lower-id" not in missing:
                try:
                    lower = self.layout.lower_id(layer_id)
                except errors.CorruptState as exc:
                    unreadable = unreadable or str(exc)
        try:
            incomplete = self.recovery.incomplete(layer_id)
        except errors.CorruptState:
            incomplete = False
        return problems_mod.Observed(
            id=layer_id, kind=record.get("kind") or "", parent=record.get("parent"), lower=lower, missing_parts=missing,
            unreadable=unreadable, merged_dir=os.path.isdir(layout.merged_in(path)), mounted=bool(record.get("mounted")),
            holders=tuple(record.get("holders") or ()), incomplete=incomplete)

    def facts(self, report, status: list, sizes: bool = False) -> dict:
        """Everything overlay_facts reports, given the support report; creates and rewrites nothing under home."""
        # Read-only: every layer record and staging/trash listing is read once for all layers.
        with self.store.snapshot():
            return self._facts(report, status, sizes)

    def _facts(self, report, status: list, sizes: bool) -> dict:
        mounts = kernel.read_mountinfo()
        layers = {}
        unreadable = {}
        ids = self.layout.list_layers()
        links = {}
        for layer_id in ids:
            try:
                links[layer_id] = self.links(layer_id)
            except errors.OverlayError as exc:
                links[layer_id] = set()
                unreadable[layer_id] = str(exc)
        for layer_id in ids:
            try:
                layers[layer_id] = self.layer_record(layer_id, sizes=sizes, mounts=mounts, links=links)
            except errors.OverlayError as exc:
                unreadable[layer_id] = str(exc)
        for layer_id, problem in unreadable.items():
            if layer_id in layers:
                layers[layer_id].setdefault("problem", problem)
        leftover_ids = set(self.store.leftover_ids()) if os.path.isdir(self.layout.home) else set()
        leftovers = sorted(leftover_ids - set(ids))
        return {
            "supported": report.supported,
            "reason": report.reason,
            "backing_fs": report.backing_fs,
            "supports_d_type": report.supports_d_type,
            "test_mount": report.test_mount,
            "home": self.layout.home,
            "initialized": report.initialized,
            "status": status,
            "warnings": list(report.warnings),
            "layers": layers,
            "mounts": sorted(i for i in ids if layers.get(i, {}).get("mounted")),
            "incomplete": sorted(set(leftovers) | {i for i, r in layers.items() if r["incomplete"]}),
            "problems": problems_mod.find(
                [self.observe(layer_id, layers.get(layer_id), unreadable.get(layer_id)) for layer_id in ids],
                leftover_ids, self.store.record_ids(), self.store.holder_ids()),
            "foreign": self.layout.foreign(),
        }
