# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A client of the OCI distribution API v2 (what Docker Hub, distribution and every cloud registry serve).

It speaks through ``registryhttp.Transport`` (TLS, authentication, redirects, typed errors).
A blob is read as a stream that hashes what passes: at its end a size or digest that
differs from the descriptor raises, so a caller can apply a layer straight from the network
and discard the result when the stream raises. Pushing asks first (HEAD) and uploads only
what the registry lacks, by cross-repository mount when the blob lives in a known repository
of the same registry, else in one PUT or, from ``chunk_size`` on, in PATCH chunks.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import re
import urllib.parse
from dataclasses import dataclass, field

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.platforms import host_platform, select_platform
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.reference import Reference
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.registryhttp import (
    BLOCK_SIZE, DigestMismatch, NotFound, RegistryError, Transport, TruncatedBlob,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
_ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
_DIGEST = re.compile(r"^(sha256|sha512):([a-f0-9]+)$")
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_MAX_MANIFEST = 4 << 20
_MAX_INDEX_DEPTH = 4
DEFAULT_CHUNK_SIZE = 64 << 20


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as fetched: its bytes, their digest, media type and parsed document."""

    digest: str
    media_type: str
    data: bytes
    document: dict


@dataclass(frozen=True)
class Image:
    """An image resolved to one platform: the manifest, its config and the layer descriptors, base first."""

    reference: Reference
    manifest: Manifest
    index: Manifest | None
    config: bytes
    config_digest: str
    diff_ids: list
    layers: list


@dataclass
class PushResult:
    """What a push did: per blob ``uploaded``, ``mounted`` or ``present``; bytes sent; the manifest digest."""

    manifest_digest: str
    manifest_pushed: bool
    blobs: dict = field(default_factory=dict)
    bytes_transferred: int = 0

    @property
    def changed(self) -> bool:
        """Whether the registry holds anything it did not before."""
        return self.manifest_pushed or any(state != "present" for state in self.blobs.values())


def parse_digest(value, what: str) -> tuple:
    """``(algorithm, hex)`` of a sha256 or sha512 digest; RegistryError naming ``what`` otherwise."""
    match = _DIGEST.match(value) if isinstance(value, str) else None
    if match is None or len(match.group(2)) != _HEX_LENGTH[match.group(1)]:
        raise RegistryError("%s: %r is not a sha256 or sha512 digest" % (what, value))
    return match.group(1), match.group(2)


class _FileSlice(io.RawIOBase):
    """``length`` bytes of a file from ``offset``: an upload body that http.client reads in blocks."""

    def __init__(self, path: str, offset: int, length: int) -> None:
        super().__init__()
        self._handle = open(path, "rb")  # pylint: disable=consider-using-with
        self._handle.seek(offset)
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, view) -> int:
        if not self._left:
            return 0
        count = self._handle.readinto(memoryview(view)[:min(len(view), self._left)])
        if not count:
            raise RegistryError("%s ended %d bytes early while being uploaded" % (self._handle.name, self._left))
        self._left -= count
        if not self._left:
            self._handle.close()
        return count

    def close(self) -> None:
        self._handle.close()
        super().close()


class BlobStream(io.RawIOBase):
    """A blob's bytes as they arrive, hashed; the read that finds the end raises when size or digest differ.

    Also raises when the server sends more than the descriptor's size. ``bytes_read`` counts
    what came. Close it (or use it as a context manager) to free the connection.
    """

    def __init__(self, response, digest: str, size: int | None, what: str, release) -> None:
        super().__init__()
        self._response = response
        self._algorithm, self._expected = parse_digest(digest, what)
        self._hash = hashlib.new(self._algorithm)
        self._size = size
        self._what = what
        self._release = release
        self._done = False
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, view) -> int:
        if self._done:
            return 0
        view = memoryview(view)
        try:
            count = self._response.readinto(view)
        except (OSError, http.client.HTTPException) as exc:
            raise TruncatedBlob("%s: the stream broke after %d bytes: %s" % (self._what, self.bytes_read, exc)) from None
        if count:
            self._hash.update(view[:count])
            self.bytes_read += count
            if self._size is not None and self.bytes_read > self._size:
                raise TruncatedBlob("%s: the registry sent more than the %d bytes of its descriptor" % (self._what, self._size))
            return count
        self._done = True
        if self._size is not None and self.bytes_read != self._size:
            raise TruncatedBlob("%s: truncated: the stream ended after %d of %d bytes" % (self._what, self.bytes_read, self._size))
        actual = self._hash.hexdigest()
        if actual != self._expected:
            raise DigestMismatch("%s: digest mismatch: the registry sent %d bytes with the digest %s:%s"
                                 % (self._what, self.bytes_read, self._algorithm, actual))
        self._release(self._response, True)
        return 0

    def finish(self) -> int:
        """Read what the consumer left (a decompressor stops at its trailer) and verify; returns ``bytes_read``."""
        buf = bytearray(BLOCK_SIZE)
        while self.readinto(buf):
            pass
        return self.bytes_read

    def close(self) -> None:
        if not self.closed and not self._done:
            self._release(self._response, False)
        super().close()


class Session:
    """The distribution API of one registry (``host[:port]``): pulling manifests and blobs, pushing images."""

    def __init__(self, host: str, username: str | None = None, password: str | None = None, ca_path: str | None = None,
                 insecure: bool = False, timeout: float = 60, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.transport = Transport(host, username, password, ca_path, insecure, timeout)
        self.host = host
        self.chunk_size = chunk_size

    def close(self) -> None:
        """Close the idle connections."""
        self.transport.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- pulling ----------------------------------------------------------------------------

    def get_manifest(self, repository: str, target: str, what: str | None = None) -> Manifest:
        """The manifest or index ``target`` (a tag or a digest) of ``repository``; a digest target is verified."""
        what = what or "manifest %s of %s/%s" % (target, self.host, repository)
        response = self.transport.request("GET", "/v2/%s/manifests/%s" % (repository, target), _pull(repository), what,
                                          headers={"Accept": _ACCEPT})
        data = response.data
        if len(data) > _MAX_MANIFEST:
            raise RegistryError("%s: the manifest has %d bytes, more than a manifest may" % (what, len(data)))
        if _DIGEST.match(target):
            algorithm, expected = parse_digest(target, what)
        else:
            algorithm, expected = "sha256", None
        actual = hashlib.new(algorithm, data).hexdigest()
        if expected is not None and actual != expected:
            raise DigestMismatch("%s: digest mismatch: the registry sent a manifest with the digest %s:%s" % (what, algorithm, actual))
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise RegistryError("%s: the manifest is not JSON: %s" % (what, exc)) from None
        if not isinstance(document, dict):
            raise RegistryError("%s: the manifest is not a JSON object" % what)
        media_type = document.get("mediaType") or (response.getheader("Content-Type") or "").split(";")[0].strip()
        if media_type not in MANIFEST_TYPES + INDEX_TYPES:
            raise RegistryError("%s: the media type %r is neither an OCI or Docker v2 schema 2 manifest nor an index"
                                % (what, media_type))
        return Manifest("%s:%s" % (algorithm, actual), media_type, data, document)

    def resolve(self, ref: Reference, platform: str | None = None) -> Image:
        """The image ``ref`` names, an index resolved to ``platform`` (default the host's), with its config verified."""
        platform = platform or host_platform()
        what = "image %s" % ref
        manifest = self.get_manifest(ref.repository, ref.target, "manifest of %s" % ref)
        index = None
        depth = 0
        while manifest.media_type in INDEX_TYPES:
            depth += 1
            if depth > _MAX_INDEX_DEPTH:
                raise RegistryError("%s: indexes nested deeper than %d" % (what, _MAX_INDEX_DEPTH))
            index = index or manifest
            entry = select_platform(manifest.document, platform, what)
            manifest = self.get_manifest(ref.repository, entry.get("digest"), "manifest %s (%s) of %s" % (entry.get("digest"), platform, ref))
        config_descriptor = manifest.document.get("config")
        layers = manifest.document.get("layers")
        if not isinstance(config_descriptor, dict) or not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
            raise RegistryError("%s: its manifest %s needs a config and a list of layers" % (what, manifest.digest))
        config = self.read_blob(ref.repository, config_descriptor, "config %s of %s" % (config_descriptor.get("digest"), ref))
        try:
            diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        except (ValueError, KeyError, TypeError):
            diff_ids = None
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
            raise RegistryError("%s: its config %s lists %s diff_ids for %d layers" % (
                what, config_descriptor.get("digest"), len(diff_ids) if isinstance(diff_ids, list) else "no", len(layers)))
        for number, layer in enumerate(layers, 1):
            parse_digest(layer.get("digest"), "%s: layer %d" % (what, number))
        return Image(ref, manifest, index, config, config_descriptor["digest"], list(diff_ids), list(layers))

    def open_blob(self, repository: str, descriptor: dict, what: str | None = None) -> BlobStream:
        """A verifying stream of the blob ``descriptor`` names (``digest``, ``size``), redirects followed."""
        digest = descriptor.get("digest")
        size = descriptor.get("size")
        what = what or "blob %s of %s/%s" % (digest, self.host, repository)
        parse_digest(digest, what)
        response, release = self.transport.request("GET", "/v2/%s/blobs/%s" % (repository, digest), _pull(repository), what,
                                                   stream=True, redirects=True)
        return BlobStream(response, digest, size if isinstance(size, int) else None, what, release)

    def read_blob(self, repository: str, descriptor: dict, what: str | None = None) -> bytes:
        """A small blob (a config) whole, verified."""
        with self.open_blob(repository, descriptor, what) as stream:
            return stream.read()

    # -- pushing ----------------------------------------------------------------------------

    def blob_size(self, repository: str, digest: str, scopes: tuple | None = None) -> int | None:
        """The size of a blob the repository holds, None when it lacks it (HEAD)."""
        what = "blob %s of %s/%s" % (digest, self.host, repository)
        try:
            response = self.transport.request("HEAD", "/v2/%s/blobs/%s" % (repository, digest), scopes or _pull(repository), what,
                                              redirects=True)
        except NotFound:
            return None
        length = response.getheader("Content-Length")
        return int(length) if length and length.isdigit() else -1

    def push_blob(self, repository: str, digest: str, size: int, path: str, mount_from: str | None = None) -> tuple:
        """Make ``repository`` hold the blob at ``path``; returns ``(state, bytes sent)``, state ``present``, ``mounted`` or ``uploaded``."""
        scopes = _push(repository, mount_from)
        what = "blob %s (%s) to %s/%s" % (digest, path, self.host, repository)
        if self.blob_size(repository, digest, scopes) is not None:
            return "present", 0
        uploads = "/v2/%s/blobs/uploads/" % repository
        if mount_from and mount_from != repository:
            query = urllib.parse.urlencode([("mount", digest), ("from", mount_from)])
            response = self.transport.request("POST", uploads + "?" + query, scopes, what, headers={"Content-Length": "0"}, body=b"",
                                              ok=(201, 202))
            if response.status == 201:
                return "mounted", 0
        else:
            response = self.transport.request("POST", uploads, scopes, what, headers={"Content-Length": "0"}, body=b"", ok=(202,))
        location = self._location(response, what)
        if size < self.chunk_size:
            self._finish(location, digest, scopes, what, path, 0, size)
            return "uploaded", size
        offset = 0
        while offset < size:
            length = min(self.chunk_size, size - offset)
            response = self.transport.request("PATCH", location, scopes, what, ok=(202,), headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(length),
                "Content-Range": "%d-%d" % (offset, offset + length - 1)},
                body=lambda start=offset, count=length: _FileSlice(path, start, count))
            location = self._location(response, what)
            offset += length
        self._finish(location, digest, scopes, what, None, 0, 0)
        return "uploaded", size

    def _finish(self, location: str, digest: str, scopes: tuple, what: str, path: str | None, offset: int, length: int) -> None:
        url = location + ("&" if "?" in location else "?") + urllib.parse.urlencode([("digest", digest)])
        body = (lambda: _FileSlice(path, offset, length)) if path is not None and length else b""
        self.transport.request("PUT", url, scopes, what, ok=(201,), body=body,
                               headers={"Content-Type": "application/octet-stream", "Content-Length": str(length)})

    def _location(self, response, what: str) -> str:
        location = response.getheader("Location")
        if not location:
            raise RegistryError("%s: registry %s answered the upload without a Location" % (what, self.host))
        return urllib.parse.urljoin(self.transport.url("/"), location)

    def manifest_digest(self, repository: str, target: str, media_type: str) -> str | None:
        """The digest under which ``target`` is stored (HEAD), None when the registry lacks it."""
        what = "manifest %s of %s/%s" % (target, self.host, repository)
        try:
            response = self.transport.request("HEAD", "/v2/%s/manifests/%s" % (repository, target), _push(repository), what,
                                              headers={"Accept": media_type})
        except NotFound:
            return None
        return response.getheader("Docker-Content-Digest")

    def put_manifest(self, repository: str, target: str, data: bytes, media_type: str) -> bool:
        """Store the manifest ``data`` as ``target`` (a tag, or its digest); False when it was there already."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.manifest_digest(repository, target, media_type) == digest:
            return False
        self.transport.request("PUT", "/v2/%s/manifests/%s" % (repository, target), _push(repository),
                               "manifest %s of %s/%s" % (target, self.host, repository), ok=(201,), body=data,
                               headers={"Content-Type": media_type, "Content-Length": str(len(data))})
        return True

    def push_image(self, ref: Reference, blobs: list, manifest: bytes, media_type: str = OCI_MANIFEST,
                   mount_from: str | None = None) -> PushResult:
        """Push ``blobs`` (``(digest, size, path)``: config and layers) that the registry lacks, then the manifest as ``ref``'s target.

        ``mount_from`` names another repository of the same registry that may hold the blobs.
        """
        result = PushResult("sha256:" + hashlib.sha256(manifest).hexdigest(), False)
        for digest, size, path in blobs:
            if digest in result.blobs:
                continue
            state, sent = self.push_blob(ref.repository, digest, size, path, mount_from)
            result.blobs[digest] = state
            result.bytes_transferred += sent
        result.manifest_pushed = self.put_manifest(ref.repository, ref.target, manifest, media_type)
        if result.manifest_pushed:
            result.bytes_transferred += len(manifest)
        return result


def _pull(repository: str) -> tuple:
    return ("repository:%s:pull" % repository,)


def _push(repository: str, mount_from: str | None = None) -> tuple:
    scopes = ("repository:%s:pull,push" % repository,)
    if mount_from and mount_from != repository:
        scopes += ("repository:%s:pull" % mount_from,)
    return scopes


def session_for(ref: Reference, username: str | None = None, password: str | None = None, ca_path: str | None = None,
                insecure: bool = False, timeout: float = 60, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Session:
    """A Session for the registry of ``ref``."""
    return Session(ref.api_host, username, password, ca_path, insecure, timeout, chunk_size)
