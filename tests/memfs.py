"""An in-memory backend for the protocol tests: files, directories, and a ledger of closes.

The protocol tests serve this instead of volfs, so that a volfs fault never
fails a protocol test, and so that each File and Handle the server was given
can be checked to be closed exactly once (as gVisor's p9test does). Only what
the protocol tests use is implemented; the rest answers EOPNOTSUPP.
"""

from __future__ import annotations

import errno
import itertools
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

from ninep.backend import Attr, Dirent, File, Handle, Lock, SetAttr, StatFs, User
from ninep.constants import QidType
from ninep.messages import Qid

_paths = itertools.count(1)


@dataclass(eq=False)
class MemNode:
    """A file (`data`) or a directory (`children`) of the tree."""

    mode: int
    data: bytearray = field(default_factory=bytearray)
    children: dict[str, MemNode] = field(default_factory=dict)
    path: int = field(default_factory=lambda: next(_paths))

    @property
    def qid(self) -> Qid:
        kind = QidType.DIR if stat.S_ISDIR(self.mode) else QidType.FILE
        return Qid(kind, 0, self.path)

    def add(self, name: str, data: bytes | None = None) -> MemNode:
        """A new file holding `data` (a directory if None) named `name` here."""
        node = MemNode(stat.S_IFDIR | 0o755) if data is None else MemNode(stat.S_IFREG | 0o644)
        node.data += data or b""
        self.children[name] = node
        return node


class Ledger:
    """Every File and Handle handed out, and how often each was closed."""

    def __init__(self) -> None:
        self.closes: dict[object, int] = {}

    def track(self, obj: object) -> None:
        self.closes[obj] = 0

    def closed(self, obj: object) -> None:
        self.closes[obj] += 1

    def check(self) -> None:
        """Each object closed exactly once."""
        wrong = {repr(o): n for o, n in self.closes.items() if n != 1}
        assert not wrong, f"objects not closed exactly once: {wrong}"


def _unsupported() -> OSError:
    return OSError(errno.EOPNOTSUPP, "not in the in-memory backend")


class MemHandle:
    """An opened node."""

    def __init__(self, node: MemNode, ledger: Ledger) -> None:
        self.node, self.ledger = node, ledger
        ledger.track(self)

    async def read(self, offset: int, count: int) -> bytes:
        return bytes(self.node.data[offset : offset + count])

    async def write(self, offset: int, data: bytes) -> int:
        self.node.data[offset : offset + len(data)] = data
        return len(data)

    async def readdir(self, offset: int) -> Sequence[Dirent]:
        entries = list(self.node.children.items())[offset:]
        return [
            Dirent(child.qid, offset + i + 1, stat.S_IFMT(child.mode) >> 12, name)
            for i, (name, child) in enumerate(entries)
        ]

    async def fsync(self, datasync: bool) -> None:
        pass

    async def lock(self, flags: int, lock: Lock) -> int:
        raise _unsupported()

    async def getlock(self, lock: Lock) -> Lock:
        raise _unsupported()

    async def close(self) -> None:
        self.ledger.closed(self)


class MemFile:
    """A reference to a node, as a fid holds it."""

    def __init__(self, node: MemNode, ledger: Ledger) -> None:
        self.node, self.ledger = node, ledger
        ledger.track(self)

    def __repr__(self) -> str:
        return f"MemFile(path={self.node.path})"

    @property
    def qid(self) -> Qid:
        return self.node.qid

    async def walk(self, name: str) -> File:
        child = self.node if name in (".", "..") else self.node.children.get(name)
        if child is None:
            raise OSError(errno.ENOENT, f"no {name!r}")
        return MemFile(child, self.ledger)

    async def clone(self) -> File:
        return MemFile(self.node, self.ledger)

    async def close(self) -> None:
        self.ledger.closed(self)

    async def getattr(self, mask: int) -> Attr:
        n = self.node
        return Attr(0x7FF, n.qid, n.mode, 0, 0, 1, 0, len(n.data), 4096, 0, 0, 0, 0, 0, 0, 0)

    async def setattr(self, attr: SetAttr) -> None:
        raise _unsupported()

    async def statfs(self) -> StatFs:
        return StatFs(0x01021997, 4096, 0, 0, 0, 0, 0, 0, 255)

    async def open(self, flags: int) -> Handle:
        return MemHandle(self.node, self.ledger)

    async def create(self, name: str, flags: int, mode: int, gid: int) -> tuple[File, Handle]:
        node = self.node.add(name, b"")
        made: tuple[File, Handle] = (MemFile(node, self.ledger), MemHandle(node, self.ledger))
        return made

    async def mkdir(self, name: str, mode: int, gid: int) -> Qid:
        return self.node.add(name).qid

    async def unlinkat(self, name: str, flags: int) -> None:
        if self.node.children.pop(name, None) is None:
            raise OSError(errno.ENOENT, f"no {name!r}")

    async def getxattr(self, name: str) -> bytes:
        raise OSError(errno.ENODATA, f"no attribute {name!r}")

    async def listxattr(self) -> list[str]:
        return []

    async def symlink(self, name: str, target: str, gid: int) -> Qid:
        raise _unsupported()

    async def mknod(self, name: str, mode: int, major: int, minor: int, gid: int) -> Qid:
        raise _unsupported()

    async def link(self, target: File, name: str) -> None:
        raise _unsupported()

    async def readlink(self) -> str:
        raise _unsupported()

    async def rename(self, newdir: File, newname: str) -> None:
        raise _unsupported()

    async def renameat(self, oldname: str, newdir: File, newname: str) -> None:
        raise _unsupported()

    async def remove(self) -> None:
        raise _unsupported()

    async def setxattr(self, name: str, value: bytes, flags: int) -> None:
        raise _unsupported()

    async def removexattr(self, name: str) -> None:
        raise _unsupported()


class MemExport:
    """A tree in memory; `ledger` records every File and Handle given to the server."""

    def __init__(self) -> None:
        self.root = MemNode(stat.S_IFDIR | 0o755)
        self.ledger = Ledger()

    async def attach(self, options: str, user: User) -> File:
        if options:
            raise OSError(errno.EINVAL, f"unknown attach options {options!r}")
        return MemFile(self.root, self.ledger)
