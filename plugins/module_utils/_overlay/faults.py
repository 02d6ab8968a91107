# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A test-only kill switch for crash tests.

With ``GRAPHDRIVER_OVERLAY_KILL_AT=<point>:<n>`` in the environment, the process sends
itself SIGKILL the n-th time it passes ``checkpoint(<point>)``. Crash tests sweep n over
every step of an operation and then check that the store is still consistent. Without the
variable a checkpoint costs one comparison.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "GRAPHDRIVER_OVERLAY_KILL_AT"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value or ":" not in value:
        return None
    point, count = value.rsplit(":", 1)
    try:
        return point, int(count)
    except ValueError:
        return None


_target = _parse(os.environ.get(ENV_VAR))
_seen: dict[str, int] = {}


def checkpoint(point: str) -> None:
    """Mark one step of an operation; kills the process when the armed step is reached."""
    if _target is None or _target[0] != point:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] >= _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
