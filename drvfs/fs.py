"""The FUSE filesystem: each pyfuse3 operation done with 9P2000.L requests.

Every operation runs as its own trio task (pyfuse3 runs many at once), and
they all share one connection, on which the client keeps many requests in
flight. Errors reach the application with the server's errno; a lost
connection gives ENOTCONN (see `drvfs.remote`), and after a reconnection
nodes and open files are walked to again by path, and reopened
(`drvfs.resolver`). Opening is in `drvfs.opening`, listing in
`drvfs.readahead`, locks in `drvfs.coherence`.

POSIX locks and flock are held on the server, where the installed pyfuse3 has
lock handlers (`third_party/pyfuse3`); with a pyfuse3 without them the kernel
keeps locks itself, for this one mount.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable, Sequence

import pyfuse3
import trio

from ninep.client import Attr, Fid, make_setattr
from ninep.constants import AT_REMOVEDIR, NOTIFY_COVERED, OpenFlag, SetattrMask

from . import convert
from .coherence import CaseVariants, CoherentLocks
from .directories import Directories
from .entries import Entries, Made
from .inodes import ROOT, Inode, InodeTable
from .mounts import ESCAPE_XATTR
from .notified import Coverage, Notifications
from .openfiles import OpenDir, OpenFileTable
from .opening import Opener
from .operation import name_bytes, name_str, operation
from .options import MountOptions
from .readahead import DirReader
from .remote import Attachment, Remote
from .resolver import FidResolver, stale

log = logging.getLogger("drvfs")

_DIR_FLAGS = int(OpenFlag.RDONLY | OpenFlag.DIRECTORY)
# opendir may answer a FileInfo with cache_readdir (third_party/pyfuse3/cache-readdir.patch)
_CACHE_READDIR = getattr(pyfuse3, "CACHE_READDIR_SUPPORTED", False)


class DrvFs(pyfuse3.Operations):
    """A 9P2000.L export as a FUSE filesystem."""

    supports_dot_lookup = False  # no NFS export: the kernel resolves `.` and `..` itself

    def __init__(
        self,
        remote: Remote,
        attachment: Attachment,
        options: MountOptions,
        nursery: trio.Nursery,
        on_init: Callable[[], None] = lambda: None,
        escape: bool = False,
    ) -> None:
        super().__init__()
        self._on_init = on_init
        self._escape = escape  # the server escapes names (mounts.ESCAPE_XATTR)
        self._options = options
        self.enable_writeback_cache = options.writeback_cache
        self.inodes = InodeTable(attachment.root.qid.path)
        self._files = OpenFileTable()
        self.fids = FidResolver(remote, self.inodes, nursery)
        self.coverage = Coverage(options.covered_timeout)
        self.directories = Directories(self.coverage, options.attr_timeout, options.covered_timeout)
        self.notifications = Notifications(remote, self.inodes, self.coverage, self.directories)
        self._nursery = nursery
        self._entries = Entries(self.fids, options, self.coverage)
        self._opener = Opener(self.fids, self._entries, options.writeback_cache)
        self._dirs = DirReader(self.fids, self._entries, self.directories)
        self._locks = CoherentLocks(self.fids, options.writeback_cache)
        self._variants = CaseVariants(self.inodes, nursery)

    def init(self) -> None:
        """The kernel's INIT is answered: the mount is usable (and can be invalidated): the
        server's changes are followed from now on (`drvfs.notified`)."""
        if self._options.covered_timeout:
            self._nursery.start_soon(self.notifications.run)
        try:
            self._on_init()
        except Exception:
            log.exception("init callback failed")

    async def _fid_of(self, ino: int) -> Fid:
        """The fid of inode `ino` on the current connection."""
        return await self.fids.fid(self.fids.node(ino))

    # ---- lookups and attributes ----

    @operation
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent = self.fids.node(parent_inode)
        text = name_str(name)
        if self.directories.missing(parent, text):  # known, in a covered directory
            return self._missing(parent, text)
        dir_fid = await self.fids.fid(parent)
        since = parent.changes
        try:
            fid, attr = await dir_fid.walk_getattr(text)  # one round trip where extended
        except FileNotFoundError:
            self.directories.missed(parent, text, since)
            return self._missing(parent, text)
        return self._entries.found(parent, text, fid, attr)

    def _missing(self, parent: Inode, name: str) -> pyfuse3.EntryAttributes:
        """The answer to a lookup of `name`, missing from `parent`: ENOENT, or with
        `negative_timeout` a negative entry the kernel keeps that long."""
        if not self._options.negative_timeout:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        self.inodes.named(parent.ino, name, 0)  # its case variants made later drop it
        negative = pyfuse3.EntryAttributes()
        negative.st_ino = 0
        negative.entry_timeout = self._options.negative_timeout
        return negative

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        try:
            for ino, count in inode_list:
                self.fids.drop(self.inodes.forget(ino, count))
                if self.inodes.get(ino) is None:
                    self.directories.forget(ino)
        except Exception:  # forget has nobody to report to
            log.exception("forget failed")

    @operation
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self.fids.node(inode)
        if not node.files:  # else perhaps an fstat: the name may be gone, the file is not
            self._check_variants(node)
        fresh = self.directories.attributes(node)  # the directory's after this mount's change
        return self._entries.entry(inode, fresh or await self.fids.stat(node))

    def _check_variants(self, node: Inode) -> None:
        """ESTALE if the kernel may have reached `node` by a stale case variant of its name
        (`CaseVariants`): the kernel then looks the name up again."""
        if self._variants.stale_once(node.ino):
            raise stale("/".join(node.path()))

    @operation
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        """With `fh` (ftruncate), on that open file's fid. A size change by name
        (truncate(2)) on the node's own fid: the server lets a fid opened for writing
        truncate without write permission, as ftruncate(2). Any other on an open file's
        fid while the node has one (`FidResolver.on_file`): fchmod and futimens of a file
        unlinked or renamed while open; tar sets the times, owner and mode of the file it
        just made while it is open, which then needs no fid of its own."""
        node = self.fids.node(inode)
        changes = make_setattr(
            mode=attr.st_mode & 0o7777 if fields.update_mode else None,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
            size=attr.st_size if fields.update_size else None,
            atime=attr.st_atime_ns if fields.update_atime else None,
            mtime=attr.st_mtime_ns if fields.update_mtime else None,
            ctime=fields.update_ctime,
        )
        self.directories.touched(node)
        if fh is not None:
            fid = await self.fids.opened(self._files.get(fh))
            done = await fid.setattr_getattr(changes)
        elif changes.valid & SetattrMask.SIZE:
            done = await (await self.fids.fid(node)).setattr_getattr(changes)
        else:
            done = await self.fids.on_file(node, lambda fid: fid.setattr_getattr(changes))
        return self._entries.entry(node.ino, done)

    @operation
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        return convert.statvfs(await (await self.fids.fid(self.inodes.root)).statfs())

    # ---- making and removing names ----

    @operation
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        empty = False

        async def make(d: Fid, n: str) -> Made:
            nonlocal empty
            made = await d.mkdir_attrs(n, mode, ctx.gid, fid=True)
            empty = bool(made[1].valid & NOTIFY_COVERED)  # watched while still empty
            return made

        entry = await self._make(parent_inode, name, ctx, make)
        if empty:
            self.directories.made_empty(entry.st_ino)
        return entry

    @operation
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        major, minor = os.major(rdev), os.minor(rdev)

        async def make(d: Fid, n: str) -> Made:
            return (*await d.mknod_attrs(n, mode, major, minor, ctx.gid), None)

        return await self._make(parent_inode, name, ctx, make)

    @operation
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        to = name_str(target)

        async def make(d: Fid, n: str) -> Made:
            return (*await d.symlink_attrs(n, to, ctx.gid), None)

        return await self._make(parent_inode, name, ctx, make)

    async def _make(
        self,
        parent_inode: int,
        name: bytes,
        ctx: pyfuse3.RequestContext,
        make: Callable[[Fid, str], Awaitable[Made]],
    ) -> pyfuse3.EntryAttributes:
        """Make `name` with `make(dir_fid, name)`; its entry, the caller's (`Entries.made`)."""
        parent, text = self.fids.node(parent_inode), name_str(name)
        dir_fid = await self.fids.fid(parent)
        await self._variants.changed(parent.ino, text)
        change = self.directories.change(parent, added=text)
        entry, dattr = await self._entries.made(
            parent, dir_fid, text, ctx, lambda: make(dir_fid, text)
        )
        change.done(dattr)
        return entry

    @operation
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        node, parent = self.fids.node(inode), self.fids.node(new_parent_inode)
        text = name_str(new_name)
        fid = await self.fids.fid(node)
        dir_fid = await self.fids.fid(parent)
        change = self.directories.change(parent, added=text)
        attr, dattr = await dir_fid.link_attrs(fid, text)
        change.done(dattr)
        await self._variants.changed(parent.ino, text)
        self.fids.count_lookup(parent, text, attr.qid.path, None)
        return self._entries.entry(node.ino, attr)

    @operation
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return name_bytes(await (await self._fid_of(inode)).readlink())

    @operation
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, 0)

    @operation
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, AT_REMOVEDIR)

    async def _remove(self, parent_inode: int, name: bytes, flags: int) -> None:
        text = name_str(name)
        try:
            parent = self.fids.node(parent_inode)
            dir_fid = await self.fids.fid(parent)
            if flags & AT_REMOVEDIR:
                await self._hold(parent_inode, text)
            change = self.directories.change(parent, removed=text)
            try:
                dattr = await dir_fid.unlinkat_attrs(text, flags)
            except OSError as e:  # a server without Tunlinkat (diod): Tremove, as the kernel
                if e.errno != errno.EOPNOTSUPP:
                    raise
                await (await dir_fid.walk(text)).remove()
                dattr = None
            change.done(dattr)
        finally:  # even on failure: whether it was removed is not known for sure
            await self._variants.changed(parent_inode, text)

    async def _hold(self, parent_inode: int, name: str) -> None:
        """Give the node the kernel knows as `name` a fid of its own, if it has none, before
        the name goes: the kernel may still ask for its attributes (a directory that is a
        process's working directory: nlink 0 after rmdir, as on a local filesystem), and
        its name will lead nowhere."""
        node = self.inodes.get(self.inodes.ino_named(parent_inode, name) or 0)
        if node is not None:
            try:
                await self.fids.fid(node)
            except OSError as e:  # not the kernel's file any more: nothing to hold
                log.debug("holding %r: %s", node, e)

    @operation
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
        old_parent, new_parent = self.fids.node(parent_inode_old), self.fids.node(parent_inode_new)
        old, new = name_str(name_old), name_str(name_new)
        old_dir, new_dir = await self.fids.fid(old_parent), await self.fids.fid(new_parent)
        if flags & pyfuse3.RENAME_NOREPLACE:
            # Checked by a walk first: another client may create `new` before the rename.
            there = await self.fids.qid_of(new_dir, new)
            if there is not None:
                source = await self.fids.qid_of(old_dir, old)
                if source is None or source.path != there.path:  # the same file: a case change
                    raise pyfuse3.FUSEError(errno.EEXIST)
        moving = self.inodes.ino_named(old_parent.ino, old)
        try:
            if old_parent is new_parent:
                within = self.directories.change(old_parent, added=new, removed=old)
                dattrs = await self._rename(old_dir, old, new_dir, new, moving)
                within.done(dattrs[1])
            else:
                out = self.directories.change(old_parent, removed=old)
                into = self.directories.change(new_parent, added=new)
                dattrs = await self._rename(old_dir, old, new_dir, new, moving)
                out.done(dattrs[0])
                into.done(dattrs[1])
        finally:
            await self._variants.changed(old_parent.ino, old)
            await self._variants.changed(new_parent.ino, new)
        node = self.inodes.find(moving) if moving is not None else None
        if node is not None:  # the kernel's name of it: known at once
            self.directories.touched(node)  # its ctime
            self.inodes.moved(node, new_parent, new)
        else:
            self.fids.nursery.start_soon(self._follow_rename, new_dir, new_parent, new)

    async def _rename(
        self, old_dir: Fid, old: str, new_dir: Fid, new: str, moving: int | None
    ) -> tuple[Attr | None, Attr | None]:
        """Rename; the attributes of both directories after it, where the server gave them."""
        try:
            return await old_dir.renameat_attrs(old, new_dir, new)
        except OSError as e:  # a server without Trenameat (diod): Trename, as the kernel
            if e.errno != errno.EOPNOTSUPP:
                raise
            await self._rename_by_fid(old_dir, old, new_dir, new, moving)
            return None, None

    async def _rename_by_fid(
        self, old_dir: Fid, old: str, new_dir: Fid, new: str, moving: int | None
    ) -> None:
        """Trename of the file's own fid where it has one: a server whose fids are paths
        (diod) moves that fid's path with the file, not the others'."""
        node = self.inodes.find(moving) if moving is not None else None
        if node is not None and node.fid is not None and node.fid.fid is not None:
            try:
                await node.fid.rename(new_dir, new)
                return
            except ConnectionError:
                raise
            except OSError:
                pass  # a fid of another connection, or stale: by a walk
        async with await old_dir.walk(old) as fid:
            await fid.rename(new_dir, new)

    async def _follow_rename(self, dir_fid: Fid, parent: Inode, name: str) -> None:
        """Record the new path of the file renamed to `name` (for walks after a reconnection)."""
        try:
            moved = await self.fids.qid_of(dir_fid, name)
        except OSError as e:
            log.debug("after renaming to %r: %s", name, e)
            return
        node = self.inodes.find(self.inodes.ino(moved.path)) if moved is not None else None
        if node is not None:
            self.inodes.moved(node, parent, name)

    # ---- files ----

    @operation
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self.fids.node(inode)
        self._check_variants(node)
        file, keep = await self._opener.open(node, flags)
        return pyfuse3.FileInfo(fh=self._files.add(file), keep_cache=keep)

    @operation
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        parent, text = self.fids.node(parent_inode), name_str(name)
        await self._variants.changed(parent.ino, text)
        change = self.directories.change(parent, added=text)
        file, attr, dattr = await self._opener.create(parent, text, mode, flags, ctx)
        change.done(dattr)
        return pyfuse3.FileInfo(fh=self._files.add(file)), self._entries.entry(file.node.ino, attr)

    @operation
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await (await self.fids.opened(self._files.get(fh))).read(off, size)

    @operation
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        file = self._files.get(fh)
        file.wrote = True
        return await (await self.fids.opened(file)).write(off, buf)

    # No flush: writes are already on the server. pyfuse3 then releases the closing
    # owner's POSIX locks at FLUSH, and answers it without Python where it may hold none.

    @operation
    async def fsync(self, fh: int, datasync: bool) -> None:
        await (await self.fids.opened(self._files.get(fh))).fsync(datasync)

    @operation
    async def release(self, fh: int) -> None:
        file = self._files.pop(fh)
        await self._locks.release(fh)
        try:
            if file.wrote and file.fid is not None:  # the kernel's pages hold what was written
                file.node.stamp = convert.stamp(await file.fid.getattr())
        except OSError:
            file.node.stamp = None
        finally:
            self.fids.release(file)

    # ---- locks (called only by a pyfuse3 with lock handlers) ----

    @operation
    async def getlk(
        self, fh: int, owner: int, lock_type: int, start: int, length: int, pid: int
    ) -> tuple[int, int, int, int]:
        return await self._locks.getlk(self._files.get(fh), owner, lock_type, (start, length), pid)

    @operation
    async def setlk(
        self, fh: int, owner: int, lock_type: int, start: int, length: int, pid: int, sleep: bool
    ) -> None:
        file = self._files.get(fh)
        await self._locks.setlk(file, fh, owner, lock_type, (start, length), pid, sleep)

    @operation
    async def flock(self, fh: int, owner: int, op: int) -> None:
        await self._locks.flock(self._files.get(fh), fh, owner, op)

    # ---- directories ----

    @operation
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int | pyfuse3.FileInfo:
        """An open directory. The kernel caches the listing of a covered one (where the
        installed pyfuse3 can tell it to): its fid is opened at the first readdir, which a
        cached listing never makes. Every change of its names drops the cache: this mount's
        own (the kernel's), the others' (`drvfs.notified`)."""
        node = self.fids.node(inode)
        if _CACHE_READDIR and self.coverage.covered(inode):
            fh = self._files.add(OpenDir(node, _DIR_FLAGS, None))
            return pyfuse3.FileInfo(fh=fh, keep_cache=True, cache_readdir=True)
        fid = await self.fids.open(node, _DIR_FLAGS)
        return self._files.add(OpenDir(node, _DIR_FLAGS, fid))

    @operation
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        await self._dirs.readdir(self._files.get_dir(fh), start_id, token)

    @operation
    async def releasedir(self, fh: int) -> None:
        directory = self._files.get_dir(fh)
        self._files.pop(fh)
        self._dirs.discard(directory)
        self.fids.release(directory)

    @operation
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        await (await self.fids.opened(self._files.get(fh))).fsync(datasync)

    # ---- extended attributes ----

    @operation
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        """The kernel asks security.capability before each write and chown: asked once
        per connection where the server refuses it for every file."""
        key = name_str(name)
        if inode == ROOT and key == ESCAPE_XATTR:
            return b"1" if self._escape else b"0"
        a = await self.fids.remote.attachment()
        if a.xattr_refused(key):
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP), key)
        try:
            return await (await self._fid_of(inode)).getxattr(key)
        except OSError as e:
            a.refused(key, e)
            raise

    @operation
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        # An empty value removes the attribute: 9P2000.L has no other meaning for size 0.
        self.directories.touched(self.fids.node(inode))  # its ctime
        await (await self._fid_of(inode)).setxattr(name_str(name), value)

    @operation
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return [name_bytes(n) for n in await (await self._fid_of(inode)).listxattr()]

    @operation
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.directories.touched(self.fids.node(inode))  # its ctime
        await (await self._fid_of(inode)).removexattr(name_str(name))
