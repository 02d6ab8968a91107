# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What converge left in the VM, read over SSH from the guest itself (testinfra).

The expected files are those of ../../_shared/make_archive.py and ../../_shared/converge.yml.
"""

from __future__ import annotations

HOME = "/var/lib/graphdriver/overlay"
CONTAINER = "molecule"
MERGED = f"{HOME}/{CONTAINER}/merged"
NODTYPE_MOUNT = "/srv/nodtype"
NODTYPE_HOME = f"{NODTYPE_MOUNT}/overlay"

testinfra_hosts = ["all"]


def lower_root(host) -> str:
    """The root dir of the image layer under the container layer, from Docker's lower-id file."""
    lower = host.file(f"{HOME}/{CONTAINER}/lower-id").content_string.strip()
    return f"{HOME}/{lower}/root"


def test_guest_runs_debian_12_kernel_6_1(host):
    assert host.check_output("uname -r").startswith("6.1.")
    assert host.system_info.distribution == "debian"
    assert host.system_info.release.startswith("12")


def test_overlay_module_is_loaded_now_and_at_boot(host):
    assert host.file("/sys/module/overlay/initstate").content_string.strip() == "live"
    assert "overlay" in host.file("/proc/filesystems").content_string.split()
    conf = host.file("/etc/modules-load.d/graphdriver-overlay.conf")
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o644)
    assert "overlay" in conf.content_string.split("\n")


def test_home_on_ext4_is_private_to_root(host):
    assert host.mount_point("/").filesystem == "ext4"
    home = host.file(HOME)
    assert (home.user, home.group, home.mode) == ("root", "root", 0o700)


def test_container_layer_is_an_overlay_mount(host):
    mount = host.mount_point(MERGED)
    assert mount.exists, f"{MERGED} is not a mount point"
    assert mount.filesystem == "overlay"
    assert f"lowerdir={lower_root(host)}" in mount.options
    assert f"upperdir={HOME}/{CONTAINER}/upper" in mount.options


def test_merged_view_has_the_image_and_the_writes(host):
    name = host.ansible.get_variables()["inventory_hostname"]
    rewritten = f"listen = 8080\nconverged on {name}\n"
    assert host.file(f"{MERGED}/etc/os-release").content_string == "NAME=graphdriver-molecule-app\n"
    assert not host.file(f"{MERGED}/srv/app/obsolete").exists
    secret = host.file(f"{MERGED}/srv/app/secret")
    assert (secret.uid, secret.gid, secret.mode) == (1000, 1000, 0o600)
    config = host.file(f"{MERGED}/srv/app/config")
    assert config.content_string == rewritten
    assert (config.uid, config.gid, config.mode) == (1000, 1000, 0o640)
    assert host.file(f"{HOME}/{CONTAINER}/upper/srv/app/config").content_string == rewritten
    assert host.file(f"{lower_root(host)}/srv/app/config").content_string == "listen = 8080\n"


def test_nodtype_disk_is_xfs_without_d_type(host):
    assert host.mount_point(NODTYPE_MOUNT).filesystem == "xfs"
    assert "ftype=0" in host.check_output(f"xfs_info {NODTYPE_MOUNT}")


def test_nothing_was_made_on_the_nodtype_home(host):
    home = host.file(NODTYPE_HOME)
    assert home.is_directory
    assert home.listdir() == []
    mounts = host.file("/proc/self/mounts").content_string
    assert f" {NODTYPE_HOME}/" not in mounts


def test_facts_report_the_d_type_refusal(host):
    facts = host.ansible("graphdriver.overlay.overlay_facts", f"home={NODTYPE_HOME}", check=False)
    overlay = facts["ansible_facts"]["overlay"]
    assert overlay["backing_fs"] == "xfs"
    assert overlay["supports_d_type"] is False
    assert overlay["supported"] is False
    assert "d_type" in overlay["reason"]
