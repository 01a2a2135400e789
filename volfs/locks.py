"""Tlock/Tgetlock as open file description (OFD) locks on the host.

An OFD lock belongs to the open file description, so two Handles (two fids,
perhaps two clients) exclude each other, and the lock goes away when the
Handle's fd is closed. With this project's `LockFlag.FLOCK`, a Tlock is a
flock(2) lock of the Handle's fd instead, apart from its POSIX locks. Locks are
only tried, never waited for: a conflict is `LockStatus.BLOCKED` and the
client retries by itself.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import replace

from ninep.backend import Lock
from ninep.constants import LockFlag, LockStatus, LockType
from ninep.convert import host_lock_type, wire_lock_type

# struct flock on 64-bit Linux: l_type, l_whence, (pad), l_start, l_len, l_pid, (pad).
_FLOCK = struct.Struct("hhqqi4x")
_OFF_MAX = (1 << 63) - 1


def _flock(lock: Lock) -> bytes:
    host_type = host_lock_type(lock.type)
    if lock.start > _OFF_MAX or lock.length > _OFF_MAX:
        raise OSError(errno.EINVAL, "lock range beyond the largest file offset")
    return _FLOCK.pack(host_type, os.SEEK_SET, lock.start, lock.length, 0)  # l_pid 0: OFD


_FLOCK_OPS: dict[int, int] = {
    LockType.RDLCK: fcntl.LOCK_SH,
    LockType.WRLCK: fcntl.LOCK_EX,
    LockType.UNLCK: fcntl.LOCK_UN,
}


def set_lock(fd: int, flags: int, lock: Lock) -> LockStatus:
    """Set (RDLCK/WRLCK) or clear (UNLCK) `lock` on `fd` without waiting.

    With `LockFlag.FLOCK` in `flags` it is a whole-file flock(2) lock of `fd`,
    which neither meets the fd's POSIX locks nor is one, as on Linux.
    """
    try:
        if flags & LockFlag.FLOCK:
            op = _FLOCK_OPS.get(lock.type)
            if op is None:
                raise OSError(errno.EINVAL, f"unknown lock type {lock.type}")
            fcntl.flock(fd, op | fcntl.LOCK_NB)
        else:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(lock))
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return LockStatus.BLOCKED
        raise
    return LockStatus.SUCCESS


def get_lock(fd: int, lock: Lock) -> Lock:
    """The first lock that conflicts with `lock` on `fd`, or `lock` with type UNLCK.

    The owner of a conflicting OFD lock is unknown to the host (l_pid -1): it
    is reported with the asker's proc_id and client_id.
    """
    reply = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock(lock))
    host_type, _, start, length, pid = _FLOCK.unpack(reply)
    if host_type == fcntl.F_UNLCK:
        return replace(lock, type=LockType.UNLCK)
    proc_id = pid if pid > 0 else lock.proc_id
    return Lock(wire_lock_type(host_type), start, length, proc_id, lock.client_id)
