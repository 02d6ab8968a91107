"""The peers: Docker's own legacy overlay driver (`docker load`) and `umoci raw unpack`, on the
bench's own layers, timed in the same interleaved pairs as the other cases.

The archives are written here from the data set's layer tars, byte for byte reproducible (fixed
names, times, owners and JSON key order), and cached next to the data set in `peers/`:

    docker-base.tar     `docker save` format (manifest.json v1.2): one image, the base layer
    docker-child.tar    the same format: base + child28; the base layer's file is left out,
                        because `docker load` only opens the layers its store does not have yet
    oci/                an OCI image layout (uncompressed layer blobs, hardlinked to the data set
                        when it can) with the tags `base` and `child` (base + child28)

The dockerd is this bench's own: Debian's docker.io with `--storage-driver overlay`, data root on
the scratch loop filesystem, private exec-root, pidfile and socket, no iptables, no bridge. It is
stopped by its PID (and the containerd it started, by the PID in its exec-root) on the way out.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

import harness
from harness import Case, Side

EPOCH = 1700000000
CREATED = "2023-11-14T22:13:20Z"
BASE_TAG = "gdo-bench/base:1"
CHILD_TAG = "gdo-bench/child:1"
LAYER_MEDIA = "application/vnd.oci.image.layer.v1.tar"


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while True:
            n = f.readinto(view)
            if not n:
                return digest.hexdigest()
            digest.update(view[:n])


def _json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _image_config(diff_ids: list[str]) -> bytes:
    return _json({"architecture": "amd64", "os": "linux", "created": CREATED, "config": {"Cmd": ["/bin/sh"]},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]},
                  "history": [{"created": CREATED, "created_by": "gdo-bench layer %d" % i} for i in range(len(diff_ids))]})


def _add(out: tarfile.TarFile, name: str, data: bytes | None = None, path: str | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = EPOCH, 0o644, 0, 0, "", ""
    if path is not None:
        info.size = os.path.getsize(path)
        with open(path, "rb") as f:
            out.addfile(info, f)
    elif data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        out.addfile(info)
    else:
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))


def _save_archive(path: str, tag: str, layers: list[tuple[str, str]], include: set[str]) -> None:
    """A `docker save` archive of one image made of `layers` [(tar path, sha256 hex)]; only the
    layer files whose digest is in `include` are written into it."""
    config = _image_config([d for _p, d in layers])
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = ["%s/layer.tar" % d for _p, d in layers]
    manifest = _json([{"Config": config_name, "RepoTags": [tag], "Layers": names}])
    with tarfile.open(path + ".part", "w", format=tarfile.USTAR_FORMAT) as out:
        _add(out, config_name, config)
        for (layer, digest), name in zip(layers, names):
            if digest in include:
                _add(out, digest + "/")
                _add(out, name, path=layer)
        _add(out, "manifest.json", manifest)
    os.replace(path + ".part", path)


def _blob(layout: str, data: bytes | None = None, path: str | None = None, digest: str | None = None) -> dict:
    """Put a blob into the layout (a hardlink of `path` when it can); returns its descriptor's digest and size."""
    digest = digest or hashlib.sha256(data).hexdigest()
    target = os.path.join(layout, "blobs", "sha256", digest)
    if not os.path.exists(target):
        if path is None:
            with open(target + ".part", "wb") as f:
                f.write(data)
        else:
            try:
                os.link(path, target + ".part")
            except OSError:
                shutil.copyfile(path, target + ".part")
        os.replace(target + ".part", target)
    return {"digest": "sha256:" + digest, "size": os.path.getsize(target)}


def _oci_layout(layout: str, images: dict[str, list[tuple[str, str]]]) -> None:
    """An OCI image layout with one tagged image per entry of `images` (tag -> layers)."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    manifests = []
    for tag, layers in images.items():
        config = _image_config([d for _p, d in layers])
        cdesc = _blob(layout, config)
        ldescs = [dict(_blob(layout, path=p, digest=d), mediaType=LAYER_MEDIA) for p, d in layers]
        manifest = _json({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": dict(cdesc, mediaType="application/vnd.oci.image.config.v1+json"), "layers": ldescs})
        mdesc = _blob(layout, manifest)
        manifests.append(dict(mdesc, mediaType="application/vnd.oci.image.manifest.v1+json",
                              annotations={"org.opencontainers.image.ref.name": tag}))
    with open(os.path.join(layout, "oci-layout"), "wb") as f:
        f.write(_json({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(layout, "index.json"), "wb") as f:
        f.write(_json({"schemaVersion": 2, "manifests": manifests}))


def build_archives(data: dict, log) -> dict:
    """The peers' inputs, built once per data set; returns their paths."""
    pdir = os.path.join(os.path.dirname(data["base"]["path"]), "peers")
    stamp = os.path.join(pdir, "done.json")
    paths = {"docker_base": os.path.join(pdir, "docker-base.tar"), "docker_child": os.path.join(pdir, "docker-child.tar"),
             "oci": os.path.join(pdir, "oci")}
    if os.path.exists(stamp):
        return paths
    t0 = time.monotonic()
    shutil.rmtree(pdir, ignore_errors=True)
    os.makedirs(pdir)
    base = (data["base"]["path"], _sha256_file(data["base"]["path"]))
    child = (data["child28"]["path"], _sha256_file(data["child28"]["path"]))
    _save_archive(paths["docker_base"], BASE_TAG, [base], {base[1]})
    _save_archive(paths["docker_child"], CHILD_TAG, [base, child], {child[1]})
    _oci_layout(paths["oci"], {"base": [base], "child": [base, child]})
    with open(stamp, "w", encoding="utf-8") as f:
        json.dump({"base": base[1], "child28": child[1]}, f)
    log("  peer archives (docker save, OCI layout) written in %.1f s" % (time.monotonic() - t0))
    return paths


def find_dockerd() -> str | None:
    return shutil.which("dockerd") or next((p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd") if os.access(p, os.X_OK)), None)


def _client_for(dockerd: str) -> str | None:
    """The client shipped with that dockerd (another `docker` earlier on PATH may be any version)."""
    for candidate in ("/usr/bin/docker", os.path.join(os.path.dirname(dockerd), "docker")):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("docker")


class Dockerd:
    """A dockerd of our own; `error` says why there is none."""

    def __init__(self, data_root: str) -> None:
        self.error: str | None = None
        self.proc: subprocess.Popen | None = None
        dockerd = find_dockerd()
        self.client = dockerd and _client_for(dockerd)
        if not dockerd or not self.client:
            self.error = "dockerd or its client missing: install Debian's docker.io (scripts/setup.sh)"
            return
        # Sockets live under the exec-root: a short private directory keeps them under 108 bytes.
        self.base = tempfile.mkdtemp(prefix="gdo-bench-docker-")
        self.data_root = data_root
        self.exec_root = os.path.join(self.base, "exec")
        self.socket = os.path.join(self.base, "docker.sock")
        self.log_path = data_root + ".log"
        config = os.path.join(self.base, "daemon.json")
        with open(config, "w", encoding="utf-8") as f:
            f.write("{}\n")
        self.env = dict(os.environ, DOCKER_CONFIG=os.path.join(self.base, "client"))
        self.env.pop("DOCKER_HOST", None)
        os.makedirs(data_root, exist_ok=True)
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [dockerd, "--config-file", config, "--storage-driver", "overlay", "--data-root", data_root,
                 "--exec-root", self.exec_root, "--pidfile", os.path.join(self.base, "docker.pid"),
                 "-H", "unix://" + self.socket, "--iptables=false", "--ip6tables=false", "--bridge=none",
                 "--ip-forward=false", "--ip-masq=false", "--userland-proxy=false"],
                stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self.error = self._wait_ready()

    def _log_tail(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read()[-600:].decode("utf-8", "replace").strip()

    def _wait_ready(self, timeout: float = 60) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "dockerd exited with %d: %s" % (self.proc.returncode, self._log_tail())
            probe = subprocess.run(self.argv("info", "--format", "{{.Driver}}"), env=self.env, capture_output=True,
                                   text=True, check=False)
            if probe.returncode == 0:
                if probe.stdout.strip() != "overlay":
                    return "dockerd runs the %r storage driver, not overlay" % probe.stdout.strip()
                return None
            time.sleep(0.3)
        return "dockerd did not answer within %d s: %s" % (timeout, self._log_tail())

    def argv(self, *args: str) -> list[str]:
        return [self.client, "-H", "unix://" + self.socket] + list(args)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True, check=False)
        if check and proc.returncode:
            raise RuntimeError("docker %s exited %d: %s" % (" ".join(args), proc.returncode, proc.stderr.strip()[-400:]))
        return proc

    def settle(self, timeout: float = 60) -> None:
        """Wait until dockerd has removed the temp copy of the archive that a load unpacks (it
        may still be deleting it after the client returned), then write everything back: the
        next run, ours, must not pay for Docker's cleanup."""
        tmp = os.path.join(self.data_root, "tmp")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not os.listdir(tmp):
                    break
            except FileNotFoundError:
                break
            time.sleep(0.05)
        os.sync()

    def has(self, tag: str) -> bool:
        return self.run("image", "inspect", tag, check=False).returncode == 0

    def remove(self, tag: str) -> None:
        if self.has(tag):
            self.run("rmi", tag)

    def _containerd_pid(self) -> int | None:
        """The containerd this dockerd started (its pidfile is under our exec-root), if it still runs."""
        try:
            with open(os.path.join(self.exec_root, "containerd", "containerd.pid"), encoding="utf-8") as f:
                pid = int(f.read().strip())
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError):
            return None
        return pid if self.exec_root.encode() in cmdline else None

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL if it hangs; its containerd by PID too; then its mounts and files go."""
        if self.proc is None:
            return
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
        harness.unmount_below(self.base)
        shutil.rmtree(self.base, ignore_errors=True)
        self.proc = None


@contextlib.contextmanager
def dockerd(data_root: str):
    daemon = Dockerd(data_root)
    try:
        yield daemon
    finally:
        daemon.stop()


def _unavailable(why: str):
    def measure(_args):
        raise harness.OpUnavailable(why)
    return measure


def cases(data: dict, archives: dict, daemon: Dockerd | None, parent_root: str, worker, made, not_made) -> list[Case]:
    """The peer rows. `parent_root` is the base extracted (the child's parent); `worker(op, **fixed)`
    makes a measure of ours, `made`/`not_made` prepare a run dir."""
    base, child = data["base"]["path"], data["child28"]["path"]

    def docker_side(what):
        if daemon is None:
            return _unavailable("docker peers skipped")
        if daemon.error:
            return _unavailable(daemon.error)
        return what

    def prepare_docker_base(run_dir):
        daemon.remove(CHILD_TAG)
        daemon.remove(BASE_TAG)
        return {"dir": run_dir}

    def prepare_docker_child(run_dir):
        daemon.remove(CHILD_TAG)
        if not daemon.has(BASE_TAG):
            daemon.run("load", "-q", "-i", archives["docker_base"])
        return {"dir": run_dir}

    def docker_load(archive):
        # Timed from spawn to reap of the client; dockerd's cleanup after it is waited for, untimed.
        def measure(_args):
            sample = harness.run_command([daemon.argv("load", "-q", "-i", archive)], daemon.env)
            daemon.settle()
            return sample
        return measure

    def ours_child(run_dir):
        return dict(not_made(run_dir), parent=parent_root)

    umoci = shutil.which("umoci")

    def umoci_unpack(tag):
        if umoci is None:
            return _unavailable("umoci missing: install Debian's umoci (scripts/setup.sh)")
        return lambda a: harness.run_command([[umoci, "--log", "error", "raw", "unpack", "--image", "%s:%s" % (archives["oci"], tag), a["dest"]]])

    return [
        Case("peer_docker_base", "base layer: our ApplyDiff vs Docker 20.10 legacy overlay `docker load` of an archive holding it",
             Side("layertar.apply_layer", worker("apply", tar=base), made),
             Side("docker load (overlay)", docker_side(docker_load(archives["docker_base"])), docker_side(prepare_docker_base)),
             note="docker load: client streams the archive to dockerd, which unpacks it to a temp dir, hashes the "
                  "layer and untars it (docker-untar in a chroot) into a new overlay layer; both sides hash the stream; "
                  "dockerd's deleting of the temp copy afterwards is not timed"),
        Case("peer_docker_child", "28-entry layer on the loaded base: our hardlink copy + apply vs Docker's `docker load`",
             Side("dir_copy(HARDLINK)+apply", worker("child", tar=child), ours_child),
             Side("docker load (overlay)", docker_side(docker_load(archives["docker_child"])), docker_side(prepare_docker_child)),
             note="Docker's legacy overlay makes a child layer the same way: a hardlink copy of the parent's root, "
                  "then the diff applied; the archive holds only the new layer (the base is in the store)"),
        Case("peer_umoci_base", "base layer: our ApplyDiff vs `umoci raw unpack` of an OCI image holding it",
             Side("layertar.apply_layer", worker("apply", tar=base), made),
             Side("umoci raw unpack", umoci_unpack("base"), not_made),
             note="umoci verifies the blob's sha256 while it unpacks; the rootfs is a new directory"),
        Case("peer_umoci_child", "base + 28-entry layer into an empty dir: ours applies both vs `umoci raw unpack` of the two-layer image",
             Side("apply base; apply child28", worker("apply_chain", tars=[base, child]), made),
             Side("umoci raw unpack", umoci_unpack("child"), not_made),
             note="umoci cannot unpack onto an existing rootfs, so both sides unpack the whole two-layer image"),
    ]
