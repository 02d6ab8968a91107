# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""overlay_layer's argument handling: bad input fails with the right message before the disk is touched."""

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.graphdriver.overlay.plugins.modules import overlay_layer


def run_module(capsys, args: dict) -> dict:
    """Run the module's main() with ``args``; the JSON it printed on exit."""
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            overlay_layer.main()
    return json.loads(capsys.readouterr().out)


BAD_IDS = ["", "..", ".", "a/b", ".hidden", "-dash", "a b", "a\x00b", "a" * 129, "é"]
STATES = ["present", "absent", "exported"]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_invalid_id_fails_naming_it_before_home_exists(capsys, tmp_path, bad_id, state):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": bad_id, "state": state, "dest": str(tmp_path / "out.tar")})
    assert result["failed"], result
    assert result["msg"].startswith("invalid layer id %r" % bad_id), result["msg"]
    assert not home.exists(), "home %s was created" % home


@pytest.mark.parametrize("state", STATES)
def test_invalid_parent_fails_naming_it(capsys, tmp_path, state):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": "good", "parent": "../etc", "state": state, "dest": str(tmp_path / "o.tar")})
    assert result["msg"].startswith("invalid parent layer id '../etc'"), result["msg"]
    assert not home.exists()


def test_id_longest_allowed_is_accepted_up_to_the_disk(capsys, tmp_path):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": "a" * 128, "state": "absent"})
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert not home.exists()


DRIVER_OPTION_CASES = [
    (["overlay.size=10G"], "overlay: unknown option overlay.size"),
    (["Foo = bar"], "overlay: unknown option foo"),
    (["justakey"], "Unable to parse key/value option: justakey"),
]


@pytest.mark.parametrize("options, message", DRIVER_OPTION_CASES)
@pytest.mark.parametrize("state", STATES)
def test_driver_options_fail_with_dockers_message(capsys, tmp_path, options, message, state):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": "x", "driver_options": options, "state": state, "dest": str(tmp_path / "o.tar")})
    assert result["msg"] == message
    assert not home.exists()


@pytest.mark.parametrize("state", STATES)
def test_storage_opt_is_not_supported(capsys, tmp_path, state):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": "x", "storage_opt": {"size": "10G"}, "state": state, "dest": str(tmp_path / "o.tar")})
    assert result["msg"] == "--storage-opt is not supported for overlay"
    assert not home.exists()


def test_empty_storage_opt_is_fine(capsys, tmp_path):
    result = run_module(capsys, {"home": str(tmp_path / "home"), "id": "x", "storage_opt": {}, "state": "absent"})
    assert result["changed"] is False


def test_exported_requires_dest(capsys, tmp_path):
    result = run_module(capsys, {"home": str(tmp_path / "home"), "id": "x", "state": "exported"})
    assert "state is exported but all of the following are missing: dest" in result["msg"]


def test_unknown_state_is_refused(capsys, tmp_path):
    result = run_module(capsys, {"home": str(tmp_path / "home"), "id": "x", "state": "mounted"})
    assert "value of state must be one of: present, absent, exported" in result["msg"]


def test_own_parent_is_refused(capsys, tmp_path):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": "x", "parent": "x"})
    assert result["msg"] == "layer x cannot be its own parent"
    assert not home.exists()


@pytest.mark.parametrize("check_mode", [False, True])
def test_missing_parent_fails_and_creates_no_home(capsys, tmp_path, check_mode):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": "x", "parent": "nope", "_ansible_check_mode": check_mode})
    assert result["msg"] == "parent layer nope does not exist"
    assert not home.exists()


@pytest.mark.parametrize("maps, fragment", [
    ([{"container_id": 0, "host_id": 100000}], "size"),
    ([{"container_id": "x", "host_id": 1, "size": 1}], "container_id"),
])
def test_bad_id_maps_fail_naming_the_key(capsys, tmp_path, maps, fragment):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": "x", "uid_maps": maps})
    assert result["failed"]
    assert fragment in result["msg"], result["msg"]
    assert not home.exists()


def test_missing_diff_file_fails_naming_it(capsys, tmp_path):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": "x", "diff": str(tmp_path / "missing.tar"), "_ansible_check_mode": True})
    assert result["failed"]
    assert "missing.tar" in result["msg"]
    assert not os.path.exists(home)


def test_a_refusal_carries_its_fields_and_the_fix_in_module_words(capsys, tmp_path):
    home = tmp_path / "home"
    assert run_module(capsys, {"home": str(home), "id": "base"})["changed"] is True
    result = run_module(capsys, {"home": str(home), "id": "c1", "parent": "base"})
    assert result["changed"] is True
    result = run_module(capsys, {"home": str(home), "id": "c2", "parent": "c1x"})
    assert result["msg"] == "parent layer c1x does not exist"
    assert result["details"] == {"path": str(home / "c1x"), "layer_id": "c1x"}, result
    # As Docker leaves it: no record of the parent, and a lower-id that is not an id.
    os.unlink(str(home / ".graphdriver" / "layers" / "c1.json"))
    with open(str(home / "c1" / "lower-id"), "wb") as handle:
        handle.write(b"../etc")
    result = run_module(capsys, {"home": str(home), "id": "c1", "parent": "base"})
    assert result["failed"] and result["error"] == "CorruptState", result
    assert result["msg"].endswith("the layer c1 is damaged; remove it with overlay_layer state=absent force=true and recreate it"), result["msg"]
    assert result["details"] == {"path": str(home / "c1" / "lower-id"), "layer_id": "c1", "fix": "recreate"}, result


def test_modifications_are_the_plan_in_check_mode_and_in_the_real_run(capsys, tmp_path):
    args = {"home": str(tmp_path / "home"), "id": "base"}
    planned = run_module(capsys, dict(args, _ansible_check_mode=True))
    done = run_module(capsys, args)
    assert planned["modifications"] == done["modifications"] == [{"op": "create", "id": "base", "parent": None, "diff": None}]
    assert planned["changed"] is done["changed"] is True
