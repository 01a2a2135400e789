"""The volfs export: a host directory served over 9P (the `ninep.backends` entry point)."""

from __future__ import annotations

import errno
import os
import weakref
from dataclasses import replace
from typing import Any

from ninep.backend import File, User
from ninep.escape import identity, swap
from ninep.listing import ExportInfo
from ninep.watch import Watcher

from .access import cred_for
from .descriptors import Descriptors, shared
from .dirindex import DirIndexes
from .hostio import HostCalls
from .making import making_for
from .names import Names
from .node import Node, Tree
from .options import AttachOptions, parse_options
from .policy import Policy
from .stored import Staging

_EXPORT_FLAGS = ("read_only", "metadata", "client_groups")
"""Attach options that an export can turn on for every attach (keywords of VolExport)."""


class VolExport:
    """A host directory as a 9P export; holds an O_PATH fd on its root.

    By default its directories are case-insensitive and names Windows cannot
    hold are escaped, as on a Windows drive under WSL (docs/names.md);
    `case_sensitive` makes it a plain POSIX tree. `escape` defaults to on for a
    case-insensitive export and off for a case-sensitive one.

    `metadata` and `client_groups` turn those attach options on for every
    attach (`volfs.options`). `squash_root` makes uid 0 act as nobody (65534)
    where metadata is on; without metadata there is nothing to squash: the
    claimed uid only shapes the owner shown.

    `descriptors`: the cache of host descriptors its fids use (`volfs.descriptors`);
    by default the process-wide one.
    """

    def __init__(
        self,
        path: str,
        read_only: bool = False,
        *,
        case_sensitive: bool = False,
        escape: bool | None = None,
        metadata: bool = False,
        squash_root: bool = False,
        client_groups: bool = False,
        descriptors: Descriptors | None = None,
    ) -> None:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.descriptors = shared() if descriptors is None else descriptors
        root = self.descriptors.root(fd)
        self.read_only = read_only
        self.metadata = metadata
        self.client_groups = client_groups
        self.squash_root = squash_root  # metadata on: uid 0 acts as nobody (65534)
        self.case_sensitive = case_sensitive
        self.escape = not case_sensitive if escape is None else escape
        self.show = swap if self.escape else identity  # host name -> shown, and back
        self.indexes = DirIndexes(self.show)
        self.watcher = Watcher(self.show, path)  # change notification (volfs.watching)
        self.indexes.follow(self.watcher)  # trusted through own changes where it covers
        self._root = root
        self.staging = Staging(fd)  # creation where the host has no O_TMPFILE
        self.calls = HostCalls.of(fd)
        self._finalizer = weakref.finalize(self, root.release)

    def describe(self, name: str) -> ExportInfo:
        """What the listing of exports says of this one, served as `name`."""
        return ExportInfo(name, self.read_only, self.metadata, self.case_sensitive, self.escape)

    def stats(self) -> dict[str, Any]:
        """The export's figures for `Server.stats()`: its descriptor cache's, its watches."""
        return {"descriptor_cache": self.descriptors.stats(), "watch": self.watcher.stats()}

    def _options(self, options: str) -> AttachOptions:
        """The options of an attach with `options`, the export's own flags forced on."""
        forced: dict[str, Any] = {flag: True for flag in _EXPORT_FLAGS if getattr(self, flag)}
        return replace(parse_options(options), **forced)

    def read_only_attach(self, options: str) -> bool:
        """Whether an attach with `options` is read-only (the server gates it: `ninep.gate`)."""
        return self._options(options).read_only

    async def attach(self, options: str, user: User) -> File:
        """The root for `user`; `options` are the attach options (see `volfs.options`)."""
        opts = self._options(options)
        if not self._finalizer.alive:
            raise OSError(errno.EBADF, "export is closed")
        names = Names(
            sensitive_export=self.case_sensitive,
            show=self.show,
            case=opts.case,
            indexes=self.indexes,
        )
        squash = self.squash_root and opts.metadata
        policy = Policy(opts, cred_for(user.uid, squash, opts.client_groups, user.bounded))
        return Node.root(
            Tree(self, opts, names, policy, self.staging, making_for(policy), self.calls),
            self._root.retain(),
        )

    def close(self) -> None:
        """Release the root (Files already attached keep working) and stop watching."""
        self.watcher.close()
        self._finalizer()


#: The `ninep.backends` entry point: export the host directory `path` (see VolExport).
open_export = VolExport
