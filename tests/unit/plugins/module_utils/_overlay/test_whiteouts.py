# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The whiteout and opaque rules, as a table of names (Docker's pkg/archive/whiteouts.go)."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import whiteouts

# name, is_whiteout, is_opaque_marker, is_meta_name, the name it deletes (None: not a single-name whiteout)
NAMES = [
    (".wh.file", True, False, False, "file"),
    (".wh..hidden", True, False, False, ".hidden"),
    (".wh..wh..opq", True, True, True, None),
    (".wh..wh.plnk", True, False, True, ".wh.plnk"),
    (".wh..wh.aufs", True, False, True, ".wh.aufs"),
    (".wh.", True, False, False, ""),
    (".wh.dir.wh.x", True, False, False, "dir.wh.x"),
    ("file", False, False, False, None),
    (".hidden", False, False, False, None),
    ("wh.file", False, False, False, None),
    ("x.wh.file", False, False, False, None),
    (".WH.file", False, False, False, None),
    ("", False, False, False, None),
]


@pytest.mark.parametrize("name, whiteout, opaque, meta, target", NAMES)
def test_whiteout_rules_for_a_name(name, whiteout, opaque, meta, target):
    assert whiteouts.is_whiteout(name) is whiteout, "is_whiteout(%r)" % name
    assert whiteouts.is_opaque_marker(name) is opaque, "is_opaque_marker(%r)" % name
    assert whiteouts.is_meta_name(name) is meta, "is_meta_name(%r)" % name
    if target is None:
        with pytest.raises(ValueError):
            whiteouts.whiteout_target(name)
    else:
        assert whiteouts.whiteout_target(name) == target, "whiteout_target(%r)" % name
        assert whiteouts.whiteout_name(target) == name


# mode, rdev, whether overlayfs reads it as a whiteout
OVERLAY_ENTRIES = [
    (stat.S_IFCHR | 0o000, os.makedev(0, 0), True),
    (stat.S_IFCHR | 0o644, os.makedev(0, 0), True),
    (stat.S_IFCHR | 0o666, os.makedev(1, 3), False),
    (stat.S_IFBLK | 0o000, os.makedev(0, 0), False),
    (stat.S_IFREG | 0o644, 0, False),
    (stat.S_IFDIR | 0o755, 0, False),
]


@pytest.mark.parametrize("mode, rdev, expected", OVERLAY_ENTRIES)
def test_overlay_whiteout_is_a_character_device_0_0(mode, rdev, expected):
    assert whiteouts.is_overlay_whiteout(mode, rdev) is expected


@pytest.mark.parametrize("value, expected", [(b"y", True), (b"n", False), (b"", False), (None, False), (b"yes", False)])
def test_opaque_xattr_value(value, expected):
    assert whiteouts.is_opaque_value(value) is expected
