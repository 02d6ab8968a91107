# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Opening a diff, a file or a stream: its compression recognised by magic bytes, whatever its name says.

Plain, gzip, bzip2 and xz come from the standard library; zstd from Python 3.14's
``compression.zstd`` or else the ``zstd`` tool, read through a pipe (a stream that is not a
file reaches the tool through a feeding thread). A stream is decompressed as it is read, and
read to its end once the consumer is done, so that a stream that verifies itself at its end
(a registry blob) can raise before the caller keeps what it made of it.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import lzma
import os
import shutil
import stat
import subprocess
import tempfile
import threading

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, tarheader

_MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_ZSTD_HELP = ("zstd input needs the zstd tool on the host (or Python 3.14+): install it first, "
              "e.g. 'apt-get install zstd', 'dnf install zstd' or 'apk add zstd'")
_CHUNK = 4 << 20
# Formats a diff is sometimes mistaken for, to say what the file is when it is not a tar.
_OTHER_FORMATS = (
    (b"\x04\x22\x4d\x18", "lz4-compressed data (not supported: recompress it with gzip, xz or zstd)"),
    (b"\x1f\x9d", "compress (.Z) data (not supported: recompress it with gzip, xz or zstd)"),
    (b"LZIP", "lzip-compressed data (not supported: recompress it with gzip, xz or zstd)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"{", "JSON (an image manifest or config? give the layer's tar instead)"),
)


def describe_non_tar(head: bytes) -> str:
    """What a file's first bytes look like, for the ``is not a tar archive`` message."""
    if not head:
        return "it is empty"
    for magic, name in _OTHER_FORMATS:
        if head.startswith(magic):
            return "it looks like %s" % name
    try:
        text = head[:64].decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(char.isprintable() or char in "\t\r\n" for char in text):
        return "it looks like text, starting %r" % text.split("\n", 1)[0][:40]
    return "its first bytes are %s, an unknown format or compression (gzip, bzip2, xz and zstd are read)" % head[:8].hex()


def _require_tar_start(head: bytes, path: str) -> None:
    """Refuse an uncompressed file whose first block is no tar header (nor the zero block of an empty tar)."""
    block = head[:tarheader.BLOCK]
    if len(block) == tarheader.BLOCK and (block == tarheader.ZERO_BLOCK or tarheader.checksum_ok(block)):
        return
    looks = describe_non_tar(head)
    if len(block) == tarheader.BLOCK or not block or looks.startswith("it looks like"):
        raise errors.ArchiveError("%s is not a tar archive: %s" % (path, looks), path=path)
    # A short binary start may be a tar cut inside its first header: the reader says so.


def detect_compression(head: bytes) -> str:
    """The compression of a diff from its first bytes: ``none``, ``gzip``, ``bzip2``, ``xz`` or ``zstd``."""
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return "none"


class _Feeder:
    """Copies a stream into a pipe in a thread of its own; what the stream raised is raised by ``join``."""

    def __init__(self, source, pipe) -> None:
        self._source = source
        self._pipe = pipe
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="zstd-feeder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for chunk in iter(lambda: self._source.read(_CHUNK), b""):
                self._pipe.write(chunk)
        except BrokenPipeError:
            pass
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # The reader must see it: the stream's own error (a digest mismatch) says what went wrong.
            self._failure = exc
        finally:
            with contextlib.suppress(OSError):
                self._pipe.close()

    def join(self) -> None:
        self._thread.join()
        if self._failure is not None:
            raise self._failure


@contextlib.contextmanager
def _zstd_tool(raw, path: str, piped: bool):
    tool = shutil.which("zstd")
    if tool is None:
        raise errors.ArchiveError("cannot read the diff %s: %s" % (path, _ZSTD_HELP), path=path)
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen([tool, "-d", "-c", "-q"], stdin=subprocess.PIPE if piped else raw, stdout=subprocess.PIPE,
                                stderr=stderr)
        feeder = _Feeder(raw, proc.stdin) if piped else None
        code = None
        try:
            yield proc.stdout
            if feeder is not None:
                feeder.join()
        except errors.ArchiveError as exc:
            # A broken zstd stream reaches the tar parser as a truncation; zstd's words say more,
            # and the fed stream's own error (its digest) more still.
            code = _reap(proc)
            if feeder is not None:
                feeder.join()
            if code > 0:
                raise errors.ArchiveError("%s (zstd: %s)" % (exc, _tail(stderr))) from exc
            raise
        finally:
            if code is None:
                code = _reap(proc)
        # A negative code is a signal: SIGPIPE when the reader stopped early, which is not zstd's fault.
        if code > 0:
            raise errors.ArchiveError("cannot decompress the diff %s: zstd exited with %d: %s" % (path, code, _tail(stderr)))


def _reap(proc: subprocess.Popen) -> int:
    """Close the pipe and wait for the process; closing makes a blocked writer exit, so the wait is short."""
    proc.stdout.close()
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _tail(handle) -> str:
    handle.seek(0)
    return handle.read()[-2000:].decode("utf-8", "replace").strip() or "no message"


@contextlib.contextmanager
def open_diff(path: str, name_file: bool = True):
    """Open a diff file and yield a binary stream of its uncompressed tar, whatever its compression.

    Every archive error raised while the stream is read names the file (the reader knows
    only offsets and entries), unless the caller names it itself (``name_file=False``).
    """
    try:
        try:
            raw = open(path, "rb", buffering=0)  # pylint: disable=consider-using-with
        except OSError as exc:
            raise errors.ArchiveError("cannot open the diff %s: %s" % (path, exc.strerror), path=path) from exc
        with raw:
            try:
                if not stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
                    raise errors.ArchiveError("cannot read the diff %s: not a regular file" % path, path=path)
                head = os.pread(raw.fileno(), tarheader.BLOCK, 0)
            except OSError as exc:
                raise errors.ArchiveError("cannot read the diff %s: %s" % (path, exc.strerror), path=path) from exc
            kind = detect_compression(head)
            if kind == "none":
                _require_tar_start(head, path)
            with contextlib.ExitStack() as stack:
                yield stack.enter_context(_decompressed(raw, kind, path))
    except errors.ArchiveError as exc:
        if not name_file or path in exc.message:
            raise
        raise type(exc)("the diff %s: %s" % (path, exc.message), path=exc.path or path, layer_id=exc.layer_id, fix=exc.fix) from exc


@contextlib.contextmanager
def open_stream(raw, what: str):
    """Yield the uncompressed tar of a binary stream ``raw`` (any compression), read as it arrives.

    When the consumer is done, the rest of ``raw`` is read, so a verifying stream raises here,
    before the caller keeps what it made of the tar.
    """
    buffered = io.BufferedReader(raw, _CHUNK)
    try:
        head = buffered.peek(8)[:8]
    except OSError as exc:
        raise errors.ArchiveError("cannot read %s: %s" % (what, exc)) from exc
    with contextlib.ExitStack() as stack:
        stream = stack.enter_context(_decompressed(buffered, detect_compression(head), what, piped=True))
        yield stream
        for _chunk in iter(lambda: stream.read(_CHUNK), b""):
            pass
    for _chunk in iter(lambda: buffered.read(_CHUNK), b""):
        pass


@contextlib.contextmanager
def _decompressed(raw, kind: str, path: str, piped: bool = False):
    """``raw`` decompressed; ``piped``: it is no file, so the zstd tool is fed through a pipe."""
    if kind == "none":
        yield raw
    elif kind == "gzip":
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            yield stream
    elif kind == "bzip2":
        with bz2.BZ2File(raw) as stream:
            yield stream
    elif kind == "xz":
        with lzma.LZMAFile(raw) as stream:
            yield stream
    else:
        try:
            from compression import zstd  # pylint: disable=import-outside-toplevel
        except ImportError:
            with _zstd_tool(raw, path, piped) as stream:
                yield stream
        else:
            with zstd.ZstdFile(raw) as stream:
                yield stream


def digest_stream(stream) -> tuple[str, int]:
    """The ``sha256:<hex>`` digest and the length of everything left in a binary stream."""
    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    length = 0
    while True:
        count = stream.readinto(view)
        if not count:
            return "sha256:" + digest.hexdigest(), length
        digest.update(view[:count])
        length += count
