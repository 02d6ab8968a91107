# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Building layer trees: what Create and ApplyDiff do inside a layer dir that nobody else sees yet.

``build_layer`` fills a fresh staging dir (Docker's Create, CreateReadWrite and the ApplyDiff
that follows): a base root, a hardlink copy of an image parent with the diff applied, or
container dirs on an image or container parent. ``apply_beside`` is ApplyDiff's fast path on
an existing layer: apply onto a hardlink copy in ``tmproot*`` and swap it in as root.

A diff is a file (any compression) or a ``StreamDiff``: a stream applied as it arrives (a
registry blob, no copy of it on disk), read to its end and checked against the digest its
uncompressed tar must have before the caller commits the layer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import decompress, errors, faults, fsutil, kernel, layertar, layout, treecopy
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import idmap as idmap_mod


@dataclasses.dataclass(frozen=True)
class StreamDiff:
    """A diff read from ``stream`` (any compression), named ``what`` in errors; ``digest``: what its uncompressed tar must hash to."""

    stream: object
    what: str
    digest: str | None = None


class Builder:
    """Builds layer trees of one home with its id map, mounting through ``mounts`` where a merged view is needed."""

    def __init__(self, paths: layout.Layout, mounts, idmap: idmap_mod.IdentityMapping, warn) -> None:
        self.layout = paths
        self.mounts = mounts
        self.idmap = idmap
        self.warn = warn

    def apply_file(self, dest: str, diff) -> dict:
        """Apply a diff (a file path or a StreamDiff) to ``dest``; what the layer record keeps of it."""
        if isinstance(diff, StreamDiff):
            with decompress.open_stream(diff.stream, diff.what) as stream:
                applied = layertar.apply_layer(dest, stream, idmap=self.idmap, warn=self.warn)
            if diff.digest is not None and applied.digest != diff.digest:
                raise errors.ArchiveError("%s: digest mismatch: its uncompressed tar's digest is %s, the image config's diff_id is %s"
                                          % (diff.what, applied.digest, diff.digest))
        else:
            with decompress.open_diff(diff) as stream:
                applied = layertar.apply_layer(dest, stream, idmap=self.idmap, warn=self.warn)
        return {"applied_size": applied.size, "diff_digest": applied.digest, "entries": applied.entries}

    def build_layer(self, staging: str, parent: str | None, diff) -> dict:
        """Fill ``staging`` as the layer on ``parent`` with ``diff`` (a path, a StreamDiff or None) applied; the applied size, digest and entries."""
        uid, gid = self.idmap.root_pair()
        idmap_mod.mkdir_and_chown(staging, 0o700, uid, gid)
        result = {"applied_size": None, "diff_digest": None, "entries": None}
        if parent is None:
            root = layout.root_in(staging)
            idmap_mod.mkdir_and_chown(root, 0o755, uid, gid)
            if diff is not None:
                result.update(self.apply_file(root, diff))
            return result
        parent_root = self.layout.root(parent)
        if self.layout.is_image(parent) and diff is not None:
            # Create + ApplyDiff's fast path in one go: the finished layer holds only root/.
            root = os.path.join(staging, layout.TMPROOT_PREFIX)
            treecopy.dir_copy(parent_root, root, treecopy.HARDLINK, copy_opaque_xattrs=True)
            result.update(self.apply_file(root, diff))
            os.rename(root, layout.root_in(staging))
            return result
        if self.layout.is_image(parent):
            lower = parent
            mode = os.lstat(parent_root).st_mode & 0o7777
            idmap_mod.mkdir_and_chown(layout.upper_in(staging), mode, uid, gid)
            idmap_mod.mkdir_and_chown(layout.work_in(staging), 0o700, uid, gid)
        else:
            lower = self.layout.lower_id(parent)
            parent_upper = self.layout.upper(parent)
            try:
                mode = os.lstat(parent_upper).st_mode & 0o7777
            except OSError as exc:
                raise errors.CorruptState("parent layer %s has no upper dir (%s): %s" % (parent, parent_upper, exc.strerror),
                                          path=parent_upper, layer_id=parent) from None
            upper = layout.upper_in(staging)
            idmap_mod.mkdir_and_chown(upper, mode, uid, gid)
            idmap_mod.mkdir_and_chown(layout.work_in(staging), 0o700, uid, gid)
            treecopy.dir_copy(parent_upper, upper, treecopy.CONTENT, copy_opaque_xattrs=True, warn=self.warn)
        layout.write_lower_id(staging, lower)
        if diff is not None:
            # A container parent: apply through the merged view, so deletions become
            # overlay whiteouts in upper (Docker's naive fallback).
            merged = self.mounts.mount_overlay(self.layout.root(lower), staging)
            try:
                result.update(self.apply_file(merged, diff))
            finally:
                kernel.unmount(merged, kernel.MNT_DETACH)
                os.rmdir(merged)
        return result

    def apply_beside(self, layer_id: str, source: str, stream, on_failure) -> layertar.ApplyResult:
        """Apply onto a hardlink copy of ``source`` in ``tmproot*``, then swap it in as the layer's root.

        ``on_failure()`` runs when the apply fails before the swap: the layer was not touched.
        """
        path = self.layout.dir(layer_id)
        tmp = os.path.join(path, "%s%d" % (layout.TMPROOT_PREFIX, os.getpid()))
        os.mkdir(tmp, 0o700)
        try:
            treecopy.dir_copy(source, tmp, treecopy.HARDLINK, copy_opaque_xattrs=True)
            applied = layertar.apply_layer(tmp, stream, idmap=self.idmap, warn=self.warn)
        except BaseException:
            with contextlib.suppress(OSError):
                fsutil.remove_tree(tmp)
            on_failure()
            raise
        root = self.layout.root(layer_id)
        old = None
        if os.path.lexists(root):
            old = os.path.join(path, "%s-old%d" % (layout.TMPROOT_PREFIX, os.getpid()))
            os.rename(root, old)
        faults.checkpoint("apply.swap")
        os.rename(tmp, root)
        if old:
            fsutil.remove_tree(old)
        return applied

    @staticmethod
    def drop_container_parts(path: str) -> None:
        """Remove the container parts a layer made by Create kept beside the root ApplyDiff gave it."""
        for name in layout.CONTAINER_PARTS:
            target = os.path.join(path, name)
            if os.path.isdir(target) and not os.path.islink(target):
                with contextlib.suppress(OSError):
                    fsutil.remove_tree(target)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(target)
