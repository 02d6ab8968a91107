# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The extended attribute names the driver reads and writes, one constant each."""

from __future__ import annotations

OVERLAY_OPAQUE = "trusted.overlay.opaque"
OVERLAY_REDIRECT = "trusted.overlay.redirect"
OVERLAY_METACOPY = "trusted.overlay.metacopy"
CAPABILITY = "security.capability"
