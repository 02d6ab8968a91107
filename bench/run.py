"""The benchmark: `python bench/run.py [--rounds 5] [--quick] [--only CASE,...]`, as root.

Builds (or loads) the data set, makes a fresh journaled ext4 loop filesystem, puts the fixtures
on it (the extracted base, a container layer with 10,000 changed files), then runs every case
as interleaved pairs, ours against its baseline, and writes bench/.cache/results/latest.{json,txt}.
A case whose driver part or module is not there yet says so; the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import time

import ansible_cases
import dataset
import harness
import peers
from harness import Case, Side

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
CACHE = os.path.join(BENCH_DIR, ".cache")
MOUNT_CYCLES = 200
# scripts/setup.sh makes this venv; its python also runs the modules directly.
REPO_ANSIBLE = os.path.join(REPO, ".venv", "bin", "ansible")


def default_ansible() -> str:
    """The repository's own venv first, then whatever `ansible` is on PATH."""
    if os.access(REPO_ANSIBLE, os.X_OK):
        return REPO_ANSIBLE
    return shutil.which("ansible") or REPO_ANSIBLE


def collections_root(given: str | None) -> str:
    """A dir whose ansible_collections/graphdriver/overlay is this checkout (a symlink in the cache)."""
    if given:
        return given
    root = os.path.join(CACHE, "dev")
    link = os.path.join(root, "ansible_collections", "graphdriver", "overlay")
    if os.path.realpath(link) != REPO:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(REPO, link)
    return root


def raw_overlay_mount(lower: str, upper: str, work: str, merged: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    data = ("lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work)).encode()
    if libc.mount(b"overlay", merged.encode(), b"overlay", 0, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), merged)


def make_fixtures(fx: str, data: dict, log) -> dict:
    """The untimed inputs: the base extracted by GNU tar, and a container layer with 10,000 changes."""
    t0 = time.monotonic()
    base_root = os.path.join(fx, "base")
    os.makedirs(base_root)
    subprocess.run(["tar", "-x", "-f", data["base"]["path"], "-C", base_root], check=True)
    c10k = os.path.join(fx, "c10k")
    upper, work, merged = (os.path.join(c10k, d) for d in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.makedirs(d)
    raw_overlay_mount(base_root, upper, work, merged)
    try:
        made = dataset.make_container_changes(merged, 10000)
    finally:
        harness.unmount_below(merged)
    du = subprocess.run(["du", "-sb", upper], check=True, stdout=subprocess.PIPE, text=True).stdout.split()[0]
    n = 1 + sum(len(f) + len(d) for _top, d, f in os.walk(upper))
    log("  fixtures in %.1f s: base extracted; container upper %d entries, %d MB (%s)" % (
        time.monotonic() - t0, n, int(du) // 10**6, made))
    os.sync()
    return {"base_root": base_root, "upper": upper, "c10k": made}


def _out(run_dir: str, make: bool = True) -> dict:
    dest = os.path.join(run_dir, "out")
    if make:
        os.makedirs(dest)
    return {"dir": run_dir, "dest": dest}


def worker_op(env: dict):
    """`op(name, **fixed)`: a measure that runs worker.py's operation `name` with these arguments and the run's."""
    def worker(op, **fixed):
        return lambda a: harness.run_worker(op, dict(fixed, **a), env)
    return worker


def not_made(run_dir):
    return _out(run_dir, make=False)  # cp -a/-al, dir_copy and umoci make the target themselves


def driver_cases(fx: dict, data: dict, env: dict) -> list[Case]:
    base, up1, up2 = data["base"]["path"], data["upper1"]["path"], data["upper2"]["path"]
    root, upper = fx["base_root"], fx["upper"]
    worker = worker_op(env)

    def command(*build):
        return lambda a: harness.run_command([b(a) for b in build])

    def untar(tar):
        # -p is a root's default anyway; spelled out as the targets are stated against `tar -xpf`.
        return lambda a: ["tar", "-xp", "-f", tar, "-C", a["dest"]]

    def cp(flags, src):
        return lambda a: ["cp", flags, src, a["dest"]]

    made = _out

    def mount_dirs(run_dir):
        dirs = {d: os.path.join(run_dir, d) for d in ("upper", "work", "merged")}
        for d in dirs.values():
            os.makedirs(d)
        return dict(dirs, lower=root, cycles=MOUNT_CYCLES)

    def driver_home(run_dir):
        return {"home": os.path.join(run_dir, "home"), "cycles": MOUNT_CYCLES}

    def diff_out(run_dir):
        return {"upper": upper, "lower": root, "out": os.path.join(run_dir, "out.tar")}

    return [
        Case("apply_base", "ApplyDiff of the base layer into an empty dir vs GNU tar -x",
             Side("layertar.apply_layer", worker("apply", tar=base), made),
             Side("tar -xp", command(untar(base)), made), target=1.1),
        Case("apply_upper1", "ApplyDiff of upper1 (34 MB) into an empty dir vs GNU tar -x",
             Side("layertar.apply_layer", worker("apply", tar=up1), made),
             Side("tar -xp", command(untar(up1)), made),
             note="the small layer: its peak memory against apply_base's says whether memory is flat in layer size"),
        Case("child_layer", "child image layer: hardlink copy of the parent root + apply upper1 vs cp -al + tar -x",
             Side("dir_copy(HARDLINK)+apply", worker("child", parent=root, tar=up1), not_made),
             Side("cp -al; tar -xp", command(cp("-al", root), untar(up1)), not_made), target=1.1),
        Case("child_whiteouts", "child image layer with whiteouts + opaque dir (upper2) vs cp -al + tar -x",
             Side("dir_copy(HARDLINK)+apply", worker("child", parent=root, tar=up2), not_made),
             Side("cp -al; tar -xp", command(cp("-al", root), untar(up2)), not_made),
             note="GNU tar writes .wh. files as they are: same I/O, not the same semantics"),
        Case("hardlink_copy", "hardlink copy of the base root vs cp -al",
             Side("dir_copy(HARDLINK)", worker("hardlink_copy", src=root), not_made),
             Side("cp -al", command(cp("-al", root)), not_made), target=1.3),
        Case("content_copy", "Create on a container parent: content copy of its upper (10k changes) vs cp -a",
             Side("dir_copy(CONTENT)", worker("content_copy", src=upper), not_made),
             Side("cp -a", command(cp("-a", upper)), not_made), target=1.3),
        Case("content_copy_base", "content copy of the whole base root vs cp -a",
             Side("dir_copy(CONTENT)", worker("content_copy", src=root), not_made),
             Side("cp -a", command(cp("-a", root)), not_made), target=1.3),
        Case("diff_10k", "Diff export of a container layer with 10,000 changed files vs tar -c of its upper",
             Side("changes_from_upper+write_changes_tar", worker("diff"), diff_out),
             Side("tar -c", command(lambda a: ["tar", "-c", "-f", a["out"], "-C", upper, "."]), diff_out), target=1.5),
        Case("changes_10k", "Changes of the same layer vs a find(1) walk of its upper",
             Side("changes_from_upper", worker("changes"), diff_out),
             Side("find -printf", command(lambda a: ["find", upper, "-printf", "%y %m %U %G %s %T@ %p\\n"]), diff_out),
             target=2.0, note="find only walks the upper; Changes also looks up each path in the lower"),
        Case("mount_cycle", "overlay mount+unmount cycle: kernel.mount/unmount vs raw ctypes mount(2)/umount2(2)",
             Side("kernel.mount/unmount", worker("mount_kernel"), mount_dirs),
             Side("ctypes mount/umount2", worker("mount_raw"), mount_dirs), per=MOUNT_CYCLES, unit="us",
             note="per cycle, %d cycles a run, both in a Python worker" % MOUNT_CYCLES),
        Case("mount_cycle_driver", "mount+unmount through the driver (Driver.mount/unmount: locks, holders) vs raw mount(2)/umount2(2)",
             Side("Driver.mount/unmount", worker("mount_driver"), driver_home),
             Side("ctypes mount/umount2", worker("mount_raw"), mount_dirs), per=MOUNT_CYCLES, unit="us", target=4.0,
             note="per cycle; the driver persists the holder and reads the mount table on each call"),
    ]


# Each peer row runs right after the row of ours it anchors, so their loads are alike.
PEER_AFTER = {"peer_docker_base": "apply_base", "peer_umoci_base": "apply_base",
              "peer_docker_child": "child_layer", "peer_umoci_child": "child_layer"}


def beside(cases: list[Case], extra: list[Case]) -> list[Case]:
    out = list(cases)
    for case in extra:
        anchor = PEER_AFTER.get(case.name)
        at = max((i for i, c in enumerate(out) if c.name == anchor or PEER_AFTER.get(c.name) == anchor), default=len(out) - 1)
        out.insert(at + 1, case)
    return out


def memory_check(results: list[dict]) -> dict | None:
    """Peak memory flat in the layer size: ours on the 436 MB base vs on the 34 MB upper1."""
    by = {r["name"]: r for r in results if r.get("status") == "ok"}
    if "apply_base" not in by or "apply_upper1" not in by:
        return None
    big, small = by["apply_base"]["ours"]["maxrss_kb_max"], by["apply_upper1"]["ours"]["maxrss_kb_max"]
    growth = big - small
    return {"apply_base_maxrss_kb": big, "apply_upper1_maxrss_kb": small, "growth_kb": growth,
            "limit_kb": 16 * 1024, "verdict": "PASS" if growth <= 16 * 1024 else "MISS"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds per case, after the warm-up (default 5)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="2 rounds, no warm-up: a smoke test, not a measurement")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--size-gb", type=int, default=8, help="size of the sparse loop filesystem")
    ap.add_argument("--layers", type=int, default=1000, help="layers in the home of the ansible cases")
    ap.add_argument("--ansible", default=default_ansible(),
                    help="the ansible CLI; its venv's python runs the modules (default: .venv/bin/ansible of this checkout)")
    ap.add_argument("--collections-root", help="dir holding ansible_collections/graphdriver/overlay (default: a symlink in the cache)")
    ap.add_argument("--no-ansible", action="store_true", help="skip the cases that go through ansible")
    ap.add_argument("--no-peers", action="store_true", help="skip docker load and umoci raw unpack (no dockerd is started)")
    ap.add_argument("--no-unshare", action="store_true", help="stay in the caller's mount namespace")
    opts = ap.parse_args()
    if opts.quick:
        opts.rounds, opts.warmup = 2, 0
    if os.geteuid() != 0:
        sys.exit("run.py must run as root: it mounts a loop filesystem and overlays")
    if not opts.no_unshare:
        harness.private_mount_namespace()
    only = {c for c in opts.only.split(",") if c}

    def log(msg):
        print(msg, flush=True)

    machine = harness.machine_info()
    if machine["loadavg"][0] > 1.0:
        log("warning: load average %.1f on %d cpus: the machine is busy, timings will be noisy" % (machine["loadavg"][0], machine["cpus"]))
    t_data = time.monotonic()
    data = dataset.build()
    log(dataset.summary(data) + "  [%.1f s]" % (time.monotonic() - t_data))
    croot = collections_root(opts.collections_root)
    env = dict(os.environ, PYTHONPATH=croot, ANSIBLE_COLLECTIONS_PATH=croot,
               ANSIBLE_HOME=os.path.join(CACHE, "ansible-home"), ANSIBLE_LOCALHOST_WARNING="False",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="False", ANSIBLE_DEPRECATION_WARNINGS="False")
    # The stat baseline runs from the bytecode its site-packages install wrote; with an inherited
    # PYTHONDONTWRITEBYTECODE=1 the collection alone was compiled from source in every module run
    # (~60-80 ms of module_facts). Give it bytecode too: compile it once, and let runs write theirs.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    ansible_python = os.path.join(os.path.dirname(opts.ansible), "python")
    if not opts.no_ansible and not (os.access(opts.ansible, os.X_OK) and os.access(ansible_python, os.X_OK)):
        opts.no_ansible = True
        log("warning: no ansible CLI with a python beside it at %s: the Ansible cases are skipped "
            "(run scripts/setup.sh to make .venv, or pass --ansible PATH)" % opts.ansible)
    subprocess.run([ansible_python if not opts.no_ansible else sys.executable, "-m", "compileall", "-q",
                    os.path.join(REPO, "plugins")], check=False, env=env, stdout=subprocess.DEVNULL)
    present = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "plugins", "module_utils", "_overlay")) if f.endswith(".py"))
    log("driver parts present: " + ", ".join(present))

    results: list[dict] = []
    mnt = os.path.join(CACHE, "mnt")
    with contextlib.ExitStack() as stack:
        stack.enter_context(harness.loop_ext4(os.path.join(CACHE, "scratch.img"), mnt, opts.size_gb))
        log("scratch: journaled ext4 on a direct-I/O loop device at %s" % mnt)
        fx = make_fixtures(os.path.join(mnt, "fixtures"), data, log)
        scratch = os.path.join(mnt, "runs")
        cases = driver_cases(fx, data, env)
        peer_names = set(PEER_AFTER)
        if opts.no_peers or (only and not only & peer_names):
            log("peers: skipped" + (" (--no-peers)" if opts.no_peers else ""))
        else:
            archives = peers.build_archives(data, log)
            daemon = None
            if not only or only & {"peer_docker_base", "peer_docker_child"}:
                # Entered after the loop filesystem, so it is stopped before that is unmounted.
                daemon = stack.enter_context(peers.dockerd(os.path.join(mnt, "docker")))
                log("peers: " + (daemon.error or "dockerd %d up, storage driver overlay, data root on the scratch fs" % daemon.proc.pid))
            cases = beside(cases, peers.cases(data, archives, daemon, fx["base_root"], worker_op(env), _out, not_made))
        actx = {"repo": REPO, "scratch": os.path.join(mnt, "ansible"), "ansible": opts.ansible, "env": env,
                "layers": opts.layers}
        if opts.no_ansible:
            log("ansible cases: skipped (--no-ansible)")
        else:
            actx["home_error"] = ansible_cases.prepare(actx, log)
            log("ansible cases: " + (actx["home_error"] or "home ready"))
            cases += ansible_cases.cases(actx)
        log("running %d rounds after %d warm-up round(s)" % (opts.rounds, opts.warmup))
        for case in cases:
            if only and case.name not in only:
                continue
            results.append(harness.run_pair(case, scratch, opts.rounds, opts.warmup, log))
    memory = memory_check(results)
    machine["loadavg_end"] = os.getloadavg()
    report = {"machine": machine, "rounds": opts.rounds, "warmup": opts.warmup,
              "filesystem": "ext4 (journaled) on losetup --direct-io=on, fresh per run",
              "dataset": {k: data[k] for k in ("key", "packages") + dataset.LAYERS},
              "container_layer": fx["c10k"], "cases": results, "memory_flat": memory}
    header = "graphdriver.overlay bench  %s  rounds=%d warmup=%d  data %s: base %d entries / %d MB  load %.1f -> %.1f" % (
        machine["time"], opts.rounds, opts.warmup, data["key"], data["base"]["entries"],
        data["base"]["bytes"] // 10**6, machine["loadavg"][0], machine["loadavg_end"][0])
    text = harness.text_table(results, header)
    if memory:
        text += "peak memory flat in layer size: apply_base %.1f MB vs apply_upper1 %.1f MB (+%.1f MB, limit +16 MB): %s\n" % (
            memory["apply_base_maxrss_kb"] / 1024, memory["apply_upper1_maxrss_kb"] / 1024,
            memory["growth_kb"] / 1024, memory["verdict"])
    json_path, text_path = harness.write_report(os.path.join(CACHE, "results"), report, text)
    log("\n" + text + "\nwritten: %s\n         %s" % (json_path, text_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
