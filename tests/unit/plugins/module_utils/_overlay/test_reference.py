# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Image references: Docker's normalisation, and the references it refuses."""

from __future__ import annotations

import pytest

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors, reference

D = "sha256:" + "0123456789abcdef" * 4

# text, registry, repository, tag, digest, str(), familiar
PARSE_CASES = [
    ("official image", "busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("official image with tag", "busybox:1.36", "docker.io", "library/busybox", "1.36", None,
     "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("user repository on the hub", "me/app", "docker.io", "me/app", "latest", None, "docker.io/me/app:latest", "me/app:latest"),
    ("a first component without dot or colon is a hub user", "myhost/app:1", "docker.io", "myhost/app", "1", None,
     "docker.io/myhost/app:1", "myhost/app:1"),
    ("index.docker.io is the hub", "index.docker.io/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/library spelled out", "docker.io/library/busybox:2", "docker.io", "library/busybox", "2", None,
     "docker.io/library/busybox:2", "busybox:2"),
    ("localhost is a registry", "localhost/app", "localhost", "app", "latest", None, "localhost/app:latest", "localhost/app:latest"),
    ("host:port registry without tag", "127.0.0.1:5000/test/app", "127.0.0.1:5000", "test/app", "latest", None,
     "127.0.0.1:5000/test/app:latest", "127.0.0.1:5000/test/app:latest"),
    ("host:port registry with tag", "localhost:5000/app:v2", "localhost:5000", "app", "v2", None,
     "localhost:5000/app:v2", "localhost:5000/app:v2"),
    ("dotted registry", "ghcr.io/org/team/app:x", "ghcr.io", "org/team/app", "x", None,
     "ghcr.io/org/team/app:x", "ghcr.io/org/team/app:x"),
    ("digest only gets no tag", "busybox@" + D, "docker.io", "library/busybox", None, D,
     "docker.io/library/busybox@" + D, "busybox@" + D),
    ("tag and digest", "reg.example:443/a/b:1@" + D, "reg.example:443", "a/b", "1", D,
     "reg.example:443/a/b:1@" + D, "reg.example:443/a/b:1@" + D),
    ("separators in components", "me/a.b_c__d-e--f", "docker.io", "me/a.b_c__d-e--f", "latest", None,
     "docker.io/me/a.b_c__d-e--f:latest", "me/a.b_c__d-e--f:latest"),
    ("a dotted first component is a registry", "a.b/c", "a.b", "c", "latest", None, "a.b/c:latest", "a.b/c:latest"),
    ("ipv6 registry", "[::1]:5000/app:1", "[::1]:5000", "app", "1", None, "[::1]:5000/app:1", "[::1]:5000/app:1"),
    ("upper-case first component is a host", "Registry/app", "Registry", "app", "latest", None,
     "Registry/app:latest", "Registry/app:latest"),
]


@pytest.mark.parametrize("text, registry, repository, tag, digest, full, familiar", [case[1:] for case in PARSE_CASES],
                         ids=[case[0] for case in PARSE_CASES])
def test_parse_normalises_like_docker(text, registry, repository, tag, digest, full, familiar):
    ref = reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest), text
    assert str(ref) == full
    assert ref.familiar == familiar
    assert reference.parse(str(ref)) == ref, "a normalised reference parses to itself"


BAD_CASES = [
    ("empty", "", "empty"),
    ("upper-case repository", "me/App", "lower case"),
    ("bad tag", "busybox:-x", "tag '-x'"),
    ("tag too long", "busybox:" + "a" * 129, "tag"),
    ("short digest", "busybox@sha256:abc", "digest 'sha256:abc'"),
    ("upper-case digest", "busybox@sha256:" + "A" * 64, "digest"),
    ("md5 digest", "busybox@md5:" + "a" * 32, "digest"),
    ("empty component", "me//app", "repository 'me//app'"),
    ("trailing separator", "me/app-", "repository"),
    ("bad registry", "reg_istry:5000/app", "not a registry"),
    ("name too long", "r.io/" + "a" * 260, "longer than 255"),
]


@pytest.mark.parametrize("text, message", [case[1:] for case in BAD_CASES], ids=[case[0] for case in BAD_CASES])
def test_parse_refuses_with_a_message_naming_the_reference(text, message):
    with pytest.raises(errors.InvalidArgument, match="image reference") as caught:
        reference.parse(text)
    assert message in str(caught.value), str(caught.value)


TARGET_CASES = [
    ("tag", "busybox:1", "1", "registry-1.docker.io"),
    ("digest wins over tag", "r.io:5000/app:1@" + D, D, "r.io:5000"),
    ("default tag", "localhost:5000/app", "latest", "localhost:5000"),
]


@pytest.mark.parametrize("text, target, api_host", [case[1:] for case in TARGET_CASES], ids=[case[0] for case in TARGET_CASES])
def test_target_and_api_host(text, target, api_host):
    ref = reference.parse(text)
    assert ref.target == target
    assert ref.api_host == api_host


def test_default_tag_none_keeps_a_bare_repository():
    ref = reference.parse("localhost:5000/app", default_tag=None)
    assert ref.tag is None and ref.target == "latest"


def test_with_target_validates():
    ref = reference.parse("localhost:5000/app:1")
    assert str(ref.with_target(digest=D)) == "localhost:5000/app@" + D
    with pytest.raises(errors.InvalidArgument, match="tag"):
        ref.with_target(tag="bad tag")
