"""Benchmark data set made of real Debian bookworm packages, cached under bench/.cache/.

Layout (one directory per package list, so changing the list builds a new set):

    .cache/debs/<pkg>_<version>_<arch>.deb      apt-get download, shared by every set
    .cache/data-<key>/base.tar                  every package's data tar merged into one layer
    .cache/data-<key>/upper1.tar                a layer that changes and adds a few thousand files
    .cache/data-<key>/upper2.tar                a layer with whiteouts and an opaque directory
    .cache/data-<key>/child28.tar               a 28-entry application layer: the peers' child diff
    .cache/data-<key>/manifest.json             what was built: entries, bytes, versions, choices

The layers are uncompressed tars with Docker's encodings (`.wh.<name>`, `<dir>/.wh..wh..opq`).
`make_container_changes` turns a mounted container layer into one with N changed files; it runs
at bench time, on the benchmark filesystem. Run this file alone to build and print the set.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import time

FORMAT = 2  # bump when the way the layers are made changes: it is part of the cache key

# Big, many-file packages first (the entry count), then big single files (the byte count).
PACKAGES = (
    "golang-1.19-src",
    "python3-django",
    "libruby3.1",
    "vim-runtime",
    "perl-modules-5.36",
    "tzdata",
    "python3-numpy",
    "libstdc++-12-dev",
    "locales",
    "libc6-dev",
    "coreutils",
    "libpython3.11-stdlib",
    "libpython3.11-minimal",
    "python3.11-minimal",
    "libc6",
    "bash",
    "util-linux",
    "findutils",
    "libssl3",
    "openssl",
    "binutils-x86-64-linux-gnu",
    "libicu72",
    "grep",
    "sed",
    "tar",
    "gzip",
)

UPPER1_CHANGED = 2000
UPPER1_ADDED = 1000
UPPER2_WHITEOUTS = 500
UPPER2_OPAQUE_NEW = 200
CHILD_ENTRIES = 28
SEED = 7
LAYERS = ("base", "upper1", "upper2", "child28")

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
CACHE_DIR = os.path.join(BENCH_DIR, ".cache")
DEB_DIR = os.path.join(CACHE_DIR, "debs")


def cache_key(packages=PACKAGES) -> str:
    """The data set's identity: the package list and the build format."""
    text = "\n".join(packages) + "\nformat=%d\n" % FORMAT
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def data_dir(packages=PACKAGES) -> str:
    return os.path.join(CACHE_DIR, "data-" + cache_key(packages))


def _log(msg: str) -> None:
    print("[dataset] " + msg, file=sys.stderr, flush=True)


def _deb_for(name: str) -> str | None:
    """The newest downloaded .deb of package `name`, or None."""
    if not os.path.isdir(DEB_DIR):
        return None
    found = [f for f in os.listdir(DEB_DIR) if f.startswith(name + "_") and f.endswith(".deb")]
    if not found:
        return None
    found.sort(key=lambda f: os.stat(os.path.join(DEB_DIR, f)).st_mtime)
    return os.path.join(DEB_DIR, found[-1])


def download(packages=PACKAGES) -> dict[str, str]:
    """apt-get download whatever is not cached yet; returns package -> .deb path."""
    os.makedirs(DEB_DIR, exist_ok=True)
    missing = [p for p in packages if _deb_for(p) is None]
    if missing:
        _log("apt-get download %d packages" % len(missing))
        # As root into a directory _apt cannot write, apt warns and downloads unsandboxed: harmless.
        subprocess.run(["apt-get", "download", "-q"] + missing, cwd=DEB_DIR, check=True,
                       stdout=subprocess.DEVNULL)
    debs = {}
    for p in packages:
        path = _deb_for(p)
        if path is None:
            raise RuntimeError("apt-get download did not produce a .deb for %s" % p)
        debs[p] = path
    return debs


def _norm(name: str) -> str:
    """Tar member names without the './' prefix that dpkg data tars carry."""
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def merge_base(debs: dict[str, str], out_path: str) -> dict:
    """Concatenate every package's data tar into one layer tar, first entry of a path wins."""
    seen: set[str] = set()
    entries = files = dup_dirs = dup_other = 0
    versions = {}
    tmp = out_path + ".part"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as out:
        for pkg, deb in debs.items():
            versions[pkg] = os.path.basename(deb)
            proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
            try:
                with tarfile.open(fileobj=proc.stdout, mode="r|") as src:
                    for m in src:
                        name = _norm(m.name)
                        if not name or name == ".":
                            continue
                        if name in seen:
                            if m.isdir():
                                dup_dirs += 1
                            else:
                                dup_other += 1
                            continue
                        seen.add(name)
                        m.name = name
                        if m.islnk():
                            m.linkname = _norm(m.linkname)
                        out.addfile(m, src.extractfile(m) if m.isreg() else None)
                        entries += 1
                        files += m.isreg()
            finally:
                proc.stdout.close()
                if proc.wait() != 0:
                    raise RuntimeError("dpkg-deb --fsys-tarfile %s failed" % deb)
    os.replace(tmp, out_path)
    return {"entries": entries, "regular_files": files, "duplicate_dirs_dropped": dup_dirs,
            "duplicate_others_dropped": dup_other, "bytes": os.path.getsize(out_path), "versions": versions}


def _index(base_path: str) -> tuple[list[tarfile.TarInfo], dict[str, tarfile.TarInfo]]:
    with tarfile.open(base_path, "r:") as tf:
        members = tf.getmembers()
    return members, {m.name: m for m in members}


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _add_parents(out: tarfile.TarFile, name: str, by_name: dict, written: set[str]) -> None:
    """Docker's layer tars carry each changed path's parent dirs; copy them from the base."""
    for p in _parents(name):
        if p in written:
            continue
        written.add(p)
        base = by_name.get(p)
        info = tarfile.TarInfo(p)
        info.type = tarfile.DIRTYPE
        if base is not None:
            info.mode, info.uid, info.gid, info.mtime = base.mode, base.uid, base.gid, base.mtime
            info.uname, info.gname = base.uname, base.gname
        else:
            info.mode, info.mtime = 0o755, 1700000000
        out.addfile(info)


def _blob(rng: random.Random, size: int) -> bytes:
    """Compressible-ish deterministic content of `size` bytes."""
    chunk = rng.randbytes(min(size, 4096)) if size else b""
    return (chunk * (size // max(len(chunk), 1) + 1))[:size]


def _dirs_with_files(members) -> dict[str, list[tarfile.TarInfo]]:
    dirs: dict[str, list[tarfile.TarInfo]] = {}
    for m in members:
        if m.isreg():
            dirs.setdefault(os.path.dirname(m.name), []).append(m)
    return dirs


def _spread(names, count: int, salt: str) -> list:
    """A deterministic selection spread over the whole tree (sorted by a hash, not by path)."""
    return sorted(names, key=lambda n: hashlib.sha256((salt + n).encode()).digest())[:count]


def make_upper1(base_path: str, members, by_name, out_path: str) -> dict:
    """A layer that rewrites UPPER1_CHANGED base files (grown by a line) and adds UPPER1_ADDED files."""
    rng = random.Random(SEED)
    small = [m.name for m in members if m.isreg() and 0 < m.size <= 256 * 1024]
    changed = set(_spread(small, UPPER1_CHANGED, "upper1"))
    written: set[str] = set()
    entries = 0
    with tarfile.open(base_path, "r:") as src, tarfile.open(out_path + ".part", "w", format=tarfile.PAX_FORMAT) as out:
        for m in members:
            if m.name not in changed:
                continue
            data = src.extractfile(m).read() + b"\n# changed by upper1\n"
            _add_parents(out, m.name, by_name, written)
            info = tarfile.TarInfo(m.name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), m.mode, m.uid, m.gid, m.mtime + 1
            out.addfile(info, io.BytesIO(data))
            entries += 1
        sizes = [m.size for m in members if m.isreg()]
        dirs = sorted(d for d in _dirs_with_files(members) if d)
        for i in range(UPPER1_ADDED):
            name = "%s/upper1-added-%04d.bin" % (dirs[i * 7919 % len(dirs)], i)
            size = min(sizes[rng.randrange(len(sizes))], 512 * 1024)
            _add_parents(out, name, by_name, written)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = size, 0o644, 1700000000 + i
            out.addfile(info, io.BytesIO(_blob(rng, size)))
            entries += 1
        entries += len(written)
    os.replace(out_path + ".part", out_path)
    return {"entries": entries, "changed_files": len(changed), "added_files": UPPER1_ADDED,
            "bytes": os.path.getsize(out_path)}


def _subtree_sizes(members) -> dict[str, int]:
    count: dict[str, int] = {}
    for m in members:
        for p in _parents(m.name):
            count[p] = count.get(p, 0) + 1
    return count


def make_upper2(members, by_name, out_path: str) -> dict:
    """A layer with file whiteouts, whole-directory whiteouts and one opaque directory."""
    rng = random.Random(SEED + 1)
    sub = _subtree_sizes(members)
    dirs = {m.name for m in members if m.isdir()}
    opaque = _spread([d for d in dirs if 100 <= sub.get(d, 0) <= 1000 and d.count("/") >= 3], 1, "opaque")[0]
    away = [d for d in dirs if 20 <= sub.get(d, 0) <= 300 and not d.startswith(opaque) and not opaque.startswith(d)]
    gone_dirs = []
    for d in _spread(away, 50, "whiteout-dir"):
        if all(not d.startswith(g + "/") and not g.startswith(d + "/") for g in gone_dirs):
            gone_dirs.append(d)
        if len(gone_dirs) == 2:
            break
    hidden = tuple(g + "/" for g in gone_dirs) + (opaque + "/",)
    files = [m.name for m in members if not m.isdir() and not m.name.startswith(hidden)]
    gone_files = _spread(files, UPPER2_WHITEOUTS, "whiteout-file")
    written: set[str] = set()
    entries = 0
    with tarfile.open(out_path + ".part", "w", format=tarfile.PAX_FORMAT) as out:
        for name in sorted(gone_files + gone_dirs):
            wh = os.path.join(os.path.dirname(name), ".wh." + os.path.basename(name))
            _add_parents(out, wh, by_name, written)
            info = tarfile.TarInfo(wh)
            info.mode, info.mtime = 0o644, 0
            out.addfile(info)
            entries += 1
        _add_parents(out, opaque + "/x", by_name, written)
        info = tarfile.TarInfo(opaque + "/.wh..wh..opq")
        info.mode, info.mtime = 0o644, 0
        out.addfile(info)
        entries += 1
        for i in range(UPPER2_OPAQUE_NEW):
            name = "%s/opaque-new-%03d.txt" % (opaque, i)
            data = _blob(rng, rng.randrange(100, 20000))
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000 + i
            out.addfile(info, io.BytesIO(data))
            entries += 1
        entries += len(written)
    os.replace(out_path + ".part", out_path)
    return {"entries": entries, "whiteout_files": len(gone_files), "whiteout_dirs": gone_dirs,
            "opaque_dir": opaque, "opaque_hid": sub.get(opaque, 0), "opaque_new_files": UPPER2_OPAQUE_NEW,
            "bytes": os.path.getsize(out_path)}


def make_child(members, by_name, out_path: str) -> dict:
    """A small application layer of exactly CHILD_ENTRIES entries: rewritten base files with their
    parent dirs, one new file and one whiteout, as a `COPY`/`RUN` step on top of a base makes."""
    rng = random.Random(SEED + 2)
    small = [m for m in members if m.isreg() and 0 < m.size <= 64 * 1024]
    written: set[str] = set()
    changed = []
    reserve = 2  # the new file and the whiteout, both in a directory the layer already has
    entries = 0
    with tarfile.open(out_path + ".part", "w", format=tarfile.PAX_FORMAT) as out:
        for m in sorted(small, key=lambda m: hashlib.sha256(("child" + m.name).encode()).digest()):
            if entries == CHILD_ENTRIES - reserve:
                break
            new_parents = [p for p in _parents(m.name) if p not in written]
            if entries + len(new_parents) + 1 > CHILD_ENTRIES - reserve:
                continue
            _add_parents(out, m.name, by_name, written)
            data = _blob(rng, m.size)
            info = tarfile.TarInfo(m.name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), m.mode, m.uid, m.gid, 1700000000
            out.addfile(info, io.BytesIO(data))
            changed.append(m.name)
            entries += len(new_parents) + 1
        home = os.path.dirname(changed[0])
        gone = next(m.name for m in small if os.path.dirname(m.name) == home and m.name not in changed)
        info = tarfile.TarInfo(home + "/.wh." + os.path.basename(gone))
        info.mode, info.mtime = 0o644, 1700000000
        out.addfile(info)
        data = b"added by the application layer\n" * 100
        info = tarfile.TarInfo(home + "/child-added.conf")
        info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
        out.addfile(info, io.BytesIO(data))
        entries += 2
    os.replace(out_path + ".part", out_path)
    return {"entries": entries, "changed_files": len(changed), "added_files": 1, "whiteouts": 1,
            "bytes": os.path.getsize(out_path)}


def build(packages=PACKAGES, force: bool = False) -> dict:
    """Build the data set unless it is cached; returns the manifest with absolute paths."""
    ddir = data_dir(packages)
    manifest_path = os.path.join(ddir, "manifest.json")
    if not force and os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        manifest["cached"] = True
    else:
        started = time.monotonic()
        os.makedirs(ddir, exist_ok=True)
        debs = download(packages)
        t_dl = time.monotonic() - started
        base = os.path.join(ddir, "base.tar")
        _log("merging %d package data tars into %s" % (len(debs), base))
        base_info = merge_base(debs, base)
        members, by_name = _index(base)
        _log("making upper1.tar and upper2.tar")
        manifest = {
            "key": cache_key(packages),
            "packages": list(packages),
            "base": base_info,
            "upper1": make_upper1(base, members, by_name, os.path.join(ddir, "upper1.tar")),
            "upper2": make_upper2(members, by_name, os.path.join(ddir, "upper2.tar")),
            "child28": make_child(members, by_name, os.path.join(ddir, "child28.tar")),
            "build_seconds": round(time.monotonic() - started, 1),
            "download_seconds": round(t_dl, 1),
        }
        with open(manifest_path + ".part", "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        os.replace(manifest_path + ".part", manifest_path)
        manifest["cached"] = False
    for layer in LAYERS:
        manifest[layer]["path"] = os.path.join(ddir, layer + ".tar")
    return manifest


def summary(manifest: dict) -> str:
    b, u1, u2, c = manifest["base"], manifest["upper1"], manifest["upper2"], manifest["child28"]
    return "\n".join((
        "data set %s (%s, %d packages)" % (manifest["key"], "cached" if manifest.get("cached") else
                                           "built in %.1f s" % manifest["build_seconds"], len(manifest["packages"])),
        "  base.tar:   %6d entries, %4d MB (%d regular files)" % (b["entries"], b["bytes"] // 10**6, b["regular_files"]),
        "  upper1.tar: %6d entries, %4d MB (%d changed, %d added files)" % (
            u1["entries"], u1["bytes"] // 10**6, u1["changed_files"], u1["added_files"]),
        "  upper2.tar: %6d entries, %4d MB (%d file whiteouts, dir whiteouts %s, opaque %s hiding %d entries)" % (
            u2["entries"], u2["bytes"] // 10**6, u2["whiteout_files"], ", ".join(u2["whiteout_dirs"]),
            u2["opaque_dir"], u2["opaque_hid"]),
        "  child28.tar: %5d entries, %4d kB (%d rewritten files, %d added, %d whiteout)" % (
            c["entries"], c["bytes"] // 1000, c["changed_files"], c["added_files"], c["whiteouts"]),
    ))


def make_container_changes(merged: str, count: int = 10000, seed: int = SEED) -> dict:
    """Change `count` files through a mounted container layer so its upper holds real copy-ups,
    char 0/0 whiteouts and an opaque dir: 80 % rewritten, 10 % added, 10 % deleted, plus one
    directory removed and made again (the kernel marks it opaque)."""
    rng = random.Random(seed)
    candidates = []
    for dirpath, dirnames, filenames in os.walk(merged):
        dirnames.sort()
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            if os.path.isfile(p) and not os.path.islink(p) and st.st_size <= 1024 * 1024:
                candidates.append(p)
    n_del = count // 10
    n_add = count // 10
    picked = rng.sample(candidates, count - n_add)
    deleted, rewritten = picked[:n_del], picked[n_del:]
    for p in rewritten:
        with open(p, "ab") as f:
            f.write(b"\n# changed in the container\n")
    for p in deleted:
        os.unlink(p)
    for i in range(n_add):
        d = os.path.dirname(candidates[rng.randrange(len(candidates))])
        if not os.path.isdir(d):
            continue
        with open(os.path.join(d, "container-added-%05d" % i), "wb") as f:
            f.write(_blob(rng, rng.randrange(10, 30000)))
    opaque = None
    for p in sorted(set(os.path.dirname(c) for c in candidates)):
        if os.path.isdir(p) and 5 <= len(os.listdir(p)) <= 50 and p.count("/") > merged.count("/") + 2:
            opaque = p
            break
    if opaque is not None:
        subprocess.run(["rm", "-rf", opaque], check=True)
        os.mkdir(opaque)
        for i in range(10):
            with open(os.path.join(opaque, "fresh-%d" % i), "wb") as f:
                f.write(_blob(rng, 1000))
    return {"rewritten": len(rewritten), "deleted": len(deleted), "added": n_add,
            "opaque_dir": opaque and os.path.relpath(opaque, merged)}


def main() -> int:
    force = "--force" in sys.argv[1:]
    started = time.monotonic()
    manifest = build(force=force)
    print(summary(manifest))
    print("  (%.1f s this run; cache in %s)" % (time.monotonic() - started, data_dir()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
