# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The operations a plan stages, in btrfs_subvolume's shape: small records, carried out by the driver.

A planner reads the state once, decides, and returns a list of these; check mode reports that
list, a real run carries it out (``execute``) and reports the same list. Nothing here decides:
every rule lives in the planner or in the driver functions it calls.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Operation:
    """One staged change to one layer."""

    id: str

    op = ""

    def as_dict(self) -> dict:
        """The record as ``modifications`` lists it: ``{"op": ..., "id": ..., ...}``."""
        found = {"op": self.op}
        for key, value in dataclasses.asdict(self).items():
            found[key] = list(value) if isinstance(value, tuple) else value
        return found


@dataclasses.dataclass(frozen=True)
class ClearLeftovers(Operation):
    """Clear what an interrupted operation left for the id (a pending layer goes with it)."""

    op = "clear_leftovers"


@dataclasses.dataclass(frozen=True)
class CreateLayer(Operation):
    """Docker's Create on ``parent``, then ApplyDiff of ``diff`` when given."""

    parent: str | None = None
    diff: str | None = None

    op = "create"


@dataclasses.dataclass(frozen=True)
class RemoveLayer(Operation):
    """Remove the layer; with ``force``, whatever holds it or depends on it. ``reason`` says why when replacing."""

    force: bool = False
    reason: str | None = None

    op = "remove"


@dataclasses.dataclass(frozen=True)
class ExportDiff(Operation):
    """Write the layer's diff against ``parent`` (the whole tree without one) to ``dest``."""

    parent: str | None = None
    dest: str = ""

    op = "export"


@dataclasses.dataclass(frozen=True)
class AddHolder(Operation):
    """Persist ``holder`` among the layer's holders."""

    holder: str = ""

    op = "add_holder"


@dataclasses.dataclass(frozen=True)
class Mount(Operation):
    """Mount the layer's overlay on ``path``."""

    path: str = ""

    op = "mount"


@dataclasses.dataclass(frozen=True)
class DropHolders(Operation):
    """Forget ``holders``."""

    holders: tuple = ()

    op = "drop_holders"


@dataclasses.dataclass(frozen=True)
class Unmount(Operation):
    """Unmount the overlay on ``path`` (lazily) and remove the dir."""

    path: str = ""

    op = "unmount"


@dataclasses.dataclass(frozen=True)
class Remount(Operation):
    """Replace the overlay on ``path``, whose dirs are not the layer's (``differences``), by the layer's own."""

    path: str = ""
    differences: tuple = ()

    op = "remount"


@dataclasses.dataclass(frozen=True)
class InstallUnit(Operation):
    """Write and enable the systemd mount ``unit`` that mounts the layer at boot."""

    unit: str = ""

    op = "install_unit"


@dataclasses.dataclass(frozen=True)
class RemoveUnit(Operation):
    """Disable and remove the systemd mount ``unit``, before the last holder's unmount."""

    unit: str = ""

    op = "remove_unit"


@dataclasses.dataclass(frozen=True)
class FetchLayer(Operation):
    """Create the image layer (a chain id) on ``parent`` from the registry blob ``digest``, streamed and verified."""

    parent: str | None = None
    digest: str = ""

    op = "fetch"


@dataclasses.dataclass(frozen=True)
class ImportLayer(Operation):
    """Create the image layer (a chain id) on ``parent`` from the archive's layer whose diff_id is ``digest``."""

    parent: str | None = None
    digest: str = ""

    op = "import"


@dataclasses.dataclass(frozen=True)
class CommitLayer(Operation):
    """Create the image layer (a chain id) on ``parent`` from the reproducible diff ``digest`` of ``container``."""

    parent: str | None = None
    container: str = ""
    digest: str = ""

    op = "commit"


@dataclasses.dataclass(frozen=True)
class WriteImage(Operation):
    """Write the image whose top layer is the id to ``dest`` in ``format``."""

    dest: str = ""
    format: str = ""
    manifest_digest: str = ""

    op = "write_image"


@dataclasses.dataclass(frozen=True)
class PushBlob(Operation):
    """Upload the blob ``digest`` (``size`` bytes) of the layer (or ``config``) that the registry lacks."""

    digest: str = ""
    size: int = 0

    op = "push_blob"


@dataclasses.dataclass(frozen=True)
class PushManifest(Operation):
    """Store the manifest ``digest`` under the reference that is the id."""

    digest: str = ""

    op = "push_manifest"


@dataclasses.dataclass(frozen=True)
class ClearStale(Operation):
    """Prune's clearing of what no operation is using: leftovers (``incomplete``), an empty ``stale_merged`` dir, ``orphan_state``."""

    reason: str = ""

    op = "clear_stale"


@dataclasses.dataclass(frozen=True)
class PruneLayer(Operation):
    """Remove a layer that prune found unused; refused under the lock if it gained a holder or a child since."""

    reason: str = "unused"

    op = "prune"


def render(plan: list) -> list[dict]:
    """The plan as ``modifications``."""
    return [operation.as_dict() for operation in plan]
