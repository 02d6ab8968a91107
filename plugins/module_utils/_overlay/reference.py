# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Image references ``[registry/]repository[:tag|@digest]``, normalised as Docker does.

The rules of distribution's ``reference`` package (``ParseNormalizedNamed``): the first
path component is a registry only when it holds a ``.`` or a ``:`` or is ``localhost``
(so ``myhost/app`` is a Docker Hub repository, ``myhost:5000/app`` is not); Docker Hub is
``docker.io`` (``index.docker.io`` is an alias) and its one-component repositories live in
``library/``; without a tag or digest the tag is ``latest``. Repository components are
lower case. A reference may carry both a tag and a digest; the digest then decides what is
pulled, as it does for Docker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors

DOCKER_HUB = "docker.io"
# Docker Hub's API does not answer on docker.io itself.
_DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = ("docker.io", "index.docker.io")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REPOSITORY = re.compile(r"^%s(?:/%s)*$" % (_COMPONENT, _COMPONENT))
_HOST_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(r"^(?:%s(?:\.%s)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$" % (_HOST_LABEL, _HOST_LABEL))
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")
_MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    """A normalised reference: ``registry`` (``docker.io`` for Docker Hub), ``repository``, ``tag`` and/or ``digest``."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def api_host(self) -> str:
        """The ``host[:port]`` that serves the distribution API for this registry."""
        return _DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """``registry/repository``, the fully qualified name without tag or digest."""
        return "%s/%s" % (self.registry, self.repository)

    @property
    def target(self) -> str:
        """What the manifest endpoint is asked for: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def familiar(self) -> str:
        """The short form Docker shows (``busybox:latest``, ``me/app:1``, ``host:5000/app:1``)."""
        name = self.repository
        if self.registry != DOCKER_HUB:
            name = "%s/%s" % (self.registry, name)
        elif name.startswith("library/") and name.count("/") == 1:
            name = name[len("library/"):]
        return name + self._suffix()

    def with_target(self, tag: str | None = None, digest: str | None = None) -> Reference:
        """The same repository with another tag or digest (validated like a parsed one)."""
        if tag is not None and not _TAG.match(tag):
            raise errors.InvalidArgument("image tag %r is invalid: up to 128 letters, digits, '_', '.' and '-', "
                                         "not starting with '.' or '-'" % tag)
        if digest is not None and not _DIGEST.match(digest):
            raise errors.InvalidArgument("image digest %r is invalid: it must be sha256:<64 hex> or sha512:<128 hex>" % digest)
        return Reference(self.registry, self.repository, tag, digest)

    def _suffix(self) -> str:
        return (":" + self.tag if self.tag else "") + ("@" + self.digest if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


def parse(text: str, default_tag: str | None = "latest") -> Reference:
    """Parse and normalise ``text``; InvalidArgument names the reference and what is wrong with it.

    ``default_tag`` is the tag given to a reference without tag or digest (None keeps it
    without one, for a repository to push several tags to).
    """
    if not isinstance(text, str) or not text:
        raise errors.InvalidArgument("image reference %r is empty; give [registry/]repository[:tag|@digest]" % (text,))
    rest, at, digest = text.partition("@")
    if at and not _DIGEST.match(digest):
        raise errors.InvalidArgument("image reference %r: the digest %r is not sha256:<64 lower-case hex> or "
                                     "sha512:<128 lower-case hex>" % (text, digest))
    # A ':' after the last '/' starts the tag; one before it belongs to a registry port.
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = None
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise errors.InvalidArgument("image reference %r: the tag %r is invalid: up to 128 letters, digits, '_', "
                                         "'.' and '-', not starting with '.' or '-'" % (text, tag))
    registry, repository = _split_registry(rest)
    if not _REGISTRY.match(registry):
        raise errors.InvalidArgument("image reference %r: %r is not a registry host[:port]" % (text, registry))
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = "library/" + repository
    if not _REPOSITORY.match(repository):
        hint = " (repository names are lower case)" if _REPOSITORY.match(repository.lower()) else ""
        raise errors.InvalidArgument("image reference %r: the repository %r is invalid%s: components of lower-case "
                                     "letters and digits, separated by '.', '_', '__' or '-', joined by '/'"
                                     % (text, repository, hint))
    if len(registry) + 1 + len(repository) > _MAX_NAME:
        raise errors.InvalidArgument("image reference %r: the name is longer than %d characters" % (text, _MAX_NAME))
    if tag is None and not at:
        tag = default_tag
    return Reference(registry, repository, tag, digest or None)


def _split_registry(name: str) -> tuple:
    first, slash, remainder = name.partition("/")
    if not slash:
        return DOCKER_HUB, name
    # distribution also takes an upper-case first component as a host: repositories are lower case.
    if "." in first or ":" in first or first == "localhost" or first.lower() != first:
        return first, remainder
    return DOCKER_HUB, name
