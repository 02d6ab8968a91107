"""One timed operation in a fresh interpreter: `python worker.py OP JSON_ARGS`.

Prints one JSON object on stdout: {"seconds": ..., "extra": {...}}, or {"unavailable": why} when
a part of the driver (or one of its functions) does not exist yet, or {"error": text}. Imports
happen before the clock starts; the parent reads the peak memory from wait4.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import json
import os
import sys
import time

PKG = "ansible_collections.graphdriver.overlay.plugins.module_utils._overlay"


class Unavailable(Exception):
    pass


def part(name: str, *attrs: str):
    """Import a driver part; Unavailable if the file (or a named function) is not there yet."""
    full = PKG + "." + name
    try:
        mod = importlib.import_module(full)
    except ModuleNotFoundError as e:
        if e.name == full:
            raise Unavailable("part missing: _overlay/%s.py" % name) from None
        raise
    for a in attrs:
        if not hasattr(mod, a):
            raise Unavailable("part incomplete: %s.%s" % (name, a))
    return mod


def open_diff():
    """The driver's open_diff: in decompress.py, or in layertar.py in checkouts before the split."""
    try:
        return part("decompress", "open_diff").open_diff
    except Unavailable:
        return part("layertar", "open_diff").open_diff


def _hwm_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def op_apply(a):
    layertar = part("layertar", "apply_layer")
    opener = open_diff()

    def run():
        with opener(a["tar"]) as stream:
            r = layertar.apply_layer(a["dest"], stream)
        return {"entries": r.entries, "size": r.size}
    return run


def op_apply_chain(a):
    layertar = part("layertar", "open_diff", "apply_layer")

    def run():
        entries = 0
        for tar in a["tars"]:
            with layertar.open_diff(tar) as stream:
                entries += layertar.apply_layer(a["dest"], stream).entries
        return {"entries": entries}
    return run


def op_child(a):
    treecopy = part("treecopy", "dir_copy", "HARDLINK")
    layertar = part("layertar", "apply_layer")
    opener = open_diff()

    def run():
        treecopy.dir_copy(a["parent"], a["dest"], treecopy.HARDLINK)
        with opener(a["tar"]) as stream:
            r = layertar.apply_layer(a["dest"], stream)
        return {"entries": r.entries}
    return run


def _copy(mode_name):
    def op(a):
        treecopy = part("treecopy", "dir_copy", mode_name)

        def run():
            st = treecopy.dir_copy(a["src"], a["dest"], getattr(treecopy, mode_name))
            return {"entries": st.entries, "bytes": st.bytes}
        return run
    return op


def op_diff(a):
    changes = part("changes", "changes_from_upper")
    difftar = part("difftar", "write_changes_tar")

    def run():
        found = changes.changes_from_upper(a["upper"], a["lower"])
        # The changed paths all exist in the upper (overlayfs copies parents up), so the upper
        # serves as the root that the naive driver would have mounted.
        with open(a["out"], "wb") as out:
            written = difftar.write_changes_tar(a["upper"], found, out)
        return {"changes": len(found), "bytes": written}
    return run


def op_changes(a):
    changes = part("changes", "changes_from_upper")

    def run():
        return {"changes": len(changes.changes_from_upper(a["upper"], a["lower"]))}
    return run


def op_mount_kernel(a):
    kernel = part("kernel", "mount", "unmount", "overlay_mount_data")
    data = kernel.overlay_mount_data(a["lower"], a["upper"], a["work"])

    def run():
        for _cycle in range(a["cycles"]):
            kernel.mount("overlay", a["merged"], "overlay", 0, data)
            kernel.unmount(a["merged"])
        return {"cycles": a["cycles"]}
    return run


def op_mount_raw(a):
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    data = ("lowerdir=%s,upperdir=%s,workdir=%s" % (a["lower"], a["upper"], a["work"])).encode()
    target = a["merged"].encode()

    def run():
        for _cycle in range(a["cycles"]):
            if libc.mount(b"overlay", target, b"overlay", 0, data) != 0:
                raise OSError(ctypes.get_errno(), "mount")
            if libc.umount2(target, 0) != 0:
                raise OSError(ctypes.get_errno(), "umount2")
        return {"cycles": a["cycles"]}
    return run


def op_mount_driver(a):
    driver = part("driver", "Driver")
    d = driver.Driver(a["home"])
    d.create("bench-image")
    d.create("bench-container", "bench-image")

    def run():
        for _cycle in range(a["cycles"]):
            d.mount("bench-container", "bench")
            d.unmount("bench-container", "bench")
        return {"cycles": a["cycles"]}
    return run


def op_noop(a):
    for name in a.get("parts", ()):
        try:
            part(name)
        except Unavailable:
            pass
    return lambda: {}


OPS = {
    "apply": op_apply,
    "apply_chain": op_apply_chain,
    "child": op_child,
    "hardlink_copy": _copy("HARDLINK"),
    "content_copy": _copy("CONTENT"),
    "diff": op_diff,
    "changes": op_changes,
    "mount_kernel": op_mount_kernel,
    "mount_raw": op_mount_raw,
    "mount_driver": op_mount_driver,
    "noop": op_noop,
}


def main() -> int:
    op, args = sys.argv[1], json.loads(sys.argv[2])
    try:
        run = OPS[op](args)
        hwm = _hwm_kb()
        t0 = time.perf_counter()
        extra = run() or {}
        seconds = time.perf_counter() - t0
    except Unavailable as e:
        print(json.dumps({"unavailable": str(e)}))
        return 0
    except Exception as e:  # noqa: BLE001 - any failure of the code under test is reported, not raised
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
        return 1
    extra["rss_before_op_kb"] = hwm
    extra["rss_peak_kb"] = _hwm_kb()
    print(json.dumps({"seconds": seconds, "extra": extra}))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: it is not part of the operation


if __name__ == "__main__":
    sys.exit(main())
