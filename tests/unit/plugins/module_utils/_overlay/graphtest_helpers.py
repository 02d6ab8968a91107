# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Docker's graphtest helpers (daemon/graphdriver/graphtest, driver.md 3.1 and 3.2), ported.

Every helper Gets the layer, works on the returned path with plain ``os`` calls, then Puts it,
exactly as the Go wrappers do. ``random_content`` stands in for Go's ``math/rand`` source: no
check compares against precomputed bytes, so any deterministic seed -> bytes function works.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import stat

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import changes as changes_mod


def random_content(size: int, seed: int) -> bytes:
    """Deterministic bytes for a seed (graphtest's randomContent)."""
    return random.Random(seed).getrandbits(8 * size).to_bytes(size, "little") if size else b""


def random_id() -> str:
    """GenerateRandomID: 64 hex chars whose first 12 do not parse as a decimal number."""
    while True:
        value = secrets.token_hex(32)
        if not value[:12].isdigit():
            return value


@contextlib.contextmanager
def mounted(driver, layer_id: str):
    """Get the layer, yield its path, Put it (the shape of every graphtest wrapper)."""
    path = driver.get(layer_id)
    try:
        yield path
    finally:
        driver.put(layer_id)


@contextlib.contextmanager
def umask(value: int):
    """Run a block under a given umask, restoring the old one."""
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def write_file(path: str, data: bytes, perm: int = 0o755) -> None:
    """Go's WriteFile: O_WRONLY|O_CREATE|O_TRUNC with perm (umask applies); a short write fails."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, perm)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    assert written == len(data), "short write to %s: %d of %d bytes" % (path, written, len(data))


def read_dir(path: str) -> list[str]:
    """graphtest's readDir: sorted names, lost+found hidden."""
    return sorted(name for name in os.listdir(path) if name != "lost+found")


def verify_file(path: str, kind: int, perm: int, uid: int, gid: int) -> list[str]:
    """verifyFile: os.Stat (follows symlinks), then type, perm bits, sticky/suid/sgid, owner checked apart."""
    info = os.stat(path)
    problems = []
    if stat.S_IFMT(info.st_mode) != kind:
        problems.append("%s: type %o, expected %o" % (path, stat.S_IFMT(info.st_mode), kind))
    for label, mask in (("perm", 0o777), ("sticky", stat.S_ISVTX), ("setuid", stat.S_ISUID), ("setgid", stat.S_ISGID)):
        if info.st_mode & mask != perm & mask:
            problems.append("%s: %s bits %o, expected %o" % (path, label, info.st_mode & mask, perm & mask))
    if (info.st_uid, info.st_gid) != (uid, gid):
        problems.append("%s: owner %d:%d, expected %d:%d" % (path, info.st_uid, info.st_gid, uid, gid))
    return problems


def create_base(driver, name: str) -> None:
    """createBase: under umask 0, a sticky 0705 dir owned 1:2 and a 0222|setuid file."""
    with umask(0):
        driver.create(name, None)
        with mounted(driver, name) as root:
            subdir = os.path.join(root, "a subdir")
            os.mkdir(subdir, 0o705 | stat.S_ISVTX)
            os.lchown(subdir, 1, 2)
            write_file(os.path.join(root, "a file"), b"Some data", 0o222 | stat.S_ISUID)


def verify_base(driver, name: str) -> None:
    """verifyBase: the two entries of createBase with their exact modes and owners, nothing else."""
    with mounted(driver, name) as root:
        problems = verify_file(os.path.join(root, "a subdir"), stat.S_IFDIR, 0o705 | stat.S_ISVTX, 1, 2)
        problems += verify_file(os.path.join(root, "a file"), stat.S_IFREG, 0o222 | stat.S_ISUID, 0, 0)
        names = read_dir(root)
    assert not problems, "\n".join(problems)
    assert len(names) == 2, "%s of layer %s holds %r, expected exactly 2 entries" % (root, name, names)


def add_files(driver, layer: str, seed: int) -> None:
    """addFiles: file-a (64), dir-b/file-b (128), file-c (16384), all 0755."""
    with mounted(driver, layer) as root:
        write_file(os.path.join(root, "file-a"), random_content(64, seed))
        os.mkdir(os.path.join(root, "dir-b"), 0o755)
        write_file(os.path.join(root, "dir-b", "file-b"), random_content(128, seed + 1))
        write_file(os.path.join(root, "file-c"), random_content(16384, seed + 2))


def add_file(driver, layer: str, name: str, data: bytes) -> None:
    """addFile: one file, 0755."""
    with mounted(driver, layer) as root:
        write_file(os.path.join(root, name), data)


def add_directory(driver, layer: str, name: str) -> None:
    """addDirectory: MkdirAll 0755."""
    with mounted(driver, layer) as root:
        os.makedirs(os.path.join(root, name), 0o755, exist_ok=True)


def remove_all(driver, layer: str, *names: str) -> None:
    """removeAll: RemoveAll on each name (a missing one is fine)."""
    with mounted(driver, layer) as root:
        for name in names:
            path = os.path.join(root, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def check_file(driver, layer: str, name: str, expected: bytes) -> None:
    """checkFile: the file's bytes equal ``expected``."""
    with mounted(driver, layer) as root:
        with open(os.path.join(root, name), "rb") as handle:
            got = handle.read()
    assert got == expected, "%s in layer %s: mismatched file content %r, expecting %r" % (name, layer, got[:80], expected[:80])


def check_file_removed(driver, layer: str, name: str) -> None:
    """checkFileRemoved: stat must fail with ENOENT."""
    with mounted(driver, layer) as root:
        path = os.path.join(root, name)
        assert not os.path.lexists(path), "file still exists: %s (layer %s)" % (path, layer)


def _blocks(count: int):
    for i in range(0, count, 100):
        yield i, [j for j in range(100) if i + j < count]


def add_many_files(driver, layer: str, count: int, seed: int) -> None:
    """addManyFiles: directory-<i>/file-<i+j> = randomContent(64, seed+i+j), blocks of 100."""
    with mounted(driver, layer) as root:
        for i, js in _blocks(count):
            directory = os.path.join(root, "directory-%d" % i)
            os.makedirs(directory, 0o755, exist_ok=True)
            for j in js:
                write_file(os.path.join(directory, "file-%d" % (i + j)), random_content(64, seed + i + j))


def check_many_files(driver, layer: str, count: int, seed: int) -> None:
    """checkManyFiles: every file of addManyFiles holds randomContent(64, seed+i+j)."""
    with mounted(driver, layer) as root:
        for i, js in _blocks(count):
            for j in js:
                path = os.path.join(root, "directory-%d" % i, "file-%d" % (i + j))
                with open(path, "rb") as handle:
                    got = handle.read()
                want = random_content(64, seed + i + j)
                assert got == want, "%s in layer %s: mismatched file content %r, expecting %r" % (path, layer, got, want)


def change_many_files(driver, layer: str, count: int, seed: int) -> list:
    """changeManyFiles: rewrite (C), add (A) or delete (D) by j % 3; returns the expected changes."""
    expected = []
    with mounted(driver, layer) as root:
        for i, js in _blocks(count):
            directory = "/directory-%d" % i
            os.makedirs(root + directory, 0o755, exist_ok=True)
            expected.append(changes_mod.Change(directory, changes_mod.MODIFY))
            for j in js:
                if j % 3 == 0:
                    name = "%s/file-%d" % (directory, i + j)
                    write_file(root + name, random_content(64, seed + i + j))
                    expected.append(changes_mod.Change(name, changes_mod.MODIFY))
                elif j % 3 == 1:
                    name = "%s/file-%d-%d" % (directory, seed, i + j)
                    write_file(root + name, random_content(64, seed + i + j))
                    expected.append(changes_mod.Change(name, changes_mod.ADD))
                else:
                    name = "%s/file-%d" % (directory, i + j)
                    os.remove(root + name)
                    expected.append(changes_mod.Change(name, changes_mod.DELETE))
    return expected


def _change_key(change) -> tuple:
    return os.fsencode(change.path), {"C": 0, "A": 1, "D": 2}[change.kind]


def check_changes(expected: list, actual: list) -> None:
    """checkChanges: same length, then equal element by element after sorting by (path, kind)."""
    assert len(expected) == len(actual), "unexpected number of changes, expected %d, got %d: %r" % (len(expected), len(actual), actual)
    for want, got in zip(sorted(expected, key=_change_key), sorted(actual, key=_change_key)):
        assert (want.path, want.kind) == (got.path, got.kind), "unexpected change, expecting %r, got %r" % (want, got)


def add_layer_files(driver, layer: str, parent: str, i: int) -> None:
    """addLayerFiles: top-id, layer-<i>/layer-id and layer-<i>/parent-id, no newline."""
    with mounted(driver, layer) as root:
        write_file(os.path.join(root, "top-id"), layer.encode())
        os.mkdir(os.path.join(root, "layer-%d" % i), 0o755)
        write_file(os.path.join(root, "layer-%d" % i, "layer-id"), layer.encode())
        write_file(os.path.join(root, "layer-%d" % i, "parent-id"), parent.encode())


def add_many_layers(driver, base: str, count: int) -> str:
    """addManyLayers: a chain of ``count`` layers on base, each with its layer files; returns the top."""
    last = base
    for i in range(1, count + 1):
        following = random_id()
        driver.create(following, last)
        add_layer_files(driver, following, last, i)
        last = following
    return last


def check_many_layers(driver, top: str, count: int) -> None:
    """checkManyLayers: top-id is top, and layer-<i>/layer-id walks back through parent-id."""
    with mounted(driver, top) as root:
        with open(os.path.join(root, "top-id"), "rb") as handle:
            got = handle.read().decode()
        assert got == top, "top-id of %s is %r" % (top, got)
        expected = top
        for i in range(count, 0, -1):
            with open(os.path.join(root, "layer-%d" % i, "layer-id"), "rb") as handle:
                got = handle.read().decode()
            assert got == expected, "layer-%d/layer-id is %r, expected %r" % (i, got, expected)
            with open(os.path.join(root, "layer-%d" % i, "parent-id"), "rb") as handle:
                expected = handle.read().decode()
