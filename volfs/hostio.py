"""Host calls: what runs inline and what in a worker thread, open flags, fd paths.

Inline, on the trio thread: calls bounded by a little metadata work on a local
filesystem: fstat/fstatat, openat with O_PATH, reopening a regular file or a
directory, mkdir, symlink, mknod, link, rename, rmdir, chmod, chown, utimens,
xattr calls, readlink, statvfs, close, and the OFD lock calls (they never wait).
Reads and writes of at most `INLINE_IO_MAX` bytes on regular files also run
inline: a worker thread costs more than such a call served from the page cache.

In a worker thread (`in_thread`): whatever may wait for the disk for a time that
grows with the data, or for another process: larger reads and writes and any I/O
on other file types, fsync, truncate, unlink (frees the data), opening with
O_TRUNC or opening anything but a regular file or a directory, listing a directory.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar, TypeVarTuple

import trio

from ninep import convert
from ninep.constants import OpenFlag

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

INLINE_IO_MAX = 4096

# Client open flags honoured on the host. Ignored: CREAT, EXCL (open never creates),
# NOCTTY, FASYNC, LARGEFILE, NOFOLLOW (symlinks are never opened), DIRECT (Python's
# buffers are not aligned for it; QEMU drops it too), CLOEXEC (always set).
_HONOURED = (
    OpenFlag.TRUNC,
    OpenFlag.APPEND,
    OpenFlag.NONBLOCK,
    OpenFlag.DSYNC,
    OpenFlag.SYNC,
    OpenFlag.NOATIME,
    OpenFlag.DIRECTORY,
)


def host_open_flags(flags: int) -> int:
    """Host open(2) flags for the client's `flags` (access mode kept, O_CLOEXEC added)."""
    return convert.host_open_flags(flags, _HONOURED) | os.O_CLOEXEC


def proc_path(fd: int) -> str:
    """A path naming the object of `fd` itself (for calls that take no fd or no O_PATH fd).

    The kernel resolves it to the object without following it further, so a
    symlink's O_PATH fd names the symlink.
    """
    return f"/proc/self/fd/{fd}"


async def in_thread(fn: Callable[[*Ts], T], *args: *Ts) -> T:
    """Run a blocking host call in a worker thread."""
    return await trio.to_thread.run_sync(fn, *args)


@contextmanager
def bad_values_are_einval() -> Iterator[None]:
    """Turn Python's refusal of a value the host cannot take (too large, NUL) into EINVAL."""
    try:
        yield
    except (OverflowError, ValueError) as e:
        raise OSError(errno.EINVAL, str(e)) from e
