"""An opened host file or directory: I/O, directory listing and locks (a `Handle`)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Sequence

import trio

from ninep.backend import Dirent, Lock
from ninep.messages import Qid

from . import locks, stored
from .attrs import dirent_type, qid_of
from .hostio import INLINE_IO_MAX, INLINE_LIST_MAX, HostCalls, bad_values_are_einval, in_thread
from .names import list_dir

READDIR_MAX = 1 << 14  # entries handed to the server per call; it keeps what fits


class VolHandle:
    """A host fd opened for I/O; for a directory, a listing snapshot served by index.

    The listing is taken when readdir asks for offset 0 (or first asks at all),
    `.` and `..` included; entry i has cookie i + 1, so offsets stay valid
    however the directory changes meanwhile. Names are listed as `show` maps them;
    with `stored_types`, a regular host file is listed with the type of its mode
    attribute (a stored symlink or special file: metadata on). `before_write` is
    called with the fd before each write (the policy's `write_guard`: metadata
    that a write changes, such as setuid); `closed` once the fd is closed. `calls`
    says which host calls run inline (`hostio`).
    """

    def __init__(
        self,
        fd: int,
        *,
        calls: HostCalls,
        mode: int,
        dots: tuple[Qid, Qid] | None,
        show: Callable[[str], str] = str,
        stored_types: bool = False,
        hidden: frozenset[str] = frozenset(),
        before_write: Callable[[int], None] | None = None,
        closed: Callable[[], None] | None = None,
    ) -> None:
        self._fd = fd
        self._calls = calls
        self._regular = stat.S_ISREG(mode)
        self._stream = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)
        self._dots = dots  # qids of "." and "..": set for a directory
        self._show = show
        self._stored_types = stored_types  # list the types kept in attributes (metadata on)
        self._hidden = hidden  # host names not listed
        self._before_write = before_write
        self._closed = closed
        self._listing: list[Dirent] | None = None
        self._listing_lock = trio.Lock()

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise OSError(errno.EBADF, "handle is closed")
        return self._fd

    async def read(self, offset: int, count: int) -> bytes:
        fd = self.fd
        with bad_values_are_einval():
            if self._stream:  # fifos, sockets, char devices have no offsets
                return await in_thread(os.read, fd, count)
            if self._regular:
                return await self._calls.pread(fd, count, offset)
            return await in_thread(os.pread, fd, count, offset)

    async def write(self, offset: int, data: bytes) -> int:
        fd = self.fd
        if self._before_write is not None:
            self._before_write(fd)
        with bad_values_are_einval():
            if self._stream:
                return await in_thread(os.write, fd, data)
            cheap = self._regular and len(data) <= INLINE_IO_MAX
            return await self._calls.run(cheap, os.pwrite, fd, data, offset)

    async def readdir(self, offset: int) -> Sequence[Dirent]:
        if self._dots is None:
            raise OSError(errno.ENOTDIR, "not an opened directory")
        async with self._listing_lock:
            if offset == 0 or self._listing is None:
                self._listing = await self._snapshot(self._dots)
        return self._listing[offset : offset + READDIR_MAX]

    async def _snapshot(self, dots: tuple[Qid, Qid]) -> list[Dirent]:
        rows = [(".", dots[0], stat.S_IFDIR), ("..", dots[1], stat.S_IFDIR)]
        fd = self.fd
        entries = await self._calls.run(os.fstat(fd).st_size <= INLINE_LIST_MAX, list_dir, fd)
        if self._stored_types:
            entries = await in_thread(stored.listed_types, fd, entries)
        for name, ino, mode in entries:
            if name in self._hidden:
                continue
            rows.append((self._show(name), qid_of(ino, mode), mode))
        return [
            Dirent(qid, i + 1, dirent_type(mode), name) for i, (name, qid, mode) in enumerate(rows)
        ]

    async def fsync(self, datasync: bool) -> None:
        await in_thread(os.fdatasync if datasync else os.fsync, self.fd)

    async def lock(self, flags: int, lock: Lock) -> int:
        return locks.set_lock(self.fd, flags, lock)

    async def getlock(self, lock: Lock) -> Lock:
        return locks.get_lock(self.fd, lock)

    async def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.close(fd)
            finally:
                if self._closed is not None:
                    self._closed()
