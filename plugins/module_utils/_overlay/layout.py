# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one owner of the on-disk layout under ``home`` (Docker's ``<data-root>/overlay``).

* image layer: ``<id>/root/``, a plain tree whose regular files are hardlinks shared with
  the parent's root;
* container layer: ``<id>/upper/``, ``<id>/work/`` and ``<id>/lower-id`` (the bare id of
  the image layer whose root is the single lowerdir) and, while mounted, ``<id>/merged/``;
* ``<id>/tmproot*``: a root being built beside the old one (ApplyDiff), swapped in when whole;
  a dir holding only these is an image layer that a killed ApplyDiff left incomplete;
* ``.graphdriver/``: our own state (see statestore); every name with a leading dot is ours.

What counts as a layer (interface.md): a real directory, not a symlink, holding a directory
``root/`` (image), or a directory ``upper/`` or a file ``lower-id`` (container). Anything
else under home whose name does not start with a dot is foreign: a Docker volume, a user's
file. Every other part asks this file for paths and kinds, so that rule has one home.
"""

from __future__ import annotations

import os
import re
import stat

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
STATE_DIR = ".graphdriver"
TMPROOT_PREFIX = "tmproot"
IMAGE = "image"
CONTAINER = "container"

_ROOT = "root"
_UPPER = "upper"
_WORK = "work"
_MERGED = "merged"
_LOWER_ID = "lower-id"
# What ApplyDiff on an image parent leaves behind of a container layer's dirs.
CONTAINER_PARTS = (_UPPER, _WORK, _MERGED, _LOWER_ID)


def validate_id(value, what: str = "layer id") -> str:
    """Refuse anything that is not a safe layer id or holder name, before any disk access."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise errors.InvalidArgument(
            "invalid %s %r: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ "
            "(letters, digits, '_', '.', '-'; no slash, no leading dot, at most 128 characters)" % (what, value))
    return value


def root_in(layer_dir: str) -> str:
    """An image layer's tree, in a layer dir anywhere (home or staging)."""
    return os.path.join(layer_dir, _ROOT)


def upper_in(layer_dir: str) -> str:
    """A container layer's upperdir."""
    return os.path.join(layer_dir, _UPPER)


def work_in(layer_dir: str) -> str:
    """A container layer's workdir."""
    return os.path.join(layer_dir, _WORK)


def merged_in(layer_dir: str) -> str:
    """Where a container layer is mounted."""
    return os.path.join(layer_dir, _MERGED)


def lower_id_in(layer_dir: str) -> str:
    """The file naming a container layer's lower image layer."""
    return os.path.join(layer_dir, _LOWER_ID)


def read_lower_id(layer_dir: str, layer_id: str) -> str:
    """The validated id in a container layer's lower-id file; CorruptState naming the file otherwise."""
    path = lower_id_in(layer_dir)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise errors.CorruptState(
            "layer %s has no readable lower-id file (%s: %s): the layer is damaged" % (layer_id, path, exc.strerror),
            path=path, layer_id=layer_id, fix=errors.FIX_RECREATE) from None
    try:
        return validate_id(raw.decode("utf-8").strip(), "lower id")
    except (UnicodeDecodeError, errors.InvalidArgument):
        raise errors.CorruptState(
            "%s holds %r, not a layer id: the layer %s is damaged" % (path, raw[:80], layer_id),
            path=path, layer_id=layer_id, fix=errors.FIX_RECREATE) from None


def write_lower_id(layer_dir: str, lower: str) -> None:
    """Write a container layer's lower-id file (0666 before the umask, as the seed writes it)."""
    fd = os.open(lower_id_in(layer_dir), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(fd, lower.encode("utf-8"))
    finally:
        os.close(fd)


def _mode(path: str) -> int | None:
    """The path's own file type bits, never a symlink's target's; None when nothing is there."""
    try:
        return stat.S_IFMT(os.lstat(path).st_mode)
    except OSError:
        return None


def is_real_dir(path: str) -> bool:
    """A directory, not a symlink to one: the only kind of dir the driver reaches into."""
    return _mode(path) == stat.S_IFDIR


def kind_in(layer_dir: str) -> str | None:
    """``image``, ``container`` or None (not a layer) for a path, by the shape rule above.

    Every test is on the entry itself (lstat): a symlinked id, ``root``, ``upper`` or
    ``lower-id`` makes nothing a layer, so no operation follows a link out of home.
    """
    if not is_real_dir(layer_dir):
        return None
    if is_real_dir(root_in(layer_dir)):
        return IMAGE
    if is_real_dir(upper_in(layer_dir)) or _mode(lower_id_in(layer_dir)) == stat.S_IFREG:
        return CONTAINER
    # An ApplyDiff killed while swapping roots leaves only its tmproot* dirs: still our
    # image layer, incomplete, which the next operation on it clears. Only then: a foreign
    # dir that merely holds something named tmproot* stays foreign.
    names = _names_in(layer_dir)
    if names and all(name.startswith(TMPROOT_PREFIX) and is_real_dir(os.path.join(layer_dir, name)) for name in names):
        return IMAGE
    return None


def symlinked_parts(layer_dir: str) -> list[str]:
    """The paths among a layer's own entries (root, upper, work, merged, lower-id) that are symlinks."""
    return [path for path in (root_in(layer_dir), upper_in(layer_dir), work_in(layer_dir), merged_in(layer_dir), lower_id_in(layer_dir))
            if _mode(path) == stat.S_IFLNK]


def symlinks_message(layer_id: str, linked: list[str]) -> str:
    """Why a layer whose own entries are symlinks is only ever removed."""
    return "layer %s holds symlinks where the driver keeps its own entries (%s): the driver follows no symlink under home" % (
        layer_id, ", ".join(linked))


def not_a_layer_message(home: str, path: str) -> str:
    """Why ``path`` is left alone, what a layer looks like, and the Docker data-root hint when it applies."""
    return "%s is not a layer (a layer is a real directory holding root/, upper/ or a lower-id file): the driver leaves it alone%s" % (
        path, docker_data_root_hint(home))


def looks_like_docker_data_root(home: str) -> bool:
    """Docker's ``<data-root>`` holds ``image/`` and ``containers/`` or ``volumes/``."""
    return is_real_dir(os.path.join(home, "image")) and (
        is_real_dir(os.path.join(home, "containers")) or is_real_dir(os.path.join(home, "volumes")))


def docker_data_root_hint(home: str) -> str:
    """``; home ... should be <home>/overlay`` when home looks like Docker's data-root, else empty."""
    if not looks_like_docker_data_root(home):
        return ""
    return "; %s looks like a Docker data-root: home should be %s" % (home, os.path.join(home, "overlay"))


def foreign_warning(home: str, names: list[str]) -> str:
    """The one warning about the foreign entries of a home."""
    return "%s holds %d entries that are not layers (%s): the driver lists them in foreign and never touches them%s" % (
        home, len(names), ", ".join(names), docker_data_root_hint(home))


def _names_in(layer_dir: str) -> list[str]:
    try:
        return os.listdir(layer_dir)
    except OSError:
        return []


def _tmproot_names(layer_dir: str) -> list[str]:
    return [name for name in _names_in(layer_dir) if name.startswith(TMPROOT_PREFIX)]


class Layout:
    """The paths and kinds of the layers of one home."""

    def __init__(self, home: str) -> None:
        self.home = home

    def dir(self, layer_id: str) -> str:
        """The layer's directory under home."""
        return os.path.join(self.home, layer_id)

    def root(self, layer_id: str) -> str:
        """An image layer's tree."""
        return root_in(self.dir(layer_id))

    def upper(self, layer_id: str) -> str:
        """A container layer's upperdir."""
        return upper_in(self.dir(layer_id))

    def merged(self, layer_id: str) -> str:
        """Where a container layer is mounted."""
        return merged_in(self.dir(layer_id))

    def exists(self, layer_id: str) -> bool:
        """Docker's Exists: something is at the layer's path (a layer or not)."""
        return os.path.lexists(self.dir(layer_id))

    def kind(self, layer_id: str) -> str | None:
        """``image``, ``container`` or None when nothing at the id's path is a layer."""
        return kind_in(self.dir(layer_id))

    def is_image(self, layer_id: str) -> bool:
        """Docker's rule: a layer is image-type exactly when its root dir exists (a real dir, not a symlink)."""
        return is_real_dir(self.root(layer_id))

    def lower_id(self, layer_id: str) -> str:
        """The validated id in a container layer's lower-id file."""
        return read_lower_id(self.dir(layer_id), layer_id)

    def metadata(self, layer_id: str) -> dict:
        """Docker's GetMetadata: RootDir for an image layer, the four overlay dirs otherwise."""
        if self.is_image(layer_id):
            return {"RootDir": self.root(layer_id)}
        return self.container_metadata(layer_id, self.lower_id(layer_id))

    def container_metadata(self, layer_id: str, lower: str) -> dict:
        """GetMetadata of a container layer on ``lower`` (also for one that is only planned)."""
        path = self.dir(layer_id)
        return {"LowerDir": self.root(lower), "UpperDir": upper_in(path), "WorkDir": work_in(path), "MergedDir": merged_in(path)}

    def tmproots(self, layer_id: str) -> list[str]:
        """Roots an interrupted ApplyDiff left being built beside the layer's own."""
        path = self.dir(layer_id)
        if kind_in(path) is None:
            return []
        return [os.path.join(path, name) for name in _tmproot_names(path)]

    def _names(self) -> list[str]:
        try:
            return sorted(name for name in os.listdir(self.home) if not name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def list_layers(self) -> list[str]:
        """The ids of every layer under home, ours and Docker's, sorted."""
        return [name for name in self._names() if ID_PATTERN.match(name) and self.kind(name) is not None]

    def foreign(self) -> list[str]:
        """The names under home, without a leading dot, that are not layers, sorted."""
        return [name for name in self._names() if not ID_PATTERN.match(name) or self.kind(name) is None]
