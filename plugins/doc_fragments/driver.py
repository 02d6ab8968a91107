# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Options shared by every module of graphdriver.overlay."""

    DOCUMENTATION = r"""
options:
  home:
    description:
      - The driver's home, Docker's C(<data-root>/overlay).
      - Pointing it at an existing Docker C(overlay) home works; its layers are read and managed as they are.
      - The driver keeps its own state (locks, holders, layer records) in C(<home>/.graphdriver/).
    type: path
    default: /var/lib/graphdriver/overlay
  driver_options:
    description:
      - Driver options as C(key=value) strings, as Docker's C(--storage-opt) for the daemon.
      - "The overlay driver accepts none: any key fails with C(overlay: unknown option <key>) and an item
        without C(=) fails with C(Unable to parse key/value option: <item>)."
    type: list
    elements: str
    default: []
  uid_maps:
    description:
      - User namespace remapping of user ids, as Docker's C(--userns-remap).
      - Dirs the driver creates belong to the remapped root; ownership in applied diffs is shifted
        container to host, and back host to container in exported diffs.
    type: list
    elements: dict
    default: []
    suboptions:
      container_id:
        description: First id inside the container.
        type: int
        required: true
      host_id:
        description: The host id that O(uid_maps[].container_id) maps to.
        type: int
        required: true
      size:
        description: How many consecutive ids the entry maps.
        type: int
        required: true
  gid_maps:
    description:
      - User namespace remapping of group ids; see O(uid_maps).
    type: list
    elements: dict
    default: []
    suboptions:
      container_id:
        description: First id inside the container.
        type: int
        required: true
      host_id:
        description: The host id that O(gid_maps[].container_id) maps to.
        type: int
        required: true
      size:
        description: How many consecutive ids the entry maps.
        type: int
        required: true
requirements:
  - "Root on the managed host (C(become: true) for a remote user)"
  - A Linux kernel with overlayfs (the C(overlay) module, loaded on demand), and a home on a backing
    filesystem that supports d_type and is none of aufs, btrfs, ecryptfs, nfs, overlay or zfs
  - Python 3.9 or newer on the managed host, with its standard library only
  - For zstd diffs only, the C(zstd) tool on the managed host or Python 3.14's C(compression.zstd)
notes:
  - Layer ids and holder names match C(^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$); anything else fails before the disk is touched.
"""

    # For modules that only read image archives: they take none of the driver's options and
    # need no overlayfs, so they extend graphdriver.overlay.driver.image_archive instead.
    # Ansible refuses a fragment without options, hence the empty mapping.
    IMAGE_ARCHIVE = r"""
options: {}
requirements:
  - Python 3.9 or newer on the managed host, with its standard library only
  - For zstd layers only, the C(zstd) tool on the managed host or Python 3.14's C(compression.zstd)
"""
