# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A client of the OCI distribution API v2 (what Docker Hub, distribution and every cloud registry serve).

Authentication follows the registry's ``WWW-Authenticate`` challenge: ``Basic`` sends the
credentials to the registry; ``Bearer realm=...,service=...`` gets a token from the realm
(with the credentials, when there are any) for a scope such as
``repository:<name>:pull,push``, cached per scope. A blob request the registry redirects to
blob storage on another host goes there without the registry's ``Authorization`` header.

A blob is read as a stream that hashes what passes: at its end a size or digest that
differs from the descriptor raises, so a caller can apply a layer straight from the network
and discard the result when the stream raises. Pushing asks first (HEAD) and uploads only
what the registry lacks, by cross-repository mount when the blob lives in a known repository
of the same registry, else in one PUT or, from ``chunk_size`` on, in PATCH chunks.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import platform as platform_mod
import re
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.reference import Reference

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
_ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
_DIGEST = re.compile(r"^(sha256|sha512):([a-f0-9]+)$")
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}
# Variants that Docker's platform matcher treats as the default when none is written.
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
_CHALLENGE_PARAM = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')
_MAX_REDIRECTS = 5
_MAX_MANIFEST = 4 << 20
_MAX_INDEX_DEPTH = 4
_CHUNK = 1 << 20
DEFAULT_CHUNK_SIZE = 64 << 20
_USER_AGENT = "graphdriver.overlay"
# A token without expires_in lives 60 s (the distribution token spec).
_DEFAULT_TOKEN_LIFE = 60
_TOKEN_MARGIN = 10


class RegistryError(errors.OverlayError):
    """A registry request failed: unreachable, refused, or answered something unusable."""


class AuthError(RegistryError):
    """401 or 403: the credentials are missing, wrong, or lack the access asked for."""


class NotFound(RegistryError):
    """404: the repository, tag, manifest or blob does not exist in the registry."""


class DigestMismatch(RegistryError):
    """What the registry sent does not hash to the digest it was asked for."""


class TruncatedBlob(RegistryError):
    """A blob stream ended before (or ran past) the size of its descriptor."""


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


def host_platform() -> str:
    """This machine's platform the way image indexes name it: ``linux/amd64``, ``linux/arm/v7``."""
    machine = platform_mod.machine()
    arch = _GO_ARCH.get(machine, machine)
    if arch == "arm":
        return "linux/arm/" + ("v6" if machine == "armv6l" else "v7")
    return "linux/" + arch


def parse_platform(text: str) -> tuple:
    """``(os, architecture, variant)`` of ``os/arch[/variant]``, the variant normalised as Docker's matcher does."""
    parts = text.split("/") if isinstance(text, str) else []
    if len(parts) not in (2, 3) or not all(parts):
        raise errors.InvalidArgument("platform %r is invalid: give os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8"
                                     % (text,))
    return _normal_platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def _normal_platform(os_name: str, arch: str, variant: str) -> tuple:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    if arch == "amd64" and variant == "v1":
        variant = ""
    return os_name, arch, variant or _DEFAULT_VARIANT.get(arch, "")


def select_platform(index: dict, wanted: str, where: str) -> dict:
    """The descriptor of an image index for the platform ``wanted`` (``linux/arm64``); NotFound lists what there is."""
    target = parse_platform(wanted)
    offered = []
    for entry in index.get("manifests") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("platform"), dict):
            continue
        found = entry["platform"]
        if (entry.get("annotations") or {}).get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        key = _normal_platform(str(found.get("os", "")), str(found.get("architecture", "")), str(found.get("variant", "")))
        if key == target:
            return entry
        offered.append("/".join(part for part in key if part))
    raise NotFound("%s has no image for the platform %s; it offers %s" % (where, wanted, ", ".join(offered) or "none"))


def parse_digest(value, what: str) -> tuple:
    """``(algorithm, hex)`` of a sha256 or sha512 digest; RegistryError naming ``what`` otherwise."""
    match = _DIGEST.match(value) if isinstance(value, str) else None
    if match is None or len(match.group(2)) != _HEX_LENGTH[match.group(1)]:
        raise RegistryError("%s: %r is not a sha256 or sha512 digest" % (what, value))
    return match.group(1), match.group(2)


def parse_challenge(header: str) -> tuple:
    """``(scheme, params)`` of a WWW-Authenticate header: ``('bearer', {'realm': ..., 'service': ...})``."""
    scheme, _sep, rest = header.strip().partition(" ")
    params = {}
    for match in _CHALLENGE_PARAM.finditer(rest):
        value = match.group(2)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value) if value is not None else match.group(3)
    return scheme.lower(), params


def _ssl_context(ca_path: str | None) -> ssl.SSLContext:
    """Verification against the system store, or against ``ca_path``: a PEM file or a directory of ``*.crt`` files (certs.d style)."""
    if ca_path is None:
        return ssl.create_default_context()
    context = ssl.create_default_context(cafile=None if os.path.isdir(ca_path) else ca_path)
    if os.path.isdir(ca_path):
        found = sorted(name for name in os.listdir(ca_path) if name.endswith((".crt", ".pem")))
        if not found:
            raise errors.InvalidArgument("registry_ca_path %s is a directory without *.crt or *.pem files" % ca_path)
        for name in found:
            context.load_verify_locations(cafile=os.path.join(ca_path, name))
    return context


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
        buf = bytearray(_CHUNK)
        while self.readinto(buf):
            pass
        return self.bytes_read

    def close(self) -> None:
        if not self.closed and not self._done:
            self._release(self._response, False)
        super().close()


class Session:
    """Requests to one registry (``host[:port]``) with its TLS settings, credentials and token cache."""

    def __init__(self, host: str, username: str | None = None, password: str | None = None, ca_path: str | None = None,
                 insecure: bool = False, timeout: float = 60, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if (username is None) != (password is None):
            raise errors.InvalidArgument("registry %s: give registry_username and registry_password together" % host)
        if ca_path is not None and not os.path.exists(ca_path):
            raise errors.InvalidArgument("registry_ca_path %s does not exist" % ca_path)
        self.host = host
        self.scheme = "http" if insecure else "https"
        self._credentials = (username, password) if username is not None else None
        self._context = None if insecure else _ssl_context(ca_path)
        self._timeout = timeout
        self.chunk_size = chunk_size
        self._tokens: dict = {}
        self._basic = False
        self._idle: dict = {}

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the idle connections."""
        for connection in self._idle.values():
            connection.close()
        self._idle.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _url(self, path: str) -> str:
        return "%s://%s%s" % (self.scheme, self.host, path)

    def _connect(self, scheme: str, netloc: str):
        connection = self._idle.pop((scheme, netloc), None)
        if connection is not None:
            return connection
        if scheme == "https":
            # The registry's context for its own host; blob storage elsewhere is checked against the system store too.
            context = self._context if netloc == self.host else ssl.create_default_context()
            return http.client.HTTPSConnection(netloc, timeout=self._timeout, context=context, blocksize=_CHUNK)
        if scheme == "http":
            return http.client.HTTPConnection(netloc, timeout=self._timeout, blocksize=_CHUNK)
        raise RegistryError("registry %s redirected to %s, which is neither http nor https" % (self.host, scheme))

    def _release(self, key: tuple, connection, response, reusable: bool) -> None:
        response.close()
        if reusable and not response.will_close and key not in self._idle:
            self._idle[key] = connection
        else:
            connection.close()

    def _send(self, method: str, url: str, headers: dict, body) -> tuple:
        """One request on a (reused or new) connection; returns ``(key, connection, response)``."""
        parts = urllib.parse.urlsplit(url)
        key = (parts.scheme, parts.netloc)
        target = parts.path + ("?" + parts.query if parts.query else "")
        for attempt in (0, 1):
            connection = self._connect(*key)
            fresh = attempt == 1 or getattr(connection, "sock", None) is None
            try:
                connection.request(method, target, body=body() if callable(body) else body, headers=headers)
                return key, connection, connection.getresponse()
            except ssl.SSLCertVerificationError as exc:
                connection.close()
                raise RegistryError("registry %s: the TLS certificate of %s is not trusted (%s); give registry_ca_path "
                                    "the CA that signed it" % (self.host, parts.netloc, exc.verify_message)) from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                connection.close()
                # An idle kept-alive connection the server has closed meanwhile: once more on a new one.
                if fresh:
                    raise RegistryError("registry %s: %s %s failed: %s" % (self.host, method, url, exc)) from None
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                hint = " (registry_insecure speaks plain HTTP)" if isinstance(exc, ssl.SSLError) else ""
                raise RegistryError("registry %s: cannot reach %s: %s%s" % (self.host, parts.netloc, exc, hint)) from None
        raise RegistryError("registry %s: %s %s failed" % (self.host, method, url))

    def request(self, method: str, path_or_url: str, scopes: tuple, what: str, headers: dict | None = None, body=None,
                ok: tuple = (200,), stream: bool = False, redirects: bool = False):
        """Send a request with the right authorization, answering one 401 challenge; returns the response.

        Without ``stream`` the body is read and the response returned with ``.data``; with it
        the caller gets ``(response, release)`` and must call ``release(response, reusable)``.
        ``body`` may be bytes or a callable giving a fresh body (a retry after a challenge
        sends it again). Errors name ``what``.
        """
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        base_headers = {"User-Agent": _USER_AGENT}
        base_headers.update(headers or {})
        challenged = False
        hops = 0
        while True:
            sent = dict(base_headers)
            same_host = urllib.parse.urlsplit(url).netloc == self.host
            if same_host:
                authorization = self._authorization(scopes)
                if authorization:
                    sent["Authorization"] = authorization
            key, connection, response = self._send(method, url, sent, body)
            status = response.status
            if status == 401 and same_host and not challenged:
                challenge = response.getheader("WWW-Authenticate", "")
                self._release(key, connection, self._drain(response), True)
                challenged = True
                self._answer(challenge, scopes, what)
                continue
            if redirects and status in (301, 302, 303, 307, 308) and response.getheader("Location"):
                hops += 1
                location = urllib.parse.urljoin(url, response.getheader("Location"))
                self._release(key, connection, self._drain(response), True)
                if hops > _MAX_REDIRECTS:
                    raise RegistryError("%s: more than %d redirects" % (what, _MAX_REDIRECTS))
                url = location
                if status == 303:
                    method, body = "GET", None
                continue
            if status not in ok:
                data = response.read(64 << 10) if method != "HEAD" else b""
                self._release(key, connection, response, False)
                raise self._error(status, data, what)
            if stream:
                return response, lambda found, reusable: self._release(key, connection, found, reusable)
            response.data = response.read() if method != "HEAD" else b""
            self._release(key, connection, response, True)
            return response

    @staticmethod
    def _drain(response):
        response.read()
        return response

    def _authorization(self, scopes: tuple) -> str | None:
        token = self._tokens.get(scopes)
        if token is not None and token[1] > time.monotonic():
            return "Bearer " + token[0]
        if self._basic and self._credentials:
            return "Basic " + base64.b64encode(("%s:%s" % self._credentials).encode("utf-8")).decode("ascii")
        return None

    def _answer(self, challenge: str, scopes: tuple, what: str) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self._credentials:
                raise AuthError("%s: registry %s asks for a username and password (registry_username, registry_password)"
                                % (what, self.host))
            self._basic = True
        elif scheme == "bearer" and params.get("realm"):
            self._tokens[scopes] = self._fetch_token(params, scopes, what)
        else:
            raise AuthError("%s: registry %s answered 401 with a challenge this client cannot answer: %r" % (what, self.host, challenge))

    def _fetch_token(self, params: dict, scopes: tuple, what: str) -> tuple:
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", scope) for scope in scopes]
        realm = params["realm"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {"User-Agent": _USER_AGENT}
        if self._credentials:
            headers["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % self._credentials).encode("utf-8")).decode("ascii")
        key, connection, response = self._send("GET", url, headers, None)
        data = response.read(1 << 20)
        self._release(key, connection, response, response.status == 200)
        if response.status in (401, 403):
            raise AuthError("%s: the token service %s refused %s for %s (HTTP %d)%s" % (
                what, realm, "the credentials" if self._credentials else "anonymous access", " ".join(scopes),
                response.status, "" if self._credentials else "; give registry_username and registry_password"))
        if response.status != 200:
            raise RegistryError("%s: the token service %s answered HTTP %d: %s" % (what, realm, response.status, _text(data)))
        try:
            answer = json.loads(data)
            token = answer.get("token") or answer.get("access_token")
            life = int(answer.get("expires_in") or _DEFAULT_TOKEN_LIFE)
        except (ValueError, AttributeError, TypeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError("%s: the token service %s answered without a token" % (what, realm))
        return token, time.monotonic() + max(life - _TOKEN_MARGIN, 1)

    def _error(self, status: int, data: bytes, what: str) -> RegistryError:
        detail = _registry_message(data)
        suffix = ": " + detail if detail else ""
        if status == 401:
            return AuthError("%s: registry %s refused the %s (HTTP 401)%s" % (
                what, self.host, "credentials" if self._credentials else "request without credentials", suffix))
        if status == 403:
            return AuthError("%s: registry %s denies access (HTTP 403)%s" % (what, self.host, suffix))
        if status == 404:
            return NotFound("%s: not found in registry %s (HTTP 404)%s" % (what, self.host, suffix))
        return RegistryError("%s: registry %s answered HTTP %d%s" % (what, self.host, status, suffix))

    # -- pulling ----------------------------------------------------------------------------

    def get_manifest(self, repository: str, target: str, what: str | None = None) -> Manifest:
        """The manifest or index ``target`` (a tag or a digest) of ``repository``; a digest target is verified."""
        what = what or "manifest %s of %s/%s" % (target, self.host, repository)
        response = self.request("GET", "/v2/%s/manifests/%s" % (repository, target), _pull(repository), what,
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
        response, release = self.request("GET", "/v2/%s/blobs/%s" % (repository, digest), _pull(repository), what,
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
            response = self.request("HEAD", "/v2/%s/blobs/%s" % (repository, digest), scopes or _pull(repository), what,
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
            response = self.request("POST", uploads + "?" + query, scopes, what, headers={"Content-Length": "0"}, body=b"",
                                    ok=(201, 202))
            if response.status == 201:
                return "mounted", 0
        else:
            response = self.request("POST", uploads, scopes, what, headers={"Content-Length": "0"}, body=b"", ok=(202,))
        location = self._location(response, what)
        if size < self.chunk_size:
            self._finish(location, digest, scopes, what, path, 0, size)
            return "uploaded", size
        offset = 0
        while offset < size:
            length = min(self.chunk_size, size - offset)
            response = self.request("PATCH", location, scopes, what, ok=(202,), headers={
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
        self.request("PUT", url, scopes, what, ok=(201,), body=body,
                     headers={"Content-Type": "application/octet-stream", "Content-Length": str(length)})

    def _location(self, response, what: str) -> str:
        location = response.getheader("Location")
        if not location:
            raise RegistryError("%s: registry %s answered the upload without a Location" % (what, self.host))
        return urllib.parse.urljoin(self._url("/"), location)

    def manifest_digest(self, repository: str, target: str, media_type: str) -> str | None:
        """The digest under which ``target`` is stored (HEAD), None when the registry lacks it."""
        what = "manifest %s of %s/%s" % (target, self.host, repository)
        try:
            response = self.request("HEAD", "/v2/%s/manifests/%s" % (repository, target), _push(repository), what,
                                    headers={"Accept": media_type})
        except NotFound:
            return None
        return response.getheader("Docker-Content-Digest")

    def put_manifest(self, repository: str, target: str, data: bytes, media_type: str) -> bool:
        """Store the manifest ``data`` as ``target`` (a tag, or its digest); False when it was there already."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.manifest_digest(repository, target, media_type) == digest:
            return False
        self.request("PUT", "/v2/%s/manifests/%s" % (repository, target), _push(repository),
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


def _registry_message(data: bytes) -> str:
    """The ``errors`` list of a distribution error body as ``CODE: message``, else the start of the body."""
    try:
        found = json.loads(data).get("errors")
        return "; ".join("%s: %s" % (item.get("code"), item.get("message")) for item in found if isinstance(item, dict))
    except (ValueError, AttributeError, TypeError):
        return _text(data)


def _text(data: bytes) -> str:
    return data[:300].decode("utf-8", "replace").strip()


def session_for(ref: Reference, username: str | None = None, password: str | None = None, ca_path: str | None = None,
                insecure: bool = False, timeout: float = 60, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Session:
    """A Session for the registry of ``ref``."""
    return Session(ref.api_host, username, password, ca_path, insecure, timeout, chunk_size)
