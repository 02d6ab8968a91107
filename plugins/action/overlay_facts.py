# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""overlay_facts on the controller: run the module, then keep the homes gathered earlier in the play.

Module facts replace a top-level fact wholesale, so the module alone could only return the
home it just gathered; ``overlay_homes`` must map every home gathered in the play.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """Run overlay_facts and merge ``overlay_homes`` with the host's earlier facts."""

    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        result.update(self._execute_module(module_name="graphdriver.overlay.overlay_facts", task_vars=task_vars))
        gathered = result.get("ansible_facts", {}).get("overlay_homes")
        if gathered is not None:
            earlier = task_vars.get("ansible_facts", {}).get("overlay_homes") or {}
            merged = dict(earlier) if isinstance(earlier, dict) else {}
            merged.update(gathered)
            result["ansible_facts"]["overlay_homes"] = merged
        return result
