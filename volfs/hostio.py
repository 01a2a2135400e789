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

Two calls Python's `os` lacks go through libc (ctypes): `file_handle`
(name_to_handle_at) and `rename_noreplace` (renameat2).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn, TypeVar, TypeVarTuple

import trio

from ninep import convert
from ninep.constants import OpenFlag

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

INLINE_IO_MAX = 4096

#: What the host answers for an extended attribute that is not there (ENOTSUP: a host
#: filesystem that keeps no user attributes at all).
XATTR_ABSENT = (errno.ENODATA, errno.ENOTSUP)

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


def entry_path(dirfd: int, name: str) -> str:
    """A path naming entry `name` (one component) of the directory of `dirfd`.

    Only for calls that do not follow the last component (`follow_symlinks=False`,
    an l* call): the kernel resolves the directory's `proc_path`, then looks up
    `name` in it, and a symlink there is then acted on, never followed.
    """
    return f"{proc_path(dirfd)}/{name}"


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


_libc = ctypes.CDLL(None, use_errno=True)
_AT_EMPTY_PATH = 0x1000
_MAX_HANDLE_SZ = 128
_RENAME_NOREPLACE = 1
_NO_HANDLES = (errno.EOPNOTSUPP, errno.EOVERFLOW, errno.ENOSYS)
_NO_FLAGS = (errno.EINVAL, errno.ENOSYS)  # a filesystem (or kernel) without renameat2's flags


class _FileHandle(ctypes.Structure):
    _fields_ = (
        ("size", ctypes.c_uint),
        ("type", ctypes.c_int),
        ("data", ctypes.c_ubyte * _MAX_HANDLE_SZ),
    )


def _raise_errno(what: str) -> NoReturn:
    code = ctypes.get_errno()
    raise OSError(code, os.strerror(code), what)


def file_handle(fd: int) -> bytes:
    """The host's file handle of the object of `fd` (name_to_handle_at); b"" where it has none.

    A handle names one object for its whole life: unlike (st_dev, st_ino) it is
    never another object's, on filesystems that reuse inode numbers (it carries
    the inode's generation).
    """
    handle = _FileHandle(size=_MAX_HANDLE_SZ)
    mount_id = ctypes.c_int()
    if _libc.name_to_handle_at(fd, b"", ctypes.byref(handle), ctypes.byref(mount_id),
                               _AT_EMPTY_PATH) != 0:  # fmt: skip
        if ctypes.get_errno() in _NO_HANDLES:
            return b""
        _raise_errno("name_to_handle_at")
    kind = int(handle.type).to_bytes(4, "little", signed=True)
    return kind + bytes(handle.data[: handle.size])


def rename_noreplace(src_dirfd: int, src: str, dst_dirfd: int, dst: str) -> None:
    """Rename `src` to `dst`, EEXIST if `dst` exists (renameat2 RENAME_NOREPLACE).

    Where the host filesystem cannot (EINVAL), a check then a plain rename: a
    race with a host process making `dst` between the two is not excluded there.
    """
    old, new = os.fsencode(src), os.fsencode(dst)
    if _libc.renameat2(src_dirfd, old, dst_dirfd, new, _RENAME_NOREPLACE) == 0:
        return
    if ctypes.get_errno() not in _NO_FLAGS:
        _raise_errno(dst)
    try:
        os.stat(dst, dir_fd=dst_dirfd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(src, dst, src_dir_fd=src_dirfd, dst_dir_fd=dst_dirfd)
        return
    raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
