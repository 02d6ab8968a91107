# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests for the persisted state store: locks across real processes, atomic files, corrupt state, leftovers."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.faults import ENV_VAR
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.statestore import STATE_DIR, StateStore

IMPORT = "from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.statestore import StateStore\n"

# Each worker adds then removes a holder of its own `rounds` times, then adds one it keeps.
# The pause between read and write widens the window in which an unlocked update gets lost.
WORKER = IMPORT + """
import contextlib, os, sys, time
home, name, rounds, locked, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
store = StateStore(home)

def update(add, holder):
    with (store.layer_lock("layer") if locked else contextlib.nullcontext()):
        current = set(store.holders("layer"))
        time.sleep(0.001)
        if add:
            current.add(holder)
        else:
            current.discard(holder)
        store.set_holders("layer", sorted(current))

open(go + "." + name, "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
for index in range(rounds):
    update(True, "%s-%d" % (name, index))
    update(False, "%s-%d" % (name, index))
update(True, name + "-keep")
"""

HOLD_LOCK = IMPORT + """
import sys, time
with StateStore(sys.argv[1]).layer_lock("layer"):
    open(sys.argv[2], "w").close()
    time.sleep(float(sys.argv[3]))
"""

TAKE_LOCK = IMPORT + """
import sys, time
with StateStore(sys.argv[1]).layer_lock("layer"):
    with open(sys.argv[2], "w") as handle:
        handle.write(repr(time.monotonic()))
"""

SET_HOLDERS = IMPORT + """
import sys
StateStore(sys.argv[1]).set_holders("layer", sys.argv[2:])
"""


def _env(extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    env.update(extra or {})
    return env


def _spawn(script, *args, env=None):
    return subprocess.Popen([sys.executable, "-c", script] + [str(arg) for arg in args], env=env or _env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "%s: expected to appear within %.0fs" % (path, timeout)
        time.sleep(0.005)


def _run_workers(home, go, count, rounds, locked):
    names = ["w%d" % index for index in range(count)]
    workers = [_spawn(WORKER, home, name, rounds, "1" if locked else "0", go) for name in names]
    try:
        for name in names:
            _wait_for(go + "." + name)
        # Start them together: interpreter start-up would otherwise stagger them apart.
        with open(go, "w", encoding="utf-8"):
            pass
        for worker in workers:
            _out, err = worker.communicate(timeout=300)
            assert worker.returncode == 0, "worker pid %d: expected exit 0, got %d: %s" % (worker.pid, worker.returncode, err.decode())
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return names


def test_layer_lock_prevents_lost_updates_across_processes(scratch):
    home = os.path.join(scratch, "home")
    os.mkdir(home)
    names = _run_workers(home, os.path.join(scratch, "go"), count=8, rounds=50, locked=True)
    expected = sorted(name + "-keep" for name in names)
    got = StateStore(home).holders("layer")
    assert got == expected, "%s: expected holders %r, got %r" % (os.path.join(home, STATE_DIR, "holders", "layer.json"), expected, got)


def test_same_workers_without_the_lock_lose_updates_but_never_tear_a_file(scratch):
    # Shows the locked test above can fail: the same read-modify-write loses updates unlocked.
    # Every worker still exits 0, so readers never saw a half-written file (atomic rename).
    for attempt in range(3):
        home = os.path.join(scratch, "home%d" % attempt)
        os.mkdir(home)
        names = _run_workers(home, os.path.join(scratch, "go%d" % attempt), count=8, rounds=50, locked=False)
        expected = sorted(name + "-keep" for name in names)
        if StateStore(home).holders("layer") != expected:
            return
    pytest.fail("expected unlocked workers to lose at least one update in 3 runs, every run ended with exactly %r" % expected)


def test_layer_lock_blocks_until_the_holder_releases_it(scratch):
    home = scratch
    held = os.path.join(scratch, "held")
    taken = os.path.join(scratch, "taken")
    holder = _spawn(HOLD_LOCK, home, held, 1.0)
    _wait_for(held)
    released_not_before = time.monotonic() + 0.5
    taker = _spawn(TAKE_LOCK, home, taken)
    for child in (holder, taker):
        _out, err = child.communicate(timeout=60)
        assert child.returncode == 0, "pid %d: expected exit 0, got %d: %s" % (child.pid, child.returncode, err.decode())
    with open(taken, encoding="utf-8") as handle:
        acquired = float(handle.read())
    assert acquired >= released_not_before, "%s: expected the lock taken after %.3f, got %.3f" % (taken, released_not_before, acquired)


def test_layer_lock_is_released_when_its_holder_is_killed(scratch):
    held = os.path.join(scratch, "held")
    holder = _spawn(HOLD_LOCK, scratch, held, 300)
    try:
        _wait_for(held)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.communicate()
    started = time.monotonic()
    with StateStore(scratch).layer_lock("layer") as locked:
        assert locked, "expected the lock of a SIGKILLed holder (pid %d) to be free" % holder.pid
    assert time.monotonic() - started < 5, "expected the lock at once after the holder died"


def test_layer_lock_creates_private_dirs_and_lock_file(scratch):
    old = os.umask(0o022)
    try:
        with StateStore(scratch).layer_lock("abc") as locked:
            assert locked, "expected the lock to be held"
    finally:
        os.umask(old)
    for path in (os.path.join(scratch, STATE_DIR), os.path.join(scratch, STATE_DIR, "locks")):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == 0o700, "%s: expected mode 700, got %o" % (path, mode)
    lock = os.path.join(scratch, STATE_DIR, "locks", "abc.lock")
    assert os.path.isfile(lock), "%s: expected the lock file to stay (deleting it would race)" % lock


def test_layer_lock_without_create_never_makes_the_state_dir(scratch):
    with StateStore(scratch).layer_lock("abc", create=False) as locked:
        assert not locked, "expected nothing locked without %s" % STATE_DIR
    assert os.listdir(scratch) == [], "%s: expected to stay empty, got %r" % (scratch, os.listdir(scratch))


def test_layer_lock_without_create_locks_inside_an_existing_state_dir(scratch):
    os.mkdir(os.path.join(scratch, STATE_DIR))
    with StateStore(scratch).layer_lock("abc", create=False) as locked:
        assert locked, "expected the lock held when %s exists" % STATE_DIR
    lock = os.path.join(scratch, STATE_DIR, "locks", "abc.lock")
    assert os.path.isfile(lock), "%s: expected the lock file" % lock


def test_holders_round_trip_sorted_unique_in_the_documented_format(scratch):
    store = StateStore(scratch)
    assert store.holders("layer") == [], "expected no holders before any were set"
    store.set_holders("layer", ["b", "a", "b"])
    path = os.path.join(scratch, STATE_DIR, "holders", "layer.json")
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    assert document == {"holders": ["a", "b"]}, "%s: expected {'holders': ['a', 'b']}, got %r" % (path, document)
    assert store.holders("layer") == ["a", "b"], "%s: expected ['a', 'b'], got %r" % (path, store.holders("layer"))
    leftovers = [name for name in os.listdir(os.path.dirname(path)) if name != "layer.json"]
    assert leftovers == [], "%s: expected no temp files left, got %r" % (os.path.dirname(path), leftovers)


def test_empty_holders_remove_the_file(scratch):
    store = StateStore(scratch)
    store.set_holders("layer", ["a"])
    store.set_holders("layer", [])
    path = os.path.join(scratch, STATE_DIR, "holders", "layer.json")
    assert not os.path.lexists(path), "%s: expected removed for an empty holder list" % path
    store.set_holders("other", [])
    assert store.holders("layer") == [], "%s: expected [] once removed" % path


def test_set_holders_rejects_non_string_holders(scratch):
    with pytest.raises(errors.InvalidArgument):
        StateStore(scratch).set_holders("layer", ["a", 3])


def test_kill_during_a_holders_write_keeps_the_old_file(scratch):
    store = StateStore(scratch)
    store.set_holders("layer", ["old"])
    child = _spawn(SET_HOLDERS, scratch, "new", env=_env({ENV_VAR: "state.write:1"}))
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, "pid %d: expected to be killed at state.write, got exit %d" % (child.pid, child.returncode)
    got = store.holders("layer")
    assert got == ["old"], "%s: expected ['old'] after a killed write, got %r" % (os.path.join(scratch, STATE_DIR, "holders"), got)


CORRUPT = [
    ("truncated JSON", b'{"holders": ["a", '),
    ("empty file", b""),
    ("garbage bytes", b"\xff\xfe\x00\x81garbage"),
    ("a list instead of an object", b'["a", "b"]'),
    ("object without holders", b'{"owners": ["a"]}'),
    ("holders not a list", b'{"holders": "a"}'),
    ("holder not a string", b'{"holders": ["a", 7]}'),
    ("empty holder name", b'{"holders": [""]}'),
    ("deeply nested", b"[" * 100000),
]


@pytest.mark.parametrize("name, content", CORRUPT, ids=[case[0] for case in CORRUPT])
def test_corrupt_holders_file_raises_corrupt_state_naming_the_file_and_fix(scratch, name, content):
    directory = os.path.join(scratch, STATE_DIR, "holders")
    os.makedirs(directory)
    path = os.path.join(directory, "layer.json")
    with open(path, "wb") as handle:
        handle.write(content)
    with pytest.raises(errors.CorruptState) as caught:
        StateStore(scratch).holders("layer")
    message = str(caught.value)
    assert path in message, "%s (%s): expected the path in the message, got %r" % (path, name, message)
    assert "remove the file" in message, "%s (%s): expected the fix in the message, got %r" % (path, name, message)


def test_unreadable_holders_path_raises_corrupt_state(scratch):
    path = os.path.join(scratch, STATE_DIR, "holders", "layer.json")
    os.makedirs(path)
    with pytest.raises(errors.CorruptState) as caught:
        StateStore(scratch).holders("layer")
    assert path in str(caught.value), "%s: expected the path in %r" % (path, str(caught.value))


def test_record_round_trip_and_drop(scratch):
    store = StateStore(scratch)
    assert store.record("layer") is None, "expected no record before one is set"
    record = {"parent": "base", "diff_digest": "sha256:" + "0" * 64, "applied_size": 12}
    store.set_record("layer", record)
    got = store.record("layer")
    assert got == record, "%s: expected %r, got %r" % (os.path.join(scratch, STATE_DIR, "layers", "layer.json"), record, got)
    store.set_record("layer", {"parent": None, "diff_digest": None, "applied_size": None})
    assert store.record("layer")["parent"] is None, "expected the record replaced"
    store.drop_record("layer")
    store.drop_record("layer")
    assert store.record("layer") is None, "expected no record after drop_record"


CORRUPT_RECORDS = [
    ("truncated JSON", b'{"parent": "a'),
    ("garbage bytes", b"\x00\x01\x02"),
    ("a list instead of an object", b"[]"),
    ("parent not a string", b'{"parent": 5, "diff_digest": null, "applied_size": null}'),
    ("applied_size a string", b'{"parent": null, "diff_digest": null, "applied_size": "12"}'),
    ("applied_size a bool", b'{"parent": null, "diff_digest": null, "applied_size": true}'),
]


@pytest.mark.parametrize("name, content", CORRUPT_RECORDS, ids=[case[0] for case in CORRUPT_RECORDS])
def test_corrupt_record_raises_corrupt_state_naming_the_file_and_fix(scratch, name, content):
    directory = os.path.join(scratch, STATE_DIR, "layers")
    os.makedirs(directory)
    path = os.path.join(directory, "layer.json")
    with open(path, "wb") as handle:
        handle.write(content)
    with pytest.raises(errors.CorruptState) as caught:
        StateStore(scratch).record("layer")
    message = str(caught.value)
    assert path in message, "%s (%s): expected the path in the message, got %r" % (path, name, message)
    assert "restore it" in message, "%s (%s): expected the fix in the message, got %r" % (path, name, message)


def test_staging_dirs_are_unique_private_and_on_homes_filesystem(scratch):
    store = StateStore(scratch)
    first, second = store.new_staging("layer"), store.new_staging("layer")
    assert first != second, "expected two staging dirs, got %s twice" % first
    for path in (first, second):
        assert os.path.dirname(path) == os.path.join(scratch, STATE_DIR, "staging"), "%s: expected under staging/" % path
        assert os.listdir(path) == [], "%s: expected empty" % path
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == 0o700, "%s: expected mode 700, got %o" % (path, mode)
    target = os.path.join(scratch, "layer")
    os.rename(first, target)
    assert os.path.isdir(target), "%s: expected the staging dir renamed into place" % target


def test_new_trash_is_an_unused_path_the_caller_renames_onto(scratch):
    store = StateStore(scratch)
    path = store.new_trash("layer")
    assert not os.path.lexists(path), "%s: expected not created" % path
    assert os.path.isdir(os.path.dirname(path)), "%s: expected trash/ to exist" % os.path.dirname(path)
    assert store.new_trash("layer") != path, "expected a different trash path each time"
    os.mkdir(os.path.join(scratch, "layer"))
    os.rename(os.path.join(scratch, "layer"), path)
    assert store.leftovers("layer") == [path], "expected the trashed dir %s as leftover, got %r" % (path, store.leftovers("layer"))


def test_leftovers_match_the_exact_id_even_with_dots(scratch):
    store = StateStore(scratch)
    a_stage = store.new_staging("a")
    ab_stage = store.new_staging("ab")
    dotted_trash = store.new_trash("a.b")
    os.mkdir(dotted_trash)
    store.mark_pending("a.b")
    assert store.leftovers("a") == [a_stage], "id a: expected [%s], got %r" % (a_stage, store.leftovers("a"))
    assert store.leftovers("ab") == [ab_stage], "id ab: expected [%s], got %r" % (ab_stage, store.leftovers("ab"))
    pending = os.path.join(scratch, STATE_DIR, "pending", "a.b")
    expected = [dotted_trash, pending]
    assert store.leftovers("a.b") == expected, "id a.b: expected %r, got %r" % (expected, store.leftovers("a.b"))
    assert store.leftovers("b") == [], "id b: expected no leftovers, got %r" % store.leftovers("b")
    assert store.leftover_ids() == {"a", "ab", "a.b"}, "expected ids a, ab, a.b, got %r" % store.leftover_ids()


def test_reading_an_absent_store_creates_nothing(scratch):
    store = StateStore(scratch)
    assert store.leftovers("a") == [] and store.leftover_ids() == set(), "expected no leftovers in an empty home"
    assert store.holders("a") == [] and store.record("a") is None and not store.is_pending("a"), "expected empty state"
    assert os.listdir(scratch) == [], "%s: expected to stay empty, got %r" % (scratch, os.listdir(scratch))


def test_clear_leftovers_removes_read_only_trees_and_pending_but_not_other_ids(scratch):
    store = StateStore(scratch)
    staging = store.new_staging("layer")
    deep = os.path.join(staging, "root", "ro", "deeper")
    os.makedirs(deep)
    with open(os.path.join(deep, "file"), "w", encoding="utf-8"):
        pass
    os.symlink("/", os.path.join(deep, "escape"))
    os.chmod(os.path.join(deep, "file"), 0)
    os.chmod(deep, 0o500)
    os.chmod(os.path.join(staging, "root", "ro"), 0o500)
    trash = store.new_trash("layer")
    os.mkdir(trash)
    store.mark_pending("layer")
    other = store.new_staging("layer2")
    store.clear_leftovers("layer")
    assert store.leftovers("layer") == [], "expected no leftovers after clearing, got %r" % store.leftovers("layer")
    assert not store.is_pending("layer"), "expected the pending marker cleared"
    assert os.path.isdir(other), "%s: expected another id's staging dir kept" % other
    assert os.path.isdir("/etc"), "expected the symlink not followed"


def test_deep_trees_are_cleared_without_recursion_limits(scratch):
    store = StateStore(scratch)
    staging = store.new_staging("layer")
    # Use relative mkdirs: the absolute path of 1500 levels exceeds PATH_MAX.
    cwd = os.getcwd()
    os.chdir(staging)
    try:
        for _round in range(1500):
            os.mkdir("d")
            os.chdir("d")
    finally:
        os.chdir(cwd)
    store.clear_leftovers("layer")
    assert not os.path.lexists(staging), "%s: expected removed" % staging


def test_pending_marker_round_trip(scratch):
    store = StateStore(scratch)
    assert not store.is_pending("layer"), "expected not pending at first"
    store.mark_pending("layer")
    store.mark_pending("layer")
    assert store.is_pending("layer"), "expected pending after mark_pending"
    store.clear_pending("layer")
    store.clear_pending("layer")
    assert not store.is_pending("layer"), "expected not pending after clear_pending"


BAD_IDS = ["", ".", "..", "a/b", "/abs", "a\0b"]
CALLS = [
    ("holders", lambda store, layer: store.holders(layer)),
    ("set_holders", lambda store, layer: store.set_holders(layer, ["x"])),
    ("record", lambda store, layer: store.record(layer)),
    ("set_record", lambda store, layer: store.set_record(layer, {})),
    ("drop_record", lambda store, layer: store.drop_record(layer)),
    ("new_staging", lambda store, layer: store.new_staging(layer)),
    ("new_trash", lambda store, layer: store.new_trash(layer)),
    ("leftovers", lambda store, layer: store.leftovers(layer)),
    ("clear_leftovers", lambda store, layer: store.clear_leftovers(layer)),
    ("mark_pending", lambda store, layer: store.mark_pending(layer)),
    ("clear_pending", lambda store, layer: store.clear_pending(layer)),
    ("is_pending", lambda store, layer: store.is_pending(layer)),
    ("layer_lock", lambda store, layer: store.layer_lock(layer).__enter__()),
]


@pytest.mark.parametrize("bad_id", BAD_IDS)
@pytest.mark.parametrize("name, call", CALLS, ids=[case[0] for case in CALLS])
def test_ids_that_would_escape_the_state_dirs_are_refused(scratch, name, call, bad_id):
    with pytest.raises(errors.InvalidArgument) as caught:
        call(StateStore(scratch), bad_id)
    assert repr(bad_id) in str(caught.value), "%s(%r): expected the id in %r" % (name, bad_id, str(caught.value))
    assert os.listdir(scratch) == [], "%s(%r): expected nothing created, got %r" % (name, bad_id, os.listdir(scratch))


def test_snapshot_reads_each_record_once_and_repeats_a_failure(scratch):
    store = StateStore(scratch)
    store.set_record("a", {"parent": "b"})
    store.set_record("bad", {"parent": "b"})
    bad = os.path.join(scratch, STATE_DIR, "layers", "bad.json")
    with open(bad, "w", encoding="utf-8") as handle:
        handle.write("{not json")
    with store.snapshot():
        assert store.record("a") == {"parent": "b"}
        os.unlink(os.path.join(scratch, STATE_DIR, "layers", "a.json"))
        first = store.record("a")
        first["parent"] = "changed by the caller"
        assert store.record("a") == {"parent": "b"}, "a snapshot serves the first reading, and callers get their own copy"
        for _round in range(2):
            with pytest.raises(errors.CorruptState, match="bad.json"):
                store.record("bad")
    assert store.record("a") is None, "outside the snapshot the store reads the disk again"
