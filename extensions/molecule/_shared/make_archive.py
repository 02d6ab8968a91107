# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Writes the image archive that the molecule scenarios import, in ``docker save`` format.

    python3 make_archive.py DEST

Two layers, the same bytes on every run: ``base`` holds files with distinct owners and modes
(what the verifiers read back through the mounted container layer), ``app`` replaces a file
of the base, deletes one with a whiteout and adds a symlink. The verifiers in
``<scenario>/tests/`` spell out the expected results; keep them in step with ``LAYERS``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile

MTIME = 1700000000
LAYERS = {
    "base": [
        # (type, path, mode, uid, gid, content or link target)
        ("dir", "etc", 0o755, 0, 0, None),
        ("file", "etc/os-release", 0o644, 0, 0, "NAME=graphdriver-molecule-base\n"),
        ("file", "etc/hostname", 0o644, 0, 0, "base\n"),
        ("dir", "usr", 0o755, 0, 0, None),
        ("dir", "usr/bin", 0o755, 0, 0, None),
        ("file", "usr/bin/hello", 0o755, 0, 0, "#!/bin/sh\necho hello from the base layer\n"),
        ("dir", "srv", 0o755, 0, 0, None),
        ("dir", "srv/app", 0o750, 1000, 1000, None),
        ("file", "srv/app/config", 0o640, 1000, 1000, "listen = 8080\n"),
        ("file", "srv/app/obsolete", 0o644, 1000, 1000, "removed by the app layer\n"),
        ("dir", "tmp", 0o1777, 0, 0, None),
    ],
    "app": [
        ("dir", "etc", 0o755, 0, 0, None),
        ("file", "etc/os-release", 0o644, 0, 0, "NAME=graphdriver-molecule-app\n"),
        ("dir", "usr", 0o755, 0, 0, None),
        ("dir", "usr/bin", 0o755, 0, 0, None),
        ("symlink", "usr/bin/greet", 0o777, 0, 0, "hello"),
        ("dir", "srv", 0o755, 0, 0, None),
        ("dir", "srv/app", 0o750, 1000, 1000, None),
        ("file", "srv/app/.wh.obsolete", 0o644, 0, 0, ""),
        ("file", "srv/app/secret", 0o600, 1000, 1000, "s3cr3t\n"),
    ],
}


def layer_tar(entries: list) -> bytes:
    """The uncompressed tar of one layer."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, path, mode, uid, gid, data in entries:
            info = tarfile.TarInfo(path)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, MTIME
            payload = None
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, data
            else:
                payload = data.encode()
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return out.getvalue()


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Adds a regular file to the outer archive."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, MTIME
    tar.addfile(info, io.BytesIO(data))


def write_archive(dest: str) -> None:
    """Writes the archive to ``dest`` atomically."""
    layers = [(name, layer_tar(entries)) for name, entries in LAYERS.items()]
    diff_ids = ["sha256:" + hashlib.sha256(blob).hexdigest() for _name, blob in layers]
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/usr/bin/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_names = [diff_id[len("sha256:"):] + "/layer.tar" for diff_id in diff_ids]
    manifest = json.dumps([{
        "Config": config_name,
        "RepoTags": ["graphdriver/molecule:1"],
        "Layers": layer_names,
    }]).encode()
    tmp = dest + ".part"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add_bytes(tar, "manifest.json", manifest)
        add_bytes(tar, config_name, config)
        for layer_name, (_name, blob) in zip(layer_names, layers):
            add_bytes(tar, layer_name, blob)
    os.replace(tmp, dest)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    write_archive(sys.argv[1])
