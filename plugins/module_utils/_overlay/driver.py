# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The overlay graph driver: Docker's operations, composed from the parts.

The on-disk layout has one owner, ``layout``; see docs/architecture.md for every part.

Where we differ from Docker on purpose: a layer appears and disappears atomically (built in
staging and renamed into place; renamed into trash before deletion), so Create never deletes
a layer that existed before the call; the mount refcount is a persisted set of named holders
reconciled with the kernel's mount table, not an in-memory counter; Remove unmounts only
mounts at or below the layer dir, never a sibling id that merely shares a prefix, and refuses
anything under home that is not a layer.
"""

from __future__ import annotations

import contextlib
import os

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import idmap as idmap_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import (
    errors, faults, fsutil, kernel, layertar, layout, probe, systemd,
)
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.build import Builder, StreamDiff
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.diffs import Diffs
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.inventory import Inventory
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.layout import ID_PATTERN, TMPROOT_PREFIX, validate_id
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.mounts import API_HOLDER_PREFIX, Mounts, PersistedMounts
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.recovery import Recovery
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.rules import Rules, check_storage_opt, parse_driver_options
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.statestore import StateStore

__all__ = ["Driver", "ID_PATTERN", "TMPROOT_PREFIX", "validate_id"]

_APPLY_HOLDER = "docker-api-apply"


class Driver:
    """One driver home. Cheap to build: nothing touches the disk until an operation runs."""

    def __init__(self, home: str, driver_options=(), uid_maps=(), gid_maps=(), warn=None, units: systemd.UnitFiles | None = None,
                 systemd_run_dir: str = systemd.SYSTEMD_RUN_DIR):
        if not isinstance(home, str) or not home:
            raise errors.InvalidArgument("home must be a non-empty path, got %r: set it to the driver's directory, "
                                         "Docker's <data-root>/overlay" % (home,))
        parse_driver_options(driver_options)
        self.home = os.path.abspath(home)
        self.idmap = idmap_mod.IdentityMapping(
            idmap_mod.parse_id_maps(uid_maps or [], "uid_maps"), idmap_mod.parse_id_maps(gid_maps or [], "gid_maps"))
        self.layout = layout.Layout(self.home)
        self.store = StateStore(self.home)
        self.mounts = Mounts(self.layout, self.store, self.idmap)
        self.recovery = Recovery(self.layout, self.store)
        # The host's unit dir and systemctl unless a test points them elsewhere.
        self.units = systemd.UnitFiles() if units is None else units
        self.inventory = Inventory(self.layout, self.store, self.mounts, self.recovery, self.units)
        self.rules = Rules(self.home, self.layout, self.store, self.inventory, self.warn)
        self.persisted = PersistedMounts(self.layout, self.store, self.mounts, self.rules, self.units, systemd_run_dir)
        self.builder = Builder(self.layout, self.mounts, self.idmap, self.warn)
        self._diffs = Diffs(self.layout, self.idmap, self)
        self.warnings: list[str] = []
        self._warn_sink = warn
        self._api_refs: dict[str, int] = {}

    # -- reading: the layout, the inventory ------------------------------------------

    def warn(self, message: str) -> None:
        """Collect a warning for the caller (the module shows them)."""
        self.warnings.append(message)
        if self._warn_sink:
            self._warn_sink(message)

    def dir(self, layer_id: str) -> str:
        """The layer's directory under home."""
        return self.layout.dir(layer_id)

    def exists(self, layer_id: str) -> bool:
        """Docker's Exists: the layer dir can be stat'ed."""
        return self.layout.exists(validate_id(layer_id))

    def kind(self, layer_id: str) -> str | None:
        """``image``, ``container``, or None when nothing at the id's path is a layer."""
        return self.layout.kind(validate_id(layer_id))

    def is_image(self, layer_id: str) -> bool:
        """A layer is image-type exactly when its root dir exists (Docker's rule)."""
        return self.layout.is_image(layer_id)

    def lower_id(self, layer_id: str) -> str:
        """The id in a container layer's lower-id file; CorruptState when unreadable."""
        return self.layout.lower_id(layer_id)

    def is_mounted(self, layer_id: str, mounts=None) -> bool:
        """True when the kernel has an overlay mounted on the layer's merged dir."""
        return self.mounts.is_mounted(layer_id, mounts)

    def incomplete(self, layer_id: str) -> bool:
        """True when an interrupted operation left traces for this id."""
        return self.recovery.incomplete(layer_id)

    def list_layers(self) -> list[str]:
        """The ids of every layer under home, ours and Docker's, sorted."""
        return self.layout.list_layers()

    def layer_record(self, layer_id: str, sizes: bool = False, mounts=None, links=None) -> dict:
        """The public record of one layer (interface.md): kind, metadata, holders, digests, children."""
        self.require(layer_id)
        return self.inventory.layer_record(layer_id, sizes=sizes, mounts=mounts, links=links)

    def facts(self, sizes: bool = False, test_mount: bool = True, load_module: bool = True) -> dict:
        """Everything overlay_facts reports; creates and rewrites nothing under home.

        ``load_module=False`` (check mode) runs no modprobe. Foreign entries get one warning.
        """
        report = probe.check_support(self.home, modprobe_first=load_module, test_mount=test_mount)
        found = self.inventory.facts(report, self.status(report), sizes)
        if found["foreign"]:
            message = layout.foreign_warning(self.home, found["foreign"])
            found["warnings"].append(message)
            self.warn(message)
        return found

    def require(self, layer_id: str) -> str:
        """The layer's dir (rules.Rules.require); Diffs reaches it here with Get and Put."""
        return self.rules.require(layer_id)

    # -- Init, Status, GetMetadata, Cleanup ------------------------------------------

    def support(self, test_mount: bool = True) -> probe.SupportReport:
        """Docker's Init checks, without creating anything: what facts report."""
        return probe.check_support(self.home, test_mount=test_mount)

    def init(self) -> probe.SupportReport:
        """Docker's Init: refuse an unsupported host, then create home (0700, remapped root)."""
        report = self.rules.require_supported()
        for message in report.warnings:
            self.warn(message)
        uid, gid = self.idmap.root_pair()
        idmap_mod.mkdir_all_and_chown(self.home, 0o700, uid, gid)
        return report

    def status(self, report: probe.SupportReport | None = None) -> list[list[str]]:
        """Docker's Status: backing filesystem and d_type support."""
        report = report or self.support(test_mount=False)
        return [["Backing Filesystem", report.backing_fs], ["Supports d_type", "true" if report.supports_d_type else "false"]]

    def get_metadata(self, layer_id: str) -> dict:
        """Docker's GetMetadata: RootDir for an image layer, the four overlay dirs otherwise."""
        self.require(layer_id)
        return self.layout.metadata(layer_id)

    def cleanup(self) -> None:
        """Docker's Cleanup: lazily unmount everything at or below home."""
        kernel.recursive_unmount(self.home)

    # -- Create, ApplyDiff, Remove ---------------------------------------------------

    def create(self, layer_id: str, parent: str | None = None, storage_opt=None, diff_path: str | None = None,
               diff_stream: StreamDiff | None = None) -> dict:
        """Docker's Create (and CreateReadWrite), optionally followed by ApplyDiff, atomically.

        The diff is a file (``diff_path``) or a stream (``diff_stream``, applied as it arrives
        and verified at its end). The layer is built in ``.graphdriver/staging`` and renamed
        to ``<home>/<id>`` only when whole: a stream that fails its check leaves no layer.
        Returns ``{"applied_size", "diff_digest", "entries"}`` (None without a diff) and
        ``cleared``: whether leftovers of an interrupted operation on this id were cleared first.
        """
        if diff_path is not None and diff_stream is not None:
            raise errors.InvalidArgument("layer %s: give a diff file or a diff stream, not both" % layer_id, layer_id=layer_id)
        validate_id(layer_id)
        if parent is not None:
            validate_id(parent, "parent layer id")
        check_storage_opt(storage_opt)
        self.rules.require_parent(parent)
        self.init()
        with self.store.layer_lock(layer_id):
            cleared = self.recovery.clear(layer_id)
            if os.path.lexists(self.dir(layer_id)):
                raise errors.LayerConflict("layer %s already exists" % layer_id, path=self.dir(layer_id), layer_id=layer_id)
            self.rules.require_parent(parent)
            # The parent's lock keeps it from being removed while the child is built on it.
            # Creates cannot wait on each other in a cycle: each checked, under its own lock,
            # that its id is free and its parent exists before waiting for the parent's lock.
            with self.store.layer_lock(parent) if parent is not None else contextlib.nullcontext():
                self.rules.require_parent(parent)
                result = self._create_locked(layer_id, parent, diff_path if diff_stream is None else diff_stream)
        # Only what this call found and cleared under the lock: another process's staging
        # dir seen from outside the lock is work in progress, not a leftover.
        result["cleared"] = cleared
        return result

    def _create_locked(self, layer_id: str, parent: str | None, diff) -> dict:
        staging = self.store.new_staging(layer_id)
        try:
            result = self.builder.build_layer(staging, parent, diff)
            self.store.set_record(layer_id, {
                "parent": parent, "diff_digest": result["diff_digest"], "applied_size": result["applied_size"]})
            faults.checkpoint("create.commit")
            os.rename(staging, self.dir(layer_id))
        except BaseException:
            with contextlib.suppress(OSError):
                kernel.recursive_unmount(staging)
            with contextlib.suppress(OSError):
                fsutil.remove_tree(staging)
            if not os.path.lexists(self.dir(layer_id)):
                with contextlib.suppress(errors.OverlayError, OSError):
                    self.store.drop_record(layer_id)
            raise
        return result

    def apply_diff(self, layer_id: str, parent: str | None, stream) -> int:
        """Docker's ApplyDiff on a layer made by Create; returns the sum of the tar header sizes.

        With an image parent: hardlink copy of its root into ``tmproot*``, apply, rename to
        root, drop the overlay dirs (Docker's fast path). A base layer gets the same treatment
        with a hardlink copy of its own root, so a bad tar leaves it as it was (Docker
        applies in place). A container layer applies through its mounted merged view, as
        Docker's naive fallback does; there a failed apply leaves the layer pending, and the
        next operation on it removes it.
        """
        path = self.require(layer_id)
        with self.store.layer_lock(layer_id):
            # Another process may have removed it while this one waited for the lock.
            self.require(layer_id)
            parent_root = self.layout.root(parent) if parent else None
            if parent_root and self.is_image(parent):
                source = parent_root
            elif self.is_image(layer_id):
                source = self.layout.root(layer_id)
            else:
                source = None
            if source is not None and self.is_mounted(layer_id):
                raise errors.LayerBusy("layer %s is mounted at %s: unmount it before applying a diff" % (layer_id, self.layout.merged(layer_id)),
                                       path=self.layout.merged(layer_id), layer_id=layer_id)
            self.store.mark_pending(layer_id)
            if source is not None:
                applied = self.builder.apply_beside(layer_id, source, stream, lambda: self.store.clear_pending(layer_id))
                if source == parent_root:
                    self.builder.drop_container_parts(path)
            else:
                merged = self.mounts.mount_locked(layer_id, _APPLY_HOLDER, "")
                try:
                    applied = layertar.apply_layer(merged, stream, idmap=self.idmap, warn=self.warn)
                finally:
                    self.mounts.unmount_locked(layer_id, _APPLY_HOLDER, force=False)
            record = self.store.record(layer_id) or {"parent": parent}
            record.update({"diff_digest": applied.digest, "applied_size": applied.size})
            self.store.set_record(layer_id, record)
            self.store.clear_pending(layer_id)
        return applied.size

    def clear_leftovers(self, layer_id: str) -> bool:
        """Clear, under the lock, what an interrupted operation left for the id; whether there was anything."""
        validate_id(layer_id)
        if not os.path.isdir(self.home):
            return False
        with self.store.layer_lock(layer_id):
            return self.recovery.clear(layer_id)

    def remove(self, layer_id: str, force: bool = True) -> bool:
        """Remove a layer; False when it did not exist.

        ``force=True`` is Docker's Remove (unmount and delete whatever holds it). Without
        force, a layer with holders or dependent layers is refused. Something under home that
        is not a layer (a Docker volume, a user's file) is always refused.
        """
        validate_id(layer_id)
        if not os.path.isdir(self.home):
            return False
        with self.store.layer_lock(layer_id):
            cleared = self.recovery.clear(layer_id)
            if not os.path.lexists(self.dir(layer_id)):
                return cleared
            self.rules.require_layer(layer_id)
            if not force:
                self.rules.removal_blockers(layer_id)
            self.recovery.discard(layer_id)
        return True

    # -- mounts: holders reconciled with the kernel ----------------------------------

    def mount(self, layer_id: str, holder: str = "ansible", mount_label: str = "") -> dict:
        """Add a holder and mount the overlay if it is not mounted; image layers need no mount."""
        validate_id(holder, "holder name")
        path = self.require(layer_id)
        mount_label = self.rules.mount_label(mount_label)
        with self.store.layer_lock(layer_id):
            if self.recovery.clear(layer_id) and not os.path.lexists(path):
                raise errors.LayerNotFound("layer %s does not exist (an interrupted operation left it incomplete)" % layer_id,
                                           path=path, layer_id=layer_id)
            # Another process may have removed it while this one waited for the lock.
            self.require(layer_id)
            if self.is_image(layer_id):
                return {"changed": False, "path": self.layout.root(layer_id)}
            before_holders = self.store.holders(layer_id)
            before_mounted = self.is_mounted(layer_id)
            merged = self.mounts.mount_locked(layer_id, holder, mount_label)
            changed = holder not in before_holders or not before_mounted
        return {"changed": changed, "path": merged}

    def unmount(self, layer_id: str, holder: str = "ansible", force: bool = False) -> dict:
        """Drop a holder (all of them with force); the last one out unmounts and removes merged."""
        validate_id(holder, "holder name")
        validate_id(layer_id)
        if not os.path.lexists(self.dir(layer_id)):
            return {"changed": False, "path": self.layout.merged(layer_id)}
        self.rules.require_layer(layer_id)
        with self.store.layer_lock(layer_id):
            if self.is_image(layer_id):
                return {"changed": False, "path": self.layout.root(layer_id)}
            changed = self.mounts.unmount_locked(layer_id, holder, force)
        return {"changed": changed, "path": self.layout.merged(layer_id)}

    def remount(self, layer_id: str, mount_label: str = "") -> bool:
        """Replace a live overlay whose lowerdir, upperdir or workdir are not the layer's; whether it did."""
        mount_label = self.rules.mount_label(mount_label)
        with self.store.layer_lock(layer_id):
            self.rules.require_layer(layer_id)
            return self.mounts.remount_locked(layer_id, mount_label)

    def drift(self, layer_id: str, mounts=None) -> list[dict]:
        """The differences between the live overlay on the merged dir and the layer's dirs (mountspec.overlay_drift)."""
        return self.mounts.drift(layer_id, mounts)

    # Docker's Get/Put: a per-process count backed by one persisted holder per process.

    @staticmethod
    def _api_holder() -> str:
        return "%s%d" % (API_HOLDER_PREFIX, os.getpid())

    def get(self, layer_id: str, mount_label: str = "") -> str:
        """Docker's Get: the path to the layer's tree, mounting a container layer on first use."""
        self.require(layer_id)
        if self.is_image(layer_id):
            return self.layout.root(layer_id)
        count = self._api_refs.get(layer_id, 0)
        if count == 0:
            merged = self.mount(layer_id, self._api_holder(), mount_label)["path"]
        else:
            merged = self.layout.merged(layer_id)
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

    # -- Changes, Diff, DiffSize, export (diffs.py) -----------------------------------

    def changes(self, layer_id: str, parent: str | None = None) -> list:
        """Docker's Changes: what the layer adds, changes and deletes relative to parent."""
        return self._diffs.changes(layer_id, parent)

    def diff_size(self, layer_id: str, parent: str | None = None) -> int:
        """Docker's DiffSize: bytes of the files added or changed relative to parent."""
        return self._diffs.diff_size(layer_id, parent)

    def diff(self, layer_id: str, parent: str | None, out=None) -> dict:
        """Docker's Diff: write the layer's tar diff against parent (whole tree without one); without ``out``, only hash it."""
        return self._diffs.diff(layer_id, parent, out)

    def export(self, layer_id: str, parent: str | None, dest: str) -> dict:
        """Write the diff to ``dest`` atomically; ``changed`` is False when dest already had these bytes."""
        return self._diffs.export(layer_id, parent, self.rules.export_target(layer_id, dest))
