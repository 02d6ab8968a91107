# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One tar header codec: parsing (ustar, GNU, PAX, base-256) and writing (ustar plus PAX).

The layer applier (``layertar``), the diff writer (``difftar``) and the image verifier
(``imagearchive``) all read and write headers through this file, so the three agree on what a
header is. Parsing follows Go's ``archive/tar`` reader, which Docker uses; writing follows its
PAX writer. Both work on raw 512-byte blocks at C speed where they can: a layer is mostly small
files, so the per-entry cost is the cost of a layer.
"""

from __future__ import annotations

import posixpath
import struct
import zlib

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
END_OF_ARCHIVE = bytes(2 * BLOCK)
NS = 1000000000

# Type flags as the reader sees them (block[156]).
AREG, REG, LNK, SYM, CHR, BLK, DIR, FIFO = 0, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36
PAX, GLOBAL, LONGNAME, LONGLINK, GNU_SPARSE = 0x78, 0x67, 0x4C, 0x4B, 0x53
# Go's tar reader gives these no data section whatever their size field says.
HEADER_ONLY = frozenset((LNK, SYM, CHR, BLK, DIR, FIFO))
# The same flags as the writer puts them in a header.
FLAG_REG, FLAG_LINK, FLAG_SYMLINK, FLAG_CHR, FLAG_BLK, FLAG_DIR, FLAG_FIFO, FLAG_PAX = (bytes((flag,)) for flag in (REG, LNK, SYM, CHR, BLK, DIR, FIFO, PAX))

XATTR_PREFIX = b"SCHILY.xattr."
_NUL_TO_SPACE = bytes.maketrans(b"\0", b" ")

_MAX_ID = 0o7777777
_MAX_NUM = 0o77777777777
# magic and version, then empty uname and gname: Docker writes no owner names.
_MAGIC_AND_NAMES = b"ustar\x0000" + bytes(64)
_NO_DEVICE = b"0000000\x000000000\x00"
# name, mode+uid+gid+size+mtime, chksum, typeflag, linkname, magic+version+uname+gname, devmajor+devminor, prefix+pad.
_USTAR = struct.Struct("100s48s8s1s100s72s16s167s")
# The checksum is computed with its own 8-byte field read as spaces.
_CHKSUM_FIXED = 8 * ord(" ") + sum(_MAGIC_AND_NAMES)


# -- reading ------------------------------------------------------------------------------


class Header:
    """One tar entry with its PAX and GNU extensions merged, as Go's ``tar.Reader`` returns it."""

    __slots__ = ("name", "type", "mode", "uid", "gid", "size", "mtime", "linkname", "atime", "devmajor", "devminor", "xattrs")

    def __init__(self, name: str, kind: int, mode: int, uid: int, gid: int, size: int, mtime: int, linkname: str, atime: int | None,
                 devmajor: int, devminor: int) -> None:
        self.name, self.type, self.mode, self.uid, self.gid, self.size, self.mtime = name, kind, mode, uid, gid, size, mtime
        self.linkname, self.atime, self.devmajor, self.devminor = linkname, atime, devmajor, devminor
        self.xattrs: list | None = None


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def number(raw: bytes) -> int:
    """A numeric header field: octal text, or base-256 (GNU/star) when the high bit is set."""
    if raw and raw[0] & 0x80:
        value = int.from_bytes(bytes((raw[0] & 0x7F,)) + raw[1:], "big")
        if raw[0] & 0x40:
            value -= 1 << (len(raw) * 8 - 1)
        return value
    text = raw.strip(b" \0")
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError("invalid numeric field %r" % raw)
    return int(text, 8)


def _byte_sum(data) -> int:
    """The exact sum of at most 256 bytes, at C speed.

    adler32's low half is 1 + the byte sum modulo 65521, and 256 bytes sum to at most 65280,
    so nothing wraps.
    """
    return (zlib.adler32(data) & 0xFFFF) - 1


def checksum_ok(block: bytes) -> bool:
    try:
        stored = int(block[148:156].translate(_NUL_TO_SPACE), 8)
    except ValueError:
        return False
    view = memoryview(block)
    # The checksum field itself counts as eight spaces (256).
    unsigned = _byte_sum(view[:256]) + _byte_sum(view[256:]) - sum(block[148:156]) + 256
    if stored == unsigned:
        return True
    # Some old writers summed signed chars.
    high = len(block[:148].translate(None, bytes(range(128)))) + len(block[156:].translate(None, bytes(range(128))))
    return stored == unsigned - 256 * high


def parse_block(block: bytes) -> Header:
    if not checksum_ok(block):
        raise ValueError("invalid tar header (checksum mismatch)")
    try:
        return _fields(block)
    except ValueError as exc:
        raise ValueError("invalid tar header (%s)" % exc) from None


def _fields(block: bytes) -> Header:
    atime = None
    name = block[:100].partition(b"\0")[0]
    magic = block[257:263]
    if magic == b"ustar\0":
        if block[508:512] == b"tar\0":
            prefix = block[345:476].partition(b"\0")[0]
            if block[476]:
                atime = number(block[476:488]) * NS
        else:
            prefix = block[345:500].partition(b"\0")[0]
        if prefix:
            name = prefix + b"/" + name
    elif magic == b"ustar " and block[263:265] == b" \0" and block[345]:
        atime = number(block[345:357]) * NS
    kind = block[156]
    try:
        # Nearly every writer stores octal digits padded with NULs or spaces: with NULs made
        # spaces, int() reads them at C speed; the rest (base-256, empty fields) takes _number.
        fields = block[100:148].translate(_NUL_TO_SPACE)
        mode, uid, gid, size, mtime = int(fields[:8], 8), int(fields[8:16], 8), int(fields[16:24], 8), int(fields[24:36], 8), int(fields[36:], 8)
    except ValueError:
        mode, uid, gid, size = number(block[100:108]), number(block[108:116]), number(block[116:124]), number(block[124:136])
        mtime = number(block[136:148])
    if size < 0:
        raise ValueError("negative size")
    link = block[157:257]
    linkname = link.partition(b"\0")[0].decode("utf-8", "surrogateescape") if link[0] else ""
    major = minor = 0
    if kind in (CHR, BLK):
        major, minor = number(block[329:337]), number(block[337:345])
    elif kind == AREG:
        kind = DIR if name.endswith(b"/") else REG
    return Header(name.decode("utf-8", "surrogateescape"), kind, mode, uid, gid, size, mtime * NS, linkname, atime, major, minor)


def parse_pax(data: bytes) -> dict:
    """PAX extended header records (``"%d %s=%s\\n"``) as a dict of bytes to bytes."""
    records = {}
    pos = 0
    while pos < len(data):
        if not data[pos:].strip(b"\0"):
            break
        space = data.find(b" ", pos)
        length_text = data[pos:space] if space > pos else b""
        if not length_text.isdigit():
            raise ValueError("invalid PAX record length")
        end = pos + int(length_text)
        if end <= space or end > len(data) or data[end - 1:end] != b"\n":
            raise ValueError("invalid PAX record")
        key, eq, value = data[space + 1:end - 1].partition(b"=")
        if not eq or not key:
            raise ValueError("invalid PAX record")
        records[key] = value
        pos = end
    return records


def pax_time(raw: bytes) -> int:
    """A PAX time (``seconds[.fraction]``, maybe negative) in nanoseconds."""
    text = raw.decode("ascii")
    sign = -1 if text.startswith("-") else 1
    whole, _sep, frac = text.lstrip("-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError("invalid PAX time %r" % raw)
    return sign * (int(whole) * NS + int((frac + "000000000")[:9]))


def _pax_int(raw: bytes) -> int:
    text = raw.lstrip(b"-")
    if not text.isdigit():
        raise ValueError("invalid PAX number %r" % raw)
    return int(raw)


def merge_pax(hdr: Header, records: dict) -> None:
    for key, value in records.items():
        if key == b"path":
            if b"\0" in value:
                raise ValueError("invalid PAX path")
            hdr.name = text(value)
        elif key == b"linkpath":
            if b"\0" in value:
                raise ValueError("invalid PAX linkpath")
            hdr.linkname = text(value)
        elif key == b"size":
            hdr.size = _pax_int(value)
            if hdr.size < 0:
                raise ValueError("invalid PAX size")
        elif key == b"uid":
            hdr.uid = _pax_int(value)
        elif key == b"gid":
            hdr.gid = _pax_int(value)
        elif key == b"mtime":
            hdr.mtime = pax_time(value)
        elif key == b"atime":
            hdr.atime = pax_time(value)
        elif key.startswith(XATTR_PREFIX):
            if hdr.xattrs is None:
                hdr.xattrs = []
            hdr.xattrs.append((text(key[len(XATTR_PREFIX):]), value))
        elif key.startswith(b"GNU.sparse."):
            raise ValueError("sparse files are not supported")


def data_size(block: bytes) -> int:
    """The length of the data section that follows a raw header block (0 for header-only types)."""
    return 0 if block[156] in HEADER_ONLY else number(block[124:136])


# -- writing ------------------------------------------------------------------------------


def _ascii(raw: bytes, width: int) -> bytes:
    """A best-effort ASCII copy for a field whose real value travels in a PAX record (as Go writes it)."""
    return bytes(byte for byte in raw if byte < 0x80)[:width]


def pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    digits = len(b"%d" % len(body))
    total = len(body) + digits
    # The length counts its own digits; one more digit is needed when that pushes it past a power of ten.
    if len(b"%d" % total) > digits:
        total += 1
    return b"%d" % total + body


def _ustar_block(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, flag: bytes, linkname: bytes, major: int, minor: int) -> bytes:
    numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (mode, uid, gid, size, mtime)
    devices = b"%07o\0%07o\0" % (major, minor) if major or minor else _NO_DEVICE
    # Only the variable fields are summed: the fixed ones are folded into _CHKSUM_FIXED. Every
    # byte here is ASCII (tar_header puts anything else in PAX records), so the 265 bytes sum to
    # less than 65521 and adler32's low half (1 + the byte sum modulo 65521) is the exact sum, at C speed.
    chksum = (zlib.adler32(name + numbers + flag + linkname + devices) & 0xFFFF) - 1 + _CHKSUM_FIXED
    return _USTAR.pack(name, numbers, b"%06o\0 " % chksum, flag, linkname, _MAGIC_AND_NAMES, devices, b"")


def tar_header(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, flag: bytes,
               linkname: bytes = b"", major: int = 0, minor: int = 0, records: dict[bytes, bytes] | None = None) -> bytes:
    """One entry's header blocks: a PAX extended header first when a value does not fit USTAR or xattrs are given."""
    fits = max(len(name), len(linkname)) <= 100 and max(uid, gid) <= _MAX_ID and min(size, mtime) >= 0 and max(size, mtime) <= _MAX_NUM
    if fits and not records and (name + linkname).isascii():
        return _ustar_block(name, mode, uid, gid, size, mtime, flag, linkname, major, minor)
    pax = dict(records) if records else {}
    real_name = name
    if len(name) > 100 or not name.isascii():
        pax[b"path"] = name
        name = _ascii(name, 100)
    if len(linkname) > 100 or not linkname.isascii():
        pax[b"linkpath"] = linkname
        linkname = _ascii(linkname, 100)
    if uid > _MAX_ID:
        pax[b"uid"] = b"%d" % uid
        uid = 0
    if gid > _MAX_ID:
        pax[b"gid"] = b"%d" % gid
        gid = 0
    if size > _MAX_NUM:
        pax[b"size"] = b"%d" % size
        size = 0
    if not 0 <= mtime <= _MAX_NUM:
        pax[b"mtime"] = b"%d" % mtime
        mtime = 0
    block = _ustar_block(name, mode, uid, gid, size, mtime, flag, linkname, major, minor)
    if not pax:
        return block
    # Sorted keys keep the extended header reproducible.
    data = b"".join(pax_record(key, pax[key]) for key in sorted(pax))
    head, tail = posixpath.split(real_name.rstrip(b"/"))
    pax_name = _ascii(posixpath.join(head, b"PaxHeaders.0", tail), 100)
    return _ustar_block(pax_name, 0, 0, 0, len(data), 0, FLAG_PAX, b"", 0, 0) + data + bytes(-len(data) % BLOCK) + block
