# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests for idmap: option parsing, Docker's id translation rules and mkdirAs on a real filesystem."""

from __future__ import annotations

import contextlib
import os
import stat
import time

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.idmap import (
    IDMap,
    IdentityMapping,
    mkdir_all_and_chown,
    mkdir_all_and_chown_new,
    mkdir_and_chown,
    parse_id_maps,
)

REMAP = (IDMap(0, 100000, 65536),)
SPLIT = (IDMap(0, 1000, 1), IDMap(1, 200000, 1000))
NO_ROOT = (IDMap(1, 100000, 10),)

# (case name, items, expected tuple of IDMap)
PARSE_OK = [
    ("none is no maps", None, ()),
    ("empty list", [], ()),
    ("one range", [{"container_id": 0, "host_id": 100000, "size": 65536}], (IDMap(0, 100000, 65536),)),
    ("numeric strings from ansible", [{"container_id": "0", "host_id": " 1000 ", "size": "1"}], (IDMap(0, 1000, 1),)),
    ("order kept", [{"container_id": 1, "host_id": 5, "size": 2}, {"container_id": 0, "host_id": 9, "size": 1}],
     (IDMap(1, 5, 2), IDMap(0, 9, 1))),
    ("range ending at the largest id", [{"container_id": 0, "host_id": 0xFFFFFFFE, "size": 1}], (IDMap(0, 0xFFFFFFFE, 1),)),
]

# (case name, items, fragments the message must contain)
PARSE_BAD = [
    ("not a list", "0:1000:1", ["uid_maps", "must be a list", "'0:1000:1'"]),
    ("item not a dict", ["0:1000:1"], ["uid_maps[0]", "not a dict", "container_id"]),
    ("missing size", [{"container_id": 0, "host_id": 1}], ["uid_maps[0]", "missing size", "size >= 1"]),
    ("unknown key", [{"container_id": 0, "host_id": 1, "size": 1, "length": 2}], ["uid_maps[0]", "unknown keys length"]),
    ("negative host id", [{"container_id": 0, "host_id": -1, "size": 1}], ["host_id=-1", "integer >= 0"]),
    ("zero size", [{"container_id": 0, "host_id": 1, "size": 0}], ["size=0", "integer >= 1"]),
    ("bool is not an id", [{"container_id": True, "host_id": 1, "size": 1}], ["container_id=True"]),
    ("non-numeric string", [{"container_id": "root", "host_id": 1, "size": 1}], ["container_id='root'"]),
    ("float", [{"container_id": 0, "host_id": 1.5, "size": 1}], ["host_id=1.5"]),
    ("second item named", [{"container_id": 0, "host_id": 1, "size": 1}, {"container_id": 0, "host_id": 1, "size": "x"}], ["uid_maps[1]"]),
    ("range beyond the last id", [{"container_id": 0, "host_id": 0xFFFFFFFE, "size": 2}], ["beyond the largest id"]),
]

# (case name, uid maps, gid maps, expected root pair or error message)
ROOT_PAIR = [
    ("no maps is real root", (), (), (0, 0)),
    ("remapped root", REMAP, (IDMap(0, 200000, 65536),), (100000, 200000)),
    ("only uids mapped", REMAP, (), (100000, 0)),
    ("first matching range wins", SPLIT + REMAP, (), (1000, 0)),
    ("container root unmapped", NO_ROOT, (), "Container ID 0 cannot be mapped to a host ID"),
    ("container root gid unmapped", (), NO_ROOT, "Container ID 0 cannot be mapped to a host ID"),
]

# (case name, uid maps, gid maps, (uid, gid) in, expected pair or error message)
TO_HOST = [
    ("identity without maps", (), (), (5, 7), (5, 7)),
    ("both shifted", REMAP, REMAP, (5, 7), (100005, 100007)),
    ("container root becomes host root", REMAP, REMAP, (0, 0), (100000, 100000)),
    ("host root pair left alone", REMAP, REMAP, (100000, 100000), (100000, 100000)),
    ("host root uid alone, gid mapped", REMAP, REMAP, (100000, 3), (100000, 100003)),
    ("host root gid alone, uid mapped", REMAP, REMAP, (4, 100000), (100004, 100000)),
    ("last id of the range", REMAP, REMAP, (65535, 65535), (165535, 165535)),
    ("second range", SPLIT, SPLIT, (1, 999), (200000, 200998)),
    ("id equal to host root not mapped even if in a range", SPLIT, SPLIT, (1, 1000), (200000, 1000)),
    ("uid past the range", REMAP, REMAP, (65536, 0), "Container ID 65536 cannot be mapped to a host ID"),
    ("gid past the range", REMAP, REMAP, (0, 70000), "Container ID 70000 cannot be mapped to a host ID"),
    ("unmapped root maps everything", NO_ROOT, NO_ROOT, (2, 3), (100001, 100002)),
    ("unmapped root still fails for 0", NO_ROOT, NO_ROOT, (0, 1), "Container ID 0 cannot be mapped to a host ID"),
]

TO_CONTAINER = [
    ("identity without maps", (), (), (5, 7), (5, 7)),
    ("both shifted back", REMAP, REMAP, (100005, 100007), (5, 7)),
    ("host root maps to container root", REMAP, REMAP, (100000, 100000), (0, 0)),
    ("second range", SPLIT, SPLIT, (200000, 1000), (1, 0)),
    ("host uid outside every range", REMAP, REMAP, (0, 100000), "Host ID 0 cannot be mapped to a container ID"),
    ("host gid outside every range", REMAP, REMAP, (100000, 165536), "Host ID 165536 cannot be mapped to a container ID"),
]


@pytest.mark.parametrize("name, items, expected", PARSE_OK, ids=[case[0] for case in PARSE_OK])
def test_parse_id_maps_accepts_valid_items(name, items, expected):
    got = parse_id_maps(items, "uid_maps")
    assert got == expected, "%s: expected %r, got %r" % (name, expected, got)


@pytest.mark.parametrize("name, items, fragments", PARSE_BAD, ids=[case[0] for case in PARSE_BAD])
def test_parse_id_maps_rejects_bad_items_naming_option_and_item(name, items, fragments):
    with pytest.raises(errors.InvalidArgument) as caught:
        parse_id_maps(items, "uid_maps")
    message = str(caught.value)
    for fragment in fragments + ["uid_maps"]:
        assert fragment in message, "%s: expected %r in the message, got %r" % (name, fragment, message)


def _check(call, expected, name):
    if isinstance(expected, str):
        with pytest.raises(errors.IdMapError) as caught:
            call()
        assert str(caught.value) == expected, "%s: expected error %r, got %r" % (name, expected, str(caught.value))
    else:
        got = call()
        assert got == expected, "%s: expected %r, got %r" % (name, expected, got)


@pytest.mark.parametrize("name, uids, gids, expected", ROOT_PAIR, ids=[case[0] for case in ROOT_PAIR])
def test_root_pair_maps_container_root(name, uids, gids, expected):
    _check(IdentityMapping(uids, gids).root_pair, expected, name)


@pytest.mark.parametrize("name, uids, gids, pair, expected", TO_HOST, ids=[case[0] for case in TO_HOST])
def test_to_host_maps_ids_except_the_host_root(name, uids, gids, pair, expected):
    _check(lambda: IdentityMapping(uids, gids).to_host(*pair), expected, name)


@pytest.mark.parametrize("name, uids, gids, pair, expected", TO_CONTAINER, ids=[case[0] for case in TO_CONTAINER])
def test_to_container_maps_both_ids(name, uids, gids, pair, expected):
    _check(lambda: IdentityMapping(uids, gids).to_container(*pair), expected, name)


def test_empty_is_true_only_without_any_map():
    assert IdentityMapping().empty, "IdentityMapping() expected empty"
    assert not IdentityMapping(REMAP, ()).empty, "uid maps only: expected not empty"
    assert not IdentityMapping((), REMAP).empty, "gid maps only: expected not empty"


@contextlib.contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _assert_dir(path, perm, uid, gid):
    info = os.stat(path)
    assert stat.S_ISDIR(info.st_mode), "%s: expected a directory, got mode %o" % (path, info.st_mode)
    assert stat.S_IMODE(info.st_mode) == perm, "%s: expected mode %o, got %o" % (path, perm, stat.S_IMODE(info.st_mode))
    assert (info.st_uid, info.st_gid) == (uid, gid), "%s: expected owner %d:%d, got %d:%d" % (path, uid, gid, info.st_uid, info.st_gid)


MAKERS = [mkdir_and_chown, mkdir_all_and_chown, mkdir_all_and_chown_new]


@pytest.mark.parametrize("maker", MAKERS, ids=[maker.__name__ for maker in MAKERS])
def test_new_dir_gets_mode_and_owner_whatever_the_umask(scratch, maker):
    path = os.path.join(scratch, "new")
    with _umask(0o077):
        maker(path, 0o755, 1, 2)
    _assert_dir(path, 0o755, 1, 2)


@pytest.mark.parametrize("maker", MAKERS, ids=[maker.__name__ for maker in MAKERS])
def test_existing_file_fails_with_dockers_not_a_directory(scratch, maker):
    path = os.path.join(scratch, "file")
    with open(path, "w", encoding="utf-8"):
        pass
    with pytest.raises(errors.OverlayError) as caught:
        maker(path, 0o700, 0, 0)
    assert str(caught.value) == "mkdir %s: not a directory" % path, "expected Docker's ENOTDIR text, got %r" % str(caught.value)


@pytest.mark.parametrize("maker", MAKERS, ids=[maker.__name__ for maker in MAKERS])
def test_file_in_the_middle_of_the_path_fails_as_not_a_directory(scratch, maker):
    blocker = os.path.join(scratch, "file")
    with open(blocker, "w", encoding="utf-8"):
        pass
    path = os.path.join(blocker, "child")
    with pytest.raises(errors.OverlayError) as caught:
        maker(path, 0o700, 0, 0)
    # Go's MkdirAll names the blocking ancestor, os.Mkdir the path it was asked for.
    expected = "mkdir %s: not a directory" % (path if maker is mkdir_and_chown else blocker)
    assert str(caught.value) == expected, "%s: expected %r, got %r" % (path, expected, str(caught.value))


def test_mkdir_and_chown_needs_the_parent(scratch):
    path = os.path.join(scratch, "missing", "leaf")
    with pytest.raises(FileNotFoundError):
        mkdir_and_chown(path, 0o700, 0, 0)
    assert not os.path.lexists(os.path.dirname(path)), "%s: expected no parent to be created" % os.path.dirname(path)


@pytest.mark.parametrize("maker", [mkdir_all_and_chown, mkdir_all_and_chown_new], ids=["all", "all_new"])
def test_mkdir_all_sets_mode_and_owner_on_created_ancestors_only(scratch, maker):
    existing = os.path.join(scratch, "existing")
    os.mkdir(existing, 0o711)
    os.chmod(existing, 0o711)
    leaf = os.path.join(existing, "a", "b", "c")
    with _umask(0o077):
        maker(leaf, 0o750, 3, 4)
    for path in (os.path.join(existing, "a"), os.path.join(existing, "a", "b"), leaf):
        _assert_dir(path, 0o750, 3, 4)
    _assert_dir(existing, 0o711, 0, 0)


def _existing_dir(scratch, mode, uid=0, gid=0):
    path = os.path.join(scratch, "dir")
    os.mkdir(path)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("maker", [mkdir_and_chown, mkdir_all_and_chown], ids=["single", "all"])
def test_existing_dir_gets_new_perm_bits_and_loses_special_bits(scratch, maker):
    path = _existing_dir(scratch, 0o3755, 5, 6)
    maker(path, 0o700, 7, 8)
    _assert_dir(path, 0o700, 7, 8)


@pytest.mark.parametrize("maker", [mkdir_and_chown, mkdir_all_and_chown], ids=["single", "all"])
def test_existing_dir_with_same_perm_bits_keeps_special_bits(scratch, maker):
    path = _existing_dir(scratch, 0o2755)
    maker(path, 0o755, 1, 1)
    _assert_dir(path, 0o2755, 1, 1)


@pytest.mark.parametrize("maker", [mkdir_and_chown, mkdir_all_and_chown], ids=["single", "all"])
def test_existing_dir_already_right_is_not_touched(scratch, maker):
    path = _existing_dir(scratch, 0o750, 1, 2)
    before = os.stat(path).st_ctime_ns
    time.sleep(0.02)
    maker(path, 0o750, 1, 2)
    after = os.stat(path).st_ctime_ns
    # chmod and chown update ctime even as no-ops, so an unchanged ctime shows neither ran.
    assert after == before, "%s: expected ctime %d unchanged, got %d" % (path, before, after)


def test_mkdir_all_and_chown_new_leaves_an_existing_leaf_alone(scratch):
    path = _existing_dir(scratch, 0o3777, 5, 6)
    mkdir_all_and_chown_new(path, 0o700, 0, 0)
    _assert_dir(path, 0o3777, 5, 6)


def test_mode_argument_uses_perm_bits_only(scratch):
    path = os.path.join(scratch, "sticky")
    mkdir_all_and_chown(path, 0o1755, 0, 0)
    _assert_dir(path, 0o755, 0, 0)


def test_symlink_to_dir_counts_as_existing_dir(scratch):
    target = _existing_dir(scratch, 0o755)
    link = os.path.join(scratch, "link")
    os.symlink(target, link)
    mkdir_and_chown(link, 0o700, 9, 9)
    assert os.path.islink(link), "%s: expected the symlink to stay a symlink" % link
    _assert_dir(target, 0o700, 9, 9)
