# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reading and verifying image archives: chain ids, names, both layouts, and every way an archive lies."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, imagearchive

A, B, C = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64
# Worked out with the shell, independently of the code under test:
#   printf 'sha256:aaaa... sha256:bbbb...' | sha256sum
AB = "ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c"
ABC = "c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588"
BA = "c6238ae8d91445af4c453ac796a5e6c69f596c950ef3ae7b29faf4f8da3487f1"

CHAIN_CASES = [
    ("empty", [], []),
    ("base layer is its own diff_id", [A], ["a" * 64]),
    ("two layers", [A, B], ["a" * 64, AB]),
    ("three layers chain on the previous chain id", [A, B, C], ["a" * 64, AB, ABC]),
    ("order matters", [B, A], ["b" * 64, BA]),
]


@pytest.mark.parametrize("diff_ids, expected", [case[1:] for case in CHAIN_CASES], ids=[case[0] for case in CHAIN_CASES])
def test_chain_ids_follow_the_oci_rule(diff_ids, expected):
    assert imagearchive.chain_ids(diff_ids) == expected


NAME_CASES = [
    ("exact tag", "test/app:1", ["test/app:1"], True),
    ("latest is implied", "busybox", ["busybox:latest"], True),
    ("docker.io/library is implied", "busybox", ["docker.io/library/busybox:latest"], True),
    ("other tag", "busybox:1", ["busybox:latest"], False),
    ("registry port is not a tag", "localhost:5000/img", ["localhost:5000/img:latest"], True),
    ("bare ref name annotation", "latest", ["busybox:latest"], False),
    ("no names", "x", [], False),
]


@pytest.mark.parametrize("query, names, expected", [case[1:] for case in NAME_CASES], ids=[case[0] for case in NAME_CASES])
def test_name_matches_like_docker_references(query, names, expected):
    assert imagearchive.name_matches(query, names) is expected


DIGEST_CASES = [
    ("sha256", A, ("sha256", "a" * 64)),
    ("sha512", "sha512:" + "f" * 128, ("sha512", "f" * 128)),
    ("short hex", "sha256:abc", None),
    ("upper case", "sha256:" + "A" * 64, None),
    ("no algorithm", "a" * 64, None),
    ("md5", "md5:" + "a" * 32, None),
    ("not a string", 42, None),
]


@pytest.mark.parametrize("value, expected", [case[1:] for case in DIGEST_CASES], ids=[case[0] for case in DIGEST_CASES])
def test_parse_digest_accepts_only_sha256_and_sha512(value, expected):
    if expected is None:
        with pytest.raises(errors.ArchiveError, match="layer 1"):
            imagearchive.parse_digest(value, "layer 1")
    else:
        assert imagearchive.parse_digest(value, "layer 1") == expected


# -- archive builders -------------------------------------------------------------------------

def layer_tar(files: dict) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1700000000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


BASE = layer_tar({"etc/os-release": b"NAME=base\n", "bin/sh": b"#!" + b"x" * 3000})
APP = layer_tar({"usr/bin/app": b"app\n"})
OTHER = layer_tar({"opt/other": b"other\n"})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def config_of(layers, **extra) -> bytes:
    return json.dumps(dict({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [
        "sha256:" + sha(layer) for layer in layers]}}, **extra)).encode()


def docker_save(root, images):
    """``images``: a list of (tags, [layer tar bytes]); returns root."""
    manifest = []
    for tags, layers in images:
        config = config_of(layers)
        write(os.path.join(root, sha(config) + ".json"), config)
        for layer in layers:
            write(os.path.join(root, sha(layer), "layer.tar"), layer)
        manifest.append({"Config": sha(config) + ".json", "RepoTags": tags, "Layers": ["%s/layer.tar" % sha(layer) for layer in layers]})
    write(os.path.join(root, "manifest.json"), json.dumps(manifest).encode())
    return str(root)


def blob(root, data: bytes, media_type: str) -> dict:
    write(os.path.join(root, "blobs", "sha256", sha(data)), data)
    return {"mediaType": media_type, "digest": "sha256:" + sha(data), "size": len(data)}


def compress(data: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    if kind == "zstd":
        return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout
    return data


OCI_MEDIA = {"none": "application/vnd.oci.image.layer.v1.tar", "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
             "zstd": "application/vnd.oci.image.layer.v1.tar+zstd", "docker-gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip"}


def oci_manifest(root, layers, compression="none") -> dict:
    config = blob(root, config_of(layers), "application/vnd.oci.image.config.v1+json")
    descriptors = [blob(root, compress(layer, compression.replace("docker-", "")), OCI_MEDIA[compression]) for layer in layers]
    document = json.dumps({"schemaVersion": 2, "config": config, "layers": descriptors}).encode()
    return blob(root, document, "application/vnd.oci.image.manifest.v1+json")


def oci_layout(root, images, compression="none", nested=False):
    """``images``: a list of (name or None, [layer tar bytes]); ``nested`` wraps each in a per-platform index."""
    entries = []
    for name, layers in images:
        entry = oci_manifest(root, layers, compression)
        if nested:
            decoy = dict(oci_manifest(root, [OTHER]), platform={"os": "linux", "architecture": "s390x-not-this-one"})
            attestation = dict(oci_manifest(root, [OTHER]), platform={"os": "unknown", "architecture": "unknown"})
            entry["platform"] = {"os": "linux", "architecture": imagearchive._GO_ARCH.get(os.uname().machine, os.uname().machine)}
            index = json.dumps({"schemaVersion": 2, "manifests": [attestation, decoy, entry]}).encode()
            entry = blob(root, index, "application/vnd.oci.image.index.v1+json")
        if name:
            entry["annotations"] = {"org.opencontainers.image.ref.name": name}
        entries.append(entry)
    write(os.path.join(root, "oci-layout"), b'{"imageLayoutVersion": "1.0.0"}')
    write(os.path.join(root, "index.json"), json.dumps({"schemaVersion": 2, "manifests": entries}).encode())
    return str(root)


# -- reading good archives --------------------------------------------------------------------

GOOD_CASES = [
    ("docker save, first image by default", "docker", None, None, ["a:1"], [BASE, APP]),
    ("docker save, image by tag", "docker", None, "b:1", ["b:1"], [BASE, OTHER]),
    ("docker save, image by position", "docker", None, "1", ["b:1"], [BASE, OTHER]),
    ("oci plain", "oci", "none", None, ["a:1"], [BASE, APP]),
    ("oci gzip, image by ref name", "oci", "gzip", "b:1", ["b:1"], [BASE, OTHER]),
    ("oci docker gzip media type", "oci", "docker-gzip", None, ["a:1"], [BASE, APP]),
    ("oci zstd", "oci", "zstd", None, ["a:1"], [BASE, APP]),
    ("oci nested index picks this machine's platform", "oci-nested", "gzip", "b:1", ["b:1"], [BASE, OTHER]),
]


def build_two_images(root, layout, compression):
    images = [(["a:1"], [BASE, APP]), (["b:1"], [BASE, OTHER])]
    if layout == "docker":
        return docker_save(root, images)
    return oci_layout(root, [(tags[0], layers) for tags, layers in images], compression, nested=layout == "oci-nested")


@pytest.mark.parametrize("layout, compression, query, names, layers",
                         [case[1:] for case in GOOD_CASES], ids=[case[0] for case in GOOD_CASES])
def test_read_image_returns_verified_layers_with_chain_ids(tmp_path, layout, compression, query, names, layers):
    if compression == "zstd" and shutil.which("zstd") is None:
        pytest.skip("needs the zstd tool")
    image = imagearchive.read_image(build_two_images(tmp_path, layout, compression), query)
    diff_ids = ["sha256:" + sha(layer) for layer in layers]
    assert image.names == names
    assert image.format == ("docker-save" if layout == "docker" else "oci")
    assert [layer.diff_id for layer in image.layers] == diff_ids
    assert [layer.chain_id for layer in image.layers] == imagearchive.chain_ids(diff_ids)
    assert image.layers[0].chain_id == sha(BASE), "a base layer's chain id is its diff_id"
    expected_compression = "none" if compression in (None, "none") else compression.replace("docker-", "")
    assert [layer.compression for layer in image.layers] == [expected_compression] * len(layers)
    assert all(os.path.isfile(layer.path) and layer.size == os.path.getsize(layer.path) for layer in image.layers)
    assert image.architecture == "amd64" and image.count == 2


def test_two_images_sharing_a_base_share_its_chain_id(tmp_path):
    root = build_two_images(tmp_path, "docker", None)
    first, second = imagearchive.read_image(root, "a:1"), imagearchive.read_image(root, "b:1")
    assert first.layers[0].chain_id == second.layers[0].chain_id
    assert first.layers[1].chain_id != second.layers[1].chain_id


def test_docker_save_wins_over_oci_when_both_are_present(tmp_path):
    oci_layout(tmp_path, [("oci:1", [OTHER])])
    docker_save(tmp_path, [(["docker:1"], [BASE])])
    assert imagearchive.read_image(str(tmp_path)).names == ["docker:1"]


# -- archives that lie or are broken ----------------------------------------------------------

def truncate(path, size=None):
    with open(path, "r+b") as handle:
        handle.truncate(size if size is not None else os.path.getsize(path) // 2)


def flip_content(path):
    data = bytearray(open(path, "rb").read())
    data[data.index(b"NAME=base")] = ord("X")
    write(path, bytes(data))


def docker_layer(root, layer):
    return os.path.join(root, sha(layer), "layer.tar")


def oci_blob(root, data):
    return os.path.join(root, "blobs", "sha256", sha(data))


def _changed_config_count(root):
    path = os.path.join(root, json.load(open(os.path.join(root, "manifest.json")))[0]["Config"])
    config = json.load(open(path))
    config["rootfs"]["diff_ids"].append(C)
    write(path, json.dumps(config).encode())


BAD_CASES = [
    ("docker: layer content changed", "docker", lambda root: flip_content(docker_layer(root, BASE)),
     r"layer 1 of 2 \(index 0, diff_id sha256:%s, .*/layer.tar\): digest mismatch" % sha(BASE)),
    ("docker: plain layer cut inside an entry", "docker", lambda root: truncate(docker_layer(root, BASE), 1024),
     r"layer 1 of 2 .*truncated or corrupt: the tar ends inside entry 'bin/sh'"),
    ("docker: plain layer cut inside a header", "docker", lambda root: truncate(docker_layer(root, APP), 100),
     r"layer 2 of 2 .*the tar ends inside a header"),
    ("docker: layer missing", "docker", lambda root: os.unlink(docker_layer(root, APP)),
     r"layer 2 of 2 .*cannot read it"),
    ("docker: more diff_ids than layers", "docker", _changed_config_count, r"lists 3 diff_ids for 2 layers"),
    ("docker: layer path outside the archive", "docker",
     lambda root: write(os.path.join(root, "manifest.json"), json.dumps([{"Config": "../x.json", "Layers": []}]).encode()),
     r"leads outside of the archive"),
    ("docker: manifest not json", "docker", lambda root: write(os.path.join(root, "manifest.json"), b"{"),
     r"manifest.json .*is not valid JSON"),
    ("oci: blob cut short", "oci", lambda root: truncate(oci_blob(root, gzip.compress(BASE, mtime=0))),
     r"layer 1 of 2 .*truncated or corrupt: the blob has \d+ bytes, its manifest says \d+"),
    ("oci: blob content changed, same size", "oci", lambda root: flip_gzip_byte(oci_blob(root, gzip.compress(APP, mtime=0))),
     r"layer 2 of 2 .*digest mismatch: the blob's digest is sha256:"),
    ("oci: config blob changed", "oci", lambda root: write(oci_blob(root, config_of([BASE, APP])), config_of([APP, BASE])),
     r"image 0 in .*index.json, config: digest mismatch"),
    ("oci: no index", "oci", lambda root: os.unlink(os.path.join(root, "index.json")), r"cannot read index.json"),
]


def flip_gzip_byte(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    write(path, bytes(data))


@pytest.mark.parametrize("layout, damage, message", [case[1:] for case in BAD_CASES], ids=[case[0] for case in BAD_CASES])
def test_a_broken_archive_fails_naming_what_is_wrong(tmp_path, layout, damage, message):
    images = [(["a:1"], [BASE, APP])]
    root = docker_save(tmp_path, images) if layout == "docker" else oci_layout(tmp_path, [("a:1", [BASE, APP])], "gzip")
    damage(root)
    with pytest.raises(errors.ArchiveError, match=message):
        imagearchive.read_image(root)


def test_diff_id_is_checked_even_when_the_oci_blob_matches_its_manifest(tmp_path):
    """A layer whose blob was rewritten with its manifest (a lying producer) still fails on the diff_id."""
    root = oci_layout(tmp_path, [("a:1", [BASE, APP])])
    path = oci_blob(root, APP)
    forged = layer_tar({"usr/bin/app": b"evil"})
    os.unlink(path)
    index = json.load(open(os.path.join(root, "index.json")))
    manifest_path = oci_blob(root, open(os.path.join(root, "blobs", *index["manifests"][0]["digest"].split(":")), "rb").read())
    manifest = json.load(open(manifest_path))
    manifest["layers"][1] = blob(root, forged, OCI_MEDIA["none"])
    index["manifests"][0] = blob(root, json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    write(os.path.join(root, "index.json"), json.dumps(index).encode())
    with pytest.raises(errors.ArchiveError, match=r"layer 2 of 2 \(index 1, diff_id sha256:%s.*the image config's diff_id" % sha(APP)):
        imagearchive.read_image(root)


def test_a_truncated_gzip_layer_is_reported_as_truncated(tmp_path):
    root = docker_save(tmp_path, [(["a:1"], [BASE])])
    path = docker_layer(root, BASE)
    write(path, gzip.compress(BASE, mtime=0)[:-30])
    with pytest.raises(errors.ArchiveError, match=r"layer 1 of 1 .*truncated or corrupt"):
        imagearchive.read_image(root)


SELECT_CASES = [
    ("unknown name lists what there is", "nope", r"has no image named nope; it holds 0: a:1; 1: b:1"),
    ("position out of range", "2", r"holds 2 image\(s\): there is no image 2"),
]


@pytest.mark.parametrize("query, message", [case[1:] for case in SELECT_CASES], ids=[case[0] for case in SELECT_CASES])
def test_selecting_a_missing_image_fails_with_the_list(tmp_path, query, message):
    with pytest.raises(errors.ArchiveError, match=message):
        imagearchive.read_image(build_two_images(tmp_path, "docker", None), query)


def test_a_directory_that_is_no_archive_is_refused(tmp_path):
    with pytest.raises(errors.ArchiveError, match="neither a docker save archive"):
        imagearchive.read_image(str(tmp_path))


def test_unknown_layer_media_type_is_refused(tmp_path):
    root = oci_layout(tmp_path, [("a:1", [BASE])])
    index = json.load(open(os.path.join(root, "index.json")))
    manifest_path = os.path.join(root, "blobs", *index["manifests"][0]["digest"].split(":"))
    manifest = json.load(open(manifest_path))
    manifest["layers"][0]["mediaType"] = "application/vnd.example.weird"
    index["manifests"][0] = blob(root, json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    write(os.path.join(root, "index.json"), json.dumps(index).encode())
    with pytest.raises(errors.ArchiveError, match="media type 'application/vnd.example.weird'"):
        imagearchive.read_image(root)


def _tar_of(directory, dest):
    with tarfile.open(dest, "w") as archive:
        for name in sorted(os.listdir(directory)):
            archive.add(os.path.join(directory, name), arcname=name)
    return dest


@pytest.mark.parametrize("layout", ["docker", "oci"])
def test_an_archive_tar_reads_as_its_extracted_directory(tmp_path, layout):
    root = build_two_images(tmp_path / "extracted", layout, "none")
    from_dir = imagearchive.read_image(root, "b:1")
    from_tar = imagearchive.read_image_file(_tar_of(root, str(tmp_path / "image.tar")), "b:1")
    assert [layer.chain_id for layer in from_tar.layers] == [layer.chain_id for layer in from_dir.layers]
    assert [layer.index for layer in from_tar.layers] == [0, 1]
    assert [layer.path for layer in from_tar.layers] == [os.path.relpath(layer.path, os.path.realpath(root)) for layer in from_dir.layers]
    assert from_tar.config_digest == from_dir.config_digest
    assert sorted(os.listdir(tmp_path)) == ["extracted", "image.tar"], "the scratch extraction is removed"


def test_an_archive_tar_never_writes_through_a_symlink_it_holds(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    archive_path = str(tmp_path / "evil.tar")
    with tarfile.open(archive_path, "w") as archive:
        link = tarfile.TarInfo("blobs")
        link.type = tarfile.SYMTYPE
        link.linkname = str(outside)
        archive.addfile(link)
        data = b"overwritten"
        member = tarfile.TarInfo("blobs/planted")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    with pytest.raises(errors.ArchiveError, match=r"evil\.tar, entry 'blobs/planted'.*leads outside of the archive"):
        imagearchive.read_image_file(archive_path)
    assert os.listdir(outside) == [], "nothing may be written outside the scratch dir"
