# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Real clients read what overlay_image writes: skopeo and umoci our OCI layout, dockerd our docker-archive."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay.registry_fixtures import (  # pylint: disable=unused-import
    PASSWORD, USER, basic_registry)
from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay.test_docker_store import (  # pylint: disable=unused-import
    MISSING, Docker, _find_dockerd, docker, exported_tree, mounted_tree, save_archive)
from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay.test_imageplan import built_store, run

# What dockerd's init layer puts into every container; the image has its own idea of these.
DOCKER_INIT = {".dockerenv", "dev", "dev/console", "dev/pts", "dev/shm", "proc", "sys", "etc/hostname", "etc/hosts",
               "etc/resolv.conf", "etc/mtab"}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail("%s is missing: scripts/setup.sh installs every test dependency" % name)
    return found


def _run(*args: str) -> bytes:
    proc = subprocess.run(list(args), capture_output=True, check=False, timeout=300)
    assert proc.returncode == 0, "%s failed: %s" % (" ".join(args), proc.stderr.decode("utf-8", "replace"))
    return proc.stdout


def _differences(ours: dict, theirs: dict) -> str:
    return "only ours %r, only theirs %r, differing %r" % (
        sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours)), sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k]))


def test_skopeo_reads_and_copies_our_oci_layout(scratch):
    drv, _upper = built_store(scratch)
    dest = os.path.join(scratch, "layout")
    exported = run(drv, state="exported", top="work", dest=dest, name="gdo/app:1")
    inspected = json.loads(_run(_tool("skopeo"), "inspect", "oci:%s:1" % dest))
    assert inspected["Digest"] == exported["manifest_digest"]
    assert inspected["Layers"] == exported["diff_ids"]  # uncompressed blobs: the digests are the diff_ids
    copy = os.path.join(scratch, "copy")
    _run("skopeo", "copy", "oci:%s:1" % dest, "oci:%s:1" % copy)
    # skopeo compresses the layers it copies: the blobs change, the diff_ids must not.
    config = json.loads(_run("skopeo", "inspect", "--config", "oci:%s:1" % copy))
    assert config["rootfs"]["diff_ids"] == exported["diff_ids"] and len(config["history"]) == len(exported["layers"])


def test_umoci_unpacks_our_oci_layout_into_our_tree(scratch):
    drv, _upper = built_store(scratch)
    dest = os.path.join(scratch, "layout")
    exported = run(drv, state="exported", top="work", dest=dest, name="gdo/app:1")
    bundle = os.path.join(scratch, "bundle")
    _run(_tool("umoci"), "unpack", "--image", "%s:1" % dest, bundle)
    ours = mounted_tree(drv.layout.root(exported["layers"][-1]))
    theirs = mounted_tree(os.path.join(bundle, "rootfs"))
    assert ours == theirs, _differences(ours, theirs)


def test_docker_loads_our_docker_archive_and_exports_our_tree(docker, scratch):
    drv, _upper = built_store(scratch)
    dest = os.path.join(scratch, "image.tar")
    exported = run(drv, state="exported", top="work", dest=dest, format="docker-archive", name="gdo/app:1")
    with open(dest, "rb") as handle:
        docker.run("load", stdin=handle.read())
    inspected = json.loads(docker.run("image", "inspect", "gdo/app:1"))[0]
    assert inspected["Id"] == exported["config_digest"] and inspected["RootFS"]["Layers"] == exported["diff_ids"]
    container = docker.run("create", "gdo/app:1", "/bin/tool").decode().strip()
    theirs = {k: v for k, v in exported_tree(docker.run("export", container)).items() if k not in DOCKER_INIT}
    ours = {k: v for k, v in mounted_tree(drv.layout.root(exported["layers"][-1])).items() if k not in DOCKER_INIT}
    assert ours == theirs, _differences(ours, theirs)


@pytest.fixture
def docker_with_registry(basic_registry, scratch):
    """A dockerd of this test that trusts ``basic_registry`` (an insecure-registries entry) and is logged in to it."""
    dockerd = _find_dockerd()
    if dockerd is None:
        pytest.fail(MISSING)
    base = os.path.join(scratch, "docker")
    os.mkdir(base)
    daemon = Docker(base, dockerd, {"insecure-registries": [basic_registry.host]})
    try:
        daemon.wait_ready()
        daemon.run("login", "-u", USER, "--password-stdin", basic_registry.host, stdin=PASSWORD.encode())
        yield daemon, basic_registry
    finally:
        daemon.stop()


def test_docker_pulls_what_we_pushed_and_we_pull_what_docker_pushed(docker_with_registry, scratch):
    daemon, reg = docker_with_registry
    drv, _upper = built_store(scratch)
    ours_name = "%s/gdo/ours:1" % reg.host
    pushed = run(drv, state="pushed", top="work", name=ours_name, registry_ca_path=reg.ca)
    daemon.run("pull", ours_name)
    assert json.loads(daemon.run("image", "inspect", ours_name))[0]["RootFS"]["Layers"] == pushed["diff_ids"]
    container = daemon.run("create", ours_name, "/bin/tool").decode().strip()
    theirs = {k: v for k, v in exported_tree(daemon.run("export", container)).items() if k not in DOCKER_INIT}
    ours = {k: v for k, v in mounted_tree(drv.layout.root(pushed["layers"][-1])).items() if k not in DOCKER_INIT}
    assert ours == theirs, _differences(ours, theirs)

    daemon.run("load", stdin=save_archive("gdo-test:two"))
    theirs_name = "%s/gdo/theirs:2" % reg.host
    daemon.run("tag", "gdo-test:two", theirs_name)
    daemon.run("push", theirs_name)
    fresh = driver_mod.Driver(os.path.join(scratch, "home-b"))
    pulled = run(fresh, name=theirs_name, registry_ca_path=reg.ca, container="box")
    assert pulled["changed"] and len(pulled["layers"]) == 2
    assert pulled["diff_ids"] == json.loads(daemon.run("image", "inspect", theirs_name))[0]["RootFS"]["Layers"]
    container = daemon.run("create", theirs_name).decode().strip()
    theirs = {k: v for k, v in exported_tree(daemon.run("export", container)).items() if k not in DOCKER_INIT}
    merged = fresh.mount("box", "gdo-test")["path"]
    try:
        ours = {k: v for k, v in mounted_tree(merged).items() if k not in DOCKER_INIT}
    finally:
        fresh.unmount("box", "gdo-test")
    assert ours == theirs, _differences(ours, theirs)
