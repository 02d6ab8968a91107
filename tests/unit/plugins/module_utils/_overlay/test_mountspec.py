# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of mountspec.py: drift between a live overlay mount and the layer's dirs.

The mountinfo lines are the kernel's own (6.1 and 6.18), escapes included; the last tests
make real overlay mounts and read /proc/self/mountinfo.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import kernel
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.mountspec import overlay_dirs, overlay_drift

H = "/var/lib/graphdriver/overlay"
LOWER, UPPER, WORK = H + "/img/root", H + "/ctr/upper", H + "/ctr/work"


def line(super_options: str, fstype: str = "overlay", mount_point: str = H + "/ctr/merged") -> str:
    return "112 90 0:41 / %s rw,relatime - %s overlay %s" % (mount_point, fstype, super_options)


def parse(text: str) -> kernel.MountInfo:
    (mount,) = kernel.parse_mountinfo(text)
    return mount


DRIFT_CASES = [
    pytest.param(
        line("rw,lowerdir=%s,upperdir=%s,workdir=%s" % (LOWER, UPPER, WORK)), (LOWER, UPPER, WORK), [],
        id="agrees-kernel-6.1",
    ),
    pytest.param(
        line("rw,lowerdir=%s,upperdir=%s,workdir=%s,uuid=on" % (LOWER, UPPER, WORK)), (LOWER, UPPER, WORK), [],
        id="agrees-kernel-6.18-extra-options-ignored",
    ),
    pytest.param(
        line("rw,lowerdir=%s/,upperdir=%s//,workdir=/var//lib/graphdriver/overlay/ctr/work" % (LOWER, UPPER)),
        (LOWER, UPPER, WORK), [],
        id="slashes-do-not-count",
    ),
    pytest.param(
        line("rw,lowerdir=/srv/my\\040store/img/root,upperdir=/srv/my\\040store/ctr/upper,"
             "workdir=/srv/my\\040store/ctr/work"),
        ("/srv/my store/img/root", "/srv/my store/ctr/upper", "/srv/my store/ctr/work"), [],
        id="spaces-as-octal-escapes",
    ),
    pytest.param(
        line("rw,lowerdir=/srv/b\\134\\134s/root,upperdir=/srv/up\\134\\054x,workdir=/srv/a\\134\\072b"),
        ("/srv/b\\s/root", "/srv/up,x", "/srv/a:b"), [],
        id="overlayfs-escapes-made-by-hand",
    ),
    pytest.param(
        line("rw,lowerdir=%s,upperdir=/mnt/other/upper,workdir=/mnt/other/work" % LOWER),
        (LOWER, UPPER, WORK),
        [
            {"option": "upperdir", "live": "/mnt/other/upper", "expected": UPPER},
            {"option": "workdir", "live": "/mnt/other/work", "expected": WORK},
        ],
        id="by-hand-with-other-upper-and-work",
    ),
    pytest.param(
        line("rw,lowerdir=/srv/old\\040image/root,upperdir=%s,workdir=%s" % (UPPER, WORK)),
        (LOWER, UPPER, WORK),
        [{"option": "lowerdir", "live": "/srv/old image/root", "expected": LOWER}],
        id="other-lower-with-a-space",
    ),
    pytest.param(
        line("rw,lowerdir=%s:/srv/extra,upperdir=%s,workdir=%s" % (LOWER, UPPER, WORK)),
        (LOWER, UPPER, WORK),
        [{"option": "lowerdir", "live": LOWER + ":/srv/extra", "expected": LOWER}],
        id="extra-lower-layer",
    ),
    pytest.param(
        line("rw,lowerdir=/srv/a:/srv/b,upperdir=%s,workdir=%s" % (UPPER, WORK)),
        ("/srv/a:/srv/b", UPPER, WORK), [],
        id="several-lower-layers-agree",
    ),
    pytest.param(
        line("rw,lowerdir+=/srv/a,lowerdir+=/srv/b,upperdir=%s,workdir=%s" % (UPPER, WORK)),
        ("/srv/a:/srv/b", UPPER, WORK), [],
        id="lower-layers-one-by-one",
    ),
    pytest.param(
        line("ro,lowerdir=%s:/srv/extra" % LOWER),
        (LOWER, UPPER, WORK),
        [
            {"option": "lowerdir", "live": LOWER + ":/srv/extra", "expected": LOWER},
            {"option": "upperdir", "live": None, "expected": UPPER},
            {"option": "workdir", "live": None, "expected": WORK},
        ],
        id="read-only-overlay-lacks-upper-and-work",
    ),
    pytest.param(
        line("rw,size=1024k", fstype="tmpfs"),
        (LOWER, UPPER, WORK),
        [{"option": "fstype", "live": "tmpfs", "expected": "overlay"}],
        id="not-an-overlay",
    ),
]


@pytest.mark.parametrize("text, expected_dirs, differences", DRIFT_CASES)
def test_overlay_drift_from_mountinfo_lines(text, expected_dirs, differences):
    assert overlay_drift(parse(text), *expected_dirs) == differences


def test_overlay_dirs_undo_both_escapes():
    mount = parse(line("rw,lowerdir=/a\\040b:/c\\134\\072d,upperdir=/u\\134\\054v,workdir=/w,uuid=on"))
    assert overlay_dirs(mount) == {"lowerdir": ("/a b", "/c:d"), "upperdir": ("/u,v",), "workdir": ("/w",)}


def _layer(base: str) -> tuple[str, str, str, str]:
    dirs = tuple(os.path.join(base, name) for name in ("lower dir", "upper dir", "work", "merged"))
    for path in dirs:
        os.makedirs(path)
    return dirs


def _live_mount(merged: str) -> kernel.MountInfo:
    mount = kernel.mount_at(kernel.read_mountinfo(), merged)
    assert mount is not None, "no mount at %s in /proc/self/mountinfo" % merged
    return mount


def test_real_mount_with_the_layer_dirs_has_no_drift(scratch):
    lower, upper, work, merged = _layer(os.path.join(scratch, "my layer"))
    kernel.mount("overlay", merged, "overlay", 0, kernel.overlay_mount_data(lower, upper, work))
    assert overlay_drift(_live_mount(merged), lower, upper, work) == []


def test_real_mount_with_a_wrong_upperdir_is_drift(scratch):
    lower, upper, work, merged = _layer(os.path.join(scratch, "my layer"))
    by_hand_upper = os.path.join(scratch, "by hand", "upper")
    by_hand_work = os.path.join(scratch, "by hand", "work")
    os.makedirs(by_hand_upper)
    os.makedirs(by_hand_work)
    kernel.mount("overlay", merged, "overlay", 0, kernel.overlay_mount_data(lower, by_hand_upper, by_hand_work))
    assert overlay_drift(_live_mount(merged), lower, upper, work) == [
        {"option": "upperdir", "live": by_hand_upper, "expected": upper},
        {"option": "workdir", "live": by_hand_work, "expected": work},
    ]


def test_real_mount_with_overlayfs_escapes_is_compared_by_its_dirs(scratch):
    lower, upper, work, merged = _layer(os.path.join(scratch, "esc"))
    comma_upper = os.path.join(scratch, "esc", "up,per")
    os.makedirs(comma_upper)
    data = "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, comma_upper.replace(",", "\\,"), work)
    kernel.mount("overlay", merged, "overlay", 0, data)
    assert overlay_drift(_live_mount(merged), lower, comma_upper, work) == []
    assert overlay_drift(_live_mount(merged), lower, upper, work) == [
        {"option": "upperdir", "live": comma_upper, "expected": upper},
    ]
