#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: overlay_layer
short_description: Create, remove and export layers of Docker's legacy overlay graph driver
version_added: 0.1.0
description:
  - Manages one layer under the driver's O(home), the way Docker's C(overlay) graph driver lays it out.
  - An image layer is a plain tree in C(<home>/<id>/root); a container layer is an overlay of its lower
    image layer (C(upper), C(work) and C(lower-id)) that M(graphdriver.overlay.overlay_mount) mounts.
  - With O(state=present) a missing layer is created (Docker's Create, then ApplyDiff when O(diff) is given)
    atomically; an existing layer with the same parent and diff digest is left alone.
  - With O(state=absent) the layer is removed; with O(state=exported) its diff against its parent is written
    to O(dest) as a reproducible tar.
  - Several processes may work on the same O(home) at once; per-layer locks keep them consistent.
author:
  - graphdriver.overlay contributors (@graphdriver)
extends_documentation_fragment:
  - graphdriver.overlay.driver
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the store and hashes O(diff) to decide, and writes nothing.
      - With O(state=exported), reading the whole tree of a container layer (no parent to diff against)
        mounts it for the duration of the read.
  diff_mode:
    support: full
    details:
      - Returns the layer record before and after the run (an empty dict where there is no layer).
      - Not with O(state=exported), which does not change the layer.
  platform:
    platforms: linux
options:
  id:
    description:
      - The layer id, for example an OCI chain id without its C(sha256:) prefix.
      - Must match C(^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$).
    type: str
    required: true
  parent:
    description:
      - The id of the layer this one is built on.
      - With O(state=present), a layer on an image parent that gets a O(diff) becomes an image layer
        (hardlink copy of the parent's root with the diff applied); without O(diff) it becomes a container layer.
        Without a parent the layer is a base image layer.
      - With O(state=present), left out means the parent of an existing layer is not compared.
      - With O(state=exported), the layer to diff against instead of the recorded parent.
    type: str
  state:
    description:
      - V(present) makes sure the layer exists.
      - V(absent) makes sure it does not. A layer with holders or dependent layers is refused unless O(force=true).
      - V(exported) writes its diff to O(dest).
    type: str
    choices: [present, absent, exported]
    default: present
  diff:
    description:
      - A tar layer on the managed host to apply when the layer is created.
      - Plain, gzip, bzip2, xz or zstd, recognised by its magic bytes. zstd needs Python's C(compression.zstd)
        or a C(zstd) tool on the host.
      - Deletions are C(.wh.<name>) whiteouts and C(.wh..wh..opq) opaque markers, as in Docker images.
      - An existing layer is compared by the digest of the uncompressed tar; a O(diff) given for a layer
        made without one counts as different.
    type: path
  dest:
    description:
      - Where to write the exported diff, an uncompressed tar, with O(state=exported).
      - Written atomically (a temporary file, then a rename); its directory must exist.
      - Exporting an unchanged layer gives the same bytes, so a second run reports RV(ignore:changed=false).
    type: path
  recursive:
    description:
      - With O(state=absent), also remove every layer that descends from this one (by parent or lower),
        deepest first, each under its lock.
      - A descendant (or the layer) that is mounted or has holders fails the whole call before anything is
        removed, unless O(force=true).
    type: bool
    default: false
  force:
    description:
      - With O(state=present), remove and recreate an existing layer whose parent or diff differs.
      - With O(state=absent), unmount the layer and drop every holder, and remove it even when other layers
        depend on it (they stay, and fail to mount while their lower layer is missing).
    type: bool
    default: false
  storage_opt:
    description:
      - Docker's per-layer C(--storage-opt). The overlay driver supports none, so any entry fails with
        C(--storage-opt is not supported for overlay).
    type: dict
    default: {}
notes:
  - Ids and holder names are checked before anything touches the disk, with every O(state).
  - A missing O(parent) fails with C(parent layer <parent> does not exist) and creates nothing, not even O(home).
  - A failure (bad archive, full disk) leaves no layer behind; a killed run leaves at most a layer that
    M(graphdriver.overlay.overlay_facts) reports as C(incomplete), which the next run on that id cleans up.
seealso:
  - module: graphdriver.overlay.overlay_mount
  - module: graphdriver.overlay.overlay_facts
  - name: Docker's overlay storage driver
    description: The on-disk layout this collection reads and writes.
    link: https://docs.docker.com/engine/storage/drivers/overlayfs-driver/
"""

EXAMPLES = r"""
- name: Create the base image layer from a root filesystem tarball
  graphdriver.overlay.overlay_layer:
    id: base
    diff: /srv/images/debian-rootfs.tar.zst

- name: Add an application layer on top of it
  graphdriver.overlay.overlay_layer:
    id: app
    parent: base
    diff: /srv/images/app-layer.tar.gz
  register: app_layer

- name: Show how much the application layer added
  ansible.builtin.debug:
    msg: "{{ app_layer.entries | default(0) }} entries, {{ app_layer.applied_size | default(0) }} bytes in {{ app_layer.elapsed }} s"

- name: Create a writable container layer on the application layer
  graphdriver.overlay.overlay_layer:
    id: web-1
    parent: app

- name: Replace the application layer when its tarball changed
  graphdriver.overlay.overlay_layer:
    id: app
    parent: base
    diff: /srv/images/app-layer.tar.gz
    force: true

- name: Save what the container changed as a layer tarball
  graphdriver.overlay.overlay_layer:
    id: web-1
    state: exported
    dest: /srv/backup/web-1.tar
  register: web_1_export

- name: List the files the container changed
  ansible.builtin.debug:
    msg: "{{ web_1_export.changes | map(attribute='path') | list }}"

- name: Remove the container layer, unmounting it if it is still in use
  graphdriver.overlay.overlay_layer:
    id: web-1
    state: absent
    force: true

- name: Remove a base layer and everything built on it, refusing if any of them is still mounted
  graphdriver.overlay.overlay_layer:
    id: base
    state: absent
    recursive: true

- name: Work on an existing Docker overlay store
  graphdriver.overlay.overlay_layer:
    home: /var/lib/docker/overlay
    id: 0f3c1b3e2c6a
    state: exported
    dest: /tmp/0f3c1b3e2c6a.tar
"""

RETURN = r"""
layer:
  description:
    - The layer record after the run (in check mode, the record the run would produce).
  returned: when O(state=present) or O(state=exported)
  type: dict
  contains:
    id:
      description: The layer id.
      type: str
      sample: app
    parent:
      description: The recorded parent; V(null) for a base layer, or where no parent was recorded (a layer made by Docker).
      type: str
      sample: base
    kind:
      description: V(image) (has C(root/)) or V(container) (C(upper/), C(work/), C(lower-id)).
      type: str
      sample: image
    metadata:
      description:
        - Docker's GetMetadata.
        - C(RootDir) for an image layer; C(LowerDir), C(UpperDir), C(WorkDir) and C(MergedDir) for a container layer.
      type: dict
      sample: {"RootDir": "/var/lib/graphdriver/overlay/app/root"}
    mounted:
      description: Whether the kernel has the layer's C(merged) dir mounted now; always V(false) for an image layer.
      type: bool
      sample: false
    holders:
      description: The holders persisted for the layer; V([]) for an image layer.
      type: list
      elements: str
      sample: []
    refcount:
      description: The number of holders.
      type: int
      sample: 0
    diff_digest:
      description: C(sha256:<hex>) of the uncompressed tar that was applied, or V(null).
      type: str
      sample: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
    applied_size:
      description: What ApplyDiff returned (the sum of the tar entries' sizes), or V(null).
      type: int
      sample: 10240
    size:
      description:
        - Docker's DiffSize against the parent.
        - Only M(graphdriver.overlay.overlay_facts) with O(graphdriver.overlay.overlay_facts#module:sizes=true) sets it.
      type: int
      returned: never by this module
    children:
      description: Ids of the layers that name this one as parent or lower.
      type: list
      elements: str
      sample: [web-1]
    incomplete:
      description: Whether leftovers of an interrupted operation are present.
      type: bool
      sample: false
    unit:
      description:
        - The name of the layer's systemd mount unit when its file exists, else V(null).
        - M(graphdriver.overlay.overlay_mount) writes it with O(graphdriver.overlay.overlay_mount#module:persist=true).
      type: str
      sample: null
    problem:
      description: Why part of the record could not be read (a damaged layer).
      type: str
      returned: when the layer is damaged
diff_digest:
  description:
    - With O(state=present), the digest of the O(diff) applied in this run (in check mode, of the one that would be).
    - With O(state=exported), the digest of what was written to O(dest).
  returned: when a diff was applied or exported
  type: str
  sample: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
applied_size:
  description: What ApplyDiff returned for the O(diff) applied in this run; V(null) in check mode.
  returned: when a diff was applied
  type: int
  sample: 10240
entries:
  description: The number of tar entries applied in this run.
  returned: when a diff was applied, not in check mode
  type: int
  sample: 347
bytes:
  description:
    - With O(state=present), the size of the O(diff) file as read (compressed or not).
    - With O(state=exported), the size of the tar written.
  returned: when a diff was applied or exported
  type: int
  sample: 4096
elapsed:
  description: Seconds the module took.
  returned: always
  type: float
  sample: 1.204
modifications:
  description:
    - The operations the run carried out, in order; in check mode the same list, the plan that a real run
      from the same state carries out.
    - Each is a dict with C(op) and C(id) and the operation's own keys, C(op) one of V(clear_leftovers),
      V(remove) (C(force), C(reason)), V(create) (C(parent), C(diff)) or V(export) (C(parent), C(dest)).
  returned: always
  type: list
  elements: dict
  sample: [{"op": "create", "id": "app", "parent": "base", "diff": "/srv/images/app-layer.tar.gz"}]
parent:
  description: The layer the export was diffed against; V(null) means the whole tree was exported.
  returned: when O(state=exported)
  type: str
  sample: app
changes:
  description:
    - What the exported layer adds, changes and deletes relative to RV(parent), sorted by path, following Docker's rules.
    - A C(C) for each parent dir of a change, one C(D) for the top of a deleted subtree.
  returned: when O(state=exported)
  type: list
  elements: dict
  contains:
    path:
      description: Absolute path from the layer root.
      type: str
      sample: /etc/motd
    kind:
      description: V(A) added, V(C) changed, V(D) deleted.
      type: str
      sample: C
removed:
  description:
    - The ids removed, in the order removed (in check mode, the ids the run would remove).
    - With O(recursive=true) the descendants come first, deepest first, and O(id) last.
  returned: when O(state=absent)
  type: list
  elements: str
  sample: [web-1, app, base]
size:
  description: Docker's DiffSize of the exported layer, the bytes of the files added or changed.
  returned: when O(state=exported)
  type: int
  sample: 5120
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.graphdriver.overlay.plugins.module_utils.overlay_driver import argument_spec, layer_task, run_module


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            id={"type": "str", "required": True},
            parent={"type": "str"},
            state={"type": "str", "choices": ["present", "absent", "exported"], "default": "present"},
            diff={"type": "path"},
            dest={"type": "path"},
            force={"type": "bool", "default": False},
            recursive={"type": "bool", "default": False},
            storage_opt={"type": "dict", "default": {}},
        ),
        required_if=[("state", "exported", ("dest",))],
        supports_check_mode=True,
    )
    run_module(module, layer_task(module))


if __name__ == "__main__":
    main()
