# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Applying a tar layer to a directory: Docker's ``UnpackLayer``, made safe and fast.

``apply_layer`` reads the uncompressed tar (``decompress.open_diff`` gives it) entry by entry
(``tarfeed``, with the ``tarheader`` codec: ustar, PAX, GNU long names, base-256 numbers) and
applies every entry the way moby ``pkg/archive`` does (driver.md 2.1): whiteouts delete,
``.wh..wh..opq`` empties a directory of what this tar did not bring, an existing path is
replaced unless dir meets dir, ownership goes through the id map, and directory times are set
last. Where Docker relies on a chroot, every path here is resolved
inside the destination with chroot semantics instead, and nothing is ever written into an
inode that existed before: the destination is usually a hardlink copy of the parent layer.

A helper thread (``tarfeed``) reads, decompresses and hashes the stream in 64 KiB buffers while the
main thread parses and writes, so the sha256 of the layer costs no time on the critical path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, faults, fsutil, treecopy, whiteouts
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.realdirs import RealDirs
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.tarfeed import EntryReader, Feed, ReadFailed, quote as _quote
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.tarheader import BLK, CHR, DIR, FIFO, GLOBAL, LNK, REG, SYM, Header

if TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.idmap import IdentityMapping


_CHUNK = 4 << 20
# Go's time.Unix(0, 1<<63-1): the last instant Docker's Chtimes accepts (year 2262).
_MAX_NS = (1 << 63) - 1

_DEVICE_BITS = {CHR: stat.S_IFCHR, BLK: stat.S_IFBLK, FIFO: stat.S_IFIFO}
_IGNORED_XATTR_ERRNOS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SETID_BITS = stat.S_ISUID | stat.S_ISGID


@dataclass(frozen=True)
class ApplyResult:
    """What applying a layer did: Docker's size (sum of every header's size), entry count, digest, warnings."""

    size: int
    entries: int
    digest: str
    warnings: list = field(default_factory=list)


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


class _Applier(EntryReader):
    """The state of one apply: the destination, a cache of real directories, and Docker's bookkeeping."""

    def __init__(self, dest: str, feed: Feed, idmap, userns: bool) -> None:
        super().__init__(feed)
        self.root = dest
        self.to_host = None if idmap is None or idmap.empty else idmap.to_host
        self.userns = userns
        self.dirs_known = RealDirs(dest)
        # Bound once: resolving is on the per-entry path.
        self.tree = self.dirs_known.tree
        self.plain = self.dirs_known.plain
        self.creator = self.dirs_known.creator
        self._resolve = self.dirs_known.resolve
        self._set_plain = self.dirs_known.set_plain
        self.unpacked: set = set()
        self.holds_unpacked: set = set()
        # Inodes this apply created: only their metadata may be changed through a hardlink.
        self.fresh: set = set()
        self.dirs: list = []
        self.size = 0
        self.entries = 0
        self.xattr_errors: list = []
        self.devices_skipped = 0
        self.plnk_dir: str | None = None
        self.plnk: dict = {}

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

    def apply(self, hdr: Header) -> None:
        """One entry: skip, whiteout or create, following UnpackLayer's steps."""
        kind = hdr.type
        if kind == GLOBAL:
            self._skip_data(hdr)
            return
        rel = _clean_name(hdr.name)
        if rel is None:
            raise errors.UnsafePath("tar entry %s is outside of %s" % (_quote(hdr.name), _quote(self.root)))
        if whiteouts.is_meta_name(rel):
            if kind == REG and rel.startswith(whiteouts.WHITEOUT_LINK_DIR + "/"):
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

    def _remove(self, path: str, node: dict | None, name: str) -> None:
        """Docker's RemoveAll: whatever is at ``path`` goes, a directory with its subtree."""
        if node is not None:
            node.pop(name, None)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            fsutil.remove_tree(path)

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

    def _owner(self, hdr: Header) -> tuple:
        if self.to_host is None:
            return hdr.uid, hdr.gid
        try:
            return self.to_host(hdr.uid, hdr.gid)
        except errors.IdMapError as exc:
            raise errors.IdMapError("entry %s: %s" % (_quote(hdr.name), exc)) from exc

    def _set_xattrs(self, target, hdr: Header) -> None:
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

    def _metadata(self, path: str, hdr: Header, owner: tuple, chmod: bool, times: bool, chown: bool = True) -> None:
        """createTarFile's tail for entries without an open fd: lchown, xattrs, chmod, times."""
        if chown:
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

    def _create(self, path: str, node: dict, base: str, hdr: Header, head: str) -> None:
        kind = hdr.type
        if kind == REG:
            self._create_file(path, node, base, hdr, (hdr.uid, hdr.gid) if self.to_host is None else self._owner(hdr), None)
            return
        if kind == DIR:
            mode = hdr.mode & 0o7777
            made = True
            try:
                os.mkdir(path, mode)
            except FileExistsError:
                if stat.S_ISDIR(os.lstat(path).st_mode):
                    made = False
                else:
                    self._remove(path, node, base)
                    os.mkdir(path, mode)
            node.setdefault(base, {})
            self.fresh.discard(path)
            owner = self._owner(hdr)
            inherits = made and not hdr.xattrs and path.rpartition("/")[0] in self.plain
            # mkdir(2) ignores the setuid and setgid bits of its mode: those need the chmod.
            keep = inherits and owner == self.creator and not mode & _SETID_BITS
            self._metadata(path, hdr, owner, not keep, False, not keep)
            self._set_plain(path, mode, True if inherits else (None if hdr.xattrs else False))
            self.dirs.append((head + "/" + base if head else base, hdr.atime, hdr.mtime))
            return
        if kind == LNK:
            self._create_hardlink(path, node, base, hdr)
            return
        self.fresh.discard(path)
        if kind == SYM:
            if _symlink_escapes(head or ".", hdr.linkname):
                raise errors.UnsafePath("invalid symlink %s -> %s: it points outside of %s"
                                        % (_quote(hdr.name), _quote(hdr.linkname), _quote(self.root)))
            self._make(path, node, base, lambda: os.symlink(hdr.linkname, path))
            owner = self._owner(hdr)
            self._metadata(path, hdr, owner, False, True,
                           owner != self.creator or bool(hdr.xattrs) or path.rpartition("/")[0] not in self.plain)
        elif kind in _DEVICE_BITS:
            if kind != FIFO and self.userns:
                # Docker drops device nodes in a user namespace, after removing what was there.
                self._remove(path, node, base)
                self.devices_skipped += 1
                return
            device = os.makedev(hdr.devmajor, hdr.devminor)
            self._make(path, node, base, lambda: os.mknod(path, (hdr.mode & 0o7777) | _DEVICE_BITS[kind], device))
            self._metadata(path, hdr, self._owner(hdr), True, True)
        else:
            raise errors.ArchiveError("entry %s: unhandled tar header type %d (%r)" % (_quote(hdr.name), kind, chr(kind)))

    def _create_file(self, path: str, node: dict, base: str, hdr: Header, owner: tuple, source: int | None) -> None:
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
            if owner != self.creator or hdr.xattrs or mode & _SETID_BITS or path.rpartition("/")[0] not in self.plain:
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

    def _create_hardlink(self, path: str, node: dict, base: str, hdr: Header) -> None:
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

    def _stash_aufs_file(self, rel: str, hdr: Header) -> None:
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

    def _link_aufs_file(self, path: str, node: dict, base: str, hdr: Header, target_rel: str) -> None:
        name = target_rel.rpartition("/")[2]
        source = self.plnk.get(name)
        if source is None:
            raise errors.ArchiveError("entry %s: invalid aufs hardlink to %s" % (_quote(hdr.name), _quote(hdr.linkname)))
        fd = os.open(os.path.join(self.plnk_dir, name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._create_file(path, node, base, source, self._owner(source), fd)
        finally:
            os.close(fd)

    def _apply_root(self, hdr: Header) -> None:
        self._skip_data(hdr)
        if hdr.type != DIR:
            raise errors.ArchiveError("entry %s stands for the layer root but is not a directory" % _quote(hdr.name))
        self._metadata(self.root, hdr, self._owner(hdr), True, False)
        self._set_plain(self.root, hdr.mode, None if hdr.xattrs else False)
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
    feed = Feed(stream)
    applier = _Applier(root, feed, idmap, treecopy.in_user_namespace())
    old_umask = os.umask(0)
    try:
        applier.run()
        digest = feed.drain()
    except ReadFailed as exc:
        if isinstance(exc.error, errors.OverlayError):
            # The stream's own error (a registry blob's digest mismatch) already names what is wrong.
            raise exc.error from None
        raise errors.ArchiveError("cannot read the archive %s: %s" % (applier.position(), exc)) from exc
    finally:
        os.umask(old_umask)
        feed.close()
        if applier.plnk_dir is not None:
            with contextlib.suppress(OSError):
                fsutil.remove_tree(applier.plnk_dir)
    found = applier.warnings()
    if warn is not None:
        for message in found:
            warn(message)
    return ApplyResult(applier.size, applier.entries, digest, found)
