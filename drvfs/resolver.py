"""Fids across reconnections: the fid of each node and open file on the live connection.

A fid belongs to the connection it was made on. A node without a fid on the
live connection (one listed by READDIRPLUS, made by create or mkdir, or known
from before a reconnection) is walked to by its last known names from its
nearest ancestor that has one, or from the root (ESTALE if the name now leads
to another file, or nowhere); where the attributes are wanted too, the walk
brings them (Twalkgetattr: one round trip on an extended connection). An open
file is opened again with its flags after a reconnection. Fids that nobody
waits for are clunked in the background.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import TypeGuard

import trio

from ninep.client import Attr, Fid
from ninep.messages import Qid

from .inodes import Inode, InodeTable
from .openfiles import OpenFile
from .remote import Attachment, Remote

log = logging.getLogger("drvfs")


def stale(what: str) -> OSError:
    """ESTALE: the kernel's inode or name no longer leads to the file it knew."""
    return OSError(errno.ESTALE, os.strerror(errno.ESTALE), what)


class FidResolver:
    """Fids of the nodes of `inodes` and of open files, made on `remote`'s live connection."""

    def __init__(self, remote: Remote, inodes: InodeTable, nursery: trio.Nursery) -> None:
        self.remote = remote
        self.inodes = inodes
        self.nursery = nursery  # for what nobody waits for: clunks, following renames

    def node(self, ino: int) -> Inode:
        """The node of inode `ino` (ESTALE if the kernel has forgotten it)."""
        node = self.inodes.get(ino)
        if node is None:
            raise stale(f"inode {ino}")
        return node

    async def fid(self, node: Inode) -> Fid:
        """The fid of `node` on the current connection, walked to again if need be."""
        a = await self.remote.attachment()
        if node is self.inodes.root:
            return a.root
        held = node.fid
        if _live(held, a):
            return held
        fid, _ = await self._walk(node, a, stat=False)
        return self._keep(node, fid, a)

    async def stat(self, node: Inode) -> tuple[Fid, Attr]:
        """The fid of `node` and its attributes: a getattr, or a walk that brings them."""
        a = await self.remote.attachment()
        held = a.root if node is self.inodes.root else node.fid
        if _live(held, a):
            try:
                return held, await held.getattr()
            except FileNotFoundError:
                if node is self.inodes.root or node.fid is not held:
                    raise
                # A server whose fids are paths (diod): the name this fid was walked by
                # is gone (unlinked, renamed), the node's last known name may not be.
                node.fid = None
                self.drop(held)
        fid, attr = await self._walk(node, a, stat=True)
        assert attr is not None
        return self._keep(node, fid, a), attr

    async def _walk(
        self, node: Inode, a: Attachment, stat: bool, flags: int | None = None
    ) -> tuple[Fid, Attr | None]:
        """A new fid of `node` on `a`, walked from its nearest ancestor with a fid there
        (with the attributes of the file reached if `stat`; opened with `flags` and with
        its attributes, if given); ESTALE if its names lead elsewhere."""
        names: list[str] = []
        start: Inode | None = node
        while start is not None and start.parent is not None and not _live(start.fid, a):
            names.append(start.name)
            start = start.parent
        origin = a.root if start is None or start.parent is None else start.fid
        assert origin is not None
        names.reverse()
        attr: Attr | None = None
        try:
            if flags is not None:
                fid, attr = await origin.walk_open(*names, flags=flags)
            elif stat:
                fid, attr = await origin.walk_getattr(*names)
            else:
                fid = await origin.walk(*names)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                raise stale("/".join(node.path())) from None
            raise
        if self.inodes.ino(fid.qid.path) != node.ino:  # the name is another file's now
            self.drop(fid)
            raise stale("/".join(node.path()))
        return fid, attr

    def _keep(self, node: Inode, fid: Fid, a: Attachment) -> Fid:
        """`fid`, just walked to, becomes the fid of `node`, unless another task got
        there first."""
        held = node.fid
        if _live(held, a):
            self.drop(fid)
            return held
        node.fid = fid
        return fid

    async def opened(self, file: OpenFile) -> Fid:
        """The opened fid of `file` on the current connection, reopened if need be."""
        a = await self.remote.attachment()
        if _live(file.fid, a):
            return file.fid
        fid = await self.open(file.node, file.flags)
        if _live(file.fid, a):
            self.drop(fid)
            return file.fid
        if file.fid is not None:  # else opened at first use (`DrvFs.opendir`)
            log.info("reopened %r", file.node)
        file.reopened(fid)
        return fid

    async def open(self, node: Inode, flags: int) -> Fid:
        """A new fid of `node`, opened with `flags` (OpenFlag) (`open_stat`)."""
        fid, _ = await self.open_stat(node, flags)
        return fid

    async def open_stat(self, node: Inode, flags: int) -> tuple[Fid, Attr | None]:
        """A new fid of `node`, opened with `flags` (OpenFlag), walked to from its fid or,
        if it has none, from its nearest ancestor (the node gets none): on an extended
        connection one Twalkopen, which brings the attributes of the file once open; on
        a plain one a walk and a Tlopen, and no attributes (None)."""
        a = await self.remote.attachment()
        held = a.root if node is self.inodes.root else node.fid
        if a.client.extended:
            if _live(held, a):
                return await held.walk_open(flags=flags)
            return await self._walk(node, a, stat=True, flags=flags)
        if _live(held, a):
            fid = await held.clone()
        else:
            fid, _ = await self._walk(node, a, stat=False)
        try:
            await fid.open(flags)
        except BaseException:
            self.drop(fid)
            raise
        return fid, None

    def drop(self, fid: Fid | None) -> None:
        """Clunk `fid` in the background."""
        if fid is not None and fid.fid is not None and not fid.client.closed:
            self.nursery.start_soon(_clunk, fid)

    def count_lookup(self, parent: Inode, name: str, qid_path: int, fid: Fid | None) -> Inode:
        """Count a lookup of `name` in `parent` (`InodeTable.add`); clunk a fid left over."""
        node, spare = self.inodes.add(parent, name, qid_path, fid)
        self.drop(spare)
        return node

    async def qid_of(self, dir_fid: Fid, name: str) -> Qid | None:
        """The qid of `name` in a directory, None if there is no such name."""
        try:
            fid = await dir_fid.walk(name)
        except FileNotFoundError:
            return None
        self.drop(fid)
        return fid.qid


def _live(fid: Fid | None, a: Attachment) -> TypeGuard[Fid]:
    """Whether `fid` is usable on attachment `a`."""
    return fid is not None and fid.fid is not None and a.owns(fid)


async def _clunk(fid: Fid) -> None:
    try:
        await fid.clunk()
    except OSError as e:
        log.debug("clunk of %r: %s", fid, e)
