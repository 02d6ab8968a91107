# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Can this host run the overlay driver on this home? The checks of Docker's Init.

``check_support`` follows the v19.03.0 ``Init`` of the legacy overlay driver in its order:
``modprobe overlay`` and the ``nodev\\toverlay`` line of /proc/filesystems, the backing
filesystem's statfs magic against the blacklist (aufs, btrfs, ecryptfs, nfs, overlay, zfs),
then d_type support read from raw getdents64 records (refused for a new home, a warning for
an initialized one). Later Docker releases decide by a test mount instead; it runs here as
an extra probe at the end. Every check reports instead of raising, and nothing it makes
outlives the call: the home is never created.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, fsutil
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import kernel
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.layout import STATE_DIR

FS_NAMES: dict[int, str] = {
    0x61756673: "aufs",
    0x9123683E: "btrfs",
    0x28CD3D45: "cramfs",
    0x0000F15F: "ecryptfs",
    0x0000EF53: "extfs",
    0xF2F52010: "f2fs",
    0x65735546: "fuse",
    0x47504653: "gpfs",
    0x000072B6: "jffs2",
    0x3153464A: "jfs",
    0x00006969: "nfs",
    0x858458F6: "ramfs",
    0x52654973: "reiserfs",
    0x0000517B: "smb",
    0x73717368: "squashfs",
    0x01021994: "tmpfs",
    0x00000000: "unsupported",
    0xA501FCF5: "vxfs",
    0x58465342: "xfs",
    0x2FC12FC1: "zfs",
    kernel.OVERLAY_SUPER_MAGIC: "overlayfs",
}
UNKNOWN_FS = "<unknown>"

INCOMPATIBLE_MAGICS = frozenset((0x61756673, 0x9123683E, 0x0000F15F, 0x00006969, kernel.OVERLAY_SUPER_MAGIC, 0x2FC12FC1))

DT_UNKNOWN = 0

OVERLAY_MISSING = "'overlay' not found as a supported filesystem on this host. Please ensure kernel is new enough and has overlay support loaded."

# getdents64(2) numbers by (machine, pointer size): a 32-bit userland on a 64-bit kernel uses its own table.
_GETDENTS64 = {
    ("x86_64", 8): 217,
    ("x86_64", 4): 220,
    ("aarch64", 8): 61,
    ("aarch64", 4): 217,
    ("arm64", 8): 61,
    ("riscv64", 8): 61,
    ("loongarch64", 8): 61,
    ("ppc64le", 8): 202,
    ("ppc64", 8): 202,
    ("ppc", 4): 202,
    ("s390x", 8): 220,
    ("i386", 4): 220,
    ("i486", 4): 220,
    ("i586", 4): 220,
    ("i686", 4): 220,
    ("armv6l", 4): 217,
    ("armv7l", 4): 217,
    ("armv8l", 4): 217,
}
_DIRENT64_HEAD = struct.Struct("=QqHB")
_DIRENT_BUFFER = 32768
_MODPROBE_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def fs_name(magic: int) -> str:
    """Docker's FsNames name of a statfs magic, ``<unknown>`` when the table lacks it."""
    return FS_NAMES.get(magic, UNKNOWN_FS)


def statfs_magic(path: str) -> int:
    """The f_type of statfs(2) on ``path`` as an unsigned 32-bit magic (Go's FsMagic), for FS_NAMES."""
    # struct statfs is at most 120 bytes on every Linux ABI; the slack guards against a bigger one.
    buf = ctypes.create_string_buffer(512)
    libc = fsutil.libc()
    if libc.statfs(ctypes.c_char_p(os.fsencode(path)), buf) != 0:
        fsutil.raise_errno(path)
    # f_type is the first field: a long everywhere except s390x, where it is an unsigned int.
    if platform.machine() == "s390x":
        raw = ctypes.c_uint.from_buffer(buf).value
    else:
        raw = ctypes.c_long.from_buffer(buf).value
    return raw & 0xFFFFFFFF


def modprobe(module: str = "overlay") -> str | None:
    """Load a kernel module the way Docker does before reading /proc/filesystems; the error text or None, never raises."""
    path = shutil.which("modprobe") or shutil.which("modprobe", path=os.pathsep.join(_MODPROBE_DIRS))
    if not path:
        return "modprobe %s: modprobe not found" % module
    try:
        result = subprocess.run([path, module], capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return "modprobe %s: %s" % (module, exc)
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip() or "exit status %d" % result.returncode
        return "modprobe %s: %s" % (module, detail)
    return None


def has_overlay(proc_filesystems_text: str) -> bool:
    """Whether /proc/filesystems lists overlay, by Docker's exact-line test."""
    return "nodev\toverlay" in proc_filesystems_text.split("\n")


@functools.lru_cache(maxsize=None)
def _getdents64():
    number = _GETDENTS64.get((platform.machine(), struct.calcsize("P")))
    libc = fsutil.libc()
    if number is not None:
        syscall = libc.syscall
        syscall.restype = ctypes.c_long

        def call(fd: int, buf: ctypes.Array, size: int) -> int:
            return syscall(ctypes.c_long(number), ctypes.c_long(fd), buf, ctypes.c_long(size))

        return call
    # glibc 2.30 and later wrap the call themselves, which covers machines the table lacks.
    try:
        wrapper = libc.getdents64
    except AttributeError:
        return None
    wrapper.restype = ctypes.c_ssize_t
    wrapper.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
    return wrapper


def _parse_dirents(data: bytes) -> list[tuple[str, int]]:
    entries = []
    offset = 0
    while offset + _DIRENT64_HEAD.size <= len(data):
        _ino, _off, reclen, d_type = _DIRENT64_HEAD.unpack_from(data, offset)
        if reclen == 0:
            break
        name_start = offset + _DIRENT64_HEAD.size
        raw_name = data[name_start:offset + reclen].split(b"\0", 1)[0]
        entries.append((os.fsdecode(raw_name), d_type))
        offset += reclen
    return entries


def _read_dirents(path: str) -> list[tuple[str, int]]:
    call = _getdents64()
    if call is None:
        raise OSError(errno.ENOSYS, "getdents64 is not available on %s" % platform.machine(), path)
    entries = []
    buf = ctypes.create_string_buffer(_DIRENT_BUFFER)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        while True:
            count = call(fd, buf, _DIRENT_BUFFER)
            if count < 0:
                fsutil.raise_errno(path)
            if count == 0:
                return entries
            entries.extend(_parse_dirents(buf.raw[:count]))
    finally:
        os.close(fd)


def dirent_types(path: str) -> dict[str, int]:
    """The raw d_type the filesystem reports for each name in ``path`` (``.`` and ``..`` included)."""
    return dict(_read_dirents(path))


def supports_d_type(path: str) -> bool:
    """Docker's fsutils.SupportsDType: whether readdir on ``path``'s filesystem reports file types."""
    dummy = None
    with os.scandir(path) as listing:
        empty = next(listing, None) is None
    if empty:
        # A directory with no entry of its own still needs one that is not a dir, as Docker makes.
        handle, dummy = tempfile.mkstemp(prefix="fsutils-dummy", dir=path)
        os.close(handle)
    try:
        entries = _read_dirents(path)
    finally:
        if dummy is not None:
            os.unlink(dummy)
    if not entries:
        raise errors.OverlayError("did not hit any dirent during iteration %s" % path)
    return all(d_type != DT_UNKNOWN for _name, d_type in entries)


def is_initialized(home: str) -> bool:
    """Docker's IsInitialized: ``home`` exists and is not empty; one that cannot be listed counts as in use."""
    try:
        os.stat(home)
    except OSError:
        return False
    try:
        with os.scandir(home) as listing:
            return next(listing, None) is not None
    except OSError:
        return True


def d_type_message(backing_fs: str) -> str:
    """Docker's refusal (or, for an initialized home, warning) for a backing filesystem without d_type."""
    message = "overlay: the backing %s filesystem is formatted without d_type support, which leads to incorrect behavior." % backing_fs
    if backing_fs == "xfs":
        message += " Reformat the filesystem with ftype=1 to enable d_type support."
    if backing_fs == "extfs":
        message += " Reformat the filesystem (or use tune2fs) with -O filetype flag to enable d_type support."
    return message + " Backing filesystems without d_type support are not supported."


def _go_errno_text(exc: OSError) -> str:
    # Go's errno texts are the C library's with a lower-case first letter.
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return text[:1].lower() + text[1:]


def _go_error(op: str, path: str, exc: OSError) -> str:
    return "%s %s: %s" % (op, path, _go_errno_text(exc))


def try_test_mount(testdir: str) -> str | None:
    """Docker's SupportsOverlay test: mount a throwaway overlay inside ``testdir``; the error text or None."""
    try:
        workdir = tempfile.mkdtemp(prefix="check-overlayfs-support", dir=testdir)
    except OSError as exc:
        return _go_error("mkdir", os.path.join(testdir, "check-overlayfs-support"), exc)
    try:
        for name in ("lower1", "lower2", "upper", "work", "merged"):
            target = os.path.join(workdir, name)
            try:
                os.mkdir(target, 0o755)
            except OSError as exc:
                return _go_error("mkdir", target, exc)
        merged = os.path.join(workdir, "merged")
        data = kernel.overlay_mount_data(os.path.join(workdir, "lower2"), os.path.join(workdir, "upper"), os.path.join(workdir, "work"))
        try:
            kernel.mount("overlay", merged, "overlay", 0, data)
        except OSError as exc:
            return "failed to mount overlay: %s" % _go_errno_text(exc)
        try:
            kernel.unmount(merged, 0)
        except OSError:
            # Docker only warns here; a detach still keeps the mount from outliving the probe.
            try:
                kernel.unmount(merged, kernel.MNT_DETACH)
            except OSError as exc:
                return _go_error("unmount", merged, exc)
        return None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class SupportReport:
    """What check_support found: ``supported`` and Docker's ``reason`` plus every fact on the way.

    ``supports_d_type`` is always a bool once check_support returns (False where it could not be
    measured, with the reason); ``magic`` stays None when statfs failed; ``test_mount`` is
    None unless the test mount ran.
    """

    supported: bool = False
    reason: str | None = None
    backing_fs: str = UNKNOWN_FS
    magic: int | None = None
    supports_d_type: bool | None = None
    initialized: bool = False
    test_mount: bool | None = None
    test_mount_error: str | None = None
    warnings: list[str] = field(default_factory=list)
    testdir: str | None = None


def check_support(home: str, proc_filesystems: str = "/proc/filesystems", modprobe_first: bool = True, test_mount: bool = True) -> SupportReport:
    """Run Init's support checks for ``home`` in Docker's order and report, creating nothing that stays.

    The backing filesystem and d_type are measured first, whatever refuses the host later, so
    that ``supports_d_type`` is always a bool. Without ``modprobe_first`` (check mode) no kernel
    module is loaded, and a missing overlay says so.
    """
    report = SupportReport(initialized=is_initialized(home))
    home = os.path.normpath(home)
    # A home may itself be a symlink the admin made to a directory: that is still a directory.
    home_is_a_dir = not os.path.lexists(home) or os.path.isdir(home)
    report.testdir = nearest_existing(home if home_is_a_dir else os.path.dirname(home))
    modprobe_error = modprobe("overlay") if modprobe_first else None
    try:
        before = os.stat(report.testdir)
    except OSError as exc:
        report.supports_d_type = False
        report.reason = _go_error("stat", report.testdir, exc)
        return report
    try:
        _measure(report)
        if not home_is_a_dir:
            report.initialized = False
            report.reason = "home %s is not a directory: point home at a directory (or a path that does not exist yet)" % home
            return report
        try:
            with open(proc_filesystems, encoding="utf-8", errors="replace") as handle:
                listed = has_overlay(handle.read())
        except OSError as exc:
            report.reason = _go_error("open", proc_filesystems, exc)
            return report
        if not listed:
            report.reason = OVERLAY_MISSING
            if modprobe_error:
                report.warnings.append(modprobe_error)
            if not modprobe_first:
                report.reason += " (check mode loads no kernel module: run without check mode to try modprobe overlay)"
            return report
        _decide(report, home, test_mount)
    finally:
        _restore_times(report.testdir, before)
    return report


def nearest_existing(path: str) -> str:
    """``path`` if it exists, else its nearest existing ancestor.

    Docker probes the home's parent only, which exists once the daemon made its data-root;
    a fresh host may lack both, and the check must still say something true about it.
    """
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _restore_times(path: str, before: os.stat_result) -> None:
    """Put back the atime/mtime that the probes' temporary entries changed: facts rewrite nothing."""
    try:
        after = os.stat(path)
        if (after.st_atime_ns, after.st_mtime_ns) != (before.st_atime_ns, before.st_mtime_ns):
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    except OSError:
        pass


def _measure(report: SupportReport) -> None:
    """The backing filesystem and d_type of the test dir; a probe that fails counts as no d_type, with the reason kept."""
    try:
        report.magic = statfs_magic(report.testdir)
        report.backing_fs = fs_name(report.magic)
    except OSError as exc:
        report.supports_d_type = False
        report.reason = _go_error("statfs", report.testdir, exc)
        return
    try:
        report.supports_d_type = supports_d_type(report.testdir)
    except (OSError, errors.OverlayError) as exc:
        report.supports_d_type = False
        report.reason = _go_error("open", exc.filename or report.testdir, exc) if isinstance(exc, OSError) else str(exc)


def _decide(report: SupportReport, home: str, test_mount: bool) -> None:
    """Docker's verdict on the measured filesystem, then the test mount."""
    if report.magic is None:
        return
    if report.magic in INCOMPATIBLE_MAGICS:
        report.reason = "'overlay' is not supported over %s" % report.backing_fs
        return
    if report.reason is not None:
        # The d_type probe itself failed.
        return
    if not report.supports_d_type:
        if not report.initialized:
            report.reason = d_type_message(report.backing_fs)
            return
        report.warnings.append(d_type_message(report.backing_fs))

    if test_mount:
        # Our own state dir, when there is one, keeps the probe's temporary dirs out of home.
        state_dir = os.path.join(home, STATE_DIR)
        mount_dir = state_dir if os.path.isdir(state_dir) else report.testdir
        before = os.stat(mount_dir)
        try:
            report.test_mount_error = try_test_mount(mount_dir)
        finally:
            _restore_times(mount_dir, before)
        report.test_mount = report.test_mount_error is None
        if not report.test_mount:
            report.reason = report.test_mount_error
            return
    report.supported = True
