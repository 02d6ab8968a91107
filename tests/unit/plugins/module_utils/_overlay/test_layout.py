# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The on-disk layout: what counts as a layer (interface.md), listing, foreign entries, lower-id."""

from __future__ import annotations

import os

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, layout


def _dir(path: str, *names: str) -> None:
    os.makedirs(path)
    for name in names:
        os.mkdir(os.path.join(path, name))


def _file(path: str, data: bytes = b"") -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def _symlink_to_a_layer(home: str, name: str) -> None:
    _dir(os.path.join(home, "real"), "root")
    os.symlink(os.path.join(home, "real"), os.path.join(home, name))


def _lower_id_only(home: str, name: str) -> None:
    _dir(os.path.join(home, name))
    _file(os.path.join(home, name, "lower-id"), b"base")


def _lower_id_dir(home: str, name: str) -> None:
    _dir(os.path.join(home, name), "lower-id")


def _tmproot_only(home: str, name: str) -> None:
    _dir(os.path.join(home, name), layout.TMPROOT_PREFIX + "-old42")


def _outside(home: str) -> str:
    """A real tree beside home, the target of the symlinks below."""
    target = os.path.join(os.path.dirname(home), "outside")
    if not os.path.isdir(target):
        _dir(target, "root", "upper")
        _file(os.path.join(target, "lower-id"), b"base")
    return target


def _part_symlinked(part: str, *real: str):
    def make(home: str, name: str) -> None:
        _dir(os.path.join(home, name), *real)
        os.symlink(os.path.join(_outside(home), part), os.path.join(home, name, part))
    return make


def _tmproot_beside_data(home: str, name: str) -> None:
    _dir(os.path.join(home, name), layout.TMPROOT_PREFIX + "1", "data")


def _tmproot_is_a_file(home: str, name: str) -> None:
    _dir(os.path.join(home, name))
    _file(os.path.join(home, name, layout.TMPROOT_PREFIX + "1"))


# name, how it is made under home, the kind it must have (None: foreign)
SHAPES = [
    ("img", lambda home, name: _dir(os.path.join(home, name), "root"), layout.IMAGE),
    ("img-with-upper", lambda home, name: _dir(os.path.join(home, name), "root", "upper"), layout.IMAGE),
    ("ctr", lambda home, name: _dir(os.path.join(home, name), "upper", "work"), layout.CONTAINER),
    ("ctr-lower-id-only", _lower_id_only, layout.CONTAINER),
    ("mid-apply", _tmproot_only, layout.IMAGE),
    ("volumes", lambda home, name: _dir(os.path.join(home, name), "data"), None),
    ("empty-dir", lambda home, name: _dir(os.path.join(home, name)), None),
    ("work-only", lambda home, name: _dir(os.path.join(home, name), "work"), None),
    ("lower-id-is-a-dir", _lower_id_dir, None),
    ("a-file", lambda home, name: _file(os.path.join(home, name)), None),
    ("a-symlink", _symlink_to_a_layer, None),
    ("root-is-a-symlink", _part_symlinked("root"), None),
    ("upper-is-a-symlink", _part_symlinked("upper", "work"), None),
    ("lower-id-is-a-symlink", _part_symlinked("lower-id", "work"), None),
    ("root-symlink-beside-upper", _part_symlinked("root", "upper"), layout.CONTAINER),
    ("tmproot-beside-data", _tmproot_beside_data, None),
    ("tmproot-is-a-file", _tmproot_is_a_file, None),
]


@pytest.mark.parametrize("name, make, kind", SHAPES, ids=[shape[0] for shape in SHAPES])
def test_kind_follows_the_shape_rule(scratch, name, make, kind):
    home = os.path.join(scratch, "home")
    os.mkdir(home)
    make(home, name)
    paths = layout.Layout(home)
    assert paths.kind(name) == kind, "%s: expected %r, got %r" % (name, kind, paths.kind(name))
    assert (name in paths.list_layers()) is (kind is not None), paths.list_layers()
    assert (name in paths.foreign()) is (kind is None), paths.foreign()


def test_names_with_a_leading_dot_are_neither_layers_nor_foreign(scratch):
    home = os.path.join(scratch, "home")
    _dir(os.path.join(home, ".graphdriver"), "locks")
    _dir(os.path.join(home, ".hidden"), "root")
    paths = layout.Layout(home)
    assert paths.list_layers() == [] and paths.foreign() == []


def test_a_missing_home_has_no_layers(scratch):
    paths = layout.Layout(os.path.join(scratch, "nope"))
    assert paths.list_layers() == [] and paths.foreign() == []


@pytest.mark.parametrize("content", [b"", b"../etc", b"\xff\xfe", b"a/b"])
def test_a_bad_lower_id_is_corrupt_state_naming_the_file_and_the_fix(scratch, content):
    _lower_id_only(scratch, "ctr")
    _file(os.path.join(scratch, "ctr", "lower-id"), content)
    with pytest.raises(errors.CorruptState) as caught:
        layout.read_lower_id(os.path.join(scratch, "ctr"), "ctr")
    assert caught.value.path == os.path.join(scratch, "ctr", "lower-id")
    assert caught.value.layer_id == "ctr" and caught.value.fix == errors.FIX_RECREATE
    assert "overlay_layer" not in str(caught.value), "the driver's message names a module option: %s" % caught.value


def test_lower_id_round_trips(scratch):
    layout.write_lower_id(scratch, "base-1.0")
    assert layout.read_lower_id(scratch, "x") == "base-1.0"


def test_remove_refuses_what_is_not_a_layer_and_keeps_it(scratch):
    drv = driver_mod.Driver(os.path.join(scratch, "home"))
    drv.init()
    volume = os.path.join(drv.home, "volumes")
    _dir(volume, "data")
    _file(os.path.join(volume, "data", "keep"), b"precious")
    for force in (False, True):
        with pytest.raises(errors.NotALayer) as caught:
            drv.remove("volumes", force=force)
        assert caught.value.path == volume and volume in str(caught.value)
    with open(os.path.join(volume, "data", "keep"), "rb") as handle:
        assert handle.read() == b"precious"


def test_facts_list_foreign_entries_apart_from_layers(scratch):
    drv = driver_mod.Driver(os.path.join(scratch, "home"))
    drv.create("base")
    _dir(os.path.join(drv.home, "volumes"))
    _file(os.path.join(drv.home, "notes.txt"))
    facts = drv.facts()
    assert sorted(facts["layers"]) == ["base"]
    assert facts["foreign"] == ["notes.txt", "volumes"]
