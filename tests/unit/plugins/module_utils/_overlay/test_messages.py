# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every message a module can fail with, triggered for real: each names the thing, the value and the fix.

Each row builds a real home (and files beside it), runs the task a module runs, and checks
the message the module would show (``overlay_driver.describe``), with ``{home}`` and
``{files}`` standing for the row's paths.
"""

from __future__ import annotations

import gzip
import io
import json
import multiprocessing
import os
import re
import tarfile

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils import overlay_driver
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import driver as driver_mod
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.layerplan import LayerTask
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.mountplan import MountTask


def _tar_bytes(files: dict) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class Place:
    """A home and a dir of files beside it."""

    def __init__(self, scratch: str) -> None:
        self.home = os.path.join(scratch, "overlay")
        self.files = os.path.join(scratch, "files")
        os.mkdir(self.files)
        self.driver = driver_mod.Driver(self.home)

    def file(self, name: str, data: bytes) -> str:
        path = os.path.join(self.files, name)
        with open(path, "wb") as handle:
            handle.write(data)
        return path

    def base(self) -> None:
        self.driver.create("base", None, None, self.file("base.tar", _tar_bytes({"etc/motd": b"base\n"})))

    def layer(self, **params):
        params.setdefault("state", "present")
        return LayerTask(self.driver, params).run()

    def mount(self, **params):
        params.setdefault("state", "mounted")
        return MountTask(self.driver, params).run()


def _docker_data_root(place: Place) -> None:
    for name in ("image", "containers", "volumes/v1/_data"):
        os.makedirs(os.path.join(place.home, name))


def _absent_volume(place: Place):
    _docker_data_root(place)
    place.layer(id="volumes", state="absent", force=True)


def _symlinked_id(place: Place):
    place.base()
    os.symlink(place.driver.dir("base"), place.driver.dir("alias"))
    place.layer(id="alias", state="exported", dest=os.path.join(place.files, "out.tar"))


def _symlinked_upper(place: Place):
    place.base()
    place.driver.create("c1", "base")
    upper = os.path.join(place.driver.dir("c1"), "upper")
    os.rmdir(upper)
    os.symlink(place.files, upper)
    place.mount(id="c1")


def _lower_is_a_symlink(place: Place):
    place.base()
    place.driver.create("c1", "base")
    os.symlink(place.driver.dir("base"), place.driver.dir("alias"))
    with open(os.path.join(place.driver.dir("c1"), "lower-id"), "w", encoding="utf-8") as handle:
        handle.write("alias")
    place.mount(id="c1")


def _diff_of(data: bytes):
    def run(place: Place):
        place.layer(id="x", diff=place.file("diff", data))
    return run


def _truncated_gzip(place: Place):
    place.layer(id="x", diff=place.file("cut.tar.gz", gzip.compress(_tar_bytes({"a": os.urandom(20000)}))[:-6000]))


def _differs(place: Place):
    place.base()
    place.layer(id="base", diff=place.file("other.tar", _tar_bytes({"other": b"1"})))


def _busy(place: Place):
    place.base()
    place.driver.create("c1", "base")
    place.driver.mount("c1", "web")
    place.layer(id="c1", state="absent")


def _corrupt_holders(place: Place):
    place.base()
    place.driver.create("c1", "base")
    path = os.path.join(place.home, ".graphdriver", "holders", "c1.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"holders": "web"}, handle)
    place.mount(id="c1")


def _image_info_missing(place: Place):
    overlay_driver.image_info(os.path.join(place.files, "no-such-image"), None)


def _image_info_file(place: Place):
    overlay_driver.image_info(place.file("image.tar", b"x"), None)


class _Module:
    _name = "overlay_layer"


def _require_root_as(uid: int, queue) -> None:
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    try:
        overlay_driver.require_root(_Module())
    except errors.OverlayError as exc:
        queue.put(overlay_driver.describe(exc))
    else:
        queue.put("no error")


def _not_root(place: Place):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_require_root_as, args=(65534, queue))
    child.start()
    message = queue.get(timeout=60)
    child.join(60)
    raise errors.NotSupported(message)


H = re.escape("{home}")
F = re.escape("{files}")

# name, what runs, the error class, the message (a regex; {home} and {files} are the row's paths)
MESSAGES = [
    ("bad id", lambda p: p.layer(id="../etc"), errors.InvalidArgument,
     r"^invalid layer id '\.\./etc': it must match .* \(letters, digits, '_', '\.', '-'; no slash"),
    ("own parent", lambda p: p.layer(id="a", parent="a"), errors.InvalidArgument, r"^layer a cannot be its own parent$"),
    ("bad holder", lambda p: p.mount(id="a", holder="a b"), errors.InvalidArgument, r"^invalid holder name 'a b'"),
    ("storage_opt", lambda p: p.layer(id="a", storage_opt={"size": "1G"}), errors.InvalidArgument,
     r"^--storage-opt is not supported for overlay$"),
    ("driver option", lambda p: driver_mod.Driver(p.home, ["overlay.size=1G"]), errors.InvalidArgument, r"^overlay: unknown option overlay\.size$"),
    ("bad id map", lambda p: driver_mod.Driver(p.home, uid_maps=[{"container_id": 0, "host_id": -1, "size": 1}]), errors.InvalidArgument,
     r"uid_maps.*host_id=-1, not an integer >= 0"),
    ("missing parent", lambda p: p.layer(id="a", parent="nope"), errors.LayerNotFound, r"^parent layer nope does not exist$"),
    ("export of a missing layer", lambda p: p.layer(id="nope", state="exported", dest="/tmp/x.tar"), errors.LayerNotFound,
     r"^layer nope does not exist$"),
    ("export dir missing", lambda p: (p.base(), p.layer(id="base", state="exported", dest=os.path.join(p.files, "no", "x.tar"))),
     errors.InvalidArgument, r"^cannot export layer base to " + F + r"/no/x\.tar: the directory " + F + r"/no does not exist$"),
    ("foreign in a Docker data-root", _absent_volume, errors.NotALayer,
     "^" + H + r"/volumes is not a layer \(a layer is a real directory holding root/, upper/ or a lower-id file\): "
     r"the driver leaves it alone; " + H + " looks like a Docker data-root: home should be " + H + "/overlay$"),
    ("symlinked id", _symlinked_id, errors.NotALayer, "^" + H + r"/alias is not a layer \(a layer is a real directory"),
    ("symlinked upper", _symlinked_upper, errors.CorruptState,
     r"^layer c1 holds symlinks where the driver keeps its own entries \(" + H + r"/c1/upper\): the driver follows no symlink "
     r"under home; remove it with overlay_layer state=absent force=true and recreate it$"),
    ("lower is a symlink", _lower_is_a_symlink, errors.LayerNotFound,
     r"^layer c1 cannot be mounted: its lower layer alias is not an image layer \(expected a real directory " + H + r"/alias/root\); "
     r"recreate alias or remove c1$"),
    ("diff is text", _diff_of(b"hello, this is not a tar\n"), errors.ArchiveError,
     "^" + F + r"/diff is not a tar archive: it looks like text, starting 'hello, this is not a tar'$"),
    ("diff is empty", _diff_of(b""), errors.ArchiveError, "^" + F + r"/diff is not a tar archive: it is empty$"),
    ("diff is lz4", _diff_of(b"\x04\x22\x4d\x18" + bytes(600)), errors.ArchiveError,
     "^" + F + r"/diff is not a tar archive: it looks like lz4-compressed data \(not supported: recompress it with gzip, xz or zstd\)$"),
    ("diff is noise", _diff_of(bytes(range(1, 256)) * 4), errors.ArchiveError,
     "^" + F + r"/diff is not a tar archive: its first bytes are 0102030405060708, an unknown format or compression"),
    ("diff is missing", lambda p: p.layer(id="x", diff=os.path.join(p.files, "nope.tar")), errors.ArchiveError,
     "^cannot open the diff " + F + r"/nope\.tar: No such file or directory$"),
    ("diff is a dir", lambda p: p.layer(id="x", diff=p.files), errors.ArchiveError, "^cannot open the diff " + F + ": Is a directory$"),
    ("diff is truncated", _truncated_gzip, errors.ArchiveError,
     "^the diff " + F + r"/cut\.tar\.gz: cannot read the archive .*: Compressed file ended before the end-of-stream marker"),
    ("layer differs", _differs, errors.LayerConflict,
     r"^layer base exists but differs: its diff digest is sha256:[0-9a-f]{64}, but " + F + r"/other\.tar is sha256:[0-9a-f]{64}; "
     r"set force: true to remove and recreate it$"),
    ("layer busy", _busy, errors.LayerBusy,
     r"^layer c1 is mounted \(holders: web\); unmount it first \(overlay_mount state=unmounted for each holder\) or set force: true$"),
    ("layer has children", lambda p: (p.base(), p.driver.create("c1", "base"), p.layer(id="base", state="absent")), errors.LayerBusy,
     r"^layer base has dependent layers: c1; remove the dependent layers first or set force: true$"),
    ("empty home", lambda p: driver_mod.Driver(""), errors.InvalidArgument,
     r"^home must be a non-empty path, got '': set it to the driver's directory, Docker's <data-root>/overlay$"),
    ("corrupt holders", _corrupt_holders, errors.CorruptState,
     r"^holders file " + H + r"/\.graphdriver/holders/c1\.json: \"holders\" is not a list of non-empty strings"),
    ("image archive missing", _image_info_missing, errors.ArchiveError,
     "^image archive " + F + r"/no-such-image does not exist: give the directory where the docker save or OCI archive was extracted$"),
    ("image archive file is no tar", _image_info_file, errors.ArchiveError, "^image archive " + F + r"/image\.tar: not a readable tar: "),
    ("not root", _not_root, errors.NotSupported, r"^overlay_layer must be run as root \(it runs as uid 65534\): use become: true on the task or the play$"),
]


@pytest.mark.parametrize("name, run, error, pattern", MESSAGES, ids=[row[0] for row in MESSAGES])
def test_every_message_names_the_thing_the_value_and_the_fix(scratch, name, run, error, pattern):
    place = Place(scratch)
    try:
        with pytest.raises(errors.OverlayError) as caught:
            run(place)
    finally:
        place.driver.cleanup()
    message = overlay_driver.describe(caught.value)
    expected = pattern.replace(re.escape("{home}"), re.escape(place.home)).replace(re.escape("{files}"), re.escape(place.files))
    assert type(caught.value).__name__ == error.__name__, "%s: expected %s, got %s: %s" % (name, error.__name__, type(caught.value).__name__, message)
    assert re.search(expected, message), "%s: %r does not match %r" % (name, message, expected)
