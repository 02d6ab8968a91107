# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Writing layer tars: a list of changes (Docker's ``ExportChanges``) or a whole tree (``archive.Tar``).

Entries follow Docker's ``addTarFile``: a PAX-format header built from lstat, mtime truncated
to whole seconds, no atime, ctime, uname or gname; the mode field holds the permission bits,
setuid/setgid/sticky and the file type bits (as Docker 19.03's ``fillGo18FileTypeBits`` keeps
them, so layer digests match Docker's); directory names end in ``/``;
``security.capability`` is the only xattr exported (as ``SCHILY.xattr.security.capability``,
version 3 caps turned into version 2); a second name of an inode already written becomes a
hardlink entry. Deletions become empty ``.wh.<name>`` entries.

Unlike Docker, whiteouts get mtime 0 instead of the clock, so exporting an unchanged layer
twice gives the same bytes. Headers are written by hand (``tarheader``): the stdlib ``tarfile`` costs about ten
times more per entry (it looks up user and group names), and a layer is mostly small files.
Large files go through sendfile(2) when ``out`` is a plain file.
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import stat
from typing import Any, BinaryIO, Iterable

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import whiteouts, xattrs
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.changes import DELETE, Change, UpperChanges, change_key, read_caps
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.tarheader import (
    BLOCK, END_OF_ARCHIVE, FLAG_BLK, FLAG_CHR, FLAG_DIR, FLAG_FIFO, FLAG_LINK, FLAG_REG, FLAG_SYMLINK, NS, XATTR_PREFIX, tar_header,
)

_FLUSH_AT = 1 << 20
_CHUNK = 1 << 20

# linux/capability.h: the revision is the high byte of the little-endian magic_etc word.
_CAP_REVISION_OFFSET = 3
_CAP_REVISION_2 = 2
_CAP_REVISION_3 = 3
_CAP_V2_SIZE = 20
_CAPS_RECORD = XATTR_PREFIX + xattrs.CAPABILITY.encode("ascii")

_TYPES = {stat.S_IFREG: FLAG_REG, stat.S_IFDIR: FLAG_DIR, stat.S_IFLNK: FLAG_SYMLINK, stat.S_IFCHR: FLAG_CHR, stat.S_IFBLK: FLAG_BLK, stat.S_IFIFO: FLAG_FIFO}

# Files from this size on go through sendfile(2) when the output is a plain file: no copies in Python.
_DIRECT = 128 * 1024
_SEND_MAX = 1 << 30
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def caps_for_tar(raw: bytes | None) -> bytes | None:
    """A security.capability value as Docker exports it: v3 turned into v2 (its rootid means nothing elsewhere)."""
    if not raw:
        return None
    if len(raw) > _CAP_REVISION_OFFSET and raw[_CAP_REVISION_OFFSET] == _CAP_REVISION_3:
        return raw[:_CAP_REVISION_OFFSET] + bytes((_CAP_REVISION_2,)) + raw[_CAP_REVISION_OFFSET + 1:_CAP_V2_SIZE]
    return raw


def _identity(st: os.stat_result) -> tuple:
    """What must not have moved for an earlier lstat to still describe an open file: any write, chmod, chown or xattr change moves ctime."""
    return st.st_ctime_ns, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_mode


def _direct_fd(out: BinaryIO) -> int | None:
    """The fd behind a plain file object, which sendfile may write to; None for anything that transforms or buffers elsewhere."""
    raw = out.raw if isinstance(out, io.BufferedWriter) else out
    return raw.fileno() if isinstance(raw, io.FileIO) else None


class _TarWriter:
    """Streams entries to ``out`` through a small buffer and counts the bytes."""

    def __init__(self, out: BinaryIO, idmap: Any) -> None:
        self._out = out
        self._buf = bytearray()
        self._written = 0
        self._seen: dict[int, bytes] = {}
        self._idmap = idmap if idmap is not None and not idmap.empty else None
        self._fd = _direct_fd(out)

    def _emit(self, data: bytes) -> None:
        if len(data) >= _FLUSH_AT:
            self._flush()
            self._out.write(data)
            self._written += len(data)
            return
        self._buf += data
        if len(self._buf) >= _FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._out.write(self._buf)
            self._written += len(self._buf)
            self._buf = bytearray()

    def whiteout(self, path: str) -> None:
        """An empty ``<dir>/.wh.<base>`` entry for a deleted absolute ``path``; mtime 0 for reproducibility."""
        head, base = posixpath.split(path)
        name = posixpath.join(head, whiteouts.whiteout_name(base)).lstrip("/")
        self._emit(tar_header(os.fsencode(name), 0, 0, 0, 0, 0, FLAG_REG))

    def add(self, path: bytes, name: bytes, known: tuple | None = None) -> bool:
        """Write ``path`` as entry ``name``; True when it was a directory. Vanished paths and sockets are skipped.

        ``known`` is the ``(lstat result, xattr names)`` a change walk read for ``path`` moments ago. A
        file with content is opened first and used only when fstat shows the same inode with
        the same ctime, size and mtime (any write, chmod, chown or xattr change moves ctime);
        otherwise the entry is read afresh.
        """
        fd = None
        if known is None:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                # The tree may change under a running container; Docker skips such entries too.
                return False
            names = None
        else:
            st, names = known
            if st.st_size and stat.S_ISREG(st.st_mode):
                try:
                    fd = os.open(path, _OPEN_FLAGS)
                except OSError:
                    return self.add(path, name)
                now = os.fstat(fd)
                if _identity(now) != _identity(st):
                    os.close(fd)
                    return self.add(path, name)
        try:
            return self._add(path, name, st, names, fd)
        finally:
            if fd is not None:
                os.close(fd)

    def _add(self, path: bytes, name: bytes, st: os.stat_result, names: list | None, fd: int | None) -> bool:
        mode = st.st_mode
        flag = _TYPES.get(stat.S_IFMT(mode))
        if flag is None:
            return False
        size = 0
        linkname = b""
        major = minor = 0
        if flag == FLAG_REG:
            size = st.st_size
        elif flag == FLAG_DIR:
            if not name.endswith(b"/"):
                name += b"/"
        elif flag == FLAG_SYMLINK:
            linkname = os.readlink(path)
        elif flag in (FLAG_CHR, FLAG_BLK):
            major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        if names is None:
            caps = caps_for_tar(read_caps(path))
        elif xattrs.CAPABILITY in names:
            caps = caps_for_tar(read_caps(path))
        else:
            caps = None
        records = {_CAPS_RECORD: caps} if caps is not None else None
        if flag != FLAG_DIR and st.st_nlink > 1:
            # Keyed by inode alone, as Docker does: one tar reads one filesystem.
            first = self._seen.get(st.st_ino)
            if first is None:
                self._seen[st.st_ino] = name
            else:
                flag, linkname, size = FLAG_LINK, first, 0
        uid, gid = st.st_uid, st.st_gid
        if self._idmap is not None and not whiteouts.is_overlay_whiteout(mode, st.st_rdev):
            # Whiteouts were made by the kernel and already belong to the host's ids.
            if not whiteouts.is_whiteout(os.fsdecode(posixpath.basename(name.rstrip(b"/")))):
                uid, gid = self._idmap.to_container(uid, gid)
        header = tar_header(name, mode & (stat.S_IFMT(mode) | 0o7777), uid, gid, size, st.st_mtime_ns // NS, flag, linkname, major, minor, records)
        if size == 0:
            self._emit(header)
            return flag == FLAG_DIR
        if fd is not None:
            self._content(fd, header, size)
            return False
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except FileNotFoundError:
            return False
        try:
            self._content(fd, header, size)
        finally:
            os.close(fd)
        return False

    def _content(self, fd: int, header: bytes, size: int) -> None:
        """The header, then ``size`` bytes of the open file, padded to the block."""
        if size >= _DIRECT and self._fd is not None:
            self._emit(header)
            remaining = self._send(fd, size)
        else:
            data = os.read(fd, min(size, _CHUNK))
            buf = self._buf
            buf += header
            buf += data
            remaining = self._copy(fd, size - len(data)) if data else size
        # A file that shrank since lstat is padded, as GNU tar does: the header already promised size bytes.
        self._emit(bytes(remaining + (-size % BLOCK)))

    def _copy(self, fd: int, remaining: int) -> int:
        while remaining:
            chunk = os.read(fd, min(remaining, _CHUNK))
            if not chunk:
                break
            self._emit(chunk)
            remaining -= len(chunk)
        return remaining

    def _send(self, fd: int, size: int) -> int:
        """Copy file data in the kernel straight to the output file; returns the bytes that never came."""
        self._flush()
        self._out.flush()
        remaining = size
        while remaining:
            try:
                sent = os.sendfile(self._fd, fd, None, min(remaining, _SEND_MAX))
            except OSError as exc:
                if remaining != size or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                self._fd = None
                return self._copy(fd, size)
            if not sent:
                break
            self._written += sent
            remaining -= sent
        return remaining

    def tree(self, path: bytes, prefix: bytes) -> None:
        """Every entry below ``path``, depth first, names sorted bytewise within each directory."""
        try:
            names = sorted(os.listdir(path))
        except FileNotFoundError:
            return
        for name in names:
            child = path + b"/" + name
            if self.add(child, prefix + name):
                self.tree(child, prefix + name + b"/")

    def close(self) -> int:
        """End the archive with two zero blocks, flush, and return the bytes written."""
        self._emit(END_OF_ARCHIVE)
        self._flush()
        return self._written


def write_changes_tar(root: str, changes: Iterable[Change], out: BinaryIO, idmap: Any = None) -> int:
    """Docker's ExportChanges: ``changes`` read from ``root`` written to ``out`` in path order; returns bytes written."""
    writer = _TarWriter(out, idmap)
    root_b = os.fsencode(root).rstrip(b"/")
    # What changes_from_upper read of each entry of this same root is reused (add checks it).
    known = changes.seen if isinstance(changes, UpperChanges) and changes.upper == root else {}
    add, whiteout = writer.add, writer.whiteout
    ordered = changes if isinstance(changes, UpperChanges) and changes.in_order() else sorted(changes, key=change_key)
    for change in ordered:
        if change.kind == DELETE:
            whiteout(change.path)
        else:
            rel = os.fsencode(change.path).lstrip(b"/")
            add(root_b + b"/" + rel, rel, known.get(change.path))
    return writer.close()


def write_tree_tar(root: str, out: BinaryIO, idmap: Any = None) -> int:
    """Docker's archive.Tar of the whole tree at ``root`` (root entry left out); returns bytes written."""
    writer = _TarWriter(out, idmap)
    writer.tree(os.fsencode(root).rstrip(b"/") or b"/", b"")
    return writer.close()
