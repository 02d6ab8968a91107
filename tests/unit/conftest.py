# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared fixtures: unique scratch homes and real loop-device filesystems.

The driver is tested as root against the real kernel. Every fixture here undoes what it
made even when the test fails: mounts below a scratch dir are lazily unmounted deepest
first, loop filesystems are mounted with ``-o loop`` (autoclear), so the loop device
detaches with the unmount.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import pytest

SCRATCH_BASE = os.environ.get("GDO_TEST_TMP", tempfile.gettempdir())

_ESCAPE = re.compile(r"\\([0-7]{3})")


def _mountpoints() -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        return [_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in handle]


def unmount_below(path: str) -> list[str]:
    """Lazily unmount every mount at or below ``path``, deepest first; returns them."""
    path = os.path.realpath(path)
    below = [m for m in _mountpoints() if m == path or m.startswith(path + "/")]
    for mountpoint in sorted(set(below), key=len, reverse=True):
        subprocess.run(["umount", "-l", mountpoint], check=False, capture_output=True)
    return below


def _remove_tree(path: str) -> None:
    if not os.path.lexists(path):
        return
    # chattr/immutable bits are never set by the tests; a plain rmtree is enough once
    # nothing is mounted below.
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _require_root():
    if os.geteuid() != 0:
        pytest.exit("the graphdriver.overlay tests mount real filesystems and must run as root", returncode=2)


@pytest.fixture
def scratch():
    """A unique empty directory for one test, removed (mounts first) afterwards."""
    path = os.path.realpath(tempfile.mkdtemp(prefix="gdo-test-", dir=SCRATCH_BASE))
    try:
        yield path
    finally:
        unmount_below(path)
        _remove_tree(path)


def _need(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        pytest.fail("%s is missing: install it (scripts/setup.sh installs every test dependency)" % tool)
    return found


MKFS = {
    "ext4": ["mkfs.ext4", "-q", "-F"],
    "ext4-nodtype": ["mkfs.ext4", "-q", "-F", "-O", "^filetype"],
    "xfs": ["mkfs.xfs", "-q", "-f"],
    "btrfs": ["mkfs.btrfs", "-q", "-f"],
}


@pytest.fixture
def loopfs(scratch):
    """Factory: ``loopfs("xfs", size_mb=300)`` returns the mount point of a fresh filesystem.

    ``tmpfs`` needs no device. Kinds: ext4, ext4-nodtype (ext4 without the filetype
    feature: readdir reports DT_UNKNOWN), xfs, btrfs, tmpfs.
    """
    made: list[str] = []

    def make(kind: str, size_mb: int = 300) -> str:
        index = len(made)
        mountpoint = os.path.join(scratch, "fs-%s-%d" % (kind, index))
        os.mkdir(mountpoint)
        if kind == "tmpfs":
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb, "tmpfs", mountpoint], check=True)
        else:
            command = MKFS[kind]
            _need(command[0])
            image = os.path.join(scratch, "fs-%s-%d.img" % (kind, index))
            with open(image, "wb") as handle:
                handle.truncate(size_mb * 1024 * 1024)
            subprocess.run(command + [image], check=True, capture_output=True)
            subprocess.run(["mount", "-o", "loop", image, mountpoint], check=True)
        made.append(mountpoint)
        return mountpoint

    try:
        yield make
    finally:
        for mountpoint in reversed(made):
            unmount_below(mountpoint)
