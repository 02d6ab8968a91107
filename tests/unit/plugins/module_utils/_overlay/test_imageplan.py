# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""overlay_image's task against real registries: commit, export, push, pull, and the failures that import nothing."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, imagewriter, reference, registry, registryhttp
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.build import StreamDiff
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.imageplan import ImageTask
from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay.registry_fixtures import (  # pylint: disable=unused-import
    PASSWORD, USER, basic_registry, token_registry)
from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay.test_registry import make_layer, push

BASE_FILES = {"etc/hostname": b"base\n", "etc/os-release": b"ID=gdo\n", "bin/tool": b"#!/bin/sh\necho tool\n",
              "usr/share/doc/README": b"read me\n"}


def tree_of(root: str) -> dict:
    """Every path under ``root`` with its type, mode bits, owner and content (files) or target (symlinks)."""
    found = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            entry = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid]
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    entry.append(hashlib.sha256(handle.read()).hexdigest())
            elif stat.S_ISLNK(st.st_mode):
                entry.append(os.readlink(path))
            found[os.path.relpath(path, root)] = entry
    return found


def params(**given) -> dict:
    found = {"state": "present", "name": None, "source": None, "top": None, "dest": None, "format": "oci-dir",
             "container": None, "platform": "linux/amd64", "registry_username": USER, "registry_password": PASSWORD,
             "registry_ca_path": None, "registry_insecure": False}
    found.update(given)
    return found


def run(drv, check_mode=False, **given) -> dict:
    return ImageTask(drv, params(**given)).run(check_mode)


def built_store(scratch: str) -> tuple:
    """A home with a base layer, a layer on it that changes and deletes, and a container layer with changes in its upper."""
    drv = driver_mod.Driver(os.path.join(scratch, "home-a"))
    base = make_layer(scratch, "base", BASE_FILES)
    drv.create("base", None, diff_path=base.path)
    second_tar = os.path.join(scratch, "second.tar")
    with tarfile.open(second_tar, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, kind in (("etc/.wh.hostname", b"", tarfile.REGTYPE), ("etc/os-release", b"ID=gdo\nVERSION=2\n", tarfile.REGTYPE),
                                 ("bin/alias", b"", tarfile.SYMTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.size = kind, 0o644, 1300000000, len(data)
            if kind == tarfile.SYMTYPE:
                info.linkname = "tool"
            tar.addfile(info, io.BytesIO(data))
    drv.create("second", "base", diff_path=second_tar)
    drv.create("work", "second")
    upper = drv.layout.upper("work")
    os.makedirs(os.path.join(upper, "srv/app"))
    with open(os.path.join(upper, "srv/app/data.bin"), "wb") as handle:
        handle.write(os.urandom(3 << 20))
    os.utime(os.path.join(upper, "srv/app/data.bin"), (1200000000, 1200000000))
    return drv, upper


def merged_expectation(drv) -> dict:
    """The container layer's merged view as a plain tree (what the committed top layer must hold)."""
    merged = drv.get("work")
    try:
        return tree_of(merged)
    finally:
        drv.put("work")


def test_export_commits_the_container_layer_and_a_second_export_changes_nothing(scratch):
    drv, _upper = built_store(scratch)
    dest = os.path.join(scratch, "image")
    planned = run(drv, True, state="exported", top="work", dest=dest)
    assert [m["op"] for m in planned["modifications"]] == ["commit", "write_image"]
    assert not os.path.exists(dest), "check mode wrote %s" % dest
    assert planned["layers"][-1] not in drv.list_layers()
    first = run(drv, state="exported", top="work", dest=dest)
    assert first["changed"] and first["modifications"] == planned["modifications"]
    assert first["manifest_digest"] == planned["manifest_digest"]
    committed = first["layers"][-1]
    assert first["layers"][:2] == ["base", "second"] and committed in drv.list_layers()
    assert tree_of(drv.layout.root(committed)) == merged_expectation(drv)
    config = json.loads(open(os.path.join(dest, "blobs/sha256", first["config_digest"].partition(":")[2]), "rb").read())
    assert config["rootfs"]["diff_ids"] == first["diff_ids"] and len(config["history"]) == 3
    second = run(drv, state="exported", top="work", dest=dest)
    assert not second["changed"], second["modifications"]
    assert (second["manifest_digest"], second["diff_ids"]) == (first["manifest_digest"], first["diff_ids"])


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_export_to_an_archive_is_reproducible(scratch, fmt):
    drv, _upper = built_store(scratch)
    dest = os.path.join(scratch, "image.tar")
    first = run(drv, state="exported", top="second", dest=dest, format=fmt, name="example.com/gdo/app:1")
    with open(dest, "rb") as handle:
        written = hashlib.sha256(handle.read()).hexdigest()
    again = run(drv, state="exported", top="second", dest=dest, format=fmt, name="example.com/gdo/app:1")
    assert first["changed"] and not again["changed"]
    with open(dest, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == written


def test_push_then_pull_into_a_fresh_home_gives_the_same_trees(basic_registry, scratch):
    drv, _upper = built_store(scratch)
    name = "%s/gdo/app:1" % basic_registry.host
    planned = run(drv, True, state="pushed", top="work", name=name, registry_ca_path=basic_registry.ca)
    assert [m["op"] for m in planned["modifications"]].count("push_blob") == 4  # the config and three layers
    pushed = run(drv, state="pushed", top="work", name=name, registry_ca_path=basic_registry.ca)
    assert pushed["changed"] and pushed["modifications"] == planned["modifications"]
    assert pushed["bytes_transferred"] > 3 << 20
    again = run(drv, state="pushed", top="work", name=name, registry_ca_path=basic_registry.ca)
    assert not again["changed"] and again["modifications"] == [] and again["bytes_transferred"] == 0

    fresh = driver_mod.Driver(os.path.join(scratch, "home-b"))
    check = run(fresh, True, name=name, registry_ca_path=basic_registry.ca, container="box")
    assert [m["op"] for m in check["modifications"]] == ["fetch"] * 3 + ["create"]
    assert not os.path.exists(fresh.home) or fresh.list_layers() == []
    pulled = run(fresh, name=name, registry_ca_path=basic_registry.ca, container="box")
    assert pulled["modifications"] == check["modifications"]
    assert pulled["manifest_digest"] == pushed["manifest_digest"] and pulled["diff_ids"] == pushed["diff_ids"]
    for source_id, pulled_id in zip(pushed["layers"], pulled["layers"]):
        assert tree_of(fresh.layout.root(pulled_id)) == tree_of(drv.layout.root(source_id)), pulled_id
    assert fresh.lower_id("box") == pulled["layers"][-1]
    assert fresh.layer_record(pulled["layers"][0])["diff_digest"] == pulled["diff_ids"][0]
    idempotent = run(fresh, name=name, registry_ca_path=basic_registry.ca, container="box")
    assert not idempotent["changed"] and idempotent["bytes_transferred"] == 0


def _push_compressed(reg, scratch: str, tag: str, compress) -> tuple:
    """Push a one-layer image whose blob is ``compress(tar)``; the reference and the tree the layer holds."""
    blob = make_layer(scratch, "c-" + tag, {"opt/one": b"1" * 70000, "opt/two/three": b"three\n"})
    packed = os.path.join(scratch, "c-%s.blob" % tag)
    with open(blob.path, "rb") as source, open(packed, "wb") as out:
        out.write(compress(source.read()))
    layer = imagewriter.LayerBlob(packed, "sha256:" + hashlib.sha256(open(packed, "rb").read()).hexdigest(),
                                  os.path.getsize(packed), blob.diff_id, imagewriter.OCI_LAYER + "+" + tag)
    image = imagewriter.build_image([layer], "amd64")
    ref = reference.parse("%s/gdo/compressed:%s" % (reg.host, tag))
    push(registry.Session(reg.host, USER, PASSWORD, ca_path=reg.ca), ref, image, scratch)
    return str(ref), os.path.join(scratch, "c-%s.tree" % tag)


def _zstd(data: bytes) -> bytes:
    return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout


@pytest.mark.parametrize("tag, compress", [("gzip", lambda data: gzip.compress(data, mtime=0)), ("zstd", _zstd)])
def test_pull_decompresses_the_blob_as_it_streams(basic_registry, scratch, tag, compress):
    name, tree = _push_compressed(basic_registry, scratch, tag, compress)
    drv = driver_mod.Driver(os.path.join(scratch, "home"))
    pulled = run(drv, name=name, registry_ca_path=basic_registry.ca)
    assert pulled["changed"] and len(pulled["layers"]) == 1
    assert tree_of(drv.layout.root(pulled["layers"][0])) == tree_of(tree)
    assert pulled["bytes_transferred"] == os.path.getsize(os.path.join(scratch, "c-%s.blob" % tag))


def test_a_corrupted_blob_names_it_and_imports_nothing(basic_registry, scratch):
    drv, _upper = built_store(scratch)
    name = "%s/gdo/bad:1" % basic_registry.host
    pushed = run(drv, state="pushed", top="second", name=name, registry_ca_path=basic_registry.ca)
    manifest = json.loads(open(os.path.join(basic_registry.blob_data(pushed["manifest_digest"])), "rb").read())
    victim = manifest["layers"][1]["digest"]
    data_path = basic_registry.blob_data(victim)
    with open(data_path, "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    fresh = driver_mod.Driver(os.path.join(scratch, "home-b"))
    with pytest.raises(registryhttp.DigestMismatch) as caught:
        run(fresh, name=name, registry_ca_path=basic_registry.ca)
    assert victim in str(caught.value) and name in str(caught.value)
    # The base layer was whole and stays; the layer whose blob was bad was never committed.
    assert fresh.list_layers() == [pushed_chain_base(pushed)]
    assert os.listdir(os.path.join(fresh.home, ".graphdriver", "staging")) == []


def pushed_chain_base(pushed: dict) -> str:
    return pushed["diff_ids"][0].partition(":")[2]


def test_missing_tag_and_bad_credentials_name_the_reference(token_registry, scratch):
    drv = driver_mod.Driver(os.path.join(scratch, "home"))
    name = "%s/gdo/nothing:here" % token_registry.host
    with pytest.raises(registryhttp.NotFound) as missing:
        run(drv, name=name, registry_ca_path=token_registry.ca)
    assert name in str(missing.value)
    with pytest.raises(registryhttp.AuthError) as refused:
        run(drv, name=name, registry_ca_path=token_registry.ca, registry_password="wrong")
    assert "gdo/nothing" in str(refused.value)
    assert not os.path.exists(drv.home) or drv.list_layers() == []


def test_import_of_our_own_docker_archive_reuses_the_chain_ids(scratch):
    drv, _upper = built_store(scratch)
    archive = os.path.join(scratch, "image.tar")
    exported = run(drv, state="exported", top="second", dest=archive, format="docker-archive", name="gdo/app:1")
    fresh = driver_mod.Driver(os.path.join(scratch, "home-b"))
    check = run(fresh, True, source=archive)
    imported = run(fresh, source=archive, container="c1")
    assert [m["op"] for m in imported["modifications"]] == ["import", "import", "create"]
    assert check["modifications"] == imported["modifications"][:2]
    assert imported["diff_ids"] == exported["diff_ids"]
    assert tree_of(fresh.layout.root(imported["layers"][-1])) == tree_of(drv.layout.root("second"))
    assert not run(fresh, source=archive, container="c1")["changed"]


@pytest.mark.parametrize("given, message", [
    ({"state": "exported", "top": "x"}, "state=exported needs dest"),
    ({"state": "pushed", "top": "x"}, "state=pushed needs name"),
    ({"state": "present"}, "needs name"),
    ({"state": "present", "name": "gdo/app:bad tag!"}, "bad tag!"),
    ({"state": "present", "name": "a/b", "platform": "amd64"}, "platform"),
    ({"state": "exported", "top": "x", "dest": "/tmp/x", "container": "c"}, "container is for state=present"),
])
def test_bad_options_are_refused_before_anything_is_read(scratch, given, message):
    drv = driver_mod.Driver(os.path.join(scratch, "home"))
    with pytest.raises(errors.InvalidArgument, match=message):
        ImageTask(drv, params(**given))
    assert not os.path.exists(drv.home)


def test_a_stream_whose_tar_is_not_the_diff_id_leaves_no_layer(scratch):
    drv = driver_mod.Driver(os.path.join(scratch, "home"))
    blob = make_layer(scratch, "plain", {"etc/one": b"1\n"})
    with open(blob.path, "rb") as handle:
        data = handle.read()
    with pytest.raises(errors.ArchiveError, match="digest mismatch.*diff_id is sha256:0{64}"):
        drv.create("bad", None, diff_stream=StreamDiff(io.BytesIO(gzip.compress(data)), "layer 1 of 1", "sha256:" + "0" * 64))
    assert drv.list_layers() == [] and os.listdir(os.path.join(drv.home, ".graphdriver", "staging")) == []
    drv.create("good", None, diff_stream=StreamDiff(io.BytesIO(gzip.compress(data)), "layer 1 of 1", blob.diff_id))
    assert drv.layer_record("good")["diff_digest"] == blob.diff_id and os.path.isfile(os.path.join(drv.layout.root("good"), "etc/one"))
