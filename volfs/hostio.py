"""Host calls: what runs inline and what in a worker thread, open flags, fd paths.

The rule (figures: `scripts/inline_or_thread.py`, docs/architecture.md): handing a
call to a worker thread costs about 70 us of CPU and 140 us of wall time, ten
times an fstatat, so a call runs inline, on the trio thread, unless it may wait
for another machine, process or the disk, or its own cost passes the hand-off's.

Inline on every filesystem: calls bounded by a little metadata work:
fstat/fstatat, openat with O_PATH, reopening a regular file or a directory,
mkdir, symlink, mknod, link, rename, rmdir, chmod, chown, utimens, xattr calls,
readlink, statvfs, close, and the OFD lock calls (they never wait).

Decided by `HostCalls`, inline only on a local filesystem (`HostCalls.local`:
not FUSE nor a network filesystem, by the export root's statfs type): reads of
a regular file of at most `INLINE_IO_MAX` bytes or whose range the page cache
holds (`cached`), writes of at most `INLINE_IO_MAX` bytes, unlink and truncate
of a file of at most `INLINE_FREE_MAX` bytes (their cost grows with the data
freed), opening with O_TRUNC such a file, and listing a directory of at most
`INLINE_LIST_MAX` bytes (st_size; a few hundred names).

Always in a worker thread (`in_thread`): I/O on other file types, fsync,
opening anything but a regular file or a directory, the folded index and the
stored types of a listing.

Three calls Python's `os` lacks go through libc (ctypes): `file_handle`
(name_to_handle_at), `rename_noreplace` (renameat2) and `cached` (cachestat).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn, TypeVar, TypeVarTuple

import trio

from ninep import convert
from ninep.constants import OpenFlag
from ninep.watch import UNCOVERED_FILESYSTEMS, filesystem_type

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

INLINE_IO_MAX = 4096
INLINE_FREE_MAX = 1 << 20  # bytes of a file unlinked or truncated inline
INLINE_LIST_MAX = 8192  # st_size of a directory listed inline (ext4: ~250 names of 15 bytes)

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


@dataclass(frozen=True, slots=True)
class HostCalls:
    """Where the calls of one export that may take long run (see the module's rule)."""

    #: no call waits for another machine or process: not FUSE (virtiofs) nor a network
    #: filesystem, the ones whose changes inotify misses (`UNCOVERED_FILESYSTEMS`)
    local: bool

    @classmethod
    def of(cls, fd: int) -> HostCalls:
        """The calls of the filesystem holding `fd` (its mounts below count as it)."""
        return cls(local=filesystem_type(fd) not in UNCOVERED_FILESYSTEMS)

    async def run(self, cheap: bool, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """`fn(*args)`: inline if `cheap` (bounded by little work) on a local filesystem."""
        if cheap and self.local:
            return fn(*args)
        return await in_thread(fn, *args)

    async def pread(self, fd: int, count: int, offset: int) -> bytes:
        """Read a regular file: inline if small or in the page cache (`cached`)."""
        cheap = count <= INLINE_IO_MAX or (self.local and cached(fd, offset, count))
        return await self.run(cheap, os.pread, fd, count, offset)


@contextmanager
def bad_values_are_einval() -> Iterator[None]:
    """Turn Python's refusal of a value the host cannot take (too large, NUL) into EINVAL."""
    try:
        yield
    except (OverflowError, ValueError) as e:
        raise OSError(errno.EINVAL, str(e)) from e


_libc = ctypes.CDLL(None, use_errno=True)
_SYS_CACHESTAT = 451  # the same number on every architecture (Linux 6.5)
_PAGE = os.sysconf("SC_PAGE_SIZE")


class _CachestatRange(ctypes.Structure):
    _fields_ = (("off", ctypes.c_uint64), ("len", ctypes.c_uint64))


class _Cachestat(ctypes.Structure):
    _fields_ = tuple((name, ctypes.c_uint64) for name in
                     ("cache", "dirty", "writeback", "evicted", "recently_evicted"))  # fmt: skip


def cached(fd: int, offset: int, count: int) -> bool:
    """Whether the page cache holds every page of bytes [offset, offset + count) of regular
    file `fd` that lie before its end (cachestat; False where the kernel has none).

    A read of them then copies from memory and never waits for the disk.
    """
    end = min(offset + count, os.fstat(fd).st_size)
    if end <= offset:
        return True  # at or past the end: nothing to read
    first = offset // _PAGE
    span, stat = _CachestatRange(first * _PAGE, end - first * _PAGE), _Cachestat()
    if _libc.syscall(_SYS_CACHESTAT, fd, ctypes.byref(span), ctypes.byref(stat), 0) != 0:
        return False
    return int(stat.cache) >= -(-(end - first * _PAGE) // _PAGE)


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
