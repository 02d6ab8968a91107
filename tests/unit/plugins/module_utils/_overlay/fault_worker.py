# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One driver operation in a process of its own, for the crash and concurrency tests.

``python fault_worker.py <home> <operation> <json arguments>`` with ``PYTHONPATH`` set to the
parent of ``ansible_collections/``. The worker writes ``ready`` on stdout once imported (timed
kills measure their delay from there), runs the operation, and writes one JSON line: the result
and how many times each fault checkpoint was passed (the crash sweeps size themselves on it).
``GRAPHDRIVER_OVERLAY_KILL_AT`` arms the kill as usual. An ``OverlayError`` exits 3 with its
message on stderr; anything else is a crash with a traceback (exit 1).

``churn`` is the concurrency workload: a seeded random sequence of create, mount, unmount and
remove on a shared set of ids, with expected refusals counted by error type.
"""

from __future__ import annotations

import json
import random
import sys
import time

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, faults

SEEN: dict[str, int] = {}


def _counting(original):
    def checkpoint(point: str) -> None:
        SEEN[point] = SEEN.get(point, 0) + 1
        original(point)
    return checkpoint


def _apply(driver, layer_id: str, parent, diff: str):
    with open(diff, "rb") as stream:
        return driver.apply_diff(layer_id, parent, stream)


OPERATIONS = {
    "create": lambda d, a: d.create(a["id"], a.get("parent"), diff_path=a.get("diff")),
    "apply": lambda d, a: _apply(d, a["id"], a.get("parent"), a["diff"]),
    "remove": lambda d, a: d.remove(a["id"], a.get("force", True)),
    "mount": lambda d, a: d.mount(a["id"], a.get("holder", "ansible")),
    "unmount": lambda d, a: d.unmount(a["id"], a.get("holder", "ansible"), a.get("force", False)),
}


def churn(driver, args: dict) -> dict:
    """Seeded random operations on shared ids until ``ops`` are done or ``seconds`` ran out.

    Returns the count of each outcome and the layers this worker believes it holds, which the
    test compares with the holders persisted on disk.
    """
    rng = random.Random(args["seed"])
    holder = args["holder"]
    images, containers = args["images"], args["containers"]
    outcomes: dict[str, int] = {}
    held: set[str] = set()
    done = 0
    deadline = time.monotonic() + args["seconds"]
    actions = [
        (0.15, "create-image", lambda image, _container: driver.create(image, None, diff_path=args["diff"])),
        (0.40, "create-container", lambda image, container: driver.create(container, image)),
        (0.65, "mount", lambda _image, container: driver.mount(container, holder)),
        (0.85, "unmount", lambda _image, container: driver.unmount(container, holder)),
        (0.95, "remove-container", lambda _image, container: driver.remove(container, force=False)),
        (1.00, "remove-image", lambda image, _container: driver.remove(image, force=False)),
    ]
    while done < args["ops"] and time.monotonic() < deadline:
        choice = rng.random()
        image, container = rng.choice(images), rng.choice(containers)
        name, action = next((name, action) for bound, name, action in actions if choice < bound)
        try:
            action(image, container)
            outcome = name + ":ok"
            if name == "mount":
                held.add(container)
            elif name == "unmount":
                held.discard(container)
        except errors.OverlayError as exc:
            outcome = "%s:%s" % (name, type(exc).__name__)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        done += 1
    return {"ops": done, "outcomes": outcomes, "held": sorted(held)}


def main(argv) -> int:
    home, operation, args = argv[1], argv[2], json.loads(argv[3])
    faults.checkpoint = _counting(faults.checkpoint)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    driver = driver_mod.Driver(home)
    try:
        result = churn(driver, args) if operation == "churn" else OPERATIONS[operation](driver, args)
    except errors.OverlayError as exc:
        sys.stderr.write("%s: %s\n" % (type(exc).__name__, exc))
        return 3
    sys.stdout.write(json.dumps({"result": result, "seen": SEEN}, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
