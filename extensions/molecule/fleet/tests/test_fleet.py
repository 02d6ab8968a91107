# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What converge left on each fleet host, read over SSH from the host itself (testinfra).

The expected files are those of ../../_shared/make_archive.py and ../../_shared/converge.yml.
"""

from __future__ import annotations

import testinfra

HOME = "/srv/graphdriver/overlay"
CONTAINER = "molecule"
MERGED = f"{HOME}/{CONTAINER}/merged"

testinfra_hosts = ["all"]


def lower_root(host) -> str:
    """The root dir of the image layer under the container layer, from Docker's lower-id file."""
    lower = host.file(f"{HOME}/{CONTAINER}/lower-id").content_string.strip()
    return f"{HOME}/{lower}/root"


def test_host_is_its_own_namespace(host):
    name = host.ansible.get_variables()["inventory_hostname"]
    assert host.check_output("hostname") == f"gdo-{name}"
    assert host.check_output("cat /proc/1/comm") == "sshd"
    assert "default" not in host.check_output("ip route show")


def test_home_is_on_a_private_tmpfs(host):
    assert host.mount_point("/srv").filesystem == "tmpfs"
    home = host.file(HOME)
    assert home.is_directory
    assert (home.user, home.group, home.mode) == ("root", "root", 0o700)


def test_overlay_is_loaded_now_and_at_boot(host):
    assert "overlay" in host.file("/proc/filesystems").content_string.split()
    conf = host.file("/etc/modules-load.d/graphdriver-overlay.conf")
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o644)
    assert "overlay" in conf.content_string.split("\n")


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


def test_mounts_stay_inside_the_host():
    machine = testinfra.get_host("local://")
    assert not machine.mount_point(MERGED).exists
    assert not machine.file(HOME).exists
