# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The mount table and the mount syscalls.

Docker's ``pkg/mount`` in Python: mount(2) and umount2(2) through ctypes, a parser for
``/proc/self/mountinfo`` (see proc(5)), the overlay mount data string exactly as the
legacy driver builds it, and a recursive lazy unmount.

A mountinfo line looks like::

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue

The kernel escapes space, tab, newline and backslash in paths, sources and options as
three-digit octal (``\\040``); every field below is unescaped. Options are split on the
commas first, so an escaped comma (``\\054``) inside an option value stays in its option.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
from dataclasses import dataclass
from typing import Callable

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import fsutil

MNT_DETACH = 2
OVERLAY_SUPER_MAGIC = 0x794C7630

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_GO_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


@dataclass(frozen=True)
class MountInfo:
    """One line of /proc/self/mountinfo, unescaped."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    mount_point: str
    options: tuple[str, ...]
    optional: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]


def _unescape(text: str) -> str:
    def byte(match: re.Match) -> str:
        value = int(match.group(1), 8)
        # Escaped bytes above ASCII become the surrogates os.fsencode turns back into bytes.
        return chr(value) if value < 0x80 else chr(0xDC00 + value)

    return _OCTAL_ESCAPE.sub(byte, text)


def _options(text: str) -> tuple[str, ...]:
    return tuple(_unescape(item) for item in text.split(",")) if text else ()


def _parse_line(line: str) -> MountInfo:
    # Single spaces separate the fields; an empty source shows up as two spaces in a row.
    fields = line.split(" ")
    try:
        separator = fields.index("-", 6)
        mount_id, parent_id = int(fields[0]), int(fields[1])
        major, _sep, minor = fields[2].partition(":")
        fstype, source, super_options = fields[separator + 1:separator + 4]
        return MountInfo(
            mount_id=mount_id,
            parent_id=parent_id,
            major=int(major),
            minor=int(minor),
            root=_unescape(fields[3]),
            mount_point=_unescape(fields[4]),
            options=_options(fields[5]),
            optional=tuple(field for field in fields[6:separator] if field),
            fstype=_unescape(fstype),
            source=_unescape(source),
            super_options=_options(super_options),
        )
    except ValueError as exc:
        raise ValueError("malformed mountinfo line %r: %s" % (line, exc)) from exc


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse the text of a mountinfo file, in the kernel's order (parents before their children)."""
    return [_parse_line(line) for line in text.split("\n") if line.strip()]


def read_mountinfo(path: str = "/proc/self/mountinfo") -> list[MountInfo]:
    """Read and parse the live mount table, so callers ask the kernel rather than trust stored state."""
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        return parse_mountinfo(handle.read())


@functools.lru_cache(maxsize=None)
def _libc() -> ctypes.CDLL:
    libc = fsutil.libc()
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.mount.restype = ctypes.c_int
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.umount2.restype = ctypes.c_int
    return libc


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    """mount(2); raises OSError with the errno and ``target`` as its filename."""
    # Like Go's unix.Mount, empty data is passed as NULL, not as an empty string.
    raw_data = os.fsencode(data) if data else None
    if _libc().mount(os.fsencode(source), os.fsencode(target), os.fsencode(fstype), flags, raw_data) != 0:
        fsutil.raise_errno(target)


def unmount(target: str, flags: int = 0) -> None:
    """umount2(2); raises OSError with the errno and ``target`` as its filename."""
    if _libc().umount2(os.fsencode(target), flags) != 0:
        fsutil.raise_errno(target)


def _go_quote(text: str) -> str:
    """Go's ``%q`` of a string: the form SELinux's FormatMountLabel puts in mount data."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _GO_SHORT_ESCAPES:
            out.append(_GO_SHORT_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:
            # A surrogate-escaped byte is invalid UTF-8, which Go writes as \xNN.
            out.append("\\x%02x" % (code - 0xDC00))
        elif code < 0x20 or code == 0x7F:
            out.append("\\x%02x" % code)
        elif char.isprintable():
            out.append(char)
        elif code < 0x10000:
            out.append("\\u%04x" % code)
        else:
            out.append("\\U%08x" % code)
    out.append('"')
    return "".join(out)


def overlay_mount_data(lower: str, upper: str, work: str, mount_label: str = "") -> str:
    """The data string of the legacy driver's overlay mount, with the SELinux context when given."""
    data = "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work)
    if mount_label:
        data += ",context=%s" % _go_quote(mount_label)
    return data


def _is_at_or_below(mount_point: str, path: str) -> bool:
    if path == "/":
        return mount_point.startswith("/")
    return mount_point == path or mount_point.startswith(path + "/")


def _depth(path: str) -> int:
    return len([part for part in path.split("/") if part])


def mounts_at_or_below(mounts: list[MountInfo], path: str) -> list[MountInfo]:
    """The mounts at ``path`` or inside it by whole components, deepest and most recent first, the order to unmount them in."""
    path = os.path.normpath(path)
    # Reversing first makes the stable sort put a later (upper) mount of one point before an earlier one.
    found = [info for info in reversed(mounts) if _is_at_or_below(info.mount_point, path)]
    return sorted(found, key=lambda info: _depth(info.mount_point), reverse=True)


def mount_at(mounts: list[MountInfo], path: str) -> MountInfo | None:
    """The topmost mount whose mount point is ``path`` (the one a lookup of the path sees), or None."""
    path = os.path.normpath(path)
    candidates = [info for info in mounts if info.mount_point == path]
    covered = {info.parent_id for info in candidates}
    # A mount stacked on the same point names the one below as its parent.
    uncovered = [info for info in candidates if info.mount_id not in covered]
    if uncovered:
        return uncovered[-1]
    return candidates[-1] if candidates else None


def recursive_unmount(path: str, read: Callable[[], list[MountInfo]] = read_mountinfo) -> None:
    """Lazily unmount everything at or below ``path``, deepest first, so a layer dir can be removed."""
    error = None
    for info in mounts_at_or_below(read(), os.path.realpath(path)):
        try:
            unmount(info.mount_point, MNT_DETACH)
        except OSError as exc:
            # Detaching a parent already took its children with it; they answer EINVAL or ENOENT.
            if exc.errno not in (errno.EINVAL, errno.ENOENT):
                error = exc
    if error is not None:
        raise error
