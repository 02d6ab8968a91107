# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""User-namespace id maps and Docker's ownership-aware mkdir helpers.

A port of moby ``pkg/idtools`` (v19.03): ``IDMap`` ranges, ``IdentityMapping`` with the
remapped root pair, ``ToHost`` (which leaves ids equal to the remapped root alone) and
``ToContainer``, and ``mkdirAs`` behind ``MkdirAndChown``, ``MkdirAllAndChown`` and
``MkdirAllAndChownNew``. Empty maps mean identity, as Docker's nil maps do.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors

# The kernel reserves (uid_t)-1 as "no change", so the last usable id is one below it.
MAX_ID = 0xFFFFFFFE

_FIELDS = ("container_id", "host_id", "size")


@dataclass(frozen=True)
class IDMap:
    """One contiguous range: container ids [container_id, container_id + size) map to host ids."""

    container_id: int
    host_id: int
    size: int


def _to_int(value: object) -> int | None:
    # bool is an int subclass; true/false in a map is a typo, never an id.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _parse_one(item: object, option_name: str, index: int) -> IDMap:
    where = "%s[%d] (%r)" % (option_name, index, item)
    fix = "give a dict with integer keys container_id >= 0, host_id >= 0 and size >= 1, e.g. {container_id: 0, host_id: 100000, size: 65536}"
    if not isinstance(item, dict):
        raise errors.InvalidArgument("%s is not a dict: %s" % (where, fix))
    unknown = sorted(str(key) for key in item if key not in _FIELDS)
    if unknown:
        raise errors.InvalidArgument("%s has unknown keys %s: %s" % (where, ", ".join(unknown), fix))
    values = {}
    for field in _FIELDS:
        if field not in item:
            raise errors.InvalidArgument("%s is missing %s: %s" % (where, field, fix))
        number = _to_int(item[field])
        minimum = 1 if field == "size" else 0
        if number is None or number < minimum:
            raise errors.InvalidArgument("%s has %s=%r, not an integer >= %d: %s" % (where, field, item[field], minimum, fix))
        values[field] = number
    for field in ("container_id", "host_id"):
        last = values[field] + values["size"] - 1
        if last > MAX_ID:
            raise errors.InvalidArgument(
                "%s maps %s up to %d, beyond the largest id %d: make %s + size - 1 at most %d" % (where, field, last, MAX_ID, field, MAX_ID)
            )
    return IDMap(**values)


def parse_id_maps(items: object, option_name: str) -> tuple[IDMap, ...]:
    """Turn the uid_maps/gid_maps option (a list of dicts) into IDMaps, failing on any bad item."""
    if items is None:
        return ()
    if not isinstance(items, (list, tuple)):
        raise errors.InvalidArgument(
            "%s must be a list of dicts with container_id, host_id and size, got %r" % (option_name, items)
        )
    return tuple(_parse_one(item, option_name, index) for index, item in enumerate(items))


def _translate(value: int, maps: tuple[IDMap, ...], inside: bool) -> int:
    """Map an id through ``maps``: a container id to the host (``inside``) or a host id back."""
    if not maps:
        return value
    for entry in maps:
        start, target = (entry.container_id, entry.host_id) if inside else (entry.host_id, entry.container_id)
        if start <= value <= start + entry.size - 1:
            return target + (value - start)
    if inside:
        raise errors.IdMapError("Container ID %d cannot be mapped to a host ID" % value)
    raise errors.IdMapError("Host ID %d cannot be mapped to a container ID" % value)


def _to_host(container_id: int, maps: tuple[IDMap, ...]) -> int:
    return _translate(container_id, maps, inside=True)


def _to_container(host_id: int, maps: tuple[IDMap, ...]) -> int:
    return _translate(host_id, maps, inside=False)


class IdentityMapping:
    """Docker's IdentityMapping: the uid and gid maps of a remapped daemon, first match wins."""

    def __init__(self, uid_maps: tuple[IDMap, ...] | list[IDMap] = (), gid_maps: tuple[IDMap, ...] | list[IDMap] = ()) -> None:
        self.uid_maps = tuple(uid_maps)
        self.gid_maps = tuple(gid_maps)

    def __repr__(self) -> str:
        return "IdentityMapping(uid_maps=%r, gid_maps=%r)" % (self.uid_maps, self.gid_maps)

    @property
    def empty(self) -> bool:
        """True when neither map has entries, so no id is ever shifted."""
        return not self.uid_maps and not self.gid_maps

    def root_pair(self) -> tuple[int, int]:
        """The host (uid, gid) of container root (GetRootUIDGID); owner of every dir the driver makes."""
        return _to_host(0, self.uid_maps), _to_host(0, self.gid_maps)

    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        """Map container ids to host ids, leaving an id equal to the host root's alone (Docker's quirk)."""
        try:
            root_uid, root_gid = self.root_pair()
        except errors.IdMapError:
            # Docker's RootPair swallows this error and yields -1, which matches no real id.
            root_uid, root_gid = -1, -1
        host_uid = uid if uid == root_uid else _to_host(uid, self.uid_maps)
        host_gid = gid if gid == root_gid else _to_host(gid, self.gid_maps)
        return host_uid, host_gid

    def to_container(self, uid: int, gid: int) -> tuple[int, int]:
        """Map host ids back to container ids, for ownership written into exported tars."""
        return _to_container(uid, self.uid_maps), _to_container(gid, self.gid_maps)


def _set_permissions(path: str, mode: int, uid: int, gid: int) -> None:
    # chmod and chown only when something differs: both can fail on NFS even as no-ops.
    info = os.stat(path)
    perm = mode & 0o777
    if stat.S_IMODE(info.st_mode) & 0o777 != perm:
        os.chmod(path, perm)
    if info.st_uid != uid or info.st_gid != gid:
        os.chown(path, uid, gid)


def _not_a_directory(path: str) -> errors.OverlayError:
    return errors.OverlayError("mkdir %s: not a directory" % path)


def _existing(path: str) -> bool:
    """Whether path exists as a directory; raises Docker's ENOTDIR error for anything else."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        # A file in the middle of the path: the mkdir that follows reports it, as Go's does.
        return False
    if not stat.S_ISDIR(info.st_mode):
        raise _not_a_directory(path)
    return True


def _missing_levels(path: str) -> list[str]:
    """The levels of path that do not exist yet, top first; raises when an existing one is not a dir."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if os.path.lexists(current) and not _existing(current):
        raise _not_a_directory(current)
    return missing[::-1]


def _make(directory: str, perm: int) -> None:
    try:
        os.mkdir(directory, perm)
    except FileExistsError:
        # Made by someone else since the stat; like Docker, it is still given our mode and owner.
        if not _existing(directory):
            raise _not_a_directory(directory) from None
    except NotADirectoryError:
        raise _not_a_directory(directory) from None


def _mkdir_as(path: str, mode: int, uid: int, gid: int, make_all: bool, chown_existing: bool) -> None:
    if _existing(path):
        if chown_existing:
            _set_permissions(path, mode, uid, gid)
        return
    created = _missing_levels(path) if make_all else [path]
    for directory in created:
        _make(directory, mode & 0o777)
    # mkdir applied the umask; fixing every dir made here makes the result independent of it.
    for directory in created:
        _set_permissions(directory, mode, uid, gid)


def mkdir_and_chown(path: str, mode: int, uid: int, gid: int) -> None:
    """Docker's MkdirAndChown: make one dir (parent must exist) and set its mode and owner, even if it existed."""
    _mkdir_as(path, mode, uid, gid, make_all=False, chown_existing=True)


def mkdir_all_and_chown(path: str, mode: int, uid: int, gid: int) -> None:
    """Docker's MkdirAllAndChown: make every missing level; set mode and owner on those and on an existing leaf."""
    _mkdir_as(path, mode, uid, gid, make_all=True, chown_existing=True)


def mkdir_all_and_chown_new(path: str, mode: int, uid: int, gid: int) -> None:
    """Docker's MkdirAllAndChownNew: make every missing level with mode and owner; leave existing dirs untouched."""
    _mkdir_as(path, mode, uid, gid, make_all=True, chown_existing=False)
