"""Open files and directories: the FUSE file handles and the opened fids behind them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ninep.client import Attr, Dirent, Fid

from .inodes import Inode


@dataclass(eq=False)
class Listed:
    """A directory entry read from the server, with its attributes once fetched."""

    dirent: Dirent
    done: bool = False  # the attributes were asked for
    attr: Attr | None = None  # None when done: removed meanwhile, or `error`
    fid: Fid | None = None  # walked to fetch the attributes; becomes the node's fid or is clunked
    error: OSError | None = None


@dataclass(eq=False)
class OpenFile:
    """An opened fid of a node; `flags` (OpenFlag) open it again after a reconnection."""

    node: Inode
    flags: int
    fid: Fid | None  # None: not opened yet (a directory whose listing the kernel may cache)
    wrote: bool = False  # data was written through this file
    borrowers: int = 0  # requests of the node's own using `fid` now (`FidResolver.borrowed`)
    released: bool = False  # the kernel released it: `fid` goes with the last borrower

    def reopened(self, fid: Fid) -> None:
        """`fid`, opened on a new connection (or at first use), replaces the fid of the lost
        one."""
        self.fid = fid


@dataclass(eq=False)
class OpenDir(OpenFile):
    """An opened directory and the entries read ahead of the kernel's requests."""

    offset: int = 0  # the cookie the first entry of `ahead` follows
    ahead: deque[Listed] = field(default_factory=deque)
    end: int | None = None  # the cookie after which the server listed nothing more
    # the names listed so far by a listing read from the start (drvfs.directories), and the
    # directory's count of changes when it began; None: not from the start, or a seek
    names: list[str] | None = None
    since: int = 0

    def reopened(self, fid: Fid) -> None:
        super().reopened(fid)
        self.ahead.clear()  # walked on the lost connection
        self.end = None
        self.names = None


class OpenFileTable:
    """Open files and directories by FUSE file handle number."""

    def __init__(self) -> None:
        self._files: dict[int, OpenFile] = {}
        self._next = 1

    def add(self, file: OpenFile) -> int:
        """A new file handle number for `file`, which is also one of its node's `files`."""
        fh = self._next
        self._next += 1
        self._files[fh] = file
        file.node.files.append(file)
        return fh

    def get(self, fh: int) -> OpenFile:
        return self._files[fh]

    def get_dir(self, fh: int) -> OpenDir:
        directory = self._files[fh]
        assert isinstance(directory, OpenDir)
        return directory

    def pop(self, fh: int) -> OpenFile:
        file = self._files.pop(fh)
        file.node.files.remove(file)
        return file
