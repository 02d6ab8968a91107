# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The reader thread of a layer apply: the stream read, decompressed and hashed in big chunks.

A helper thread fills buffers from the stream while the applier parses and writes, so the
sha256 of the layer costs no time on the critical path.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading

_CHUNK = 4 << 20
_BUFFERS = 4


class ReadFailed(Exception):
    """The helper thread could not read or decompress the stream."""


class Feed:
    """The stream, read and hashed by a helper thread in big chunks and consumed here in order.

    Buffers circulate between a free and a full queue, so the data is copied once (into the
    buffer), hashed from it, and written to files straight from it.
    """

    def __init__(self, stream) -> None:
        self._stream = stream
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._full: queue.SimpleQueue = queue.SimpleQueue()
        for _round in range(_BUFFERS):
            self._free.put(bytearray(_CHUNK))
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
                buf = self._free.get()
                if buf is None or self._stopping:
                    return
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
            self._free.put(self._buf)
            self._buf = None
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
            raise ReadFailed(str(item) or type(item).__name__) from item
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
