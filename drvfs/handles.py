"""Open files and directories: the FUSE file handles and the opened fids behind them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ninep.client import Attr, Dirent, Fid

from .inodes import Node


@dataclass(eq=False)
class Listed:
    """A directory entry read from the server, with its attributes once fetched."""

    dirent: Dirent
    done: bool = False  # the attributes were asked for
    attr: Attr | None = None  # None when done: removed meanwhile, or `error`
    fid: Fid | None = None  # walked to fetch the attributes; becomes the node's fid or is clunked
    error: OSError | None = None


@dataclass(eq=False)
class Handle:
    """An opened fid of a node; `flags` (OpenFlag) open it again after a reconnection."""

    node: Node
    flags: int
    fid: Fid
    wrote: bool = False  # data was written through this handle


@dataclass(eq=False)
class DirHandle(Handle):
    """An opened directory and the entries read ahead of the kernel's requests."""

    offset: int = 0  # the cookie the first entry of `ahead` follows
    ahead: deque[Listed] = field(default_factory=deque)


class HandleTable:
    """File handle numbers for open files and directories."""

    def __init__(self) -> None:
        self._handles: dict[int, Handle] = {}
        self._next = 1

    def add(self, handle: Handle) -> int:
        fh = self._next
        self._next += 1
        self._handles[fh] = handle
        return fh

    def get(self, fh: int) -> Handle:
        return self._handles[fh]

    def pop(self, fh: int) -> Handle:
        return self._handles.pop(fh)
