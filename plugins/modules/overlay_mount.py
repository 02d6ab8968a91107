#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: overlay_mount
short_description: Mount and unmount container layers of Docker's legacy overlay graph driver
version_added: 0.1.0
description:
  - Mounts a container layer's overlay on C(<home>/<id>/merged) for a named O(holder), and unmounts it
    when the last holder lets go, as Docker's Get and Put do.
  - Each holder is one reference. The holders are kept on disk under O(home), so separate processes and
    separate runs agree on the refcount, and the kernel's mount table always wins over the stored state
    (a layer held on disk but not mounted, after a reboot say, is mounted again).
  - An image layer needs no mount; its path is its root.
  - With O(persist=true), the mount is also written as a systemd mount unit for the merged dir, enabled for
    C(local-fs.target), so the layer is mounted again at boot before any task runs. The last holder out (or
    O(force=true)) disables and removes the unit before it unmounts.
  - A live overlay on the merged dir whose C(lowerdir), C(upperdir) or C(workdir) is not the layer's (mounted by hand,
    say) is replaced by the layer's own mount.
author:
  - graphdriver.overlay contributors (@graphdriver)
extends_documentation_fragment:
  - graphdriver.overlay.driver
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - Returns C(mounted), C(holders), C(unit) (the mount unit's name when its file exists) and C(unit_text)
        (the unit file's text, or V(null)) before and after the run.
      - When a drifted mount is remounted, C(overlay) holds the differing options, the live values before and the
        layer's after.
  platform:
    platforms: linux
options:
  id:
    description:
      - The id of the layer to mount, normally a container layer made by M(graphdriver.overlay.overlay_layer).
    type: str
    required: true
  state:
    description:
      - V(mounted) adds O(holder) and mounts the overlay if it is not mounted.
      - V(unmounted) drops O(holder); the last holder out unmounts the overlay (lazily) and removes C(merged).
    type: str
    choices: [mounted, unmounted]
    default: mounted
  holder:
    description:
      - Who holds the mount, for example a service or a playbook name. One holder counts once however often
        it mounts.
      - Must match C(^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$).
    type: str
    default: ansible
  mount_label:
    description:
      - An SELinux context for the mount, passed as C(context="<label>").
      - Ignored, with a warning, on a host without SELinux.
    type: str
  force:
    description:
      - With O(state=unmounted), drop every holder and unmount, whoever holds the layer (and remove its mount unit).
    type: bool
    default: false
  persist:
    description:
      - With O(state=mounted), also write the mount as a systemd mount unit in C(/etc/systemd/system), named as
        C(systemd-escape --path --suffix=mount) names the merged dir, with C(What=overlay), C(Type=overlay) and
        the live mount's options, and enable it for C(local-fs.target).
      - The unit file is written atomically; C(systemctl daemon-reload) and C(systemctl enable) run only when it
        changed.
      - On a host whose init is not systemd this fails with a clear message and mounts nothing. So does a home whose
        path a unit file or mount(8) cannot carry (a C(,), C(:), C(") or C(\) in it).
      - V(false) leaves an existing unit alone; the last holder out removes it whatever this option says.
    type: bool
    default: false
notes:
  - O(state=mounted) on a missing layer fails with C(layer <id> does not exist); O(state=unmounted) on a missing
    layer reports RV(ignore:changed=false).
  - A container layer whose lower layer was removed fails to mount with a message naming the missing layer.
seealso:
  - module: graphdriver.overlay.overlay_layer
  - module: graphdriver.overlay.overlay_facts
"""

EXAMPLES = r"""
- name: Create a container layer on an image layer
  graphdriver.overlay.overlay_layer:
    id: web-1
    parent: app

- name: Mount it for the web service
  graphdriver.overlay.overlay_mount:
    id: web-1
    holder: web
  register: web_1

- name: Use the merged root filesystem
  ansible.builtin.command:
    cmd: chroot {{ web_1.path }} /usr/bin/env
  changed_when: false

- name: Mount it for the web service and keep it mounted across reboots
  graphdriver.overlay.overlay_mount:
    id: web-1
    holder: web
    persist: true
  register: web_1_persisted

- name: Show the systemd mount unit that mounts it at boot
  ansible.builtin.debug:
    msg: "{{ web_1_persisted.unit }} mounts {{ web_1_persisted.path }} at boot"

- name: Let the backup job hold it too, so it stays mounted until both let go
  graphdriver.overlay.overlay_mount:
    id: web-1
    holder: backup

- name: Release the web service's hold
  graphdriver.overlay.overlay_mount:
    id: web-1
    holder: web
    state: unmounted

- name: Unmount it whoever still holds it
  graphdriver.overlay.overlay_mount:
    id: web-1
    state: unmounted
    force: true
"""

RETURN = r"""
path:
  description:
    - The merged dir of a container layer, or the root of an image layer.
    - Because the result has a C(path), Ansible adds that directory's file attributes to it (RV(state),
      RV(mode), RV(owner), RV(group), RV(uid), RV(gid), RV(size)), as it does for M(ansible.builtin.file).
      They describe the directory, not the layer; the module keeps C(path) because the collection's
      contract names it, and reports the layer's own state in RV(mounted), RV(holders) and RV(refcount).
  returned: always
  type: str
  sample: /var/lib/graphdriver/overlay/web-1/merged
state:
  description:
    - Added by Ansible, not by the module - the file type of RV(path) (V(directory)) when it exists.
    - It is not the O(state) option; after O(state=unmounted) the merged dir is gone and this key is absent.
  returned: when RV(path) exists
  type: str
  sample: directory
mode:
  description: Added by Ansible - the permission bits of RV(path), in octal.
  returned: when RV(path) exists
  type: str
  sample: "0755"
owner:
  description: Added by Ansible - the owner of RV(path).
  returned: when RV(path) exists
  type: str
  sample: root
group:
  description: Added by Ansible - the group of RV(path).
  returned: when RV(path) exists
  type: str
  sample: root
uid:
  description: Added by Ansible - the owner's uid of RV(path).
  returned: when RV(path) exists
  type: int
  sample: 0
gid:
  description: Added by Ansible - the group's gid of RV(path).
  returned: when RV(path) exists
  type: int
  sample: 0
size:
  description: Added by Ansible - the size of the directory entry RV(path) in bytes, not the size of the layer.
  returned: when RV(path) exists
  type: int
  sample: 4096
mounted:
  description: Whether the kernel has the overlay mounted on RV(path) after the run; always V(false) for an image layer.
  returned: always
  type: bool
  sample: true
holders:
  description: The holders of the layer after the run, sorted.
  returned: always
  type: list
  elements: str
  sample: [ansible, web]
refcount:
  description: The number of holders.
  returned: always
  type: int
  sample: 2
unit:
  description:
    - The name of the layer's systemd mount unit when its file exists after the run (written by O(persist=true)),
      else V(null).
  returned: always
  type: str
  sample: var-lib-graphdriver-overlay-web\x2d1-merged.mount
kind:
  description: V(image) or V(container); V(null) when the layer does not exist.
  returned: always
  type: str
  sample: container
modifications:
  description:
    - The operations the run carried out, in order; in check mode the same list, the plan that a real run
      from the same state carries out.
    - Each is a dict with C(op) and C(id) and the operation's own keys, C(op) one of V(add_holder) (C(holder)),
      V(mount) (C(path)), V(remount) (C(path), and C(differences), a list of C(option), C(live) and C(expected)),
      V(install_unit) (C(unit)), V(remove_unit) (C(unit)), V(drop_holders) (C(holders)) or V(unmount) (C(path)).
  returned: always
  type: list
  elements: dict
  sample: [{"op": "add_holder", "id": "web-1", "holder": "web"}, {"op": "mount", "id": "web-1", "path": "/var/lib/graphdriver/overlay/web-1/merged"}]
elapsed:
  description: Seconds the module took.
  returned: always
  type: float
  sample: 0.012
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.graphdriver.overlay.plugins.module_utils.overlay_driver import argument_spec, mount_task, run_module


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            id={"type": "str", "required": True},
            state={"type": "str", "choices": ["mounted", "unmounted"], "default": "mounted"},
            holder={"type": "str", "default": "ansible"},
            mount_label={"type": "str"},
            force={"type": "bool", "default": False},
            persist={"type": "bool", "default": False},
        ),
        supports_check_mode=True,
    )
    run_module(module, mount_task(module))


if __name__ == "__main__":
    main()
