"""The interface a 9P server serves: exports, files and open handles.

The protocol code in `ninep.server` never touches host paths: it calls these
methods and turns their results into R-messages. A backend signals failure by
raising `OSError` with an errno; that errno is what the client receives.

A `File` is a reference to one object of the export (what a fid points at). It
stays valid across renames of the object and of its parents. `File.open`
returns a `Handle`, the opened state of a fid, for I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .messages import Attr, Qid, SetAttr, StatFs

__all__ = ["Attr", "Dirent", "Export", "File", "Handle", "Lock", "SetAttr", "StatFs", "User"]


@dataclass(frozen=True, slots=True)
class User:
    """Who attached: the Tattach uname and numeric n_uname."""

    name: str
    uid: int


@dataclass(frozen=True, slots=True)
class Lock:
    """A POSIX byte-range lock as Tlock/Tgetlock describe it (length 0: to the end)."""

    type: int
    start: int
    length: int
    proc_id: int
    client_id: str


@dataclass(frozen=True, slots=True)
class Dirent:
    """One directory entry; `offset` is the cookie that continues after it."""

    qid: Qid
    offset: int
    type: int
    name: str


class Handle(Protocol):
    """An opened file or directory."""

    async def read(self, offset: int, count: int) -> bytes: ...

    async def write(self, offset: int, data: bytes) -> int: ...

    async def readdir(self, offset: int) -> Sequence[Dirent]:
        """Entries after cookie `offset` (0: from the start); the server takes what fits."""
        ...

    async def fsync(self, datasync: bool) -> None: ...

    async def lock(self, flags: int, lock: Lock) -> int:
        """Set or clear a lock without waiting; return a LockStatus."""
        ...

    async def getlock(self, lock: Lock) -> Lock:
        """The first lock that would conflict with `lock`, or `lock` with type UNLCK."""
        ...

    async def close(self) -> None: ...


class File(Protocol):
    """One object of an export, as a fid refers to it."""

    @property
    def qid(self) -> Qid: ...

    async def walk(self, name: str) -> File:
        """The child `name` (`..` of the export root is the root itself)."""
        ...

    async def clone(self) -> File: ...

    async def close(self) -> None: ...

    async def getattr(self, mask: int) -> Attr: ...

    async def setattr(self, attr: SetAttr) -> None: ...

    async def statfs(self) -> StatFs: ...

    async def open(self, flags: int) -> Handle: ...

    async def create(self, name: str, flags: int, mode: int, gid: int) -> tuple[File, Handle]:
        """Create and open the regular file `name` in this directory."""
        ...

    async def mkdir(self, name: str, mode: int, gid: int) -> Qid: ...

    async def symlink(self, name: str, target: str, gid: int) -> Qid: ...

    async def mknod(self, name: str, mode: int, major: int, minor: int, gid: int) -> Qid: ...

    async def link(self, target: File, name: str) -> None:
        """Make `name` in this directory a hard link to `target`."""
        ...

    async def readlink(self) -> str: ...

    async def rename(self, newdir: File, newname: str) -> None:
        """Move this object to `newname` in `newdir` (Trename)."""
        ...

    async def renameat(self, oldname: str, newdir: File, newname: str) -> None: ...

    async def unlinkat(self, name: str, flags: int) -> None: ...

    async def remove(self) -> None:
        """Remove this object itself (Tremove)."""
        ...

    async def getxattr(self, name: str) -> bytes: ...

    async def listxattr(self) -> list[str]: ...

    async def setxattr(self, name: str, value: bytes, flags: int) -> None: ...

    async def removexattr(self, name: str) -> None: ...


class Export(Protocol):
    """A named tree a client can attach to."""

    async def attach(self, options: str, user: User) -> File:
        """The root of the tree for `user`; `options` is the aname after the first `;`."""
        ...
