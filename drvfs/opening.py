"""Opening and creating files: the flags sent, the close-to-open check, the page cache kept.

The kernel's cached attributes of the file are dropped by an open that finds
its mtime or size changed since the kernel was given them (close-to-open,
however long the attributes are cached).

An open fetches the file's attributes while it opens, at no extra wait: a file
another client removed or replaced since the kernel cached its name has no
link left (ESTALE: the kernel looks the name up again and retries, once), and
the kernel keeps its cached pages only while mtime and size are as when the
file was last opened (or written through this mount). On an extended
connection an open is one round trip (Twalkopen: the walk to a new fid, the
open and the attributes); on a plain one the getattr goes beside the walk and
the Tlopen. A create is one Tlcreateattr, the file opened on a new fid (on a
plain connection a clone of the directory's fid and a Tlcreate); the new node
gets no fid of its own until one is needed.
"""

from __future__ import annotations

import logging

import pyfuse3
import trio

from ninep.client import Attr, Fid
from ninep.constants import OpenFlag

from . import convert
from .entries import Entries
from .inodes import Inode
from .kernelcache import drop_inode
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
        if current is not None and current != node.given:
            # The kernel's size and mtime of it are stale (cached long, perhaps): dropped
            # before the open is answered, so that reads after it see the whole file.
            node.given = None
            await trio.to_thread.run_sync(drop_inode, node.ino, True)
        return OpenFile(node, wire & convert.REOPEN_MASK, fid), keep

    async def create(
        self, parent: Inode, name: str, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[OpenFile, Attr, Attr | None]:
        """Create and open `name` in `parent` for the caller of `ctx`; the file's attributes,
        and the directory's after, where the server gave them (`Fid.create_attrs`)."""
        wire = self._wire_flags(flags)
        dir_fid = await self._fids.fid(parent)
        fid, attr, dattr = await dir_fid.create_attrs(name, wire, mode, ctx.gid)
        try:
            if ctx.uid != self._fids.remote.uid:
                await self._entries.give_to_caller(fid, ctx)
                attr = await fid.getattr()
        except BaseException:
            self._fids.drop(fid)
            raise
        node = self._fids.count_lookup(parent, name, attr.qid.path, None)
        node.stamp = convert.stamp(attr)
        return OpenFile(node, wire & convert.REOPEN_MASK, fid), attr, dattr

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
        if (await self._fids.remote.attachment()).client.extended:
            fid, found = await self._fids.open_stat(node, wire)  # one round trip
            return self._checked(node, fid, found, wire)
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
        return self._checked(node, fid, attr, wire)

    def _checked(
        self, node: Inode, fid: Fid, attr: Attr | None, wire: int
    ) -> tuple[Fid, Attr | None]:
        """`fid`, opened, and `attr` as the close-to-open check may use them; ESTALE if
        the file has no link left."""
        if attr is not None and attr.nlink == 0:
            self._fids.drop(fid)
            raise stale("/".join(node.path()))
        return fid, None if wire & OpenFlag.TRUNC else attr
