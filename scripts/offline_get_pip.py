# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Offline stand-in for get-pip.py, for ansible-test's ``--venv`` bootstrap.

ansible-test downloads get-pip.py from a host that machines without general internet
access cannot reach. It runs the script with pip's own command-line options plus the
packages to install (``pip==X``) and the get-pip flags ``--no-setuptools``/``--no-wheel``.
This stand-in honours that contract with a pip wheel from PyPI lying beside it in
``wheels/``; scripts/test.sh puts both in ansible-test's cache only when the real
download is unreachable.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys


def main() -> None:
    """Install pip (and setuptools/wheel unless told not to) from the wheel beside us."""
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    wanted = list(args)
    if "--no-setuptools" not in sys.argv and not os.environ.get("PIP_NO_SETUPTOOLS") and not importlib.util.find_spec("setuptools"):
        wanted.append("setuptools")
    if "--no-wheel" not in sys.argv and not os.environ.get("PIP_NO_WHEEL") and not importlib.util.find_spec("wheel"):
        wanted.append("wheel")
    here = os.path.dirname(os.path.abspath(__file__))
    wheels = sorted(glob.glob(os.path.join(here, "wheels", "pip-*.whl")))
    if not wheels:
        sys.exit("offline get-pip: no pip wheel in %s" % os.path.join(here, "wheels"))
    sys.path.insert(0, wheels[-1])
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    sys.exit(pip_main(["install", "--upgrade", "--force-reinstall"] + wanted))


if __name__ == "__main__":
    main()
