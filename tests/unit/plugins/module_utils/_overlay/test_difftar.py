# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the tar writers (Docker's ExportChanges and archive.Tar) on real trees, as root.

Archives are read back with tarfile and GNU tar; the header fields tarfile normalises away
(the trailing ``/`` of directory names, the raw mode field) are checked on the raw blocks.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import stat
import struct
import subprocess
import tarfile

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import changes, difftar, errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.changes import ADD, DELETE, MODIFY, Change
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.idmap import IDMap, IdentityMapping

CAPS_V2 = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)
CAPS_V3_ROOTID_1000 = struct.pack("<6I", 0x03000001, 1 << 13, 0, 0, 0, 1000)
T = 1700000000
NS = 1000000000
CAPS_KEY = "SCHILY.xattr.security.capability"
LONG_NAME = "l" * 60 + "/" + "n" * 70


def _write(path, data, perm=0o644, owner=None, mtime_ns=T * NS + 987654321):
    with open(path, "wb") as handle:
        handle.write(data)
    if owner is not None:
        os.lchown(path, *owner)
    os.chmod(path, perm)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def _build_tree(root):
    """Every entry type, special bits, owners, caps, an unrelated xattr, hardlinks, long and non-ASCII names."""
    os.mkdir(root)
    os.makedirs(os.path.join(root, "dir/sub"))
    os.chmod(os.path.join(root, "dir"), 0o2750)
    os.lchown(os.path.join(root, "dir"), 3, 4)
    os.mkdir(os.path.join(root, "sticky"))
    os.chmod(os.path.join(root, "sticky"), 0o1777)
    _write(os.path.join(root, "dir/sub/file"), b"content\n", 0o640, (5, 6))
    _write(os.path.join(root, "setuid"), b"#!/bin/sh\n", 0o4755)
    _write(os.path.join(root, "caps"), b"\x7fELF", 0o755)
    os.setxattr(os.path.join(root, "caps"), "security.capability", CAPS_V2)
    os.setxattr(os.path.join(root, "caps"), "user.other", b"not exported")
    _write(os.path.join(root, "caps3"), b"\x7fELF3", 0o755)
    os.setxattr(os.path.join(root, "caps3"), "security.capability", CAPS_V3_ROOTID_1000)
    _write(os.path.join(root, "hard-a"), b"shared inode", 0o600)
    os.link(os.path.join(root, "hard-a"), os.path.join(root, "dir/hard-b"))
    _write(os.path.join(root, "empty"), b"", 0o600)
    os.symlink("dir/sub/file", os.path.join(root, "symlink"))
    os.utime(os.path.join(root, "symlink"), ns=(T * NS, T * NS), follow_symlinks=False)
    os.mknod(os.path.join(root, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(os.path.join(root, "null"), 0o666)
    os.mknod(os.path.join(root, "loop9"), stat.S_IFBLK | 0o660, os.makedev(7, 9))
    os.chmod(os.path.join(root, "loop9"), 0o660)
    os.mkfifo(os.path.join(root, "fifo"), 0o600)
    os.makedirs(os.path.join(root, os.path.dirname(LONG_NAME)))
    _write(os.path.join(root, LONG_NAME), b"long", 0o644)
    _write(os.path.join(root, "caf\u00e9"), b"non-ascii", 0o644)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.path.join(root, "sock"))
    finally:
        sock.close()


def _tar_bytes(writer, *args, **kwargs):
    out = io.BytesIO()
    written = writer(*args, out=out, **kwargs)
    data = out.getvalue()
    assert written == len(data), "%s reported %d bytes, wrote %d" % (writer.__name__, written, len(data))
    return data


def _members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        return {member.name: member for member in archive.getmembers()}


def _raw_headers(data):
    """(name field, mode field, typeflag) of each ustar header block, PAX extended headers included."""
    headers = []
    offset = 0
    while offset + 512 <= len(data):
        block = data[offset:offset + 512]
        if block == bytes(512):
            break
        size = int(block[124:135].rstrip(b"\0") or b"0", 8)
        flag = block[156:157]
        headers.append((block[:100].rstrip(b"\0"), block[100:108], flag, block[257:265], block[265:329]))
        offset += 512 + (size + 511) // 512 * 512
    return headers


def _mismatch(what, expected, actual):
    return "%s: expected %r, got %r" % (what, expected, actual)


# ---------------------------------------------------------------- write_tree_tar headers


# (entry name, tarfile type, perm incl. special bits, uid, gid, size, linkname)
TREE_ENTRIES = [
    ("caf\u00e9", tarfile.REGTYPE, 0o644, 0, 0, 9, ""),
    ("caps", tarfile.REGTYPE, 0o755, 0, 0, 4, ""),
    ("caps3", tarfile.REGTYPE, 0o755, 0, 0, 5, ""),
    ("dir", tarfile.DIRTYPE, 0o2750, 3, 4, 0, ""),
    ("dir/hard-b", tarfile.REGTYPE, 0o600, 0, 0, 12, ""),
    ("dir/sub", tarfile.DIRTYPE, 0o755, 0, 0, 0, ""),
    ("dir/sub/file", tarfile.REGTYPE, 0o640, 5, 6, 8, ""),
    ("empty", tarfile.REGTYPE, 0o600, 0, 0, 0, ""),
    ("fifo", tarfile.FIFOTYPE, 0o600, 0, 0, 0, ""),
    ("hard-a", tarfile.LNKTYPE, 0o600, 0, 0, 0, "dir/hard-b"),
    ("l" * 60, tarfile.DIRTYPE, 0o755, 0, 0, 0, ""),
    (LONG_NAME, tarfile.REGTYPE, 0o644, 0, 0, 4, ""),
    ("loop9", tarfile.BLKTYPE, 0o660, 0, 0, 0, ""),
    ("null", tarfile.CHRTYPE, 0o666, 0, 0, 0, ""),
    ("setuid", tarfile.REGTYPE, 0o4755, 0, 0, 10, ""),
    ("sticky", tarfile.DIRTYPE, 0o1777, 0, 0, 0, ""),
    ("symlink", tarfile.SYMTYPE, 0o777, 0, 0, 0, "dir/sub/file"),
]


@pytest.fixture
def tree(scratch):
    root = os.path.join(scratch, "tree")
    _build_tree(root)
    return root


@pytest.mark.parametrize("name, kind, perm, uid, gid, size, linkname", TREE_ENTRIES, ids=[entry[0] for entry in TREE_ENTRIES])
def test_write_tree_tar_entry_header_follows_dockers_rules(tree, name, kind, perm, uid, gid, size, linkname):
    member = _members(_tar_bytes(difftar.write_tree_tar, tree)).get(name)
    assert member is not None, "%s: no entry in the tar" % name
    st = os.lstat(os.path.join(tree, name))
    actual = (member.type, member.mode, member.uid, member.gid, member.size, member.linkname, member.mtime, member.uname, member.gname)
    # Docker 19.03 keeps the file type bits in the mode field (fillGo18FileTypeBits).
    expected = (kind, perm | stat.S_IFMT(st.st_mode), uid, gid, size, linkname, st.st_mtime_ns // NS, "", "")
    assert actual == expected, _mismatch("%s (type, mode, uid, gid, size, linkname, mtime, uname, gname)" % name, expected, actual)
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        devices = (member.devmajor, member.devminor)
        assert devices == (os.major(st.st_rdev), os.minor(st.st_rdev)), _mismatch("%s major/minor" % name, st.st_rdev, devices)


def test_write_tree_tar_walks_depth_first_in_bytewise_order_and_skips_root_and_sockets(tree):
    names = list(_members(_tar_bytes(difftar.write_tree_tar, tree)))
    expected = sorted((entry[0] for entry in TREE_ENTRIES), key=lambda name: [os.fsencode(part) for part in name.split("/")])
    assert names == expected, _mismatch("entry order", expected, names)


def test_raw_headers_end_dirs_with_slash_and_carry_type_bits_in_the_mode_field(tree):
    raw = {name: (mode, flag, magic, owners) for name, mode, flag, magic, owners in _raw_headers(_tar_bytes(difftar.write_tree_tar, tree))}
    assert raw[b"dir/"][:2] == (b"0042750\0", b"5"), _mismatch("raw dir/ header", (b"0042750\0", b"5"), raw.get(b"dir/"))
    assert raw[b"setuid"][0] == b"0104755\0", _mismatch("raw setuid mode field", b"0104755\0", raw[b"setuid"][0])
    for name, (_mode, _flag, magic, owners) in raw.items():
        assert magic == b"ustar\x0000", _mismatch("%r magic" % name, b"ustar\x0000", magic)
        assert owners == bytes(64), _mismatch("%r uname/gname" % name, bytes(64), owners)


def test_hardlinked_inode_is_written_once_then_as_link_entries(tree):
    members = _members(_tar_bytes(difftar.write_tree_tar, tree))
    first, second = members["dir/hard-b"], members["hard-a"]
    assert (first.type, first.size) == (tarfile.REGTYPE, 12), _mismatch("first name of the inode", (tarfile.REGTYPE, 12), (first.type, first.size))
    assert (second.type, second.linkname, second.size) == (tarfile.LNKTYPE, "dir/hard-b", 0), \
        _mismatch("second name of the inode", (tarfile.LNKTYPE, "dir/hard-b", 0), (second.type, second.linkname, second.size))


@pytest.mark.parametrize("name, expected", [("caps", CAPS_V2), ("caps3", CAPS_V3_ROOTID_1000[:3] + b"\x02" + CAPS_V3_ROOTID_1000[4:20])],
                         ids=["v2 kept", "v3 rewritten to v2"])
def test_security_capability_is_the_only_exported_xattr(tree, name, expected):
    member = _members(_tar_bytes(difftar.write_tree_tar, tree))[name]
    xattrs = {key: value for key, value in member.pax_headers.items() if key.startswith("SCHILY.xattr.")}
    assert list(xattrs) == [CAPS_KEY], _mismatch("%s xattr records" % name, [CAPS_KEY], list(xattrs))
    value = xattrs[CAPS_KEY].encode("utf-8", "surrogateescape")
    assert value == expected, _mismatch("%s caps bytes" % name, expected.hex(), value.hex())


# (case id, raw security.capability, what the tar carries)
CAPS_CASES = [
    ("absent", None, None),
    ("empty counts as absent", b"", None),
    ("v2 unchanged", CAPS_V2, CAPS_V2),
    ("v3 becomes v2, rootid dropped", CAPS_V3_ROOTID_1000, CAPS_V3_ROOTID_1000[:3] + b"\x02" + CAPS_V3_ROOTID_1000[4:20]),
    ("v1 unchanged", struct.pack("<3I", 0x01000000, 1, 0), struct.pack("<3I", 0x01000000, 1, 0)),
    ("too short to carry a revision", b"\x01\x00\x00", b"\x01\x00\x00"),
]


@pytest.mark.parametrize("raw, expected", [case[1:] for case in CAPS_CASES], ids=[case[0] for case in CAPS_CASES])
def test_caps_for_tar_rewrites_only_revision_3(raw, expected):
    actual = difftar.caps_for_tar(raw)
    assert actual == expected, _mismatch("caps_for_tar(%r)" % raw, expected, actual)


def test_long_non_ascii_and_large_values_travel_in_pax_records(scratch):
    root = os.path.join(scratch, "t")
    os.mkdir(root)
    _write(os.path.join(root, "big-ids"), b"x", owner=(3000000, 3000001))
    data = _tar_bytes(difftar.write_tree_tar, root)
    member = _members(data)["big-ids"]
    assert (member.uid, member.gid) == (3000000, 3000001), _mismatch("ids beyond 7 octal digits", (3000000, 3000001), (member.uid, member.gid))
    listing = subprocess.run(["tar", "-tvf", "-", "--numeric-owner"], input=data, capture_output=True, check=True).stdout
    assert b"3000000/3000001" in listing, "GNU tar should list the PAX uid/gid: %r" % listing


def test_gnu_tar_reads_long_and_non_ascii_names(tree):
    data = _tar_bytes(difftar.write_tree_tar, tree)
    listing = subprocess.run(["tar", "-tf", "-"], input=data, capture_output=True, check=True).stdout.decode("utf-8").split("\n")
    for name in (LONG_NAME, "caf\u00e9", "dir/"):
        assert name in listing, "GNU tar listing should contain %r: %r" % (name, listing)


def test_write_tree_tar_is_byte_for_byte_reproducible(tree):
    first = _tar_bytes(difftar.write_tree_tar, tree)
    second = _tar_bytes(difftar.write_tree_tar, tree)
    assert first == second, "two exports of %s differ (%d and %d bytes)" % (tree, len(first), len(second))
    assert len(first) % 512 == 0 and first[-1024:] == bytes(1024), "%s: the tar must end with two zero blocks" % tree


# ---------------------------------------------------------------- write_changes_tar


def test_changes_tar_writes_deletes_as_reproducible_whiteouts_in_path_order(tree):
    listed = [Change("/gone/deep", DELETE), Change("/dir", MODIFY), Change("/dir/sub/file", ADD), Change("/zz", DELETE), Change("/caps", MODIFY)]
    data = _tar_bytes(difftar.write_changes_tar, tree, listed)
    members = list(_members(data).values())
    names = [member.name for member in members]
    expected = ["caps", "dir", "dir/sub/file", "gone/.wh.deep", ".wh.zz"]
    assert names == expected, _mismatch("entry names", expected, names)
    for member in members[3:]:
        fields = (member.type, member.mode, member.uid, member.gid, member.mtime, member.size)
        assert fields == (tarfile.REGTYPE, 0, 0, 0, 0, 0), _mismatch("whiteout %s (type, mode, uid, gid, mtime, size)" % member.name,
                                                                     (tarfile.REGTYPE, 0, 0, 0, 0, 0), fields)
    again = _tar_bytes(difftar.write_changes_tar, tree, list(reversed(listed)))
    assert again == data, "exporting the same changes twice gave different bytes"


def test_changes_tar_skips_paths_that_vanished(tree):
    data = _tar_bytes(difftar.write_changes_tar, tree, [Change("/not-there", ADD), Change("/sock", ADD), Change("/empty", ADD)])
    names = list(_members(data))
    assert names == ["empty"], _mismatch("entries", ["empty"], names)


def _idmap():
    return IdentityMapping([IDMap(0, 100000, 65536)], [IDMap(0, 100000, 65536)])


def test_idmap_shifts_owners_to_container_ids_except_whiteouts(scratch):
    root = os.path.join(scratch, "layer")
    os.mkdir(root)
    _write(os.path.join(root, "owned"), b"x", owner=(100005, 100007))
    _write(os.path.join(root, ".wh.kept"), b"", owner=(100003, 100003))
    os.mknod(os.path.join(root, "whiteout"), stat.S_IFCHR, 0)
    os.lchown(os.path.join(root, "whiteout"), 100001, 100001)
    listed = [Change("/owned", ADD), Change("/.wh.kept", ADD), Change("/whiteout", ADD), Change("/deleted", DELETE)]
    members = _members(_tar_bytes(difftar.write_changes_tar, root, listed, idmap=_idmap()))
    owners = {name: (member.uid, member.gid) for name, member in members.items()}
    expected = {"owned": (5, 7), ".wh.kept": (100003, 100003), "whiteout": (100001, 100001), ".wh.deleted": (0, 0)}
    assert owners == expected, _mismatch("owners with a 0:100000:65536 map", expected, owners)
    plain = _members(_tar_bytes(difftar.write_changes_tar, root, listed, idmap=IdentityMapping()))
    assert (plain["owned"].uid, plain["owned"].gid) == (100005, 100007), "an empty map must leave host ids alone"


def test_idmap_refuses_an_owner_outside_the_map(scratch):
    root = os.path.join(scratch, "layer")
    os.mkdir(root)
    _write(os.path.join(root, "outsider"), b"x", owner=(5, 5))
    with pytest.raises(errors.IdMapError):
        difftar.write_changes_tar(root, [Change("/outsider", ADD)], io.BytesIO(), idmap=_idmap())


# ---------------------------------------------------------------- round trips through GNU tar


def _tar_visible_caps(path):
    """The caps an extracted copy should carry: a v3 value (with rootid) arrives as v2."""
    try:
        caps = os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError:
        return None
    return caps[:3] + b"\x02" + caps[4:20] if caps[3:4] == b"\x03" else caps


def _snapshot(root):
    """Everything a layer must reproduce, per relative path (dir mtimes excluded: applying moves them)."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            record = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_rdev]
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    record += [handle.read(), st.st_mtime_ns // NS]
            elif stat.S_ISLNK(st.st_mode):
                record.append(os.readlink(path))
            record.append(_tar_visible_caps(path))
            seen[os.path.relpath(path, root)] = record
    return seen


def _extract(data, dest):
    subprocess.run(["tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=security.capability", "-f", "-", "-C", dest],
                   input=data, check=True, capture_output=True)


def _apply_whiteouts(root):
    """GNU tar extracts whiteouts as plain files; do what Docker's UnpackLayer does with them."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(filenames):
            if name.startswith(".wh."):
                target = os.path.join(dirpath, name[len(".wh."):])
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                elif os.path.lexists(target):
                    os.unlink(target)
                os.unlink(os.path.join(dirpath, name))
        dirnames[:] = [d for d in dirnames if os.path.isdir(os.path.join(dirpath, d))]


def _assert_same_tree(expected_root, actual_root):
    expected, actual = _snapshot(expected_root), _snapshot(actual_root)
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    assert not missing and not extra, "%s vs %s: missing %r, unexpected %r" % (expected_root, actual_root, missing, extra)
    for rel in sorted(expected):
        assert actual[rel] == expected[rel], _mismatch("%s in %s" % (rel, actual_root), expected[rel], actual[rel])


def _mutate_layer(layer):
    _write(os.path.join(layer, "dir/sub/file"), b"rewritten, longer\n", 0o640, (5, 6))
    _write(os.path.join(layer, "setuid"), b"#!/bin/XX\n", 0o4755, mtime_ns=os.lstat(os.path.join(layer, "setuid")).st_mtime_ns)
    os.chmod(os.path.join(layer, "sticky"), 0o1770)
    os.unlink(os.path.join(layer, "empty"))
    shutil.rmtree(os.path.join(layer, "l" * 60))
    os.makedirs(os.path.join(layer, "new/deeper"))
    _write(os.path.join(layer, "new/deeper/f"), b"fresh", 0o600, (7, 8))
    os.link(os.path.join(layer, "new/deeper/f"), os.path.join(layer, "new/f-link"))
    os.symlink("../setuid", os.path.join(layer, "new/up"))
    os.unlink(os.path.join(layer, "fifo"))
    os.mkdir(os.path.join(layer, "fifo"))
    os.setxattr(os.path.join(layer, "caf\u00e9"), "security.capability", CAPS_V2)


def test_changes_tar_applied_with_gnu_tar_onto_the_parent_gives_the_layer(tree, scratch):
    os.unlink(os.path.join(tree, "sock"))
    layer = os.path.join(scratch, "layer")
    subprocess.run(["cp", "-a", tree, layer], check=True)
    _mutate_layer(layer)
    listed = changes.changes_dirs(layer, tree)
    assert Change("/setuid", MODIFY) in listed, "the same-size same-second rewrite of /setuid must be a change: %r" % listed
    data = _tar_bytes(difftar.write_changes_tar, layer, listed)
    target = os.path.join(scratch, "target")
    subprocess.run(["cp", "-a", tree, target], check=True)
    _extract(data, target)
    _apply_whiteouts(target)
    _assert_same_tree(layer, target)


def test_tree_tar_extracted_with_gnu_tar_gives_the_tree(tree, scratch):
    os.unlink(os.path.join(tree, "sock"))
    data = _tar_bytes(difftar.write_tree_tar, tree)
    target = os.path.join(scratch, "target")
    os.mkdir(target)
    _extract(data, target)
    _assert_same_tree(tree, target)


def test_export_from_the_upper_dir_equals_export_from_the_merged_view(scratch):
    paths = {name: os.path.join(scratch, name) for name in ("lower", "upper", "work", "merged")}
    for name in ("upper", "work", "merged"):
        os.mkdir(paths[name])
    _build_tree(paths["lower"])
    os.unlink(os.path.join(paths["lower"], "sock"))
    data = "lowerdir=%s,upperdir=%s,workdir=%s" % (paths["lower"], paths["upper"], paths["work"])
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", data, paths["merged"]], check=True, capture_output=True)
    try:
        _mutate_layer(paths["merged"])
        listed = changes.changes_from_upper(paths["upper"], paths["lower"])
        from_merged = _tar_bytes(difftar.write_changes_tar, paths["merged"], listed)
    finally:
        subprocess.run(["umount", paths["merged"]], check=True)
    from_upper = _tar_bytes(difftar.write_changes_tar, paths["upper"], listed)
    assert from_upper == from_merged, "export from %s (%d bytes) differs from the merged view's (%d bytes)" % (
        paths["upper"], len(from_upper), len(from_merged))
    assert any(name.endswith(".wh.empty") for name in _members(from_upper)), "the deleted /empty needs a whiteout entry"


def test_writing_to_a_real_file_gives_the_same_bytes_as_to_memory(tree, scratch):
    # Large files go through sendfile(2) when the output is a plain file; the bytes must not change.
    _write(os.path.join(tree, "large"), os.urandom(3 * 1024 * 1024 + 77), 0o644)
    _write(os.path.join(tree, "mid"), bytes(200 * 1024 + 1), 0o600)
    in_memory = _tar_bytes(difftar.write_tree_tar, tree)
    target = os.path.join(scratch, "out.tar")
    with open(target, "wb") as handle:
        written = difftar.write_tree_tar(tree, handle)
    with open(target, "rb") as handle:
        on_disk = handle.read()
    assert written == len(on_disk), _mismatch("bytes reported for %s" % target, len(on_disk), written)
    assert on_disk == in_memory, "%s (%d bytes) differs from the in-memory export (%d bytes)" % (target, len(on_disk), len(in_memory))
    assert _members(on_disk)["large"].size == 3 * 1024 * 1024 + 77


def test_export_reuses_the_walk_only_for_entries_that_did_not_change_since(scratch):
    # changes_from_upper hands its lstat and xattr names to write_changes_tar; a file changed
    # in between (content, size or mode: all move ctime) must be read afresh, as without the list's memory.
    paths = {name: os.path.join(scratch, name) for name in ("lower", "upper", "work", "merged")}
    for name in ("upper", "work", "merged"):
        os.mkdir(paths[name])
    _build_tree(paths["lower"])
    os.unlink(os.path.join(paths["lower"], "sock"))
    data = "lowerdir=%s,upperdir=%s,workdir=%s" % (paths["lower"], paths["upper"], paths["work"])
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", data, paths["merged"]], check=True, capture_output=True)
    try:
        _mutate_layer(paths["merged"])
    finally:
        subprocess.run(["umount", paths["merged"]], check=True)
    listed = changes.changes_from_upper(paths["upper"], paths["lower"])
    assert isinstance(listed, changes.UpperChanges) and listed.seen, "changes_from_upper should carry what it read"
    upper = paths["upper"]
    regular = [c.path for c in listed if c.kind != DELETE and stat.S_ISREG(os.lstat(upper + c.path).st_mode) and os.lstat(upper + c.path).st_size]
    assert regular, "the mutated layer needs a changed regular file with content"
    with open(upper + regular[0], "ab") as handle:
        handle.write(b"appended after the walk\n")
    if len(regular) > 1:
        os.chmod(upper + regular[1], 0o600)
    remembered = _tar_bytes(difftar.write_changes_tar, upper, listed)
    fresh = _tar_bytes(difftar.write_changes_tar, upper, list(listed))
    assert remembered == fresh, "export with the walk's memory (%d bytes) differs from a fresh one (%d bytes)" % (len(remembered), len(fresh))
    assert _members(remembered)[regular[0].lstrip("/")].size == os.lstat(upper + regular[0]).st_size
