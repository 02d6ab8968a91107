"""Benchmark harness: a scratch ext4 loop filesystem, an interleaved pair runner, statistics and reports.

Every timed operation runs in a fresh child process, so its peak memory (the max RSS that GNU
time(1) reads from wait4) belongs to that operation alone. Python operations run in `worker.py`, which times the
operation itself (interpreter start and imports are not timed) and reports the seconds on its
stdout; a command baseline is timed from here, spawn to reap (about a millisecond more).
Outputs of a run are deleted, and dirty pages written back with sync(2), outside the timing, so
every run starts the same way; caches are never dropped: both sides read warm inputs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(BENCH_DIR, "worker.py")

MS_REC = 0x4000
MS_PRIVATE = 1 << 18
CLONE_NEWNS = 0x00020000


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def private_mount_namespace() -> None:
    """Move this (single-threaded) process into its own mount namespace, so any mount a crash
    leaves behind dies with it. Loop devices are not namespaced: loop_ext4 detaches its own."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "unshare(CLONE_NEWNS): " + os.strerror(err))
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "mount --make-rprivate /: " + os.strerror(err))


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


@contextlib.contextmanager
def loop_ext4(image: str, mountpoint: str, size_gb: int = 6):
    """A freshly made journaled ext4 on a direct-I/O loop device over a sparse file.

    Yields the mount point. Everything is undone on the way out, failures included: the mounts
    at or below the mount point, the loop device and the image file."""
    os.makedirs(os.path.dirname(image), exist_ok=True)
    os.makedirs(mountpoint, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(size_gb << 30)
    try:
        # nodiscard: the file is sparse already; noinit_itable below: no background zeroing
        # thread writing while we measure (lazy_itable_init stays on, so mkfs is quick).
        _run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard", "-L", "gdo-bench", image])
        dev = _run(["losetup", "--direct-io=on", "-f", "--show", image])
        try:
            subprocess.run(["mount", "-t", "ext4", "-o", "noinit_itable", dev, mountpoint], check=True)
            try:
                yield mountpoint
            finally:
                unmount_below(mountpoint)
        finally:
            subprocess.run(["losetup", "-d", dev], check=False)
    finally:
        os.unlink(image)


def unmount_below(path: str) -> None:
    """Unmount everything at or below `path`, deepest first; lazily if a plain unmount fails."""
    path = os.path.realpath(path)
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path + "/"):
                points.append(mp)
    for mp in sorted(points, key=lambda p: p.count("/"), reverse=True):
        if subprocess.run(["umount", mp], check=False, stderr=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["umount", "-l", mp], check=False)


def remove_tree(path: str) -> None:
    """rm -rf (fast, and it does not stop at a busy mount point: unmount first)."""
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=True)


@dataclass
class Sample:
    seconds: float
    maxrss_kb: int
    extra: dict = field(default_factory=dict)


class OpUnavailable(Exception):
    """The operation cannot run yet (a part or module is missing); `str(e)` says which."""


GNU_TIME = "/usr/bin/time"


def _spawn(argv: list[str], env: dict | None, capture: bool) -> tuple[int, int, bytes]:
    """Run argv to completion; returns (exit code, max RSS in KiB, stdout if captured).

    The max RSS comes from GNU time(1) when it is there: posix_spawn's vfork child would
    otherwise inherit this process's own high-water mark at exec, as would a fork child."""
    exe = argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0])
    if exe is None:
        raise OpUnavailable("command not found: %s" % argv[0])
    argv = [exe] + argv[1:]
    rss_file = None
    if os.access(GNU_TIME, os.X_OK):
        fd, rss_file = tempfile.mkstemp(prefix="gdo-bench-rss-")
        os.close(fd)
        argv = [GNU_TIME, "-f", "%M", "-o", rss_file] + argv
    rfd = wfd = None
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)]
    if capture:
        rfd, wfd = os.pipe()
        actions += [(os.POSIX_SPAWN_DUP2, wfd, 1), (os.POSIX_SPAWN_CLOSE, rfd), (os.POSIX_SPAWN_CLOSE, wfd)]
    else:
        actions += [(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)]
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ if env is None else env, file_actions=actions)
        out = b""
        if capture:
            os.close(wfd)
            wfd = None
            with os.fdopen(rfd, "rb") as r:
                rfd = None
                out = r.read()
        status, ru = os.wait4(pid, 0)[1:]
        rss = ru.ru_maxrss
        if rss_file is not None:
            with open(rss_file, encoding="ascii") as f:
                lines = f.read().split()
            rss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        return os.waitstatus_to_exitcode(status), rss, out
    finally:
        for fd in (rfd, wfd):
            if fd is not None:
                os.close(fd)
        if rss_file is not None:
            os.unlink(rss_file)


def run_command(argvs: list[list[str]], env: dict | None = None) -> Sample:
    """Run commands one after the other; the time is spawn to reap, the memory the largest."""
    t0 = time.perf_counter()
    rss = 0
    for argv in argvs:
        code, maxrss = _spawn(argv, env, capture=False)[:2]
        rss = max(rss, maxrss)
        if code != 0:
            raise RuntimeError("%s exited %d" % (" ".join(argv), code))
    return Sample(time.perf_counter() - t0, rss)


def run_worker(op: str, args: dict, env: dict | None = None) -> Sample:
    """Run one operation of worker.py in a fresh interpreter; the time is what the worker measured."""
    code, maxrss, out = _spawn([sys.executable, WORKER, op, json.dumps(args)], env, capture=True)
    try:
        reply = json.loads(out.decode() or "{}")
    except ValueError:
        reply = {"error": "worker printed no JSON: %r" % out[-300:]}
    if "unavailable" in reply:
        raise OpUnavailable(reply["unavailable"])
    if code != 0 or "error" in reply:
        raise RuntimeError("worker %s exited %d: %s" % (op, code, reply.get("error", "")))
    return Sample(reply["seconds"], maxrss, reply.get("extra", {}))


@dataclass
class Side:
    """One side of a pair: prepare(run_dir) -> args; measure(args) -> Sample; the run dir is removed after."""
    label: str
    measure: Callable[[dict], Sample]
    prepare: Callable[[str], dict] = lambda run_dir: {"dir": run_dir}


@dataclass
class Case:
    name: str
    title: str
    ours: Side
    baseline: Side
    target: float | None = None      # ours/baseline median-of-ratios must be <= target
    limit: float | None = None       # ours median seconds per operation must be < limit
    per: int = 1                     # the sample covers `per` operations: report seconds per operation
    unit: str = "s"                  # "s", "ms" or "us" in the text table
    note: str = ""


def _stats(samples: list[Sample], per: int) -> dict:
    secs = [s.seconds / per for s in samples]
    rss = [s.maxrss_kb for s in samples]
    return {"median": statistics.median(secs), "min": min(secs), "max": max(secs), "samples": secs,
            "maxrss_kb_median": int(statistics.median(rss)), "maxrss_kb_max": max(rss)}


def run_pair(case: Case, scratch: str, rounds: int, warmup: int = 1, log=print) -> dict:
    """Warm-up, then `rounds` rounds of ours then baseline, each in a fresh run dir."""
    result = {"name": case.name, "title": case.title, "target": case.target, "limit": case.limit, "unit": case.unit,
              "ours_label": case.ours.label, "baseline_label": case.baseline.label, "note": case.note}
    samples: dict[str, list[Sample]] = {"ours": [], "baseline": []}
    t0 = time.monotonic()
    # The 1-minute load average as the case starts and ends: on a shared machine it says how
    # much of the time the scheduler gave to someone else.
    result["load"] = [os.getloadavg()[0]]
    try:
        for i in range(warmup + rounds):
            for key, side in (("ours", case.ours), ("baseline", case.baseline)):
                run_dir = os.path.join(scratch, case.name, key)
                remove_tree(run_dir)
                os.makedirs(run_dir)
                args = side.prepare(run_dir)
                os.sync()
                try:
                    s = side.measure(args)
                except BaseException:
                    # The failure (or Ctrl-C) is what gets reported: a cleanup that fails because
                    # the operation's child still writes there must not replace it.
                    with contextlib.suppress(Exception):
                        unmount_below(run_dir)
                        remove_tree(run_dir)
                    raise
                unmount_below(run_dir)
                remove_tree(run_dir)
                os.sync()
                if i >= warmup:
                    samples[key].append(s)
    except OpUnavailable as e:
        result.update(status="unavailable", reason=str(e))
        log("  %-22s %s" % (case.name, e))
        return result
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        result.update(status="error", reason=str(e))
        log("  %-22s ERROR %s" % (case.name, e))
        return result
    result["load"].append(os.getloadavg()[0])
    ours, base = _stats(samples["ours"], case.per), _stats(samples["baseline"], case.per)
    ratios = [o.seconds / b.seconds for o, b in zip(samples["ours"], samples["baseline"])]
    ratio = statistics.median(ratios)
    checks = []
    if case.target is not None:
        checks.append(ratio <= case.target)
    if case.limit is not None:
        checks.append(ours["median"] < case.limit)
    verdict = ("PASS" if all(checks) else "MISS") if checks else None
    result.update(status="ok", ours=ours, baseline=base, ratio_median=ratio, ratios=ratios, verdict=verdict,
                  extra=samples["ours"][-1].extra, wall_seconds=round(time.monotonic() - t0, 1))
    log("  %-22s ours %s  base %s  ratio %.2f  %s  load %s" % (case.name, _fmt(ours["median"], case.unit),
                                                               _fmt(base["median"], case.unit), ratio, verdict or "",
                                                               _load(result)))
    return result


def _fmt(seconds: float, unit: str) -> str:
    scale = {"s": 1, "ms": 1e3, "us": 1e6}[unit]
    return ("%.3f" if unit == "s" else "%.1f") % (seconds * scale) + (" " + unit)


def _span(st: dict, unit: str) -> str:
    return "%s [%s-%s]" % (_fmt(st["median"], unit), _fmt(st["min"], unit).split()[0], _fmt(st["max"], unit).split()[0])


def _load(r: dict) -> str:
    return "-".join("%.1f" % x for x in r.get("load", ())) or "-"


def _target(r: dict) -> str:
    parts = []
    if r.get("target") is not None:
        parts.append("<= %.2fx" % r["target"])
    if r.get("limit") is not None:
        parts.append("< %s" % _fmt(r["limit"], r["unit"]))
    return ", ".join(parts) or "-"


def text_table(results: list[dict], header: str = "") -> str:
    """An aligned table: medians with min-max, median of the per-pair ratios, target, verdict, peak RSS."""
    rows = [("case", "ours median [min-max]", "baseline median [min-max]", "ratio", "target", "verdict",
             "ours maxRSS", "base maxRSS", "load")]
    for r in results:
        if r.get("status") != "ok":
            rows.append((r["name"], r.get("status", "?") + ": " + r.get("reason", ""), "", "", "", "", "", "", ""))
            continue
        rows.append((
            r["name"], _span(r["ours"], r["unit"]), _span(r["baseline"], r["unit"]), "%.2fx" % r["ratio_median"],
            _target(r), r["verdict"] or "-",
            "%.1f MB" % (r["ours"]["maxrss_kb_max"] / 1024), "%.1f MB" % (r["baseline"]["maxrss_kb_max"] / 1024), _load(r)))
    widths = [max(len(row[i]) for row in rows if row[2] or i < 2) for i in range(len(rows[0]))]
    lines = [header] if header else []
    for n, row in enumerate(rows):
        if not row[2] and n:
            lines.append(row[0].ljust(widths[0]) + "  " + row[1])
            continue
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    for r in results:
        if r.get("status") == "ok" and r.get("note"):
            lines.append("%s: %s" % (r["name"], r["note"]))
    return "\n".join(lines) + "\n"


def machine_info() -> dict:
    return {"kernel": platform.release(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "host": platform.node(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg": os.getloadavg()}


def write_report(out_dir: str, report: dict, text: str) -> tuple[str, str]:
    """Write <stamp>.json and <stamp>.txt, and latest.json / latest.txt next to them."""
    os.makedirs(out_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    paths = []
    for ext, body in (("json", json.dumps(report, indent=1, sort_keys=True) + "\n"), ("txt", text)):
        path = os.path.join(out_dir, "%s.%s" % (stamp, ext))
        with open(path, "w", encoding="utf-8") as f:
            f.write(body)
        shutil.copyfile(path, os.path.join(out_dir, "latest." + ext))
        paths.append(path)
    return paths[0], paths[1]
