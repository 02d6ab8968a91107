# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Opening a diff file: its compression recognised by magic bytes, whatever its name says.

Plain, gzip, bzip2 and xz come from the standard library; zstd from Python 3.14's
``compression.zstd`` or else the ``zstd`` tool, read through a pipe.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import lzma
import os
import shutil
import stat
import subprocess
import tempfile

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors

_MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_ZSTD_HELP = ("zstd input needs the zstd tool on the host (or Python 3.14+): install it first, "
              "e.g. 'apt-get install zstd', 'dnf install zstd' or 'apk add zstd'")
_CHUNK = 4 << 20


def detect_compression(head: bytes) -> str:
    """The compression of a diff from its first bytes: ``none``, ``gzip``, ``bzip2``, ``xz`` or ``zstd``."""
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return "none"


@contextlib.contextmanager
def _zstd_tool(raw, path: str):
    tool = shutil.which("zstd")
    if tool is None:
        raise errors.ArchiveError("cannot read the diff %s: %s" % (path, _ZSTD_HELP))
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen([tool, "-d", "-c", "-q"], stdin=raw, stdout=subprocess.PIPE, stderr=stderr)
        code = None
        try:
            yield proc.stdout
        except errors.ArchiveError as exc:
            # A broken zstd stream reaches the tar parser as a truncation; zstd's words say more.
            code = _reap(proc)
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
def open_diff(path: str):
    """Open a diff file and yield a binary stream of its uncompressed tar, whatever its compression."""
    try:
        raw = open(path, "rb", buffering=0)  # pylint: disable=consider-using-with
    except OSError as exc:
        raise errors.ArchiveError("cannot open the diff %s: %s" % (path, exc.strerror)) from exc
    with raw:
        try:
            if not stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
                raise errors.ArchiveError("cannot read the diff %s: not a regular file" % path)
            head = os.pread(raw.fileno(), 8, 0)
        except OSError as exc:
            raise errors.ArchiveError("cannot read the diff %s: %s" % (path, exc.strerror)) from exc
        kind = detect_compression(head)
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
                with _zstd_tool(raw, path) as stream:
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
