"""The volfs export: a host directory served as it is (the `ninep.backends` entry point)."""

from __future__ import annotations

import errno
import os
import weakref
from dataclasses import replace

from ninep.backend import File, User

from .node import Node, Tree
from .options import parse_options


class VolExport:
    """A host directory as a 9P export; holds an O_PATH fd on its root."""

    def __init__(self, path: str, read_only: bool = False) -> None:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.read_only = read_only
        self._fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)

    async def attach(self, options: str, user: User) -> File:
        """The root for `user`; `options` are the attach options (see `volfs.options`)."""
        opts = parse_options(options)
        if self.read_only:
            opts = replace(opts, read_only=True)
        if not self._finalizer.alive:
            raise OSError(errno.EBADF, "export is closed")
        fd = os.open(".", os.O_PATH | os.O_CLOEXEC, dir_fd=self._fd)
        return Node.root(Tree(self, opts, user), fd)

    def close(self) -> None:
        """Release the root fd (Files already attached keep working)."""
        self._finalizer()


def open_export(path: str, read_only: bool = False) -> VolExport:
    """Export the host directory `path` (read-only if asked)."""
    return VolExport(path, read_only)
