# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Small file helpers every part shares: libc, digests of files and streams, deleting trees."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import stat

_CHUNK = 1 << 20


@functools.lru_cache(maxsize=None)
def libc() -> ctypes.CDLL:
    """The C library, loaded once per process with errno kept for the caller."""
    # The running interpreter already links libc; asking for it by name would spawn ldconfig.
    return ctypes.CDLL(None, use_errno=True)


def raise_errno(path: str) -> None:
    """Raise the OSError of the last failed libc call, with ``path`` as its filename."""
    code = ctypes.get_errno()
    raise OSError(code, os.strerror(code), path)


def file_digest(path: str, algorithm: str = "sha256") -> str | None:
    """``<algorithm>:<hex>`` of a file's bytes, or None when it does not exist."""
    digest = hashlib.new(algorithm)
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(block)
    except FileNotFoundError:
        return None
    return "%s:%s" % (algorithm, digest.hexdigest())


class HashingWriter:
    """A file wrapper that hashes and counts what is written through it; without a file it keeps nothing."""

    def __init__(self, handle=None):
        self._handle = handle
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        """Hash, count and pass on ``data``."""
        self.sha256.update(data)
        self.size += len(data)
        return self._handle.write(data) if self._handle is not None else len(data)

    def flush(self) -> None:
        """Flush the wrapped file, if any."""
        if self._handle is not None:
            self._handle.flush()

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of everything written so far."""
        return "sha256:" + self.sha256.hexdigest()


def remove_tree(path: str) -> None:
    """Delete a tree of any depth, making read-only dirs writable first; a vanished path is fine.

    Iterative, because layer tars nest deeper than Python's recursion limit.
    """
    stack = [path]
    while stack:
        current = stack[-1]
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            stack.pop()
            continue
        if not stat.S_ISDIR(info.st_mode):
            try:
                os.unlink(current)
            except FileNotFoundError:
                pass
            stack.pop()
            continue
        if info.st_mode & 0o700 != 0o700:
            os.chmod(current, stat.S_IMODE(info.st_mode) | 0o700)
        try:
            with os.scandir(current) as entries:
                children = [entry.path for entry in entries]
        except FileNotFoundError:
            stack.pop()
            continue
        if children:
            # The dir stays on the stack and is removed once its children are gone.
            stack.extend(children)
        else:
            try:
                os.rmdir(current)
            except FileNotFoundError:
                pass
            stack.pop()
