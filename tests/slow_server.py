"""A live server with a slow disk: `python -m tests.slow_server EXPORT ADDRESS DELAY`.

Serves EXPORT as C like `python -m ninep`, except that an fsync of a file whose
name starts with "slow" takes DELAY seconds more. The delay is an await in the
backend: the server reads and answers everything else meanwhile.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, cast

import trio

from ninep.backend import Export, File, Handle, User
from ninep.server import Server
from ninep.transport import parse_address
from volfs.export import open_export


class _SlowHandle:
    def __init__(self, inner: Handle, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def fsync(self, datasync: bool) -> None:
        await trio.sleep(self.delay)
        await self.inner.fsync(datasync)


class _SlowFile:
    """A volfs file; those named slow* open into handles with a slow fsync."""

    def __init__(self, inner: File, delay: float, slow: bool = False) -> None:
        self.inner, self.delay, self.slow = inner, delay, slow

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _handle(self, handle: Handle, slow: bool) -> Handle:
        return cast(Handle, _SlowHandle(handle, self.delay)) if slow else handle

    async def walk(self, name: str) -> _SlowFile:
        return _SlowFile(await self.inner.walk(name), self.delay, name.startswith("slow"))

    async def clone(self) -> _SlowFile:
        return _SlowFile(await self.inner.clone(), self.delay, self.slow)

    async def open(self, flags: int) -> Handle:
        return self._handle(await self.inner.open(flags), self.slow)

    async def create(self, name: str, flags: int, mode: int, gid: int) -> tuple[File, Handle]:
        file, handle = await self.inner.create(name, flags, mode, gid)
        return file, self._handle(handle, name.startswith("slow"))


class _SlowExport:
    def __init__(self, inner: Export, delay: float) -> None:
        self.inner, self.delay = inner, delay

    async def attach(self, options: str, user: User) -> File:
        return cast(File, _SlowFile(await self.inner.attach(options, user), self.delay))


def main(export: str, address: str, delay: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = Server({"C": cast(Export, _SlowExport(open_export(export), float(delay)))})
    trio.run(server.serve, [parse_address(address)])


if __name__ == "__main__":
    main(*sys.argv[1:])
