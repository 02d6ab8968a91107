# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the three modules do, in btrfs_subvolume's rhythm: validate, load, plan, apply, refresh.

Each task takes a ``Driver``, the module's params and the check/diff flags, and returns the
module result. Everything the user typed is validated before the disk is read; check mode
reads (and hashes a diff to decide) but never writes. ``modifications`` lists, in words,
what the run did or, in check mode, would do.
"""

from __future__ import annotations

import os

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import decompress, errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.driver import selinux_enabled, validate_id
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.fsutil import file_digest

STORAGE_OPT_UNSUPPORTED = "--storage-opt is not supported for overlay"
NO_HOLDERS = {"mounted": False, "holders": []}


class _NullSink:
    """A write-only file that keeps nothing: check-mode exports only need the digest."""

    @staticmethod
    def write(data) -> int:
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""


def diff_digest(path: str) -> str:
    """The digest the driver would record for a diff file: sha256 of its uncompressed tar."""
    with decompress.open_diff(path) as stream:
        return decompress.digest_stream(stream)[0]


def _diff_result(before, after) -> dict:
    return {"before": before if before is not None else {}, "after": after if after is not None else {}}


# -- overlay_layer ------------------------------------------------------------------------


class LayerTask:
    """overlay_layer: present, absent, exported."""

    def __init__(self, driver, params: dict, check_mode: bool = False, diff_mode: bool = False):
        self.driver = driver
        self.id = validate_id(params["id"])
        self.parent = params.get("parent")
        if self.parent is not None:
            validate_id(self.parent, "parent layer id")
            if self.parent == self.id:
                raise errors.InvalidArgument("layer %s cannot be its own parent" % self.id)
        if params.get("storage_opt"):
            raise errors.InvalidArgument(STORAGE_OPT_UNSUPPORTED)
        self.state = params.get("state") or "present"
        self.diff = params.get("diff")
        self.dest = params.get("dest")
        self.force = bool(params.get("force"))
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.modifications: list[str] = []
        self._digest: str | None = None
        self._before: dict | None = None

    def run(self) -> dict:
        """Do (or, in check mode, plan) what ``state`` asks; the module result."""
        before = self._record_or_none()
        if self.state == "absent":
            result = self._absent()
            after = None if (result["changed"] and self.check_mode) else self._record_or_none()
        elif self.state == "exported":
            result = self._exported()
            after = before
        else:
            result = self._present()
            after = result.get("layer")
        result["modifications"] = self.modifications
        if self.diff_mode and self.state != "exported":
            result["diff"] = _diff_result(before, after)
        return result

    # -- reading

    def _record_or_none(self) -> dict | None:
        if not self.driver.exists(self.id):
            return None
        try:
            record = self.driver.layer_record(self.id)
        except errors.CorruptState as exc:
            # A damaged layer must still be removable: show what can be shown.
            return {"id": self.id, "problem": str(exc)}
        # layer_record reads every layer (for children); present reuses this reading when nothing happened in between.
        self._before = record
        return record

    def _digest_of_diff(self) -> str:
        if self._digest is None:
            self._digest = diff_digest(self.diff)
        return self._digest

    def _predicted(self, digest: str | None) -> dict:
        """The record a create would produce, for check mode."""
        driver = self.driver
        path = driver.dir(self.id)
        parent_is_image = self.parent is not None and driver.is_image(self.parent)
        if self.parent is None or (parent_is_image and self.diff is not None):
            kind, metadata = "image", {"RootDir": os.path.join(path, "root")}
        else:
            lower = self.parent if parent_is_image else driver.lower_id(self.parent)
            kind, metadata = "container", {
                "LowerDir": os.path.join(driver.dir(lower), "root"),
                "UpperDir": os.path.join(path, "upper"),
                "WorkDir": os.path.join(path, "work"),
                "MergedDir": os.path.join(path, "merged"),
            }
        return {
            "id": self.id, "parent": self.parent, "kind": kind, "metadata": metadata, "mounted": False,
            "holders": [], "refcount": 0, "diff_digest": digest, "applied_size": None, "children": [], "incomplete": False,
        }

    # -- present

    def _require_parent(self) -> None:
        if self.parent is not None and not self.driver.exists(self.parent):
            raise errors.LayerNotFound("parent layer %s does not exist" % self.parent)

    def _differences(self, current: dict) -> list[str]:
        """What differs between the existing layer and the options given; left-out options are not compared."""
        found = []
        if self.parent is not None:
            if self.driver.store.record(self.id) is None:
                found.extend(self._unrecorded_parent_difference(current))
            elif current.get("parent") != self.parent:
                found.append("its parent is %s, not %s" % (current.get("parent") or "none (a base layer)", self.parent))
        if self.diff is not None:
            digest = self._digest_of_diff()
            if current.get("diff_digest") != digest:
                found.append("its diff digest is %s, but %s is %s" % (
                    current.get("diff_digest") or "none (it was made without a diff)", self.diff, digest))
        return found

    def _unrecorded_parent_difference(self, current: dict) -> list[str]:
        """A layer Docker made has no recorded parent: compare what its lower-id allows, else warn."""
        driver = self.driver
        if current.get("kind") == "container" and driver.exists(self.parent):
            expected = self.parent if driver.is_image(self.parent) else driver.lower_id(self.parent)
            actual = driver.lower_id(self.id)
            if actual != expected:
                return ["its lower layer is %s, but parent %s implies %s" % (actual, self.parent, expected)]
            return []
        driver.warn("layer %s has no recorded parent (a layer made by Docker?); parent %s was not compared" % (self.id, self.parent))
        return []

    def _created(self, outcome: dict) -> dict:
        self.modifications.append("created layer %s%s" % (self.id, " on %s" % self.parent if self.parent else ""))
        result = {"changed": True, "layer": self.driver.layer_record(self.id)}
        if outcome.get("diff_digest") is not None:
            self.modifications.append("applied %s (%s entries, %s bytes)" % (self.diff, outcome.get("entries"), outcome.get("applied_size")))
            result.update({
                "diff_digest": outcome["diff_digest"],
                "applied_size": outcome["applied_size"],
                "entries": outcome.get("entries"),
                "bytes": _size_or_none(self.diff),
            })
        return result

    def _create(self) -> dict:
        """Create the layer; if another process made it meanwhile, judge that one instead."""
        try:
            outcome = self.driver.create(self.id, self.parent, None, self.diff)
        except errors.LayerConflict:
            return self._existing(self.driver.layer_record(self.id), allow_force=False)
        if outcome.get("cleared"):
            self.modifications.append("cleared the leftovers of an interrupted operation on layer %s" % self.id)
        return self._created(outcome)

    def _would_create(self) -> dict:
        report = self.driver.support(test_mount=False)
        if not report.supported:
            raise errors.NotSupported("overlay cannot run at %s: %s" % (self.driver.home, report.reason))
        digest = self._digest_of_diff() if self.diff is not None else None
        self.modifications.append("would create layer %s%s" % (self.id, " on %s" % self.parent if self.parent else ""))
        result = {"changed": True, "layer": self._predicted(digest)}
        if digest is not None:
            self.modifications.append("would apply %s" % self.diff)
            result.update({"diff_digest": digest, "applied_size": None, "bytes": _size_or_none(self.diff)})
        return result

    def _existing(self, current: dict, allow_force: bool = True) -> dict:
        differences = self._differences(current)
        if not differences:
            return {"changed": False, "layer": current}
        if not (self.force and allow_force):
            raise errors.LayerConflict("layer %s exists but differs: %s; set force: true to remove and recreate it" % (self.id, "; ".join(differences)))
        self._require_parent()
        if self.check_mode:
            self.modifications.append("would remove layer %s (%s)" % (self.id, "; ".join(differences)))
            return self._would_create()
        self.driver.remove(self.id, force=True)
        self.modifications.append("removed layer %s (%s)" % (self.id, "; ".join(differences)))
        return self._create()

    def _present(self) -> dict:
        driver = self.driver
        if driver.exists(self.id) and not driver.incomplete(self.id):
            current = self._before if self._before is not None else driver.layer_record(self.id)
            return self._existing(dict(current))
        self._require_parent()
        if self.check_mode:
            if driver.incomplete(self.id):
                self.modifications.append("would clear the leftovers of an interrupted operation on layer %s" % self.id)
            return self._would_create()
        return self._create()

    # -- absent

    def _absent(self) -> dict:
        driver = self.driver
        exists = driver.exists(self.id)
        if not exists and not driver.incomplete(self.id):
            return {"changed": False}
        if self.check_mode:
            if exists and not self.force:
                holders = driver.store.holders(self.id)
                if holders:
                    raise errors.LayerBusy("layer %s is mounted (holders: %s)" % (self.id, ", ".join(holders)))
                children = driver.children(self.id)
                if children:
                    raise errors.LayerBusy("layer %s has dependent layers: %s" % (self.id, ", ".join(children)))
            self.modifications.append("would remove layer %s" % self.id if exists else "would clear the leftovers of layer %s" % self.id)
            return {"changed": True}
        changed = driver.remove(self.id, force=self.force)
        if changed:
            self.modifications.append("removed layer %s" % self.id if exists else "cleared the leftovers of layer %s" % self.id)
        return {"changed": changed}

    # -- exported

    def _export_parent(self) -> str | None:
        if self.parent is not None:
            return self.parent
        if self.driver.store.record(self.id) is None and not self.driver.is_image(self.id):
            # Docker records no parent; its container layers sit on their lower layer.
            return self.driver.lower_id(self.id)
        return self.driver.parent_of(self.id)

    def _exported(self) -> dict:
        driver = self.driver
        if not driver.exists(self.id):
            raise errors.LayerNotFound("layer %s does not exist" % self.id)
        if self.parent is not None and not driver.exists(self.parent):
            raise errors.LayerNotFound("parent layer %s does not exist" % self.parent)
        dest = os.path.abspath(self.dest)
        parent = self._export_parent()
        if self.check_mode:
            if not os.path.isdir(os.path.dirname(dest)):
                raise errors.InvalidArgument("cannot export layer %s to %s: the directory %s does not exist" % (self.id, dest, os.path.dirname(dest)))
            outcome = driver.diff(self.id, parent, _NullSink())
            outcome["changed"] = file_digest(dest) != outcome["diff_digest"]
        else:
            outcome = driver.export(self.id, parent, dest)
        if outcome["changed"]:
            self.modifications.append("%s the diff of layer %s against %s to %s" % (
                "would write" if self.check_mode else "wrote", self.id, parent or "nothing (the whole tree)", dest))
        return {
            "changed": outcome["changed"],
            "parent": parent,
            "changes": [{"path": change.path, "kind": change.kind} for change in outcome["changes"]],
            "size": outcome["size"],
            "diff_digest": outcome["diff_digest"],
            "bytes": outcome["bytes"],
            "layer": driver.layer_record(self.id),
        }


def _size_or_none(path: str | None) -> int | None:
    try:
        return os.stat(path).st_size if path else None
    except OSError:
        return None


def layer(driver, params: dict, check_mode: bool = False, diff_mode: bool = False) -> dict:
    """overlay_layer's whole work."""
    return LayerTask(driver, params, check_mode, diff_mode).run()


# -- overlay_mount ------------------------------------------------------------------------


def _said(check_mode: bool, would: str, done: str) -> str:
    return "would " + would if check_mode else done


def _mount_view(driver, layer_id: str) -> dict:
    return {"mounted": driver.is_mounted(layer_id), "holders": driver.store.holders(layer_id)}


def _mount_result(changed: bool, path: str, kind: str, view: dict) -> dict:
    return {"changed": changed, "path": path, "kind": kind, "mounted": view["mounted"], "holders": view["holders"], "refcount": len(view["holders"])}


def mount(driver, params: dict, check_mode: bool = False, diff_mode: bool = False) -> dict:
    """overlay_mount's whole work: add or drop one holder and reconcile the kernel's mount."""
    layer_id = validate_id(params["id"])
    holder = validate_id("ansible" if params.get("holder") is None else params["holder"], "holder name")
    state = params.get("state") or "mounted"
    force = bool(params.get("force"))
    label = params.get("mount_label") or ""
    merged = os.path.join(driver.dir(layer_id), "merged")
    if not driver.exists(layer_id):
        if state == "mounted":
            raise errors.LayerNotFound("layer %s does not exist" % layer_id)
        result = _mount_result(False, merged, None, NO_HOLDERS)
        result["modifications"] = []
        if diff_mode:
            result["diff"] = _diff_result(NO_HOLDERS, NO_HOLDERS)
        return result
    if driver.is_image(layer_id):
        root = os.path.join(driver.dir(layer_id), "root")
        result = _mount_result(False, root, "image", NO_HOLDERS)
        result["modifications"] = []
        if diff_mode:
            result["diff"] = _diff_result(NO_HOLDERS, NO_HOLDERS)
        return result

    before = _mount_view(driver, layer_id)
    modifications = []
    if state == "mounted":
        if check_mode:
            if label and not selinux_enabled():
                driver.warn("mount_label %r ignored: SELinux is not enabled on this host" % label)
            after = {"mounted": True, "holders": sorted(set(before["holders"]) | {holder})}
            changed = after != before
        else:
            changed = driver.mount(layer_id, holder, label)["changed"]
            after = _mount_view(driver, layer_id)
        if holder not in before["holders"]:
            modifications.append(_said(check_mode, "add holder %s" % holder, "added holder %s" % holder))
        if not before["mounted"] and changed:
            modifications.append(_said(check_mode, "mount %s" % merged, "mounted %s" % merged))
    else:
        if check_mode:
            releases = force or holder in before["holders"]
            remaining = [] if force else [h for h in before["holders"] if h != holder]
            after = {"mounted": before["mounted"] and not (releases and not remaining), "holders": remaining if releases else before["holders"]}
            changed = after != before
        else:
            changed = driver.unmount(layer_id, holder, force)["changed"]
            after = _mount_view(driver, layer_id)
        dropped = sorted(set(before["holders"]) - set(after["holders"]))
        if dropped:
            text = "holder%s %s" % ("s" if len(dropped) > 1 else "", ", ".join(dropped))
            modifications.append(_said(check_mode, "drop " + text, "dropped " + text))
        if before["mounted"] and not after["mounted"]:
            modifications.append(_said(check_mode, "unmount %s" % merged, "unmounted %s" % merged))
    result = _mount_result(changed, merged, "container", after)
    result["modifications"] = modifications
    if diff_mode:
        result["diff"] = _diff_result(before, after)
    return result


# -- overlay_facts ------------------------------------------------------------------------


def facts(driver, params: dict) -> dict:
    """overlay_facts' whole work: read-only, even in a missing or empty home."""
    return {"changed": False, "ansible_facts": {"overlay": driver.facts(sizes=bool(params.get("sizes")))}}
