# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The tar header codec: numeric fields, PAX records and times, checksums."""

from __future__ import annotations

import tarfile

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import tarheader


NUMBER_CASES = [
    (b"0000755\x00", 0o755),
    (b"  755 \x00\x00", 0o755),
    (b"\x00" * 8, 0),
    (b"        ", 0),
    (b"\x80" + b"\x00" * 6 + b"\x01", 1),
    (b"\x80\x00\x00\x00\x00\x01\x00\x00", 65536),
    (b"\xff" * 8, -1),
    (b"\xff" * 7 + b"\xfe", -2),
]


@pytest.mark.parametrize("raw, expected", NUMBER_CASES)
def test_numeric_fields_octal_and_base256(raw, expected):
    got = tarheader.number(raw)
    assert got == expected, "field %r: expected %d, got %d" % (raw, expected, got)


@pytest.mark.parametrize("raw", [b"0000789\x00", b"12a4\x00\x00\x00\x00", b"-0000012"])
def test_numeric_fields_reject_garbage(raw):
    with pytest.raises(ValueError):
        tarheader.number(raw)


PAX_CASES = [
    (b"11 path=ab\n", {b"path": b"ab"}),
    (b"30 mtime=1350244992.023960108\n", {b"mtime": b"1350244992.023960108"}),
    (b"27 SCHILY.xattr.user.a=x=y\n", {b"SCHILY.xattr.user.a": b"x=y"}),
    (b"11 path=ab\n11 path=cd\n", {b"path": b"cd"}),
    (b"11 path=ab\n\x00\x00\x00", {b"path": b"ab"}),
    (b"21 SCHILY.xattr.k=\x00\x01\n", {b"SCHILY.xattr.k": b"\x00\x01"}),
]


@pytest.mark.parametrize("data, expected", PAX_CASES)
def test_pax_records_parse(data, expected):
    got = tarheader.parse_pax(data)
    assert got == expected, "pax %r: expected %r, got %r" % (data, expected, got)


@pytest.mark.parametrize("data", [b"12 path=ab\n", b"x path=ab\n", b"11 pathxab\n", b"5 =ab\n", b"99 path=ab\n"])
def test_pax_records_reject_garbage(data):
    with pytest.raises(ValueError):
        tarheader.parse_pax(data)


PAX_TIME_CASES = [
    (b"1350244992.023960108", 1350244992023960108),
    (b"1350244992", 1350244992 * tarheader.NS),
    (b"1.5", 1500000000),
    (b"-1.5", -1500000000),
    (b"0.0000000019", 1),
]


@pytest.mark.parametrize("raw, expected", PAX_TIME_CASES)
def test_pax_times_to_nanoseconds(raw, expected):
    got = tarheader.pax_time(raw)
    assert got == expected, "pax time %r: expected %d, got %d" % (raw, expected, got)


def _header_block(name: str = "f", size: int = 3) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.USTAR_FORMAT)[:512]


def _with_checksum(block: bytes, value: int) -> bytes:
    return block[:148] + b"%06o\0 " % value + block[156:]


CHECKSUM_CASES = [
    ("as written", 0, True),
    ("one too many", 1, False),
    ("one too few", -1, False),
    ("off by the adler32 modulus", 65521, False),
    ("off by 256", 256, False),
]


@pytest.mark.parametrize("label, delta, accepted", CHECKSUM_CASES, ids=[case[0] for case in CHECKSUM_CASES])
def test_header_checksum_must_match_exactly(label, delta, accepted):
    block = _header_block()
    stored = int(block[148:156].rstrip(b"\0 "), 8)
    result = tarheader.checksum_ok(_with_checksum(block, stored + delta))
    assert result is accepted, "%s: checksum %d accepted=%r, expected %r" % (label, stored + delta, result, accepted)


def test_header_checksum_accepts_the_signed_sum_of_old_writers():
    block = bytearray(_header_block(name="caf\xe9"))
    signed = sum(b - 256 if b > 127 else b for b in bytes(block[:148]) + b" " * 8 + bytes(block[156:]))
    assert tarheader.checksum_ok(_with_checksum(bytes(block), signed)) is True
