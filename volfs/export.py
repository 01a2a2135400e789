"""The volfs export: a host directory served over 9P (the `ninep.backends` entry point)."""

from __future__ import annotations

import errno
import os
import weakref
from typing import TypedDict

from ninep.backend import Backend, File, User
from ninep.escape import identity, swap
from ninep.listing import ExportInfo
from ninep.watch import Watcher, WatchFigures

from .access import cred_for
from .descriptors import DescriptorFigures, Descriptors, shared
from .dirindex import DirIndexes
from .hostio import HostCalls
from .names import Names
from .node import Node
from .node_base import Tree
from .options import OPTIONS, AttachOptions, parse_options
from .policy import Policy
from .stored import Staging


class VolfsFigures(TypedDict):
    """An export's figures (`ninep.stats.ExportFigures`): its descriptor cache's (shared by
    the process's exports), its watches'."""

    descriptor_cache: DescriptorFigures
    watch: WatchFigures


class VolExport:
    """A host directory as a 9P export; holds an O_PATH fd on its root.

    By default its directories are case-insensitive and names Windows cannot
    hold are escaped, as on a Windows drive under WSL (docs/names.md);
    `case_sensitive` makes it a plain POSIX tree. `escape` defaults to on for a
    case-insensitive export and off for a case-sensitive one.

    `read_only`, `metadata` and `client_groups` turn those attach options on
    for every attach (`volfs.options`). `squash_root` makes uid 0 act as nobody (65534)
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
        self.every_attach = AttachOptions(
            read_only=read_only, metadata=metadata, client_groups=client_groups
        )
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
        every = self.every_attach
        return ExportInfo(name, every.read_only, every.metadata, self.case_sensitive, self.escape)

    def stats(self) -> VolfsFigures:
        """The export's figures for `Server.stats()`: its descriptor cache's, its watches."""
        return {"descriptor_cache": self.descriptors.stats(), "watch": self.watcher.stats()}

    def read_only_attach(self, options: str) -> bool:
        """Whether an attach with `options` is read-only (the server gates it: `ninep.gate`)."""
        return parse_options(options, self.every_attach).read_only

    async def attach(self, options: str, user: User) -> File:
        """The root for `user`; `options` are the attach options (see `volfs.options`)."""
        opts = parse_options(options, self.every_attach)
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
            Tree(self, opts, names, policy, self.staging, self.calls),
            self._root.retain(),
        )

    def close(self) -> None:
        """Release the root (Files already attached keep working) and stop watching."""
        self.watcher.close()
        self._finalizer()


#: The `ninep.backends` entry point: export the host directory `path` (see VolExport),
#: with the options of `volfs.options`.
open_export = Backend(VolExport, OPTIONS)
