# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A store that a real Docker made (issue 8): Debian's docker.io with ``--storage-driver overlay``.

The test starts its own dockerd (private data-root, exec-root, pidfile and socket; no iptables,
no bridge), loads a two-layer image it builds itself (``docker save`` format, with a whiteout
and an opaque dir, since no registry is reachable), creates a container and copies a file into
it. The driver must then read Docker's ``<data-root>/overlay`` as it is: every layer with the
right kind and exactly Docker's GraphDriver metadata, and the container layer mounted by the
driver must show the same tree as ``docker export``. dockerd is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import tarfile
import time

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import kernel, pruneplan

MISSING = "dockerd is missing: install Debian's docker.io (scripts/setup.sh installs every test dependency)"


def _find_dockerd() -> str | None:
    return shutil.which("dockerd") or next((p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd") if os.access(p, os.X_OK)), None)


def _client_for(dockerd: str) -> str:
    """The client shipped with that dockerd (another ``docker`` earlier on PATH may be any version)."""
    for candidate in ("/usr/bin/docker", os.path.join(os.path.dirname(dockerd), "docker")):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("docker") or pytest.fail("dockerd is installed but no docker client was found")


class Docker:
    """A dockerd this test started, and its client."""

    def __init__(self, base: str, dockerd: str, daemon_config: dict | None = None):
        self.base = base
        self.data_root = os.path.join(base, "data")
        self.exec_root = os.path.join(base, "exec")
        self.pidfile = os.path.join(base, "docker.pid")
        self.socket = os.path.join(base, "docker.sock")
        self.log = os.path.join(base, "dockerd.log")
        self.client = _client_for(dockerd)
        config = os.path.join(base, "daemon.json")
        with open(config, "w", encoding="utf-8") as handle:
            json.dump(daemon_config or {}, handle)
        self.env = dict(os.environ, DOCKER_CONFIG=os.path.join(base, "client"), DOCKER_BUILDKIT="0")
        self.env.pop("DOCKER_HOST", None)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [dockerd, "--config-file", config, "--storage-driver", "overlay", "--data-root", self.data_root,
                 "--exec-root", self.exec_root, "--pidfile", self.pidfile, "-H", "unix://" + self.socket,
                 "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false", "--ip-masq=false",
                 "--userland-proxy=false"],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)

    def log_tail(self) -> str:
        with open(self.log, "rb") as handle:
            return handle.read()[-4000:].decode("utf-8", "replace")

    def run(self, *args, stdin: bytes | None = None) -> bytes:
        proc = subprocess.run([self.client, "-H", "unix://" + self.socket] + list(args), input=stdin, env=self.env,
                              capture_output=True, check=False, timeout=120)
        assert proc.returncode == 0, "docker %s failed: %s\ndockerd log:\n%s" % (" ".join(args), proc.stderr.decode(), self.log_tail())
        return proc.stdout

    def wait_ready(self, timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("dockerd exited with %d:\n%s" % (self.proc.returncode, self.log_tail()))
            probe = subprocess.run([self.client, "-H", "unix://" + self.socket, "version"], env=self.env, capture_output=True, check=False)
            if probe.returncode == 0:
                return
            time.sleep(0.3)
        pytest.fail("dockerd did not answer within %d s:\n%s" % (timeout, self.log_tail()))

    def _containerd_pid(self) -> int | None:
        """The containerd this dockerd started (its pidfile is under our exec-root), if it still runs."""
        try:
            with open(os.path.join(self.exec_root, "containerd", "containerd.pid"), encoding="utf-8") as handle:
                pid = int(handle.read().strip())
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                cmdline = handle.read()
        except (OSError, ValueError):
            return None
        return pid if self.exec_root.encode() in cmdline else None

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it hangs; then whatever it left mounted goes."""
        containerd = self._containerd_pid()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if containerd is not None and self._containerd_pid() == containerd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(containerd, signal.SIGKILL)
        kernel.recursive_unmount(self.base)


@pytest.fixture
def docker(scratch):
    dockerd = _find_dockerd()
    if dockerd is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    base = os.path.join(scratch, "docker")
    os.mkdir(base)
    daemon = Docker(base, dockerd)
    try:
        daemon.wait_ready()
        yield daemon
    finally:
        daemon.stop()


# -- an image built here ---------------------------------------------------------------

def _tar(entries) -> bytes:
    """A layer tar of (name, kind, payload, mode)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 1700000000, mode
            data = None
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            else:
                info.size, data = len(payload), io.BytesIO(payload)
            tar.addfile(info, data)
    return out.getvalue()


LAYER1 = _tar([
    ("bin", "dir", None, 0o755), ("bin/sh", "file", b"#!/bin/true\n", 0o755),
    ("etc", "dir", None, 0o755), ("etc/greeting", "file", b"hello from layer 1\n", 0o644),
    ("etc/gone", "file", b"deleted by layer 2\n", 0o644), ("etc/link", "symlink", "greeting", 0o777),
    ("var", "dir", None, 0o755), ("var/cache", "dir", None, 0o755), ("var/cache/old", "file", b"old cache", 0o600),
    ("usr", "dir", None, 0o755), ("usr/share", "dir", None, 0o755), ("usr/share/data", "file", bytes(range(256)) * 64, 0o644),
])
LAYER2 = _tar([
    ("etc", "dir", None, 0o755), ("etc/.wh.gone", "file", b"", 0o644), ("etc/greeting", "file", b"hello from layer 2\n", 0o640),
    ("var", "dir", None, 0o755), ("var/cache", "dir", None, 0o700), ("var/cache/.wh..wh..opq", "file", b"", 0o644),
    ("var/cache/new", "file", b"new cache", 0o644),
])


def save_archive(tag: str) -> bytes:
    """A ``docker save`` (v1.2 manifest) archive of a two-layer image."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in (LAYER1, LAYER2)]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
        "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2023-11-14T22:13:20Z"}, {"created": "2023-11-14T22:13:20Z"}],
    }, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    files = {config_name: config, "l1/layer.tar": LAYER1, "l2/layer.tar": LAYER2}
    files["manifest.json"] = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["l1/layer.tar", "l2/layer.tar"]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1700000000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# -- comparing trees ---------------------------------------------------------------------

def _member_path(name: str) -> str:
    name = name[2:] if name.startswith("./") else name
    return "" if name == "." else name.rstrip("/")


def exported_tree(data: bytes) -> dict:
    """name -> (type, mode, uid, gid, size, sha256 or link target) from a ``docker export`` tar."""
    found, contents = {}, {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            name = _member_path(member.name)
            if not name:
                continue
            if member.islnk():
                kind, (size, extra) = "file", contents[_member_path(member.linkname)]
            elif member.isfile():
                content = tar.extractfile(member).read()
                kind, size, extra = "file", len(content), hashlib.sha256(content).hexdigest()
                contents[name] = (size, extra)
            elif member.issym():
                kind, size, extra = "symlink", None, member.linkname
            elif member.isdir():
                kind, size, extra = "dir", None, None
            else:
                kind, size, extra = "other-%s" % member.type, None, None
            found[name] = (kind, member.mode & 0o7777, member.uid, member.gid, size, extra)
    return found


def mounted_tree(root: str) -> dict:
    """The same description of a tree on disk."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    kind, size, extra = "file", info.st_size, hashlib.sha256(handle.read()).hexdigest()
            elif stat.S_ISLNK(info.st_mode):
                kind, size, extra = "symlink", None, os.readlink(path)
            elif stat.S_ISDIR(info.st_mode):
                kind, size, extra = "dir", None, None
            else:
                kind, size, extra = "other", None, None
            found[os.path.relpath(path, root)] = (kind, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, size, extra)
    return found


def test_the_driver_reads_and_mounts_a_store_that_docker_made(docker, scratch):
    assert "graphdriver(s)=overlay" in docker.log_tail() or docker.run("info", "--format", "{{.Driver}}").strip() == b"overlay"
    assert docker.run("info", "--format", "{{.Driver}}").strip() == b"overlay", docker.log_tail()
    docker.run("load", stdin=save_archive("gdo-test:two"))
    added = os.path.join(scratch, "added.txt")
    with open(added, "wb") as handle:
        handle.write(b"copied into the container\n")
    container = docker.run("create", "--name", "gdo-test", "gdo-test:two").decode().strip()
    docker.run("cp", added, "gdo-test:/etc/added.txt")
    image_data = json.loads(docker.run("image", "inspect", "--format", "{{json .GraphDriver}}", "gdo-test:two"))
    container_data = json.loads(docker.run("inspect", "--format", "{{json .GraphDriver}}", container))
    assert image_data["Name"] == container_data["Name"] == "overlay"
    exported = exported_tree(docker.run("export", container))

    home = os.path.join(docker.data_root, "overlay")
    drv = driver_mod.Driver(home)
    on_disk = sorted(n for n in os.listdir(home) if not n.startswith("."))
    facts = drv.facts()
    assert sorted(os.listdir(home)) == on_disk, "facts created something in Docker's home"
    assert facts["supported"] and facts["initialized"] and facts["incomplete"] == [] and facts["problems"] == [], facts
    assert sorted(facts["layers"]) == on_disk and len(on_disk) == 4, "expected 2 image layers, the container and its -init: %r" % on_disk

    top = os.path.basename(os.path.dirname(image_data["Data"]["RootDir"]))
    layer_id = os.path.basename(os.path.dirname(container_data["Data"]["UpperDir"]))
    kinds = {i: r["kind"] for i, r in facts["layers"].items()}
    assert sorted(kinds.values()) == ["container", "container", "image", "image"], kinds
    assert kinds[top] == "image" and kinds[layer_id] == "container" and kinds[layer_id + "-init"] == "container", kinds
    assert facts["layers"][top]["metadata"] == image_data["Data"]
    assert facts["layers"][layer_id]["metadata"] == container_data["Data"]
    assert facts["layers"][layer_id + "-init"]["metadata"]["LowerDir"] == container_data["Data"]["LowerDir"]
    assert facts["layers"][top]["children"] == sorted([layer_id, layer_id + "-init"])
    for record in facts["layers"].values():
        assert (record["parent"], record["mounted"], record["holders"], record["incomplete"]) == (None, False, [], False), record

    result = drv.mount(layer_id, "gdo-test")
    try:
        assert result["path"] == container_data["Data"]["MergedDir"]
        assert drv.layer_record(layer_id)["mounted"] is True
        merged = mounted_tree(result["path"])
    finally:
        drv.unmount(layer_id, "gdo-test")
    assert merged == exported, "the mounted container differs from docker export: only mounted %r, only exported %r, differing %r" % (
        sorted(set(merged) - set(exported)), sorted(set(exported) - set(merged)),
        sorted(k for k in set(merged) & set(exported) if merged[k] != exported[k]))
    assert merged["etc/greeting"][4] == len(b"hello from layer 2\n") and "etc/gone" not in merged and "var/cache/old" not in merged
    assert "etc/added.txt" in merged
    assert not drv.is_mounted(layer_id) and kernel.mounts_at_or_below(kernel.read_mountinfo(), home) == []
    # Docker still owns its store: it can remove what the driver just mounted and unmounted.
    docker.run("rm", container)
    assert not os.path.exists(os.path.join(home, layer_id))


def _layerdb_names(data_root: str) -> set:
    layerdb = os.path.join(data_root, "image", "overlay", "layerdb")
    names = set()
    for directory, _dirs, files in os.walk(layerdb):
        for name in files:
            if name in ("cache-id", "mount-id", "init-id"):
                with open(os.path.join(directory, name), encoding="utf-8") as handle:
                    names.add(handle.read().strip())
    return names


def test_prune_of_dockers_store_removes_nothing_docker_names_and_docker_still_runs(docker, scratch):
    """overlay_prune layers=true on <data-root>/overlay with dockerd stopped; then dockerd starts and exports the container."""
    docker.run("load", stdin=save_archive("gdo-test:two"))
    container = docker.run("create", "--name", "gdo-prune", "gdo-test:two").decode().strip()
    before = exported_tree(docker.run("export", container))
    docker.stop()

    home = os.path.join(docker.data_root, "overlay")
    drv = driver_mod.Driver(home)
    named = _layerdb_names(docker.data_root)
    assert len(named) == 4 and named == set(drv.list_layers()), (named, drv.list_layers())
    # Something Docker does not know about: prune must take it, and only it.
    drv.create("stray-base")
    drv.create("stray", "stray-base")
    result = pruneplan.PruneTask(drv, {"layers": True}).run()
    assert [(e["id"], e["reason"]) for e in result["removed"]] == [("stray", "unused"), ("stray-base", "unused")], result
    assert set(result["kept"]) == named and set(drv.list_layers()) == named
    assert pruneplan.PruneTask(drv, {"layers": True}).run()["changed"] is False

    again = Docker(docker.base, _find_dockerd())
    try:
        again.wait_ready()
        assert exported_tree(again.run("export", container)) == before
        again.run("rm", container)
    finally:
        again.stop()
