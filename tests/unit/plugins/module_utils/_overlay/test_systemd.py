# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of systemd.py: unit names against the real systemd-escape, unit text, unit files.

The expected names were taken from systemd-escape 252 (Debian 12, the molecule VM's
systemd); where the tool is installed every case is also checked against it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import systemd
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.errors import InvalidArgument, NotSupported

ESCAPE_CASES = [
    pytest.param("/", "-", id="root"),
    pytest.param("//", "-", id="double-slash-root"),
    pytest.param("/a/b/", "a-b", id="trailing-slash"),
    pytest.param("//a//b//", "a-b", id="double-slashes"),
    pytest.param("/a/./b", "a-b", id="dot-component"),
    pytest.param("/a/b/.", "a-b", id="trailing-dot-component"),
    pytest.param("/a b", "a\\x20b", id="space"),
    pytest.param("/a\tb", "a\\x09b", id="tab"),
    pytest.param("/a\nb", "a\\x0ab", id="newline"),
    pytest.param("/a-b", "a\\x2db", id="dash"),
    pytest.param("/-", "\\x2d", id="only-dash"),
    pytest.param("/a.b", "a.b", id="inner-dot"),
    pytest.param("/.dot", "\\x2edot", id="leading-dot"),
    pytest.param("/.a/", "\\x2ea", id="leading-dot-trailing-slash"),
    pytest.param("/a/.b", "a-.b", id="dot-after-slash-kept"),
    pytest.param("/a\\b", "a\\x5cb", id="backslash"),
    pytest.param("/a:b_c", "a:b_c", id="colon-underscore-kept"),
    pytest.param("/a%b", "a\\x25b", id="percent"),
    pytest.param("/a~b+c@d", "a\\x7eb\\x2bc\\x40d", id="punctuation"),
    pytest.param("/$x", "\\x24x", id="dollar"),
    pytest.param("/\x01", "\\x01", id="control"),
    pytest.param("/é", "\\xc3\\xa9", id="unicode-two-bytes"),
    pytest.param("/ä/ö", "\\xc3\\xa4-\\xc3\\xb6", id="unicode-components"),
    pytest.param("/\U0001f600", "\\xf0\\x9f\\x98\\x80", id="unicode-four-bytes"),
    pytest.param("/a\udcffb", "a\\xffb", id="undecodable-byte"),
    pytest.param(
        "/var/lib/graphdriver/overlay/0123abcd-init/merged",
        "var-lib-graphdriver-overlay-0123abcd\\x2dinit-merged",
        id="merged-dir",
    ),
]

REFUSED_PATHS = [
    pytest.param("a/b", "not absolute", id="relative"),
    pytest.param("", "not absolute", id="empty"),
    pytest.param("/a/../b", "'..'", id="dot-dot"),
    pytest.param("/..", "'..'", id="root-dot-dot"),
    pytest.param("/" + "x" * 256, "not a valid file system path", id="component-too-long"),
    pytest.param("/a\0b", "not a valid file system path", id="nul"),
]


@pytest.mark.parametrize("path, expected", ESCAPE_CASES)
def test_escape_path_matches_systemd_escape(path, expected):
    assert systemd.escape_path(path) == expected
    assert systemd.unit_name_for(path) == expected + ".mount"


@pytest.mark.skipif(shutil.which("systemd-escape") is None, reason="systemd-escape is not installed")
@pytest.mark.parametrize("path, expected", ESCAPE_CASES)
def test_escape_table_agrees_with_the_installed_tool(path, expected):
    result = subprocess.run(
        ["systemd-escape", "--path", "--suffix=mount", "--", os.fsencode(path)], capture_output=True, check=True
    )
    assert result.stdout.decode("ascii").rstrip("\n") == systemd.unit_name_for(path), path


@pytest.mark.parametrize("path, words", REFUSED_PATHS)
def test_escape_path_refuses_what_systemd_refuses(path, words):
    with pytest.raises(InvalidArgument) as info:
        systemd.escape_path(path)
    assert words in str(info.value)


def test_unit_name_too_long_for_systemd_names_the_mount_point_and_the_fix():
    where = "/" + "/".join(["abcdefghij"] * 23)
    with pytest.raises(systemd.UnitError) as info:
        systemd.unit_name_for(where)
    assert where in str(info.value)
    assert "shorter home" in str(info.value)
    # 22 components give 241 + ".mount": still a valid name.
    assert len(systemd.unit_name_for("/" + "/".join(["abcdefghij"] * 22))) == 247


HOME = "/var/lib/graphdriver/overlay"
DIRS = ["%s/img/root" % HOME, "%s/ctr/upper" % HOME, "%s/ctr/work" % HOME]
OPTIONS = "lowerdir=%s,upperdir=%s,workdir=%s" % tuple(DIRS)

EXPECTED_UNIT = """\
# Written by graphdriver.overlay (overlay_mount persist: true); changes here are overwritten.
[Unit]
Description=graphdriver.overlay layer ctr
Before=local-fs.target
RequiresMountsFor=/var/lib/graphdriver/overlay/img/root
RequiresMountsFor=/var/lib/graphdriver/overlay/ctr/upper
RequiresMountsFor=/var/lib/graphdriver/overlay/ctr/work

[Mount]
What=overlay
Where=/var/lib/graphdriver/overlay/ctr/merged
Type=overlay
Options=lowerdir=/var/lib/graphdriver/overlay/img/root,upperdir=/var/lib/graphdriver/overlay/ctr/upper,workdir=/var/lib/graphdriver/overlay/ctr/work

[Install]
WantedBy=local-fs.target
"""


def render(where="%s/ctr/merged" % HOME, options=OPTIONS, description="graphdriver.overlay layer ctr", dirs=None):
    return systemd.render_mount_unit("overlay", where, "overlay", options, description, DIRS if dirs is None else dirs)


def test_render_mount_unit_is_the_documented_text():
    assert render() == EXPECTED_UNIT
    assert render() == render()


def test_render_quotes_dirs_with_spaces_and_doubles_percent():
    home = "/srv/my store/50%"
    dirs = [home + "/img/root", home + "/ctr/upper", home + "/it's/work"]
    text = render(where=home + "/ctr/merged", options="lowerdir=%s" % dirs[0], description="layer 100%", dirs=dirs)
    assert 'RequiresMountsFor="/srv/my store/50%%/img/root"\n' in text
    assert "RequiresMountsFor=\"/srv/my store/50%%/it's/work\"\n" in text
    assert "Where=/srv/my store/50%%/ctr/merged\n" in text
    assert "Options=lowerdir=/srv/my store/50%%/img/root\n" in text
    assert "Description=layer 100%%\n" in text


def test_render_keeps_the_selinux_context_quotes_in_options():
    options = OPTIONS + ',context="system_u:object_r:container_file_t:s0:c1,c2"'
    assert "Options=%s\n" % options in render(options=options)


REFUSED_UNITS = [
    pytest.param({"dirs": ["/srv/a,b/img/root"]}, "holds ,", id="comma-in-dir"),
    pytest.param({"dirs": ["/srv/a:b/img/root"]}, "holds :", id="colon-in-dir"),
    pytest.param({"dirs": ['/srv/a"b/img/root']}, 'holds "', id="quote-in-dir"),
    pytest.param({"dirs": ["/srv/a\\b/img/root"]}, "holds \\", id="backslash-in-dir"),
    pytest.param({"dirs": ["/srv/a\nb/img/root"]}, "a newline", id="newline-in-dir"),
    pytest.param({"where": "/srv/a\nb/merged"}, "a newline", id="newline-in-where"),
    pytest.param({"where": "/srv/ab/merged "}, "whitespace", id="trailing-space-in-where"),
    pytest.param({"where": "/srv/ab/merged\\"}, "trailing backslash", id="trailing-backslash-in-where"),
    pytest.param({"where": "srv/merged"}, "absolute, normalized", id="relative-where"),
    pytest.param({"where": "/srv/../merged"}, "absolute, normalized", id="unnormalized-where"),
    pytest.param({"description": " layer"}, "whitespace", id="leading-space-in-description"),
]


@pytest.mark.parametrize("arguments, words", REFUSED_UNITS)
def test_render_refuses_what_a_unit_file_or_mount8_cannot_carry(arguments, words):
    with pytest.raises(systemd.UnitError) as info:
        render(**arguments)
    message = str(info.value)
    assert words in message
    assert "cannot persist the mount at" in message


def test_systemd_is_init_follows_run_systemd_system(tmp_path):
    run_dir = tmp_path / "run-systemd-system"
    assert systemd.systemd_is_init(str(run_dir)) is False
    with pytest.raises(NotSupported) as info:
        systemd.require_systemd(str(run_dir))
    assert "needs systemd as init" in str(info.value)
    assert str(run_dir) in str(info.value)
    run_dir.mkdir()
    assert systemd.systemd_is_init(str(run_dir)) is True
    systemd.require_systemd(str(run_dir))


# A stand-in for systemctl that logs its arguments and does what enable/disable do on disk
# (the wants/ link), so UnitFiles is tested as it runs a real program; the real systemctl is
# exercised in the molecule VM, where systemd is init.
FAKE_SYSTEMCTL = """\
import os, sys
unit_dir, log, fail = sys.argv[1], sys.argv[2], os.environ.get("FAKE_SYSTEMCTL_FAIL", "")
args = sys.argv[3:]
with open(log, "a") as handle:
    handle.write(" ".join(args) + "\\n")
if fail and args[0] == fail:
    sys.stderr.write("Failed to %s: Access denied\\n" % fail)
    sys.exit(1)
wants = os.path.join(unit_dir, "local-fs.target.wants")
if args[0] == "enable":
    os.makedirs(wants, exist_ok=True)
    if not os.path.lexists(os.path.join(wants, args[1])):
        os.symlink(os.path.join(unit_dir, args[1]), os.path.join(wants, args[1]))
elif args[0] == "disable":
    os.unlink(os.path.join(wants, args[1]))
"""


@pytest.fixture
def units(scratch):
    unit_dir = os.path.join(scratch, "system")
    log = os.path.join(scratch, "systemctl.log")
    script = os.path.join(scratch, "systemctl.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(FAKE_SYSTEMCTL)
    files = systemd.UnitFiles(unit_dir=unit_dir, systemctl=(sys.executable, script, unit_dir, log))

    def calls():
        if not os.path.exists(log):
            return []
        with open(log, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        os.unlink(log)
        return lines

    files.calls = calls
    return files


NAME = "var-lib-graphdriver-overlay-ctr-merged.mount"


def test_install_writes_reloads_and_enables_once(units):
    assert units.needs_install(NAME, EXPECTED_UNIT)
    assert units.install(NAME, EXPECTED_UNIT) is True
    assert units.calls() == ["daemon-reload", "enable %s" % NAME]
    path = os.path.join(units.unit_dir, NAME)
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == EXPECTED_UNIT
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert units.enabled(NAME)
    assert sorted(os.listdir(units.unit_dir)) == ["local-fs.target.wants", NAME], "a temporary file was left"

    assert not units.needs_install(NAME, EXPECTED_UNIT)
    assert units.install(NAME, EXPECTED_UNIT) is False
    assert units.calls() == []


def test_install_of_changed_text_rewrites_and_reloads(units):
    units.install(NAME, EXPECTED_UNIT)
    units.calls()
    changed = EXPECTED_UNIT.replace("layer ctr", "layer ctr2")
    assert units.needs_install(NAME, changed)
    assert units.install(NAME, changed) is True
    assert units.read(NAME) == changed
    # A changed text may change [Install]; enabling again (idempotent in systemd) applies it.
    assert units.calls() == ["daemon-reload", "enable %s" % NAME]


def test_install_after_a_failed_enable_finishes_the_job(units, monkeypatch):
    monkeypatch.setenv("FAKE_SYSTEMCTL_FAIL", "enable")
    with pytest.raises(systemd.UnitError) as info:
        units.install(NAME, EXPECTED_UNIT)
    assert "enable %s failed (exit 1): Failed to enable: Access denied" % NAME in str(info.value)
    monkeypatch.delenv("FAKE_SYSTEMCTL_FAIL")
    units.calls()
    assert units.needs_install(NAME, EXPECTED_UNIT)
    assert units.install(NAME, EXPECTED_UNIT) is True
    assert units.calls() == ["enable %s" % NAME]
    assert units.enabled(NAME)


def test_uninstall_disables_before_removing_then_reloads(units):
    units.install(NAME, EXPECTED_UNIT)
    units.calls()
    assert units.needs_uninstall(NAME)
    assert units.uninstall(NAME) is True
    assert units.calls() == ["disable %s" % NAME, "daemon-reload"]
    assert units.read(NAME) is None
    assert not units.enabled(NAME)
    assert not units.needs_uninstall(NAME)
    assert units.uninstall(NAME) is False
    assert units.calls() == []


def test_uninstall_removes_a_link_left_without_its_file(units):
    units.install(NAME, EXPECTED_UNIT)
    os.unlink(os.path.join(units.unit_dir, NAME))
    units.calls()
    assert units.uninstall(NAME) is True
    assert units.calls() == ["daemon-reload"]
    assert not os.path.lexists(os.path.join(units.unit_dir, "local-fs.target.wants", NAME))


def test_missing_systemctl_is_a_unit_error_that_says_so(scratch):
    files = systemd.UnitFiles(unit_dir=scratch, systemctl=(os.path.join(scratch, "no-systemctl"),))
    with pytest.raises(systemd.UnitError) as info:
        files.daemon_reload()
    assert "no-systemctl daemon-reload" in str(info.value)
    assert "is systemd installed?" in str(info.value)


def test_write_failure_names_the_unit_and_leaves_no_temporary_file(units):
    os.makedirs(units.unit_dir)
    os.mkdir(os.path.join(units.unit_dir, NAME))
    with pytest.raises(systemd.UnitError) as info:
        units.write(NAME, EXPECTED_UNIT)
    assert os.path.join(units.unit_dir, NAME) in str(info.value)
    assert os.listdir(units.unit_dir) == [NAME]


@pytest.mark.parametrize("name", ["", "a/b.mount", "..", "."])
def test_unit_file_names_are_never_paths(units, name):
    with pytest.raises(InvalidArgument):
        units.path(name)
