# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""overlay_facts' argument handling, and that reading a missing or empty home leaves it so."""

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.graphdriver.overlay.plugins.modules import overlay_facts


def run_module(capsys, args: dict) -> dict:
    """Run the module's main() with ``args``; the JSON it printed on exit."""
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            overlay_facts.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("options, message", [
    (["overlay.override_kernel_check=1"], "overlay: unknown option overlay.override_kernel_check"),
    (["novalue"], "Unable to parse key/value option: novalue"),
])
def test_driver_options_fail_with_dockers_message(capsys, tmp_path, options, message):
    result = run_module(capsys, {"home": str(tmp_path / "home"), "driver_options": options})
    assert result["msg"] == message
    assert not (tmp_path / "home").exists()


def test_sizes_must_be_a_bool(capsys, tmp_path):
    result = run_module(capsys, {"home": str(tmp_path / "home"), "sizes": "sometimes"})
    assert result["failed"]
    assert "sizes" in result["msg"]


@pytest.mark.parametrize("sizes", [False, True])
def test_missing_home_is_reported_and_stays_missing(capsys, tmp_path, sizes):
    home = tmp_path / "home"
    result = run_module(capsys, {"home": str(home), "sizes": sizes})
    facts = result["ansible_facts"]["overlay"]
    assert result["changed"] is False
    assert facts["home"] == str(home)
    assert facts["initialized"] is False
    assert facts["layers"] == {} and facts["mounts"] == []
    for key in ("supported", "reason", "backing_fs", "supports_d_type", "status"):
        assert key in facts, key
    assert not home.exists()


def test_empty_home_stays_empty(capsys, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = run_module(capsys, {"home": str(home), "sizes": True})
    assert result["ansible_facts"]["overlay"]["initialized"] is False
    assert os.listdir(home) == []
