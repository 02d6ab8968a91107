"""The cases that go through Ansible itself: an idempotent overlay_layer task, overlay_facts on a
home with 1,000 layers, each next to an ansible.builtin.stat task, and overlay_facts' module time.

Each needs its module; until plugins/modules/overlay_layer.py or overlay_facts.py exists, the
cases that use it report 'not available yet' and the others run as usual. Run as a script
(`python ansible_cases.py build-home HOME N`, with PYTHONPATH set to the collections root) it
builds the 1,000-layer home by calling overlay_layer's main() in one process.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time

import harness

MODULES = "ansible_collections.graphdriver.overlay.plugins.modules"
CHAIN = 10          # the home is N/CHAIN chains of CHAIN image layers each


def layer_id(i: int) -> str:
    return "L%04d" % i


def missing_modules(repo: str) -> list[str]:
    return [m for m in ("overlay_layer", "overlay_facts")
            if not os.path.exists(os.path.join(repo, "plugins", "modules", m + ".py"))]


def _tiny_diff(path: str) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        data = b"one layer of a thousand\n"
        info = tarfile.TarInfo("etc/bench-layer")
        info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
        tf.addfile(info, io.BytesIO(data))


def build_home(home: str, count: int) -> None:
    """Create `count` image layers under `home` through overlay_layer's own code, in-process."""
    from ansible.module_utils.testing import patch_module_args
    mod = importlib.import_module(MODULES + ".overlay_layer")
    diff = os.path.join(os.path.dirname(home), "layer.tar")
    _tiny_diff(diff)
    for i in range(count):
        args = {"home": home, "id": layer_id(i), "diff": diff}
        if i % CHAIN:
            args["parent"] = layer_id(i - 1)
        out = io.StringIO()
        with patch_module_args(args), contextlib.redirect_stdout(out):
            try:
                mod.main()
                code = 0
            except SystemExit as e:
                code = e.code or 0
        if code:
            raise RuntimeError("overlay_layer %s failed: %s" % (args, out.getvalue()[-500:]))


def _module_args_file(path: str, args: dict) -> str:
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
    return path


def _unavailable(why: str):
    def measure(_args):
        raise harness.OpUnavailable(why)
    return measure


def cases(ctx: dict) -> list[harness.Case]:
    """ctx: repo, scratch, ansible (the CLI), env (ANSIBLE_COLLECTIONS_PATH, PYTHONPATH), layers,
    and home_error: why the 1,000-layer home could not be made, or None."""
    home = os.path.join(ctx["scratch"], "home1000")
    env = ctx["env"]
    python = os.path.join(os.path.dirname(ctx["ansible"]), "python")
    top = layer_id(ctx["layers"] - 1)
    adhoc = [ctx["ansible"], "localhost", "-c", "local"]
    missing = missing_modules(ctx["repo"])

    def guard(module, measure):
        if module in missing:
            return _unavailable("not available yet: plugins/modules/%s.py missing" % module)
        if ctx["home_error"]:
            return _unavailable(ctx["home_error"])
        return measure

    def stat_task(_args):
        return harness.run_command([adhoc + ["-m", "ansible.builtin.stat", "-a", "path=%s/%s" % (home, top)]], env)

    def noop_task(_args):
        return harness.run_command([adhoc + ["-m", "graphdriver.overlay.overlay_layer", "-a",
                                             "home=%s id=%s parent=%s" % (home, top, layer_id(ctx["layers"] - 2))]], env)

    def facts_task(_args):
        return harness.run_command([adhoc + ["-m", "graphdriver.overlay.overlay_facts", "-a", "home=%s" % home]], env)

    os.makedirs(ctx["scratch"], exist_ok=True)
    facts_args = _module_args_file(os.path.join(ctx["scratch"], "facts-args.json"), {"home": home})
    stat_args = _module_args_file(os.path.join(ctx["scratch"], "stat-args.json"), {"path": os.path.join(home, top)})

    def facts_module(_args):
        return harness.run_command([[python, "-m", MODULES + ".overlay_facts", facts_args]], env)

    def stat_module(_args):
        return harness.run_command([[python, "-m", "ansible.modules.stat", stat_args]], env)

    n = ctx["layers"]
    return [
        harness.Case("task_layer_noop", "overlay_layer no-op task vs stat task (ansible CLI)",
                     harness.Side("overlay_layer", guard("overlay_layer", noop_task)), harness.Side("stat", stat_task),
                     target=1.1, note="whole `ansible localhost -m ...` runs, %d-layer home" % n),
        harness.Case("task_facts_%d" % n, "overlay_facts task vs stat task (ansible CLI)",
                     harness.Side("overlay_facts", guard("overlay_facts", facts_task)), harness.Side("stat", stat_task)),
        harness.Case("module_facts_%d" % n, "overlay_facts module run directly vs stat module",
                     harness.Side("overlay_facts", guard("overlay_facts", facts_module)), harness.Side("stat", stat_module),
                     limit=0.3, note="module time: `python -m <module> args.json`, interpreter start and imports included"),
    ]


def prepare(ctx: dict, log=print) -> str | None:
    """Build the layered home and check that the no-op really is one; returns why not, or None."""
    if "overlay_layer" in missing_modules(ctx["repo"]):
        return "not available yet: plugins/modules/overlay_layer.py missing"
    home = os.path.join(ctx["scratch"], "home1000")
    python = os.path.join(os.path.dirname(ctx["ansible"]), "python")
    os.makedirs(ctx["scratch"], exist_ok=True)
    log("  building a home with %d layers through overlay_layer" % ctx["layers"])
    t0 = time.monotonic()
    proc = subprocess.run([python, os.path.abspath(__file__), "build-home", home, str(ctx["layers"])],
                          check=False, env=ctx["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        return "home build failed: " + proc.stdout.strip()[-800:]
    args = _module_args_file(os.path.join(ctx["scratch"], "noop-args.json"), {
        "home": home, "id": layer_id(ctx["layers"] - 1), "parent": layer_id(ctx["layers"] - 2)})
    proc = subprocess.run([python, "-m", MODULES + ".overlay_layer", args], check=False, env=ctx["env"],
                          stdout=subprocess.PIPE, text=True)
    try:
        changed = json.loads(proc.stdout).get("changed")
    except ValueError:
        return "overlay_layer printed no JSON: " + proc.stdout[-300:]
    if changed is not False:
        return "overlay_layer on an existing layer reported changed=%r: not a no-op" % changed
    log("  home ready in %.1f s" % (time.monotonic() - t0))
    if "overlay_facts" not in missing_modules(ctx["repo"]):
        args = _module_args_file(os.path.join(ctx["scratch"], "check-facts-args.json"), {"home": home})
        proc = subprocess.run([python, "-m", MODULES + ".overlay_facts", args], check=False, env=ctx["env"],
                              stdout=subprocess.PIPE, text=True)
        try:
            layers = json.loads(proc.stdout)["ansible_facts"]["overlay"]["layers"]
        except (ValueError, KeyError, TypeError):
            return "overlay_facts printed no layers: " + proc.stdout[-300:]
        if len(layers) != ctx["layers"]:
            return "overlay_facts reports %d layers, expected %d" % (len(layers), ctx["layers"])
    return None


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "build-home":
        build_home(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: ansible_cases.py build-home HOME COUNT")
