# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Real registries for the tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1 over TLS.

``pki(dir)`` makes a CA and a server certificate for 127.0.0.1 with openssl. ``Registry``
runs ``docker-registry serve`` on a free port with its own storage dir, either behind
htpasswd basic auth or behind ``TokenServer``: a bearer-token endpoint (http.server on
127.0.0.1) that signs RS256 JWTs with ``openssl dgst`` and puts its certificate in the
``x5c`` header, which the registry checks against its ``rootcertbundle``. Every process is
stopped by the PID started here, and dies with the process that started it (PDEATHSIG).

``basic_registry`` and ``token_registry`` are pytest fixtures built from these; import them
into a test module to use them. They are function-scoped on purpose: ansible-test runs every
test in a fork of its own that ends with ``os._exit``, so a wider-scoped fixture would be set
up again in each fork and never torn down.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

USER = "tester"
PASSWORD = "s3cret-pass"
SERVICE = "gdo-test-registry"
ISSUER = "gdo-test-issuer"
REGISTRY_BINARY = "/usr/bin/docker-registry"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def pki(directory: str) -> dict:
    """A CA, a server certificate for 127.0.0.1/localhost signed by it, and a self-signed token-signing certificate."""
    paths = {name: os.path.join(directory, name) for name in
             ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt", "ext.cnf", "token.key", "token.crt")}
    # EC keys for the TLS side: made in milliseconds, and every test makes its own.
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", paths["ca.key"], "-out", paths["ca.crt"],
             "-days", "2", "-subj", "/CN=gdo test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", paths["server.key"], "-out", paths["server.csr"],
             "-subj", "/CN=127.0.0.1")
    with open(paths["ext.cnf"], "w", encoding="ascii") as handle:
        handle.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                     "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", paths["server.csr"], "-CA", paths["ca.crt"], "-CAkey", paths["ca.key"],
             "-CAcreateserial", "-out", paths["server.crt"], "-days", "2", "-extfile", paths["ext.cnf"])
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", paths["token.key"], "-out", paths["token.crt"],
             "-days", "2", "-subj", "/CN=gdo test token issuer")
    return paths


def _die_with_parent() -> None:
    """In the child before exec: a SIGTERM when the test process that started it dies, whatever the way."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenServer:
    """The bearer-token endpoint: grants the requested scopes to USER/PASSWORD, nothing to anyone else.

    ``requests`` records every token request as ``(user or None, [scopes])``.
    """

    def __init__(self, key: str, cert: str) -> None:
        self.key = key
        with open(cert, "rb") as handle:
            der = ssl.PEM_cert_to_DER_cert(handle.read().decode("ascii"))
        self._x5c = base64.b64encode(der).decode("ascii")
        self.requests: list = []
        self._lock = threading.Lock()
        self.port = free_port()
        self.realm = "http://127.0.0.1:%d/token" % self.port
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.answer(self)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing_input.encode("ascii"),
                                   check=True, capture_output=True).stdout
        return signing_input + "." + _b64url(signature)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        user = None
        authorization = handler.headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            user, _sep, password = base64.b64decode(authorization[6:]).decode("utf-8").partition(":")
            if (user, password) != (USER, PASSWORD):
                handler.send_response(401)
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
        scopes = query.get("scope", [])
        with self._lock:
            self.requests.append((user, scopes))
        access = []
        if user == USER:
            for scope in scopes:
                kind, _sep, rest = scope.partition(":")
                name, _sep, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user or "", "aud": query.get("service", [""])[0], "exp": now + 300, "nbf": now - 5,
                  "iat": now, "jti": "%d-%d" % (now, len(self.requests)), "access": access}
        body = json.dumps({"token": self.sign(claims), "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


class Registry:
    """docker-registry serving ``storage`` over TLS on 127.0.0.1:<free port>, auth ``htpasswd`` or ``token``."""

    def __init__(self, workdir: str, paths: dict, auth: str, token_server: TokenServer | None = None) -> None:
        self.workdir = workdir
        self.paths = paths
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.storage = os.path.join(workdir, "storage")
        self.ca = paths["ca.crt"]
        self.token_server = token_server
        self.proc = None
        os.makedirs(self.storage)
        if auth == "htpasswd":
            htpasswd = os.path.join(workdir, "htpasswd")
            line = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True).stdout
            with open(htpasswd, "w", encoding="ascii") as handle:
                handle.write(line.strip() + "\n")
            auth_config = {"htpasswd": {"realm": "gdo-basic", "path": htpasswd}}
        else:
            auth_config = {"token": {"realm": token_server.realm, "service": SERVICE, "issuer": ISSUER,
                                     "rootcertbundle": paths["token.crt"]}}
        config = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": self.storage}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "gdo-test-secret",
                     "tls": {"certificate": paths["server.crt"], "key": paths["server.key"]}},
            "auth": auth_config,
        }
        # JSON is YAML: no YAML writer needed.
        self.config = os.path.join(workdir, "config.yml")
        with open(self.config, "w", encoding="utf-8") as handle:
            json.dump(config, handle)
        self.log = os.path.join(workdir, "registry.log")

    def start(self) -> Registry:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([REGISTRY_BINARY, "serve", self.config], stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)  # pylint: disable=consider-using-with,subprocess-popen-preexec-fn
        context = ssl.create_default_context(cafile=self.ca)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited with %d: %s" % (self.proc.returncode, self.log_text()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw:
                    with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                        return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("docker-registry did not answer on %s: %s" % (self.host, self.log_text())) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_text(self) -> str:
        with open(self.log, "rb") as handle:
            return handle.read()[-3000:].decode("utf-8", "replace")

    def blob_data(self, digest: str) -> str:
        """The file in which the registry keeps a blob's bytes (to tamper with it)."""
        hexdigest = digest.partition(":")[2]
        return os.path.join(self.storage, "docker/registry/v2/blobs/sha256", hexdigest[:2], hexdigest, "data")

    def cert_dir(self) -> str:
        """A certs.d-style directory with the CA as ca.crt (what skopeo's --cert-dir wants)."""
        path = os.path.join(self.workdir, "certs.d")
        if not os.path.isdir(path):
            os.makedirs(path)
            shutil.copyfile(self.ca, os.path.join(path, "ca.crt"))
        return path


def _serve(auth: str):
    workdir = tempfile.mkdtemp(prefix="gdo-registry-")
    token_server = None
    registry = None
    try:
        paths = pki(workdir)
        if auth == "token":
            token_server = TokenServer(paths["token.key"], paths["token.crt"]).start()
        registry = Registry(os.path.join(workdir, "registry"), paths, auth, token_server).start()
        yield registry
    finally:
        if registry is not None:
            registry.stop()
        if token_server is not None:
            token_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def basic_registry():
    """A registry behind htpasswd basic auth (USER/PASSWORD) over TLS."""
    yield from _serve("htpasswd")


@pytest.fixture
def token_registry():
    """A registry behind the bearer-token endpoint (USER/PASSWORD at the token realm) over TLS."""
    yield from _serve("token")
