"""One object of the export (a `File`): held by an O_PATH fd, never by a path string.

`..` follows the chain of entries (`volfs.node_base`), so no walk leaves the
root of its attach. Operations on the object itself go through its fd:
`os.stat(fd)`, or the `/proc/self/fd/N` path for calls that need a path or a
non-O_PATH fd; the kernel resolves that path to the object without following
it further, so host symlinks are acted on as symlinks, never followed.

Names from clients become host names, and names in a directory are resolved,
by the attach's `Names` (`volfs.names`: escaping, case folding, the case flag).
What a client sees of an object (mode, owner, group, rdev, qid type), every
permission check and how new objects are made come from the attach's `Policy`
(`volfs.policy`), chosen once when it attaches.

The File's methods are here and in the parts a Node is made of, one job each:
`volfs.node_open` (open), `volfs.node_create` (create, mkdir, symlink, mknod,
link), `volfs.node_move` (rename, renameat, unlinkat, remove) and
`volfs.node_setattr` (setattr).
"""

from __future__ import annotations

import errno
import os
import stat

from ninep.backend import Attr, StatFs
from ninep.constants import XATTR_CREATE, XATTR_REPLACE
from ninep.notify import ChangeHub

from . import caseflag, watching, xattrs
from .attrs import attr_of, statfs_of
from .descriptors import Entry, ident_of
from .hostio import bad_values_are_einval, proc_path
from .node_base import Tree, operation
from .node_create import Creating
from .node_move import Moving
from .node_setattr import Setting


class Node(Creating, Moving, Setting):
    """One object of the export, as a fid refers to it."""

    @classmethod
    def root(cls, tree: Tree, entry: Entry) -> Node:
        """The root of an attach, taking over a reference to `entry`, an export's root."""
        try:
            fd = entry.fd
            st = os.stat(fd)
            if not stat.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, "export root is not a directory")
            qid = tree.policy.qid(fd, st, entry.metadata)
        except BaseException:
            entry.release()
            raise
        return cls(tree, entry, qid)

    def _searched(self) -> os.stat_result | None:
        """Before a walk from here: the policy's check of search permission; this object's
        fstat if that took it (so that a walk stats it at most once)."""
        return self._policy.check_walk(self._live())

    def _dots(self, name: str, st: os.stat_result | None) -> Entry:
        """The entry `name`, `.` or `..`, names from here (`st`: `_searched`'s)."""
        if not stat.S_ISDIR((self._stat() if st is None else st).st_mode):
            raise OSError(errno.ENOTDIR, f"cannot walk {name!r} from a non-directory")
        entry = self._live()
        return entry if name == "." or entry.parent is None else entry.parent

    @operation
    async def walk(self, name: str) -> Node:
        entry, st = self._live(), self._searched()
        if name not in (".", ".."):
            fd, host = await self._names.lookup(entry.fd, name, self._is_root, st, entry.case_flag)
            return self._adopt(fd, host)
        there = self._dots(name, st)
        if there is entry:
            return await self.clone()
        return Node(self._tree, there.retain(), self._entry_qid(there))

    @operation
    async def getattr_child(self, name: str, mask: int) -> Attr:
        """What `walk(name)` then `getattr(mask)` of the child give (`ninep.backend.ChildAttrs`:
        Treaddirattr asks it of every listed entry), with no entry, descriptor or File for it.

        The same checks and the same resolution of `name` as `walk` (`Names.stat_entry`),
        then the host's lstat of the entry, one fstatat in its directory; with metadata
        on, its stored metadata read by its name (`Policy.view_entry`), or recalled from
        the memo of a live entry of that object. If another object took the name while
        its metadata was read, the child is walked to after all.
        """
        entry, st = self._live(), self._searched()
        if name in (".", ".."):
            there = self._dots(name, st)
            fd = there.fd
            there_st = os.stat(fd)
            return attr_of(there_st, self._policy.view(fd, there_st, there.metadata))
        dirfd = entry.fd
        child, host = await self._names.stat_entry(dirfd, name, self._is_root, st, entry.case_flag)
        live = entry.children.get(host)
        memo = live.metadata if live is not None and live.ident == ident_of(child) else None
        shown = self._policy.view_entry(dirfd, host, child, memo)
        if shown is None:
            return await self._attr_by_walk(name, mask)
        return attr_of(child, shown)

    async def _attr_by_walk(self, name: str, mask: int) -> Attr:
        child = await self.walk(name)
        try:
            return await child.getattr(mask)
        finally:
            await child.close()

    def watch(self) -> ChangeHub | None:
        """Change notification (`ninep.backend.Watchable`; `volfs.watching`)."""
        return watching.watch(self._tree.export, self._live(), self._qid)

    def place(self) -> tuple[int, str] | None:
        return watching.place(self._tree.export, self._live())

    def empty(self) -> bool:
        return watching.empty(self._live())

    async def clone(self) -> Node:
        return Node(self._tree, self._live().retain(), self._qid)

    async def close(self) -> None:
        self._release()

    @operation
    async def getattr(self, mask: int) -> Attr:
        st = self._stat()
        return attr_of(st, self._view(st))

    @operation
    async def statfs(self) -> StatFs:
        return statfs_of(os.fstatvfs(self._fd))

    @operation
    async def readlink(self) -> str:
        st = self._stat()
        if not stat.S_ISLNK(self._view(st).mode):
            raise OSError(errno.EINVAL, "not a symlink")
        if stat.S_ISLNK(st.st_mode):
            return os.readlink("", dir_fd=self._fd)
        with open(os.open(proc_path(self._fd), os.O_RDONLY | os.O_CLOEXEC), "rb") as f:
            return os.fsdecode(f.read())  # a stored symlink: the file holds the target

    @operation
    async def getxattr(self, name: str) -> bytes:
        xattrs.check_namespace(name)
        if caseflag.is_client_name(name):
            return self._names.flag_value(self._fd, self._is_root)
        if xattrs.reserved(name):
            raise OSError(errno.ENODATA, f"no attribute {name!r}")
        with bad_values_are_einval():
            return os.getxattr(proc_path(self._fd), name)

    @operation
    async def listxattr(self) -> list[str]:
        return xattrs.listed(os.listxattr(proc_path(self._fd)))

    @operation
    async def setxattr(self, name: str, value: bytes, flags: int) -> None:
        if flags & ~(XATTR_CREATE | XATTR_REPLACE):
            raise OSError(errno.EINVAL, f"unknown setxattr flags {flags:#x}")
        xattrs.check_namespace(name)
        if caseflag.is_client_name(name):
            await self._names.set_flag(self._fd, self._is_root, value)
            return
        self._not_hidden(name)
        self._policy.check_xattr_write(self._view())
        with bad_values_are_einval():
            os.setxattr(proc_path(self._fd), name, value, flags)

    @operation
    async def removexattr(self, name: str) -> None:
        xattrs.check_namespace(name)
        if caseflag.is_client_name(name):  # back to the default: case-insensitive
            await self._names.set_flag(self._fd, self._is_root, caseflag.render(False))
            return
        self._not_hidden(name)
        self._policy.check_xattr_write(self._view())
        with bad_values_are_einval():
            os.removexattr(proc_path(self._fd), name)

    @staticmethod
    def _not_hidden(name: str) -> None:
        if xattrs.reserved(name):
            raise OSError(errno.EPERM, f"{name!r} is reserved by the export")
