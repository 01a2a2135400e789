"""What every part of a `Node` (`volfs.node`) shares: the object it holds and its attach.

A Node's `Entry` (`volfs.descriptors`) names the object by the entry of the
directory it was reached from and its host name there, and holds the object's
`O_PATH | O_NOFOLLOW` fd while the bounded cache keeps it (resolved again,
and checked to be the same object, when evicted). Entries are shared by clones
and by fids that reach the same name, kept alive by their children, and
counted. Each File method is one `Operation` (`operation`): the fds it uses
stay open until it ends.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import wraps
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from ninep.backend import File
from ninep.messages import Qid

from . import stored
from .descriptors import Descriptors, Entry, Operation
from .hostio import HostCalls
from .metadata import Effective
from .names import Names
from .options import AttachOptions
from .policy import Policy


@dataclass(frozen=True, slots=True)
class Tree:
    """What the Files of one attach share."""

    export: object  # objects of different exports never meet (EXDEV)
    options: AttachOptions
    names: Names
    policy: Policy  # what metadata decides, chosen once per attach (volfs.policy)
    staging: stored.Staging
    calls: HostCalls  # which host calls run inline (volfs.hostio)


N = TypeVar("N", bound="NodeBase")
P = ParamSpec("P")
R = TypeVar("R")


def operation(
    method: Callable[Concatenate[N, P], Awaitable[R]],
) -> Callable[Concatenate[N, P], Coroutine[Any, Any, R]]:
    """A File method as one `Operation`: the entry fds it uses stay open until it ends."""

    @wraps(method)
    async def run(self: N, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with Operation():
            return await method(self, *args, **kwargs)

    return run


class NodeBase:
    """One object of the export, as a fid refers to it: its entry and its attach."""

    def __init__(self, tree: Tree, entry: Entry, qid: Qid) -> None:
        self._tree = tree
        self._entry = entry
        self._qid = qid
        self._closed = False
        self._opened_for_write = False  # as a fid: Tsetattr on it is then an ftruncate

    @property
    def qid(self) -> Qid:
        return self._qid

    def _live(self) -> Entry:
        if self._closed:
            raise OSError(errno.EBADF, "file is closed")
        return self._entry

    @property
    def _fd(self) -> int:
        return self._live().fd

    @property
    def _is_root(self) -> bool:
        return self._live().parent is None

    @property
    def _names(self) -> Names:
        return self._tree.names

    @property
    def _descriptors(self) -> Descriptors:
        return self._live().owner

    def _stat(self) -> os.stat_result:
        return os.stat(self._fd)

    @property
    def _policy(self) -> Policy:
        return self._tree.policy

    def _view(self, st: os.stat_result | None = None) -> Effective:
        """Mode, owner, group and rdev as the attach shows them (`st`: the host's, just taken)."""
        entry = self._live()
        return self._policy.view(entry.fd, self._stat() if st is None else st, entry.metadata)

    def _qid_of(self, fd: int) -> Qid:
        return self._policy.qid(fd, os.stat(fd))

    def _entry_qid(self, entry: Entry) -> Qid:
        fd = entry.fd
        return self._policy.qid(fd, os.stat(fd), entry.metadata)

    def _peer(self, other: File) -> NodeBase:
        """`other` as a Node of the same export (EXDEV otherwise)."""
        if not isinstance(other, NodeBase) or other._tree.export is not self._tree.export:
            raise OSError(errno.EXDEV, "not in the same export")
        return other

    def _adopt(self, fd: int, name: str) -> Self:
        """A Node taking over `fd`, the O_PATH fd of entry (host name) `name` of this directory."""
        entry, st = self._descriptors.child(self._live(), name, fd)
        try:
            return type(self)(self._tree, entry, self._policy.qid(entry.fd, st, entry.metadata))
        except BaseException:
            entry.release()
            raise

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            self._entry.release()

    def _where(self) -> tuple[Entry, str]:
        """The parent entry and name of this object, checked to still name it."""
        entry = self._live()
        if entry.parent is None:
            raise OSError(errno.EBUSY, "the root of the export")
        mine = self._stat()
        try:
            there = os.stat(entry.name, dir_fd=entry.parent.fd, follow_symlinks=False)
        except FileNotFoundError:
            there = None
        if there is None or (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
            raise OSError(errno.ENOENT, f"{entry.name!r} was moved or removed by another path")
        return entry.parent, entry.name
