# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Typed errors of the overlay driver.

Every error the driver raises on purpose is an ``OverlayError``; ``str(error)`` is the
message a user sees, and it names the thing that is wrong and, where there is one, the fix.
The modules turn these into ``fail_json`` in one place (``overlay_driver.run_module``).
"""

from __future__ import annotations


class OverlayError(Exception):
    """Base class: anything the driver refuses or fails on deliberately."""


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
