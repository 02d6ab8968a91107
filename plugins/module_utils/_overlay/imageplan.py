# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""overlay_image's work: images in and out of the store without an engine.

``present`` pulls ``name`` from its registry (every blob streamed through its digest check
straight into the layer apply) or imports the archive ``source``; layers are named by their
chain ids, as the image role names them, and the ones that exist are skipped; ``container``
adds a container layer on top. ``exported`` writes the chain of ``top`` as an image;
``pushed`` uploads it. A container layer as ``top`` is first committed as an image layer
made from its reproducible diff, named by the chain id that diff gives, so a second export
or push finds everything in place.

As for the other modules, check mode is the plan: the registry is asked (manifests, HEADs),
archives are read and diffs are written to a scratch dir outside the home, so the plan
knows every digest; a real run carries the same records out.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import (
    errors, imagearchive, imagewriter, layout, operations, platforms, reference, registry,
)
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.build import StreamDiff
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.driver import validate_id

STATES = ("present", "exported", "pushed")


class ImageTask:
    """overlay_image: present (pull or import), exported, pushed."""

    def __init__(self, driver, params: dict) -> None:
        self.driver = driver
        self.state = params.get("state") or "present"
        name = params.get("name")
        self.source = params.get("source")
        self.ref = reference.parse(name) if name else None
        self.top = validate_id(params["top"], "top layer id") if params.get("top") else None
        self.container = validate_id(params["container"], "container layer id") if params.get("container") else None
        self.dest = params.get("dest")
        self.format = params.get("format") or "oci-dir"
        self.platform = params.get("platform") or platforms.host_platform()
        platforms.parse_platform(self.platform)
        self.auth = {"username": params.get("registry_username"), "password": params.get("registry_password"),
                     "ca_path": params.get("registry_ca_path"), "insecure": bool(params.get("registry_insecure"))}
        self._require_options()
        self._session: registry.Session | None = None
        self._scratch: str | None = None
        self._sources: dict = {}
        self._image = None
        self.layers: list = []
        self.diff_ids: list = []
        self.manifest_digest: str | None = None
        self.config_digest: str | None = None
        self.bytes_transferred = 0

    def _require_options(self) -> None:
        wanted = {"present": (), "exported": ("top", "dest"), "pushed": ("top", "name")}[self.state]
        given = {"top": self.top, "dest": self.dest, "name": self.ref}
        missing = [option for option in wanted if given[option] is None]
        if missing:
            raise errors.InvalidArgument("state=%s needs %s" % (self.state, " and ".join(missing)))
        if self.state == "present" and self.ref is None and self.source is None:
            raise errors.InvalidArgument("state=present needs name (to pull from a registry) or source (an archive on the host)")
        if self.source is not None and self.state != "present":
            raise errors.InvalidArgument("source is for state=present; state=%s reads the layers of top" % self.state)
        if self.container is not None and self.state != "present":
            raise errors.InvalidArgument("container is for state=present; with state=%s, give the container layer as top" % self.state)

    def run(self, check_mode: bool = False) -> dict:
        """Plan what ``state`` asks, carry it out unless in check mode; the module result."""
        try:
            plan = self.plan()
            if not check_mode:
                self.execute(plan)
            result = self._result()
        finally:
            if self._session is not None:
                self._session.close()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
        result["changed"] = bool(plan)
        result["modifications"] = operations.render(plan)
        return result

    # -- planning

    def plan(self) -> list:
        """The operations that bring the store, the file or the registry to ``state``; raises where the task must be refused."""
        if self.state == "exported":
            plan = self._plan_image()
            if not os.path.isdir(os.path.dirname(os.path.abspath(self.dest))):
                raise errors.ArchiveError("cannot write the image to %s: the directory %s does not exist"
                                          % (self.dest, os.path.dirname(os.path.abspath(self.dest))), path=self.dest)
            if not imagewriter.holds(self._image, self.dest, self.format, self.ref):
                plan.append(operations.WriteImage(self.layers[-1], self.dest, self.format, self._image.manifest_digest))
            return plan
        if self.state == "pushed":
            return self._plan_push()
        plan = self._plan_import() if self.source is not None else self._plan_pull()
        self._plan_container(plan)
        if plan:
            self.driver.rules.require_supported()
        return plan

    def _scratch_dir(self) -> str:
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="graphdriver-image.")
        return self._scratch

    def _session_for(self, ref: reference.Reference) -> registry.Session:
        if self._session is None:
            self._session = registry.session_for(ref, self.auth["username"], self.auth["password"], self.auth["ca_path"],
                                                 self.auth["insecure"])
        return self._session

    def _has(self, layer_id: str) -> bool:
        """A whole layer: one that an interrupted ApplyDiff left pending is made again."""
        return self.driver.exists(layer_id) and not self.driver.store.is_pending(layer_id)

    def _stage_chain(self, plan: list, ids: list, make) -> None:
        for number, layer_id in enumerate(ids):
            if not self._has(layer_id):
                plan.append(make(number, layer_id, ids[number - 1] if number else None))

    def _plan_pull(self) -> list:
        session = self._session_for(self.ref)
        image = session.resolve(self.ref, self.platform)
        self.layers = imagearchive.chain_ids(image.diff_ids)
        self.diff_ids = list(image.diff_ids)
        self.manifest_digest, self.config_digest = image.manifest.digest, image.config_digest
        count = len(self.layers)
        for number, descriptor in enumerate(image.layers):
            self._sources[self.layers[number]] = (
                descriptor, "layer %d of %d (blob %s) of %s" % (number + 1, count, descriptor.get("digest"), self.ref),
                image.diff_ids[number])
        plan: list = []
        self._stage_chain(plan, self.layers, lambda number, layer_id, parent: operations.FetchLayer(
            layer_id, parent, image.layers[number]["digest"]))
        return plan

    def _plan_import(self) -> list:
        root = self.source
        if not os.path.isdir(root):
            if not os.path.isfile(root):
                raise errors.ArchiveError("image archive %s does not exist" % root, path=root)
            root = os.path.join(self._scratch_dir(), "archive")
            os.mkdir(root)
            imagearchive.unpack_archive(self.source, root)
        image = imagearchive.read_image(root, str(self.ref) if self.ref is not None else None)
        self.layers = [layer.chain_id for layer in image.layers]
        self.diff_ids = [layer.diff_id for layer in image.layers]
        self.config_digest = image.config_digest
        for layer in image.layers:
            self._sources[layer.chain_id] = layer.path
        plan: list = []
        self._stage_chain(plan, self.layers, lambda number, layer_id, parent: operations.ImportLayer(
            layer_id, parent, image.layers[number].diff_id))
        return plan

    def _plan_container(self, plan: list) -> None:
        if self.container is None:
            return
        top = self.layers[-1]
        if not self.driver.exists(self.container):
            plan.append(operations.CreateLayer(self.container, top))
            return
        kind = self.driver.kind(self.container)
        lower = self.driver.lower_id(self.container) if kind == layout.CONTAINER else None
        if lower != top:
            raise errors.LayerConflict("layer %s exists but is not a container layer on the image's top layer %s (%s)"
                                       % (self.container, top, "its lower layer is %s" % lower if lower else "it is an image layer"),
                                       path=self.driver.dir(self.container), layer_id=self.container)

    def _chain(self, top: str) -> list:
        """The image layers from the base up to ``top``, by their recorded parents."""
        found = []
        current = top
        while current is not None:
            if not self.driver.exists(current):
                raise errors.LayerNotFound("layer %s does not exist%s" % (current, "" if current == top else " (in the chain of %s)" % top),
                                           path=self.driver.dir(current), layer_id=current)
            if self.driver.rules.require_layer(current) != layout.IMAGE:
                raise errors.InvalidArgument("layer %s in the chain of %s is a container layer: an image is made of image layers"
                                             % (current, top), layer_id=current)
            found.append(current)
            current = self.driver.inventory.parent_of(current)
        return found[::-1]

    def _layer_blob(self, layer_id: str, parent: str | None, name: str) -> imagewriter.LayerBlob:
        path = os.path.join(self._scratch_dir(), name + ".tar")
        exported = self.driver.export(layer_id, parent, path)
        return imagewriter.layer_blob(path, exported["diff_digest"])

    def _plan_image(self) -> list:
        """The image of ``top`` built from reproducible diffs in scratch; a container top staged for its commit."""
        plan: list = []
        if not self.driver.exists(self.top):
            raise errors.LayerNotFound("layer %s does not exist" % self.top, path=self.driver.dir(self.top), layer_id=self.top)
        commit = self.driver.rules.require_layer(self.top) == layout.CONTAINER
        lower = self.driver.lower_id(self.top) if commit else None
        ids = self._chain(lower if commit else self.top)
        blobs = [self._layer_blob(layer_id, ids[number - 1] if number else None, "layer-%d" % number)
                 for number, layer_id in enumerate(ids)]
        if commit:
            blob = self._layer_blob(self.top, lower, "commit")
            committed = imagearchive.chain_ids([layer.diff_id for layer in blobs] + [blob.diff_id])[-1]
            if not self._has(committed):
                plan.append(operations.CommitLayer(committed, lower, self.top, blob.diff_id))
            self._sources[committed] = blob.path
            ids.append(committed)
            blobs.append(blob)
        os_name, architecture, variant = platforms.parse_platform(self.platform)
        self._image = imagewriter.build_image(blobs, architecture, os_name, variant or None,
                                              history=["graphdriver.overlay layer %s" % layer_id for layer_id in ids])
        self.layers = ids
        self.diff_ids = self._image.diff_ids
        self.manifest_digest, self.config_digest = self._image.manifest_digest, self._image.config_digest
        return plan

    def _plan_push(self) -> list:
        plan = self._plan_image()
        session = self._session_for(self.ref)
        config = os.path.join(self._scratch_dir(), "config.json")
        with open(config, "wb") as handle:
            handle.write(self._image.config)
        names = {self._image.config_digest: "config"}
        for layer_id, layer in zip(self.layers, self._image.layers):
            names.setdefault(layer.digest, layer_id)
        for digest, size, path in self._image.blobs():
            self._sources[digest] = path or config
            if session.blob_size(self.ref.repository, digest) is None:
                plan.append(operations.PushBlob(names[digest], digest, size))
        if session.manifest_digest(self.ref.repository, self.ref.target, imagewriter.OCI_MANIFEST) != self._image.manifest_digest:
            plan.append(operations.PushManifest(str(self.ref), self._image.manifest_digest))
        return plan

    # -- carrying out

    def execute(self, plan: list) -> None:
        """Carry out the plan: layers through the driver, files through the image writer, the rest through the registry."""
        driver = self.driver
        for operation in plan:
            if isinstance(operation, operations.FetchLayer):
                self._fetch(operation)
            elif isinstance(operation, (operations.ImportLayer, operations.CommitLayer)):
                driver.create(operation.id, operation.parent, diff_path=self._sources[operation.id])
            elif isinstance(operation, operations.CreateLayer):
                driver.create(operation.id, operation.parent)
            elif isinstance(operation, operations.WriteImage):
                written = imagewriter.write_image(self._image, operation.dest, operation.format, self.ref)
                self.bytes_transferred += written["bytes"]
            elif isinstance(operation, operations.PushBlob):
                _state, sent = self._session.push_blob(self.ref.repository, operation.digest, operation.size,
                                                       self._sources[operation.digest])
                self.bytes_transferred += sent
            elif isinstance(operation, operations.PushManifest):
                if self._session.put_manifest(self.ref.repository, self.ref.target, self._image.manifest, imagewriter.OCI_MANIFEST):
                    self.bytes_transferred += len(self._image.manifest)

    def _fetch(self, operation: operations.FetchLayer) -> None:
        descriptor, what, diff_id = self._sources[operation.id]
        with self._session.open_blob(self.ref.repository, descriptor, what) as blob:
            try:
                self.driver.create(operation.id, operation.parent, diff_stream=StreamDiff(blob, what, diff_id))
            finally:
                self.bytes_transferred += blob.bytes_read

    # -- results

    def _result(self) -> dict:
        result = {
            "layers": list(self.layers),
            "diff_ids": list(self.diff_ids),
            "manifest_digest": self.manifest_digest,
            "config_digest": self.config_digest,
            "bytes_transferred": self.bytes_transferred,
        }
        if self.state == "exported":
            result.update({"dest": os.path.abspath(self.dest), "format": self.format})
        if self.state == "present" and self.container is not None:
            result["container"] = self.container
        if self.ref is not None:
            result["name"] = str(self.ref)
        return result
