# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Applying a tar layer to a directory: Docker's ``UnpackLayer``, made safe and fast.

``open_diff`` recognises plain, gzip, bzip2, xz and zstd diffs by their magic bytes.
``apply_layer`` reads the uncompressed tar with its own header parser (ustar, PAX, GNU long
names, base-256 numbers) and applies every entry the way moby ``pkg/archive`` does (driver.md
2.1): whiteouts delete, ``.wh..wh..opq`` empties a directory of what this tar did not bring,
an existing path is replaced unless dir meets dir, ownership goes through the id map, and
directory times are set last. Where Docker relies on a chroot, every path here is resolved
inside the destination with chroot semantics instead, and nothing is ever written into an
inode that existed before: the destination is usually a hardlink copy of the parent layer.

A helper thread reads, decompresses and hashes the stream in big chunks while the main thread
parses and writes, so the sha256 of the layer costs no time on the critical path.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import lzma
import os
import posixpath
import queue
import shutil
import stat
import subprocess
import tempfile
import threading
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, faults, treecopy, whiteouts

if TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.idmap import IdentityMapping

_MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_ZSTD_HELP = ("zstd input needs the zstd tool on the host (or Python 3.14+): install it first, "
              "e.g. 'apt-get install zstd', 'dnf install zstd' or 'apk add zstd'")

_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
_CHUNK = 4 << 20
_BUFFERS = 4
_MAX_META = 1 << 20
_NS = 1000000000
# Go's time.Unix(0, 1<<63-1): the last instant Docker's Chtimes accepts (year 2262).
_MAX_NS = (1 << 63) - 1
_MAX_SYMLINKS = 40

_AREG, _REG, _LNK, _SYM, _CHR, _BLK, _DIR, _FIFO = 0, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36
_PAX, _GLOBAL, _LONGNAME, _LONGLINK = 0x78, 0x67, 0x4C, 0x4B
# Go's tar reader gives these no data section whatever their size field says.
_HEADER_ONLY = frozenset((_LNK, _SYM, _CHR, _BLK, _DIR, _FIFO))
_DEVICE_BITS = {_CHR: stat.S_IFCHR, _BLK: stat.S_IFBLK, _FIFO: stat.S_IFIFO}
_XATTR_PREFIX = b"SCHILY.xattr."
_NUL_TO_SPACE = bytes.maketrans(b"\0", b" ")
_IGNORED_XATTR_ERRNOS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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


@dataclass(frozen=True)
class ApplyResult:
    """What applying a layer did: Docker's size (sum of every header's size), entry count, digest, warnings."""

    size: int
    entries: int
    digest: str
    warnings: list = field(default_factory=list)


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


class _ReadFailed(Exception):
    """The helper thread could not read or decompress the stream."""


class _Feed:
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
            raise _ReadFailed(str(item) or type(item).__name__) from item
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


class _Header:
    """One tar entry with its PAX and GNU extensions merged, as Go's ``tar.Reader`` returns it."""

    __slots__ = ("name", "type", "mode", "uid", "gid", "size", "mtime", "linkname", "atime", "devmajor", "devminor", "xattrs")

    def __init__(self, name: str, kind: int, mode: int, uid: int, gid: int, size: int, mtime: int, linkname: str, atime: int | None,
                 devmajor: int, devminor: int) -> None:
        self.name, self.type, self.mode, self.uid, self.gid, self.size, self.mtime = name, kind, mode, uid, gid, size, mtime
        self.linkname, self.atime, self.devmajor, self.devminor = linkname, atime, devmajor, devminor
        self.xattrs: list | None = None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _number(raw: bytes) -> int:
    """A numeric header field: octal text, or base-256 (GNU/star) when the high bit is set."""
    if raw and raw[0] & 0x80:
        value = int.from_bytes(bytes((raw[0] & 0x7F,)) + raw[1:], "big")
        if raw[0] & 0x40:
            value -= 1 << (len(raw) * 8 - 1)
        return value
    text = raw.strip(b" \0")
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError("invalid numeric field %r" % raw)
    return int(text, 8)


def _byte_sum(data) -> int:
    """The exact sum of at most 256 bytes, at C speed.

    adler32's low half is 1 + the byte sum modulo 65521, and 256 bytes sum to at most 65280,
    so nothing wraps.
    """
    return (zlib.adler32(data) & 0xFFFF) - 1


def _checksum_ok(block: bytes) -> bool:
    try:
        stored = int(block[148:156].translate(_NUL_TO_SPACE), 8)
    except ValueError:
        return False
    view = memoryview(block)
    # The checksum field itself counts as eight spaces (256).
    unsigned = _byte_sum(view[:256]) + _byte_sum(view[256:]) - sum(block[148:156]) + 256
    if stored == unsigned:
        return True
    # Some old writers summed signed chars.
    high = len(block[:148].translate(None, bytes(range(128)))) + len(block[156:].translate(None, bytes(range(128))))
    return stored == unsigned - 256 * high


def _parse_block(block: bytes) -> _Header:
    if not _checksum_ok(block):
        raise ValueError("invalid tar header (checksum mismatch)")
    try:
        return _fields(block)
    except ValueError as exc:
        raise ValueError("invalid tar header (%s)" % exc) from None


def _fields(block: bytes) -> _Header:
    atime = None
    name = block[:100].partition(b"\0")[0]
    magic = block[257:263]
    if magic == b"ustar\0":
        if block[508:512] == b"tar\0":
            prefix = block[345:476].partition(b"\0")[0]
            if block[476]:
                atime = _number(block[476:488]) * _NS
        else:
            prefix = block[345:500].partition(b"\0")[0]
        if prefix:
            name = prefix + b"/" + name
    elif magic == b"ustar " and block[263:265] == b" \0" and block[345]:
        atime = _number(block[345:357]) * _NS
    kind = block[156]
    try:
        # Nearly every writer stores octal digits padded with NULs or spaces: with NULs made
        # spaces, int() reads them at C speed; the rest (base-256, empty fields) takes _number.
        fields = block[100:148].translate(_NUL_TO_SPACE)
        mode, uid, gid, size, mtime = int(fields[:8], 8), int(fields[8:16], 8), int(fields[16:24], 8), int(fields[24:36], 8), int(fields[36:], 8)
    except ValueError:
        mode, uid, gid, size = _number(block[100:108]), _number(block[108:116]), _number(block[116:124]), _number(block[124:136])
        mtime = _number(block[136:148])
    if size < 0:
        raise ValueError("negative size")
    link = block[157:257]
    linkname = link.partition(b"\0")[0].decode("utf-8", "surrogateescape") if link[0] else ""
    major = minor = 0
    if kind in (_CHR, _BLK):
        major, minor = _number(block[329:337]), _number(block[337:345])
    elif kind == _AREG:
        kind = _DIR if name.endswith(b"/") else _REG
    return _Header(name.decode("utf-8", "surrogateescape"), kind, mode, uid, gid, size, mtime * _NS, linkname, atime, major, minor)


def _parse_pax(data: bytes) -> dict:
    """PAX extended header records (``"%d %s=%s\\n"``) as a dict of bytes to bytes."""
    records = {}
    pos = 0
    while pos < len(data):
        if not data[pos:].strip(b"\0"):
            break
        space = data.find(b" ", pos)
        length_text = data[pos:space] if space > pos else b""
        if not length_text.isdigit():
            raise ValueError("invalid PAX record length")
        end = pos + int(length_text)
        if end <= space or end > len(data) or data[end - 1:end] != b"\n":
            raise ValueError("invalid PAX record")
        key, eq, value = data[space + 1:end - 1].partition(b"=")
        if not eq or not key:
            raise ValueError("invalid PAX record")
        records[key] = value
        pos = end
    return records


def _pax_time(raw: bytes) -> int:
    """A PAX time (``seconds[.fraction]``, maybe negative) in nanoseconds."""
    text = raw.decode("ascii")
    sign = -1 if text.startswith("-") else 1
    whole, _sep, frac = text.lstrip("-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError("invalid PAX time %r" % raw)
    return sign * (int(whole) * _NS + int((frac + "000000000")[:9]))


def _pax_int(raw: bytes) -> int:
    text = raw.lstrip(b"-")
    if not text.isdigit():
        raise ValueError("invalid PAX number %r" % raw)
    return int(raw)


def _merge_pax(hdr: _Header, records: dict) -> None:
    for key, value in records.items():
        if key == b"path":
            if b"\0" in value:
                raise ValueError("invalid PAX path")
            hdr.name = _text(value)
        elif key == b"linkpath":
            if b"\0" in value:
                raise ValueError("invalid PAX linkpath")
            hdr.linkname = _text(value)
        elif key == b"size":
            hdr.size = _pax_int(value)
            if hdr.size < 0:
                raise ValueError("invalid PAX size")
        elif key == b"uid":
            hdr.uid = _pax_int(value)
        elif key == b"gid":
            hdr.gid = _pax_int(value)
        elif key == b"mtime":
            hdr.mtime = _pax_time(value)
        elif key == b"atime":
            hdr.atime = _pax_time(value)
        elif key.startswith(_XATTR_PREFIX):
            if hdr.xattrs is None:
                hdr.xattrs = []
            hdr.xattrs.append((_text(key[len(_XATTR_PREFIX):]), value))
        elif key.startswith(b"GNU.sparse."):
            raise ValueError("sparse files are not supported")


def _clean_name(name: str) -> str | None:
    """A tar name cleaned like Go's ``filepath.Clean`` + ``Join`` onto the root, relative to it
    (``.`` for the root itself); ``None`` when it climbs out. Absolute names count from the root."""
    if name.startswith("./"):
        name = name[2:]
    if name and name[0] not in "./" and "//" not in name and "/." not in name:
        return name.rstrip("/")
    if name.startswith("/"):
        return posixpath.normpath("/" + name.lstrip("/")).lstrip("/") or "."
    cleaned = posixpath.normpath(name)
    if cleaned == ".." or cleaned.startswith("../"):
        return None
    return cleaned


def _symlink_escapes(rel_dir: str, target: str) -> bool:
    """True when a relative symlink target, joined to the link's own dir, climbs above the root."""
    if target.startswith("/"):
        return False
    joined = posixpath.normpath(posixpath.join(rel_dir, target))
    return joined == ".." or joined.startswith("../")


def _times(atime: int | None, mtime: int, is_dir: bool) -> tuple[int, int]:
    """Docker's (atime, mtime) in ns: atime >= mtime for non-dirs, anything outside [1970, 2262] becomes the epoch."""
    if atime is None:
        atime = 0 if is_dir else mtime
    elif not is_dir and atime < mtime:
        atime = mtime
    if not 0 <= atime <= _MAX_NS:
        atime = 0
    if not 0 <= mtime <= _MAX_NS:
        mtime = 0
    return atime, mtime


def _quote(name: str) -> str:
    return '"%s"' % name


class _Applier:
    """The state of one apply: the destination, a cache of real directories, and Docker's bookkeeping."""

    def __init__(self, dest: str, feed: _Feed, idmap, userns: bool) -> None:
        self.root = dest
        self.feed = feed
        self.to_host = None if idmap is None or idmap.empty else idmap.to_host
        self.userns = userns
        # Real directories known to exist below the root, as a tree of dicts keyed by name:
        # a path whose every component is here has no symlink in it. Removing or replacing
        # anything pops its subtree.
        self.tree: dict = {}
        self.unpacked: set = set()
        self.holds_unpacked: set = set()
        # Inodes this apply created: only their metadata may be changed through a hardlink.
        self.fresh: set = set()
        self.dirs: list = []
        self.size = 0
        self.entries = 0
        self.previous: str | None = None
        self.current: str | None = None
        self.xattr_errors: list = []
        self.devices_skipped = 0
        self.plnk_dir: str | None = None
        self.plnk: dict = {}

    def where(self) -> str:
        """Where in the archive the reader is, for messages."""
        return "at the start of the archive" if self.previous is None else "after entry %s" % _quote(self.previous)

    def next_header(self) -> _Header | None:
        """The next real entry with its extensions merged, or None at the end-of-archive marker."""
        records = None
        long_name = long_link = None
        while True:
            block = self.feed.read(_BLOCK)
            if len(block) < _BLOCK:
                if not block and self.previous is None and records is None:
                    raise errors.ArchiveError("not a tar archive: it is empty (at the start of the archive)")
                raise errors.ArchiveError("truncated archive: it ends without an end-of-archive marker, %s" % self.where())
            if block == _ZERO_BLOCK:
                following = self.feed.read(_BLOCK)
                if len(following) == _BLOCK and following != _ZERO_BLOCK:
                    raise errors.ArchiveError("invalid tar header %s: a zero block followed by data" % self.where())
                return None
            try:
                hdr = _parse_block(block)
            except ValueError as exc:
                raise errors.ArchiveError("%s %s" % (exc, self.where())) from None
            if hdr.type in (_PAX, _LONGNAME, _LONGLINK):
                if hdr.size > _MAX_META:
                    raise errors.ArchiveError("extended header of %d bytes is too long, %s" % (hdr.size, self.where()))
                data = self.feed.read(hdr.size + (-hdr.size % _BLOCK))
                if len(data) < hdr.size + (-hdr.size % _BLOCK):
                    raise errors.ArchiveError("truncated archive: unexpected end of an extended header %s" % self.where())
                data = data[:hdr.size]
                if hdr.type == _PAX:
                    try:
                        parsed = _parse_pax(data)
                    except ValueError as exc:
                        raise errors.ArchiveError("%s %s" % (exc, self.where())) from None
                    records = {**records, **parsed} if records else parsed
                elif hdr.type == _LONGNAME:
                    long_name = _text(data.partition(b"\0")[0])
                else:
                    long_link = _text(data.partition(b"\0")[0])
                continue
            if records:
                try:
                    _merge_pax(hdr, records)
                except ValueError as exc:
                    raise errors.ArchiveError("%s in entry %s" % (exc, _quote(hdr.name))) from None
            if long_name is not None:
                hdr.name = long_name
            if long_link is not None:
                hdr.linkname = long_link
            return hdr

    def run(self) -> None:
        """Apply every entry in order, then the directory times in tar order."""
        next_header, apply, checkpoint = self.next_header, self.apply, faults.checkpoint
        while True:
            hdr = next_header()
            if hdr is None:
                break
            self.size += hdr.size
            self.entries += 1
            checkpoint("apply.entry")
            self.current = hdr.name
            try:
                apply(hdr)
            except OSError as exc:
                raise errors.ArchiveError("cannot apply entry %s: %s" % (_quote(hdr.name), exc)) from exc
            self.previous = hdr.name
            self.current = None
        for rel, atime, mtime in self.dirs:
            self._set_dir_times(rel, atime, mtime)

    def position(self) -> str:
        """The entry being applied, or where the reader is between entries, for messages."""
        return "in entry %s" % _quote(self.current) if self.current is not None else self.where()

    def apply(self, hdr: _Header) -> None:
        """One entry: skip, whiteout or create, following UnpackLayer's steps."""
        kind = hdr.type
        if kind == _GLOBAL:
            self._skip_data(hdr)
            return
        rel = _clean_name(hdr.name)
        if rel is None:
            raise errors.UnsafePath("tar entry %s is outside of %s" % (_quote(hdr.name), _quote(self.root)))
        if whiteouts.is_meta_name(rel):
            if kind == _REG and rel.startswith(whiteouts.WHITEOUT_LINK_DIR + "/"):
                self._stash_aufs_file(rel, hdr)
            else:
                self._skip_data(hdr)
            if whiteouts.is_opaque_marker(rel):
                self._opaque(self.root, self.tree)
            return
        if rel == ".":
            self._apply_root(hdr)
            return
        head, _sep, base = rel.rpartition("/")
        parent, node = self._resolve(head, hdr.name, True)
        if whiteouts.is_whiteout(base):
            self._skip_data(hdr)
            if whiteouts.is_opaque_marker(base):
                self._opaque(parent, node)
            else:
                self._whiteout(parent, node, base, hdr.name)
            return
        path = parent + "/" + base
        self._create(path, node, base, hdr, head)
        self.unpacked.add(path)
        holders = self.holds_unpacked
        while parent not in holders and parent != self.root:
            holders.add(parent)
            parent = parent.rpartition("/")[0]

    def _skip_data(self, hdr: _Header) -> None:
        size = 0 if hdr.type in _HEADER_ONLY else hdr.size
        size += -size % _BLOCK
        if self.feed.skip(size) < size:
            raise errors.ArchiveError("truncated archive: unexpected end of data in entry %s" % _quote(hdr.name))

    def _copy_data(self, fd: int, hdr: _Header) -> None:
        pad = -hdr.size % _BLOCK
        copied = self.feed.copy_to(fd, hdr.size, pad)
        if copied < hdr.size + pad:
            raise errors.ArchiveError("truncated archive: unexpected end of data in entry %s (%d of %d bytes)"
                                      % (_quote(hdr.name), min(copied, hdr.size), hdr.size))

    def _resolve(self, head: str, name: str, create: bool):
        """The real directory ``head`` (relative to the root) stands for, and its cache node.

        Symlinks on the way are followed as if the root were ``/``. With ``create``, missing
        directories are made with mode 0600 (Docker's quirk); without it, None when missing.
        """
        if not head:
            return self.root, self.tree
        node = self.tree
        for part in head.split("/"):
            node = node.get(part)
            if node is None:
                return self._resolve_slow(head.split("/"), name, create)
        return self.root + "/" + head, node

    def _resolve_slow(self, parts: list, name: str, create: bool):
        stack = [(self.root, self.tree)]
        pending = parts[::-1]
        links = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            path, node = stack[-1]
            candidate = path + "/" + part
            child = node.get(part)
            if child is None:
                try:
                    mode = os.lstat(candidate).st_mode
                except FileNotFoundError:
                    if not create:
                        return None
                    os.mkdir(candidate, 0o600)
                    mode = stat.S_IFDIR
                if stat.S_ISLNK(mode):
                    links += 1
                    if links > _MAX_SYMLINKS:
                        raise errors.ArchiveError("entry %s: too many levels of symbolic links in its path" % _quote(name))
                    target = os.readlink(candidate)
                    if target.startswith("/"):
                        del stack[1:]
                    pending.extend(reversed(target.split("/")))
                    continue
                if not stat.S_ISDIR(mode):
                    if not create:
                        return None
                    raise errors.ArchiveError("cannot create entry %s: %s is not a directory"
                                              % (_quote(name), _quote(candidate[len(self.root) + 1:])))
                child = node[part] = {}
            stack.append((candidate, child))
        return stack[-1]

    def _remove(self, path: str, node: dict | None, name: str) -> None:
        """Docker's RemoveAll: whatever is at ``path`` goes, a directory with its subtree."""
        if node is not None:
            node.pop(name, None)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            shutil.rmtree(path)

    def _whiteout(self, parent: str, node: dict, base: str, name: str) -> None:
        target = whiteouts.whiteout_target(base)
        if target in ("", ".", ".."):
            raise errors.UnsafePath("whiteout %s does not name an entry of its directory" % _quote(name))
        self._remove(parent + "/" + target, node, target)

    def _opaque(self, directory: str, node: dict | None) -> None:
        """Remove everything below ``directory`` that this tar did not extract (and that holds nothing it did)."""
        with os.scandir(directory) as scan:
            entries = list(scan)
        for entry in entries:
            if entry.path in self.unpacked or entry.path in self.holds_unpacked:
                if entry.is_dir(follow_symlinks=False):
                    self._opaque(entry.path, None if node is None else node.get(entry.name))
            else:
                self._remove(entry.path, node, entry.name)

    def _owner(self, hdr: _Header) -> tuple:
        if self.to_host is None:
            return hdr.uid, hdr.gid
        try:
            return self.to_host(hdr.uid, hdr.gid)
        except errors.IdMapError as exc:
            raise errors.IdMapError("entry %s: %s" % (_quote(hdr.name), exc)) from exc

    def _set_xattrs(self, target, hdr: _Header) -> None:
        for key, value in hdr.xattrs:
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in _IGNORED_XATTR_ERRNOS:
                    raise
                self.xattr_errors.append("%s on %s (%s)" % (key, _quote(hdr.name), exc.strerror))

    def _metadata(self, path: str, hdr: _Header, owner: tuple, chmod: bool, times: bool) -> None:
        """createTarFile's tail for entries without an open fd: lchown, xattrs, chmod, times."""
        os.chown(path, owner[0], owner[1], follow_symlinks=False)
        if hdr.xattrs:
            self._set_xattrs(path, hdr)
        if chmod:
            os.chmod(path, hdr.mode & 0o7777)
        if times:
            os.utime(path, ns=_times(hdr.atime, hdr.mtime, False), follow_symlinks=False)

    def _make(self, path: str, node: dict, base: str, create: Callable[[], None]) -> None:
        """Create a new inode at ``path``; whatever was there is removed first, never reused."""
        try:
            create()
        except FileExistsError:
            self._remove(path, node, base)
            create()

    def _create(self, path: str, node: dict, base: str, hdr: _Header, head: str) -> None:
        kind = hdr.type
        if kind == _REG:
            self._create_file(path, node, base, hdr, (hdr.uid, hdr.gid) if self.to_host is None else self._owner(hdr), None)
            return
        if kind == _DIR:
            mode = hdr.mode & 0o7777
            try:
                os.mkdir(path, mode)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    self._remove(path, node, base)
                    os.mkdir(path, mode)
            node.setdefault(base, {})
            self.fresh.discard(path)
            self._metadata(path, hdr, self._owner(hdr), True, False)
            self.dirs.append((head + "/" + base if head else base, hdr.atime, hdr.mtime))
            return
        if kind == _LNK:
            self._create_hardlink(path, node, base, hdr)
            return
        self.fresh.discard(path)
        if kind == _SYM:
            if _symlink_escapes(head or ".", hdr.linkname):
                raise errors.UnsafePath("invalid symlink %s -> %s: it points outside of %s"
                                        % (_quote(hdr.name), _quote(hdr.linkname), _quote(self.root)))
            self._make(path, node, base, lambda: os.symlink(hdr.linkname, path))
            self._metadata(path, hdr, self._owner(hdr), False, True)
        elif kind in _DEVICE_BITS:
            if kind != _FIFO and self.userns:
                # Docker drops device nodes in a user namespace, after removing what was there.
                self._remove(path, node, base)
                self.devices_skipped += 1
                return
            device = os.makedev(hdr.devmajor, hdr.devminor)
            self._make(path, node, base, lambda: os.mknod(path, (hdr.mode & 0o7777) | _DEVICE_BITS[kind], device))
            self._metadata(path, hdr, self._owner(hdr), True, True)
        else:
            raise errors.ArchiveError("entry %s: unhandled tar header type %d (%r)" % (_quote(hdr.name), kind, chr(kind)))

    def _create_file(self, path: str, node: dict, base: str, hdr: _Header, owner: tuple, source: int | None) -> None:
        """A regular file, made new with O_EXCL and filled from the archive (or ``source``), metadata by fd."""
        mode = hdr.mode & 0o7777
        try:
            fd = os.open(path, _CREATE_FLAGS, mode)
        except FileExistsError:
            self._remove(path, node, base)
            fd = os.open(path, _CREATE_FLAGS, mode)
        try:
            if source is None:
                self._copy_data(fd, hdr)
            else:
                offset = 0
                while True:
                    sent = os.sendfile(fd, source, offset, _CHUNK)
                    if not sent:
                        break
                    offset += sent
            os.fchown(fd, owner[0], owner[1])
            if hdr.xattrs:
                self._set_xattrs(fd, hdr)
            # chown cleared any setuid/setgid bits the create gave; this puts them back.
            os.fchmod(fd, mode)
            mtime = hdr.mtime
            if hdr.atime is None and 0 <= mtime <= _MAX_NS:
                os.utime(fd, ns=(mtime, mtime))
            else:
                os.utime(fd, ns=_times(hdr.atime, mtime, False))
        finally:
            os.close(fd)
        self.fresh.add(path)

    def _create_hardlink(self, path: str, node: dict, base: str, hdr: _Header) -> None:
        target_rel = _clean_name(hdr.linkname)
        if target_rel is None:
            raise errors.UnsafePath("invalid hardlink %s -> %s: the target is outside of %s"
                                    % (_quote(hdr.name), _quote(hdr.linkname), _quote(self.root)))
        if target_rel.startswith(whiteouts.WHITEOUT_LINK_DIR):
            self._link_aufs_file(path, node, base, hdr, target_rel)
            return
        head, _sep, tbase = target_rel.rpartition("/")
        found = None if target_rel == "." else self._resolve(head, hdr.name, False)
        target = None if found is None else found[0] + "/" + tbase
        try:
            mode = os.lstat(target).st_mode if target is not None else None
        except FileNotFoundError:
            mode = None
        if mode is None or stat.S_ISDIR(mode):
            raise errors.ArchiveError("entry %s: hardlink target %s %s" % (
                _quote(hdr.name), _quote(hdr.linkname), "does not exist" if mode is None else "is a directory"))
        if target == path:
            raise errors.ArchiveError("entry %s is a hardlink to itself" % _quote(hdr.name))
        self._make(path, node, base, lambda: os.link(target, path, follow_symlinks=False))
        if target in self.fresh:
            # The inode was made by this apply, so its metadata is ours to set (Docker sets it
            # always, which changes the parent layer's inode when the target came from there).
            self._metadata(path, hdr, self._owner(hdr), True, True)
            self.fresh.add(path)
        else:
            self.fresh.discard(path)

    def _stash_aufs_file(self, rel: str, hdr: _Header) -> None:
        """Keep a file of AUFS's ``.wh..wh.plnk`` aside: hardlinks into it become copies of it."""
        if self.plnk_dir is None:
            self.plnk_dir = tempfile.mkdtemp(prefix="graphdriver-plnk-")
        base = rel.rpartition("/")[2]
        path = os.path.join(self.plnk_dir, base)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fd = os.open(path, _CREATE_FLAGS, 0o600)
        try:
            self._copy_data(fd, hdr)
        finally:
            os.close(fd)
        self.plnk[base] = hdr

    def _link_aufs_file(self, path: str, node: dict, base: str, hdr: _Header, target_rel: str) -> None:
        name = target_rel.rpartition("/")[2]
        source = self.plnk.get(name)
        if source is None:
            raise errors.ArchiveError("entry %s: invalid aufs hardlink to %s" % (_quote(hdr.name), _quote(hdr.linkname)))
        fd = os.open(os.path.join(self.plnk_dir, name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._create_file(path, node, base, source, self._owner(source), fd)
        finally:
            os.close(fd)

    def _apply_root(self, hdr: _Header) -> None:
        self._skip_data(hdr)
        if hdr.type != _DIR:
            raise errors.ArchiveError("entry %s stands for the layer root but is not a directory" % _quote(hdr.name))
        self._metadata(self.root, hdr, self._owner(hdr), True, False)
        self.dirs.append((".", hdr.atime, hdr.mtime))

    def _set_dir_times(self, rel: str, atime: int | None, mtime: int) -> None:
        if rel == ".":
            path = self.root
        else:
            head, _sep, base = rel.rpartition("/")
            found = self._resolve(head, rel, False)
            if found is None:
                return
            path = found[0] + "/" + base
        try:
            os.utime(path, ns=_times(atime, mtime, True), follow_symlinks=False)
        except FileNotFoundError:
            # Docker fails here when a later entry removed the directory; there is nothing to date.
            pass

    def warnings(self) -> list:
        """The apply's warnings, one per kind."""
        found = []
        if self.xattr_errors:
            shown = "; ".join(self.xattr_errors[:5])
            more = " and %d more" % (len(self.xattr_errors) - 5) if len(self.xattr_errors) > 5 else ""
            found.append("ignored xattrs in archive: underlying filesystem doesn't support them: %s%s" % (shown, more))
        if self.devices_skipped:
            found.append("skipped %d device node(s): they cannot be created in a user namespace" % self.devices_skipped)
        return found


def apply_layer(dest: str, stream, idmap: IdentityMapping | None = None, warn: Callable[[str], None] | None = None) -> ApplyResult:
    """Apply an uncompressed tar layer read from ``stream`` onto the directory ``dest`` (Docker's UnpackLayer).

    Every entry is confined to ``dest`` as if it were the root of a chroot; an entry, link or
    whiteout that would reach outside raises ``UnsafePath``, a broken archive ``ArchiveError``,
    both naming the entry. On failure ``dest`` is left as it is, half applied: the driver
    applies into a staging directory and discards it. Ownership is mapped container-to-host
    through ``idmap``; ``warn`` receives each warning, which the result also carries.
    """
    root = os.path.realpath(dest)
    if not os.path.isdir(root):
        raise errors.ArchiveError("cannot apply a layer to %s: not a directory" % dest)
    if root == "/":
        raise errors.UnsafePath("refusing to apply a layer onto /")
    feed = _Feed(stream)
    applier = _Applier(root, feed, idmap, treecopy.in_user_namespace())
    old_umask = os.umask(0)
    try:
        applier.run()
        digest = feed.drain()
    except _ReadFailed as exc:
        raise errors.ArchiveError("cannot read the archive %s: %s" % (applier.position(), exc)) from exc
    finally:
        os.umask(old_umask)
        feed.close()
        if applier.plnk_dir is not None:
            shutil.rmtree(applier.plnk_dir, ignore_errors=True)
    found = applier.warnings()
    if warn is not None:
        for message in found:
            warn(message)
    return ApplyResult(applier.size, applier.entries, digest, found)
