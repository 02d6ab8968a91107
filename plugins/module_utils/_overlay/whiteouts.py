# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Whiteout rules, as plain predicates.

Two encodings meet in this driver:

* the AUFS/tar encoding used by layer tars: a deleted ``name`` is an empty entry
  ``.wh.name`` beside it, and ``dir/.wh..wh..opq`` makes ``dir`` opaque (hides everything
  the lower layers had in it); names under the meta prefix ``.wh..wh.`` are AUFS
  bookkeeping;
* the overlayfs encoding found in an ``upper`` dir: a deleted name is a character device
  0/0, and an opaque directory carries the xattr ``trusted.overlay.opaque=y``.
"""

from __future__ import annotations

import stat

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
WHITEOUT_LINK_DIR = ".wh..wh.plnk"


def is_whiteout(basename: str) -> bool:
    """True for ``.wh.<name>`` and the opaque marker: entries that delete, not create."""
    return basename.startswith(WHITEOUT_PREFIX)


def is_opaque_marker(basename: str) -> bool:
    """True for ``.wh..wh..opq``, the marker that makes its directory opaque."""
    return basename == WHITEOUT_OPAQUE


def is_meta_name(name: str) -> bool:
    """True for a top-level AUFS metadata name (``.wh..wh.*``), which is never extracted."""
    return name.startswith(WHITEOUT_META_PREFIX)


def whiteout_target(basename: str) -> str:
    """The name a ``.wh.<name>`` entry deletes; raises ValueError for non-whiteouts."""
    if not basename.startswith(WHITEOUT_PREFIX) or is_opaque_marker(basename):
        raise ValueError("%r is not a whiteout of a single name" % basename)
    return basename[len(WHITEOUT_PREFIX):]


def whiteout_name(basename: str) -> str:
    """The tar whiteout entry name for deleting ``basename``."""
    return WHITEOUT_PREFIX + basename


def is_overlay_whiteout(mode: int, rdev: int) -> bool:
    """True when an lstat result is overlayfs's whiteout: a character device 0/0."""
    return stat.S_ISCHR(mode) and rdev == 0


def is_opaque_value(value: bytes | None) -> bool:
    """True when a ``trusted.overlay.opaque`` value marks the directory opaque."""
    return value == b"y"
