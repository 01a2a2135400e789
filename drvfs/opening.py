"""Opening and creating files: the flags sent, the close-to-open check, the page cache kept.

An open fetches the file's attributes while it opens, at no extra wait: a file
another client removed or replaced since the kernel cached its name has no
link left (ESTALE: the kernel looks the name up again and retries, once), and
the kernel keeps its cached pages only while mtime and size are as when the
file was last opened (or written through this mount).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pyfuse3
import trio

from ninep.client import Attr, Fid
from ninep.constants import OpenFlag

from . import convert
from .entries import Entries
from .inodes import Inode
from .openfiles import OpenFile
from .resolver import FidResolver, stale

log = logging.getLogger("drvfs")


class Opener:
    """Opens nodes and creates files through `fids`."""

    def __init__(self, fids: FidResolver, entries: Entries, writeback_cache: bool) -> None:
        self._fids = fids
        self._entries = entries
        self._writeback_cache = writeback_cache

    async def open(self, node: Inode, flags: int) -> tuple[OpenFile, bool]:
        """Open `node` for open(2) `flags`; whether the kernel may keep its cached pages."""
        wire = self._wire_flags(flags)
        try:
            fid, attr = await self._open_and_stat(node, wire)
        except PermissionError:
            if wire == convert.open_flags(flags):
                raise
            wire = convert.open_flags(flags)  # write-only after all: no writeback reads
            fid, attr = await self._open_and_stat(node, wire)
        current = convert.stamp(attr) if attr is not None else None
        keep = current is not None and node.stamp == current
        node.stamp = current
        return OpenFile(node, wire & convert.REOPEN_MASK, fid), keep

    async def create(
        self, parent: Inode, name: str, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[OpenFile, Attr]:
        """Create and open `name` in `parent` for the caller of `ctx`; the file's attributes."""
        wire = self._wire_flags(flags)
        dir_fid = await self._fids.fid(parent)
        fid = await dir_fid.clone()
        walked: list[Fid] = []  # the node's own fid
        attrs: list[Attr] = []

        async def walk() -> None:
            walked.append(await dir_fid.walk(name))

        async def stat() -> None:
            attrs.append(await fid.getattr())

        try:
            await fid.create(name, wire, mode, ctx.gid)
            await self._entries.give_to_caller(fid, ctx)
            await _together(walk, stat)
        except BaseException:
            for f in (fid, *walked):
                self._fids.drop(f)
            raise
        attr = attrs[0]
        node = self._fids.count_lookup(parent, name, attr.qid.path, walked[0])
        node.stamp = convert.stamp(attr)
        return OpenFile(node, wire & convert.REOPEN_MASK, fid), attr

    def _wire_flags(self, flags: int) -> int:
        wire = convert.open_flags(flags)
        if self._writeback_cache:
            # The kernel reads pages of write-only files to fill them, and does O_APPEND itself.
            if wire & OpenFlag.ACCMODE == OpenFlag.WRONLY:
                wire = wire & ~OpenFlag.ACCMODE | OpenFlag.RDWR
            wire &= ~OpenFlag.APPEND
        return wire

    async def _open_and_stat(self, node: Inode, wire: int) -> tuple[Fid, Attr | None]:
        """Open `node`, and fetch its attributes meanwhile (None with O_TRUNC, or on error)."""
        node_fid = await self._fids.fid(node)
        attr: Attr | None = None

        async def stat() -> None:
            nonlocal attr
            try:
                attr = await node_fid.getattr()
            except OSError as e:
                log.debug("getattr of %r: %s", node, e)

        failure: OSError | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stat)
            try:
                fid = await self._fids.open(node, wire)
            except OSError as e:  # raised below, not wrapped in an ExceptionGroup
                failure = e
        if failure is not None:
            raise failure
        if attr is not None and attr.nlink == 0:
            self._fids.drop(fid)
            raise stale("/".join(node.path()))
        return fid, None if wire & OpenFlag.TRUNC else attr


async def _together(*tasks: Callable[[], Awaitable[None]]) -> None:
    """Run `tasks` concurrently; raise the first error (not wrapped in an ExceptionGroup)."""
    errors: list[Exception] = []

    async def run(task: Callable[[], Awaitable[None]]) -> None:
        try:
            await task()
        except Exception as e:
            errors.append(e)

    async with trio.open_nursery() as nursery:
        for task in tasks:
            nursery.start_soon(run, task)
    if errors:
        raise errors[0]
