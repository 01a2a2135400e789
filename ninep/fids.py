"""The per-connection fid table: what each fid refers to, and safe release.

A fid is used by requests that may run concurrently. Each request holds a
reference while it runs (`FidTable.use`); a clunked fid leaves the table at
once, but its host objects are closed only when the last request using it is
done, so no request ever works on a closed (and possibly reused) descriptor.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from .backend import File, Handle, User
from .limits import Budgets

log = logging.getLogger(__name__)

XATTR_SIZE_MAX = 65536  # Linux's limit on one attribute value


@dataclass(slots=True)
class XattrState:
    """A fid turned into an attribute: read by Txattrwalk, or written by Txattrcreate."""

    name: str
    value: bytearray
    size: int  # what Txattrcreate announced; the value must reach exactly that
    flags: int
    writing: bool


@dataclass(slots=True, eq=False)
class FidRef:
    """What one fid of a connection refers to on the server (a client's own fid is
    `ninep.client.Fid`)."""

    file: File
    user: User
    handle: Handle | None = None
    xattr: XattrState | None = None
    read_only: bool = False  # of a read-only attach (the backend says: `backend.read_only`)
    users: int = 0
    clunked: bool = False
    retired: list[File] = field(default_factory=list)

    def derived(
        self, file: File, handle: Handle | None = None, xattr: XattrState | None = None
    ) -> FidRef:
        """A new fid for `file`, reached from this one: of the same attach."""
        return FidRef(file, self.user, handle, xattr, self.read_only)

    def replace_file(self, file: File) -> None:
        """Point the fid at another object; the old one closes with the fid."""
        self.retired.append(self.file)
        self.file = file

    async def close(self) -> None:
        """Release every host object the fid holds; errors are logged, not raised."""
        for obj in (self.handle, self.file, *self.retired):
            if obj is None:
                continue
            try:
                await obj.close()
            except Exception:
                log.exception("closing %r failed", obj)
        self.handle = None
        self.retired.clear()


class FidTable:
    """The fids of one connection, within its limits and the server's `budgets`."""

    def __init__(
        self, limit: int = 1 << 32, open_limit: int = 1 << 32, budgets: Budgets | None = None
    ) -> None:
        self._fids: dict[int, FidRef] = {}
        self.limit = limit  # fids held at once; one more is EMFILE
        self.open_limit = open_limit  # fids with an open file; one more open is EMFILE
        self.open = 0
        self._budgets = budgets or Budgets.unbounded()

    def __len__(self) -> int:
        return len(self._fids)

    async def add(self, num: int, fid: FidRef) -> None:
        """Enter `fid` (perhaps open) as `num`; if `num` was taken meanwhile, close `fid` and
        fail."""
        if num in self._fids:
            await fid.close()
            raise OSError(errno.EBADF, f"fid {num} is already in use")
        self._fids[num] = fid
        self._budgets.fids.used += 1
        if fid.handle is not None:
            self.opened()

    def check_free(self, num: int) -> None:
        """Before making fid `num`: EBADF if it is in use, EMFILE if the table (or the
        server's budget) is full."""
        if num in self._fids:
            raise OSError(errno.EBADF, f"fid {num} is already in use")
        if len(self._fids) >= self.limit:
            raise OSError(errno.EMFILE, f"this connection holds {self.limit} fids, its limit")
        self._budgets.fids.check()

    def check_open(self) -> None:
        """Before opening a file: EMFILE past this connection's open files, ENFILE past the
        server's."""
        if self.open >= self.open_limit:
            raise OSError(errno.EMFILE, f"this connection has {self.open} files open, its limit")
        self._budgets.open_files.check()

    def opened(self) -> None:
        """A fid of the table was just opened (counted until it closes)."""
        self.open += 1
        self._budgets.open_files.used += 1

    def get(self, num: int) -> FidRef | None:
        """Fid `num`, or None (not held: only to look at)."""
        return self._fids.get(num)

    async def release(self, num: int) -> None:
        """Clunk fid `num` if it is in the table (for a refused request that frees it)."""
        if num in self._fids:
            async with self.use(num):
                self.pop(num)

    @asynccontextmanager
    async def use(self, num: int) -> AsyncIterator[FidRef]:
        """Hold fid `num` for the duration of one request."""
        fid = self._fids.get(num)
        if fid is None:
            raise OSError(errno.EBADF, f"unknown fid {num}")
        fid.users += 1
        try:
            yield fid
        finally:
            fid.users -= 1
            if fid.clunked and fid.users == 0:
                await self._close(fid)

    def pop(self, num: int) -> FidRef:
        """Take fid `num` out of the table; it closes when no request uses it any more."""
        fid = self._fids.pop(num, None)
        if fid is None:
            raise OSError(errno.EBADF, f"unknown fid {num}")
        fid.clunked = True
        return fid

    async def clear(self) -> None:
        """Release every fid (connection closed or Tversion)."""
        fids, self._fids = list(self._fids.values()), {}
        for fid in fids:
            fid.clunked = True
            if fid.users == 0:
                await self._close(fid)

    async def _close(self, fid: FidRef) -> None:
        """Close a fid that left the table, and give back what it counted."""
        self._budgets.fids.used -= 1
        if fid.handle is not None:
            self.open -= 1
            self._budgets.open_files.used -= 1
        await fid.close()
