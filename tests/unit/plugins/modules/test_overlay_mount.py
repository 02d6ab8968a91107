# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""overlay_mount's argument handling: bad ids and holders fail before the disk is touched."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.graphdriver.overlay.plugins.modules import overlay_mount


def run_module(capsys, args: dict) -> dict:
    """Run the module's main() with ``args``; the JSON it printed on exit."""
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            overlay_mount.main()
    return json.loads(capsys.readouterr().out)


BAD_NAMES = ["", "..", "a/b", ".hidden", "-x", "a\x00b", "x" * 129]
STATES = ["mounted", "unmounted"]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("bad", BAD_NAMES)
def test_invalid_holder_fails_naming_it(capsys, tmp_path, bad, state):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": "c1", "holder": bad, "state": state})
    assert result["msg"].startswith("invalid holder name %r" % bad), result["msg"]
    assert not home.exists()


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("bad", BAD_NAMES)
def test_invalid_id_fails_naming_it(capsys, tmp_path, bad, state):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": bad, "state": state})
    assert result["msg"].startswith("invalid layer id %r" % bad), result["msg"]
    assert not home.exists()


@pytest.mark.parametrize("options, message", [
    (["a=b"], "overlay: unknown option a"),
    (["ab"], "Unable to parse key/value option: ab"),
])
def test_driver_options_fail_with_dockers_message(capsys, tmp_path, options, message):
    result = run_module(capsys, {"home": str(tmp_path / "home"), "id": "c1", "driver_options": options})
    assert result["msg"] == message


@pytest.mark.parametrize("check_mode", [False, True])
def test_mounting_a_missing_layer_fails(capsys, tmp_path, check_mode):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": "nope", "_ansible_check_mode": check_mode})
    assert result["msg"].startswith("layer nope does not exist"), result["msg"]
    assert not home.exists()


def test_unmounting_a_missing_layer_is_not_a_change(capsys, tmp_path):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "id": "nope", "state": "unmounted"})
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["mounted"] is False
    assert result["holders"] == [] and result["refcount"] == 0
    assert not home.exists()
