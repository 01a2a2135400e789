"""POSIX record locks and flock of the mount, held on the server with Tlock/Tgetlock.

A lock on the server belongs to an opened fid (volfs: an open file description
lock on the host), so each lock owner gets an opened fid of its own for each
file it locks, its *lock fid*: all that owner's locks on that file are set
through it, and so they exclude those of every other owner, whether on this
mount, on another client, or taken by a host process. A POSIX owner is a
process: when it closes any descriptor of the file, pyfuse3 unlocks the whole
file, and the lock fid is clunked. A flock or open-file-description owner is an
open file: what it still holds is unlocked when that file is released, which
FUSE does just after the last close() returns (so another owner may find
such a lock held a moment longer; one that waits for it gets it then).

The server never waits: a conflicting Tlock is answered BLOCKED. F_SETLKW and
flock without LOCK_NB therefore ask again, 10 ms apart at first, then up to
1 s apart, as the kernel's own 9p client does. flock locks carry `LockFlag.FLOCK`, so
that the server keeps them apart from POSIX locks, as Linux does. Locks do not survive a
reconnection (the server dropped them with the connection); F_GETLK reports
the conflicting lock's type and range with pid 0, since its holder may be on
another machine.
"""

from __future__ import annotations

import errno
import fcntl
import logging
from dataclasses import dataclass, field
from typing import Literal, Protocol

import trio

from ninep.client import Fid
from ninep.constants import LockFlag, LockStatus, LockType, OpenFlag
from ninep.convert import host_lock_type, wire_lock_type

from .inodes import Inode
from .openfiles import OpenFile

log = logging.getLogger("drvfs.locks")

FIRST_RETRY = 0.01  # seconds before asking again for a blocked lock; doubled each time
LAST_RETRY = 1.0

#: flock operations as whole-file locks.
_FLOCK_TYPES = {
    fcntl.LOCK_SH: fcntl.F_RDLCK,
    fcntl.LOCK_EX: fcntl.F_WRLCK,
    fcntl.LOCK_UN: fcntl.F_UNLCK,
}

Kind = Literal["posix", "flock"]
Key = tuple[int, Kind, int]  # inode, the kind of lock, the kernel's owner


@dataclass(eq=False)
class _Owned:
    """The lock fid of one owner on one file, and the file handles it locked through."""

    fid: Fid
    via: set[int] = field(default_factory=set)


class LockFids(Protocol):
    """What the lock table needs of the mount: lock fids opened, and clunked."""

    async def open(self, node: Inode, flags: int) -> Fid:
        """A new fid of `node`, opened with `flags` (OpenFlag)."""
        ...

    def drop(self, fid: Fid) -> None:
        """Clunk `fid` in the background."""
        ...


class LockTable:
    """The lock fids of the mount, opened and clunked through `fids`."""

    def __init__(self, fids: LockFids) -> None:
        self._fids = fids
        self._owned: dict[Key, _Owned] = {}

    async def set(
        self,
        file: OpenFile,
        fh: int,
        key: Key,
        host_type: int,
        span: tuple[int, int],
        pid: int,
        wait: bool,
    ) -> None:
        """Set (F_RDLCK, F_WRLCK) or clear (F_UNLCK) `key`'s lock on `span` (start, length)."""
        wire = _wire_type(host_type)
        start, length = span
        if wire == LockType.UNLCK:
            owned = self._live(key)
            if owned is not None:
                await owned.fid.lock(wire, start, length, flags=_kind_flag(key), proc_id=pid)
                if span == (0, 0) and self._owned.get(key) is owned:  # it holds nothing here
                    del self._owned[key]
                    self._fids.drop(owned.fid)
            return
        owned = await self._fid_for(file, fh, key)
        flags = (LockFlag.BLOCK if wait else 0) | _kind_flag(key)
        delay = FIRST_RETRY
        while True:
            status = await owned.fid.lock(wire, start, length, flags=flags, proc_id=pid)
            if status == LockStatus.SUCCESS:
                return
            if status == LockStatus.ERROR:
                raise OSError(errno.ENOLCK, "the server could not set the lock")
            if not wait and status == LockStatus.BLOCKED:
                raise OSError(errno.EAGAIN, "held by another owner")
            await trio.sleep(delay)  # BLOCKED while waiting, or GRACE: ask again
            delay = min(delay * 2, LAST_RETRY)

    async def get(
        self, opened: Fid, key: Key, host_type: int, span: tuple[int, int], pid: int
    ) -> tuple[int, int, int, int]:
        """The lock that conflicts with the one `key` would set: (type, start, length, pid).

        Asked through the owner's lock fid, so its own locks never conflict (else
        through `opened`, the open file's fid, when it holds none on this file).
        """
        owned = self._live(key)
        fid = opened if owned is None else owned.fid
        lock = await fid.getlock(_wire_type(host_type), span[0], span[1], proc_id=pid)
        return host_lock_type(lock.type), lock.start, lock.length, 0

    async def release(self, fh: int) -> None:
        """File handle `fh` is released: unlock what owners hold only through it."""
        for key, owned in list(self._owned.items()):
            owned.via.discard(fh)
            if owned.via or self._owned.get(key) is not owned:
                continue
            del self._owned[key]
            if not owned.fid.client.closed:
                try:
                    await owned.fid.lock(LockType.UNLCK, 0, 0, flags=_kind_flag(key))
                except OSError as e:
                    log.debug("unlocking %s on release: %s", key, e)
            self._fids.drop(owned.fid)

    def holds(self, key: Key) -> bool:
        """Whether `key` has a lock fid (it may hold locks) on a live connection."""
        return self._live(key) is not None

    def _live(self, key: Key) -> _Owned | None:
        owned = self._owned.get(key)
        if owned is not None and owned.fid.client.closed:  # its connection is gone
            del self._owned[key]
            return None
        return owned

    async def _fid_for(self, file: OpenFile, fh: int, key: Key) -> _Owned:
        owned = self._live(key)
        if owned is None:
            fid = await self._open(file)
            owned = self._live(key)  # another request of the owner may have opened one
            if owned is None:
                owned = self._owned[key] = _Owned(fid)
            else:
                self._fids.drop(fid)
        owned.via.add(fh)
        return owned

    async def _open(self, file: OpenFile) -> Fid:
        """A lock fid: read-write where allowed, so that any lock type can be set through it."""
        try:
            return await self._fids.open(file.node, int(OpenFlag.RDWR))
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ETXTBSY):
                raise
        return await self._fids.open(file.node, file.flags & OpenFlag.ACCMODE)


def flock_type(op: int) -> tuple[int, bool]:
    """The whole-file lock type flock operation `op` asks for, and whether it waits."""
    host_type = _FLOCK_TYPES.get(op & ~fcntl.LOCK_NB)
    if host_type is None:
        raise OSError(errno.EINVAL, f"flock operation {op:#x}")
    return host_type, not op & fcntl.LOCK_NB


def _kind_flag(key: Key) -> LockFlag:
    """flock locks are told apart from POSIX ones on the server (`LockFlag.FLOCK`)."""
    return LockFlag.FLOCK if key[1] == "flock" else LockFlag(0)


def _wire_type(host_type: int) -> LockType:
    try:
        return wire_lock_type(host_type)
    except KeyError:
        raise OSError(errno.EINVAL, f"lock type {host_type}") from None
