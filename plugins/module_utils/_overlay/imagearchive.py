# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reading an image archive, extracted into a directory, and verifying it before any import.

Two layouts are read (when both are present, as ``docker save`` writes since Docker 25,
``manifest.json`` wins, as it does for ``docker load``)::

    docker save   manifest.json       [{"Config": "<c>.json", "RepoTags": [...], "Layers": ["<d>/layer.tar", ...]}]
                  <c>.json            the image config: rootfs.diff_ids, one per layer, base first
    OCI layout    oci-layout          {"imageLayoutVersion": "1.0.0"}
                  index.json          {"manifests": [descriptor, ...]}: one image each; a descriptor may
                                      name a nested index (one manifest per platform)
                  blobs/<alg>/<hex>   manifests, configs and layers, named by their digest

Nothing in the archive is trusted: an OCI blob must have the size and digest its descriptor
gives, and the sha256 of each layer's uncompressed tar must be the config's diff_id. A layer
tar is also walked header by header, so one cut short says so. Layer ids are OCI chain ids
(image-spec ``config.md``) in hex, the ids Docker's layer store uses for the same layers, so
images that share base layers share them on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass, replace

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import archivecheck, errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.archivecheck import parse_digest, unpack_archive, verify_layer

_INDEX_TYPES = frozenset((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
))
_LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}
# Annotations that name an image in an OCI index (the second is containerd's full reference).
_NAME_ANNOTATIONS = ("org.opencontainers.image.ref.name", "io.containerd.image.name")
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x"}
_MAX_INDEX_DEPTH = 4


@dataclass(frozen=True)
class Layer:
    """One layer of the selected image, base first; ``path`` is its tar, maybe compressed."""

    index: int
    diff_id: str
    chain_id: str
    path: str
    compression: str
    size: int
    media_type: str | None


@dataclass(frozen=True)
class Image:
    """The selected image: where it came from, its names and config digest, and its layers."""

    format: str
    index: int
    count: int
    name: str | None
    names: list
    config_digest: str
    architecture: str | None
    os: str | None
    layers: list

    def info(self) -> dict:
        """The image without its layers, as the module returns it."""
        found = asdict(self)
        del found["layers"]
        return found


@dataclass(frozen=True)
class _Candidate:
    """An image listed by the archive, not yet read: its names and how to reach its manifest."""

    names: list
    entry: dict


def chain_ids(diff_ids) -> list:
    """The OCI chain ids (hex, without the algorithm) of a list of diff_ids, base first."""
    found = []
    chain = None
    for diff_id in diff_ids:
        chain = diff_id if chain is None else "sha256:" + hashlib.sha256(("%s %s" % (chain, diff_id)).encode("ascii")).hexdigest()
        found.append(chain.partition(":")[2])
    return found


def name_matches(query: str, names) -> bool:
    """Whether ``query`` names an image called ``names``: exact, or with ``:latest`` and docker.io implied."""
    wanted = _normal_name(query)
    return any(_normal_name(name) == wanted for name in names)


def _normal_name(name: str) -> str:
    for prefix in ("docker.io/", "index.docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    last = name.rpartition("/")[2]
    if ":" not in last and "@" not in last:
        name += ":latest"
    return name


def read_image(root: str, image: str | None = None, verify: bool = True) -> Image:
    """Select an image of the archive extracted in ``root`` (the first unless ``image`` names one) and verify it.

    ``image`` is a name (a RepoTag or an OCI ref name annotation) or a position in the
    archive. Raises ArchiveError before returning when anything does not match.
    """
    given = root
    root = os.path.realpath(root)
    if not os.path.lexists(given):
        raise errors.ArchiveError("image archive %s does not exist: give the directory where the docker save or OCI archive "
                                  "was extracted" % given, path=given)
    if not os.path.isdir(root):
        raise errors.ArchiveError("image archive %s is not a directory: extract the archive first "
                                  "(for example with ansible.builtin.unarchive) and give that directory" % given, path=given)
    if os.path.isfile(os.path.join(root, "manifest.json")):
        fmt, candidates = "docker-save", _docker_candidates(root)
    elif os.path.isfile(os.path.join(root, "index.json")) or os.path.isfile(os.path.join(root, "oci-layout")):
        fmt, candidates = "oci", _oci_candidates(root)
    else:
        raise errors.ArchiveError("image archive %s: neither a docker save archive (manifest.json) nor an OCI "
                                  "image layout (oci-layout, index.json)" % root)
    if not candidates:
        raise errors.ArchiveError("image archive %s holds no image" % root)
    position = _select(root, candidates, image)
    chosen = candidates[position]
    if fmt == "docker-save":
        config_path, config, diff_ids, layer_specs = _docker_image(root, chosen.entry, position)
    else:
        config_path, config, diff_ids, layer_specs = _oci_image(root, chosen.entry, position)
    config_digest = "sha256:" + archivecheck.file_hash(config_path, "sha256")
    layers = [Layer(index, diff_id, chain_id, spec[0], "none", 0, spec[1])
              for index, (diff_id, chain_id, spec) in enumerate(zip(diff_ids, chain_ids(diff_ids), layer_specs))]
    if verify:
        layers = [verify_layer(layer, len(layers), layer_specs[layer.index][2]) for layer in layers]
    return Image(fmt, position, len(candidates), chosen.names[0] if chosen.names else None, list(chosen.names),
                 config_digest, config.get("architecture"), config.get("os"), layers)


def read_image_file(path: str, image: str | None = None) -> Image:
    """``read_image`` of an archive tar: extracted into a scratch dir that is removed again.

    The layers' ``path`` are then the names of their tars inside the archive.
    """
    with tempfile.TemporaryDirectory(prefix="graphdriver-image-info.") as scratch:
        unpack_archive(path, scratch)
        found = read_image(scratch, image)
        root = os.path.realpath(scratch)
        layers = [replace(layer, path=os.path.relpath(layer.path, root)) for layer in found.layers]
    return replace(found, layers=layers)


def _select(root: str, candidates: list, image: str | None) -> int:
    if image is None or image == "":
        return 0
    if image.isdigit():
        if int(image) < len(candidates):
            return int(image)
        raise errors.ArchiveError("image archive %s holds %d image(s): there is no image %s (positions start at 0)"
                                  % (root, len(candidates), image))
    for position, candidate in enumerate(candidates):
        if name_matches(image, candidate.names):
            return position
    listing = "; ".join("%d: %s" % (position, ", ".join(c.names) or "(no name)") for position, c in enumerate(candidates))
    raise errors.ArchiveError("image archive %s has no image named %s; it holds %s" % (root, image, listing))


def _docker_candidates(root: str) -> list:
    manifest = _load_json(root, os.path.join(root, "manifest.json"), "manifest.json")
    if not isinstance(manifest, list) or not all(isinstance(entry, dict) for entry in manifest):
        raise errors.ArchiveError("image archive %s: manifest.json is not a list of images" % root)
    return [_Candidate([tag for tag in entry.get("RepoTags") or [] if isinstance(tag, str)], entry) for entry in manifest]


def _docker_image(root: str, entry: dict, position: int) -> tuple:
    where = "image %d in %s" % (position, os.path.join(root, "manifest.json"))
    if not isinstance(entry.get("Config"), str) or not isinstance(entry.get("Layers"), list):
        raise errors.ArchiveError("%s: it needs Config (a file name) and Layers (a list)" % where)
    config_path = archivecheck.inside(root, entry["Config"], where)
    config, diff_ids = _diff_ids(root, config_path, len(entry["Layers"]))
    return config_path, config, diff_ids, [(archivecheck.inside(root, layer, where), None, None) for layer in entry["Layers"]]


def _oci_candidates(root: str) -> list:
    layout = _load_json(root, os.path.join(root, "oci-layout"), "oci-layout")
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise errors.ArchiveError("image archive %s: oci-layout has no imageLayoutVersion" % root)
    index = _load_json(root, os.path.join(root, "index.json"), "index.json")
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list) or not all(isinstance(entry, dict) for entry in manifests):
        raise errors.ArchiveError("image archive %s: index.json has no list of manifests" % root)
    candidates = []
    for entry in manifests:
        annotations = entry.get("annotations") or {}
        names = [annotations[key] for key in _NAME_ANNOTATIONS if isinstance(annotations.get(key), str)]
        candidates.append(_Candidate(names, entry))
    return candidates


def _oci_image(root: str, entry: dict, position: int) -> tuple:
    where = "image %d in %s" % (position, os.path.join(root, "index.json"))
    manifest = _oci_manifest(root, entry, where, 0)
    config = manifest.get("config")
    layers = manifest.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise errors.ArchiveError("%s: its manifest needs a config and a list of layers" % where)
    config_path = _blob(root, config, where + ", config")
    config, diff_ids = _diff_ids(root, config_path, len(layers))
    specs = []
    for index, layer in enumerate(layers):
        number = "layer %d of %d (index %d)" % (index + 1, len(layers), index)
        media_type = layer.get("mediaType")
        if media_type not in _LAYER_TYPES:
            raise errors.ArchiveError("%s: %s has the media type %r, which is not a tar layer (plain, gzip or zstd)"
                                      % (where, number, media_type))
        algorithm, hexdigest = parse_digest(layer.get("digest"), "%s: %s" % (where, number))
        path = archivecheck.inside(root, "blobs/%s/%s" % (algorithm, hexdigest), where)
        if not os.path.exists(path):
            raise errors.ArchiveError("%s: %s (%s) is missing: no blob %s%s" % (
                where, number, diff_ids[index], path,
                " (a foreign layer, which archives leave out)" if "foreign" in media_type or layer.get("urls") else ""))
        specs.append((path, media_type, layer))
    return config_path, config, diff_ids, specs


def _oci_manifest(root: str, descriptor: dict, where: str, depth: int) -> dict:
    path = _blob(root, descriptor, where)
    document = _load_json(root, path, "the manifest of " + where)
    if not isinstance(document, dict):
        raise errors.ArchiveError("%s: its manifest %s is not a JSON object" % (where, path))
    if descriptor.get("mediaType") not in _INDEX_TYPES and document.get("mediaType") not in _INDEX_TYPES:
        return document
    if depth >= _MAX_INDEX_DEPTH:
        raise errors.ArchiveError("%s: indexes nested deeper than %d" % (where, _MAX_INDEX_DEPTH))
    return _oci_manifest(root, _platform_entry(document, where), where, depth + 1)


def _platform_entry(index: dict, where: str) -> dict:
    """The entry of a nested index for this machine's architecture, else the first image that is not an attestation."""
    entries = [entry for entry in index.get("manifests") or [] if isinstance(entry, dict)]
    images = [entry for entry in entries if (entry.get("platform") or {}).get("os") != "unknown"
              and (entry.get("annotations") or {}).get("vnd.docker.reference.type") != "attestation-manifest"]
    if not images:
        raise errors.ArchiveError("%s: its nested index lists no image" % where)
    arch = _GO_ARCH.get(platform.machine(), platform.machine())
    for entry in images:
        found = entry.get("platform") or {}
        if found.get("os", "linux") == "linux" and found.get("architecture") == arch:
            return entry
    return images[0]


def _blob(root: str, descriptor: dict, where: str) -> str:
    """The path of a blob that exists and matches its descriptor's size and digest."""
    algorithm, expected = parse_digest(descriptor.get("digest"), where)
    path = archivecheck.inside(root, "blobs/%s/%s" % (algorithm, expected), where)
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise errors.ArchiveError("%s: cannot read the blob %s: %s" % (where, path, exc.strerror)) from None
    if isinstance(descriptor.get("size"), int) and size != descriptor["size"]:
        raise errors.ArchiveError("%s: the blob %s has %d bytes, its descriptor says %d" % (where, path, size, descriptor["size"]))
    actual = archivecheck.file_hash(path, algorithm)
    if actual != expected:
        raise errors.ArchiveError("%s: digest mismatch: the blob %s has the digest %s:%s" % (where, path, algorithm, actual))
    return path


def _diff_ids(root: str, config_path: str, layer_count: int) -> tuple:
    """The image config and its diff_ids, checked against the number of layers the manifest lists."""
    config = _load_json(root, config_path, "the image config")
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise errors.ArchiveError("image config %s has no rootfs.diff_ids" % config_path)
    for number, diff_id in enumerate(diff_ids, 1):
        if parse_digest(diff_id, "image config %s, diff_id %d" % (config_path, number))[0] != "sha256":
            raise errors.ArchiveError("image config %s: diff_id %d is %s; only sha256 diff_ids are supported" % (config_path, number, diff_id))
    if len(diff_ids) != layer_count:
        raise errors.ArchiveError("image config %s lists %d diff_ids for %d layers" % (config_path, len(diff_ids), layer_count))
    if not diff_ids:
        raise errors.ArchiveError("image config %s: the image has no layers" % config_path)
    return config, diff_ids


def _load_json(root: str, path: str, what: str):
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except OSError as exc:
        raise errors.ArchiveError("image archive %s: cannot read %s (%s): %s" % (root, what, path, exc.strerror)) from None
    except ValueError as exc:
        raise errors.ArchiveError("image archive %s: %s (%s) is not valid JSON: %s" % (root, what, path, exc)) from None
