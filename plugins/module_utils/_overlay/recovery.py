# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Crash recovery: finding and clearing what an interrupted operation left for an id.

Layers appear and disappear atomically (built in staging and renamed into place; renamed into
trash before deletion), and an operation on an existing layer first writes a pending marker.
Anything left in staging, trash or pending, a ``tmproot*`` beside a root, or a record without
its layer makes the id incomplete; the next operation on the id clears it, under its lock.
"""

from __future__ import annotations

import contextlib
import os

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import faults, fsutil, kernel, layout


class Recovery:
    """Leftovers of one home: detect, clear, and the atomic removal they rely on."""

    def __init__(self, paths: layout.Layout, store) -> None:
        self.layout = paths
        self.store = store

    def incomplete(self, layer_id: str) -> bool:
        """True when an interrupted operation left traces for this id."""
        if self.store.leftovers(layer_id) or self.layout.tmproots(layer_id):
            return True
        return self.store.record(layer_id) is not None and not self.layout.exists(layer_id)

    def discard(self, layer_id: str) -> None:
        """Remove a layer dir atomically: unmount below it, rename it into trash, forget its state, delete."""
        path = self.layout.dir(layer_id)
        kernel.recursive_unmount(path)
        trash = self.store.new_trash(layer_id)
        faults.checkpoint("remove.rename")
        os.rename(path, trash)
        self.store.drop_record(layer_id)
        self.store.set_holders(layer_id, [])
        self.store.clear_pending(layer_id)
        faults.checkpoint("remove.delete")
        fsutil.remove_tree(trash)

    def clear(self, layer_id: str) -> bool:
        """Finish what a killed process left for this id (the caller holds its lock); True if something was cleared.

        A layer with a pending marker was being changed in place and is not trustworthy:
        it is removed, so that ``present`` recreates it whole.
        """
        cleared = False
        # Only a layer is ever discarded: a pending marker beside a foreign name removes nothing.
        if self.store.is_pending(layer_id) and self.layout.kind(layer_id) is not None:
            self.discard(layer_id)
            cleared = True
        leftovers = self.store.leftovers(layer_id)
        if leftovers:
            # A create killed while applying through a merged view leaves that overlay
            # mounted inside its staging dir: deleting through it would fail or recurse.
            for leftover in leftovers:
                kernel.recursive_unmount(leftover)
            self.store.clear_leftovers(layer_id)
            cleared = True
        for tmp in self.layout.tmproots(layer_id):
            with contextlib.suppress(OSError):
                fsutil.remove_tree(tmp)
            cleared = True
        if not self.layout.exists(layer_id):
            if self.store.record(layer_id) is not None:
                self.store.drop_record(layer_id)
                cleared = True
            if self.store.holders(layer_id):
                self.store.set_holders(layer_id, [])
                cleared = True
        return cleared

    def clear_stale_merged(self, layer_id: str) -> bool:
        """Remove a container layer's empty ``merged/`` that has no mount and no holders (what a lazy unmount left); whether it did."""
        layout.validate_id(layer_id)
        with self.store.layer_lock(layer_id):
            merged = self.layout.merged(layer_id)
            if self.layout.kind(layer_id) != layout.CONTAINER or self.store.holders(layer_id):
                return False
            if kernel.mounts_at_or_below(kernel.read_mountinfo(), merged):
                return False
            try:
                os.rmdir(merged)
            except OSError:
                # Gone, or no longer empty: in use again, or written to by hand; left alone.
                return False
        return True
