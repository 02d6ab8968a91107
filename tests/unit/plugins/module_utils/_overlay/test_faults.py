# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The driver under faults: SIGKILL at every step, timed kills, a full disk, corrupt state (issue 8).

Crash sweeps run each operation in a ``fault_worker.py`` process with
``GRAPHDRIVER_OVERLAY_KILL_AT=<point>:<n>`` for n over the steps the operation passes (counted by
a first run without a kill; pinned in ``STEPS`` so the figures in the README stay true). After
every kill the store must be consistent: the layer is absent, whole (the same tree as a
reference layer built without a kill) or reported incomplete; nothing is mounted under home that
no holder justifies; the parents are untouched (content, inodes and, once the layer is gone
again, link counts); and the next operation on the id cleans up and succeeds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, kernel
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.faults import ENV_VAR
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.statestore import STATE_DIR

from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay import graphtest_helpers as gt

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_worker.py")
NEW = "new"


# -- running the driver in a worker process --------------------------------------------

def collections_parent() -> str:
    """The directory holding ``ansible_collections/``, from where the driver was imported."""
    path = driver_mod.__file__
    for _level in range(7):
        path = os.path.dirname(path)
    return path


def worker_env(kill_at: str | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = collections_parent()
    env.pop(ENV_VAR, None)
    if kill_at:
        env[ENV_VAR] = kill_at
    return env


def run_worker(home: str, operation: str, args: dict, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """Run one operation in its own process; the caller asserts how it ended."""
    return subprocess.run([sys.executable, WORKER, home, operation, json.dumps(args)], env=worker_env(kill_at),
                          capture_output=True, text=True, check=False, timeout=120)


def start_worker(home: str, operation: str, args: dict) -> subprocess.Popen:
    """Start an operation and return once the worker has imported the driver and is about to run it."""
    proc = subprocess.Popen([sys.executable, WORKER, home, operation, json.dumps(args)], env=worker_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line == "ready\n", "worker did not start: %r %r" % (line, proc.stderr.read())
    return proc


def counted_steps(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, "the run without a kill failed (%d): %s" % (proc.returncode, proc.stderr)
    return json.loads(proc.stdout.splitlines()[-1])["seen"]


# -- archives and trees ----------------------------------------------------------------

def write_tar(path: str, entries) -> str:
    """An uncompressed PAX tar of (name, kind, payload): file bytes, symlink/hardlink target, None."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 1700000000, 0o755 if kind == "dir" else 0o644
            data = None
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, payload, 0o777
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            else:
                info.size, data = len(payload), io.BytesIO(payload)
            tar.addfile(info, data)
    return path


BASE_ENTRIES = (
    [("etc", "dir", None), ("usr", "dir", None), ("usr/bin", "dir", None), ("var", "dir", None), ("var/lib", "dir", None)]
    + [("etc/%s" % name, "file", name.encode() * 100) for name in "abcde"]
    + [("usr/bin/tool%d" % i, "file", gt.random_content(4096, i)) for i in range(6)]
    + [("var/lib/data", "file", gt.random_content(65536, 99)), ("var/lib/old", "file", b"old"),
       ("usr/bin/link", "symlink", "tool1"), ("etc/a-hard", "hardlink", "etc/a")]
)

DIFF_ENTRIES = (
    [("etc", "dir", None), ("etc/a", "file", b"rewritten by the diff"), ("etc/.wh.b", "file", b""),
     ("var/lib", "dir", None), ("var/lib/.wh..wh..opq", "file", b""), ("var/lib/fresh", "file", b"fresh"),
     ("opt", "dir", None)]
    + [("opt/f%d" % i, "file", gt.random_content(2048, 100 + i)) for i in range(4)]
    + [("opt/link", "symlink", "/etc/a"), ("opt/hard", "hardlink", "opt/f1")]
)


def big_entries(files: int) -> list:
    """A layer that takes a while to apply, copy and delete: many small files in many dirs."""
    entries = []
    for index in range(files):
        if index % 50 == 0:
            entries.append(("big/d%03d" % (index // 50), "dir", None))
        entries.append(("big/d%03d/f%05d" % (index // 50, index), "file", gt.random_content(1024, index)))
    return [("big", "dir", None)] + entries


def tree(root: str) -> dict:
    """Every entry below root: type, mode, owner, and size plus sha256 (files), target (links), rdev (devices)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    extra = (info.st_size, hashlib.sha256(handle.read()).hexdigest())
            elif stat.S_ISLNK(info.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISCHR(info.st_mode):
                extra = info.st_rdev
            else:
                extra = None
            found[os.path.relpath(path, root)] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, extra)
    return found


def inodes(root: str) -> dict:
    """(inode, link count) of every non-dir below root: a hardlink copy must not replace or leak them."""
    found = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            info = os.lstat(os.path.join(dirpath, name))
            found[os.path.relpath(os.path.join(dirpath, name), root)] = (info.st_ino, info.st_nlink)
    return found


def view(drv, layer_id: str) -> dict:
    """The layer's whole tree as a user sees it (root, or the merged view mounted for the call)."""
    with gt.mounted(drv, layer_id) as path:
        return tree(path)


def stray_mounts(drv, killed_id: str | None = None) -> list:
    """Mounts under home that no persisted holder justifies (a killed create's staging is allowed)."""
    strays = []
    for mount in kernel.mounts_at_or_below(kernel.read_mountinfo(), drv.home):
        parts = os.path.relpath(mount.mount_point, drv.home).split(os.sep)
        if len(parts) == 2 and parts[1] == "merged" and drv.store.holders(parts[0]):
            continue
        if killed_id and parts[:2] == [STATE_DIR, "staging"] and len(parts) > 2 and parts[2].rpartition(".")[0] == killed_id:
            continue
        strays.append(mount.mount_point)
    return strays


# -- the store the sweeps run against ----------------------------------------------------

@pytest.fixture
def make_driver(scratch):
    """Factory: a Driver on a home (default ``<scratch>/overlay``); each one's mounts go at teardown."""
    made = []

    def make(home=None):
        driver = driver_mod.Driver(home or os.path.join(scratch, "overlay"))
        made.append(driver)
        return driver

    try:
        yield make
    finally:
        for driver in reversed(made):
            driver.cleanup()


@dataclasses.dataclass
class Store:
    """A home with an image layer ``base`` and a container layer ``c1`` on it, and the archives."""

    drv: driver_mod.Driver
    base_tar: str
    diff_tar: str

    def snapshot_parents(self) -> dict:
        return {
            "base": tree(os.path.join(self.drv.dir("base"), "root")),
            "base-inodes": inodes(os.path.join(self.drv.dir("base"), "root")),
            "c1": tree(os.path.join(self.drv.dir("c1"), "upper")),
            "c1-inodes": inodes(os.path.join(self.drv.dir("c1"), "upper")),
        }


@pytest.fixture
def store(make_driver, loopfs, scratch):
    # tmpfs: the sweeps run hundreds of operations, and a kill is a process death, not a power cut.
    drv = make_driver(os.path.join(loopfs("tmpfs", 512), "overlay"))
    drv.init()
    base_tar = write_tar(os.path.join(scratch, "base.tar"), BASE_ENTRIES)
    diff_tar = write_tar(os.path.join(scratch, "diff.tar"), DIFF_ENTRIES)
    drv.create("base", None, diff_path=base_tar)
    drv.create("c1", "base")
    with gt.mounted(drv, "c1") as merged:
        gt.write_file(os.path.join(merged, "etc", "c1file"), b"from c1", 0o644)
        os.unlink(os.path.join(merged, "etc", "c"))
        os.makedirs(os.path.join(merged, "home", "c1dir"))
        gt.write_file(os.path.join(merged, "home", "c1dir", "x"), b"x" * 3000, 0o600)
    return Store(drv, base_tar, diff_tar)


# -- the scenarios -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Scenario:
    """One operation on the id ``new``: what exists before it, and how to run and finish it."""

    name: str
    kind: str                   # create | apply | remove | mount | unmount
    parent: str | None = None   # the parent of ``new``
    diff: bool = True           # the operation applies diff.tar
    base_diff: bool = False     # ``new`` is created from base.tar first (apply on a base layer)
    holders: tuple = ()         # holders of ``new`` before the operation

    def prepare(self, store: Store) -> None:
        """Bring ``new`` to the state the operation starts from."""
        drv = store.drv
        if self.kind == "create":
            return
        diff = store.base_tar if self.base_diff else (store.diff_tar if self.kind == "remove" and self.parent == "base" else None)
        drv.create(NEW, self.parent, diff_path=diff)
        for holder in self.holders:
            drv.mount(NEW, holder)

    def worker_args(self, store: Store) -> tuple:
        diff = store.diff_tar if self.diff else None
        operation, args = {
            "create": ("create", {"id": NEW, "parent": self.parent, "diff": diff}),
            "apply": ("apply", {"id": NEW, "parent": self.parent, "diff": diff}),
            "remove": ("remove", {"id": NEW, "force": True}),
            "mount": ("mount", {"id": NEW, "holder": "a"}),
            "unmount": ("unmount", {"id": NEW, "holder": "a"}),
        }[self.kind]
        return operation, args

    def run_in_process(self, store: Store, layer_id: str) -> None:
        """The operation without a kill (the reference, and the retry after a kill)."""
        drv = store.drv
        diff = store.diff_tar if self.diff else None
        if self.kind == "create":
            drv.create(layer_id, self.parent, diff_path=diff)
        elif self.kind == "apply":
            drv.create(layer_id, self.parent, diff_path=store.base_tar if self.base_diff else None)
            with open(diff, "rb") as stream:
                drv.apply_diff(layer_id, self.parent, stream)


SCENARIOS = [
    Scenario("create-base", "create"),
    Scenario("create-on-image", "create", parent="base"),
    Scenario("create-content-copy", "create", parent="c1", diff=False),
    Scenario("create-on-container", "create", parent="c1"),
    Scenario("apply-on-image-parent", "apply", parent="base"),
    Scenario("apply-on-base-layer", "apply", base_diff=True),
    Scenario("apply-on-container", "apply", parent="c1"),
    Scenario("remove-image", "remove", parent="base"),
    Scenario("remove-mounted-container", "remove", parent="c1", diff=False, holders=("a", "b")),
    Scenario("mount", "mount", parent="c1", diff=False),
    Scenario("unmount-last-holder", "unmount", parent="c1", diff=False, holders=("a",)),
    Scenario("unmount-shared", "unmount", parent="c1", diff=False, holders=("a", "b")),
]

# The checkpoints each scenario passes and how often, as counted by a run without a kill.
# A change in the fixtures or the driver that moves these fails the sweep with the new counts.
STEPS = {
    "create-base": {"apply.entry": 13, "state.write": 1, "create.commit": 1},
    "create-on-image": {"copy.entry": 21, "apply.entry": 13, "state.write": 1, "create.commit": 1},
    "create-content-copy": {"copy.entry": 7, "state.write": 1, "create.commit": 1},
    "create-on-container": {"copy.entry": 7, "apply.entry": 13, "state.write": 1, "create.commit": 1},
    "apply-on-image-parent": {"copy.entry": 21, "apply.entry": 13, "apply.swap": 1, "state.write": 1},
    "apply-on-base-layer": {"copy.entry": 21, "apply.entry": 13, "apply.swap": 1, "state.write": 1},
    "apply-on-container": {"state.write": 2, "mount.before": 1, "apply.entry": 13, "unmount.after": 1},
    "remove-image": {"remove.rename": 1, "remove.delete": 1},
    "remove-mounted-container": {"remove.rename": 1, "remove.delete": 1},
    "mount": {"state.write": 1, "mount.before": 1},
    "unmount-last-holder": {"unmount.after": 1},
    "unmount-shared": {"state.write": 1},
}


def kill_counts(steps: int) -> list:
    """Which n to kill at for a point passed ``steps`` times: all of them when few, else a spread; plus one past the end."""
    if steps <= 16:
        return list(range(1, steps + 2))
    return sorted({1, 2, 3, steps // 4, steps // 2, 3 * steps // 4, steps - 1, steps, steps + 1})


KILL_PLAN = {name: {point: kill_counts(count) for point, count in steps.items()} for name, steps in STEPS.items()}


def assert_consistent_after_kill(store: Store, scenario: Scenario, proc, before: dict, reference: dict, pre_view, timed: bool = False) -> None:
    """What must hold right after the operation was killed (or ran to its end).

    A kill at a checkpoint is known to land inside the operation; a timed kill may land after
    its last step, so there a killed create may have published a whole layer.
    """
    drv = store.drv
    killed = proc.returncode == -signal.SIGKILL
    assert killed or proc.returncode == 0, "worker neither finished nor was killed: %d %s" % (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    facts = drv.facts()
    for other in ("base", "c1"):
        assert other in facts["layers"] and not facts["layers"][other]["incomplete"], "layer %s damaged: %r" % (other, facts["layers"].get(other))
    leftovers = drv.store.leftovers(NEW) or drv.layout.tmproots(NEW)
    if leftovers:
        assert NEW in facts["incomplete"], "leftovers %r are not reported incomplete: %r" % (leftovers, facts["incomplete"])
    assert stray_mounts(drv, NEW if leftovers else None) == [], "mounts under home without a holder"
    after = store.snapshot_parents()
    for key in ("base", "c1"):
        assert after[key] == before[key], "parent %s changed by a killed %s" % (key, scenario.name)
    for key in ("base-inodes", "c1-inodes"):
        assert {k: v[0] for k, v in after[key].items()} == {k: v[0] for k, v in before[key].items()}, "%s: a parent file was replaced" % key
    present = NEW in facts["layers"]
    incomplete = NEW in facts["incomplete"]
    if scenario.kind == "create":
        assert timed or not (killed and present), "a create killed at a checkpoint published %s" % NEW
        assert present or killed, "a finished create left no layer"
        if present:
            assert not incomplete and view(drv, NEW) == reference, "a published layer is not whole"
    elif scenario.kind == "apply":
        assert present, "an apply removed the layer"
        if killed and not timed:
            assert incomplete, "a killed apply is not reported incomplete: %r" % facts["layers"][NEW]
        if not incomplete:
            assert view(drv, NEW) == reference, "an apply that is not reported incomplete left a layer that is not whole"
    elif scenario.kind == "remove":
        if present and not incomplete:
            assert view(drv, NEW) == pre_view, "a layer left by a killed remove is not whole"
        assert killed or not (present or incomplete), "a finished remove left %s" % NEW
    else:
        record = facts["layers"][NEW]
        assert not incomplete and view(drv, NEW) == pre_view
        assert not record["mounted"] or record["holders"], "mounted without holders: %r" % record


def recover_and_reset(store: Store, scenario: Scenario, proc, reference: dict, before: dict) -> None:
    """The next operation on the id cleans up and succeeds; then back to the starting state."""
    drv = store.drv
    if scenario.kind in ("create", "apply"):
        if drv.incomplete(NEW) or not drv.exists(NEW):
            scenario.run_in_process(store, NEW)
        assert view(drv, NEW) == reference
        assert drv.layer_record(NEW)["incomplete"] is False
        drv.remove(NEW)
    elif scenario.kind == "remove":
        if proc.returncode != 0:
            drv.remove(NEW)
        assert not drv.exists(NEW) and drv.store.leftovers(NEW) == [] and drv.store.holders(NEW) == [] and drv.store.record(NEW) is None
        assert NEW not in drv.facts()["incomplete"]
    elif scenario.kind == "mount":
        if proc.returncode != 0:
            drv.mount(NEW, "a")
        assert drv.is_mounted(NEW) and drv.store.holders(NEW) == ["a"]
        drv.unmount(NEW, "a")
        assert not drv.is_mounted(NEW)
    else:
        if proc.returncode != 0:
            drv.unmount(NEW, "a")
        remaining = [h for h in scenario.holders if h != "a"]
        assert drv.store.holders(NEW) == remaining and drv.is_mounted(NEW) == bool(remaining)
        drv.mount(NEW, "a")
    if scenario.kind in ("create", "apply", "remove"):
        assert store.drv.store.leftovers(NEW) == [] and not drv.exists(NEW)
        assert inodes(os.path.join(drv.dir("base"), "root")) == before["base-inodes"], "link counts of base leaked"
        scenario.prepare(store)
    assert stray_mounts(drv) == []


def reference_view(store: Store, scenario: Scenario) -> dict:
    if scenario.kind in ("create", "apply"):
        scenario.run_in_process(store, "ref")
        return view(store.drv, "ref")
    return {}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=["%s-%d-kills" % (s.name, sum(len(n) for n in KILL_PLAN[s.name].values())) for s in SCENARIOS])
def test_sigkill_at_every_step_leaves_a_consistent_store(store, scenario):
    drv = store.drv
    reference = reference_view(store, scenario)
    before = store.snapshot_parents()
    scenario.prepare(store)
    pre_view = view(drv, NEW) if scenario.kind != "create" else None
    operation, args = scenario.worker_args(store)
    seen = counted_steps(run_worker(drv.home, operation, args, kill_at=None))
    # The run without a kill did the operation: undo it the same way a finished run is undone.
    recover_and_reset(store, scenario, subprocess.CompletedProcess([], 0), reference, before)
    assert seen == STEPS[scenario.name], "the steps of %s moved: update STEPS to %r" % (scenario.name, seen)
    tried = 0
    for point, counts in KILL_PLAN[scenario.name].items():
        for count in counts:
            kill_at = "%s:%d" % (point, count)
            proc = run_worker(drv.home, operation, args, kill_at=kill_at)
            expected = 0 if count > seen[point] else -signal.SIGKILL
            assert proc.returncode == expected, "%s at %s: exit %d, expected %d: %s" % (scenario.name, kill_at, proc.returncode, expected, proc.stderr)
            try:
                assert_consistent_after_kill(store, scenario, proc, before, reference, pre_view)
                recover_and_reset(store, scenario, proc, reference, before)
            except AssertionError as exc:
                raise AssertionError("%s killed at %s: %s" % (scenario.name, kill_at, exc)) from None
            tried += 1
    assert tried == sum(len(c) for c in KILL_PLAN[scenario.name].values())


# -- timed kills -------------------------------------------------------------------------

TIMED_KILLS_PER_SCENARIO = 16
TIMED_SCENARIOS = ["create-on-image", "create-content-copy", "remove-image"]
BIG_FILES = 4000


def timed_operation(home: str, operation: str, args: dict) -> tuple:
    """Run the operation to its end; returns (the finished process, seconds from ready to exit)."""
    proc = start_worker(home, operation, args)
    started = time.monotonic()
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), time.monotonic() - started


@pytest.mark.parametrize("name", TIMED_SCENARIOS, ids=["%s-%d-timed-kills" % (n, TIMED_KILLS_PER_SCENARIO) for n in TIMED_SCENARIOS])
def test_sigkill_after_a_delay_leaves_a_consistent_store(store, scratch, name):
    """Kill by PID after delays spread over the whole operation, measured first on a layer of thousands of entries."""
    drv = store.drv
    big_tar = write_tar(os.path.join(scratch, "big.tar"), big_entries(BIG_FILES))
    if name == "create-content-copy":
        # A container parent with a big upper, so the content copy takes a while.
        with gt.mounted(drv, "c1") as merged:
            with tarfile.open(big_tar) as tar:
                tar.extractall(merged)  # nosec: our own archive
    store.diff_tar = big_tar
    scenario = next(s for s in SCENARIOS if s.name == name)
    reference = reference_view(store, scenario)
    before = store.snapshot_parents()
    scenario.prepare(store)
    pre_view = view(drv, NEW) if scenario.kind != "create" else None
    operation, args = scenario.worker_args(store)
    durations = []
    for _run in range(2):
        full, duration = timed_operation(drv.home, operation, args)
        assert full.returncode == 0, full.stderr
        recover_and_reset(store, scenario, full, reference, before)
        durations.append(duration)
    # The shorter run: on a busy machine the first one can be slow, and most kills must land inside.
    duration = min(durations)
    assert duration >= 0.02, "the operation took only %.3f s: make the layer bigger" % duration
    killed = 0
    for index in range(TIMED_KILLS_PER_SCENARIO):
        delay = duration * index / TIMED_KILLS_PER_SCENARIO
        proc = start_worker(drv.home, operation, args)
        time.sleep(delay)
        proc.kill()
        stdout, stderr = proc.communicate(timeout=120)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        killed += proc.returncode == -signal.SIGKILL
        try:
            assert_consistent_after_kill(store, scenario, result, before, reference, pre_view, timed=True)
            recover_and_reset(store, scenario, result, reference, before)
        except AssertionError as exc:
            raise AssertionError("%s killed after %d ms of %d: %s" % (name, delay * 1000, duration * 1000, exc)) from None
    assert killed >= TIMED_KILLS_PER_SCENARIO // 4, "only %d kills landed before the end of a %.3f s operation" % (killed, duration)


# -- a full disk -------------------------------------------------------------------------

def fill(directory: str, leave_mb: int) -> str:
    """A filler file that leaves about ``leave_mb`` free on directory's filesystem."""
    info = os.statvfs(directory)
    size = info.f_bavail * info.f_frsize - leave_mb * 1024 * 1024
    path = os.path.join(directory, "filler")
    with open(path, "wb") as handle:
        chunk = b"\0" * (1 << 20)
        for _block in range(size // len(chunk)):
            handle.write(chunk)
    return path


def staging_and_trash(drv) -> list:
    found = []
    for sub in ("staging", "trash", "pending"):
        directory = os.path.join(drv.home, STATE_DIR, sub)
        if os.path.isdir(directory):
            found.extend(os.path.join(sub, n) for n in os.listdir(directory))
    return found


FULL_DISK_CASES = ["create-on-image", "create-base", "apply-on-base-layer", "create-on-container"]


@pytest.mark.parametrize("case", FULL_DISK_CASES)
def test_a_full_disk_fails_clearly_and_leaves_no_partial_layer(make_driver, loopfs, scratch, case):
    mountpoint = loopfs("ext4", 64)
    drv = make_driver(os.path.join(mountpoint, "overlay"))
    drv.init()
    drv.create("base", None, diff_path=write_tar(os.path.join(scratch, "base.tar"), BASE_ENTRIES))
    drv.create("c1", "base")
    big = write_tar(os.path.join(scratch, "big.tar"), [("blob", "dir", None)] + [
        ("blob/%02d" % i, "file", gt.random_content(1 << 20, i)) for i in range(24)])
    filler = fill(mountpoint, 12)
    base_root = os.path.join(drv.dir("base"), "root")
    before = (tree(base_root), inodes(base_root), tree(os.path.join(drv.dir("c1"), "upper")))
    target, parent = {"create-on-image": ("new", "base"), "create-base": ("new", None),
                      "apply-on-base-layer": ("base", None), "create-on-container": ("new", "c1")}[case]
    with pytest.raises(errors.OverlayError) as caught:
        if case == "apply-on-base-layer":
            with open(big, "rb") as stream:
                drv.apply_diff("base", None, stream)
        else:
            drv.create("new", parent, diff_path=big)
    assert "No space left on device" in str(caught.value), "the message does not name ENOSPC: %s" % caught.value
    assert not drv.exists("new"), "a partial layer was left"
    assert staging_and_trash(drv) == [], "leftovers: %r" % staging_and_trash(drv)
    assert (tree(base_root), inodes(base_root), tree(os.path.join(drv.dir("c1"), "upper"))) == before, "the parent changed"
    facts = drv.facts()
    assert facts["incomplete"] == [] and sorted(facts["layers"]) == ["base", "c1"]
    assert stray_mounts(drv) == []
    os.unlink(filler)
    if case == "apply-on-base-layer":
        with open(big, "rb") as stream:
            drv.apply_diff("base", None, stream)
    else:
        drv.create(target, parent, diff_path=big)
    with gt.mounted(drv, target) as root:
        assert len(os.listdir(os.path.join(root, "blob"))) == 24
    assert drv.layer_record(target)["incomplete"] is False


# -- corrupt state ---------------------------------------------------------------------

def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def _holders_file(drv) -> str:
    return os.path.join(drv.home, STATE_DIR, "holders", "ctr.json")


CORRUPT_HOLDERS = [
    ("truncated", b'{"holders": ["a", "b'),
    ("empty", b""),
    ("garbage-bytes", b"\x00\xff\x13\x37garbage"),
    ("wrong-shape", b'{"holders": "a"}'),
]


@pytest.mark.parametrize("content", [c for _n, c in CORRUPT_HOLDERS], ids=[n for n, _c in CORRUPT_HOLDERS])
def test_corrupt_holders_name_the_file_and_force_repairs_them(corrupt_store, content):
    drv = corrupt_store
    drv.mount("ctr", "a")
    _write(_holders_file(drv), content)
    for call in (lambda: drv.mount("ctr", "b"), lambda: drv.unmount("ctr", "a"), lambda: drv.remove("ctr", force=False)):
        with pytest.raises(errors.CorruptState) as caught:
            call()
        assert _holders_file(drv) in str(caught.value)
    facts = drv.facts()
    assert {"img", "other"} <= set(facts["layers"]), "facts lost the healthy layers: %r" % sorted(facts["layers"])
    assert [(p["id"], p["code"]) for p in facts["problems"] if _holders_file(drv) in p["message"]] == [("ctr", "damaged")], facts["problems"]
    assert _holders_file(drv) in facts["layers"]["ctr"]["problem"], "the damaged layer is listed, naming its file: %r" % facts["layers"].get("ctr")
    drv.remove("ctr", force=True)
    assert not drv.exists("ctr") and not os.path.exists(_holders_file(drv)) and stray_mounts(drv) == []


CORRUPT_LOWER_IDS = [
    ("empty", b""),
    ("truncated-newline", b"\n"),
    ("garbage-bytes", b"\xff\xfe\x00\x01"),
    ("two-ids", b"img other"),
]


@pytest.mark.parametrize("content", [c for _n, c in CORRUPT_LOWER_IDS], ids=[n for n, _c in CORRUPT_LOWER_IDS])
def test_corrupt_lower_id_names_the_file_and_remove_repairs_it(corrupt_store, content):
    drv = corrupt_store
    path = os.path.join(drv.dir("ctr"), "lower-id")
    _write(path, content)
    for call in (lambda: drv.mount("ctr", "a"), lambda: drv.get_metadata("ctr"), lambda: drv.create("child", "ctr")):
        with pytest.raises(errors.CorruptState) as caught:
            call()
        assert path in str(caught.value)
    facts = drv.facts()
    assert sorted(facts["layers"]) == ["ctr", "img", "other"]
    assert path in facts["layers"]["ctr"]["problem"]
    assert not drv.exists("child") and staging_and_trash(drv) == []
    assert drv.remove("ctr", force=False)
    assert not drv.exists("ctr")


@pytest.fixture
def corrupt_store(make_driver):
    drv = make_driver()
    drv.init()
    drv.create("img", None)
    drv.create("ctr", "img")
    drv.create("other", None)
    return drv


def test_a_truncated_layer_record_names_the_file_and_recreating_the_layer_repairs_it(corrupt_store):
    drv = corrupt_store
    path = os.path.join(drv.home, STATE_DIR, "layers", "other.json")
    _write(path, b'{"parent": nu')
    with pytest.raises(errors.CorruptState) as caught:
        drv.layer_record("other")
    assert path in str(caught.value)
    facts = drv.facts()
    assert sorted(facts["layers"]) == ["ctr", "img"]
    assert [(p["id"], p["code"]) for p in facts["problems"] if path in p["message"]] == [("other", "damaged")], facts["problems"]
    assert drv.remove("other")
    drv.create("other", None)
    assert drv.layer_record("other")["parent"] is None


def test_a_record_naming_a_missing_parent_is_reported_and_the_layer_still_mounts(corrupt_store):
    drv = corrupt_store
    _write(os.path.join(drv.home, STATE_DIR, "layers", "ctr.json"), b'{"parent": "ghost", "diff_digest": null, "applied_size": null}\n')
    facts = drv.facts(sizes=True)
    assert sorted(facts["layers"]) == ["ctr", "img", "other"]
    record = facts["layers"]["ctr"]
    assert record["parent"] == "ghost" and record["size"] is None, record
    with pytest.raises(errors.LayerNotFound) as caught:
        drv.diff("ctr", "ghost", io.BytesIO())
    assert "ghost" in str(caught.value)
    assert drv.mount("ctr", "a")["changed"] is True
    drv.unmount("ctr", "a")


def test_a_container_layer_whose_lower_is_gone_fails_naming_it_and_facts_list_the_rest(corrupt_store):
    drv = corrupt_store
    drv.remove("img", force=True)
    with pytest.raises(errors.LayerNotFound) as caught:
        drv.mount("ctr", "a")
    assert "img" in str(caught.value) and os.path.join(drv.home, "img", "root") in str(caught.value)
    assert drv.store.holders("ctr") == [], "a refused mount persisted a holder"
    facts = drv.facts()
    assert sorted(facts["layers"]) == ["ctr", "other"]
    assert facts["layers"]["ctr"]["metadata"]["LowerDir"] == os.path.join(drv.home, "img", "root")
    assert drv.remove("ctr", force=False)


def test_a_layer_dir_with_both_root_and_upper_is_reported_naming_the_dir(corrupt_store):
    drv = corrupt_store
    upper = os.path.join(drv.dir("other"), "upper")
    os.mkdir(upper)
    facts = drv.facts()
    assert sorted(facts["layers"]) == ["ctr", "img", "other"]
    record = facts["layers"]["other"]
    assert record["kind"] == "image", "Docker's rule: root/ makes an image layer"
    assert upper in record.get("problem", ""), "a layer with both root/ and upper/ is not reported: %r" % record
    assert "problem" not in facts["layers"]["img"] and "problem" not in facts["layers"]["ctr"]
    assert drv.remove("other", force=False)
    drv.create("other", None)
    assert "problem" not in drv.layer_record("other")


def test_a_leftover_tmproot_makes_the_layer_incomplete_and_the_next_operation_clears_it(corrupt_store):
    drv = corrupt_store
    tmp = os.path.join(drv.dir("ctr"), driver_mod.TMPROOT_PREFIX + "4242")
    _write(os.path.join(tmp, "half", "file"), b"half")
    facts = drv.facts()
    assert facts["incomplete"] == ["ctr"] and facts["layers"]["ctr"]["incomplete"] is True
    assert sorted(facts["layers"]) == ["ctr", "img", "other"]
    assert drv.mount("ctr", "a")["changed"] is True
    assert not os.path.exists(tmp)
    assert drv.layer_record("ctr")["incomplete"] is False
    drv.unmount("ctr", "a")


def test_a_staging_leftover_with_a_live_mount_is_cleared_by_the_next_create(corrupt_store, scratch):
    drv = corrupt_store
    staging = drv.store.new_staging("late")
    for name in ("upper", "work", "merged"):
        os.mkdir(os.path.join(staging, name))
    merged = os.path.join(staging, "merged")
    kernel.mount("overlay", merged, "overlay", 0,
                 kernel.overlay_mount_data(os.path.join(drv.dir("img"), "root"), os.path.join(staging, "upper"), os.path.join(staging, "work")))
    gt.write_file(os.path.join(merged, "half"), b"half", 0o644)
    facts = drv.facts()
    assert facts["incomplete"] == ["late"] and sorted(facts["layers"]) == ["ctr", "img", "other"]
    diff = write_tar(os.path.join(scratch, "d.tar"), [("whole", "file", b"whole")])
    drv.create("late", "img", diff_path=diff)
    assert kernel.mounts_at_or_below(kernel.read_mountinfo(), os.path.join(drv.home, STATE_DIR)) == []
    assert staging_and_trash(drv) == [] and drv.facts()["incomplete"] == []
    assert sorted(os.listdir(os.path.join(drv.dir("late"), "root"))) == ["whole"]


def test_a_staging_leftover_for_an_existing_layer_is_cleared_and_the_create_refused(corrupt_store):
    drv = corrupt_store
    staging = drv.store.new_staging("other")
    _write(os.path.join(staging, "root", "half"), b"half")
    assert drv.layer_record("other")["incomplete"] is True
    with pytest.raises(errors.LayerConflict) as caught:
        drv.create("other", None)
    assert str(caught.value) == "layer other already exists"
    assert staging_and_trash(drv) == [] and drv.layer_record("other")["incomplete"] is False


# -- the figures the README quotes -------------------------------------------------------

KILL_POINTS = sum(len(counts) for plan in KILL_PLAN.values() for counts in plan.values())
TIMED_KILLS = TIMED_KILLS_PER_SCENARIO * len(TIMED_SCENARIOS)
ARCHIVE_RUNS = (
    sum(len(counts) for s in SCENARIOS if s.diff and s.kind in ("create", "apply") for counts in KILL_PLAN[s.name].values())
    + TIMED_KILLS_PER_SCENARIO * len([n for n in TIMED_SCENARIOS if n != "remove-image"])
    + len(FULL_DISK_CASES)
)


@pytest.mark.parametrize("figures", ["kill-points-%d-timed-kills-%d-archive-runs-%d" % (KILL_POINTS, TIMED_KILLS, ARCHIVE_RUNS)])
def test_reliability_figures(figures):
    """The README's figures: every planned kill above is asserted to have run; this pins the totals."""
    assert figures == "kill-points-%d-timed-kills-%d-archive-runs-%d" % (KILL_POINTS, TIMED_KILLS, ARCHIVE_RUNS)
    assert KILL_POINTS >= 150 and TIMED_KILLS >= 48
