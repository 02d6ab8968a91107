# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""After unpersist.yml: the last holder left, the guest rebooted, nothing came back (testinfra).

Only meaningful with ``gdo_persist`` true (converge used ``persist: true``); without it
unpersist.yml does nothing and these tests are skipped.
"""

from __future__ import annotations

import pytest

HOME = "/var/lib/graphdriver/overlay"
CONTAINER = "molecule"
MERGED = f"{HOME}/{CONTAINER}/merged"

testinfra_hosts = ["all"]


@pytest.fixture(autouse=True)
def _needs_persist(host):
    if not host.ansible.get_variables().get("gdo_persist"):
        pytest.skip("gdo_persist is false: converge made no mount unit, unpersist.yml did nothing")


def test_the_unit_file_and_its_link_are_gone(host):
    unit = host.check_output(f"systemd-escape --path --suffix=mount {MERGED}")
    assert not host.file(f"/etc/systemd/system/{unit}").exists
    assert not host.file(f"/etc/systemd/system/local-fs.target.wants/{unit}").exists


def test_nothing_is_mounted_after_the_second_reboot(host):
    assert float(host.file("/proc/uptime").content_string.split()[0]) < 600
    assert not host.mount_point(MERGED).exists
    mounts = host.file("/proc/self/mounts").content_string
    assert f" {HOME}/" not in mounts


def test_facts_report_no_holder_and_no_mount(host):
    facts = host.ansible("graphdriver.overlay.overlay_facts", f"home={HOME}", check=False)["ansible_facts"]["overlay"]
    assert facts["layers"][CONTAINER]["holders"] == []
    assert facts["mounts"] == []
