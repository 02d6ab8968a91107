# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Platforms the way image indexes name them (``linux/arm64/v8``), matched as Docker's platform matcher does."""

from __future__ import annotations

import platform as platform_mod

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.registryhttp import NotFound

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}
# Variants that Docker's platform matcher treats as the default when none is written.
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


def host_platform() -> str:
    """This machine's platform the way image indexes name it: ``linux/amd64``, ``linux/arm/v7``."""
    machine = platform_mod.machine()
    arch = _GO_ARCH.get(machine, machine)
    if arch == "arm":
        return "linux/arm/" + ("v6" if machine == "armv6l" else "v7")
    return "linux/" + arch


def parse_platform(text: str) -> tuple:
    """``(os, architecture, variant)`` of ``os/arch[/variant]``, the variant normalised as Docker's matcher does."""
    parts = text.split("/") if isinstance(text, str) else []
    if len(parts) not in (2, 3) or not all(parts):
        raise errors.InvalidArgument("platform %r is invalid: give os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8"
                                     % (text,))
    return _normal_platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def _normal_platform(os_name: str, arch: str, variant: str) -> tuple:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    if arch == "amd64" and variant == "v1":
        variant = ""
    return os_name, arch, variant or _DEFAULT_VARIANT.get(arch, "")


def select_platform(index: dict, wanted: str, where: str) -> dict:
    """The descriptor of an image index for the platform ``wanted`` (``linux/arm64``); NotFound lists what there is."""
    target = parse_platform(wanted)
    offered = []
    for entry in index.get("manifests") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("platform"), dict):
            continue
        found = entry["platform"]
        if (entry.get("annotations") or {}).get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        key = _normal_platform(str(found.get("os", "")), str(found.get("architecture", "")), str(found.get("variant", "")))
        if key == target:
            return entry
        offered.append("/".join(part for part in key if part))
    raise NotFound("%s has no image for the platform %s; it offers %s" % (where, wanted, ", ".join(offered) or "none"))
