"""One object of the export (a `File`): held by an O_PATH fd, never by a path string.

A Node's `_Entry` holds the object's `O_PATH | O_NOFOLLOW` fd, plus the entry of
the directory it was reached from and its name there, for the two requests
that name an object by itself (Trename, Tremove). Entries are shared by clones
and kept alive by their children, and counted: the fd closes with the last
reference. `..` follows this chain, so no walk leaves the root of its attach.

Operations on the object itself go through its fd: `os.stat(fd)`, or the
`/proc/self/fd/N` path for calls that need a path or a non-O_PATH fd; the
kernel resolves that path to the object without following it further, so host
symlinks are acted on as symlinks, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from dataclasses import dataclass
from functools import partial

from ninep.backend import Attr, File, Handle, SetAttr, StatFs, User
from ninep.constants import AT_REMOVEDIR, XATTR_CREATE, XATTR_REPLACE, OpenFlag, SetattrMask
from ninep.messages import Qid

from .attrs import attr_of, qid_of, statfs_of, time_ns
from .handle import VolHandle
from .hostio import bad_values_are_einval, host_open_flags, in_thread, proc_path
from .names import check_name, check_new_name, lookup
from .options import AttachOptions


@dataclass(frozen=True, slots=True)
class Tree:
    """What the Files of one attach share."""

    export: object  # objects of different exports never meet (EXDEV)
    options: AttachOptions
    user: User


class _Entry:
    """An O_PATH fd on one host object, its parent entry and its name there; counted."""

    __slots__ = ("fd", "name", "parent", "refs")

    def __init__(self, fd: int, parent: _Entry | None = None, name: str = "") -> None:
        self.fd = fd
        self.parent = parent.retain() if parent is not None else None
        self.name = name
        self.refs = 1

    def retain(self) -> _Entry:
        self.refs += 1
        return self

    def release(self) -> None:
        entry: _Entry | None = self
        while entry is not None:
            entry.refs -= 1
            if entry.refs > 0:
                return
            os.close(entry.fd)
            entry = entry.parent

    def move(self, parent: _Entry, name: str) -> None:
        """Record that the object is now `name` in `parent` (after a rename)."""
        old, self.parent, self.name = self.parent, parent.retain(), name
        if old is not None:
            old.release()


class Node:
    """One object of the export, as a fid refers to it."""

    def __init__(self, tree: Tree, entry: _Entry, qid: Qid) -> None:
        self._tree = tree
        self._entry = entry
        self._qid = qid
        self._closed = False

    @classmethod
    def root(cls, tree: Tree, fd: int) -> Node:
        """The root of an attach, taking over the O_PATH fd `fd` of a directory."""
        entry = _Entry(fd)
        try:
            st = os.stat(fd)
            if not stat.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, "export root is not a directory")
        except BaseException:
            entry.release()
            raise
        return cls(tree, entry, qid_of(st))

    @property
    def qid(self) -> Qid:
        return self._qid

    def _live(self) -> _Entry:
        if self._closed:
            raise OSError(errno.EBADF, "file is closed")
        return self._entry

    @property
    def _fd(self) -> int:
        return self._live().fd

    def _stat(self) -> os.stat_result:
        return os.stat(self._fd)

    def _writable(self) -> None:
        if self._tree.options.read_only:
            raise OSError(errno.EROFS, "read-only export")

    def _peer(self, other: File) -> Node:
        """`other` as a Node of the same export (EXDEV otherwise)."""
        if not isinstance(other, Node) or other._tree.export is not self._tree.export:
            raise OSError(errno.EXDEV, "not in the same export")
        return other

    def _adopt(self, fd: int, name: str) -> Node:
        """A Node taking over `fd`, the O_PATH fd of entry `name` of this directory."""
        entry = _Entry(fd, self._entry, name)
        try:
            return Node(self._tree, entry, qid_of(os.stat(fd)))
        except BaseException:
            entry.release()
            raise

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            self._entry.release()

    def _settle(self, mode: int | None, gid: int) -> None:
        """Give a new object the attaching user, group `gid` and exactly `mode` (no umask)."""
        path = proc_path(self._fd)
        with contextlib.suppress(PermissionError):  # a server not run as root keeps ownership
            os.chown(path, self._tree.user.uid, gid)
        if mode is not None:
            os.chmod(path, mode & 0o7777)

    def _made(self, name: str, mode: int | None, gid: int) -> Qid:
        """Settle the object just made as `name` here; its qid."""
        node = self._adopt(lookup(self._fd, name), name)
        try:
            node._settle(mode, gid)
            return node.qid
        finally:
            node._release()

    def _where(self) -> tuple[_Entry, str]:
        """The parent entry and name of this object, checked to still name it."""
        entry = self._live()
        if entry.parent is None:
            raise OSError(errno.EBUSY, "the root of the export")
        mine = self._stat()
        try:
            there = os.stat(entry.name, dir_fd=entry.parent.fd, follow_symlinks=False)
        except FileNotFoundError:
            there = None
        if there is None or (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
            raise OSError(errno.ENOENT, f"{entry.name!r} was moved or removed by another path")
        return entry.parent, entry.name

    # ---- the File interface ----

    async def walk(self, name: str) -> Node:
        check_name(name)
        if name not in (".", ".."):
            return self._adopt(lookup(self._fd, name), name)
        if not stat.S_ISDIR(self._stat().st_mode):
            raise OSError(errno.ENOTDIR, f"cannot walk {name!r} from a non-directory")
        if name == "." or self._entry.parent is None:
            return await self.clone()
        parent = self._entry.parent
        return Node(self._tree, parent.retain(), qid_of(os.stat(parent.fd)))

    async def clone(self) -> Node:
        return Node(self._tree, self._live().retain(), self._qid)

    async def close(self) -> None:
        self._release()

    async def getattr(self, mask: int) -> Attr:
        return attr_of(self._stat())

    async def setattr(self, attr: SetAttr) -> None:
        self._writable()
        valid, path = attr.valid, proc_path(self._fd)
        with bad_values_are_einval():
            if valid & (SetattrMask.UID | SetattrMask.GID):
                uid = attr.uid if valid & SetattrMask.UID else -1
                os.chown(path, uid, attr.gid if valid & SetattrMask.GID else -1)
            if valid & SetattrMask.MODE:
                os.chmod(path, attr.mode & 0o7777)  # a symlink: EOPNOTSUPP, as lchmod
            if valid & SetattrMask.SIZE:
                await in_thread(os.truncate, path, attr.size)
            if valid & (SetattrMask.ATIME | SetattrMask.MTIME):
                self._set_times(path, attr)

    def _set_times(self, path: str, attr: SetAttr) -> None:
        """Atime and mtime: kept without their bit, given with their _SET bit, else now."""
        v, both = attr.valid, SetattrMask.ATIME | SetattrMask.MTIME
        if v & (both | SetattrMask.ATIME_SET | SetattrMask.MTIME_SET) == both:
            os.utime(path)  # both now, by the host's clock
            return
        st, now = self._stat(), time.time_ns()
        atime, mtime = st.st_atime_ns, st.st_mtime_ns
        if v & SetattrMask.ATIME:
            given = v & SetattrMask.ATIME_SET
            atime = time_ns(attr.atime_sec, attr.atime_nsec) if given else now
        if v & SetattrMask.MTIME:
            given = v & SetattrMask.MTIME_SET
            mtime = time_ns(attr.mtime_sec, attr.mtime_nsec) if given else now
        os.utime(path, ns=(atime, mtime))

    async def statfs(self) -> StatFs:
        return statfs_of(os.fstatvfs(self._fd))

    async def open(self, flags: int) -> Handle:
        st = self._stat()
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, "a symlink cannot be opened")
        if flags & OpenFlag.ACCMODE != OpenFlag.RDONLY or flags & OpenFlag.TRUNC:
            self._writable()
        host_flags = host_open_flags(flags)
        if stat.S_ISFIFO(st.st_mode):
            host_flags |= os.O_NONBLOCK  # else opening waits for the other end
        path = proc_path(self._fd)
        regular, is_dir = stat.S_ISREG(st.st_mode), stat.S_ISDIR(st.st_mode)
        if (regular or is_dir) and not flags & OpenFlag.TRUNC:
            fd = os.open(path, host_flags)
        else:
            fd = await in_thread(os.open, path, host_flags)
        dots = (self._qid, self._parent_qid()) if is_dir else None
        return VolHandle(fd, mode=st.st_mode, read_only=self._tree.options.read_only, dots=dots)

    def _parent_qid(self) -> Qid:
        parent = self._entry.parent
        return self._qid if parent is None else qid_of(os.stat(parent.fd))

    async def create(self, name: str, flags: int, mode: int, gid: int) -> tuple[File, Handle]:
        self._writable()
        check_new_name(name)
        host_flags = host_open_flags(flags & ~int(OpenFlag.DIRECTORY)) | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(name, host_flags, mode & 0o7777, dir_fd=self._fd)
        except FileExistsError:
            if flags & OpenFlag.EXCL:
                raise
            return await self._open_existing(name, flags)
        try:
            node = self._adopt(os.open(proc_path(fd), os.O_PATH | os.O_CLOEXEC), name)
        except BaseException:
            os.close(fd)
            raise
        try:
            node._settle(mode, gid)
        except BaseException:
            os.close(fd)
            node._release()
            raise
        return node, VolHandle(fd, mode=stat.S_IFREG, read_only=False, dots=None)

    async def _open_existing(self, name: str, flags: int) -> tuple[File, Handle]:
        node = await self.walk(name)
        try:
            return node, await node.open(flags)
        except BaseException:
            node._release()
            raise

    async def mkdir(self, name: str, mode: int, gid: int) -> Qid:
        self._writable()
        check_new_name(name)
        os.mkdir(name, mode & 0o7777, dir_fd=self._fd)
        return self._made(name, mode, gid)

    async def symlink(self, name: str, target: str, gid: int) -> Qid:
        self._writable()
        check_new_name(name)
        with bad_values_are_einval():
            os.symlink(target, name, dir_fd=self._fd)
        return self._made(name, None, gid)

    async def mknod(self, name: str, mode: int, major: int, minor: int, gid: int) -> Qid:
        self._writable()
        check_new_name(name)
        with bad_values_are_einval():
            os.mknod(name, mode, os.makedev(major, minor), dir_fd=self._fd)
        return self._made(name, mode, gid)

    async def link(self, target: File, name: str) -> None:
        self._writable()
        check_new_name(name)
        source = self._peer(target)
        os.link(proc_path(source._fd), name, dst_dir_fd=self._fd, follow_symlinks=True)

    async def readlink(self) -> str:
        if not stat.S_ISLNK(self._stat().st_mode):
            raise OSError(errno.EINVAL, "not a symlink")
        return os.readlink("", dir_fd=self._fd)

    async def rename(self, newdir: File, newname: str) -> None:
        self._writable()
        check_new_name(newname)
        dest = self._peer(newdir)
        dest._writable()
        parent, name = self._where()
        os.rename(name, newname, src_dir_fd=parent.fd, dst_dir_fd=dest._fd)
        self._entry.move(dest._entry, newname)

    async def renameat(self, oldname: str, newdir: File, newname: str) -> None:
        self._writable()
        check_new_name(oldname)
        check_new_name(newname)
        dest = self._peer(newdir)
        dest._writable()
        os.rename(oldname, newname, src_dir_fd=self._fd, dst_dir_fd=dest._fd)

    async def unlinkat(self, name: str, flags: int) -> None:
        self._writable()
        check_new_name(name)
        if flags & ~AT_REMOVEDIR:
            raise OSError(errno.EINVAL, f"unknown unlinkat flags {flags:#x}")
        if flags & AT_REMOVEDIR:
            os.rmdir(name, dir_fd=self._fd)
        else:
            await in_thread(partial(os.unlink, name, dir_fd=self._fd))

    async def remove(self) -> None:
        self._writable()
        parent, name = self._where()
        if stat.S_ISDIR(self._stat().st_mode):
            os.rmdir(name, dir_fd=parent.fd)
        else:
            await in_thread(partial(os.unlink, name, dir_fd=parent.fd))

    async def getxattr(self, name: str) -> bytes:
        with bad_values_are_einval():
            return os.getxattr(proc_path(self._fd), name)

    async def listxattr(self) -> list[str]:
        return os.listxattr(proc_path(self._fd))

    async def setxattr(self, name: str, value: bytes, flags: int) -> None:
        self._writable()
        if flags & ~(XATTR_CREATE | XATTR_REPLACE):
            raise OSError(errno.EINVAL, f"unknown setxattr flags {flags:#x}")
        with bad_values_are_einval():
            os.setxattr(proc_path(self._fd), name, value, flags)

    async def removexattr(self, name: str) -> None:
        self._writable()
        with bad_values_are_einval():
            os.removexattr(proc_path(self._fd), name)
