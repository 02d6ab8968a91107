# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The public face of the overlay driver for the collection's modules.

Modules build their argument spec from ``argument_spec()``, get a ``Driver`` from
``driver_from_module()`` and run their work through ``run_module()``, the one place where the
driver's typed errors become ``fail_json`` messages.
"""

from __future__ import annotations

import time
import traceback

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.driver import Driver, validate_id

__all__ = ["DEFAULT_HOME", "Driver", "argument_spec", "driver_from_module", "errors", "run_module", "validate_id"]

DEFAULT_HOME = "/var/lib/graphdriver/overlay"

_ID_MAP_OPTIONS = {
    "container_id": {"type": "int", "required": True},
    "host_id": {"type": "int", "required": True},
    "size": {"type": "int", "required": True},
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


def run_module(module, work) -> None:
    """Run ``work(driver) -> dict`` and exit with its result; typed errors become fail_json.

    The result gains ``elapsed`` (seconds). An unexpected exception still fails cleanly,
    with the traceback in ``exception`` for -vvv, never as a module crash.
    """
    started = time.monotonic()
    failure = None
    try:
        driver = driver_from_module(module)
        result = work(driver)
    except errors.OverlayError as exc:
        failure = {"msg": str(exc), "error": type(exc).__name__}
    except OSError as exc:
        failure = {"msg": "%s: %s" % (exc.filename or "operating system error", exc.strerror or exc),
                   "error": "OSError", "exception": traceback.format_exc()}
    elapsed = round(time.monotonic() - started, 3)
    if failure is not None:
        # Outside the except block: ansible-core 2.19 would otherwise report every expected
        # failure as an exception during task execution.
        module.fail_json(elapsed=elapsed, **failure)
    result["elapsed"] = elapsed
    module.exit_json(**result)
