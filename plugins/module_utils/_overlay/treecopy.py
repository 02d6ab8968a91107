# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Docker's ``copy.DirCopy``: copy a tree by hardlinks or by content.

Image layers are built from their parent's ``root`` in ``HARDLINK`` mode (regular files are
linked, everything else is recreated), and a container layer's ``upper`` is copied in
``CONTENT`` mode (new inodes; hardlink groups inside the tree are kept). The walk is
Go's ``filepath.Walk``: depth first, names in byte order, lstat only, the source root
mapped onto ``dst``. Metadata goes in Docker's order: lchown, then ``security.capability``
(chown clears file caps), then ``trusted.overlay.opaque`` if asked, then chmod with the
setuid/setgid/sticky bits (chown clears those), then times; directory times are set last,
deepest first, because creating children changes a directory's mtime.

One deliberate difference from Docker: a socket is skipped with a warning instead of
failing the whole copy through an invalid mkfifo.
"""

from __future__ import annotations

import errno
import fcntl
import operator
import os
import stat
from dataclasses import dataclass, field

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, faults, xattrs

HARDLINK = "hardlink"
CONTENT = "content"


_FICLONE = 0x40049409
# Go's Chtimes maps times it cannot represent as int64 nanoseconds to the epoch.
_MAX_NS = (1 << 63) - 1
_SENDFILE_CHUNK = 1 << 30
# The source fs either lacks the xattr or lacks xattr support: both mean nothing to copy.
_NO_XATTR = (errno.ENODATA, errno.EOPNOTSUPP)
_NO_COPY_FILE_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP)
_FULL_IDENTITY_MAP = (0, 0, 4294967295)
_SRC_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_EXCL: an existing destination file is an error, never overwritten (Docker's rule).
_DST_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC

_by_name = operator.attrgetter("name")


@dataclass
class CopyStats:
    """What a copy did: entries walked (root included), regular files, data bytes copied, paths skipped."""

    entries: int = 0
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


def in_user_namespace(uid_map_path: str = "/proc/self/uid_map") -> bool:
    """True unless the first uid_map line is the full identity ``0 0 4294967295`` (or there is no uid_map)."""
    try:
        with open(uid_map_path, encoding="ascii") as handle:
            first = handle.readline().split()
    except OSError:
        # No uid_map means a kernel without user namespaces, so the initial namespace.
        return False
    try:
        return tuple(int(part) for part in first[:3]) != _FULL_IDENTITY_MAP
    except ValueError:
        return True


class _Run:
    """State of one dir_copy call: the options, the fallbacks still enabled and the results so far."""

    __slots__ = ("hardlink", "xattrs", "warn", "reflink", "copy_range", "copied", "dir_times", "stats", "userns")

    def __init__(self, hardlink: bool, copy_opaque: bool, warn) -> None:
        self.hardlink = hardlink
        self.xattrs = (xattrs.CAPABILITY, xattrs.OVERLAY_OPAQUE) if copy_opaque else (xattrs.CAPABILITY,)
        self.warn = warn
        self.reflink = True
        self.copy_range = True
        self.copied: dict[tuple[int, int], bytes] = {}
        self.dir_times: list[tuple[bytes, bytes, int, int]] = []
        self.stats = CopyStats()
        self.userns: bool | None = None


def _copy_xattrs(src, dst, names: tuple[str, ...], follow: bool) -> None:
    # One listxattr instead of a failing getxattr per name: most entries have no xattrs at all.
    try:
        present = os.listxattr(src, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            return
        raise
    if not present:
        return
    for name in names:
        if name not in present:
            continue
        try:
            value = os.getxattr(src, name, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno in _NO_XATTR:
                continue
            raise
        os.setxattr(dst, name, value, follow_symlinks=follow)


def _copy_data(sfd: int, dfd: int, size: int, run: _Run) -> None:
    if run.reflink:
        try:
            fcntl.ioctl(dfd, _FICLONE, sfd)
            return
        except OSError as exc:
            run.reflink = False
            if exc.errno == errno.EXDEV:
                run.copy_range = False
    if run.copy_range:
        try:
            left = size
            while left > 0:
                done = os.copy_file_range(sfd, dfd, left)
                if not done:
                    return
                left -= done
            return
        except OSError as exc:
            if exc.errno not in _NO_COPY_FILE_RANGE:
                raise
            run.copy_range = False
    # copy_file_range moved both offsets by whatever it copied, so this resumes from there.
    while os.sendfile(dfd, sfd, None, _SENDFILE_CHUNK):
        pass


def _copy_regular(src: bytes, dst: bytes, st: os.stat_result, run: _Run) -> None:
    stats = run.stats
    stats.files += 1
    if run.hardlink:
        os.link(src, dst)
        return
    if st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        first = run.copied.get(key)
        if first is not None:
            # Same inode as an earlier copy: its metadata is already in place.
            os.link(first, dst)
            return
        run.copied[key] = dst
    perm = st.st_mode & 0o7777
    sfd = os.open(src, _SRC_FLAGS)
    try:
        dfd = os.open(dst, _DST_FLAGS, perm)
        try:
            size = st.st_size
            if size:
                _copy_data(sfd, dfd, size, run)
                stats.bytes += size
            os.fchown(dfd, st.st_uid, st.st_gid)
            _copy_xattrs(sfd, dfd, run.xattrs, True)
            os.fchmod(dfd, perm)
            os.utime(dfd, ns=_clamped_times(st))
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def _clamped_times(st: os.stat_result) -> tuple[int, int]:
    atime, mtime = st.st_atime_ns, st.st_mtime_ns
    if atime < 0 or atime > _MAX_NS:
        atime = 0
    if mtime < 0 or mtime > _MAX_NS:
        mtime = 0
    return atime, mtime


def _set_metadata(src: bytes, dst: bytes, st: os.stat_result, run: _Run) -> None:
    os.lchown(dst, st.st_uid, st.st_gid)
    _copy_xattrs(src, dst, run.xattrs, False)
    os.chmod(dst, st.st_mode & 0o7777)


def _copy_entry(src: bytes, dst: bytes, st: os.stat_result, run: _Run) -> bool:
    """Copies one entry of any type; True when it is a directory whose children come next."""
    mode = st.st_mode
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFREG:
        _copy_regular(src, dst, st, run)
        return False
    if kind == stat.S_IFDIR:
        try:
            os.mkdir(dst, mode & 0o7777)
        except FileExistsError:
            pass
        _set_metadata(src, dst, st, run)
        run.dir_times.append((src, dst, st.st_atime_ns, st.st_mtime_ns))
        return True
    if kind == stat.S_IFLNK:
        os.symlink(os.readlink(src), dst)
        os.lchown(dst, st.st_uid, st.st_gid)
        _copy_xattrs(src, dst, run.xattrs, False)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        return False
    if kind == stat.S_IFIFO:
        os.mkfifo(dst, mode & 0o7777)
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        if run.userns is None:
            run.userns = in_user_namespace()
        if run.userns:
            # mknod of a device is never allowed in a user namespace; Docker drops them silently.
            run.stats.skipped.append(os.fsdecode(src))
            return False
        os.mknod(dst, mode, st.st_rdev)
    elif kind == stat.S_IFSOCK:
        path = os.fsdecode(src)
        run.stats.skipped.append(path)
        if run.warn is not None:
            run.warn("skipped socket %s: a socket cannot be copied" % path)
        return False
    else:
        raise errors.CopyError("unknown file type (%d / %s) for %s" % (mode, stat.filemode(mode), os.fsdecode(src)))
    _set_metadata(src, dst, st, run)
    os.utime(dst, ns=_clamped_times(st))
    return False


def dir_copy(src: str, dst: str, mode: str, copy_opaque_xattrs: bool = True, warn=None) -> CopyStats:
    """Copy the tree ``src`` onto ``dst`` the way Docker's DirCopy does, in HARDLINK or CONTENT mode."""
    if mode not in (HARDLINK, CONTENT):
        raise errors.InvalidArgument("unknown copy mode %r: expected %r or %r" % (mode, HARDLINK, CONTENT))
    hardlink = mode == HARDLINK
    run = _Run(hardlink, copy_opaque_xattrs, warn)
    stats = run.stats
    src_b = os.path.normpath(os.fsencode(src))
    dst_b = os.path.normpath(os.fsencode(dst))
    checkpoint = faults.checkpoint
    link = os.link
    scandir = os.scandir
    copy_entry = _copy_entry
    copy_regular = _copy_regular
    s_ifmt, s_ifreg = 0o170000, stat.S_IFREG
    by_name = _by_name
    # Always names the source entry being worked on, for the error message.
    current = src_b
    try:
        checkpoint("copy.entry")
        stats.entries += 1
        stack = []
        if copy_entry(src_b, dst_b, os.lstat(src_b), run):
            with scandir(src_b) as listing:
                stack.append((iter(sorted(listing, key=by_name)), src_b.rstrip(b"/") + b"/", dst_b.rstrip(b"/") + b"/"))
        while stack:
            entries, src_dir, dst_dir = stack[-1]
            for entry in entries:
                name = entry.name
                current = src_dir + name
                target = dst_dir + name
                checkpoint("copy.entry")
                stats.entries += 1
                # d_type answers is_file without a stat, and a hardlink needs nothing else.
                if hardlink and entry.is_file(follow_symlinks=False):
                    link(current, target)
                    stats.files += 1
                    continue
                st = entry.stat(follow_symlinks=False)
                if st.st_mode & s_ifmt == s_ifreg:
                    copy_regular(current, target, st, run)
                    continue
                if copy_entry(current, target, st, run):
                    with scandir(current) as listing:
                        stack.append((iter(sorted(listing, key=by_name)), current + b"/", target + b"/"))
                    break
            else:
                stack.pop()
        for current, target, atime, mtime in reversed(run.dir_times):
            os.utime(target, ns=(atime, mtime), follow_symlinks=False)
    except OSError as exc:
        raise errors.CopyError("cannot copy %s: %s" % (os.fsdecode(current), _describe(exc))) from exc
    return stats


def _describe(exc: OSError) -> str:
    if exc.errno is None:
        return str(exc)
    text = "[Errno %d] %s" % (exc.errno, exc.strerror or os.strerror(exc.errno))
    if exc.filename is not None:
        text += ": %s" % os.fsdecode(exc.filename)
    if exc.filename2 is not None:
        text += " -> %s" % os.fsdecode(exc.filename2)
    return text
