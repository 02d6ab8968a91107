# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The registry client against real docker-registry instances (basic auth and bearer tokens, TLS)."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, imagewriter, platforms, reference, registry, registryhttp
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.difftar import write_tree_tar
from ansible_collections.graphdriver.overlay.tests.unit.plugins.module_utils._overlay.registry_fixtures import (  # pylint: disable=unused-import
    PASSWORD, USER, basic_registry, token_registry)

CHUNK = 1 << 20


def make_layer(scratch: str, name: str, files: dict) -> imagewriter.LayerBlob:
    """A real layer tar of a tree holding ``files`` (path: bytes), written by the driver's tar writer."""
    tree = os.path.join(scratch, name + ".tree")
    for path, data in files.items():
        full = os.path.join(tree, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as handle:
            handle.write(data)
        os.utime(full, (1000000000, 1000000000))
    blob = os.path.join(scratch, name + ".tar")
    with open(blob, "wb") as out:
        write_tree_tar(tree, out)
    return imagewriter.layer_blob(blob)


def two_layer_image(scratch: str, tag: str) -> imagewriter.BuiltImage:
    base = make_layer(scratch, "base-" + tag, {"etc/hello": b"hello " + tag.encode(), "bin/tool": b"#!/bin/sh\n"})
    # Bigger than CHUNK, so that pushing it goes through PATCH chunks.
    top = make_layer(scratch, "top-" + tag, {"data/big": os.urandom(2 * CHUNK + 12345)})
    return imagewriter.build_image([base, top], "amd64", history=["base", "top"])


def push(session: registry.Session, ref: reference.Reference, image: imagewriter.BuiltImage, scratch: str,
         mount_from: str | None = None) -> registry.PushResult:
    config = os.path.join(scratch, image.config_digest.partition(":")[2] + ".json")
    with open(config, "wb") as handle:
        handle.write(image.config)
    blobs = [(digest, size, path or config) for digest, size, path in image.blobs()]
    return session.push_image(ref, blobs, image.manifest, mount_from=mount_from)


def session(reg, **kwargs) -> registry.Session:
    kwargs.setdefault("username", USER)
    kwargs.setdefault("password", PASSWORD)
    return registry.Session(reg.host, ca_path=reg.ca, chunk_size=CHUNK, **kwargs)


def read_all(stream) -> bytes:
    with stream:
        return stream.read()


@pytest.mark.parametrize("registry_fixture", ["basic_registry", "token_registry"])
def test_push_pull_round_trip_then_idempotent_push_and_mount(request, registry_fixture, scratch):
    reg = request.getfixturevalue(registry_fixture)
    image = two_layer_image(scratch, registry_fixture)
    ref = reference.parse("%s/test/app:%s" % (reg.host, registry_fixture))
    with session(reg) as client:
        first = push(client, ref, image, scratch)
        sizes = sum(size for _digest, size, _path in image.blobs())
        assert first.blobs == {digest: "uploaded" for digest, _size, _path in image.blobs()}
        assert first.manifest_pushed and first.changed
        assert first.bytes_transferred == sizes + len(image.manifest)
        assert first.manifest_digest == image.manifest_digest

        by_tag = client.resolve(ref, "linux/amd64")
        by_digest = client.resolve(ref.with_target(digest=image.manifest_digest), "linux/amd64")
        for found in (by_tag, by_digest):
            assert found.manifest.digest == image.manifest_digest
            assert found.manifest.data == image.manifest
            assert found.config == image.config and found.config_digest == image.config_digest
            assert found.diff_ids == image.diff_ids
        for layer, descriptor in zip(image.layers, by_tag.layers):
            stream = client.open_blob(ref.repository, descriptor)
            data = read_all(stream)
            assert stream.bytes_read == layer.size
            with open(layer.path, "rb") as handle:
                assert data == handle.read(), "layer %s came back different" % layer.digest

        again = push(client, ref, image, scratch)
        assert again.bytes_transferred == 0 and not again.changed
        assert set(again.blobs.values()) == {"present"}

        other = reference.parse("%s/test/copy:1" % reg.host)
        mounted = push(client, other, image, scratch, mount_from=ref.repository)
        assert set(mounted.blobs.values()) == {"mounted"}, mounted.blobs
        assert mounted.bytes_transferred == len(image.manifest)
        assert client.resolve(other, "linux/amd64").manifest.digest == image.manifest_digest


@pytest.mark.parametrize("registry_fixture", ["basic_registry", "token_registry"])
def test_without_credentials_the_error_names_the_reference(request, registry_fixture):
    reg = request.getfixturevalue(registry_fixture)
    ref = reference.parse("%s/test/app:anything" % reg.host)
    with registry.Session(reg.host, ca_path=reg.ca) as client:
        with pytest.raises(registryhttp.AuthError, match=str(ref).replace(".", r"\.")) as caught:
            client.resolve(ref, "linux/amd64")
    assert "registry_username" in str(caught.value) or "401" in str(caught.value), str(caught.value)


def test_wrong_password_is_refused(basic_registry):
    ref = reference.parse("%s/test/app:x" % basic_registry.host)
    with session(basic_registry, password="wrong") as client:
        with pytest.raises(registryhttp.AuthError, match="401"):
            client.resolve(ref, "linux/amd64")


def test_missing_tag_is_not_found_naming_the_reference(basic_registry, scratch):
    ref = reference.parse("%s/test/absent:nope" % basic_registry.host)
    with session(basic_registry) as client:
        with pytest.raises(registryhttp.NotFound, match="nope") as caught:
            client.resolve(ref, "linux/amd64")
    assert "404" in str(caught.value)


def test_untrusted_certificate_says_to_give_the_ca(basic_registry):
    ref = reference.parse("%s/test/app:x" % basic_registry.host)
    with registry.Session(basic_registry.host, USER, PASSWORD) as client:
        with pytest.raises(registryhttp.RegistryError, match="registry_ca_path"):
            client.resolve(ref, "linux/amd64")


def test_plain_http_to_a_tls_registry_fails_clearly(basic_registry):
    with registry.Session(basic_registry.host, USER, PASSWORD, insecure=True) as client:
        with pytest.raises(registryhttp.RegistryError):
            client.get_manifest("test/app", "x")


def _pushed_blob(reg, scratch: str, name: str):
    image = imagewriter.build_image([make_layer(scratch, name, {"f": os.urandom(300000)})], "amd64")
    ref = reference.parse("%s/test/%s:1" % (reg.host, name))
    with session(reg) as client:
        push(client, ref, image, scratch)
    layer = image.layers[0]
    return ref, {"digest": layer.digest, "size": layer.size}


def test_corrupted_blob_raises_a_digest_mismatch_naming_the_blob(basic_registry, scratch):
    ref, descriptor = _pushed_blob(basic_registry, scratch, "corrupt")
    data = basic_registry.blob_data(descriptor["digest"])
    with open(data, "r+b") as handle:
        handle.seek(2000)
        byte = handle.read(1)
        handle.seek(2000)
        handle.write(bytes((byte[0] ^ 0xFF,)))
    with session(basic_registry) as client:
        stream = client.open_blob(ref.repository, descriptor)
        with pytest.raises(registryhttp.DigestMismatch, match=descriptor["digest"]):
            read_all(stream)


def test_truncated_blob_raises_naming_the_blob_and_the_sizes(basic_registry, scratch):
    ref, descriptor = _pushed_blob(basic_registry, scratch, "short")
    data = basic_registry.blob_data(descriptor["digest"])
    os.truncate(data, descriptor["size"] - 1000)
    with session(basic_registry) as client:
        stream = client.open_blob(ref.repository, descriptor)
        with pytest.raises(registryhttp.TruncatedBlob, match="%s.*%d of %d bytes" % (
                descriptor["digest"], descriptor["size"] - 1000, descriptor["size"])):
            read_all(stream)


def test_stream_stops_a_registry_sending_more_than_the_descriptor(basic_registry, scratch):
    ref, descriptor = _pushed_blob(basic_registry, scratch, "long")
    with session(basic_registry) as client:
        stream = client.open_blob(ref.repository, dict(descriptor, size=descriptor["size"] - 1))
        with pytest.raises(registryhttp.TruncatedBlob, match="more than"):
            read_all(stream)


def test_bearer_tokens_are_cached_per_scope_and_push_asks_for_push(token_registry, scratch):
    ref, descriptor = _pushed_blob(token_registry, scratch, "tokens")
    token_server = token_registry.token_server
    pushed_scopes = [scopes for _user, scopes in token_server.requests]
    assert ["repository:test/tokens:pull,push"] in pushed_scopes, pushed_scopes
    with session(token_registry) as client:
        before = len(token_server.requests)
        for _round in range(3):
            assert hashlib.sha256(read_all(client.open_blob(ref.repository, descriptor))).hexdigest() == \
                descriptor["digest"].partition(":")[2]
        asked = token_server.requests[before:]
    assert asked == [(USER, ["repository:test/tokens:pull"])], asked


def test_index_resolves_to_the_platform_asked(basic_registry, scratch):
    images = {arch: imagewriter.build_image([make_layer(scratch, "idx-" + arch, {"arch": arch.encode()})], arch)
              for arch in ("amd64", "arm64")}
    ref = reference.parse("%s/test/multi:1" % basic_registry.host)
    entries = []
    with session(basic_registry) as client:
        for arch, image in images.items():
            push(client, ref.with_target(digest=image.manifest_digest), image, scratch)
            platform = {"os": "linux", "architecture": arch}
            if arch == "arm64":
                platform["variant"] = "v8"
            entries.append({"mediaType": imagewriter.OCI_MANIFEST, "digest": image.manifest_digest,
                            "size": len(image.manifest), "platform": platform})
        index = imagewriter.canonical_json({"schemaVersion": 2, "mediaType": imagewriter.OCI_INDEX, "manifests": entries})
        assert client.put_manifest(ref.repository, ref.tag, index, imagewriter.OCI_INDEX)
        for wanted, arch in (("linux/amd64", "amd64"), ("linux/arm64", "arm64"), ("linux/arm64/v8", "arm64")):
            found = client.resolve(ref, wanted)
            assert found.manifest.digest == images[arch].manifest_digest, wanted
            assert found.index is not None and found.index.media_type == imagewriter.OCI_INDEX
        with pytest.raises(registryhttp.NotFound, match="linux/s390x.*offers linux/amd64, linux/arm64/v8"):
            client.resolve(ref, "linux/s390x")


PLATFORM_CASES = [
    ("plain", "linux/amd64", ("linux", "amd64", "")),
    ("arm64 defaults to v8", "linux/arm64", ("linux", "arm64", "v8")),
    ("arm defaults to v7", "linux/arm", ("linux", "arm", "v7")),
    ("explicit variant kept", "linux/arm/v6", ("linux", "arm", "v6")),
    ("amd64 v1 is plain amd64", "linux/amd64/v1", ("linux", "amd64", "")),
    ("uname names", "linux/x86_64", ("linux", "amd64", "")),
]


@pytest.mark.parametrize("text, expected", [case[1:] for case in PLATFORM_CASES], ids=[case[0] for case in PLATFORM_CASES])
def test_parse_platform_normalises_variants(text, expected):
    assert platforms.parse_platform(text) == expected


@pytest.mark.parametrize("text", ["linux", "", "linux//v7", "a/b/c/d"])
def test_parse_platform_refuses_malformed(text):
    with pytest.raises(errors.InvalidArgument, match="platform"):
        platforms.parse_platform(text)


CHALLENGE_CASES = [
    ("bearer", 'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"',
     ("bearer", {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a/b:pull"})),
    ("basic", 'Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
    ("spaces and unquoted", 'Bearer  realm = "r" , service=svc', ("bearer", {"realm": "r", "service": "svc"})),
    ("escaped quote", r'Bearer realm="a\"b"', ("bearer", {"realm": 'a"b'})),
]


@pytest.mark.parametrize("header, expected", [case[1:] for case in CHALLENGE_CASES], ids=[case[0] for case in CHALLENGE_CASES])
def test_parse_challenge(header, expected):
    assert registryhttp.parse_challenge(header) == expected


class _Recorder:
    """Two HTTP servers on 127.0.0.1: a registry front that redirects blob GETs to a storage host, and that host.

    The storage host is reached as ``localhost``, another host for the client than
    ``127.0.0.1``, as blob storage is in front of cloud registries; both record the headers
    they get.
    """

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        self.seen: list = []
        recorder = self

        class Front(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                recorder.seen.append(("front", self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != recorder.basic:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="front"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(307)
                self.send_header("Location", "http://localhost:%d/storage/%s" % (recorder.storage_port, recorder.digest))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Storage(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                recorder.seen.append(("storage", self.path, self.headers.get("Authorization")))
                self.send_response(200)
                self.send_header("Content-Length", str(len(recorder.blob)))
                self.end_headers()
                self.wfile.write(recorder.blob)

            def log_message(self, *args):
                pass

        self.basic = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
        self._servers = [ThreadingHTTPServer(("127.0.0.1", 0), Front), ThreadingHTTPServer(("127.0.0.1", 0), Storage)]
        self.front_host = "127.0.0.1:%d" % self._servers[0].server_address[1]
        self.storage_port = self._servers[1].server_address[1]
        self._threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in self._servers]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(10)


def test_blob_redirect_to_another_host_goes_there_without_the_registry_credentials():
    blob = os.urandom(70000)
    with _Recorder(blob) as recorder:
        with registry.Session(recorder.front_host, USER, PASSWORD, insecure=True) as client:
            stream = client.open_blob("test/app", {"digest": recorder.digest, "size": len(blob)})
            assert read_all(stream) == blob
    storage = [entry for entry in recorder.seen if entry[0] == "storage"]
    assert storage == [("storage", "/storage/" + recorder.digest, None)], recorder.seen
    assert ("front", "/v2/test/app/blobs/" + recorder.digest, recorder.basic) in recorder.seen
