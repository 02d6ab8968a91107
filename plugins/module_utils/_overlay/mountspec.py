# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Drift: does a live overlay mount use the dirs a layer says it should?

The kernel shows an overlay's ``lowerdir``, ``upperdir`` and ``workdir`` in mountinfo's
super options exactly as they were given at mount time, so a mount made by hand may carry
overlayfs's own escapes: a backslash takes the next character literally (``\\,``, ``\\:``,
``\\\\``), and an unescaped ``:`` separates lower layers. kernel.parse_mountinfo has already
undone mountinfo's octal escapes (``\\040``); this module undoes overlayfs's, so what is
compared is the directories themselves. Paths are compared normalized (``//`` and
trailing slashes do not count as drift).
"""

from __future__ import annotations

import os

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.kernel import MountInfo

DRIFT_OPTIONS = ("lowerdir", "upperdir", "workdir")


def _split_unescaped(value: str, separator: str | None) -> list[str]:
    """Split on ``separator`` (None: nowhere) where it is not escaped, dropping overlayfs's backslash escapes."""
    parts, current, escaped = [], [], False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def overlay_dirs(mount: MountInfo) -> dict[str, tuple[str, ...]]:
    """The overlay's dirs as the kernel reports them: ``{"lowerdir": (layer, ...), "upperdir": (dir,), ...}``.

    Only the options present are keys (a read-only overlay has no upperdir). Lower layers
    given one by one (``lowerdir+=``, kernel 6.8 and later) are appended to ``lowerdir``.
    """
    dirs: dict[str, list[str]] = {}
    for option in mount.super_options:
        key, sep, value = option.partition("=")
        if not sep:
            continue
        if key == "lowerdir":
            dirs.setdefault("lowerdir", []).extend(_split_unescaped(value, ":"))
        elif key == "lowerdir+":
            dirs.setdefault("lowerdir", []).extend(_split_unescaped(value, None))
        elif key in ("upperdir", "workdir"):
            dirs[key] = _split_unescaped(value, None)
    return {key: tuple(values) for key, values in dirs.items()}


def _normalized(paths: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(os.path.normpath(path) for path in paths)


def overlay_drift(mount: MountInfo, lowerdir: str, upperdir: str, workdir: str) -> list[dict[str, str | None]]:
    """How the live ``mount`` differs from the expected dirs, in DRIFT_OPTIONS order; empty when it agrees.

    Each difference is ``{"option", "live", "expected"}``; ``live`` is None for an option the
    mount lacks, and lower layers are joined with ``:``. ``lowerdir`` may name several layers,
    ``:``-separated, as the driver passes them. A mount that is not an overlay at all is one
    difference, ``option`` ``fstype``.
    """
    if mount.fstype != "overlay":
        return [{"option": "fstype", "live": mount.fstype, "expected": "overlay"}]
    live = overlay_dirs(mount)
    expected = {"lowerdir": tuple(lowerdir.split(":")), "upperdir": (upperdir,), "workdir": (workdir,)}
    differences: list[dict[str, str | None]] = []
    for option in DRIFT_OPTIONS:
        live_dirs = live.get(option)
        if live_dirs is not None and _normalized(live_dirs) == _normalized(expected[option]):
            continue
        differences.append({
            "option": option,
            "live": None if live_dirs is None else ":".join(live_dirs),
            "expected": ":".join(expected[option]),
        })
    return differences
