# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Typed errors of the overlay driver.

Every error the driver raises on purpose is an ``OverlayError``: a message that names what is
wrong, and where known the ``path`` and ``layer_id`` it concerns and a ``fix`` (one of the
``FIX_*`` codes). ``str(error)`` is the message with the fix in generic words; the modules'
facade (``overlay_driver.run_module``) turns errors into ``fail_json`` in one place and words
the fix in terms of the modules' options.
"""

from __future__ import annotations

# The layer is damaged: remove it, forcing the removal, and create it again.
FIX_RECREATE = "recreate"
# The layer exists but differs from what was asked: remove it and create it as asked.
FIX_REPLACE = "replace"

# The layer has holders: release them, or force the removal (which unmounts).
FIX_RELEASE = "release"
# Other layers are built on this one: remove them first, or force the removal.
FIX_DEPENDENTS = "dependents"

GENERIC_FIXES = {
    FIX_RECREATE: "remove it (forcing the removal) and recreate it",
    FIX_REPLACE: "remove it and recreate it as asked",
    FIX_RELEASE: "release its holders first, or force the removal",
    FIX_DEPENDENTS: "remove the dependent layers first, or force the removal",
}


class OverlayError(Exception):
    """Base class: anything the driver refuses or fails on deliberately."""

    def __init__(self, message: str, path: str | None = None, layer_id: str | None = None, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.layer_id = layer_id
        self.fix = fix

    def __str__(self) -> str:
        if self.fix is None:
            return self.message
        return "%s; %s" % (self.message, GENERIC_FIXES[self.fix])

    def fields(self) -> dict:
        """The typed fields that are set, for a failure result."""
        found = {"path": self.path, "layer_id": self.layer_id, "fix": self.fix}
        return {key: value for key, value in found.items() if value is not None}


class InvalidArgument(OverlayError):
    """Bad input (an id, a driver option, an id map) caught before the disk is touched."""


class NotSupported(OverlayError):
    """The host or the home's filesystem cannot run the overlay driver."""


class LayerNotFound(OverlayError):
    """A layer (or a layer that another one names as parent or lower) does not exist."""


class LayerConflict(OverlayError):
    """A layer exists but differs from what was asked (parent, diff digest, kind)."""


class LayerBusy(OverlayError):
    """A layer cannot be removed: it has holders or dependent layers."""


class NotALayer(OverlayError):
    """Something under home is not a layer (a Docker volume, a user's file): the driver leaves it alone."""


class ArchiveError(OverlayError):
    """A tar layer is unreadable, truncated or holds an entry that cannot be applied."""


class UnsafePath(ArchiveError):
    """A tar entry, link or whiteout would reach outside the layer root."""


class CorruptState(OverlayError):
    """A state file (holders, layer record, lower-id) cannot be parsed; names the file."""


class MountError(OverlayError):
    """mount(2) or umount2(2) failed."""


class IdMapError(OverlayError):
    """An id cannot be mapped through the uid/gid maps."""


class CopyError(OverlayError):
    """A tree copy failed; names the path."""
