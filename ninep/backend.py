"""The interface a 9P server serves: exports, files and open handles.

The protocol code in `ninep.server` never touches host paths: it calls these
methods and turns their results into R-messages. A backend signals failure by
raising `OSError` with an errno; that errno is what the client receives.

A `File` is a reference to one object of the export (what a fid points at). It
stays valid across renames of the object and of its parents. `File.open`
returns a `Handle`, the opened state of a fid, for I/O.

Ownership. Every File and Handle a backend returns (`attach`, `walk`, `clone`,
`open`, `create`) belongs to the server, which calls its `close` exactly once,
and only after the last request using it has returned: no method is ever
called on a closed object.

Concurrency. Each request runs in a trio task on the trio thread (its own
task, or for the quick kinds the connection's task, which then reads nothing
more until the call returns), so any number of calls may be in progress at
once, on different objects and on the same one (a client may pipeline reads of
one fid, or rename a directory while a walk inside it runs). A call runs alone
between two awaits: whatever a method learned before an `await` (a name
resolved, a size read) may no longer hold after it, and must be checked again
or made atomic on the host. A method may be cancelled at any `await` (the
client flushed the request, or the connection closed): it must leave nothing
half done that matters, cleaning up in `finally` or shielding the few steps
that must finish. A blocking host call must either be cheap or run in a worker
thread (`trio.to_thread`), since it stops every other request while it runs.

Errors. `OSError(errno, ...)` is answered as Rlerror with that errno; any other
exception is logged and answered EIO.

What the server guarantees (`ninep.gate`, before any method is called): a name
to make, remove or rename (`create`, `mkdir`, `symlink`, `mknod`, `link`,
`rename`, `renameat`, `unlinkat`) is one component, neither empty nor `.` or
`..`, without `/` or NUL; a name to `walk` is one component too (`.` and `..`
may be walked). No change is asked through a read-only attach (EROFS): no
`create`, `mkdir`, `symlink`, `mknod`, `link`, `rename` (of either fid),
`renameat` (either directory), `unlinkat`, `remove`, `setattr`, no `setxattr` or
`removexattr` (Txattrcreate is refused), and no `open` for writing or with
O_TRUNC. What the backend must report for that: whether an attach is read-only,
by the Export's `read_only_attach(options) -> bool` (without it: none is).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, ParamSpec, Protocol, TypeVar, cast

from .listing import ExportInfo
from .messages import Attr, Qid, SetAttr, StatFs
from .notify import ChangeHub
from .options import ExportOption

__all__ = [
    "Attr",
    "Backend",
    "ChildAttrs",
    "Dirent",
    "Export",
    "File",
    "Handle",
    "Lock",
    "SetAttr",
    "StatFs",
    "User",
    "Watchable",
]


@dataclass(frozen=True, slots=True)
class User:
    """Who attached: the Tattach uname and numeric n_uname; `bounded`: a peer admitted by
    --allow-uid, attached as its own uid, whose other claims (groups) are checked."""

    name: str
    uid: int
    bounded: bool = False


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
    """An opened file or directory (the state of a fid after Tlopen or Tlcreate)."""

    async def read(self, offset: int, count: int) -> bytes:
        """Up to `count` bytes at `offset` (fewer only at the end of the file)."""
        ...

    async def write(self, offset: int, data: bytes) -> int:
        """Write `data` at `offset` (the end, if opened with APPEND); the bytes written."""
        ...

    async def readdir(self, offset: int) -> Sequence[Dirent]:
        """Entries after cookie `offset` (0: from the start); the server takes what fits."""
        ...

    async def fsync(self, datasync: bool) -> None:
        """Make what was written durable (only the data, if `datasync`)."""
        ...

    async def lock(self, flags: int, lock: Lock) -> int:
        """Set or clear a lock without waiting; return a LockStatus."""
        ...

    async def getlock(self, lock: Lock) -> Lock:
        """The first lock that would conflict with `lock`, or `lock` with type UNLCK."""
        ...

    async def close(self) -> None:
        """Release what the handle holds; called once, when no request uses it."""
        ...


class File(Protocol):
    """One object of an export, as a fid refers to it."""

    @property
    def qid(self) -> Qid:
        """The object's identity (its type, and a path unique in the export)."""
        ...

    async def walk(self, name: str) -> File:
        """A new File for the child `name` (`..` of the export root is the root itself);
        `name` is one component, never empty and without `/` or NUL."""
        ...

    async def clone(self) -> File:
        """A new File for the same object (a walk of no names)."""
        ...

    async def close(self) -> None:
        """Release what the File holds; called once, when no request uses it."""
        ...

    async def getattr(self, mask: int) -> Attr:
        """The attributes (`mask`: the GetattrMask fields the client wants at least)."""
        ...

    async def setattr(self, attr: SetAttr) -> None:
        """Change the attributes `attr.valid` names (SetattrMask bits)."""
        ...

    async def statfs(self) -> StatFs:
        """Figures of the file system holding the object."""
        ...

    async def open(self, flags: int) -> Handle:
        """Open for I/O with client open flags `flags` (OpenFlag, Linux's values)."""
        ...

    async def create(self, name: str, flags: int, mode: int, gid: int) -> tuple[File, Handle]:
        """Create and open the regular file `name` in this directory."""
        ...

    async def mkdir(self, name: str, mode: int, gid: int) -> Qid:
        """Make directory `name` here (EEXIST if the name is taken)."""
        ...

    async def symlink(self, name: str, target: str, gid: int) -> Qid:
        """Make `name` here a symbolic link to `target`."""
        ...

    async def mknod(self, name: str, mode: int, major: int, minor: int, gid: int) -> Qid:
        """Make `name` here a device node, fifo or socket (`mode` has the S_IF* type)."""
        ...

    async def link(self, target: File, name: str) -> None:
        """Make `name` in this directory a hard link to `target`."""
        ...

    async def readlink(self) -> str:
        """The target of this symbolic link (EINVAL for anything else)."""
        ...

    async def rename(self, newdir: File, newname: str) -> None:
        """Move this object to `newname` in `newdir` (Trename)."""
        ...

    async def renameat(self, oldname: str, newdir: File, newname: str) -> None:
        """Move entry `oldname` of this directory to `newname` in `newdir` (Trenameat)."""
        ...

    async def unlinkat(self, name: str, flags: int) -> None:
        """Remove entry `name` of this directory (a directory with AT_REMOVEDIR)."""
        ...

    async def remove(self) -> None:
        """Remove this object itself (Tremove)."""
        ...

    async def getxattr(self, name: str) -> bytes:
        """The value of extended attribute `name` (ENODATA if absent)."""
        ...

    async def listxattr(self) -> list[str]:
        """The names of the extended attributes the client may see."""
        ...

    async def setxattr(self, name: str, value: bytes, flags: int) -> None:
        """Set attribute `name` (flags: XATTR_CREATE, XATTR_REPLACE)."""
        ...

    async def removexattr(self, name: str) -> None:
        """Remove attribute `name` (ENODATA if absent)."""
        ...


class ChildAttrs(Protocol):
    """Optional for a File: the attributes of a child without a File for it.

    The extensions (docs/protocol-extensions.md) answer with the attributes of
    every entry of a directory chunk (Treaddirattr) and of objects just made
    (Tmkdirattr, ...). A File that has this method is asked for them; for any
    other the server walks to the child, asks `getattr` and closes the child.
    """

    async def getattr_child(self, name: str, mask: int) -> Attr:
        """What `walk(name)` then `getattr(mask)` of the child would give."""
        ...


class Watchable(Protocol):
    """Optional for a File: change notification (Tnotify, docs/protocol-extensions.md).

    The server asks for it only for connections that sent a Tnotify: `watch` on
    the Tnotify's fid and on every directory such a connection walks to or lists,
    before it reads anything the watch covers; `place` around the requests of such
    a connection that change an object, to mark what they change as its own;
    `empty` of a directory just made (Tmkdirattrs), once watched.
    """

    def watch(self) -> ChangeHub | None:
        """The export's hub of changes (None: it offers none); if this File is a
        directory, its changes are published from now on where the hub's
        `covered(qid.path)` says so."""
        ...

    def place(self) -> tuple[int, str] | None:
        """Where changes of this object are reported: (qid path of its directory, its
        name there), or None (the root of the export, or not known)."""
        ...

    def empty(self) -> bool:
        """Whether this directory has no entry (`.` and `..` aside)."""
        ...


class Export(Protocol):
    """A named tree a client can attach to.

    An export with read-only attaches has a method `read_only_attach(options) -> bool`:
    whether an attach with `options` is one (the server then refuses every change through
    it, `ninep.gate`).
    An export may also have a method `stats() -> ninep.stats.ExportFigures`: its own
    figures (JSON-ready; a TypedDict), which `Server.stats()` gives under `exports`, by
    export name; and
    `describe(name) -> ExportInfo`: what the listing of exports (Texports) says of it.
    """

    async def attach(self, options: str, user: User) -> File:
        """The root of the tree for `user`; `options` is the aname after the first `;`."""
        ...


P = ParamSpec("P")
E = TypeVar("E", bound=Export)


@dataclass(frozen=True)
class Backend(Generic[P, E]):
    """What a `ninep.backends` entry point names: the factory of an export,
    `open(path, read_only, **options)`, and the options it takes (`ninep.options`: the
    server's command line and config offer each one given a `flag`, and pass the
    given ones to `open` by their `field`). Called, it is its factory."""

    open: Callable[P, E]
    options: Sequence[ExportOption] = ()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> E:
        return self.open(*args, **kwargs)

    def confining(self) -> ExportOption | None:
        """The option under which an export enforces each client's permissions, if any."""
        return next((o for o in self.options if o.confines), None)


# An optional protocol is told by its methods' presence, as isinstance with a
# runtime_checkable Protocol would, at a fraction of its cost (about 5 us a call on
# Python 3.11; `child_attrs` runs once per entry of every Treaddirattr).


def child_attrs(file: File) -> ChildAttrs | None:
    """`file` if it offers `ChildAttrs`, else None."""
    return cast(ChildAttrs, file) if hasattr(file, "getattr_child") else None


def watchable(file: File) -> Watchable | None:
    """`file` if it offers `Watchable`, else None."""
    offered = all(hasattr(file, m) for m in ("watch", "place", "empty"))
    return cast(Watchable, file) if offered else None


def read_only(export: Export, options: str) -> bool:
    """Whether an attach to `export` with `options` is read-only (the Export's own
    `read_only_attach(options)` where it has one; else never)."""
    report = getattr(export, "read_only_attach", None)
    return False if report is None else bool(report(options))


def described(name: str, export: Export) -> ExportInfo:
    """What a listing says of `export`, served as `name`: the export's own `describe(name)`
    where it has one (volfs does), else its name alone."""
    describe = getattr(export, "describe", None)
    return ExportInfo(name) if describe is None else cast(ExportInfo, describe(name))
