# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Images written from layer blobs: reproducible bytes, atomic and idempotent, read by skopeo, umoci and our reader."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import tarfile

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, imagearchive, imagewriter, reference, registry
from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay.registry_fixtures import (  # pylint: disable=unused-import
    PASSWORD, USER, basic_registry)
from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay.test_registry import make_layer

BASE = {"etc/os-release": b"ID=gdo\n", "usr/bin/tool": b"#!/bin/sh\necho tool\n"}
TOP = {"srv/data/blob": bytes(range(256)) * 4096, "etc/motd": b"committed\n"}


def layers(scratch: str) -> list:
    return [make_layer(scratch, "base", BASE), make_layer(scratch, "top", TOP)]


def image(scratch: str) -> imagewriter.BuiltImage:
    return imagewriter.build_image(layers(scratch), "amd64", container_config={"Cmd": ["/bin/sh"]}, history=["base", "commit"])


def test_build_image_is_canonical_and_reproducible(scratch):
    first = image(scratch)
    second = imagewriter.build_image(layers(scratch), "amd64", container_config={"Cmd": ["/bin/sh"]}, history=["base", "commit"])
    assert (first.config, first.manifest) == (second.config, second.manifest)
    config = json.loads(first.config)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer.diff_id for layer in first.layers]}
    assert [entry["created_by"] for entry in config["history"]] == ["base", "commit"]
    assert first.config == imagewriter.canonical_json(config), "the config is written in canonical form"
    manifest = json.loads(first.manifest)
    assert manifest["config"] == {"mediaType": imagewriter.OCI_CONFIG, "digest": first.config_digest, "size": len(first.config)}
    assert [layer["digest"] for layer in manifest["layers"]] == [layer.digest for layer in first.layers]
    assert first.manifest_digest == "sha256:" + hashlib.sha256(first.manifest).hexdigest()


def test_build_image_refuses_no_layers_and_a_wrong_history(scratch):
    with pytest.raises(errors.InvalidArgument, match="at least one layer"):
        imagewriter.build_image([], "amd64")
    with pytest.raises(errors.InvalidArgument, match="1 history entries given for 2 layers"):
        imagewriter.build_image(layers(scratch), "amd64", history=["one"])


@pytest.mark.parametrize("fmt", imagewriter.FORMATS)
def test_write_is_reproducible_idempotent_and_readable(scratch, fmt):
    built = image(scratch)
    ref = reference.parse("localhost:5000/gdo/app:1")
    dest = os.path.join(scratch, "out-" + fmt)
    first = imagewriter.write_image(built, dest, fmt, ref)
    assert first["changed"] and first["manifest_digest"] == built.manifest_digest
    snapshot = _snapshot(dest)
    second = imagewriter.write_image(image(scratch), dest, fmt, ref)
    assert not second["changed"], "writing the same image again must change nothing"
    assert _snapshot(dest) == snapshot
    assert not [name for name in os.listdir(scratch) if name.startswith(".out-")], "no temporary left next to dest"

    root = dest
    if fmt != "oci-dir":
        root = os.path.join(scratch, "extracted-" + fmt)
        with tarfile.open(dest) as archive:
            for member in archive.getmembers():
                assert member.mtime == 0 and member.uid == 0 and member.gid == 0, member.name
            archive.extractall(root)
    read = imagearchive.read_image(root, "localhost:5000/gdo/app:1")
    assert [layer.diff_id for layer in read.layers] == built.diff_ids
    assert [layer.chain_id for layer in read.layers] == imagearchive.chain_ids(built.diff_ids)
    assert read.config_digest == built.config_digest


def test_another_image_replaces_dest_atomically(scratch):
    dest = os.path.join(scratch, "layout")
    imagewriter.write_image(image(scratch), dest, "oci-dir")
    smaller = imagewriter.build_image(layers(scratch)[:1], "amd64")
    assert imagewriter.write_image(smaller, dest, "oci-dir")["changed"]
    blobs = set(os.listdir(os.path.join(dest, "blobs", "sha256")))
    assert blobs == {digest.partition(":")[2] for digest in (smaller.manifest_digest, smaller.config_digest, smaller.layers[0].digest)}
    assert [name for name in os.listdir(scratch) if name.startswith(".layout")] == []


def test_tampered_oci_dir_is_rewritten(scratch):
    built = image(scratch)
    dest = os.path.join(scratch, "layout")
    imagewriter.write_image(built, dest, "oci-dir")
    blob = os.path.join(dest, "blobs", "sha256", built.layers[1].digest.partition(":")[2])
    with open(blob, "r+b") as handle:
        handle.write(b"X")
    assert imagewriter.write_image(built, dest, "oci-dir")["changed"]
    assert hashlib.sha256(open(blob, "rb").read()).hexdigest() == built.layers[1].digest.partition(":")[2]


def test_unknown_format_and_missing_parent_are_refused(scratch):
    with pytest.raises(errors.InvalidArgument, match="oci-dir, oci-archive, docker-archive"):
        imagewriter.write_image(image(scratch), os.path.join(scratch, "x"), "tarball")
    with pytest.raises(errors.ArchiveError, match="does not exist"):
        imagewriter.write_image(image(scratch), os.path.join(scratch, "no", "x"), "oci-archive")


def _snapshot(path: str) -> dict:
    if os.path.isfile(path):
        return {"": hashlib.sha256(open(path, "rb").read()).hexdigest()}
    found = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            found[os.path.relpath(full, path)] = (os.stat(full).st_ino, hashlib.sha256(open(full, "rb").read()).hexdigest())
    return found


def _skopeo_inspect(transport: str) -> dict:
    done = subprocess.run(["skopeo", "inspect", transport], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("fmt, transport", [("oci-dir", "oci:%s:1"), ("oci-archive", "oci-archive:%s:1"),
                                            ("docker-archive", "docker-archive:%s")])
def test_skopeo_reads_what_we_write(scratch, fmt, transport):
    built = image(scratch)
    dest = os.path.join(scratch, "img-" + fmt)
    imagewriter.write_image(built, dest, fmt, reference.parse("localhost:5000/gdo/app:1"))
    found = _skopeo_inspect(transport % dest)
    assert found["Architecture"] == "amd64" and found["Os"] == "linux"
    assert len(found["Layers"]) == 2
    if fmt != "docker-archive":
        assert found["Digest"] == built.manifest_digest
        assert found["Layers"] == [layer.digest for layer in built.layers]


def test_umoci_unpack_of_our_layout_equals_the_layers(scratch):
    dest = os.path.join(scratch, "layout")
    imagewriter.write_image(image(scratch), dest, "oci-dir", reference.parse("gdo/app:1"))
    bundle = os.path.join(scratch, "bundle")
    done = subprocess.run(["umoci", "unpack", "--image", dest + ":1", bundle], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    rootfs = os.path.join(bundle, "rootfs")
    found = {}
    for root, _dirs, files in os.walk(rootfs):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as handle:
                found[os.path.relpath(full, rootfs)] = handle.read()
    assert found == dict(BASE, **TOP)


def test_skopeo_copies_our_layout_to_a_registry_and_we_pull_it_back(basic_registry, scratch):
    built = image(scratch)
    dest = os.path.join(scratch, "layout")
    imagewriter.write_image(built, dest, "oci-dir", reference.parse("gdo/app:1"))
    target = "%s/test/skopeo:1" % basic_registry.host
    done = subprocess.run(["skopeo", "copy", "--dest-cert-dir", basic_registry.cert_dir(), "--dest-creds",
                           "%s:%s" % (USER, PASSWORD), "oci:%s:1" % dest, "docker://" + target],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    ref = reference.parse(target)
    with registry.Session(ref.api_host, USER, PASSWORD, ca_path=basic_registry.ca) as client:
        pulled = client.resolve(ref, "linux/amd64")
        assert pulled.config_digest == built.config_digest
        assert pulled.diff_ids == built.diff_ids
        for descriptor, diff_id in zip(pulled.layers, pulled.diff_ids):
            # skopeo may compress layers on the way: the diff_id is the uncompressed tar's digest either way.
            with client.open_blob(ref.repository, descriptor) as stream:
                if descriptor["mediaType"].endswith("gzip"):
                    with gzip.GzipFile(fileobj=stream) as tar:
                        data = tar.read()
                    stream.finish()
                else:
                    data = stream.read()
            assert "sha256:" + hashlib.sha256(data).hexdigest() == diff_id
