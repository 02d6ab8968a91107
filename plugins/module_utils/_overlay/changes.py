# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Change detection between two trees (Docker's ``ChangesDirs``) and ``ChangesSize``.

``changes_dirs`` walks a new and an old tree side by side, names sorted bytewise, and reports
what a layer tar must carry to turn the old tree into the new one: ``A`` for new nodes and
everything below them, ``C`` for nodes whose metadata differ (and for every directory with a
change below it), ``D`` for the top of a deleted subtree. ``/`` is never reported.

Docker compares metadata only, so a file rewritten with same-size content within the same
second is missed (moby#31805). Here, when two regular files (or two symlinks) tie on every
compared field but are different inodes, their content (or target) is compared as well.

``changes_from_upper`` gives the result ``changes_dirs(<merged view>, <lower>)`` would give,
but reads an overlay ``upper`` directly: only what the container touched is looked at, and no
mount is needed. Whiteouts (char 0/0) and opaque directories are translated to what the merged
view shows. A renamed directory (``trusted.overlay.redirect``) or a metadata-only copy-up
(``trusted.overlay.metacopy``) needs the kernel's lookup to be read exactly, so those raise
``NeedsMergedView`` and the caller falls back to the merged view.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import stat
import sys
from typing import NamedTuple

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, whiteouts, xattrs

MODIFY = "C"
ADD = "A"
DELETE = "D"

# Docker's ChangeType values (Modify=0, Add=1, Delete=2): graphtest sorts on them after the path.
_KIND_RANK = {MODIFY: 0, ADD: 1, DELETE: 2}

_CHUNK = 256 * 1024
_NS = 1000000000
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


class NeedsMergedView(errors.OverlayError):
    """An upper dir holds a redirect or metacopy entry; only the merged view gives exact changes."""


@functools.total_ordering
@dataclasses.dataclass(frozen=True)
class Change:
    """One change: ``path`` absolute from the layer root, ``kind`` one of ``C``, ``A``, ``D``."""

    path: str
    kind: str

    def sort_key(self) -> tuple[bytes, int]:
        """Bytewise path, then Docker's kind order (C, A, D)."""
        return os.fsencode(self.path), _KIND_RANK.get(self.kind, len(_KIND_RANK))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Change):
            return NotImplemented
        return self.sort_key() < other.sort_key()


class FileMeta(NamedTuple):
    """The fields Docker records per node: lstat mode/uid/gid/rdev/size/mtime and the caps xattr."""

    mode: int
    uid: int
    gid: int
    rdev: int
    size: int
    mtime_ns: int
    caps: bytes | None = None


def meta_of(st: os.stat_result, caps: bytes | None = None) -> FileMeta:
    """The compared fields of an lstat result."""
    return FileMeta(st.st_mode, st.st_uid, st.st_gid, st.st_rdev, st.st_size, st.st_mtime_ns, caps)


def same_fs_time(a_ns: int, b_ns: int) -> bool:
    """Docker's sameFsTimeSpec: equal seconds, and equal nanoseconds or either of them 0."""
    a_sec, a_frac = divmod(a_ns, _NS)
    b_sec, b_frac = divmod(b_ns, _NS)
    # A zero fraction on either side is how a time that went through a tar looks.
    return a_sec == b_sec and (a_frac == b_frac or a_frac == 0 or b_frac == 0)


def stat_differs(old: FileMeta, new: FileMeta) -> bool:
    """Docker's statDifferent: mode/uid/gid/rdev, plus size and mtime for non-directories."""
    if old.mode != new.mode or old.uid != new.uid or old.gid != new.gid or old.rdev != new.rdev:
        return True
    # A directory's size and mtime move with its entries; its entries are compared on their own.
    if stat.S_ISDIR(old.mode):
        return False
    return old.size != new.size or not same_fs_time(old.mtime_ns, new.mtime_ns)


def meta_differs(old: FileMeta, new: FileMeta) -> bool:
    """Docker's Modify test: stat_differs, or different security.capability bytes (absent == empty)."""
    return stat_differs(old, new) or (old.caps or None) != (new.caps or None)


def read_caps(path: str | bytes) -> bytes | None:
    """The raw security.capability xattr of ``path`` (not followed), or None; errors count as none, as in Docker."""
    try:
        # listxattr first: a miss costs a third of a failing getxattr, and most files have no caps.
        if xattrs.CAPABILITY not in os.listxattr(path, follow_symlinks=False):
            return None
        return os.getxattr(path, xattrs.CAPABILITY, follow_symlinks=False)
    except OSError:
        return None


def _same_content(old_path: str, new_path: str) -> bool:
    try:
        # Buffered reads return whole chunks until EOF, so the two sides stay aligned.
        with open(old_path, "rb") as old_file, open(new_path, "rb") as new_file:
            while True:
                old_chunk = old_file.read(_CHUNK)
                if old_chunk != new_file.read(_CHUNK):
                    return False
                if not old_chunk:
                    return True
    except OSError:
        # Unreadable now means unknown; reporting a change is the safe side.
        return False


def _same_target(old_path: str, new_path: str) -> bool:
    try:
        return os.readlink(old_path) == os.readlink(new_path)
    except OSError:
        return False


def _modified(old_path: str, old_st: os.stat_result, new_path: str, new_st: os.stat_result, new_names: list | None = None) -> bool:
    """Docker's rule plus our content compare for regular files and symlinks that tie on metadata.

    ``new_names``, when the caller already listed the new entry's xattrs, saves reading them again.
    """
    # stat_differs on the lstat results themselves, without building two FileMeta per entry.
    if (old_st.st_mode != new_st.st_mode or old_st.st_uid != new_st.st_uid or old_st.st_gid != new_st.st_gid
            or old_st.st_rdev != new_st.st_rdev):
        return True
    if not stat.S_ISDIR(old_st.st_mode) and (
            old_st.st_size != new_st.st_size or not same_fs_time(old_st.st_mtime_ns, new_st.st_mtime_ns)):
        return True
    new_caps = read_caps(new_path) if new_names is None else _caps_of(new_path, new_names)
    if (read_caps(old_path) or None) != (new_caps or None):
        return True
    if old_st.st_dev == new_st.st_dev and old_st.st_ino == new_st.st_ino:
        return False
    if stat.S_ISREG(new_st.st_mode):
        return new_st.st_size > 0 and not _same_content(old_path, new_path)
    if stat.S_ISLNK(new_st.st_mode):
        return not _same_target(old_path, new_path)
    return False


def _scan(path: str | None) -> dict[str, os.DirEntry]:
    if path is None:
        return {}
    with os.scandir(path) as entries:
        return {entry.name: entry for entry in entries}


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        # Gone between readdir and lstat: Docker treats the name as absent on that side.
        return None


def _child(rel: str, name: str) -> str:
    return rel + "/" + name


def _add_tree(rel: str, entry: os.DirEntry, out: list[Change]) -> None:
    out.append(Change(rel, ADD))
    if entry.is_dir(follow_symlinks=False):
        for child in _scan(entry.path).values():
            _add_tree(_child(rel, child.name), child, out)


def _walk_pair(rel: str, new_dir: str, new_dev: int, old_dir: str | None, old_dev: int, out: list[Change]) -> bool:
    start = len(out)
    new_entries = _scan(new_dir)
    old_entries = _scan(old_dir)
    # Equal d_ino only proves the same inode within one filesystem (hardlinked image roots).
    same_dev = old_dir is not None and new_dev == old_dev
    for name, new_entry in new_entries.items():
        old_entry = old_entries.pop(name, None)
        if old_entry is not None and same_dev and old_entry.inode() == new_entry.inode():
            continue
        path = _child(rel, name)
        new_st = _lstat(new_entry.path)
        old_st = _lstat(old_entry.path) if old_entry is not None else None
        if new_st is None:
            if old_st is not None:
                out.append(Change(path, DELETE))
            continue
        if old_entry is None or old_st is None:
            _add_tree(path, new_entry, out)
            continue
        modified = _modified(old_entry.path, old_st, new_entry.path, new_st)
        if modified:
            out.append(Change(path, MODIFY))
        if stat.S_ISDIR(new_st.st_mode):
            old_sub = old_entry.path if stat.S_ISDIR(old_st.st_mode) else None
            below = _walk_pair(path, new_entry.path, new_st.st_dev, old_sub, old_st.st_dev, out)
            if below and not modified:
                out.append(Change(path, MODIFY))
    out.extend(Change(_child(rel, name), DELETE) for name in old_entries)
    return len(out) > start


def changes_dirs(new_root: str, old_root: str | None = None) -> list[Change]:
    """Docker's ChangesDirs(new_root, old_root) plus a content compare on metadata ties; sorted."""
    out: list[Change] = []
    new_dev = os.lstat(new_root).st_dev
    old_dev = os.lstat(old_root).st_dev if old_root is not None else -1
    _walk_pair("", new_root, new_dev, old_root, old_dev, out)
    out.sort(key=Change.sort_key)
    return out


class UpperChanges(list):
    """The sorted changes of ``changes_from_upper``, with what the walk learnt about each upper entry.

    ``seen`` maps a change's path to the ``(lstat result, xattr names)`` of its upper entry, read
    once during the walk, and ``upper`` is the directory they were read from. ``write_changes_tar``
    and ``changes_size`` reuse them for that same root instead of asking the kernel again.
    """

    def __init__(self, items=(), upper: str = "", seen: dict | None = None) -> None:
        super().__init__(items)
        self.upper = upper
        self.seen = {} if seen is None else seen
        self._sorted = list(self)

    def in_order(self) -> bool:
        """True while the list still holds exactly the sorted changes it was made with: no new sort needed."""
        return list.__eq__(self, self._sorted)


def _overlay_names(path: str) -> list:
    """The xattr names of an upper entry; raises NeedsMergedView for redirect and metacopy entries."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENOENT):
            return []
        raise
    if names:
        for name in (xattrs.OVERLAY_REDIRECT, xattrs.OVERLAY_METACOPY):
            if name in names:
                raise NeedsMergedView("%s carries %s: changes of this layer can only be read through its merged view" % (path, name))
    return names


def _is_opaque(path: str, names: list) -> bool:
    if xattrs.OVERLAY_OPAQUE not in names:
        return False
    return whiteouts.is_opaque_value(os.getxattr(path, xattrs.OVERLAY_OPAQUE, follow_symlinks=False))


def _caps_of(path: str, names: list) -> bytes | None:
    """read_caps with the xattr names already listed."""
    if xattrs.CAPABILITY not in names:
        return None
    try:
        return os.getxattr(path, xattrs.CAPABILITY, follow_symlinks=False)
    except OSError:
        return None


def _add_upper_tree(rel: str, path: str, st: os.stat_result, names: list, out: list[Change], seen: dict) -> None:
    if whiteouts.is_overlay_whiteout(st.st_mode, st.st_rdev):
        return
    out.append(Change(rel, ADD))
    seen[rel] = (st, names)
    if stat.S_ISDIR(st.st_mode):
        with os.scandir(path) as entries:
            for entry in entries:
                child = entry.path
                _add_upper_tree(rel + "/" + entry.name, child, entry.stat(follow_symlinks=False), _overlay_names(child), out, seen)


def _walk_upper(rel: str, upper_dir: str, lower_dir: str | None, opaque: bool, out: list[Change], seen: dict) -> bool:
    start = len(out)
    # Only an opaque dir needs the lower listing (its other names are deletions); elsewhere
    # one lstat per upper name answers whether the lower has it, without reading big lower dirs.
    lower_entries = _scan(lower_dir) if opaque else None
    lower_prefix = None if lower_dir is None else lower_dir + "/"
    is_whiteout, s_isdir = whiteouts.is_overlay_whiteout, stat.S_ISDIR
    with os.scandir(upper_dir) as scan:
        entries = list(scan)
    for entry in entries:
        name = entry.name
        path = rel + "/" + name
        upper_path = entry.path
        upper_st = entry.stat(follow_symlinks=False)
        if lower_entries is not None:
            lower_entry = lower_entries.pop(name, None)
            lower_path = None if lower_entry is None else lower_entry.path
            lower_st = None if lower_path is None else _lstat(lower_path)
        elif lower_prefix is not None:
            lower_path = lower_prefix + name
            lower_st = _lstat(lower_path)
        else:
            lower_path = lower_st = None
        if is_whiteout(upper_st.st_mode, upper_st.st_rdev):
            if lower_path is not None and (lower_st is not None or lower_entries is not None):
                out.append(Change(path, DELETE))
            continue
        # A whiteout's xattrs mean nothing: they are read only for what the merged view shows.
        names = _overlay_names(upper_path)
        if lower_st is None:
            _add_upper_tree(path, upper_path, upper_st, names, out, seen)
            continue
        modified = _modified(lower_path, lower_st, upper_path, upper_st, names)
        if modified:
            out.append(Change(path, MODIFY))
            seen[path] = (upper_st, names)
        if s_isdir(upper_st.st_mode):
            lower_sub = lower_path if s_isdir(lower_st.st_mode) else None
            # Below an opaque dir the kernel never looks at lower layers again: opacity is inherited.
            below = _walk_upper(path, upper_path, lower_sub, opaque or _is_opaque(upper_path, names), out, seen)
            if below and not modified:
                out.append(Change(path, MODIFY))
                seen[path] = (upper_st, names)
    if lower_entries:
        out.extend(Change(_child(rel, name), DELETE) for name in lower_entries)
    return len(out) > start


def change_key(change: Change) -> tuple[bytes, int]:
    """Change.sort_key without the method call and os.fsencode's checks (the same bytes)."""
    return change.path.encode(_FS_ENCODING, _FS_ERRORS), _KIND_RANK.get(change.kind, 3)


def changes_from_upper(upper: str, lower_root: str) -> list[Change]:
    """What changes_dirs(merged, lower_root) gives, read from the overlay ``upper`` without a mount; sorted.

    The list is an ``UpperChanges``: it also carries the lstat and xattr names of each upper entry it names.
    """
    out: list[Change] = []
    seen: dict = {}
    # The upper root itself is never opaque to the kernel: the lower root is always merged in.
    _walk_upper("", upper, lower_root, False, out, seen)
    out.sort(key=change_key)
    return UpperChanges(out, upper, seen)


def changes_size(root: str, changes: list[Change]) -> int:
    """Docker's ChangesSize: bytes of added or modified non-directories, hardlinked inodes once."""
    size = 0
    seen: set[int] = set()
    for change in changes:
        if change.kind not in (MODIFY, ADD):
            continue
        st = _lstat_quiet(os.path.join(root, change.path.lstrip("/")))
        if st is None or stat.S_ISDIR(st.st_mode):
            continue
        if st.st_nlink > 1:
            # Keyed by inode number alone, as Docker does: root is one filesystem.
            if st.st_ino in seen:
                continue
            seen.add(st.st_ino)
        size += st.st_size
    return size


def _lstat_quiet(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        # Docker logs and skips paths it cannot stat.
        return None
