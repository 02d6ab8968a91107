# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Mounts of container layers: the persisted holders reconciled with the kernel's mount table.

Docker counts Get/Put in daemon memory; here each holder is a name persisted in the state
store, and the kernel's mount table always wins: a layer held on disk but not mounted (after a
reboot, say) is mounted again, and the last holder out unmounts. The ``*_locked`` methods
expect the caller to hold the layer's lock.
"""

from __future__ import annotations

import contextlib
import os

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, faults, kernel, layout, mountspec, systemd
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import idmap as idmap_mod

# Docker's Get/Put keep one persisted holder per process, named after it.
API_HOLDER_PREFIX = "pid-"


class Mounts:
    """Mount and unmount the container layers of one home."""

    def __init__(self, paths: layout.Layout, store, idmap: idmap_mod.IdentityMapping) -> None:
        self.layout = paths
        self.store = store
        self.idmap = idmap

    def is_mounted(self, layer_id: str, mounts=None) -> bool:
        """True when the kernel has an overlay mounted on the layer's merged dir."""
        mounts = kernel.read_mountinfo() if mounts is None else mounts
        found = kernel.mount_at(mounts, self.layout.merged(layer_id))
        return found is not None and found.fstype == "overlay"

    def mount_overlay(self, lower_root: str, layer_dir: str, mount_label: str = "") -> str:
        """Mount ``layer_dir``'s overlay (upper and work on ``lower_root``) on its merged dir; that dir."""
        uid, gid = self.idmap.root_pair()
        merged = layout.merged_in(layer_dir)
        idmap_mod.mkdir_and_chown(merged, 0o700, uid, gid)
        work = layout.work_in(layer_dir)
        data = kernel.overlay_mount_data(lower_root, layout.upper_in(layer_dir), work, mount_label)
        try:
            kernel.mount("overlay", merged, "overlay", 0, data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.rmdir(merged)
            raise errors.MountError("error creating overlay mount to %s: %s" % (merged, exc.strerror), path=merged) from None
        # Overlay inside a user namespace needs the kernel's work/work owned by the
        # remapped root to move a dir from lower to upper.
        os.chown(os.path.join(work, "work"), uid, gid)
        return merged

    def lower_root(self, layer_id: str) -> str:
        """The root of the container layer's lower layer; LayerNotFound naming it when it is gone."""
        lower = self.layout.lower_id(layer_id)
        lower_root = self.layout.root(lower)
        if self.layout.kind(lower) != layout.IMAGE:
            # A symlinked or foreign lower would mount a tree outside home as this layer's view.
            found = "is not an image layer" if os.path.lexists(self.layout.dir(lower)) else "does not exist"
            raise errors.LayerNotFound(
                "layer %s cannot be mounted: its lower layer %s %s (expected a real directory %s); "
                "recreate %s or remove %s" % (layer_id, lower, found, lower_root, lower, layer_id), path=lower_root, layer_id=layer_id)
        return lower_root

    def overlay_dirs(self, layer_id: str) -> tuple[str, str, str]:
        """The lowerdir, upperdir and workdir the layer's overlay is mounted with."""
        layer_dir = self.layout.dir(layer_id)
        return self.lower_root(layer_id), layout.upper_in(layer_dir), layout.work_in(layer_dir)

    def drift(self, layer_id: str, mounts=None) -> list[dict]:
        """How the live overlay on the merged dir differs from the layer's dirs; empty when it agrees or is not mounted."""
        mounts = kernel.read_mountinfo() if mounts is None else mounts
        found = kernel.mount_at(mounts, self.layout.merged(layer_id))
        if found is None or found.fstype != "overlay":
            return []
        return mountspec.overlay_drift(found, *self.overlay_dirs(layer_id))

    def mount_locked(self, layer_id: str, holder: str, mount_label: str) -> str:
        """Add ``holder`` and mount the overlay unless the kernel has it; the merged dir."""
        lower_root = self.lower_root(layer_id)
        holders = self.store.holders(layer_id)
        if holder not in holders:
            # Persist the holder before mounting: a kill in between leaves a holder that
            # is not mounted, which the next mount repairs.
            self.store.set_holders(layer_id, holders + [holder])
        if not self.is_mounted(layer_id):
            faults.checkpoint("mount.before")
            try:
                self.mount_overlay(lower_root, self.layout.dir(layer_id), mount_label)
            except BaseException:
                if holder not in holders:
                    self.store.set_holders(layer_id, holders)
                raise
        return self.layout.merged(layer_id)

    def remount_locked(self, layer_id: str, mount_label: str) -> bool:
        """Replace a live overlay whose dirs are not the layer's by the layer's own; whether it did."""
        if not self.drift(layer_id):
            return False
        lower_root = self.lower_root(layer_id)
        kernel.recursive_unmount(self.layout.merged(layer_id))
        self.mount_overlay(lower_root, self.layout.dir(layer_id), mount_label)
        return True

    def unmount_locked(self, layer_id: str, holder: str | None, force: bool) -> bool:
        """Drop ``holder`` (every holder with force); the last one out unmounts. Whether anything changed."""
        holders = self.store.holders(layer_id)
        if force:
            remaining = []
        elif holder in holders:
            remaining = [h for h in holders if h != holder]
        else:
            return False
        changed = remaining != holders
        if not remaining:
            merged = self.layout.merged(layer_id)
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


class PersistedMounts:
    """systemd mount units that bring a container layer's overlay back at boot."""

    def __init__(self, paths: layout.Layout, store, mounts: Mounts, rules, units: systemd.UnitFiles, systemd_run_dir: str) -> None:
        self.layout = paths
        self.store = store
        self.mounts = mounts
        self.rules = rules
        self.units = units
        self.systemd_run_dir = systemd_run_dir

    def systemd_is_init(self) -> bool:
        """True when systemd is this host's init, so mount units mean something."""
        return systemd.systemd_is_init(self.systemd_run_dir)

    def require_systemd(self) -> None:
        """Refuse ``persist`` on a host whose init is not systemd, before anything is mounted."""
        systemd.require_systemd(self.systemd_run_dir)

    def unit_name(self, layer_id: str) -> str:
        """The name of the mount unit for the layer's merged dir."""
        return systemd.unit_name_for(self.layout.merged(layer_id))

    def mount_unit(self, layer_id: str, mount_label: str) -> tuple[str, str]:
        """The mount unit's name and text: the overlay exactly as mount_overlay mounts it."""
        lower, upper, work = self.mounts.overlay_dirs(layer_id)
        merged = self.layout.merged(layer_id)
        text = systemd.render_mount_unit("overlay", merged, "overlay", kernel.overlay_mount_data(lower, upper, work, mount_label),
                                         "graphdriver.overlay layer %s" % layer_id, [lower, upper, work])
        return systemd.unit_name_for(merged), text

    def install_unit(self, layer_id: str, mount_label: str = "") -> bool:
        """Write and enable the layer's mount unit (reload and enable only when it changed); whether anything changed."""
        mount_label = self.rules.mount_label(mount_label)
        self.require_systemd()
        with self.store.layer_lock(layer_id):
            self.rules.require_layer(layer_id)
            return self.units.install(*self.mount_unit(layer_id, mount_label))

    def remove_unit(self, layer_id: str) -> bool:
        """Disable and remove the layer's mount unit; whether there was one."""
        layout.validate_id(layer_id)
        with self.store.layer_lock(layer_id):
            return self.units.uninstall(self.unit_name(layer_id))
