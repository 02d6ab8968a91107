# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The public face of the overlay driver for the collection's modules.

Modules build their argument spec from ``argument_spec()`` and run their work through
``run_module()`` with one of the task functions here (``layer_task``, ``mount_task``, ``prune_task``,
``facts_task``, ``image_info_task``). ``run_module`` is the one place where the driver's typed
errors become ``fail_json``: the failure result carries the error's fields (``path``,
``layer_id``, ``fix``) under ``details``, and the fix is worded in terms of the modules' options.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, imagearchive
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.driver import Driver, validate_id
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.imageplan import ImageTask
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.layerplan import LayerTask
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.mountplan import MountTask
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.pruneplan import PruneTask

__all__ = [
    "DEFAULT_HOME", "Driver", "argument_spec", "describe", "driver_from_module", "errors", "facts_task", "image_info_task",
    "image_task", "layer_task", "mount_task", "prune_task", "run_module", "validate_id",
]

DEFAULT_HOME = "/var/lib/graphdriver/overlay"

_ID_MAP_OPTIONS = {
    "container_id": {"type": "int", "required": True},
    "host_id": {"type": "int", "required": True},
    "size": {"type": "int", "required": True},
}

# The driver's generic fixes, in the words of the modules' options.
MODULE_FIXES = {
    errors.FIX_RECREATE: "remove it with overlay_layer state=absent force=true and recreate it",
    errors.FIX_REPLACE: "set force: true to remove and recreate it",
    errors.FIX_RELEASE: "unmount it first (overlay_mount state=unmounted for each holder) or set force: true",
    errors.FIX_DEPENDENTS: "remove the dependent layers first or set force: true",
}


def argument_spec(**module_options) -> dict:
    """The shared options (home, driver_options, uid_maps, gid_maps) plus the module's own."""
    spec = {
        "home": {"type": "path", "default": DEFAULT_HOME},
        "driver_options": {"type": "list", "elements": "str", "default": []},
        "uid_maps": {"type": "list", "elements": "dict", "default": [], "options": _ID_MAP_OPTIONS},
        "gid_maps": {"type": "list", "elements": "dict", "default": [], "options": _ID_MAP_OPTIONS},
    }
    spec.update(module_options)
    return spec


def driver_from_module(module) -> Driver:
    """A Driver for the module's shared options; its warnings go to the module."""
    params = module.params
    return Driver(params["home"], params["driver_options"], params["uid_maps"], params["gid_maps"], warn=module.warn)


def layer_task(module):
    """overlay_layer's work for ``run_module``."""
    return lambda driver: LayerTask(driver, module.params).run(module.check_mode, module._diff)  # pylint: disable=protected-access


def mount_task(module):
    """overlay_mount's work for ``run_module``."""
    return lambda driver: MountTask(driver, module.params).run(module.check_mode, module._diff)  # pylint: disable=protected-access


def image_task(module):
    """overlay_image's work for ``run_module``."""
    return lambda driver: ImageTask(driver, module.params).run(module.check_mode)


def prune_task(module):
    """overlay_prune's work for ``run_module``."""
    return lambda driver: PruneTask(driver, module.params).run(module.check_mode)


def facts_task(module):
    """overlay_facts' work for ``run_module``: read-only, even in a missing or empty home.

    Check mode loads no kernel module and makes no probe mount: users run facts in check
    mode expecting the host to stay exactly as it was.
    """
    def work(driver):
        params = module.params
        found = driver.facts(sizes=bool(params.get("sizes")), test_mount=params.get("test_mount", True) and not module.check_mode,
                             load_module=not module.check_mode)
        # The action plugin merges overlay_homes with the homes gathered earlier in the play.
        return {"changed": False, "ansible_facts": {"overlay": found, "overlay_homes": {found["home"]: found}}}
    return work


def image_info(path: str, image: str | None) -> dict:
    """overlay_image_info's work: the verified image and its layers; needs no driver home."""
    if os.path.isfile(path):
        found = imagearchive.read_image_file(path, image)
    else:
        found = imagearchive.read_image(path, image)
    return {"changed": False, "image": found.info(), "layers": [dataclasses.asdict(layer) for layer in found.layers]}


def image_info_task(module):
    """overlay_image_info's work for ``run_module(..., needs_driver=False)``."""
    return lambda _driver: image_info(module.params["path"], module.params["image"])


def require_root(module) -> None:
    """Refuse to run without root, before anything is read or created: the driver needs mount(2) and root-owned homes."""
    uid = os.geteuid()
    if uid != 0:
        raise errors.NotSupported("%s must be run as root (it runs as uid %d): use become: true on the task or the play" % (
            getattr(module, "_name", "this module"), uid))


def describe(exc: errors.OverlayError) -> str:
    """The failure message: the driver's message, with its fix worded for the modules."""
    if exc.fix is None:
        return exc.message
    return "%s; %s" % (exc.message, MODULE_FIXES.get(exc.fix, errors.GENERIC_FIXES[exc.fix]))


def run_module(module, work, needs_driver: bool = True) -> None:
    """Run ``work(driver) -> dict`` and exit with its result; typed errors become fail_json.

    The result gains ``elapsed`` (seconds). An unexpected OSError still fails cleanly,
    with the traceback in ``exception`` for -vvv, never as a module crash.
    """
    started = time.monotonic()
    failure = None
    try:
        require_root(module)
        driver = driver_from_module(module) if needs_driver else None
        result = work(driver)
    except errors.OverlayError as exc:
        failure = {"msg": describe(exc), "error": type(exc).__name__}
        if exc.fields():
            # Not at the top level: a result's "path" makes Ansible add that file's attributes.
            failure["details"] = exc.fields()
    except OSError as exc:
        failure = {"msg": "%s: %s" % (exc.filename or "operating system error", exc.strerror or exc),
                   "error": "OSError", "exception": traceback.format_exc()}
        if exc.filename:
            failure["details"] = {"path": exc.filename}
    elapsed = round(time.monotonic() - started, 3)
    if failure is not None:
        # Outside the except block: ansible-core 2.19 would otherwise report every expected
        # failure as an exception during task execution.
        module.fail_json(elapsed=elapsed, **failure)
    result["elapsed"] = elapsed
    module.exit_json(**result)
