"""Fids across reconnections: the fid of each node and open file on the live connection.

A fid belongs to the connection it was made on. A node without a fid on the
live connection (one listed by READDIRPLUS, made by create or mkdir, or known
from before a reconnection) is walked to by its last known names from its
nearest ancestor that has one, or from the root (ESTALE if the name now leads
to another file, or nowhere); where the attributes are wanted too, the walk
brings them (Twalkgetattr: one round trip on an extended connection). An open
file is opened again with its flags after a reconnection. Fids that nobody
waits for are clunked in the background.

While a node has an open file, its name may be gone (unlinked, renamed or
replaced, here or by another client) and the file still in use: its getattr
and setattr go on the open file's fid (`stat`, `on_file`), and on an extended
connection (where fids are files, not paths) a fid of it is walked to from
that file, by no name. So fstat shows nlink 0 after an unlink, as on a local
filesystem, instead of ESTALE.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeGuard, TypeVar

import trio

from ninep.client import Attr, Fid
from ninep.messages import Qid

from .inodes import Inode, InodeTable
from .openfiles import OpenFile
from .remote import Attachment, Remote

log = logging.getLogger("drvfs")

T = TypeVar("T")


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

    async def stat(self, node: Inode) -> Attr:
        """The attributes of `node`: a getattr on an open file's fid if it has one, else on
        its own fid, or a walk that brings them."""
        a = await self.remote.attachment()
        file = _open_file(node, a)
        if file is not None:
            try:
                with self.borrowed(file) as opened:
                    return await opened.getattr()
            except FileNotFoundError:  # a server whose fids are paths (diod): as below
                pass
        held = a.root if node is self.inodes.root else node.fid
        if _live(held, a):
            try:
                return await held.getattr()
            except FileNotFoundError:
                if node is self.inodes.root or node.fid is not held:
                    raise
                # A server whose fids are paths (diod): the name this fid was walked by
                # is gone (unlinked, renamed), the node's last known name may not be.
                node.fid = None
                self.drop(held)
        fid, attr = await self._walk(node, a, stat=True)
        assert attr is not None
        self._keep(node, fid, a)
        return attr

    async def on_file(self, node: Inode, call: Callable[[Fid], Awaitable[T]]) -> T:
        """`call(fid)` with a fid of `node`'s file itself: one of its open files' while it
        has one (whatever became of its name), else its own (`fid`)."""
        file = _open_file(node, await self.remote.attachment())
        if file is None:
            return await call(await self.fid(node))
        with self.borrowed(file) as opened:
            return await call(opened)

    @contextmanager
    def borrowed(self, file: OpenFile) -> Iterator[Fid]:
        """The fid of `file`, used by a request of its node's meanwhile: a release in the
        meantime leaves its clunk to the last borrower (`release`)."""
        assert file.fid is not None
        file.borrowers += 1
        try:
            yield file.fid
        finally:
            file.borrowers -= 1
            if file.released and not file.borrowers:
                self.drop(file.fid)

    def release(self, file: OpenFile) -> None:
        """The kernel released `file`: its fid is clunked, now or by its last borrower."""
        file.released = True
        if not file.borrowers:
            self.drop(file.fid)

    async def _walk(
        self, node: Inode, a: Attachment, stat: bool, flags: int | None = None
    ) -> tuple[Fid, Attr | None]:
        """A new fid of `node` on `a` (with the attributes of the file reached if `stat`;
        opened with `flags` and with its attributes, if given): from one of its open files
        where fids are files (an extended connection), else walked from its nearest
        ancestor with a fid there; ESTALE if its names lead elsewhere."""
        file = _open_file(node, a) if a.client.extended else None
        if file is not None:  # by no name: it may be gone
            with self.borrowed(file) as opened:
                return await self._walk_from(opened, [], node, stat, flags)
        names: list[str] = []
        start: Inode | None = node
        while start is not None and start.parent is not None and not _live(start.fid, a):
            names.append(start.name)
            start = start.parent
        origin = a.root if start is None or start.parent is None else start.fid
        assert origin is not None
        names.reverse()
        return await self._walk_from(origin, names, node, stat, flags)

    async def _walk_from(
        self, origin: Fid, names: list[str], node: Inode, stat: bool, flags: int | None
    ) -> tuple[Fid, Attr | None]:
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


def _open_file(node: Inode, a: Attachment) -> OpenFile | None:
    """One of `node`'s open files whose fid is usable on `a`, if any."""
    for file in node.files:
        if _live(file.fid, a):
            return file
    return None


async def _clunk(fid: Fid) -> None:
    try:
        await fid.clunk()
    except OSError as e:
        log.debug("clunk of %r: %s", fid, e)
