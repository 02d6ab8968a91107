# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Writes a small image archive for the role tests, byte for byte the same on every run.

    python3 make_image.py DEST --format docker|oci [--tar] [--compression none|gzip|zstd]
                          [--image NAME=LAYER,LAYER ...] [--corrupt digest|truncate --corrupt-layer N]

LAYER is one of the layers below. ``--corrupt digest`` changes a file of layer N (1-based,
of the first image) after its diff_id was computed (OCI blob digests still match, so the
diff_id check must catch it); ``--corrupt truncate`` cuts the stored layer to half its size.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

MTIME = 1700000000
D, F, L, H = "dir", "file", "symlink", "hardlink"
LAYERS = {
    "base": [
        (D, "etc", 0o755, None), (F, "etc/os-release", 0o644, "NAME=base\n"), (F, "etc/hostname", 0o644, "base\n"),
        (D, "usr", 0o755, None), (D, "usr/bin", 0o755, None), (F, "usr/bin/tool", 0o755, "#!/bin/sh\necho tool\n"),
        (L, "usr/bin/t", 0o777, "tool"), (H, "usr/bin/tool2", 0o755, "usr/bin/tool"),
        (D, "usr/share", 0o755, None), (D, "usr/share/doc", 0o755, None), (D, "usr/share/doc/base", 0o755, None),
        (F, "usr/share/doc/base/README", 0o644, "base docs\n"), (F, "usr/share/doc/base/NOTES", 0o644, "notes\n"),
        (D, "srv", 0o755, None),
    ],
    "app": [
        (D, "etc", 0o755, None), (F, "etc/os-release", 0o644, "NAME=app\n"),
        (D, "usr", 0o755, None), (D, "usr/bin", 0o755, None), (F, "usr/bin/app", 0o755, "#!/bin/sh\necho app\n"),
        (D, "srv", 0o755, None), (D, "srv/app", 0o750, None), (F, "srv/app/data", 0o640, "app data\n"),
    ],
    "whiteouts": [
        (D, "etc", 0o755, None), (F, "etc/.wh.hostname", 0o644, ""),
        (D, "usr", 0o755, None), (D, "usr/bin", 0o755, None), (F, "usr/bin/.wh.t", 0o644, ""),
        (D, "usr/share", 0o755, None), (D, "usr/share/doc", 0o755, None), (D, "usr/share/doc/base", 0o755, None),
        (F, "usr/share/doc/base/.wh..wh..opq", 0o644, ""), (F, "usr/share/doc/base/NEW", 0o644, "only this\n"),
    ],
    "other": [
        (D, "opt", 0o755, None), (D, "opt/other", 0o755, None), (F, "opt/other/file", 0o644, "other\n"),
    ],
}
MEDIA = {"none": "application/vnd.oci.image.layer.v1.tar", "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
         "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}


def layer_tar(name: str, tamper: bool = False) -> bytes:
    """The uncompressed tar of a layer; ``tamper`` changes the first file's content, not its size."""
    out = io.BytesIO()
    tampered = False
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for kind, path, mode, data in LAYERS[name]:
            info = tarfile.TarInfo(path)
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = mode, MTIME, 0, 0, "root", "root"
            if kind == D:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == F:
                raw = data.encode()
                if tamper and raw and not tampered:
                    raw, tampered = raw.swapcase(), True
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
            else:
                info.type = tarfile.SYMTYPE if kind == L else tarfile.LNKTYPE
                info.linkname = data
                tar.addfile(info)
    return out.getvalue()


def compress(raw: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(raw, mtime=0)
    if compression == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, stdout=subprocess.PIPE, check=True).stdout
    return raw


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def build(root: str, fmt: str, images: list, compression: str, corrupt: str | None, corrupt_layer: int) -> None:
    manifest, index = [], []
    for number, (name, layer_names) in enumerate(images):
        diff_ids, stored = [], []
        for position, layer in enumerate(layer_names, 1):
            raw = layer_tar(layer)
            diff_ids.append("sha256:" + sha256(raw))
            hit = corrupt is not None and number == 0 and position == corrupt_layer
            blob = compress(layer_tar(layer, tamper=hit and corrupt == "digest"), compression)
            stored.append((layer, blob, hit and corrupt == "truncate"))
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()
        if fmt == "docker":
            write(os.path.join(root, sha256(config) + ".json"), config)
            paths = []
            for layer, blob, cut in stored:
                path = "%s/layer.tar" % sha256(blob)
                write(os.path.join(root, path), blob[:len(blob) // 2] if cut else blob)
                paths.append(path)
            manifest.append({"Config": sha256(config) + ".json", "RepoTags": [name], "Layers": paths})
            continue
        write(os.path.join(root, "blobs/sha256", sha256(config)), config)
        descriptors = []
        for layer, blob, cut in stored:
            write(os.path.join(root, "blobs/sha256", sha256(blob)), blob[:len(blob) // 2] if cut else blob)
            descriptors.append({"mediaType": MEDIA[compression], "digest": "sha256:" + sha256(blob), "size": len(blob)})
        image_manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sha256(config), "size": len(config)},
            "layers": descriptors}, sort_keys=True).encode()
        write(os.path.join(root, "blobs/sha256", sha256(image_manifest)), image_manifest)
        index.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + sha256(image_manifest),
                      "size": len(image_manifest), "annotations": {"org.opencontainers.image.ref.name": name}})
    if fmt == "docker":
        write(os.path.join(root, "manifest.json"), json.dumps(manifest, sort_keys=True).encode())
    else:
        write(os.path.join(root, "oci-layout"), b'{"imageLayoutVersion":"1.0.0"}')
        write(os.path.join(root, "index.json"), json.dumps({"schemaVersion": 2, "manifests": index}, sort_keys=True).encode())


def pack(root: str, dest: str) -> None:
    """A tar of the archive dir, reproducible: sorted names, fixed times and owners."""
    with tarfile.open(dest, "w", format=tarfile.GNU_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                path = os.path.join(dirpath, name)
                info = tar.gettarinfo(path, os.path.relpath(path, root))
                info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "root", "root"
                if info.isfile():
                    with open(path, "rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest")
    parser.add_argument("--format", choices=("docker", "oci"), required=True)
    parser.add_argument("--tar", action="store_true")
    parser.add_argument("--compression", choices=tuple(MEDIA), default="none")
    parser.add_argument("--image", action="append", default=[])
    parser.add_argument("--corrupt", choices=("digest", "truncate"))
    parser.add_argument("--corrupt-layer", type=int, default=1)
    args = parser.parse_args()
    images = [(spec.partition("=")[0], spec.partition("=")[2].split(",")) for spec in args.image or ["test/app:1=base,app"]]
    if os.path.lexists(args.dest):
        shutil.rmtree(args.dest) if os.path.isdir(args.dest) else os.unlink(args.dest)
    if not args.tar:
        build(args.dest, args.format, images, args.compression, args.corrupt, args.corrupt_layer)
        return
    work = tempfile.mkdtemp()
    try:
        build(work, args.format, images, args.compression, args.corrupt, args.corrupt_layer)
        pack(work, args.dest)
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
