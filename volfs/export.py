"""The volfs export: a host directory served over 9P (the `ninep.backends` entry point)."""

from __future__ import annotations

import errno
import os
import weakref
from dataclasses import replace

from ninep.backend import File, User

from .access import cred_for
from .dirindex import DirIndexes
from .escape import identity, swap
from .names import Names
from .node import Node, Tree
from .options import parse_options
from .policy import Policy
from .stored import Staging


class VolExport:
    """A host directory as a 9P export; holds an O_PATH fd on its root.

    By default its directories are case-insensitive and names Windows cannot
    hold are escaped, as on a Windows drive under WSL (docs/names.md);
    `case_sensitive` makes it a plain POSIX tree. `escape` defaults to on for a
    case-insensitive export and off for a case-sensitive one.
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
    ) -> None:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.read_only = read_only
        self.metadata = metadata  # every attach has `metadata` on
        self.squash_root = squash_root  # uid 0 acts as nobody (65534)
        self.case_sensitive = case_sensitive
        self.escape = not case_sensitive if escape is None else escape
        self.show = swap if self.escape else identity  # host name -> shown, and back
        self.indexes = DirIndexes(self.show)
        self._fd = fd
        self.staging = Staging(fd)  # creation where the host has no O_TMPFILE
        self._finalizer = weakref.finalize(self, os.close, fd)

    async def attach(self, options: str, user: User) -> File:
        """The root for `user`; `options` are the attach options (see `volfs.options`)."""
        opts = parse_options(options)
        if self.read_only:
            opts = replace(opts, read_only=True)
        if self.metadata:
            opts = replace(opts, metadata=True)
        if not self._finalizer.alive:
            raise OSError(errno.EBADF, "export is closed")
        names = Names(
            sensitive_export=self.case_sensitive,
            show=self.show,
            case=opts.case,
            indexes=self.indexes,
        )
        fd = os.open(".", os.O_PATH | os.O_CLOEXEC, dir_fd=self._fd)
        policy = Policy(opts, cred_for(user.uid, self.squash_root))
        return Node.root(Tree(self, opts, user, names, policy, self.staging), fd)

    def close(self) -> None:
        """Release the root fd (Files already attached keep working)."""
        self._finalizer()


#: The `ninep.backends` entry point: export the host directory `path` (see VolExport).
open_export = VolExport
