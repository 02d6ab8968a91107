#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: overlay_facts
short_description: Report overlay support and the layers of a Docker legacy overlay driver home
version_added: 0.1.0
description:
  - Runs the checks of Docker's overlay driver Init (the C(overlay) module, the backing filesystem,
    d_type support, a test mount) and reports their outcome instead of failing on a host without support.
  - Lists every layer under O(home), Docker's own included, with its record, and the layers mounted now
    according to the kernel.
  - Creates and rewrites nothing under O(home); a missing or empty O(home) stays so.
author:
  - graphdriver.overlay contributors (@graphdriver)
extends_documentation_fragment:
  - graphdriver.overlay.driver
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: linux
options:
  sizes:
    description:
      - Also compute each layer's size (Docker's DiffSize against its parent), which walks the layer trees.
    type: bool
    default: false
  test_mount:
    description:
      - Try a throwaway overlay mount, as Docker's Init does, to prove the kernel can mount overlay here.
      - V(false) skips it; RV(ansible_facts.overlay.test_mount) is then V(null).
      - Check mode never makes the probe mount and never runs C(modprobe), whatever this option says.
    type: bool
    default: true
notes:
  - "Must run as root (use C(become: true)); without root it fails and reads nothing."
  - In check mode no kernel module is loaded and no probe mount is made; a home whose support depends on
    loading the C(overlay) module says so in RV(ansible_facts.overlay.reason).
  - Entries under O(home) that are not layers (a Docker volume, a file, a symlink) are listed in
    RV(ansible_facts.overlay.foreign) with one warning, and are never touched by any module of this collection.
seealso:
  - module: graphdriver.overlay.overlay_layer
  - module: graphdriver.overlay.overlay_mount
"""

EXAMPLES = r"""
- name: Gather overlay facts
  graphdriver.overlay.overlay_facts:

- name: Stop early on a host that cannot run the overlay driver
  ansible.builtin.assert:
    that: ansible_facts.overlay.supported
    fail_msg: "overlay is not usable here: {{ ansible_facts.overlay.reason }}"

- name: Show the layers that are mounted now
  ansible.builtin.debug:
    msg: "{{ ansible_facts.overlay.mounts }}"

- name: Inspect an existing Docker overlay store, with the size of each layer
  graphdriver.overlay.overlay_facts:
    home: /var/lib/docker/overlay
    sizes: true

- name: Find the layers that an interrupted run left incomplete
  ansible.builtin.debug:
    msg: "{{ ansible_facts.overlay.layers | dict2items | selectattr('value.incomplete') | map(attribute='key') | list }}"

- name: List what is wrong with the store, and how to repair each
  ansible.builtin.debug:
    msg: "{{ item.id }} ({{ item.code }}): {{ item.message }}; fix: {{ item.fix }}"
  loop: "{{ ansible_facts.overlay.problems }}"
  loop_control:
    label: "{{ item.id }} {{ item.code }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: complex
  contains:
    overlay:
      description: What the driver found on the host and under O(home).
      returned: always
      type: complex
      contains:
        supported:
          description: Whether the overlay driver can run at O(home).
          type: bool
          sample: true
        reason:
          description:
            - Why not, in Docker's words, or V(null) when supported.
            - For example C('overlay' is not supported over btrfs).
          type: str
          sample: null
        backing_fs:
          description: Docker's name of the filesystem under O(home) (its parent while O(home) is missing), or C(<unknown>).
          type: str
          sample: extfs
        supports_d_type:
          description:
            - Whether that filesystem returns d_type in directory listings, measured even where the filesystem is refused.
            - V(false) also when it could not be measured; RV(ansible_facts.overlay.reason) then says why.
          type: bool
          sample: true
        test_mount:
          description: Whether a test overlay mount worked; V(null) when it was not tried.
          type: bool
          sample: true
        home:
          description: The absolute path of O(home).
          type: str
          sample: /var/lib/graphdriver/overlay
        initialized:
          description: Whether O(home) exists and is not empty (Docker's rule).
          type: bool
          sample: true
        status:
          description: Docker's Status, pairs of name and value.
          type: list
          elements: list
          sample: [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]
        warnings:
          description: Warnings from the support checks, such as d_type missing on an initialized home.
          type: list
          elements: str
          sample: []
        layers:
          description: Every layer under O(home), by id.
          type: dict
          contains:
            id:
              description: The layer id.
              type: str
              sample: web-1
            parent:
              description: The recorded parent; V(null) for a base layer, or where no parent was recorded (a layer made by Docker).
              type: str
              sample: app
            kind:
              description: V(image) (has C(root/)) or V(container) (C(upper/), C(work/), C(lower-id)).
              type: str
              sample: container
            metadata:
              description:
                - Docker's GetMetadata.
                - C(RootDir) for an image layer; C(LowerDir), C(UpperDir), C(WorkDir) and C(MergedDir) for a container layer.
              type: dict
              sample:
                LowerDir: /var/lib/graphdriver/overlay/app/root
                UpperDir: /var/lib/graphdriver/overlay/web-1/upper
                WorkDir: /var/lib/graphdriver/overlay/web-1/work
                MergedDir: /var/lib/graphdriver/overlay/web-1/merged
            mounted:
              description: Whether the kernel has the layer's C(merged) dir mounted now; always V(false) for an image layer.
              type: bool
              sample: true
            holders:
              description: The holders persisted for the layer.
              type: list
              elements: str
              sample: [ansible]
            refcount:
              description: The number of holders.
              type: int
              sample: 1
            diff_digest:
              description: C(sha256:<hex>) of the uncompressed tar that was applied, or V(null).
              type: str
              sample: null
            applied_size:
              description: What ApplyDiff returned, or V(null).
              type: int
              sample: null
            size:
              description: Docker's DiffSize against the parent, the bytes of the files added or changed; V(null) when it cannot be computed.
              type: int
              returned: when O(sizes=true)
              sample: 4096
            children:
              description: Ids of the layers that name this one as parent or lower.
              type: list
              elements: str
              sample: []
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
        mounts:
          description: The ids whose C(merged) dir is an overlay mount now, read from the kernel.
          type: list
          elements: str
          sample: [web-1]
        incomplete:
          description: The ids that an interrupted operation left incomplete, including ids whose layer dir is gone.
          type: list
          elements: str
          sample: []
        problems:
          description:
            - What is wrong with the store, sorted by id then code, found without walking layer trees
              (a fraction of a second on a home with 1,000 layers).
            - Each names the module call that repairs it in RV(ansible_facts.overlay.problems[].fix).
          type: list
          elements: dict
          sample:
            - id: web-1
              code: held_not_mounted
              message: "layer web-1 has holders (web) but is not mounted (after a reboot?)"
              fix: "graphdriver.overlay.overlay_mount id=web-1 state=mounted mounts it again for them, ..."
          contains:
            id:
              description: The layer id, or the id that state files or leftovers are named after.
              type: str
            code:
              description:
                - V(incomplete) an interrupted operation left leftovers (staging, trash, pending);
                  V(missing_parent) the record names a parent that is gone;
                  V(missing_lower) C(lower-id) names a layer that is gone, so it cannot be mounted;
                  V(damaged) a container layer lacks C(upper/), C(work/) or C(lower-id), or a state
                  file or C(lower-id) cannot be read;
                  V(stale_merged) a C(merged/) dir with no mount and no holders;
                  V(held_not_mounted) holders on disk but no mount (after a reboot);
                  V(mounted_not_held) an overlay mount at C(merged/) with no holder;
                  V(orphan_state) a layer record or holders file for an id that has no layer.
              type: str
              choices: [incomplete, missing_parent, missing_lower, damaged, stale_merged, held_not_mounted, mounted_not_held, orphan_state]
            message:
              description: What is wrong, naming the layer.
              type: str
            fix:
              description:
                - The module call that repairs it, such as M(graphdriver.overlay.overlay_prune) with
                  O(graphdriver.overlay.overlay_prune#module:leftovers=true).
              type: str
        foreign:
          description:
            - The names directly under O(home), without a leading dot, that are not layers, sorted.
            - A layer is a real directory holding C(root/), C(upper/) or a file C(lower-id); anything else is foreign
              and never removed, mounted, exported or listed in RV(ansible_facts.overlay.layers).
          type: list
          elements: str
          sample: [containers, image, volumes]
    overlay_homes:
      description: Every home gathered in the play so far, by its absolute path, each with the facts above.
      returned: always
      type: dict
      sample: {"/var/lib/graphdriver/overlay": {"supported": true}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.graphdriver.overlay.plugins.module_utils.overlay_driver import argument_spec, facts_task, run_module


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(sizes={"type": "bool", "default": False}, test_mount={"type": "bool", "default": True}),
        supports_check_mode=True,
    )
    run_module(module, facts_task(module))


if __name__ == "__main__":
    main()
