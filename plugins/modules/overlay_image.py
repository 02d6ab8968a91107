#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: overlay_image
short_description: Pull, import, commit, export and push images of Docker's legacy overlay graph driver without an engine
version_added: 1.1.0
description:
  - Brings an image into the driver's O(home) as a chain of image layers named by their OCI chain ids
    (hex, without C(sha256:)), the ids the P(graphdriver.overlay.image#role) role uses, so images that share
    base layers share them on disk. Layers whose chain id exists already are skipped.
  - With O(state=present) and O(name), the image is pulled through the OCI distribution API v2 (as Docker Hub,
    distribution and cloud registries serve it). An image index is resolved to O(platform), and every layer blob is
    verified (size and digest) while it streams into the layer apply, with no copy of the whole blob on disk.
    gzip and zstd layers are decompressed as they arrive. A blob that does not match imports nothing of its layer.
  - With O(state=present) and O(source), the image is imported from a C(docker save) archive or an OCI
    image layout (a directory or a tar) on the host.
  - With O(state=exported), the chain of O(top) is written to O(dest) as an OCI layout, an OCI archive or a
    C(docker save) archive that C(docker load), C(skopeo) and C(umoci) accept.
  - With O(state=pushed), the same image is pushed to O(name) with a HEAD for every blob, an upload of the ones
    the registry lacks, then the manifest.
  - The layer blobs of an exported or pushed image are the layers' reproducible diffs, so exporting or
    pushing twice gives the same digests and the second run reports RV(ignore:changed=false).
  - A container layer as O(top) is first committed as a new image layer made from its diff (named by the
    chain id that diff gives), so what a container changed leaves the host as an image.
author:
  - graphdriver.overlay contributors (@graphdriver)
extends_documentation_fragment:
  - graphdriver.overlay.driver
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode asks the registry (the manifest, a HEAD per blob) and reads the archive or the layers'
        diffs (written to a scratch directory that is removed), so RV(modifications) lists exactly the layers
        it would fetch, import or commit and the blobs it would upload; nothing changes in O(home),
        at O(dest) or in the registry.
  diff_mode:
    support: none
  platform:
    platforms: linux
options:
  state:
    description:
      - V(present) makes sure the image's layers exist in O(home) (pulled from O(name), or imported from O(source)).
      - V(exported) writes the image of O(top) to O(dest).
      - V(pushed) makes sure the registry holds the image of O(top) as O(name).
    type: str
    choices: [present, exported, pushed]
    default: present
  name:
    description:
      - An image reference C([registry/]repository[:tag|@digest]); the registry defaults to Docker Hub and
        the tag to C(latest).
      - With O(state=present), the image to pull; with O(source), which image of the archive to import
        (a C(RepoTags) entry or an OCI ref name).
      - Required with O(state=pushed). With O(state=exported), the name written into the image (optional).
    type: str
  source:
    description:
      - With O(state=present), an image archive on the host to import instead of pulling, a C(docker save)
        tar, an OCI archive, or either extracted into a directory. Its layers are verified before any is imported.
    type: path
  top:
    description:
      - With O(state=exported) and O(state=pushed), the layer whose chain is the image, base first by the
        recorded parents.
      - An image layer, or a container layer whose changes become a new top layer (created in O(home)).
    type: str
  dest:
    description:
      - With O(state=exported), where to write the image. Written atomically; its directory must exist.
    type: path
  format:
    description:
      - With O(state=exported), the image format. V(oci-dir) is an OCI image layout directory, V(oci-archive)
        that layout as a tar, V(docker-archive) a C(docker save) archive.
    type: str
    choices: [oci-dir, oci-archive, docker-archive]
    default: oci-dir
  container:
    description:
      - With O(state=present), the id of a container layer to create on the image's top layer (mount it with
        M(graphdriver.overlay.overlay_mount)). An existing layer with that id must be a container layer on that top.
    type: str
  platform:
    description:
      - The platform C(os/architecture[/variant]) to pull when O(name) is an image index, and the one written
        into exported and pushed images. Defaults to the host's, for example V(linux/amd64).
    type: str
  registry_username:
    description:
      - The user for the registry's basic or bearer-token authentication. Give it with O(registry_password).
    type: str
  registry_password:
    description:
      - The password or access token of O(registry_username).
    type: str
  registry_ca_path:
    description:
      - A PEM file of the CA certificates to trust for the registry's TLS certificate, besides the system's.
    type: path
  registry_insecure:
    description:
      - Talk plain HTTP to the registry. Only for a registry on a trusted network.
    type: bool
    default: false
notes:
  - Managed hosts need nothing but Python's standard library, and a C(zstd) tool for zstd layers before Python 3.14.
  - Errors name the reference or the blob (401 and 403, 404, a digest mismatch, a truncated stream); nothing of a failed layer is imported.
seealso:
  - module: graphdriver.overlay.overlay_layer
  - module: graphdriver.overlay.overlay_mount
  - module: graphdriver.overlay.overlay_image_info
  - name: OCI distribution specification
    description: The registry API this module speaks.
    link: https://github.com/opencontainers/distribution-spec/blob/main/spec.md
"""

EXAMPLES = r"""
- name: Pull an image from a private registry and create a container layer on it
  graphdriver.overlay.overlay_image:
    name: registry.example.com/team/app:1.4
    registry_username: deploy
    registry_password: "{{ vault_registry_token }}"
    registry_ca_path: /etc/pki/registry-ca.pem
    container: app-1
  register: app_image

- name: Mount the container layer
  graphdriver.overlay.overlay_mount:
    id: app-1

- name: Import an image archive copied to the host
  graphdriver.overlay.overlay_image:
    source: /srv/images/debian.tar
    name: debian:bookworm

- name: Commit what the container changed and push it as a new image
  graphdriver.overlay.overlay_image:
    state: pushed
    top: app-1
    name: registry.example.com/team/app:1.4-patched
    registry_username: deploy
    registry_password: "{{ vault_registry_token }}"

- name: Save the image for docker load
  graphdriver.overlay.overlay_image:
    state: exported
    top: "{{ app_image.layers[-1] }}"
    name: team/app:1.4
    dest: /srv/export/app.tar
    format: docker-archive
"""

RETURN = r"""
layers:
  description: The image's layer ids (chain ids of the layers in O(home)), base first; with a container O(top), the last is its commit.
  returned: success
  type: list
  elements: str
diff_ids:
  description: The digests of the layers' uncompressed tars, base first, as the image config lists them.
  returned: success
  type: list
  elements: str
manifest_digest:
  description: The digest of the image manifest (null for an imported C(docker save) archive, which has none).
  returned: success
  type: str
config_digest:
  description: The digest of the image config.
  returned: success
  type: str
bytes_transferred:
  description: Bytes read from the registry (pull), sent to it (push) or written to O(dest) (export) by this run; 0 in check mode.
  returned: success
  type: int
elapsed:
  description: Seconds the task took.
  returned: always
  type: float
dest:
  description:
    - The absolute path of the written image.
    - Because the result has a C(dest), Ansible adds its file attributes (C(state), C(mode), C(owner),
      C(group), C(uid), C(gid), C(size)) to the result, as it does for M(ansible.builtin.copy); C(state)
      there is the file type of RV(dest) (V(file) or V(directory)), not the O(state) option.
  returned: O(state=exported)
  type: str
format:
  description: The format of the written image.
  returned: O(state=exported)
  type: str
name:
  description: The image reference, normalised (registry and tag filled in).
  returned: when O(name) is given
  type: str
container:
  description: The id of the container layer on top of the image.
  returned: O(state=present) with O(container)
  type: str
modifications:
  description: The operations of the run (or of the plan, in check mode), in order.
  returned: success
  type: list
  elements: dict
  contains:
    op:
      description: V(fetch), V(import), V(commit), V(create), V(write_image), V(push_blob) or V(push_manifest).
      type: str
    id:
      description: The layer id; for V(push_blob) the layer (or V(config)) the blob belongs to; for V(push_manifest) the reference.
      type: str
    parent:
      description: The parent layer of a layer created.
      type: str
    digest:
      description: The blob digest (V(fetch), V(push_blob)), diff_id (V(import), V(commit)) or manifest digest (V(push_manifest)).
      type: str
  sample:
    - {op: fetch, id: 3f1c0e2d, parent: null, digest: "sha256:9a0b..."}
    - {op: create, id: app-1, parent: 3f1c0e2d, diff: null}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.graphdriver.overlay.plugins.module_utils.overlay_driver import argument_spec, image_task, run_module


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            state={"type": "str", "choices": ["present", "exported", "pushed"], "default": "present"},
            name={"type": "str"},
            source={"type": "path"},
            top={"type": "str"},
            dest={"type": "path"},
            format={"type": "str", "choices": ["oci-dir", "oci-archive", "docker-archive"], "default": "oci-dir"},
            container={"type": "str"},
            platform={"type": "str"},
            registry_username={"type": "str"},
            registry_password={"type": "str", "no_log": True},
            registry_ca_path={"type": "path"},
            registry_insecure={"type": "bool", "default": False},
        ),
        required_if=[("state", "exported", ("top", "dest")), ("state", "pushed", ("top", "name"))],
        required_together=[("registry_username", "registry_password")],
        supports_check_mode=True,
    )
    run_module(module, image_task(module))


if __name__ == "__main__":
    main()
