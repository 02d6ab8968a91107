# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the VM holds right after reboot.yml, before any task ran (testinfra).

With ``gdo_persist`` true (converge mounted the container layer with ``persist: true``), the
overlay is back at ``merged/``, mounted by its systemd unit at boot, with the file written
before the reboot, and facts report no ``held_not_mounted`` problem. With it false
(overlay_mount without persist, all the module offers until ``persist`` lands), the reboot
leaves the holders on disk and nothing mounted.
"""

from __future__ import annotations

HOME = "/var/lib/graphdriver/overlay"
CONTAINER = "molecule"
MERGED = f"{HOME}/{CONTAINER}/merged"
PERSISTED_FILE = f"{MERGED}/srv/app/persisted"

testinfra_hosts = ["all"]


def persisted(host) -> bool:
    return bool(host.ansible.get_variables().get("gdo_persist"))


def unit_name(host) -> str:
    """The unit's name as the guest's own systemd-escape makes it."""
    return host.check_output(f"systemd-escape --path --suffix=mount {MERGED}")


def overlay_facts(host) -> dict:
    return host.ansible("graphdriver.overlay.overlay_facts", f"home={HOME}", check=False)["ansible_facts"]["overlay"]


def held_not_mounted(facts: dict) -> list:
    return [p for p in facts["problems"] if p["id"] == CONTAINER and p["code"] == "held_not_mounted"]


def test_the_guest_booted_again(host):
    # Far less than the minutes that prepare, converge and verify took: this boot is new.
    uptime = float(host.file("/proc/uptime").content_string.split()[0])
    assert uptime < 600, f"uptime {uptime} s: the guest did not reboot"


def test_holders_stayed_on_disk(host):
    # Read before any module runs, so what is seen is what the boot left.
    facts = overlay_facts(host)
    assert facts["layers"][CONTAINER]["holders"] == ["ansible"]


def test_persisted_mount_came_back_at_boot(host):
    mount = host.mount_point(MERGED)
    if not persisted(host):
        assert not mount.exists, f"{MERGED} is mounted after a reboot without persist"
        return
    assert mount.exists, f"{MERGED} is not mounted after the reboot"
    assert mount.filesystem == "overlay"
    assert f"upperdir={HOME}/{CONTAINER}/upper" in mount.options
    unit = unit_name(host)
    assert host.check_output(f"systemctl is-active '{unit}'") == "active"
    assert host.check_output(f"systemctl is-enabled '{unit}'") == "enabled"
    # systemd, not a task, mounted it: its journal of this boot says so.
    assert "Mounted " in host.check_output(f"journalctl --boot --no-pager --unit '{unit}'")
    assert host.file(PERSISTED_FILE).content_string == "written before the reboot\n"


def test_facts_after_the_reboot(host):
    facts = overlay_facts(host)
    if not persisted(host):
        assert CONTAINER not in facts["mounts"]
        return
    assert CONTAINER in facts["mounts"]
    assert facts["layers"][CONTAINER]["mounted"] is True
    assert held_not_mounted(facts) == [], facts["problems"]
