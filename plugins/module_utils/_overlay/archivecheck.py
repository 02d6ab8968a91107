# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Checking what an image archive holds before any import, and unpacking an archive tar.

Nothing in an archive is trusted: a blob must have the size and digest its descriptor gives,
a layer's uncompressed tar must hash to its diff_id and end where its headers say, and no
path the archive names may lead outside of it. ``imagearchive`` reads the layouts on top.
"""

from __future__ import annotations

import errno
import lzma
import os
import re
import shutil
import tarfile
import zlib
from dataclasses import replace

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import decompress, errors, fsutil, tarheader

_DIGEST = re.compile(r"^(sha256|sha512):([a-f0-9]+)$")
_HEX_LENGTH = {"sha256": 64, "sha512": 128}


def parse_digest(value, what: str) -> tuple:
    """``(algorithm, hex)`` of a ``sha256:<hex>`` or ``sha512:<hex>`` digest; ArchiveError naming ``what`` otherwise."""
    match = _DIGEST.match(value) if isinstance(value, str) else None
    if match is None or len(match.group(2)) != _HEX_LENGTH[match.group(1)]:
        raise errors.ArchiveError("%s: %r is not a sha256 or sha512 digest" % (what, value))
    return match.group(1), match.group(2)


def unpack_archive(path: str, dest: str) -> None:
    """Extract the image archive tar ``path`` into the empty dir ``dest``: dirs, files and links, every name inside ``dest``.

    A symlink is made as it is written; ``read_image`` refuses any path that resolves outside.
    """
    dest = os.path.realpath(dest)
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                name = os.path.normpath(member.name.lstrip("/"))
                if name == ".":
                    continue
                if name.startswith(".." + os.sep) or name == "..":
                    raise errors.ArchiveError("image archive %s: the entry %r leads outside of the archive" % (path, member.name))
                target = os.path.join(dest, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                # An earlier entry may have made a parent a symlink: nothing is written through one.
                if os.path.dirname(name):
                    inside(dest, os.path.dirname(name), "image archive %s, entry %r" % (path, member.name))
                if member.isdir():
                    os.makedirs(target, exist_ok=True)
                elif member.isfile():
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                    with archive.extractfile(member) as source, os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                elif member.issym():
                    os.symlink(member.linkname, target)
                elif member.islnk():
                    os.link(inside(dest, os.path.normpath(member.linkname.lstrip("/")), "image archive %s" % path), target)
                else:
                    raise errors.ArchiveError("image archive %s: the entry %r is neither a file, a directory nor a link"
                                              % (path, member.name))
    except (tarfile.TarError, EOFError) as exc:
        raise errors.ArchiveError("image archive %s: not a readable tar: %s" % (path, exc)) from None
    except OSError as exc:
        raise errors.ArchiveError("image archive %s: cannot extract it: %s: %s" % (path, exc.filename or dest, exc.strerror)) from None


def verify_layer(layer, count: int, descriptor: dict | None = None):
    """Check a layer's blob against its OCI descriptor (when there is one) and its tar against the diff_id.

    Returns the layer with its compression and size filled in; raises ArchiveError naming the
    layer (position, diff_id and path) and what is wrong.
    """
    where = "layer %d of %d (index %d, diff_id %s, %s)" % (layer.index + 1, count, layer.index, layer.diff_id, layer.path)
    try:
        size = os.stat(layer.path).st_size
        with open(layer.path, "rb") as handle:
            compression = decompress.detect_compression(handle.read(8))
    except OSError as exc:
        raise errors.ArchiveError("%s: cannot read it: %s" % (where, exc.strerror)) from None
    if descriptor is not None:
        algorithm, expected = parse_digest(descriptor.get("digest"), where)
        if isinstance(descriptor.get("size"), int) and size != descriptor["size"]:
            raise errors.ArchiveError("%s: truncated or corrupt: the blob has %d bytes, its manifest says %d"
                                      % (where, size, descriptor["size"]))
        actual = file_hash(layer.path, algorithm)
        if actual != expected:
            raise errors.ArchiveError("%s: digest mismatch: the blob's digest is %s:%s, its manifest says %s:%s"
                                      % (where, algorithm, actual, algorithm, expected))
    try:
        with decompress.open_diff(layer.path, name_file=False) as stream:
            checker = _TarChecker(stream)
            digest = decompress.digest_stream(checker)[0]
            checker.finish()
    except errors.ArchiveError as exc:
        raise errors.ArchiveError("%s: truncated or corrupt: %s" % (where, exc)) from None
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        raise errors.ArchiveError("%s: truncated or corrupt: cannot decompress it: %s" % (where, exc)) from None
    if digest != layer.diff_id:
        raise errors.ArchiveError("%s: digest mismatch: the uncompressed tar's digest is %s, the image config's diff_id is %s"
                                  % (where, digest, layer.diff_id))
    return replace(layer, compression=compression, size=size)


class _TarChecker:
    """A stream wrapper that walks the tar headers of what passes through it.

    Feeding ``decompress.digest_stream`` through it checks the tar's structure in the same pass
    that hashes it: a stream that ends inside a header or inside an entry's data raises.
    """

    def __init__(self, stream) -> None:
        self._stream = stream
        self._header = bytearray()
        self._skip = 0
        self._pending = 0
        self._extension = False
        self._ended = False
        self._entry = ""
        self._offset = 0

    def readinto(self, view) -> int:
        """Read into ``view`` from the wrapped stream and walk what came."""
        count = self._stream.readinto(view)
        if count:
            self._feed(memoryview(view)[:count])
        return count

    def _feed(self, data) -> None:
        pos = 0
        while pos < len(data) and not self._ended:
            if self._skip:
                take = min(self._skip, len(data) - pos)
                self._skip -= take
                pos += take
                continue
            take = min(tarheader.BLOCK - len(self._header), len(data) - pos)
            self._header += data[pos:pos + take]
            pos += take
            if len(self._header) == tarheader.BLOCK:
                self._block(bytes(self._header))
                self._header.clear()
        self._offset += len(data)

    def _block(self, block: bytes) -> None:
        if self._extension:
            # A GNU sparse header's extension block: byte 504 says whether another follows.
            self._extension = bool(block[504])
            if not self._extension:
                self._skip = self._pending
            return
        if block == tarheader.ZERO_BLOCK:
            self._ended = True
            return
        if not tarheader.checksum_ok(block):
            raise errors.ArchiveError("not a valid tar: a damaged header after entry %r" % self._entry)
        self._entry = block[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        kind = block[156]
        size = tarheader.data_size(block)
        self._pending = -(-size // tarheader.BLOCK) * tarheader.BLOCK
        if kind == tarheader.GNU_SPARSE and block[482]:
            self._extension = True
        else:
            self._skip = self._pending

    def finish(self) -> None:
        """Raise when the stream ended inside a header or an entry."""
        if self._header or self._skip or self._extension:
            raise errors.ArchiveError("the tar ends inside %s" % (
                "entry %r" % self._entry if self._skip else "a header after entry %r" % self._entry))


def inside(root: str, name: str, where: str) -> str:
    """``name`` resolved inside ``root``; a path that leaves it (``..``, an absolute path, a symlink) is refused."""
    if not isinstance(name, str) or os.path.isabs(name) or not os.path.realpath(os.path.join(root, name)).startswith(root + os.sep):
        raise errors.ArchiveError("%s: the path %r leads outside of the archive" % (where, name))
    return os.path.realpath(os.path.join(root, name))


def file_hash(path: str, algorithm: str) -> str:
    """The hex digest of a file the archive names; a missing or unreadable one fails naming it."""
    try:
        found = fsutil.file_digest(path, algorithm)
    except OSError as exc:
        raise errors.ArchiveError("cannot read %s: %s" % (path, exc.strerror)) from None
    if found is None:
        raise errors.ArchiveError("cannot read %s: %s" % (path, os.strerror(errno.ENOENT)))
    return found.partition(":")[2]
