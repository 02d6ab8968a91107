# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Writing an image from layer blobs: canonical config and manifest JSON, and three on-disk formats.

The layers are tar blobs already made (reproducible diffs); nothing here reads a tree. The
config and manifest are canonical JSON (sorted keys, no spaces) with fixed timestamps, and
every archive entry has a fixed mtime, owner and mode, so the same layers give the same
digests and the same bytes every time::

    oci-dir         oci-layout, index.json, blobs/sha256/<hex> (manifest, config, layers)
    oci-archive     a tar of that layout
    docker-archive  docker save's format: manifest.json, <config hex>.json,
                    <layer hex>/layer.tar (+ VERSION, json), repositories when tagged

Each is written next to ``dest`` and renamed over it, so a reader sees the old image or
the new one; when ``dest`` already holds exactly these bytes it is left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.tarheader import tar_header
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.reference import Reference

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
EPOCH = "1970-01-01T00:00:00Z"
FORMATS = ("oci-dir", "oci-archive", "docker-archive")
_CHUNK = 1 << 20
_BLOCK = 512
_DIR_MODE = 0o755
_FILE_MODE = 0o644


@dataclass(frozen=True)
class LayerBlob:
    """A layer tar on disk: its blob digest and size, and its diff_id (the same for an uncompressed tar)."""

    path: str
    digest: str
    size: int
    diff_id: str
    media_type: str = OCI_LAYER


@dataclass(frozen=True)
class BuiltImage:
    """An image's canonical config and manifest bytes with their digests, and its layers."""

    config: bytes
    config_digest: str
    manifest: bytes
    manifest_digest: str
    layers: tuple

    @property
    def diff_ids(self) -> list:
        """The config's diff_ids, base first."""
        return [layer.diff_id for layer in self.layers]

    def blobs(self) -> list:
        """``(digest, size, path or None)`` for the config (None: it is ``config``) and every distinct layer."""
        found = [(self.config_digest, len(self.config), None)]
        for layer in self.layers:
            if all(layer.digest != known[0] for known in found):
                found.append((layer.digest, layer.size, layer.path))
        return found


def canonical_json(document) -> bytes:
    """The one byte form used for every document written here: sorted keys, no whitespace, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_blob(path: str, digest: str | None = None) -> LayerBlob:
    """A LayerBlob of an uncompressed tar at ``path``; its digest is computed unless given (as Driver.diff returns it)."""
    try:
        size = os.stat(path).st_size
        if digest is None:
            hasher = hashlib.sha256()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(_CHUNK), b""):
                    hasher.update(chunk)
            digest = "sha256:" + hasher.hexdigest()
    except OSError as exc:
        raise errors.ArchiveError("layer blob %s: cannot read it: %s" % (path, exc.strerror)) from None
    return LayerBlob(path, digest, size, digest)


def build_image(layers, architecture: str, os_name: str = "linux", variant: str | None = None,
                container_config: dict | None = None, history: list | None = None, created: str = EPOCH,
                annotations: dict | None = None) -> BuiltImage:
    """The canonical config (rootfs.diff_ids, one history entry per layer) and OCI manifest of ``layers``.

    ``history`` gives each layer's ``created_by`` (default: its diff_id);
    ``container_config`` is the config's ``config`` object (Env, Cmd, ...).
    """
    layers = tuple(layers)
    if not layers:
        raise errors.InvalidArgument("an image needs at least one layer")
    if history is not None and len(history) != len(layers):
        raise errors.InvalidArgument("%d history entries given for %d layers" % (len(history), len(layers)))
    config = {
        "architecture": architecture,
        "os": os_name,
        "created": created,
        "config": dict(container_config or {}),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": created, "created_by": (history[number] if history is not None else "layer " + layer.diff_id)}
                    for number, layer in enumerate(layers)],
    }
    if variant:
        config["variant"] = variant
    config_bytes = canonical_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _sha256(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size} for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    manifest_bytes = canonical_json(manifest)
    return BuiltImage(config_bytes, _sha256(config_bytes), manifest_bytes, _sha256(manifest_bytes), layers)


def _index(image: BuiltImage, ref: Reference | None) -> bytes:
    descriptor = {"mediaType": OCI_MANIFEST, "digest": image.manifest_digest, "size": len(image.manifest)}
    if ref is not None:
        # ref.name is what skopeo's oci:<dir>:<name> and umoci's --image <dir>:<name> select by.
        descriptor["annotations"] = {"io.containerd.image.name": str(ref), "org.opencontainers.image.ref.name": ref.target}
    return canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]})


def _oci_entries(image: BuiltImage, ref: Reference | None) -> list:
    """The layout's entries in write order: ``(name, bytes or None for a directory, or a layer path)``."""
    entries = [("blobs/", None), ("blobs/sha256/", None)]
    entries.append(("blobs/sha256/" + image.config_digest.partition(":")[2], image.config))
    for digest, _size, path in image.blobs()[1:]:
        entries.append(("blobs/sha256/" + digest.partition(":")[2], path))
    entries.append(("blobs/sha256/" + image.manifest_digest.partition(":")[2], image.manifest))
    entries.append(("index.json", _index(image, ref)))
    entries.append(("oci-layout", OCI_LAYOUT))
    return entries


def _docker_entries(image: BuiltImage, ref: Reference | None) -> list:
    config_name = image.config_digest.partition(":")[2] + ".json"
    tags = [ref.familiar] if ref is not None and ref.tag else []
    layer_names = [layer.digest.partition(":")[2] + "/layer.tar" for layer in image.layers]
    entries = [(config_name, image.config)]
    parent = None
    for digest, _size, path in image.blobs()[1:]:
        layer_id = digest.partition(":")[2]
        legacy = {"id": layer_id, "created": EPOCH}
        if parent:
            legacy["parent"] = parent
        entries += [(layer_id + "/", None), (layer_id + "/VERSION", b"1.0"), (layer_id + "/json", canonical_json(legacy)),
                    (layer_id + "/layer.tar", path)]
        parent = layer_id
    entries.append(("manifest.json", canonical_json([{"Config": config_name, "RepoTags": tags, "Layers": layer_names}])))
    if tags:
        repository, _sep, tag = tags[0].rpartition(":")
        entries.append(("repositories", canonical_json({repository: {tag: image.layers[-1].digest.partition(":")[2]}})))
    return sorted(entries, key=lambda entry: entry[0])


def write_image(image: BuiltImage, dest: str, fmt: str, ref: Reference | None = None) -> dict:
    """Write ``image`` to ``dest`` in ``fmt`` (``oci-dir``, ``oci-archive``, ``docker-archive``), atomically.

    ``ref`` names the image inside (OCI ref name annotation, docker RepoTags). Returns
    ``{"changed", "dest", "format", "manifest_digest", "config_digest", "bytes"}``; ``changed``
    is False when ``dest`` held these very bytes already. Raises InvalidArgument for an
    unknown format and ArchiveError when a file cannot be read or written.
    """
    if fmt not in FORMATS:
        raise errors.InvalidArgument("image format %r is not one of %s" % (fmt, ", ".join(FORMATS)))
    dest = os.path.abspath(dest)
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        raise errors.ArchiveError("cannot write the image to %s: the directory %s does not exist" % (dest, parent))
    entries = _docker_entries(image, ref) if fmt == "docker-archive" else _oci_entries(image, ref)
    try:
        if fmt == "oci-dir":
            changed, size = _write_dir(entries, dest)
        else:
            changed, size = _write_tar(entries, dest)
    except OSError as exc:
        raise errors.ArchiveError("cannot write the image to %s: %s: %s" % (dest, exc.filename or dest, exc.strerror)) from None
    return {"changed": changed, "dest": dest, "format": fmt, "manifest_digest": image.manifest_digest,
            "config_digest": image.config_digest, "bytes": size}


def _source_size(source) -> int:
    return len(source) if isinstance(source, bytes) else os.stat(source).st_size


def holds(image: BuiltImage, dest: str, fmt: str, ref: Reference | None = None) -> bool:
    """Whether ``dest`` holds exactly what ``write_image`` would write there (so writing would change nothing)."""
    if fmt not in FORMATS:
        raise errors.InvalidArgument("image format %r is not one of %s" % (fmt, ", ".join(FORMATS)))
    entries = _docker_entries(image, ref) if fmt == "docker-archive" else _oci_entries(image, ref)
    try:
        if fmt == "oci-dir":
            return os.path.isdir(dest) and not os.path.islink(dest) and _dir_matches(entries, dest)
        if not os.path.isfile(dest):
            return False
        hasher = hashlib.sha256()
        size = _emit_tar(entries, hasher.update)
        return os.stat(dest).st_size == size and _file_digest(dest) == hasher.hexdigest()
    except OSError as exc:
        raise errors.ArchiveError("cannot read %s: %s: %s" % (dest, exc.filename or dest, exc.strerror)) from None


def _emit_tar(entries: list, emit) -> int:
    """Pass the tar of ``entries`` to ``emit`` block by block; its size."""
    total = 0
    for name, source in entries:
        if source is None:
            emit(tar_header(name.encode("utf-8"), _DIR_MODE, 0, 0, 0, 0, b"5"))
            total += _BLOCK
            continue
        size = _source_size(source)
        header = tar_header(name.encode("utf-8"), _FILE_MODE, 0, 0, size, 0, b"0")
        emit(header)
        _copy(source, emit, size)
        emit(bytes(-size % _BLOCK))
        total += len(header) + size + (-size % _BLOCK)
    emit(bytes(2 * _BLOCK))
    return total + 2 * _BLOCK


def _write_tar(entries: list, dest: str) -> tuple:
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", dir=os.path.dirname(dest))
    try:
        hasher = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            def emit(data):
                hasher.update(data)
                out.write(data)
            _emit_tar(entries, emit)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        if os.path.isfile(dest) and os.stat(dest).st_size == size and _file_digest(dest) == hasher.hexdigest():
            os.unlink(temp)
            return False, size
        os.chmod(temp, _FILE_MODE)
        os.rename(temp, dest)
        return True, size
    except BaseException:
        if os.path.lexists(temp):
            os.unlink(temp)
        raise


def _copy(source, emit, size: int) -> None:
    if isinstance(source, bytes):
        emit(source)
        return
    with open(source, "rb") as handle:
        left = size
        while left:
            chunk = handle.read(min(_CHUNK, left))
            if not chunk:
                raise OSError(0, "the file shrank while it was written", source)
            emit(chunk)
            left -= len(chunk)


def _write_dir(entries: list, dest: str) -> tuple:
    total = sum(_source_size(source) for _name, source in entries if source is not None)
    if os.path.isdir(dest) and _dir_matches(entries, dest):
        return False, total
    temp = tempfile.mkdtemp(prefix="." + os.path.basename(dest) + ".", dir=os.path.dirname(dest))
    try:
        os.chmod(temp, _DIR_MODE)
        for name, source in entries:
            path = os.path.join(temp, name)
            if source is None:
                os.mkdir(path, _DIR_MODE)
            elif isinstance(source, bytes):
                with open(path, "wb") as out:
                    out.write(source)
            else:
                # A copy, not a hard link: the caller may rewrite its layer file later.
                shutil.copyfile(source, path)
        old = None
        if os.path.lexists(dest):
            old = tempfile.mkdtemp(prefix="." + os.path.basename(dest) + ".old.", dir=os.path.dirname(dest))
            os.rename(dest, os.path.join(old, "image"))
        os.rename(temp, dest)
        if old is not None:
            shutil.rmtree(old)
        return True, total
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _dir_matches(entries: list, dest: str) -> bool:
    """Whether ``dest`` holds exactly these entries with these contents (blobs checked by hash, not name)."""
    wanted = {name.rstrip("/") for name, _source in entries}
    found = set()
    for root, dirs, files in os.walk(dest):
        rel = os.path.relpath(root, dest)
        for name in dirs + files:
            found.add(name if rel == "." else rel + "/" + name)
    if found != wanted:
        return False
    for name, source in entries:
        path = os.path.join(dest, name)
        if source is None:
            if not os.path.isdir(path) or os.path.islink(path):
                return False
            continue
        if not os.path.isfile(path) or os.path.islink(path) or os.stat(path).st_size != _source_size(source):
            return False
        expected = hashlib.sha256(source).hexdigest() if isinstance(source, bytes) else name.rpartition("/")[2]
        if _file_digest(path) != expected:
            return False
    return True


def _file_digest(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()
