"""Watch host directories with inotify and publish what changes in them (`ninep.notify`).

inotify needs no privilege (fanotify's filesystem-wide marks do). One inotify
descriptor per export, read by a trio system task (`wait_readable`, no thread);
a directory is watched through a descriptor of it (`/proc/self/fd/N`), never
by a path a rename could redirect. A directory is *covered* when its watch is
set and its filesystem is one whose changes all pass through this host's
kernel: on a network or FUSE filesystem inotify sees only what this host does
through it, so those are never covered; nor is a directory past the watch
budget. The kernel's queue overflowing (IN_Q_OVERFLOW) overflows every
subscription.

The watch budget (`WatchBudget`, one per process, `shared_budget`): every
export's watches together take at most a share (`WATCH_SHARE` by default) of
the serving user's inotify watch limit, so the user's other programs keep the
rest. Past it, or when the user's limit is reached anyway (ENOSPC), a
directory is served uncovered, and the export logs it once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import struct
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TypedDict

import trio

from .constants import ChangeKind
from .notify import ChangeHub

log = logging.getLogger("ninep.watch")

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_KINDS = (
    (IN_CREATE, ChangeKind.CREATED),
    (IN_DELETE, ChangeKind.REMOVED),
    (IN_MOVED_FROM, ChangeKind.RENAMED_FROM),
    (IN_MOVED_TO, ChangeKind.RENAMED_TO),
    (IN_ATTRIB, ChangeKind.ATTRIB),
    (IN_MODIFY, ChangeKind.DATA),
)
_MASK = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_MODIFY | IN_ONLYDIR
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then the name, NUL-padded)

#: statfs f_type of filesystems changed behind this kernel's back (inotify sees only what
#: this host does through them): FUSE (and virtiofs), NFS, SMB/CIFS, 9p, Ceph, AFS, Coda,
#: GFS2, OCFS2, Lustre, OrangeFS.
UNCOVERED_FILESYSTEMS = frozenset({
    0x65735546, 0x6969, 0x517B, 0xFF534D42, 0xFE534D42, 0x01021997, 0x00C36400, 0x5346414F,
    0x73757245, 0x01161970, 0x7461636F, 0x0BD00BD0, 0x20030528,
})  # fmt: skip


WATCH_SHARE = 0.5  # of the user's inotify watches, what the process's exports may hold
#: The user's inotify watch limit: the initial user namespace's (fs.inotify.max_user_watches),
#: and the process's own namespace's, which may be lower (the kernel applies both).
WATCH_LIMITS = ("/proc/sys/fs/inotify/max_user_watches", "/proc/sys/user/max_inotify_watches")
DEFAULT_WATCH_LIMIT = 8192  # the kernel's old default, should neither file be readable


def user_watch_limit() -> int:
    """The inotify watches this process's user may hold: the lowest of `WATCH_LIMITS`."""
    limits = []
    for path in WATCH_LIMITS:
        with suppress(OSError, ValueError):
            limits.append(int(Path(path).read_text()))
    return min(limits, default=DEFAULT_WATCH_LIMIT)


class WatchBudgetFigures(TypedDict):
    """The process's watch budget: its capacity, what is used of it, the user's limit."""

    budget: int
    budget_used: int
    user_limit: int


class WatchFigures(WatchBudgetFigures):
    """An export's watches, the kernel's overflows, directories refused a watch."""

    watches: int
    overflows: int
    refused: int


class WatchBudget:
    """The inotify watches the exports of a process may hold together: `share` of the
    user's limit (`user_watch_limit`, read once), rounded down."""

    def __init__(self, share: float = WATCH_SHARE, limit: int | None = None) -> None:
        if not 0 <= share <= 1:
            raise ValueError(f"a watch share is between 0 and 1, not {share}")
        self.share = share
        self.limit = user_watch_limit() if limit is None else limit
        self.capacity = int(self.limit * share)
        self.used = 0  # watches held by every Watcher using this budget

    def spent(self) -> bool:
        return self.used >= self.capacity

    def stats(self) -> WatchBudgetFigures:
        return {"budget": self.capacity, "budget_used": self.used, "user_limit": self.limit}


_shared: WatchBudget | None = None


def shared_budget() -> WatchBudget:
    """The process's watch budget, of `WATCH_SHARE` unless `set_share` chose another."""
    global _shared
    if _shared is None:
        _shared = WatchBudget()
    return _shared


def set_share(share: float) -> None:
    """Give the exports opened from now on `share` of the user's watches, together."""
    global _shared
    _shared = WatchBudget(share)


def filesystem_type(fd: int) -> int:
    """The statfs f_type of the filesystem holding `fd` (an O_PATH descriptor will do)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes; f_type comes first
    if _libc.fstatfs(fd, buf) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return int.from_bytes(buf.raw[: ctypes.sizeof(ctypes.c_long)], "little", signed=True) & (
        2**32 - 1
    )


class Watcher:
    """An export's inotify watches: `watch` a directory, its changes go to `changes`.

    `show` turns a host name into the name clients see. Watches are taken from
    `budget` (by default the process's) and stay until the directory goes
    (IN_IGNORED) or the watcher closes. `label` names the export in the log.
    """

    def __init__(
        self, show: Callable[[str], str], label: str = "", budget: WatchBudget | None = None
    ) -> None:
        self.changes = ChangeHub(self)
        self.budget = shared_budget() if budget is None else budget
        self.label = label
        self.show = show
        self.refused = 0  # directories served uncovered for want of a watch
        self._fd = -1
        self._dirs: dict[int, int] = {}  # watch descriptor -> qid path of its directory
        self._wds: dict[int, int] = {}  # and back
        self._reading: trio.lowlevel.TrioToken | None = None  # the run whose task reads
        self.overflows = 0  # times the kernel's queue overflowed

    def stats(self) -> WatchFigures:
        """This export's watches, overflows and refusals; the process's budget."""
        return {"watches": len(self._dirs), "overflows": self.overflows, "refused": self.refused,
                **self.budget.stats()}  # fmt: skip

    def covered(self, dir: int) -> bool:
        return dir in self._wds

    def watch(self, fd: int, dir: int) -> bool:
        """Watch the directory of descriptor `fd` (qid path `dir`) from now on, if it can
        be; whether it is covered. Changes made before the call are not reported."""
        if dir in self._wds:
            return True
        if filesystem_type(fd) in UNCOVERED_FILESYSTEMS:
            return False
        budget = self.budget
        if budget.spent():
            return self._refuse(
                f"the watch budget is spent ({budget.capacity} watches, {budget.share:g} of"
                f" the user's {budget.limit}, for every export)"
            )
        if self._fd < 0:
            self._fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if self._fd < 0:
                e = ctypes.get_errno()
                log.warning("no inotify: %s", os.strerror(e))
                return False
        self._ensure_reader()
        wd = _libc.inotify_add_watch(self._fd, f"/proc/self/fd/{fd}".encode(), _MASK)
        if wd < 0:
            e = ctypes.get_errno()
            if e == errno.ENOSPC:
                return self._refuse(f"the user's inotify watch limit ({budget.limit}) is reached")
            if e not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                log.warning("cannot watch a directory: %s", os.strerror(e))
            return False
        old = self._dirs.get(wd)
        if old is None:
            budget.used += 1
        elif old != dir:  # the same directory reached under another qid
            self._wds.pop(old, None)
        self._dirs[wd] = dir
        self._wds[dir] = wd
        return True

    def _refuse(self, why: str) -> bool:
        """A directory is served uncovered for want of a watch: logged once per watcher."""
        if not self.refused:
            log.warning(
                "export %s: %s: directories not watched yet are served uncovered"
                " (short caching)", self.label, why,
            )  # fmt: skip
        self.refused += 1
        return False

    def _ensure_reader(self) -> None:
        """Start the task that reads the descriptor, once per trio run."""
        token = trio.lowlevel.current_trio_token()
        if self._reading is not token:
            self._reading = token
            trio.lowlevel.spawn_system_task(self._read_loop, name="ninep.watch")

    async def _read_loop(self) -> None:
        fd = self._fd
        try:
            while self._fd == fd:
                await trio.lowlevel.wait_readable(fd)
                self.drain()
        except Exception:  # a system task must not raise: clients are told they lost changes
            if self._fd == fd:
                log.exception("inotify reader stopped")
                self.changes.overflow()
        finally:
            if self._reading is trio.lowlevel.current_trio_token():
                self._reading = None

    def drain(self) -> None:
        """Read and publish every event the kernel has queued."""
        while self._fd >= 0:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            self._publish(buf)

    def _publish(self, buf: bytes) -> None:
        off = 0
        while off < len(buf):
            wd, mask, _cookie, n = _EVENT.unpack_from(buf, off)
            off += _EVENT.size
            raw = buf[off : off + n].split(b"\0", 1)[0]
            off += n
            if mask & IN_Q_OVERFLOW:
                self.overflows += 1
                self.changes.overflow()
                continue
            dir = self._dirs.get(wd)
            if dir is None:
                continue
            if mask & (IN_IGNORED | IN_UNMOUNT):
                del self._dirs[wd]
                self.budget.used -= 1
                if self._wds.get(dir) == wd:
                    del self._wds[dir]
                self.changes.publish(dir, ChangeKind.UNCOVERED, "")
                continue
            name = self.show(os.fsdecode(raw)) if raw else ""
            for bit, kind in _KINDS:
                if mask & bit:
                    self.changes.publish(dir, kind, name)

    def close(self) -> None:
        """Stop watching (the reader task ends)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with suppress(RuntimeError):  # not in a trio run
                trio.lowlevel.notify_closing(fd)  # wakes the reader, if this is its run
            os.close(fd)
        self.budget.used -= len(self._dirs)
        self._dirs.clear()
        self._wds.clear()
