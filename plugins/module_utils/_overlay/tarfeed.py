# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reading a layer tar: the reader thread (the stream read, decompressed and hashed in 64 KiB buffers)
and the entries it yields.

A helper thread fills buffers from the stream while the applier parses and writes, so the
sha256 of the layer costs no time on the critical path.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.tarheader import (
    BLOCK, HEADER_ONLY, LONGLINK, LONGNAME, PAX, ZERO_BLOCK, Header, merge_pax, parse_block, parse_pax, text,
)

# 4 MiB in flight as 64 small buffers: file data is written from a buffer the reader has just
# filled, and a 64 KiB one is still in the cache then (4 MiB ones were read back from memory,
# which cost ApplyDiff of a 436 MB layer 16 % more CPU: bench/README.md).
_CHUNK = 64 << 10
_BUFFERS = 64
# Used buffers go back to the reader 16 at a time (1 MiB): each hand-over wakes the reader
# thread, and one wake-up per 64 KiB cost the parser more than the copy it saved.
_BATCH = 16
# The longest PAX or GNU long-name header accepted: a bigger one is an attack, not a name.
_MAX_META = 1 << 20


class ReadFailed(Exception):
    """The helper thread could not read or decompress the stream; ``error`` is what the stream raised."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error) or type(error).__name__)
        self.error = error


class Feed:
    """The stream, read and hashed by a helper thread in 64 KiB buffers and consumed here in order.

    Buffers circulate between a free and a full queue, so the data is copied once (into the
    buffer), hashed from it, and written to files straight from it. The free queue holds
    batches of buffers.
    """

    def __init__(self, stream) -> None:
        self._stream = stream
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._full: queue.SimpleQueue = queue.SimpleQueue()
        for _round in range(_BUFFERS // _BATCH):
            self._free.put([bytearray(_CHUNK) for _buffer in range(_BATCH)])
        self._spent: list = []
        self._hash = hashlib.sha256()
        self._stopping = False
        self._eof = False
        self._buf: bytearray | None = None
        self._view = memoryview(b"")
        self._pos = 0
        self._thread = threading.Thread(target=self._produce, name="layertar-reader", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            while True:
                batch = self._free.get()
                if batch is None or self._stopping:
                    return
                for buf in batch:
                    view = memoryview(buf)
                    filled = 0
                    while filled < _CHUNK:
                        count = self._stream.readinto(view[filled:])
                        if not count:
                            break
                        filled += count
                    if filled:
                        self._hash.update(view[:filled])
                        self._full.put((buf, filled))
                    if filled < _CHUNK:
                        self._full.put(None)
                        return
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # Whatever the decompressor raises must reach the parser, or it would wait forever.
            self._full.put(exc)

    def _advance(self) -> bool:
        if self._buf is not None:
            spent = self._spent
            spent.append(self._buf)
            self._buf = None
            if len(spent) == _BATCH:
                self._free.put(spent)
                self._spent = []
        self._view = memoryview(b"")
        self._pos = 0
        if self._eof:
            return False
        item = self._full.get()
        if item is None:
            self._eof = True
            return False
        if isinstance(item, Exception):
            self._eof = True
            raise ReadFailed(item) from item
        self._buf, filled = item
        self._view = memoryview(self._buf)[:filled]
        return True

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes: fewer only at the end of the stream."""
        pos = self._pos
        if len(self._view) - pos >= size:
            self._pos = pos + size
            return self._view[pos:pos + size].tobytes()
        parts = []
        while size:
            avail = len(self._view) - self._pos
            if not avail:
                if not self._advance():
                    break
                continue
            take = min(avail, size)
            parts.append(self._view[self._pos:self._pos + take].tobytes())
            self._pos += take
            size -= take
        return b"".join(parts)

    def copy_to(self, fd: int, size: int, pad: int = 0) -> int:
        """Write the next ``size`` bytes to ``fd`` and pass over ``pad`` more; returns how many there were of both."""
        pos = self._pos
        end = pos + size
        if end + pad <= len(self._view):
            if size:
                chunk = self._view[pos:end]
                while chunk:
                    chunk = chunk[os.write(fd, chunk):]
            self._pos = end + pad
            return size + pad
        done = self._consume(fd, size)
        return done + self._consume(None, pad) if done == size else done

    def skip(self, size: int) -> int:
        """Pass over the next ``size`` bytes; returns how many there were."""
        end = self._pos + size
        if end <= len(self._view):
            self._pos = end
            return size
        return self._consume(None, size)

    def _consume(self, fd: int | None, size: int) -> int:
        done = 0
        while done < size:
            avail = len(self._view) - self._pos
            if not avail:
                if not self._advance():
                    break
                continue
            take = min(avail, size - done)
            if fd is not None:
                chunk = self._view[self._pos:self._pos + take]
                while chunk:
                    chunk = chunk[os.write(fd, chunk):]
            self._pos += take
            done += take
        return done

    def drain(self) -> str:
        """Consume the rest of the stream and return the digest of all of it."""
        while self._advance():
            pass
        self._thread.join()
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        """Stop the helper thread (it finishes the read under way)."""
        self._stopping = True
        self._free.put(None)
        self._thread.join()


def quote(name: str) -> str:
    """An entry name as messages show it."""
    return '"%s"' % name


class EntryReader:
    """The archive as a sequence of entries: headers with their extensions merged, data copied or skipped.

    Knows where in the archive it is (``previous``, ``current``), so every error names the entry.
    """

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.previous: str | None = None
        self.current: str | None = None

    def where(self) -> str:
        """Where in the archive the reader is, for messages."""
        return "at the start of the archive" if self.previous is None else "after entry %s" % quote(self.previous)

    def next_header(self) -> Header | None:
        """The next real entry with its extensions merged, or None at the end-of-archive marker."""
        records = None
        long_name = long_link = None
        while True:
            block = self.feed.read(BLOCK)
            if len(block) < BLOCK:
                if not block and self.previous is None and records is None:
                    raise errors.ArchiveError("not a tar archive: it is empty (at the start of the archive)")
                raise errors.ArchiveError("truncated archive: it ends without an end-of-archive marker, %s" % self.where())
            if block == ZERO_BLOCK:
                following = self.feed.read(BLOCK)
                if len(following) == BLOCK and following != ZERO_BLOCK:
                    raise errors.ArchiveError("invalid tar header %s: a zero block followed by data" % self.where())
                return None
            try:
                hdr = parse_block(block)
            except ValueError as exc:
                raise errors.ArchiveError("%s %s" % (exc, self.where())) from None
            if hdr.type in (PAX, LONGNAME, LONGLINK):
                if hdr.size > _MAX_META:
                    raise errors.ArchiveError("extended header of %d bytes is too long, %s" % (hdr.size, self.where()))
                data = self.feed.read(hdr.size + (-hdr.size % BLOCK))
                if len(data) < hdr.size + (-hdr.size % BLOCK):
                    raise errors.ArchiveError("truncated archive: unexpected end of an extended header %s" % self.where())
                data = data[:hdr.size]
                if hdr.type == PAX:
                    try:
                        parsed = parse_pax(data)
                    except ValueError as exc:
                        raise errors.ArchiveError("%s %s" % (exc, self.where())) from None
                    records = {**records, **parsed} if records else parsed
                elif hdr.type == LONGNAME:
                    long_name = text(data.partition(b"\0")[0])
                else:
                    long_link = text(data.partition(b"\0")[0])
                continue
            if records:
                try:
                    merge_pax(hdr, records)
                except ValueError as exc:
                    raise errors.ArchiveError("%s in entry %s" % (exc, quote(hdr.name))) from None
            if long_name is not None:
                hdr.name = long_name
            if long_link is not None:
                hdr.linkname = long_link
            return hdr

    def position(self) -> str:
        """The entry being applied, or where the reader is between entries, for messages."""
        return "in entry %s" % quote(self.current) if self.current is not None else self.where()

    def _skip_data(self, hdr: Header) -> None:
        size = 0 if hdr.type in HEADER_ONLY else hdr.size
        size += -size % BLOCK
        if self.feed.skip(size) < size:
            raise errors.ArchiveError("truncated archive: unexpected end of data in entry %s" % quote(hdr.name))

    def _copy_data(self, fd: int, hdr: Header) -> None:
        pad = -hdr.size % BLOCK
        copied = self.feed.copy_to(fd, hdr.size, pad)
        if copied < hdr.size + pad:
            raise errors.ArchiveError("truncated archive: unexpected end of data in entry %s (%d of %d bytes)"
                                      % (quote(hdr.name), min(copied, hdr.size), hdr.size))
