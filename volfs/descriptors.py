"""Entries of an export, and the bounded cache of their host descriptors.

An `Entry` is one host object as fids reach it: its parent entry, its host name
there, its identity, and, while cached, an `O_PATH | O_NOFOLLOW` descriptor on
it. Entries are counted (the Nodes of fids, and their children, hold them) and
shared: a walk to a name that already has a live entry of the same object
returns that entry, so each (parent entry, name) has one, registered in its
parent's `children`. A rename or unlink through the server, by fid or by name,
updates that registration, and so every fid on the object follows it.

`Descriptors` keeps at most `capacity` descriptors: the cached ones of entries
and the open handles (files and directories opened for I/O) together. Past
it, the least recently used entry is evicted (its descriptor closed); an open
handle is never evicted, and one more than the capacity is ENFILE. An evicted
entry is resolved again when next used: its name is opened (O_PATH |
O_NOFOLLOW) in its parent's descriptor, the parent itself resolved again first
if evicted (the root of an export never is), and the object found is accepted
only if it is the same: the same (st_dev, st_ino), and the same file handle
where the host filesystem has them (`hostio.file_handle`: ext4 gives a freed
inode number to the next file at once; the handle's generation tells them
apart). ESTALE if it is another object, ENOENT if the name is gone. So a
resolution never leaves the export and never follows a host symlink: each step
is one name, opened without following it, in a directory already checked.

Every use of an entry's descriptor within an `Operation` pins the entry until
the operation ends, awaits and worker threads included: a descriptor is never
closed (and its number reused by another open) under a call that holds it. The
cache exceeds its capacity only by what operations in progress hold, and only
until they end.

The capacity of the process-wide cache (`shared`) is the descriptor limit
(RLIMIT_NOFILE's soft limit, which `ninep-server` raises to the hard limit) less
a reserve, a quarter of it and at least `RESERVE_MIN`: sockets of connections,
listeners, and the transient descriptors of requests in progress. docs/architecture.md
says what a fid guarantees across renames.
"""

from __future__ import annotations

import errno
import os
import resource
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import islice
from typing import TypedDict

from .hostio import file_handle
from .metadata import Metadata
from .names import open_entry
from .racy import Memo

RESERVE_MIN = 64  # descriptors never given to the cache, at least
RESERVE_SHARE = 4  # and at least 1/RESERVE_SHARE of the limit

Ident = tuple[int, int]  # st_dev, st_ino


def ident_of(st: os.stat_result) -> Ident:
    return (st.st_dev, st.st_ino)


def capacity_for(limit: int) -> int:
    """The cache capacity that leaves the reserve of a descriptor limit `limit`."""
    return max(1, limit - max(RESERVE_MIN, limit // RESERVE_SHARE))


class Entry:
    """One host object as fids reach it (see the module); counted by `retain`/`release`."""

    __slots__ = ("_fd", "case_flag", "children", "handle", "ident", "metadata", "name", "owner",
                 "parent", "pins", "refs", "scope")  # fmt: skip

    def __init__(
        self, owner: Descriptors, st: os.stat_result, parent: Entry | None = None, name: str = ""
    ) -> None:
        self.owner = owner
        self._fd = -1  # open while cached; always open for a root
        self.parent = parent.retain() if parent is not None else None
        self.name = name
        self.ident = ident_of(st)
        self.handle: bytes | None = None  # the file handle, taken when first evicted
        self.refs = 1
        self.pins = 0  # operations in progress that use it
        self.scope: list[Entry] | None = None  # the operation that pinned it last
        self.children: dict[str, Entry] = {}  # the registered entry of each name here
        self.metadata: Memo[Metadata] = Memo()  # its stored metadata as last read (volfs.racy)
        self.case_flag: Memo[bool] = Memo()  # a directory's stored case flag, likewise

    @property
    def fd(self) -> int:
        """The O_PATH descriptor (resolved again if evicted), held until the operation ends."""
        return self.owner.use(self)

    def retain(self) -> Entry:
        self.refs += 1
        return self

    def release(self) -> None:
        entry: Entry | None = self
        while entry is not None:
            entry.refs -= 1
            if entry.refs > 0:
                return
            entry._unregister()
            entry.owner.drop(entry)
            entry = entry.parent

    def move(self, parent: Entry, name: str) -> None:
        """Record that the object is now `name` in `parent` (after a rename)."""
        self._unregister()
        old, self.parent, self.name = self.parent, parent.retain(), name
        parent.children[name] = self
        if old is not None:
            old.release()

    def renamed(self, name: str, st: os.stat_result, dest: Entry, new: str) -> None:
        """Entry `name` here, the object of `st`, was renamed to `new` in `dest`."""
        child = self.children.pop(name, None)
        dest.forget(new)
        if child is not None and child.ident == ident_of(st):
            child.move(dest, new)

    def forget(self, name: str) -> None:
        """Entry `name` here is gone (unlinked or replaced): its entry, if any, names nothing."""
        self.children.pop(name, None)

    def _unregister(self) -> None:
        if self.parent is not None and self.parent.children.get(self.name) is self:
            del self.parent.children[self.name]


_pinned: ContextVar[list[Entry] | None] = ContextVar("volfs_pinned", default=None)


class Operation:
    """Bracket one operation on the export: the entries it uses stay open until it ends."""

    __slots__ = ("_pinned", "_token")

    def __enter__(self) -> None:
        self._pinned: list[Entry] = []
        self._token = _pinned.set(self._pinned)

    def __exit__(self, *exc: object) -> None:
        _pinned.reset(self._token)
        for entry in self._pinned:
            entry.owner.unpin(entry)


class DescriptorFigures(TypedDict):
    """The cache's figures (`Descriptors.stats`)."""

    cached: int
    capacity: int
    handles: int  # open files and directories
    evictions: int
    resolutions: int  # evicted descriptors opened again
    stale: int  # resolutions that found the name gone or another object


class Descriptors:
    """A bounded LRU cache of entries' descriptors, counting open handles (see the module)."""

    def __init__(self, capacity: int | None = None) -> None:
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.capacity = capacity_for(limit) if capacity is None else capacity
        if self.capacity < 1:
            raise ValueError(f"a descriptor cache holds at least one: {self.capacity}")
        self._cached: OrderedDict[Entry, None] = OrderedDict()  # least recently used first
        self.handles = 0
        self.evictions = 0
        self.resolutions = 0
        self.stale = 0  # resolutions that found the name gone or another object

    def stats(self) -> DescriptorFigures:
        """The cache's figures (`DescriptorFigures`)."""
        return {
            "cached": len(self._cached),
            "capacity": self.capacity,
            "handles": self.handles,
            "evictions": self.evictions,
            "resolutions": self.resolutions,
            "stale": self.stale,
        }

    # ---- entries ----

    def root(self, fd: int) -> Entry:
        """The entry of an export's root, taking over O_PATH `fd`: never evicted."""
        try:
            entry = Entry(self, os.stat(fd))
        except BaseException:
            os.close(fd)
            raise
        entry._fd = fd
        return entry

    def child(self, parent: Entry, name: str, fd: int) -> tuple[Entry, os.stat_result]:
        """The entry of `name` in `parent`, taking over `fd`, an O_PATH descriptor on it;
        the host's stat of it.

        The registered entry of `name` if it is this object, else a new one.
        """
        try:
            st = os.stat(fd)
            found = parent.children.get(name)
            if found is not None and self._same(found, fd, st):
                if found._fd >= 0:
                    os.close(fd)
                else:
                    self._insert(found, fd)
                return found.retain(), st
        except BaseException:
            os.close(fd)
            raise
        entry = Entry(self, st, parent, name)
        parent.children[name] = entry
        self._insert(entry, fd)
        return entry, st

    def use(self, entry: Entry) -> int:
        """The descriptor of `entry`, resolved again if evicted; pinned in the operation."""
        if entry.parent is None:
            return entry._fd
        chain, top = [], entry
        while top._fd < 0:
            chain.append(top)
            assert top.parent is not None, "a root is never evicted"
            top = top.parent
        for child in reversed(chain):
            self._resolve(child, top._fd)
            top = child
        scope = _pinned.get()
        if scope is None:
            raise RuntimeError("an entry's descriptor used outside an operation")
        if entry.scope is not scope:
            self._cached.move_to_end(entry)
            entry.pins += 1
            entry.scope = scope
            scope.append(entry)
        return entry._fd

    def unpin(self, entry: Entry) -> None:
        entry.pins -= 1
        entry.scope = None
        if entry.pins == 0 and entry.refs == 0:
            self._close(entry)
        if len(self._cached) + self.handles > self.capacity:
            self._trim()

    def drop(self, entry: Entry) -> None:
        """`entry` is released for good: close its descriptor, now or when unpinned."""
        if entry.pins == 0:
            self._close(entry)

    # ---- open handles ----

    @contextmanager
    def opening(self) -> Iterator[None]:
        """Count an open handle made in the block (ENFILE if the capacity holds only handles).

        It is uncounted if the block fails, and by `handle_closed` once made.
        """
        if self.handles >= self.capacity:
            raise OSError(errno.ENFILE, "every descriptor of the server holds an open file")
        self.handles += 1
        try:
            yield
        except BaseException:
            self.handles -= 1
            raise
        self._trim()

    def handle_closed(self) -> None:
        self.handles -= 1

    # ---- the cache ----

    def _resolve(self, entry: Entry, parent_fd: int) -> None:
        """Open `entry` again by its name in its parent's `parent_fd`: the same object or
        ESTALE (ENOENT if the name is gone)."""
        try:
            fd = open_entry(parent_fd, entry.name)
        except FileNotFoundError:
            self.stale += 1
            raise
        try:
            if not self._same(entry, fd, os.stat(fd)):
                self.stale += 1
                raise OSError(errno.ESTALE, f"{entry.name!r} is another object now")
        except BaseException:
            os.close(fd)
            raise
        self.resolutions += 1
        self._insert(entry, fd)

    @staticmethod
    def _same(entry: Entry, fd: int, st: os.stat_result) -> bool:
        """Whether `fd` (stat `st`) is the object of `entry`."""
        if ident_of(st) != entry.ident:
            return False
        if entry._fd >= 0 or not entry.handle:  # cached: its inode, and number, are held
            return True
        return file_handle(fd) == entry.handle

    def _insert(self, entry: Entry, fd: int) -> None:
        entry._fd = fd
        self._cached[entry] = None
        self._trim(keep=entry)

    def _trim(self, keep: Entry | None = None) -> None:
        """Evict the least recently used unpinned entries (`keep` aside) beyond the capacity."""
        excess = len(self._cached) + self.handles - self.capacity
        if excess > 0:
            idle = (e for e in self._cached if e.pins == 0 and e is not keep)
            for entry in list(islice(idle, excess)):
                self._evict(entry)

    def _evict(self, entry: Entry) -> None:
        if entry.handle is None:
            entry.handle = file_handle(entry._fd)
        self._close(entry)
        self.evictions += 1

    def _close(self, entry: Entry) -> None:
        if entry._fd >= 0:
            os.close(entry._fd)
            entry._fd = -1
            self._cached.pop(entry, None)


_shared: Descriptors | None = None


def shared() -> Descriptors:
    """The process-wide cache, sized from the descriptor limit when first asked for."""
    global _shared
    if _shared is None:
        _shared = Descriptors()
    return _shared
