# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Changes, Diff and DiffSize of a layer against a parent, and exporting the diff to a file.

A container layer whose lower is the parent is read straight from its upper dir (whiteouts
and opaque dirs as overlayfs wrote them); anything else compares two full trees, a container
layer's through its merged view, mounted for the call with Docker's Get and Put.
"""

from __future__ import annotations

import contextlib
import os

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import changes as changes_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import difftar, fsutil, layout


class Diffs:
    """The diffs of the layers of one home; ``trees`` gives a layer's tree (require, get, put: the driver's Get/Put)."""

    def __init__(self, paths: layout.Layout, idmap, trees) -> None:
        self.layout = paths
        self.idmap = idmap
        self._trees = trees

    @contextlib.contextmanager
    def _tree(self, layer_id: str):
        """The layer's full tree for reading: its root, or its merged view mounted for the call."""
        merged = self._trees.get(layer_id)
        try:
            yield merged
        finally:
            self._trees.put(layer_id)

    @contextlib.contextmanager
    def _diff_source(self, layer_id: str, parent: str | None):
        """Yield (changes, root to read changed files from) for layer against parent."""
        self._trees.require(layer_id)
        if parent is None:
            with self._tree(layer_id) as tree:
                yield changes_mod.changes_dirs(tree, None), tree
            return
        self._trees.require(parent)
        if not self.layout.is_image(layer_id) and self.layout.lower_id(layer_id) == parent:
            upper = self.layout.upper(layer_id)
            try:
                found = changes_mod.changes_from_upper(upper, self.layout.root(parent))
            except changes_mod.NeedsMergedView:
                found = None
            if found is not None:
                yield found, upper
                return
        with self._tree(layer_id) as tree, self._tree(parent) as parent_tree:
            yield changes_mod.changes_dirs(tree, parent_tree), tree

    def changes(self, layer_id: str, parent: str | None = None) -> list:
        """Docker's Changes: what the layer adds, changes and deletes relative to parent."""
        with self._diff_source(layer_id, parent) as (found, _root):
            return found

    def diff_size(self, layer_id: str, parent: str | None = None) -> int:
        """Docker's DiffSize: bytes of the files added or changed relative to parent."""
        with self._diff_source(layer_id, parent) as (found, root):
            return changes_mod.changes_size(root, found)

    def diff(self, layer_id: str, parent: str | None, out=None) -> dict:
        """Docker's Diff: write the layer's tar diff against parent (whole tree without one); without ``out``, only hash it."""
        writer = fsutil.HashingWriter(out)
        with self._diff_source(layer_id, parent) as (found, root):
            if parent is None:
                difftar.write_tree_tar(root, writer, idmap=self.idmap)
            else:
                difftar.write_changes_tar(root, found, writer, idmap=self.idmap)
            size = changes_mod.changes_size(root, found)
        return {"changes": found, "size": size, "diff_digest": writer.digest, "bytes": writer.size}

    def export(self, layer_id: str, parent: str | None, dest: str) -> dict:
        """Write the diff to ``dest`` atomically; ``changed`` is False when dest already had these bytes."""
        tmp = os.path.join(os.path.dirname(dest), ".%s.tmp-%d" % (os.path.basename(dest), os.getpid()))
        try:
            with open(tmp, "wb") as handle:
                result = self.diff(layer_id, parent, handle)
                handle.flush()
                os.fsync(handle.fileno())
            result["changed"] = fsutil.file_digest(dest) != result["diff_digest"]
            if result["changed"]:
                os.rename(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return result
