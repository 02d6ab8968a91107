#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: overlay_image_info
short_description: Read and verify an image archive, and list its layers with their chain ids
version_added: 0.1.0
description:
  - Reads an image archive on the managed host, extracted into a directory or as the archive tar
    itself, in the C(docker save) format (C(manifest.json), the image config, one tar per layer) or as an OCI image layout
    (C(oci-layout), C(index.json), C(blobs/sha256/)), and selects one image of it.
  - Verifies the whole image before returning anything, so that nothing is imported from a corrupt
    archive. Each OCI blob must have the size and digest its descriptor gives, and the sha256 of each
    layer's uncompressed tar must be the image config's C(diff_id). A truncated layer fails too.
    A failure names the layer by its position (C(layer 2 of 3)), its RV(layers[].index) (counted from
    V(0), the base), its C(diff_id) and its path.
  - Layers may be plain tars or compressed with gzip or zstd (zstd needs the C(zstd) tool on the host,
    or Python 3.14).
  - Returns each layer's OCI chain id, in hex without C(sha256:), the id that M(graphdriver.overlay.overlay_layer)
    gives the layer. Images that share base layers share their chain ids, so they share those layers on disk.
  - Reads only; changes nothing.
author:
  - graphdriver.overlay contributors (@graphdriver)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: linux
options:
  path:
    description:
      - The directory that holds the extracted archive, or the archive tar itself (plain or compressed), on
        the managed host.
      - A tar is extracted into a scratch directory under the system's temporary directory (it needs as
        much free space as the archive), read, and removed again; the layers' RV(layers[].path) are then
        the names of their tars inside the archive.
      - When it holds both a C(manifest.json) and an OCI layout (as C(docker save) writes since
        Docker 25), C(manifest.json) is read, as C(docker load) does.
    type: path
    required: true
  image:
    description:
      - Which image of a multi-image archive to read, by name or by position.
      - A name matches a C(RepoTags) entry of C(manifest.json) or the C(org.opencontainers.image.ref.name)
        (or C(io.containerd.image.name)) annotation of C(index.json); a missing tag means C(latest)
        and C(docker.io/library/) is implied, as in Docker references.
      - Digits are a position in the archive, starting at V(0).
      - When left out, the first image is read.
      - Where an OCI index entry is itself an index (one manifest per platform), the manifest for the
        host's architecture is read, else the first that is not an attestation.
    type: str
notes:
  - Needs Python 3.9 or newer with its standard library only on the managed host.
  - To import the layers of an archive tar, extract it first (the C(graphdriver.overlay.image) role does)
    or use M(graphdriver.overlay.overlay_image) with O(graphdriver.overlay.overlay_image#module:source).
seealso:
  - module: graphdriver.overlay.overlay_layer
  - module: graphdriver.overlay.overlay_facts
  - name: OCI image layout and chain ids
    description: The OCI image specification.
    link: https://github.com/opencontainers/image-spec/blob/main/config.md#layer-chainid
"""

EXAMPLES = r"""
- name: Read the first image of an archive extracted into /srv/images/app
  graphdriver.overlay.overlay_image_info:
    path: /srv/images/app
  register: app_image

- name: Import its layers, base first, each on top of the previous one
  graphdriver.overlay.overlay_layer:
    id: "{{ item.chain_id }}"
    parent: "{{ app_image.layers[item.index - 1].chain_id if item.index > 0 else omit }}"
    diff: "{{ item.path }}"
  loop: "{{ app_image.layers }}"
  loop_control:
    label: "{{ item.chain_id[:12] }}"

- name: Read one named image of a multi-image archive
  graphdriver.overlay.overlay_image_info:
    path: /srv/images/bundle
    image: registry.example.com/web:2.1
  register: web_image

- name: Show the chain ids of its layers, base first
  ansible.builtin.debug:
    msg: "{{ web_image.layers | map(attribute='chain_id') | list }}"

- name: Check a docker save tar as it was copied to the host, without extracting it by hand
  graphdriver.overlay.overlay_image_info:
    path: /srv/images/app.tar
  register: app_tar
"""

RETURN = r"""
image:
  description: The image that was read.
  returned: success
  type: dict
  contains:
    format:
      description: V(docker-save) or V(oci).
      type: str
      sample: docker-save
    index:
      description: The image's position in the archive, from V(0).
      type: int
      sample: 0
    count:
      description: How many images the archive lists.
      type: int
      sample: 1
    name:
      description: The image's first name (tag or ref name annotation), or V(null) when it has none.
      type: str
      sample: example/app:1.0
    names:
      description: All of the image's names.
      type: list
      elements: str
      sample: [example/app:1.0]
    config_digest:
      description: C(sha256:<hex>) of the image config, Docker's image id.
      type: str
      sample: sha256:45e2103dc56fd6fa4b460cb2b5cac6c10cdd27623951c01e791d55e86a5571bf
    architecture:
      description: The architecture the image config gives, or V(null).
      type: str
      sample: amd64
    os:
      description: The operating system the image config gives, or V(null).
      type: str
      sample: linux
layers:
  description: The image's layers, base first, each verified.
  returned: success
  type: list
  elements: dict
  contains:
    index:
      description: The layer's position, from V(0) for the base layer.
      type: int
      sample: 0
    diff_id:
      description: C(sha256:<hex>) of the layer's uncompressed tar, from the image config (and checked).
      type: str
      sample: sha256:f6deee8152ab788dbb285e5a7fee00526477ec3af3e1285caf91eb764ec7975d
    chain_id:
      description:
        - The layer's OCI chain id in hex, without C(sha256:), the layer id to give M(graphdriver.overlay.overlay_layer).
        - A base layer's chain id is its C(diff_id).
      type: str
      sample: f6deee8152ab788dbb285e5a7fee00526477ec3af3e1285caf91eb764ec7975d
    path:
      description:
        - The layer's tar (or blob) inside O(path), to give to M(graphdriver.overlay.overlay_layer) as C(diff).
        - When O(path) is an archive tar, the name of that tar inside the archive.
      type: str
      sample: /srv/images/app/b9e5378bec032dc9bdb153e7bada24df0767fa8187dff4eaae2fb817f90748d3/layer.tar
    compression:
      description: The layer file's compression, from its magic bytes; V(none), V(gzip), V(bzip2), V(xz) or V(zstd).
      type: str
      sample: gzip
    size:
      description: The size of the layer file in bytes, compressed as it is stored.
      type: int
      sample: 20480
    media_type:
      description: The layer's media type in an OCI manifest; V(null) in a C(docker save) archive.
      type: str
      sample: application/vnd.oci.image.layer.v1.tar+gzip
elapsed:
  description: Seconds the module took, verification (and the extraction of an archive tar) included.
  returned: always
  type: float
  sample: 0.84
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.graphdriver.overlay.plugins.module_utils.overlay_driver import image_info_task, run_module


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "image": {"type": "str"},
        },
        supports_check_mode=True,
    )
    run_module(module, image_info_task(module), needs_driver=False)


if __name__ == "__main__":
    main()
