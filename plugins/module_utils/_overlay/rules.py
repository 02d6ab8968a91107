# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The refusals: what the plans check before anything runs, and the driver again under the lock.

One home for every rule, so a check-mode plan and the operation it stages refuse the same
thing with the same message.
"""

from __future__ import annotations

import os

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, layout, probe
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.layout import validate_id

STORAGE_OPT_UNSUPPORTED = "--storage-opt is not supported for overlay"


def parse_driver_options(options) -> None:
    """Docker's parseOptions: every item must be key=value, and overlay accepts no key at all."""
    for option in options or ():
        if "=" not in option:
            raise errors.InvalidArgument("Unable to parse key/value option: %s" % option)
        key = option.split("=", 1)[0].strip().lower()
        raise errors.InvalidArgument("overlay: unknown option %s" % key)


def check_storage_opt(storage_opt) -> None:
    """Docker's overlay refuses every storage option."""
    if storage_opt:
        raise errors.InvalidArgument(STORAGE_OPT_UNSUPPORTED)


def selinux_enabled() -> bool:
    """True when the kernel runs SELinux, so a mount label means something."""
    return os.path.exists("/sys/fs/selinux/enforce")


class Rules:
    """The rules of one home; ``warn`` collects what a rule lets pass with a warning."""

    def __init__(self, home: str, paths: layout.Layout, store, inventory, warn) -> None:
        self.home = home
        self.layout = paths
        self.store = store
        self.inventory = inventory
        self.warn = warn

    def require(self, layer_id: str) -> str:
        """The layer's dir; LayerNotFound when nothing is there."""
        validate_id(layer_id)
        path = self.layout.dir(layer_id)
        if not os.path.lexists(path):
            raise errors.LayerNotFound("layer %s does not exist (looked for %s)" % (layer_id, path), path=path, layer_id=layer_id)
        self.require_layer(layer_id)
        linked = layout.symlinked_parts(path)
        if linked:
            # Removal stays possible (it unlinks, never follows); everything else would reach out of home.
            raise errors.CorruptState(layout.symlinks_message(layer_id, linked), path=linked[0], layer_id=layer_id, fix=errors.FIX_RECREATE)
        return path

    def require_parent(self, parent: str | None) -> None:
        """LayerNotFound when the parent is missing; NotALayer or CorruptState when it is not a sound layer."""
        if parent is None:
            return
        if not os.path.lexists(self.layout.dir(parent)):
            raise errors.LayerNotFound("parent layer %s does not exist" % parent, path=self.layout.dir(parent), layer_id=parent)
        self.require(parent)

    def require_supported(self) -> probe.SupportReport:
        """Docker's Init checks, without creating anything; NotSupported on a host that cannot run overlay."""
        report = probe.check_support(self.home, test_mount=False)
        if not report.supported:
            raise errors.NotSupported("overlay cannot run at %s: %s" % (self.home, report.reason), path=self.home)
        return report

    def removal_blockers(self, layer_id: str) -> None:
        """Refuse to remove a layer that has holders or dependent layers (Remove without force)."""
        holders = self.store.holders(layer_id)
        if holders:
            raise errors.LayerBusy("layer %s is mounted (holders: %s)" % (layer_id, ", ".join(holders)), layer_id=layer_id,
                                   fix=errors.FIX_RELEASE)
        children = self.inventory.children(layer_id)
        if children:
            raise errors.LayerBusy("layer %s has dependent layers: %s" % (layer_id, ", ".join(children)), layer_id=layer_id,
                                   fix=errors.FIX_DEPENDENTS)

    def require_layer(self, layer_id: str) -> str:
        """The kind of what is at the id's path; NotALayer when it is something else (a volume, a file)."""
        found = self.layout.kind(layer_id)
        if found is None:
            path = self.layout.dir(layer_id)
            if not os.path.lexists(path):
                # Removed by another process (renamed into trash) since the caller saw it.
                raise errors.LayerNotFound("layer %s does not exist (looked for %s)" % (layer_id, path), path=path, layer_id=layer_id)
            raise errors.NotALayer(layout.not_a_layer_message(self.home, path), path=path, layer_id=layer_id)
        return found

    @staticmethod
    def export_target(layer_id: str, dest: str) -> str:
        """The absolute export path; InvalidArgument when its directory does not exist."""
        dest = os.path.abspath(dest)
        directory = os.path.dirname(dest)
        if not os.path.isdir(directory):
            raise errors.InvalidArgument("cannot export layer %s to %s: the directory %s does not exist" % (layer_id, dest, directory),
                                         path=directory, layer_id=layer_id)
        return dest

    def mount_label(self, label: str) -> str:
        """The label to mount with: none, with a warning, on a host without SELinux."""
        if label and not selinux_enabled():
            self.warn("mount_label %r ignored: SELinux is not enabled on this host" % label)
            return ""
        return label
