# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The HTTP side of a registry client: TLS, reused connections, authentication, redirects, typed errors.

Authentication follows the registry's ``WWW-Authenticate`` challenge: ``Basic`` sends the
credentials to the registry; ``Bearer realm=...,service=...`` gets a token from the realm
(with the credentials, when there are any) for a scope such as
``repository:<name>:pull,push``, cached per scope. A request the registry redirects to
another host (blob storage) goes there without the registry's ``Authorization`` header.
Answers outside what a request accepts become ``AuthError`` (401, 403), ``NotFound`` (404)
or ``RegistryError``, each naming what was asked for. The whole ``RegistryError`` family
lives here, ``DigestMismatch`` and ``TruncatedBlob`` too, which the distribution client
(``registry.py``) raises when what arrived does not verify.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import ssl
import time
import urllib.parse

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors

_CHALLENGE_PARAM = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')
_MAX_REDIRECTS = 5
# The size of the reads on a connection (http.client's blocksize), and of a blob stream's.
BLOCK_SIZE = 1 << 20
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


def _basic(credentials: tuple) -> str:
    return "Basic " + base64.b64encode(("%s:%s" % credentials).encode("utf-8")).decode("ascii")


class Transport:
    """Requests to one registry (``host[:port]``) with its TLS settings, credentials, token cache and idle connections."""

    def __init__(self, host: str, username: str | None = None, password: str | None = None, ca_path: str | None = None,
                 insecure: bool = False, timeout: float = 60) -> None:
        if (username is None) != (password is None):
            raise errors.InvalidArgument("registry %s: give registry_username and registry_password together" % host)
        if ca_path is not None and not os.path.exists(ca_path):
            raise errors.InvalidArgument("registry_ca_path %s does not exist" % ca_path)
        self.host = host
        self.scheme = "http" if insecure else "https"
        self._credentials = (username, password) if username is not None else None
        self._context = None if insecure else _ssl_context(ca_path)
        self._timeout = timeout
        self._tokens: dict = {}
        self._basic = False
        self._idle: dict = {}

    def close(self) -> None:
        """Close the idle connections."""
        for connection in self._idle.values():
            connection.close()
        self._idle.clear()

    def url(self, path: str) -> str:
        """The URL of ``path`` (``/v2/...``) on the registry."""
        return "%s://%s%s" % (self.scheme, self.host, path)

    def _connect(self, scheme: str, netloc: str):
        connection = self._idle.pop((scheme, netloc), None)
        if connection is not None:
            return connection
        if scheme == "https":
            # The registry's context for its own host; blob storage elsewhere is checked against the system store too.
            context = self._context if netloc == self.host else ssl.create_default_context()
            return http.client.HTTPSConnection(netloc, timeout=self._timeout, context=context, blocksize=BLOCK_SIZE)
        if scheme == "http":
            return http.client.HTTPConnection(netloc, timeout=self._timeout, blocksize=BLOCK_SIZE)
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
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
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
            return _basic(self._credentials)
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
            headers["Authorization"] = _basic(self._credentials)
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


def _registry_message(data: bytes) -> str:
    """The ``errors`` list of a distribution error body as ``CODE: message``, else the start of the body."""
    try:
        found = json.loads(data).get("errors")
        return "; ".join("%s: %s" % (item.get("code"), item.get("message")) for item in found if isinstance(item, dict))
    except (ValueError, AttributeError, TypeError):
        return _text(data)


def _text(data: bytes) -> str:
    return data[:300].decode("utf-8", "replace").strip()
