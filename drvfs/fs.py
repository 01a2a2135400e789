"""The FUSE filesystem: each pyfuse3 operation done with 9P2000.L requests.

Every operation runs as its own trio task (pyfuse3 runs many at once), and
they all share one connection, on which the client keeps many requests in
flight. Errors reach the application with the server's errno; a lost
connection gives ENOTCONN (see `drvfs.remote`), and after a reconnection
inodes and open files are walked to again by path, and reopened.

POSIX locks and flock are held on the server (`drvfs.locks`), where the
installed pyfuse3 has lock handlers (`third_party/pyfuse3`); with a pyfuse3
without them the kernel keeps locks itself, for this one mount.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeGuard, TypeVar

import pyfuse3
import trio

from ninep.client import Attr, Fid
from ninep.constants import AT_REMOVEDIR, OpenFlag
from ninep.messages import Qid

from . import convert
from .handles import DirHandle, Handle, HandleTable, Listed
from .inodes import InodeTable, Node
from .locks import Key, LockTable, flock_type
from .options import MountOptions
from .remote import Remote, Session

log = logging.getLogger("drvfs")

P = ParamSpec("P")
T = TypeVar("T")

READDIR_BATCH = 32  # entries whose attributes are fetched together, ahead of the kernel
_DIR_FLAGS = int(OpenFlag.RDONLY | OpenFlag.DIRECTORY)


def _op(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn what an operation raises into FUSEError: OSError keeps its errno, bugs give EIO."""
    name = fn.__name__

    @functools.wraps(fn)
    async def operation(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except OSError as e:
            log.debug("%s: %s", name, e)
            raise pyfuse3.FUSEError(e.errno or errno.EIO) from None
        except Exception:
            log.exception("%s failed", name)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return operation


def _str(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def _bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _stale(what: str) -> OSError:
    return OSError(errno.ESTALE, os.strerror(errno.ESTALE), what)


class DrvFs(pyfuse3.Operations):
    """A 9P2000.L export as a FUSE filesystem."""

    supports_dot_lookup = False  # no NFS export: the kernel resolves `.` and `..` itself

    def __init__(
        self,
        remote: Remote,
        session: Session,
        options: MountOptions,
        nursery: trio.Nursery,
        on_init: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__()
        self._on_init = on_init
        self.remote = remote
        self.options = options
        self.enable_writeback_cache = options.writeback_cache
        self.inodes = InodeTable(session.root.qid.path)
        self.handles = HandleTable()
        self.locks = LockTable(lambda h, flags: self._open_node(h.node, flags), self._drop)
        self.nursery = nursery  # for what nobody waits for: clunks, following renames

    def init(self) -> None:
        """The kernel's INIT is answered: the mount is usable."""
        try:
            self._on_init()
        except Exception:
            log.exception("init callback failed")

    # ---- fids ----

    def _node(self, ino: int) -> Node:
        node = self.inodes.get(ino)
        if node is None:
            raise _stale(f"inode {ino}")
        return node

    def _entry(self, ino: int, attr: Attr) -> pyfuse3.EntryAttributes:
        return convert.entry(ino, attr, self.options.attr_timeout, self.options.entry_timeout)

    async def _fid(self, node: Node) -> Fid:
        """The fid of `node` on the current connection, walked to again if need be."""
        s = await self.remote.session()
        if node is self.inodes.root:
            return s.root
        held = node.fid
        if _live(held, s):
            return held
        try:
            fid = await s.root.walk(*node.path())
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                raise _stale("/".join(node.path())) from None
            raise
        if self.inodes.ino(fid.qid.path) != node.ino:  # the name is another file's now
            self._drop(fid)
            raise _stale("/".join(node.path()))
        held = node.fid
        if _live(held, s):  # another task got there first
            self._drop(fid)
            return held
        node.fid = fid
        return fid

    async def _open_fid(self, handle: Handle) -> Fid:
        """The opened fid of `handle` on the current connection, reopened if need be."""
        s = await self.remote.session()
        if _live(handle.fid, s):
            return handle.fid
        fid = await self._open_node(handle.node, handle.flags)
        if _live(handle.fid, s):
            self._drop(fid)
            return handle.fid
        log.info("reopened %r", handle.node)
        handle.fid = fid
        if isinstance(handle, DirHandle):
            handle.ahead.clear()
        return fid

    async def _open_node(self, node: Node, flags: int) -> Fid:
        fid = await (await self._fid(node)).clone()
        try:
            await fid.open(flags)
        except BaseException:
            self._drop(fid)
            raise
        return fid

    def _drop(self, fid: Fid | None) -> None:
        """Clunk `fid` in the background."""
        if fid is not None and fid.fid is not None and not fid.client.closed:
            self.nursery.start_soon(_clunk, fid)

    async def _found(self, parent: Node, name: str, fid: Fid) -> pyfuse3.EntryAttributes:
        """Count a lookup of `name` in `parent`, just walked to with `fid`; its attributes."""
        try:
            attr = await fid.getattr()
        except BaseException:
            self._drop(fid)
            raise
        node, spare = self.inodes.add(parent, name, attr.qid.path, fid)
        self._drop(spare)
        return self._entry(node.ino, attr)

    async def _made(
        self, parent: Node, dir_fid: Fid, name: str, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        """The entry of `name`, just made in `parent` by the caller of `ctx`."""
        fid = await dir_fid.walk(name)
        try:
            await self._give_to_caller(fid, ctx)
        except BaseException:
            self._drop(fid)
            raise
        return await self._found(parent, name, fid)

    async def _give_to_caller(self, fid: Fid, ctx: pyfuse3.RequestContext) -> None:
        """Make the caller the owner of what it made (the server made it the attaching user's).

        The group came with the request. Best effort: a server not run as root cannot.
        """
        if ctx.uid == self.remote.uid:
            return
        try:
            await fid.setattr(uid=ctx.uid)
        except PermissionError as e:
            log.debug("cannot give %r to uid %d: %s", fid, ctx.uid, e)

    async def _qid_of(self, dir_fid: Fid, name: str) -> Qid | None:
        """The qid of `name` in a directory, None if there is no such name."""
        try:
            fid = await dir_fid.walk(name)
        except FileNotFoundError:
            return None
        self._drop(fid)
        return fid.qid

    def _wire_flags(self, flags: int) -> int:
        wire = convert.open_flags(flags)
        if self.enable_writeback_cache:
            # The kernel reads pages of write-only files to fill them, and does O_APPEND itself.
            if wire & OpenFlag.ACCMODE == OpenFlag.WRONLY:
                wire = wire & ~OpenFlag.ACCMODE | OpenFlag.RDWR
            wire &= ~OpenFlag.APPEND
        return wire

    # ---- lookups and attributes ----

    @_op
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent = self._node(parent_inode)
        text = _str(name)
        dir_fid = await self._fid(parent)
        try:
            fid = await dir_fid.walk(text)
        except FileNotFoundError:
            if not self.options.negative_timeout:
                raise
            negative = pyfuse3.EntryAttributes()
            negative.st_ino = 0
            negative.entry_timeout = self.options.negative_timeout
            return negative
        return await self._found(parent, text, fid)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        try:
            for ino, count in inode_list:
                self._drop(self.inodes.forget(ino, count))
        except Exception:  # forget has nobody to report to
            log.exception("forget failed")

    @_op
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self._node(inode)
        return self._entry(node.ino, await (await self._fid(node)).getattr())

    @_op
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        node = self._node(inode)
        fid = await (self._open_fid(self.handles.get(fh)) if fh is not None else self._fid(node))
        await fid.setattr(
            mode=attr.st_mode & 0o7777 if fields.update_mode else None,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
            size=attr.st_size if fields.update_size else None,
            atime=attr.st_atime_ns if fields.update_atime else None,
            mtime=attr.st_mtime_ns if fields.update_mtime else None,
            ctime=fields.update_ctime,
        )
        return self._entry(node.ino, await fid.getattr())

    @_op
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        return convert.statvfs(await (await self._fid(self.inodes.root)).statfs())

    # ---- making and removing names ----

    @_op
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent, text = self._node(parent_inode), _str(name)
        dir_fid = await self._fid(parent)
        await dir_fid.mkdir(text, mode, ctx.gid)
        return await self._made(parent, dir_fid, text, ctx)

    @_op
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent, text = self._node(parent_inode), _str(name)
        dir_fid = await self._fid(parent)
        await dir_fid.mknod(text, mode, os.major(rdev), os.minor(rdev), ctx.gid)
        return await self._made(parent, dir_fid, text, ctx)

    @_op
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent, text = self._node(parent_inode), _str(name)
        dir_fid = await self._fid(parent)
        await dir_fid.symlink(text, _str(target), ctx.gid)
        return await self._made(parent, dir_fid, text, ctx)

    @_op
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        node, parent, text = self._node(inode), self._node(new_parent_inode), _str(new_name)
        fid = await self._fid(node)
        await (await self._fid(parent)).link(fid, text)
        attr = await fid.getattr()
        self.inodes.add(parent, text, attr.qid.path, None)
        return self._entry(node.ino, attr)

    @_op
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return _bytes(await (await self._fid(self._node(inode))).readlink())

    @_op
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await (await self._fid(self._node(parent_inode))).unlinkat(_str(name))

    @_op
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await (await self._fid(self._node(parent_inode))).unlinkat(_str(name), AT_REMOVEDIR)

    @_op
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        if flags & ~pyfuse3.RENAME_NOREPLACE:  # RENAME_EXCHANGE: 9P cannot do it atomically
            raise pyfuse3.FUSEError(errno.EINVAL)
        old_parent, new_parent = self._node(parent_inode_old), self._node(parent_inode_new)
        old, new = _str(name_old), _str(name_new)
        old_dir, new_dir = await self._fid(old_parent), await self._fid(new_parent)
        if flags & pyfuse3.RENAME_NOREPLACE:
            # Checked by a walk first: another client may create `new` before the rename.
            there = await self._qid_of(new_dir, new)
            if there is not None:
                source = await self._qid_of(old_dir, old)
                if source is None or source.path != there.path:  # the same file: a case change
                    raise pyfuse3.FUSEError(errno.EEXIST)
        await old_dir.renameat(old, new_dir, new)
        self.nursery.start_soon(self._follow_rename, new_dir, new_parent, new)

    async def _follow_rename(self, dir_fid: Fid, parent: Node, name: str) -> None:
        """Record the new path of the file renamed to `name` (for walks after a reconnection)."""
        try:
            moved = await self._qid_of(dir_fid, name)
        except OSError as e:
            log.debug("after renaming to %r: %s", name, e)
            return
        node = self.inodes.find(self.inodes.ino(moved.path)) if moved is not None else None
        if node is not None:
            self.inodes.moved(node, parent, name)

    # ---- files ----

    @_op
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self._node(inode)
        wire = self._wire_flags(flags)
        try:
            fid, attr = await self._open_and_stat(node, wire)
        except PermissionError:
            if wire == convert.open_flags(flags):
                raise
            wire = convert.open_flags(flags)  # write-only after all: no writeback reads
            fid, attr = await self._open_and_stat(node, wire)
        # The kernel may keep its cached pages if mtime and size are as when last opened.
        current = convert.stamp(attr) if attr is not None else None
        keep = current is not None and node.stamp == current
        node.stamp = current
        fh = self.handles.add(Handle(node, wire & convert.REOPEN_MASK, fid))
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

    async def _open_and_stat(self, node: Node, wire: int) -> tuple[Fid, Attr | None]:
        """Open `node`, and fetch its attributes meanwhile (None with O_TRUNC, or on error).

        A file another client removed or replaced since the kernel cached its
        name has no link left (close-to-open consistency, with no request more):
        ESTALE makes the kernel look the name up again and retry the open
        (Linux retries an open that fails so, once).
        """
        node_fid = await self._fid(node)
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
                fid = await self._open_node(node, wire)
            except OSError as e:  # raised below, not wrapped in an ExceptionGroup
                failure = e
        if failure is not None:
            raise failure
        if attr is not None and attr.nlink == 0:
            self._drop(fid)
            raise _stale("/".join(node.path()))
        return fid, None if wire & OpenFlag.TRUNC else attr

    @_op
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        parent, text = self._node(parent_inode), _str(name)
        wire = self._wire_flags(flags)
        dir_fid = await self._fid(parent)
        fid = await dir_fid.clone()
        walked: list[Fid] = []  # the node's own fid
        attrs: list[Attr] = []

        async def walk() -> None:
            walked.append(await dir_fid.walk(text))

        async def stat() -> None:
            attrs.append(await fid.getattr())

        try:
            await fid.create(text, wire, mode, ctx.gid)
            await self._give_to_caller(fid, ctx)
            await _together(walk, stat)
        except BaseException:
            for f in (fid, *walked):
                self._drop(f)
            raise
        attr = attrs[0]
        node, spare = self.inodes.add(parent, text, attr.qid.path, walked[0])
        self._drop(spare)
        node.stamp = convert.stamp(attr)
        fh = self.handles.add(Handle(node, wire & convert.REOPEN_MASK, fid))
        return pyfuse3.FileInfo(fh=fh), self._entry(node.ino, attr)

    @_op
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await (await self._open_fid(self.handles.get(fh))).read(off, size)

    @_op
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self.handles.get(fh)
        handle.wrote = True
        return await (await self._open_fid(handle)).write(off, buf)

    @_op
    async def flush(self, fh: int) -> None:
        self.handles.get(fh)  # writes are already on the server: nothing to push

    @_op
    async def fsync(self, fh: int, datasync: bool) -> None:
        await (await self._open_fid(self.handles.get(fh))).fsync(datasync)

    @_op
    async def release(self, fh: int) -> None:
        handle = self.handles.pop(fh)
        await self.locks.release(fh)
        try:
            if handle.wrote:  # the kernel's pages hold what was written: they stay valid
                handle.node.stamp = convert.stamp(await handle.fid.getattr())
        except OSError:
            handle.node.stamp = None
        finally:
            self._drop(handle.fid)

    # ---- locks (called only by a pyfuse3 with lock handlers) ----

    @_op
    async def getlk(
        self, fh: int, owner: int, lock_type: int, start: int, length: int, pid: int
    ) -> tuple[int, int, int, int]:
        handle = self.handles.get(fh)
        opened = await self._open_fid(handle)
        key: Key = (handle.node.ino, "posix", owner)
        return await self.locks.get(opened, key, lock_type, (start, length), pid)

    @_op
    async def setlk(
        self, fh: int, owner: int, lock_type: int, start: int, length: int, pid: int, sleep: bool
    ) -> None:
        handle = self.handles.get(fh)
        key: Key = (handle.node.ino, "posix", owner)
        await self._lock(handle, fh, key, lock_type, (start, length), pid, sleep)

    @_op
    async def flock(self, fh: int, owner: int, op: int) -> None:
        handle = self.handles.get(fh)
        lock_type, wait = flock_type(op)
        key: Key = (handle.node.ino, "flock", owner)
        await self._lock(handle, fh, key, lock_type, (0, 0), 0, wait)

    async def _lock(
        self,
        handle: Handle,
        fh: int,
        key: Key,
        lock_type: int,
        span: tuple[int, int],
        pid: int,
        wait: bool,
    ) -> None:
        """Set or clear a lock, keeping the kernel's caches coherent with other clients.

        A lock is how another client's changes are ordered with ours: what the
        kernel cached of the file before it was granted may be stale, so it is
        dropped; with the writeback cache, dirty pages reach the server before
        an unlock lets anyone else in.
        """
        unlock = lock_type == fcntl.F_UNLCK
        if unlock and self.options.writeback_cache and self.locks.holds(key):
            await _invalidate(handle.node.ino)  # not at each close of a file never locked
        await self.locks.set(handle, fh, key, lock_type, span, pid, wait)
        if not unlock:
            await _invalidate(handle.node.ino)

    # ---- directories ----

    @_op
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self._node(inode)
        fid = await self._open_node(node, _DIR_FLAGS)
        return self.handles.add(DirHandle(node, _DIR_FLAGS, fid))

    @_op
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        handle = self.handles.get(fh)
        assert isinstance(handle, DirHandle)
        fid = await self._open_fid(handle)
        if start_id != handle.offset:  # a seek: forget what was read ahead
            self._discard_ahead(handle)
            handle.offset = start_id
        while True:
            if not handle.ahead:
                chunk = await fid.readdir_chunk(handle.offset, fid.client.iosize)
                if not chunk:
                    return
                handle.ahead.extend(Listed(d) for d in chunk)
            await self._fetch_attrs(handle)
            while handle.ahead and handle.ahead[0].done:
                item = handle.ahead[0]
                attrs = self._listed_entry(handle, item)
                name = _bytes(item.dirent.name)
                if attrs is not None and not pyfuse3.readdir_reply(
                    token, name, attrs, item.dirent.offset
                ):
                    return
                handle.ahead.popleft()
                handle.offset = item.dirent.offset
                if attrs is not None and item.dirent.name not in (".", ".."):
                    qid = item.attr.qid if item.attr is not None else item.dirent.qid
                    _, spare = self.inodes.add(handle.node, item.dirent.name, qid.path, item.fid)
                    self._drop(spare)

    def _listed_entry(self, handle: DirHandle, item: Listed) -> pyfuse3.EntryAttributes | None:
        """The attributes to list `item` with (None: it vanished, skip it)."""
        name, ino = item.dirent.name, self.inodes.ino(item.dirent.qid.path)
        if name in (".", ".."):
            return convert.dot_entry(ino, 0o40000)
        if item.attr is not None:
            return self._entry(self.inodes.ino(item.attr.qid.path), item.attr)
        if item.error is None:
            return None
        # Listed but not reachable: shown with its type, asked again on use.
        return convert.entry_unknown(ino, item.dirent.type)

    async def _fetch_attrs(self, handle: DirHandle) -> None:
        """Fetch the attributes of the next READDIR_BATCH entries, all at once."""
        todo = [i for i in itertools.islice(handle.ahead, READDIR_BATCH) if not i.done]
        if not todo:
            return
        dir_fid = await self._fid(handle.node)
        async with trio.open_nursery() as nursery:
            for item in todo:
                nursery.start_soon(self._fetch_attr, dir_fid, item)
        for item in todo:
            if item.error is not None and item.error.errno == errno.ENOTCONN:
                raise item.error

    async def _fetch_attr(self, dir_fid: Fid, item: Listed) -> None:
        name = item.dirent.name
        try:
            if name in (".", ".."):
                return
            known = self.inodes.get(self.inodes.ino(item.dirent.qid.path))
            if known is not None and known.fid is not None and known.fid.client is dir_fid.client:
                try:
                    item.attr = await known.fid.getattr()
                    if item.attr.qid.path == item.dirent.qid.path:
                        return
                except OSError:
                    pass
            item.fid = await dir_fid.walk(name)
            item.attr = await item.fid.getattr()
        except FileNotFoundError:
            item.attr = None  # removed since it was listed
        except OSError as e:
            item.attr, item.error = None, e
        finally:
            item.done = True

    def _discard_ahead(self, handle: DirHandle) -> None:
        for item in handle.ahead:
            self._drop(item.fid)
        handle.ahead.clear()

    @_op
    async def releasedir(self, fh: int) -> None:
        handle = self.handles.pop(fh)
        assert isinstance(handle, DirHandle)
        self._discard_ahead(handle)
        self._drop(handle.fid)

    @_op
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        await (await self._open_fid(self.handles.get(fh))).fsync(datasync)

    # ---- extended attributes ----

    @_op
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return await (await self._fid(self._node(inode))).getxattr(_str(name))

    @_op
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        # An empty value removes the attribute: 9P2000.L has no other meaning for size 0.
        await (await self._fid(self._node(inode))).setxattr(_str(name), value)

    @_op
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return [_bytes(n) for n in await (await self._fid(self._node(inode))).listxattr()]

    @_op
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await (await self._fid(self._node(inode))).removexattr(_str(name))


def _live(fid: Fid | None, s: Session) -> TypeGuard[Fid]:
    """Whether `fid` is usable on session `s`."""
    return fid is not None and fid.fid is not None and s.owns(fid)


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


async def _invalidate(ino: int) -> None:
    """Drop the kernel's cached data and attributes of inode `ino`, writing dirty pages back.

    In a worker thread: with the writeback cache the call waits for the writes,
    which this event loop must serve meanwhile.
    """

    def invalidate() -> None:
        try:
            pyfuse3.invalidate_inode(ino)
        except OSError as e:  # ENOENT: the kernel holds nothing of it
            log.debug("invalidating inode %d: %s", ino, e)

    await trio.to_thread.run_sync(invalidate)


async def _clunk(fid: Fid) -> None:
    try:
        await fid.clunk()
    except OSError as e:
        log.debug("clunk of %r: %s", fid, e)
