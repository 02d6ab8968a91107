# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What converge left on this machine, read from the machine itself (testinfra, local).

The expected files are those of ../../_shared/make_archive.py and ../../_shared/converge.yml.
"""

from __future__ import annotations

HOME = "/var/lib/graphdriver-molecule/overlay"
CONTAINER = "molecule"
MERGED = f"{HOME}/{CONTAINER}/merged"

testinfra_hosts = ["all"]


def lower_root(host) -> str:
    """The root dir of the image layer under the container layer, from Docker's lower-id file."""
    lower = host.file(f"{HOME}/{CONTAINER}/lower-id").content_string.strip()
    return f"{HOME}/{lower}/root"


def test_overlay_is_in_the_kernel(host):
    assert "overlay" in host.file("/proc/filesystems").content_string.split()
    assert host.file("/sys/module/overlay").is_directory


def test_overlay_is_loaded_at_boot(host):
    conf = host.file("/etc/modules-load.d/graphdriver-overlay.conf")
    assert conf.is_file
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o644)
    assert "overlay" in conf.content_string.split("\n")


def test_home_is_private_to_root(host):
    home = host.file(HOME)
    assert home.is_directory
    assert (home.user, home.group, home.mode) == ("root", "root", 0o700)


def test_container_layer_is_an_overlay_mount(host):
    mount = host.mount_point(MERGED)
    assert mount.exists, f"{MERGED} is not a mount point"
    assert mount.filesystem == "overlay"
    assert f"lowerdir={lower_root(host)}" in mount.options
    assert f"upperdir={HOME}/{CONTAINER}/upper" in mount.options
    assert f"workdir={HOME}/{CONTAINER}/work" in mount.options


def test_upper_layer_wins_and_whiteout_hides(host):
    assert host.file(f"{MERGED}/etc/os-release").content_string == "NAME=graphdriver-molecule-app\n"
    assert not host.file(f"{MERGED}/srv/app/obsolete").exists
    greet = host.file(f"{MERGED}/usr/bin/greet")
    assert greet.is_symlink and greet.linked_to == f"{MERGED}/usr/bin/hello"


def test_image_owners_and_modes_survive_the_import(host):
    expected = {
        "usr/bin/hello": ("root", "root", 0o755),
        "srv/app": (1000, 1000, 0o750),
        "srv/app/config": (1000, 1000, 0o640),
        "srv/app/secret": (1000, 1000, 0o600),
        "tmp": ("root", "root", 0o1777),
    }
    for path, (owner, group, mode) in expected.items():
        item = host.file(f"{MERGED}/{path}")
        assert item.exists, path
        actual = (item.uid if isinstance(owner, int) else item.user,
                  item.gid if isinstance(group, int) else item.group, item.mode)
        assert actual == (owner, group, mode), path


def test_writes_go_to_the_upper_dir_only(host):
    rewritten = "listen = 8080\nconverged on localhost\n"
    config = host.file(f"{MERGED}/srv/app/config")
    assert config.content_string == rewritten
    assert (config.uid, config.gid, config.mode) == (1000, 1000, 0o640)
    assert host.file(f"{HOME}/{CONTAINER}/upper/srv/app/config").content_string == rewritten
    assert host.file(f"{lower_root(host)}/srv/app/config").content_string == "listen = 8080\n"
    assert not host.file(f"{HOME}/{CONTAINER}/upper/etc/os-release").exists
