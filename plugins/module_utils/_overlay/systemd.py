# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""systemd mount units: what makes an overlay mount come back after a reboot.

A mount unit is named after its mount point, escaped the way ``systemd-escape --path``
does it (computed here: managed hosts may lack the tool), and lives in
``/etc/systemd/system``. It is enabled for ``local-fs.target``, so systemd mounts it at
boot with the local filesystems, before any service runs.

What a unit file cannot carry is refused rather than mangled: systemd strips whitespace
around a value, joins a line ending in a backslash with the next one and cannot hold a
newline; ``%`` starts a specifier and is written ``%%``. The overlay dirs themselves must
also survive mount(8), which reads the unit's ``Options=``: no ``,`` (the option
separator), ``:`` (the lowerdir separator), ``"`` (libmount's quote) or ``\\`` (which
overlayfs takes as an escape).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Callable, Sequence

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.errors import (
    InvalidArgument,
    NotSupported,
    OverlayError,
)

UNIT_DIR = "/etc/systemd/system"
SYSTEMD_RUN_DIR = "/run/systemd/system"
WANTED_BY = "local-fs.target"
# systemd's UNIT_NAME_MAX counts the terminating NUL: a unit name has at most 255 bytes.
UNIT_NAME_MAX = 255
# systemd's path_is_valid(): a path shorter than PATH_MAX whose components fit NAME_MAX.
_PATH_MAX = 4096
_NAME_MAX = 255
_UNIT_NAME_CHARS = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:_.")
_OVERLAY_DIR_REFUSED = (",", ":", '"', "\\")
_QUOTE_NEEDED = (" ", "\t", "'")


class UnitError(OverlayError):
    """A mount unit cannot be rendered, written, enabled or removed; names the unit and the fix."""


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def _escape_byte(byte: int) -> str:
    return "\\x%02x" % byte


def escape_path(path: str) -> str:
    """``systemd-escape --path PATH`` for an absolute path: the mount unit name without ``.mount``.

    Like systemd, ``//`` and ``.`` components collapse, trailing slashes go, the root is
    ``-``; a ``..`` component, a relative path or one that is not a valid file system path
    is refused.
    """
    if not path.startswith("/"):
        raise InvalidArgument("cannot name a systemd unit after %r: the path is not absolute" % path)
    raw = os.fsencode(path)
    components = [part for part in raw.split(b"/") if part and part != b"."]
    if b".." in components:
        raise InvalidArgument("cannot name a systemd unit after %r: the path is not normalized (it holds '..')" % path)
    if len(raw) >= _PATH_MAX or any(len(part) > _NAME_MAX for part in components) or b"\0" in raw:
        raise InvalidArgument("cannot name a systemd unit after %r: it is not a valid file system path" % path)
    if not components:
        return "-"
    joined = b"/".join(components)
    out = []
    # A leading dot is escaped too, so "/.dotdir" does not make a hidden unit file.
    if joined.startswith(b"."):
        out.append(_escape_byte(joined[0]))
        joined = joined[1:]
    for byte in joined:
        if byte == ord("/"):
            out.append("-")
        elif byte in _UNIT_NAME_CHARS:
            out.append(chr(byte))
        else:
            out.append(_escape_byte(byte))
    return "".join(out)


def unit_name_for(mount_point: str) -> str:
    """The mount unit's name for ``mount_point`` (``systemd-escape --path --suffix=mount``)."""
    name = escape_path(mount_point) + ".mount"
    if len(name) > UNIT_NAME_MAX:
        raise UnitError(
            "the mount unit for %s would be named with %d characters, more than systemd's %d: "
            "use a shorter home so the merged dir's path is shorter" % (mount_point, len(name), UNIT_NAME_MAX)
        )
    return name


def _unit_value(setting: str, value: str, where: str) -> str:
    """``value`` as a unit file carries it, or a UnitError naming what it cannot carry."""
    problem = None
    if any(char in value for char in "\n\r\0"):
        problem = "a newline or NUL"
    elif value != value.strip():
        problem = "leading or trailing whitespace, which systemd strips"
    elif value.endswith("\\"):
        problem = "a trailing backslash, which systemd reads as a line continuation"
    if problem:
        raise UnitError("cannot persist the mount at %s: %s=%r holds %s" % (where, setting, value, problem))
    return value.replace("%", "%%")


def _overlay_dir(path: str, where: str) -> str:
    refused = [char for char in _OVERLAY_DIR_REFUSED if char in path]
    if refused:
        raise UnitError(
            "cannot persist the mount at %s: the overlay dir %s holds %s, which mount(8) cannot pass "
            "in the unit's Options=; use a home whose path has none of , : \" \\" % (where, path, " ".join(refused))
        )
    value = _unit_value("RequiresMountsFor", path, where)
    return '"%s"' % value if any(char in value for char in _QUOTE_NEEDED) else value


def render_mount_unit(
    what: str,
    where: str,
    fstype: str,
    options: str,
    description: str,
    requires_mounts_for: Sequence[str] = (),
) -> str:
    """The text of the mount unit for ``where``, the same bytes for the same arguments.

    It keeps systemd's default dependencies, as the fstab generator's units for local mounts
    do (After=local-fs-pre.target, Conflicts= and Before=umount.target), orders itself
    before local-fs.target like them, and asks for the filesystems of
    ``requires_mounts_for`` (the overlay's lower, upper and work dirs) to be mounted first:
    systemd cannot see those paths inside ``Options=``.
    """
    if where != os.path.normpath(where) or not where.startswith("/") or where.startswith("//"):
        raise UnitError("cannot persist the mount at %r: Where= must be an absolute, normalized path" % where)
    lines = [
        "# Written by graphdriver.overlay (overlay_mount persist: true); changes here are overwritten.",
        "[Unit]",
        "Description=%s" % _unit_value("Description", description, where),
        "Before=local-fs.target",
    ]
    lines.extend("RequiresMountsFor=%s" % _overlay_dir(path, where) for path in requires_mounts_for)
    lines.extend([
        "",
        "[Mount]",
        "What=%s" % _unit_value("What", what, where),
        "Where=%s" % _unit_value("Where", where, where),
        "Type=%s" % _unit_value("Type", fstype, where),
        "Options=%s" % _unit_value("Options", options, where),
        "",
        "[Install]",
        "WantedBy=%s" % WANTED_BY,
    ])
    return "\n".join(lines) + "\n"


def systemd_is_init(run_dir: str = SYSTEMD_RUN_DIR) -> bool:
    """True when systemd runs as PID 1: the test of sd_booted(3), a directory /run/systemd/system."""
    return os.path.isdir(run_dir)


def require_systemd(run_dir: str = SYSTEMD_RUN_DIR) -> None:
    """Raise NotSupported unless systemd is init, before anything is mounted or written."""
    if not systemd_is_init(run_dir):
        raise NotSupported(
            "persist: true needs systemd as init (PID 1) to mount the layer at boot, and this host's init is "
            "not systemd (%s is missing); drop persist, or mount the layer from the host's own boot scripts" % run_dir
        )


class UnitFiles:
    """Unit files in one directory, and the systemctl calls that make systemd see them.

    ``unit_dir`` and the ``systemctl`` command are arguments so tests can point them at a
    scratch dir and a recording stand-in; a host passes nothing.
    """

    def __init__(self, unit_dir: str = UNIT_DIR, systemctl: Sequence[str] = ("systemctl",), run: Runner = _run):
        self.unit_dir = unit_dir
        self.systemctl = tuple(systemctl)
        self._run = run

    def path(self, name: str) -> str:
        """The unit file's path; ``name`` must be a bare unit name, never a path."""
        if not name or "/" in name or name in (".", ".."):
            raise InvalidArgument("%r is not a unit name" % name)
        return os.path.join(self.unit_dir, name)

    def read(self, name: str) -> str | None:
        """The unit file's text, or None when there is none (the "before" of a diff)."""
        try:
            with open(self.path(name), encoding="utf-8", errors="surrogateescape") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UnitError("cannot read the unit %s: %s" % (self.path(name), exc.strerror)) from exc

    def write(self, name: str, text: str) -> bool:
        """Write the unit file atomically (temporary file, fsync, rename); True when its text changed."""
        if self.read(name) == text:
            return False
        target = self.path(name)
        try:
            os.makedirs(self.unit_dir, mode=0o755, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".%s." % name, dir=self.unit_dir)
            try:
                with os.fdopen(handle, "w", encoding="utf-8", errors="surrogateescape") as stream:
                    stream.write(text)
                    stream.flush()
                    os.fchmod(stream.fileno(), 0o644)
                    os.fsync(stream.fileno())
                os.rename(temporary, target)
            except BaseException:
                os.unlink(temporary)
                raise
            self._fsync_dir()
        except OSError as exc:
            raise UnitError("cannot write the unit %s: %s" % (target, exc.strerror)) from exc
        return True

    def remove(self, name: str) -> bool:
        """Remove the unit file; True when there was one."""
        target = self.path(name)
        try:
            os.unlink(target)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise UnitError("cannot remove the unit %s: %s" % (target, exc.strerror)) from exc
        self._fsync_dir()
        return True

    def _fsync_dir(self) -> None:
        fd = os.open(self.unit_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def systemctl_call(self, *args: str) -> None:
        """Run ``systemctl ARGS``; a failure raises UnitError with systemctl's own words."""
        argv = self.systemctl + args
        try:
            result = self._run(argv)
        except OSError as exc:
            raise UnitError("cannot run %s: %s; is systemd installed?" % (" ".join(argv), exc.strerror)) from exc
        if result.returncode != 0:
            detail = (result.stderr or result.stdout or "").strip()
            raise UnitError("%s failed (exit %d): %s" % (" ".join(argv), result.returncode, detail or "no output"))

    def daemon_reload(self) -> None:
        """Make systemd read the unit files again."""
        self.systemctl_call("daemon-reload")

    def enable(self, name: str) -> None:
        """Hook the unit into its [Install] target (local-fs.target.wants)."""
        self.systemctl_call("enable", name)

    def disable(self, name: str) -> None:
        """Unhook the unit from its [Install] target."""
        self.systemctl_call("disable", name)

    def enabled(self, name: str) -> bool:
        """True when the unit is hooked into local-fs.target (its wants/ link exists)."""
        return os.path.lexists(os.path.join(self.unit_dir, WANTED_BY + ".wants", name))

    def needs_install(self, name: str, text: str) -> bool:
        """What install() would report, without doing it: for check mode."""
        return self.read(name) != text or not self.enabled(name)

    def install(self, name: str, text: str) -> bool:
        """Write the unit, reload only when its text changed, enable when not enabled; True when anything changed."""
        written = self.write(name, text)
        if written:
            self.daemon_reload()
        # Enabling is checked on its own: a run that wrote the file but failed to enable it is finished by the next.
        if written or not self.enabled(name):
            self.enable(name)
            return True
        return False

    def needs_uninstall(self, name: str) -> bool:
        """What uninstall() would report, without doing it: for check mode."""
        return self.read(name) is not None or self.enabled(name)

    def uninstall(self, name: str) -> bool:
        """Disable and remove the unit, then reload; True when there was anything to remove."""
        if self.read(name) is None:
            # systemctl cannot disable a unit whose file is gone; its link is all that is left.
            if not self.enabled(name):
                return False
            link = os.path.join(self.unit_dir, WANTED_BY + ".wants", name)
            try:
                os.unlink(link)
            except OSError as exc:
                raise UnitError("cannot remove the link %s of a removed unit: %s" % (link, exc.strerror)) from exc
            self.daemon_reload()
            return True
        # disable reads the file's [Install] section, so it runs while the file is still there.
        self.disable(name)
        self.remove(name)
        self.daemon_reload()
        return True
