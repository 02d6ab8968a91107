# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The state store: what the driver persists under ``<home>/.graphdriver/``.

Docker keeps holders (mount refcounts) and its per-id locks in daemon memory; a module run is
a short-lived process, so here they live on disk where every process and every run sees them::

    locks/<id>.lock          flock(2) target, one per layer; never deleted (that would race)
    holders/<id>.json        {"holders": [...]}, sorted and unique; absent when there are none
    layers/<id>.json         the layer record {"parent", "diff_digest", "applied_size"}
    staging/<id>.<random>/   a layer being built, renamed to <home>/<id> when whole
    trash/<id>.<random>/     a layer being removed: renamed here, then deleted
    pending/<id>             an operation on an existing layer is under way

JSON files are replaced atomically (temp file in the same dir, fsync, rename, fsync of the dir),
so a reader or a crash sees the old or the new content, never a mix. The random suffixes never
contain a dot, so the id of a staging or trash entry is its name up to the last dot, even for
ids that contain dots themselves. Reading never creates anything: facts use this store too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Iterator

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import faults, fsutil
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.layout import STATE_DIR

_LOCKS = "locks"
_HOLDERS = "holders"
_LAYERS = "layers"
_STAGING = "staging"
_TRASH = "trash"
_PENDING = "pending"

# A read-only or foreign-owned store must not make facts fail; they then read without the lock.
_LOCK_SKIP_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)

_RECORD_TYPES = {"parent": (str,), "diff_digest": (str,), "applied_size": (int,)}


def _check_id(layer_id: str) -> None:
    # The driver validates ids fully; this only keeps a bad id from naming a path outside our dirs.
    if not isinstance(layer_id, str) or not layer_id or "/" in layer_id or "\0" in layer_id or layer_id in (".", ".."):
        raise errors.InvalidArgument("invalid layer id %r for the state store: it must be a non-empty name without '/', not '.' or '..'" % (layer_id,))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mkdir_private(path: str) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    # mkdir honours the umask; the state is root's business only, whatever the umask was.
    os.chmod(path, 0o700)


def _remove_file(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


class StateStore:
    """Locks, holders, layer records and staging/trash/pending of one driver home."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.state_dir = os.path.join(home, STATE_DIR)
        # While a read-only snapshot is open (facts), each record and listing is read once.
        self._memo: dict | None = None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Serve repeated reads of layer records and of staging/trash listings from memory.

        Only for read-only callers (facts): nothing invalidates the memo, so nothing may write
        through this store while it is open. A record that failed to read fails the same way again.
        """
        self._memo = {}
        try:
            yield
        finally:
            self._memo = None

    def _path(self, sub: str, *name: str) -> str:
        return os.path.join(self.state_dir, sub, *name)

    def _ensure(self, sub: str) -> str:
        """Create ``.graphdriver/<sub>`` (0700) as needed; the home itself must already exist."""
        _mkdir_private(self.state_dir)
        path = self._path(sub)
        _mkdir_private(path)
        return path

    @contextlib.contextmanager
    def layer_lock(self, layer_id: str, create: bool = True) -> Iterator[bool]:
        """Hold the exclusive per-layer lock (blocking) so processes serialise work on one id; yields whether it is held.

        With ``create=False`` (facts) a missing ``.graphdriver`` is not created and nothing is
        locked. Not reentrant: a second lock on the same id in one process waits forever.
        """
        _check_id(layer_id)
        if not create and not os.path.isdir(self.state_dir):
            yield False
            return
        fd = None
        try:
            directory = self._ensure(_LOCKS)
            fd = os.open(os.path.join(directory, layer_id + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            if create or error.errno not in _LOCK_SKIP_ERRNOS:
                raise
        if fd is None:
            yield False
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
        finally:
            # Closing the descriptor releases the flock; the kernel does the same when the process dies.
            os.close(fd)

    def _read_json(self, path: str, what: str, fix: str) -> object | None:
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise errors.CorruptState("%s %s cannot be read (%s): %s" % (what, path, error.strerror or error, fix)) from None
        if not raw.strip():
            raise errors.CorruptState("%s %s is empty or truncated: %s" % (what, path, fix))
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise errors.CorruptState("%s %s is not UTF-8 text (garbage bytes): %s" % (what, path, fix)) from None
        except (ValueError, RecursionError) as error:
            raise errors.CorruptState("%s %s is not valid JSON (%s): %s" % (what, path, error, fix)) from None

    def _write_json(self, sub: str, name: str, document: object) -> None:
        """Replace ``.graphdriver/<sub>/<name>`` atomically and durably."""
        data = json.dumps(document, sort_keys=True).encode("utf-8") + b"\n"
        directory = self._ensure(sub)
        fd, temp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            faults.checkpoint("state.write")
            os.rename(temp, os.path.join(directory, name))
        except BaseException:
            _remove_file(temp)
            raise
        _fsync_dir(directory)

    def _drop(self, sub: str, name: str) -> None:
        if _remove_file(self._path(sub, name)):
            _fsync_dir(self._path(sub))

    def holders(self, layer_id: str) -> list[str]:
        """The persisted holders of a layer, sorted; [] when none are recorded."""
        _check_id(layer_id)
        path = self._path(_HOLDERS, layer_id + ".json")
        fix = "remove the file to reset the holders of layer %s (then unmount %s/%s/merged if it is still mounted)" % (layer_id, self.home, layer_id)
        document = self._read_json(path, "holders file", fix)
        if document is None:
            return []
        if not isinstance(document, dict) or "holders" not in document:
            raise errors.CorruptState('holders file %s is not a JSON object with a "holders" list: %s' % (path, fix))
        holders = document["holders"]
        if not isinstance(holders, list) or not all(isinstance(holder, str) and holder for holder in holders):
            raise errors.CorruptState('holders file %s: "holders" is not a list of non-empty strings: %s' % (path, fix))
        return sorted(set(holders))

    def set_holders(self, layer_id: str, holders: list[str]) -> None:
        """Persist the holders of a layer atomically (sorted, unique); an empty list removes the file."""
        _check_id(layer_id)
        holders = list(holders)
        if not all(isinstance(holder, str) and holder for holder in holders):
            raise errors.InvalidArgument("holders of layer %s must be non-empty strings, got %r" % (layer_id, holders))
        unique = sorted(set(holders))
        if unique:
            self._write_json(_HOLDERS, layer_id + ".json", {"holders": unique})
        else:
            self._drop(_HOLDERS, layer_id + ".json")

    def record(self, layer_id: str) -> dict | None:
        """The stored record of a layer (parent, diff_digest, applied_size), or None when there is none."""
        memo = self._memo
        if memo is None:
            return self._read_record(layer_id)
        key = ("record", layer_id)
        if key not in memo:
            try:
                memo[key] = (self._read_record(layer_id), None)
            except errors.CorruptState as exc:
                memo[key] = (None, str(exc))
        document, problem = memo[key]
        if problem is not None:
            raise errors.CorruptState(problem)
        return None if document is None else dict(document)

    def _read_record(self, layer_id: str) -> dict | None:
        _check_id(layer_id)
        path = self._path(_LAYERS, layer_id + ".json")
        fix = (
            "restore it from a backup, or remove it: layer %s then counts as having no recorded parent or diff digest, "
            "as a layer made by Docker" % layer_id
        )
        document = self._read_json(path, "layer record", fix)
        if document is None:
            return None
        if not isinstance(document, dict):
            raise errors.CorruptState("layer record %s is not a JSON object: %s" % (path, fix))
        for key, types in _RECORD_TYPES.items():
            value = document.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
                raise errors.CorruptState("layer record %s: %s is %r, not a %s or null: %s" % (path, key, value, types[0].__name__, fix))
        return document

    def set_record(self, layer_id: str, record: dict) -> None:
        """Store a layer's record atomically, so a crash leaves the old record or the new one."""
        _check_id(layer_id)
        self._write_json(_LAYERS, layer_id + ".json", dict(record))

    def drop_record(self, layer_id: str) -> None:
        """Forget a layer's record (a missing one is fine)."""
        _check_id(layer_id)
        self._drop(_LAYERS, layer_id + ".json")

    def new_staging(self, layer_id: str) -> str:
        """Make a fresh empty dir (0700) to build a layer in; it sits on home's filesystem, so a rename publishes it."""
        _check_id(layer_id)
        return tempfile.mkdtemp(prefix=layer_id + ".", dir=self._ensure(_STAGING))

    def new_trash(self, layer_id: str) -> str:
        """A fresh unused path in trash/ for the caller to rename a layer dir onto before deleting it."""
        _check_id(layer_id)
        directory = self._ensure(_TRASH)
        while True:
            path = os.path.join(directory, "%s.%s" % (layer_id, secrets.token_hex(8)))
            if not os.path.lexists(path):
                return path

    def _entries(self, sub: str) -> list[str]:
        memo = self._memo
        if memo is not None and ("entries", sub) in memo:
            return list(memo[("entries", sub)])
        try:
            found = sorted(os.listdir(self._path(sub)))
        except (FileNotFoundError, NotADirectoryError):
            # A home that is a file (facts report it) holds no state.
            found = []
        if memo is not None:
            memo[("entries", sub)] = tuple(found)
        return found

    def leftovers(self, layer_id: str) -> list[str]:
        """Paths an interrupted operation left for this id (staging, trash, pending); non-empty means incomplete."""
        _check_id(layer_id)
        found = []
        for sub in (_STAGING, _TRASH):
            found.extend(self._path(sub, name) for name in self._entries(sub) if name.rpartition(".")[0] == layer_id)
        if self.is_pending(layer_id):
            found.append(self._path(_PENDING, layer_id))
        return found

    def leftover_ids(self) -> set[str]:
        """Every id with leftovers, for facts to report incomplete layers without probing each id."""
        ids = set(self._entries(_PENDING))
        for sub in (_STAGING, _TRASH):
            ids.update(name.rpartition(".")[0] for name in self._entries(sub) if name.rpartition(".")[0])
        return ids

    def _json_ids(self, sub: str) -> set[str]:
        # Temp files of an atomic write start with a dot and are never a state file.
        return {name[:-len(".json")] for name in self._entries(sub) if name.endswith(".json") and not name.startswith(".")}

    def record_ids(self) -> set[str]:
        """Every id with a layer record (facts and prune find the records of gone layers with it)."""
        return self._json_ids(_LAYERS)

    def holder_ids(self) -> set[str]:
        """Every id with a holders file."""
        return self._json_ids(_HOLDERS)

    def clear_leftovers(self, layer_id: str) -> None:
        """Delete everything an interrupted operation left for this id; the pending marker goes last."""
        _check_id(layer_id)
        for path in self.leftovers(layer_id):
            if os.path.dirname(path) != self._path(_PENDING):
                fsutil.remove_tree(path)
        self.clear_pending(layer_id)

    def mark_pending(self, layer_id: str) -> None:
        """Durably mark that an existing layer is being changed, so a crash leaves it reported incomplete."""
        _check_id(layer_id)
        directory = self._ensure(_PENDING)
        fd = os.open(os.path.join(directory, layer_id), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(directory)

    def clear_pending(self, layer_id: str) -> None:
        """Remove the pending marker of a layer once its operation is whole (missing is fine)."""
        _check_id(layer_id)
        self._drop(_PENDING, layer_id)

    def is_pending(self, layer_id: str) -> bool:
        """Whether an operation on this existing layer was started and not finished."""
        _check_id(layer_id)
        return os.path.lexists(self._path(_PENDING, layer_id))
