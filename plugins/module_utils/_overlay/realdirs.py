# -*- coding: utf-8 -*-
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The real directories of one tar apply: paths resolved inside the root as if it were ``/``.

A tar entry's parent path may run through symlinks that earlier entries (or the parent
layer) made; they are followed with chroot semantics, so nothing is reached outside the root.
The directories found real are kept as a tree of dicts keyed by name: a path whose every
component is in it has no symlink in it, and the applier pops a subtree when it removes or
replaces anything. Beside it, ``plain`` holds the directories where a new inode gets exactly
the creator's owner and the mode it was made with (not setgid, no default ACL, umask 0), so
the applier can leave out a chown or chmod that would change nothing.
"""

from __future__ import annotations

import errno
import os
import stat

from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay import errors
from ansible_collections.graphdriver.overlay.plugins.module_utils._overlay.tarfeed import quote as _quote

_MAX_SYMLINKS = 40
_NO_ACL_ERRNOS = (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP)


def has_default_acl(path: str) -> bool:
    """Whether new entries in the directory get their mode from a default ACL (unknown counts as yes)."""
    try:
        os.getxattr(path, "system.posix_acl_default", follow_symlinks=False)
    except OSError as exc:
        return exc.errno not in _NO_ACL_ERRNOS
    return True


class RealDirs:
    """The directory cache and owner/mode bookkeeping of one apply below ``root``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.tree: dict = {}
        self.creator = (os.geteuid(), os.getegid())
        self.plain: set = set()
        self.set_plain(root, os.lstat(root).st_mode, False)

    def set_plain(self, path: str, mode: int, inherited: bool | None) -> None:
        """Record whether new entries in the directory ``path`` get the creator's owner and their exact mode.

        ``inherited`` is the parent's state for a directory this apply just made (it inherits the
        parent's setgid bit and default ACL), None when its own ACL is not known, False to check it.
        """
        if mode & stat.S_ISGID or inherited is None:
            plain = False
        elif inherited:
            plain = True
        else:
            plain = not has_default_acl(path)
        if plain:
            self.plain.add(path)
        else:
            self.plain.discard(path)

    def resolve(self, head: str, name: str, create: bool):
        """The real directory ``head`` (relative to the root) stands for, and its cache node.

        Symlinks on the way are followed as if the root were ``/``. With ``create``, missing
        directories are made with mode 0600 (Docker's quirk); without it, None when missing.
        """
        if not head:
            return self.root, self.tree
        node = self.tree
        for part in head.split("/"):
            node = node.get(part)
            if node is None:
                return self._resolve_slow(head.split("/"), name, create)
        return self.root + "/" + head, node

    def _resolve_slow(self, parts: list, name: str, create: bool):
        stack = [(self.root, self.tree)]
        pending = parts[::-1]
        links = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            path, node = stack[-1]
            candidate = path + "/" + part
            child = node.get(part)
            if child is None:
                made = False
                try:
                    mode = os.lstat(candidate).st_mode
                except FileNotFoundError:
                    if not create:
                        return None
                    os.mkdir(candidate, 0o600)
                    mode = stat.S_IFDIR
                    made = True
                if stat.S_ISLNK(mode):
                    links += 1
                    if links > _MAX_SYMLINKS:
                        raise errors.ArchiveError("entry %s: too many levels of symbolic links in its path" % _quote(name))
                    target = os.readlink(candidate)
                    if target.startswith("/"):
                        del stack[1:]
                    pending.extend(reversed(target.split("/")))
                    continue
                if not stat.S_ISDIR(mode):
                    if not create:
                        return None
                    raise errors.ArchiveError("cannot create entry %s: %s is not a directory"
                                              % (_quote(name), _quote(candidate[len(self.root) + 1:])))
                child = node[part] = {}
                self.set_plain(candidate, mode, (path in self.plain or None) if made else False)
            stack.append((candidate, child))
        return stack[-1]
