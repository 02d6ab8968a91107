#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: overlay_prune
short_description: Clear leftovers and remove unused layers of Docker's legacy overlay graph driver
version_added: 0.1.0
description:
  - Keeps a store healthy over the years. With O(leftovers=true) (the default) it clears what interrupted
    operations left (the V(incomplete) problems of M(graphdriver.overlay.overlay_facts)), empty C(merged/) dirs
    with no mount and no holders (V(stale_merged)), and state files for ids that have no layer (V(orphan_state)).
  - With O(layers=true) it also removes every layer that is not in use, descendants before ancestors.
  - "A layer is in use when it is listed in O(keep), has holders, has a mount at or below its dir, is an ancestor
    (parent or lower, transitively) of a layer in use, or, when O(home) is Docker's C(<data-root>/overlay), is
    named by Docker's layer store: C(<data-root>/image/overlay/layerdb/sha256/*/cache-id),
    C(layerdb/mounts/*/mount-id) and C(init-id)."
  - Entries under O(home) that are not layers (a Docker volume, a user's file) are never touched.
  - Each removal takes the layer's lock and checks again that the layer is unused. A layer that gains a holder
    or a child while the prune runs is kept and listed in RV(kept); this race is the one case where a real run
    removes less than its plan (RV(removed) shows what was removed; RV(modifications) the plan).
author:
  - graphdriver.overlay contributors (@graphdriver)
extends_documentation_fragment:
  - graphdriver.overlay.driver
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode returns the same RV(removed) list, with the bytes and inodes a real run would reclaim, and
        removes nothing.
  diff_mode:
    support: none
  platform:
    platforms: linux
options:
  keep:
    description:
      - Ids of layers to keep even when nothing holds them; their ancestors are kept with them.
      - Typically the layers the inventory says are deployed.
    type: list
    elements: str
    default: []
  layers:
    description:
      - Also remove every layer that is not in use.
      - With V(false) only leftovers are cleared (when O(leftovers=true)) and no layer is removed.
    type: bool
    default: false
  leftovers:
    description:
      - Clear leftovers of interrupted operations, empty stale C(merged/) dirs and orphan state files.
      - A layer that an interrupted change left pending is removed with its leftovers, as the next operation
        on it would do, but never while it is in use.
    type: bool
    default: true
seealso:
  - module: graphdriver.overlay.overlay_facts
    description: Lists the problems that O(leftovers=true) repairs.
  - module: graphdriver.overlay.overlay_layer
    description: Removes one layer, or a layer and its descendants.
"""

EXAMPLES = r"""
- name: Weekly maintenance of the overlay stores
  hosts: overlay_hosts
  become: true
  vars:
    # What the inventory says is deployed on each host: the layers its containers run on.
    deployed_layers: "{{ overlay_deployed | default([]) }}"
  tasks:
    - name: Gather what is wrong with the store before pruning
      graphdriver.overlay.overlay_facts:

    - name: Show the problems found
      ansible.builtin.debug:
        msg: "{{ item.id }} ({{ item.code }}): {{ item.fix }}"
      loop: "{{ ansible_facts.overlay.problems }}"
      loop_control:
        label: "{{ item.id }}"

    - name: Clear leftovers and remove every layer that nothing deployed uses
      graphdriver.overlay.overlay_prune:
        keep: "{{ deployed_layers }}"
        layers: true
      register: weekly_prune

    - name: Report what was reclaimed
      ansible.builtin.debug:
        msg: >-
          removed {{ weekly_prune.removed | length }} entries,
          {{ weekly_prune.reclaimed_bytes | human_readable }} and {{ weekly_prune.reclaimed_inodes }} inodes

- name: Only clear what interrupted runs left, removing no layer
  graphdriver.overlay.overlay_prune:

- name: See what a prune of Docker's own store would remove, without removing anything
  graphdriver.overlay.overlay_prune:
    home: /var/lib/docker/overlay
    layers: true
  check_mode: true
  register: docker_prune_plan
"""

RETURN = r"""
removed:
  description:
    - What was removed, in the order removed (in check mode, what the run would remove).
  returned: always
  type: list
  elements: dict
  sample:
    - {id: old-app, reason: unused, bytes: 524288, inodes: 41}
    - {id: killed, reason: incomplete, bytes: 4096, inodes: 3}
  contains:
    id:
      description: The layer id, or the id the leftovers or state files belong to.
      type: str
    reason:
      description:
        - V(unused) a layer not in use; V(incomplete) leftovers of an interrupted operation;
          V(stale_merged) an empty C(merged/) dir with no mount and no holders;
          V(orphan_state) state files for an id that has no layer.
      type: str
      choices: [unused, incomplete, stale_merged, orphan_state]
    bytes:
      description: Disk space (allocated blocks) freed by this removal, counted once per inode.
      type: int
    inodes:
      description: Inodes freed by this removal; an inode with a hardlink outside what is removed is not counted.
      type: int
reclaimed_bytes:
  description: The sum of RV(removed[].bytes).
  returned: always
  type: int
  sample: 528384
reclaimed_inodes:
  description: The sum of RV(removed[].inodes).
  returned: always
  type: int
  sample: 44
kept:
  description:
    - The ids of the layers in use, sorted, including a layer that gained a holder or a child while the prune ran.
  returned: always
  type: list
  elements: str
  sample: [app, base, web-1]
modifications:
  description:
    - The plan, one record per entry to clear or remove, identical in check mode and in a real run.
    - "C({op: clear_stale, id, reason}) or C({op: prune, id, reason})."
  returned: always
  type: list
  elements: dict
  sample: [{op: prune, id: old-app, reason: unused}]
elapsed:
  description: Seconds the module took.
  returned: always
  type: float
  sample: 0.42
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.graphdriver.overlay.plugins.module_utils.overlay_driver import argument_spec, prune_task, run_module


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            keep={"type": "list", "elements": "str", "default": []},
            layers={"type": "bool", "default": False},
            leftovers={"type": "bool", "default": True},
        ),
        supports_check_mode=True,
    )
    run_module(module, prune_task(module))


if __name__ == "__main__":
    main()
