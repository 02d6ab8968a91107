# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The overlay graph driver: Docker's operations, composed from the parts.

Layout under ``home`` (Docker's ``<data-root>/overlay``), see docs/architecture.md:

* image layer: ``<id>/root/``, a plain tree whose regular files are hardlinks shared with
  the parent's root;
* container layer: ``<id>/upper``, ``<id>/work``, ``<id>/lower-id`` (the bare id of the image
  layer whose root is the single lowerdir) and, while mounted, ``<id>/merged``;
* ``.graphdriver/``: our own state (locks, holders, layer records, staging, trash, pending).

Where we differ from Docker on purpose: a layer appears and disappears atomically (built in
staging and renamed into place; renamed into trash before deletion), so Create never deletes
a layer that existed before the call; the mount refcount is a persisted set of named holders
reconciled with the kernel's mount table, not an in-memory counter; Remove unmounts only
mounts at or below the layer dir, never a sibling id that merely shares a prefix.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import (
    changes as changes_mod,
    decompress,
    difftar,
    errors,
    faults,
    fsutil,
    holders as holders_mod,
    idmap as idmap_mod,
    kernel,
    layertar,
    probe,
    treecopy,
)

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TMPROOT_PREFIX = "tmproot"


def validate_id(value, what: str = "layer id") -> str:
    """Refuse anything that is not a safe layer id or holder name, before any disk access."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise errors.InvalidArgument(
            "invalid %s %r: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ "
            "(letters, digits, '_', '.', '-'; no slash, no leading dot, at most 128 characters)" % (what, value))
    return value


def parse_driver_options(options) -> None:
    """Docker's parseOptions: every item must be key=value, and overlay accepts no key at all."""
    for option in options or ():
        if "=" not in option:
            raise errors.InvalidArgument("Unable to parse key/value option: %s" % option)
        key = option.split("=", 1)[0].strip().lower()
        raise errors.InvalidArgument("overlay: unknown option %s" % key)


def selinux_enabled() -> bool:
    """True when the kernel runs SELinux, so a mount label means something."""
    return os.path.exists("/sys/fs/selinux/enforce")


class Driver:
    """One driver home. Cheap to build: nothing touches the disk until an operation runs."""

    def __init__(self, home: str, driver_options=(), uid_maps=(), gid_maps=(), warn=None):
        if not isinstance(home, str) or not home:
            raise errors.InvalidArgument("home must be a non-empty path")
        parse_driver_options(driver_options)
        self.home = os.path.abspath(home)
        self.idmap = idmap_mod.IdentityMapping(
            idmap_mod.parse_id_maps(uid_maps or [], "uid_maps"), idmap_mod.parse_id_maps(gid_maps or [], "gid_maps"))
        self.store = holders_mod.StateStore(self.home)
        self.warnings: list[str] = []
        self._warn_sink = warn
        self._api_refs: dict[str, int] = {}
        self._children_index: tuple | None = None

    # -- small helpers ---------------------------------------------------------------

    def warn(self, message: str) -> None:
        """Collect a warning for the caller (the module shows them)."""
        self.warnings.append(message)
        if self._warn_sink:
            self._warn_sink(message)

    def dir(self, layer_id: str) -> str:
        """The layer's directory under home."""
        return os.path.join(self.home, layer_id)

    def _root_ids(self) -> tuple[int, int]:
        return self.idmap.root_pair()

    def exists(self, layer_id: str) -> bool:
        """Docker's Exists: the layer dir can be stat'ed."""
        return os.path.lexists(self.dir(validate_id(layer_id)))

    def is_image(self, layer_id: str) -> bool:
        """A layer is image-type exactly when its root dir exists (Docker's rule)."""
        return os.path.isdir(os.path.join(self.dir(layer_id), "root"))

    def lower_id(self, layer_id: str) -> str:
        """The id in a container layer's lower-id file; CorruptState when unreadable."""
        path = os.path.join(self.dir(layer_id), "lower-id")
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise errors.CorruptState(
                "layer %s has no readable lower-id file (%s: %s): the layer is damaged; remove it with "
                "overlay_layer state=absent force=true and recreate it" % (layer_id, path, exc.strerror)) from None
        try:
            return validate_id(raw.decode("utf-8").strip(), "lower id")
        except (UnicodeDecodeError, errors.InvalidArgument):
            raise errors.CorruptState(
                "%s holds %r, not a layer id: the layer %s is damaged; remove it with overlay_layer state=absent "
                "force=true and recreate it" % (path, raw[:80], layer_id)) from None

    def _require(self, layer_id: str) -> str:
        validate_id(layer_id)
        path = self.dir(layer_id)
        if not os.path.lexists(path):
            raise errors.LayerNotFound("layer %s does not exist (looked for %s)" % (layer_id, path))
        return path

    # -- Init, Status, GetMetadata, Cleanup ------------------------------------------

    def support(self, test_mount: bool = True) -> probe.SupportReport:
        """Docker's Init checks, without creating anything: what facts report."""
        return probe.check_support(self.home, test_mount=test_mount)

    def init(self) -> probe.SupportReport:
        """Docker's Init: refuse an unsupported host, then create home (0700, remapped root)."""
        report = self.support(test_mount=False)
        if not report.supported:
            raise errors.NotSupported("overlay cannot run at %s: %s" % (self.home, report.reason))
        for message in report.warnings:
            self.warn(message)
        uid, gid = self._root_ids()
        idmap_mod.mkdir_all_and_chown(self.home, 0o700, uid, gid)
        return report

    def status(self, report: probe.SupportReport | None = None) -> list[list[str]]:
        """Docker's Status: backing filesystem and d_type support."""
        report = report or self.support(test_mount=False)
        return [["Backing Filesystem", report.backing_fs], ["Supports d_type", "true" if report.supports_d_type else "false"]]

    def get_metadata(self, layer_id: str) -> dict:
        """Docker's GetMetadata: RootDir for an image layer, the four overlay dirs otherwise."""
        path = self._require(layer_id)
        if self.is_image(layer_id):
            return {"RootDir": os.path.join(path, "root")}
        lower = self.lower_id(layer_id)
        return {
            "LowerDir": os.path.join(self.dir(lower), "root"),
            "UpperDir": os.path.join(path, "upper"),
            "WorkDir": os.path.join(path, "work"),
            "MergedDir": os.path.join(path, "merged"),
        }

    def cleanup(self) -> None:
        """Docker's Cleanup: lazily unmount everything at or below home."""
        kernel.recursive_unmount(self.home)

    # -- leftovers of interrupted operations -----------------------------------------

    def _tmproots(self, layer_id: str) -> list[str]:
        path = self.dir(layer_id)
        try:
            names = os.listdir(path)
        except OSError:
            return []
        return [os.path.join(path, n) for n in names if n.startswith(TMPROOT_PREFIX)]

    def incomplete(self, layer_id: str) -> bool:
        """True when an interrupted operation left traces for this id."""
        if self.store.leftovers(layer_id) or self._tmproots(layer_id):
            return True
        return self.store.record(layer_id) is not None and not os.path.lexists(self.dir(layer_id))

    def _clear_incomplete(self, layer_id: str) -> bool:
        """Finish what a killed process left for this id; True if something was cleared.

        A layer with a pending marker was being changed in place and is not trustworthy:
        it is removed, so that ``present`` recreates it whole.
        """
        cleared = False
        if self.store.is_pending(layer_id) and os.path.lexists(self.dir(layer_id)):
            self._remove_dir(layer_id)
            cleared = True
        leftovers = self.store.leftovers(layer_id)
        if leftovers:
            # A create killed while applying through a merged view leaves that overlay
            # mounted inside its staging dir: deleting through it would fail or recurse.
            for leftover in leftovers:
                kernel.recursive_unmount(leftover)
            self.store.clear_leftovers(layer_id)
            cleared = True
        for tmp in self._tmproots(layer_id):
            shutil.rmtree(tmp, ignore_errors=True)
            cleared = True
        if not os.path.lexists(self.dir(layer_id)):
            if self.store.record(layer_id) is not None:
                self.store.drop_record(layer_id)
                cleared = True
            if self.store.holders(layer_id):
                self.store.set_holders(layer_id, [])
                cleared = True
        return cleared

    # -- Create ----------------------------------------------------------------------

    def create(self, layer_id: str, parent: str | None = None, storage_opt=None, diff_path: str | None = None) -> dict:
        """Docker's Create (and CreateReadWrite), optionally followed by ApplyDiff, atomically.

        The layer is built in ``.graphdriver/staging`` and renamed to ``<home>/<id>`` only when
        whole. Returns ``{"applied_size", "diff_digest", "entries"}`` (None without a diff) and
        ``cleared``: whether leftovers of an interrupted operation on this id were cleared first.
        """
        validate_id(layer_id)
        if parent is not None:
            validate_id(parent, "parent layer id")
        if storage_opt:
            raise errors.InvalidArgument("--storage-opt is not supported for overlay")
        if parent is not None and not os.path.lexists(self.dir(parent)):
            raise errors.LayerNotFound("parent layer %s does not exist" % parent)
        self.init()
        with self.store.layer_lock(layer_id):
            cleared = self._clear_incomplete(layer_id)
            if os.path.lexists(self.dir(layer_id)):
                raise errors.LayerConflict("layer %s already exists" % layer_id)
            if parent is not None and not os.path.lexists(self.dir(parent)):
                raise errors.LayerNotFound("parent layer %s does not exist" % parent)
            # The parent's lock keeps it from being removed while the child is built on it.
            # Creates cannot wait on each other in a cycle: each checked, under its own lock,
            # that its id is free and its parent exists before waiting for the parent's lock.
            with self.store.layer_lock(parent) if parent is not None else contextlib.nullcontext():
                if parent is not None and not os.path.lexists(self.dir(parent)):
                    raise errors.LayerNotFound("parent layer %s does not exist" % parent)
                result = self._create_locked(layer_id, parent, diff_path)
        # Only what this call found and cleared under the lock: another process's staging
        # dir seen from outside the lock is work in progress, not a leftover.
        result["cleared"] = cleared
        return result

    def _create_locked(self, layer_id: str, parent: str | None, diff_path: str | None) -> dict:
        staging = self.store.new_staging(layer_id)
        try:
            result = self._build(staging, parent, diff_path)
            self.store.set_record(layer_id, {
                "parent": parent, "diff_digest": result["diff_digest"], "applied_size": result["applied_size"]})
            faults.checkpoint("create.commit")
            os.rename(staging, self.dir(layer_id))
        except BaseException:
            with contextlib.suppress(OSError):
                kernel.recursive_unmount(staging)
            shutil.rmtree(staging, ignore_errors=True)
            if not os.path.lexists(self.dir(layer_id)):
                with contextlib.suppress(errors.OverlayError, OSError):
                    self.store.drop_record(layer_id)
            raise
        return result

    def _build(self, staging: str, parent: str | None, diff_path: str | None) -> dict:
        uid, gid = self._root_ids()
        idmap_mod.mkdir_and_chown(staging, 0o700, uid, gid)
        result = {"applied_size": None, "diff_digest": None, "entries": None}
        if parent is None:
            root = os.path.join(staging, "root")
            idmap_mod.mkdir_and_chown(root, 0o755, uid, gid)
            if diff_path is not None:
                result.update(self._apply_file(root, diff_path))
            return result
        parent_dir = self.dir(parent)
        parent_root = os.path.join(parent_dir, "root")
        if os.path.isdir(parent_root) and diff_path is not None:
            # Create + ApplyDiff's fast path in one go: the finished layer holds only root/.
            root = os.path.join(staging, TMPROOT_PREFIX)
            treecopy.dir_copy(parent_root, root, treecopy.HARDLINK, copy_opaque_xattrs=True)
            result.update(self._apply_file(root, diff_path))
            os.rename(root, os.path.join(staging, "root"))
            return result
        if os.path.isdir(parent_root):
            mode = os.lstat(parent_root).st_mode & 0o7777
            idmap_mod.mkdir_and_chown(os.path.join(staging, "upper"), mode, uid, gid)
            idmap_mod.mkdir_and_chown(os.path.join(staging, "work"), 0o700, uid, gid)
            self._write_lower_id(staging, parent.encode("utf-8"))
        else:
            lower = self.lower_id(parent)
            self._write_lower_id(staging, lower.encode("utf-8"))
            parent_upper = os.path.join(parent_dir, "upper")
            try:
                mode = os.lstat(parent_upper).st_mode & 0o7777
            except OSError as exc:
                raise errors.CorruptState("parent layer %s has no upper dir (%s): %s" % (parent, parent_upper, exc.strerror)) from None
            upper = os.path.join(staging, "upper")
            idmap_mod.mkdir_and_chown(upper, mode, uid, gid)
            idmap_mod.mkdir_and_chown(os.path.join(staging, "work"), 0o700, uid, gid)
            treecopy.dir_copy(parent_upper, upper, treecopy.CONTENT, copy_opaque_xattrs=True, warn=self.warn)
        if diff_path is not None:
            # A container parent: apply through the merged view, so deletions become
            # overlay whiteouts in upper (Docker's naive fallback).
            lower_root = os.path.join(self.dir(self._read_lower(staging)), "root")
            merged = os.path.join(staging, "merged")
            self._mount_overlay(lower_root, staging, merged, "")
            try:
                result.update(self._apply_file(merged, diff_path))
            finally:
                kernel.unmount(merged, kernel.MNT_DETACH)
                os.rmdir(merged)
        return result

    @staticmethod
    def _write_lower_id(layer_dir: str, value: bytes) -> None:
        # 0666 before the umask, as the seed writes it.
        fd = os.open(os.path.join(layer_dir, "lower-id"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.write(fd, value)
        finally:
            os.close(fd)

    @staticmethod
    def _read_lower(layer_dir: str) -> str:
        with open(os.path.join(layer_dir, "lower-id"), "rb") as handle:
            return handle.read().decode("utf-8").strip()

    def _apply_file(self, dest: str, diff_path: str) -> dict:
        with decompress.open_diff(diff_path) as stream:
            applied = layertar.apply_layer(dest, stream, idmap=self.idmap, warn=self.warn)
        return {"applied_size": applied.size, "diff_digest": applied.digest, "entries": applied.entries}

    # -- ApplyDiff on an existing layer (Docker's API) -------------------------------

    def apply_diff(self, layer_id: str, parent: str | None, stream) -> int:
        """Docker's ApplyDiff on a layer made by Create; returns the sum of the tar header sizes.

        With an image parent: hardlink copy of its root into ``tmproot*``, apply, rename to
        root, drop the overlay dirs (Docker's fast path). A base layer gets the same treatment
        with a hardlink copy of its own root, so a bad tar leaves it as it was (Docker
        applies in place). A container layer applies through its mounted merged view, as
        Docker's naive fallback does; there a failed apply leaves the layer pending, and the
        next operation on it removes it.
        """
        path = self._require(layer_id)
        with self.store.layer_lock(layer_id):
            # Another process may have removed it while this one waited for the lock.
            self._require(layer_id)
            parent_root = os.path.join(self.dir(parent), "root") if parent else None
            own_root = os.path.join(path, "root")
            if parent_root and os.path.isdir(parent_root):
                source = parent_root
            elif self.is_image(layer_id):
                source = own_root
            else:
                source = None
            if source is not None and self.is_mounted(layer_id):
                raise errors.LayerBusy("layer %s is mounted at %s: unmount it before applying a diff" % (layer_id, self._merged(layer_id)))
            self.store.mark_pending(layer_id)
            if source is not None:
                applied = self._apply_beside(path, source, stream)
                if source == parent_root:
                    for name in ("upper", "work", "merged", "lower-id"):
                        target = os.path.join(path, name)
                        if os.path.isdir(target) and not os.path.islink(target):
                            shutil.rmtree(target, ignore_errors=True)
                        else:
                            with contextlib.suppress(OSError):
                                os.unlink(target)
            else:
                merged = self._mount_locked(layer_id, "docker-api-apply", "")
                try:
                    applied = layertar.apply_layer(merged, stream, idmap=self.idmap, warn=self.warn)
                finally:
                    self._unmount_locked(layer_id, "docker-api-apply", force=False)
            record = self.store.record(layer_id) or {"parent": parent}
            record.update({"diff_digest": applied.digest, "applied_size": applied.size})
            self.store.set_record(layer_id, record)
            self.store.clear_pending(layer_id)
        return applied.size

    def _apply_beside(self, path: str, source: str, stream):
        """Apply onto a hardlink copy of ``source`` in ``tmproot*``, then swap it in as root."""
        tmp = os.path.join(path, "%s%d" % (TMPROOT_PREFIX, os.getpid()))
        os.mkdir(tmp, 0o700)
        try:
            treecopy.dir_copy(source, tmp, treecopy.HARDLINK, copy_opaque_xattrs=True)
            applied = layertar.apply_layer(tmp, stream, idmap=self.idmap, warn=self.warn)
        except BaseException:
            # The layer itself was not touched: it stays whole, not incomplete.
            shutil.rmtree(tmp, ignore_errors=True)
            self.store.clear_pending(os.path.basename(path))
            raise
        root = os.path.join(path, "root")
        old = None
        if os.path.lexists(root):
            old = os.path.join(path, "%s-old%d" % (TMPROOT_PREFIX, os.getpid()))
            os.rename(root, old)
        faults.checkpoint("apply.swap")
        os.rename(tmp, root)
        if old:
            fsutil.remove_tree(old)
        return applied

    # -- Remove ----------------------------------------------------------------------

    def _remove_dir(self, layer_id: str) -> None:
        path = self.dir(layer_id)
        kernel.recursive_unmount(path)
        trash = self.store.new_trash(layer_id)
        faults.checkpoint("remove.rename")
        os.rename(path, trash)
        self.store.drop_record(layer_id)
        self.store.set_holders(layer_id, [])
        self.store.clear_pending(layer_id)
        faults.checkpoint("remove.delete")
        fsutil.remove_tree(trash)

    def remove(self, layer_id: str, force: bool = True) -> bool:
        """Remove a layer; False when it did not exist.

        ``force=True`` is Docker's Remove (unmount and delete whatever holds it). Without
        force, a layer with holders or dependent layers is refused.
        """
        validate_id(layer_id)
        if not os.path.isdir(self.home):
            return False
        with self.store.layer_lock(layer_id):
            cleared = self._clear_incomplete(layer_id)
            if not os.path.lexists(self.dir(layer_id)):
                return cleared
            if not force:
                holders = self.store.holders(layer_id)
                if holders:
                    raise errors.LayerBusy("layer %s is mounted (holders: %s)" % (layer_id, ", ".join(holders)))
                children = self.children(layer_id)
                if children:
                    raise errors.LayerBusy("layer %s has dependent layers: %s" % (layer_id, ", ".join(children)))
            self._remove_dir(layer_id)
        return True

    # -- listing, parents, children --------------------------------------------------

    def list_layers(self) -> list[str]:
        """The ids of every layer dir under home, ours and Docker's, sorted."""
        try:
            names = os.listdir(self.home)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if ID_PATTERN.match(n) and os.path.isdir(os.path.join(self.home, n)))

    def parent_of(self, layer_id: str) -> str | None:
        """The recorded parent, or None (base layers, and layers Docker made)."""
        record = self.store.record(layer_id)
        return record.get("parent") if record else None

    def _links(self, layer_id: str) -> set[str]:
        """The ids a layer depends on: its recorded parent and its lower-id."""
        linked = set()
        # A damaged state file of one layer must not break operations on the others; the
        # layer's own record and lower-id still raise where that layer is used.
        with contextlib.suppress(errors.CorruptState):
            parent = self.parent_of(layer_id)
            if parent:
                linked.add(parent)
        if not self.is_image(layer_id) and os.path.lexists(os.path.join(self.dir(layer_id), "lower-id")):
            with contextlib.suppress(errors.OverlayError):
                linked.add(self.lower_id(layer_id))
        return linked

    def children(self, layer_id: str) -> list[str]:
        """Ids of the layers that name this one as parent or lower."""
        return sorted(other for other in self.list_layers() if other != layer_id and layer_id in self._links(other))

    # -- the layer record and facts (interface.md) -----------------------------------

    def layer_record(self, layer_id: str, sizes: bool = False, mounts=None, links=None) -> dict:
        """The public record of one layer: kind, Docker's metadata, holders, digests, children.

        ``mounts`` (a mountinfo list) and ``links`` (id -> ids it depends on) let facts share
        one reading across every layer.
        """
        path = self._require(layer_id)
        problems = []
        try:
            record = self.store.record(layer_id) or {}
        except errors.CorruptState as exc:
            record = {}
            problems.append(str(exc))
        image = self.is_image(layer_id)
        try:
            metadata = self.get_metadata(layer_id)
        except errors.OverlayError as exc:
            metadata = {}
            problems.append(str(exc))
        problem = problems[0] if problems else None
        if image and os.path.lexists(os.path.join(path, "upper")):
            # Docker reads such a dir as an image layer and never looks at upper/ again.
            problem = problem or (
                "layer %s has both root/ and upper/ (%s): it is read as an image layer and its upper is ignored; "
                "remove it with overlay_layer state=absent force=true and recreate it" % (layer_id, os.path.join(path, "upper")))
        mounted = False if image else self.is_mounted(layer_id, mounts)
        try:
            holders = [] if image else self.store.holders(layer_id)
        except errors.CorruptState as exc:
            holders = []
            problem = problem or str(exc)
        if links is None:
            links = {other: self._links(other) for other in self.list_layers()}
        result = {
            "id": layer_id,
            "parent": record.get("parent"),
            "kind": "image" if image else "container",
            "metadata": metadata,
            "mounted": mounted,
            "holders": holders,
            "refcount": len(holders),
            "diff_digest": record.get("diff_digest"),
            "applied_size": record.get("applied_size"),
            "children": self._children_in(links, layer_id),
            "incomplete": self.incomplete(layer_id) or (not image and not os.path.isdir(os.path.join(path, "upper"))),
        }
        if problem:
            result["problem"] = problem
        if sizes:
            try:
                result["size"] = self._size_without_mounting(layer_id, result["parent"])
            except errors.OverlayError as exc:
                result["size"] = None
                result.setdefault("problem", str(exc))
        return result

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

    def _size_without_mounting(self, layer_id: str, parent: str | None) -> int | None:
        """DiffSize for facts, which must not mount or write: None where only a mount could tell.

        A container layer without a recorded parent is measured against its lower, as Docker
        measures the layers it made.
        """
        path = self.dir(layer_id)
        if self.is_image(layer_id):
            root = os.path.join(path, "root")
            old = os.path.join(self.dir(parent), "root") if parent else None
            if old is not None and not os.path.isdir(old):
                return None
            return changes_mod.changes_size(root, changes_mod.changes_dirs(root, old))
        lower = self.lower_id(layer_id)
        if parent not in (None, lower):
            return None
        upper = os.path.join(path, "upper")
        try:
            found = changes_mod.changes_from_upper(upper, os.path.join(self.dir(lower), "root"))
        except changes_mod.NeedsMergedView:
            return None
        return changes_mod.changes_size(upper, found)

    def facts(self, sizes: bool = False) -> dict:
        """Everything overlay_facts reports; creates and rewrites nothing under home."""
        # Read-only: every layer record and staging/trash listing is read once for all layers.
        with self.store.snapshot():
            return self._facts(sizes)

    def _facts(self, sizes: bool) -> dict:
        report = self.support(test_mount=True)
        mounts = kernel.read_mountinfo()
        layers = {}
        problems = {}
        ids = self.list_layers()
        links = {}
        for layer_id in ids:
            try:
                links[layer_id] = self._links(layer_id)
            except errors.OverlayError as exc:
                links[layer_id] = set()
                problems[layer_id] = str(exc)
        for layer_id in ids:
            try:
                layers[layer_id] = self.layer_record(layer_id, sizes=sizes, mounts=mounts, links=links)
            except errors.OverlayError as exc:
                problems[layer_id] = str(exc)
        for layer_id, problem in problems.items():
            if layer_id in layers:
                layers[layer_id].setdefault("problem", problem)
        for layer_id, record in layers.items():
            if record.get("problem"):
                problems.setdefault(layer_id, record["problem"])
        leftovers = sorted(set(self.store.leftover_ids()) - set(ids)) if os.path.isdir(self.home) else []
        return {
            "supported": report.supported,
            "reason": report.reason,
            "backing_fs": report.backing_fs,
            "supports_d_type": report.supports_d_type,
            "test_mount": report.test_mount,
            "home": self.home,
            "initialized": report.initialized,
            "status": self.status(report),
            "warnings": list(report.warnings),
            "layers": layers,
            "mounts": sorted(i for i in ids if layers.get(i, {}).get("mounted")),
            "incomplete": sorted(set(leftovers) | {i for i, r in layers.items() if r["incomplete"]}),
            "problems": problems,
        }

    # -- mounts: holders reconciled with the kernel ----------------------------------

    def _merged(self, layer_id: str) -> str:
        return os.path.join(self.dir(layer_id), "merged")

    def is_mounted(self, layer_id: str, mounts=None) -> bool:
        """True when the kernel has an overlay mounted on the layer's merged dir."""
        mounts = kernel.read_mountinfo() if mounts is None else mounts
        found = kernel.mount_at(mounts, self._merged(layer_id))
        return found is not None and found.fstype == "overlay"

    def _mount_overlay(self, lower_root: str, layer_dir: str, merged: str, mount_label: str) -> None:
        uid, gid = self._root_ids()
        idmap_mod.mkdir_and_chown(merged, 0o700, uid, gid)
        work = os.path.join(layer_dir, "work")
        data = kernel.overlay_mount_data(lower_root, os.path.join(layer_dir, "upper"), work, mount_label)
        try:
            kernel.mount("overlay", merged, "overlay", 0, data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.rmdir(merged)
            raise errors.MountError("error creating overlay mount to %s: %s" % (merged, exc.strerror)) from None
        # Overlay inside a user namespace needs the kernel's work/work owned by the
        # remapped root to move a dir from lower to upper.
        os.chown(os.path.join(work, "work"), uid, gid)

    def _mount_locked(self, layer_id: str, holder: str, mount_label: str) -> str:
        path = self.dir(layer_id)
        merged = self._merged(layer_id)
        lower = self.lower_id(layer_id)
        lower_root = os.path.join(self.dir(lower), "root")
        if not os.path.isdir(lower_root):
            raise errors.LayerNotFound(
                "layer %s cannot be mounted: its lower layer %s does not exist (expected %s); "
                "recreate %s or remove %s" % (layer_id, lower, lower_root, lower, layer_id))
        holders = self.store.holders(layer_id)
        if holder not in holders:
            # Persist the holder before mounting: a kill in between leaves a holder that
            # is not mounted, which the next mount repairs.
            self.store.set_holders(layer_id, holders + [holder])
        if not self.is_mounted(layer_id):
            faults.checkpoint("mount.before")
            try:
                self._mount_overlay(lower_root, path, merged, mount_label)
            except BaseException:
                if holder not in holders:
                    self.store.set_holders(layer_id, holders)
                raise
        return merged

    def _unmount_locked(self, layer_id: str, holder: str | None, force: bool) -> bool:
        holders = self.store.holders(layer_id)
        if force:
            remaining = []
        elif holder in holders:
            remaining = [h for h in holders if h != holder]
        else:
            return False
        changed = remaining != holders
        if not remaining:
            merged = self._merged(layer_id)
            if self.is_mounted(layer_id):
                # Unmount before dropping the last holder: a kill in between leaves a holder
                # without a mount, never a mount without a holder.
                kernel.recursive_unmount(merged)
                changed = True
            faults.checkpoint("unmount.after")
            with contextlib.suppress(FileNotFoundError):
                # rmdir detaches copies of the mount leaked into other mount namespaces.
                os.rmdir(merged)
        self.store.set_holders(layer_id, remaining)
        return changed

    def mount(self, layer_id: str, holder: str = "ansible", mount_label: str = "") -> dict:
        """Add a holder and mount the overlay if it is not mounted; image layers need no mount."""
        validate_id(holder, "holder name")
        path = self._require(layer_id)
        if mount_label and not selinux_enabled():
            self.warn("mount_label %r ignored: SELinux is not enabled on this host" % mount_label)
            mount_label = ""
        with self.store.layer_lock(layer_id):
            if self._clear_incomplete(layer_id) and not os.path.lexists(path):
                raise errors.LayerNotFound("layer %s does not exist (an interrupted operation left it incomplete)" % layer_id)
            # Another process may have removed it while this one waited for the lock.
            self._require(layer_id)
            if self.is_image(layer_id):
                return {"changed": False, "path": os.path.join(path, "root")}
            before_holders = self.store.holders(layer_id)
            before_mounted = self.is_mounted(layer_id)
            merged = self._mount_locked(layer_id, holder, mount_label)
            changed = holder not in before_holders or not before_mounted
        return {"changed": changed, "path": merged}

    def unmount(self, layer_id: str, holder: str = "ansible", force: bool = False) -> dict:
        """Drop a holder (all of them with force); the last one out unmounts and removes merged."""
        validate_id(holder, "holder name")
        validate_id(layer_id)
        if not os.path.lexists(self.dir(layer_id)):
            return {"changed": False, "path": self._merged(layer_id)}
        with self.store.layer_lock(layer_id):
            if self.is_image(layer_id):
                return {"changed": False, "path": os.path.join(self.dir(layer_id), "root")}
            changed = self._unmount_locked(layer_id, holder, force)
        return {"changed": changed, "path": self._merged(layer_id)}

    # Docker's Get/Put: a per-process count backed by one persisted holder per process.

    def _api_holder(self) -> str:
        return "pid-%d" % os.getpid()

    def get(self, layer_id: str, mount_label: str = "") -> str:
        """Docker's Get: the path to the layer's tree, mounting a container layer on first use."""
        path = self._require(layer_id)
        if self.is_image(layer_id):
            return os.path.join(path, "root")
        count = self._api_refs.get(layer_id, 0)
        if count == 0:
            merged = self.mount(layer_id, self._api_holder(), mount_label)["path"]
        else:
            merged = self._merged(layer_id)
        self._api_refs[layer_id] = count + 1
        return merged

    def put(self, layer_id: str) -> None:
        """Docker's Put: release one Get; the last release unmounts. Never fails, as in Docker."""
        if self.is_image(layer_id):
            return
        count = self._api_refs.get(layer_id, 0) - 1
        if count > 0:
            self._api_refs[layer_id] = count
            return
        self._api_refs.pop(layer_id, None)
        with contextlib.suppress(errors.OverlayError, OSError):
            self.unmount(layer_id, self._api_holder())

    # -- Changes, Diff, DiffSize -----------------------------------------------------

    @contextlib.contextmanager
    def _tree(self, layer_id: str):
        """The layer's full tree for reading: its root, or its merged view mounted for the call."""
        merged = self.get(layer_id)
        try:
            yield merged
        finally:
            self.put(layer_id)

    @contextlib.contextmanager
    def _diff_source(self, layer_id: str, parent: str | None):
        """Yield (changes, root to read changed files from) for layer against parent."""
        self._require(layer_id)
        if parent is None:
            with self._tree(layer_id) as tree:
                yield changes_mod.changes_dirs(tree, None), tree
            return
        self._require(parent)
        if not self.is_image(layer_id) and self.lower_id(layer_id) == parent:
            upper = os.path.join(self.dir(layer_id), "upper")
            lower_root = os.path.join(self.dir(parent), "root")
            try:
                found = changes_mod.changes_from_upper(upper, lower_root)
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

    def diff(self, layer_id: str, parent: str | None, out) -> dict:
        """Docker's Diff: write the layer's tar diff against parent (whole tree without one)."""
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
        dest = os.path.abspath(dest)
        directory = os.path.dirname(dest)
        if not os.path.isdir(directory):
            raise errors.InvalidArgument("cannot export layer %s to %s: the directory %s does not exist" % (layer_id, dest, directory))
        tmp = os.path.join(directory, ".%s.tmp-%d" % (os.path.basename(dest), os.getpid()))
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
