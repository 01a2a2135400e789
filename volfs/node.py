"""One object of the export (a `File`): held by an O_PATH fd, never by a path string.

A Node's `Entry` (`volfs.descriptors`) names the object by the entry of the
directory it was reached from and its host name there, and holds the object's
`O_PATH | O_NOFOLLOW` fd while the bounded cache keeps it (resolved again,
and checked to be the same object, when evicted). Entries are shared by clones
and by fids that reach the same name, kept alive by their children, and
counted. `..` follows this chain, so no walk leaves the root of its attach.
Each File method is one `Operation`: the fds it uses stay open until it ends.

Operations on the object itself go through its fd: `os.stat(fd)`, or the
`/proc/self/fd/N` path for calls that need a path or a non-O_PATH fd; the
kernel resolves that path to the object without following it further, so host
symlinks are acted on as symlinks, never followed.

Names from clients become host names, and names in a directory are resolved,
by the attach's `Names` (`volfs.names`: escaping, case folding, the case flag).

What a client sees of an object (mode, owner, group, rdev, qid type) and every
permission check come from the attach's `Policy` (`volfs.policy`: metadata in
extended attributes, or WSL's masks). How new objects are made (plain host
objects, or with their metadata, atomically) is the attach's `Making`
(`volfs.making`), chosen once when it attaches.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from functools import partial, wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

from ninep.backend import Attr, File, Handle, SetAttr, StatFs
from ninep.constants import AT_REMOVEDIR, XATTR_CREATE, XATTR_REPLACE, OpenFlag, SetattrMask
from ninep.convert import time_ns
from ninep.messages import Qid
from ninep.notify import Changes

from . import caseflag, stored, watching, xattrs
from .attrs import attr_of, statfs_of
from .descriptors import Descriptors, Entry, Operation, ident_of
from .dirindex import Change
from .handle import VolHandle
from .hostio import (
    INLINE_FREE_MAX,
    HostCalls,
    bad_values_are_einval,
    host_open_flags,
    proc_path,
)
from .making import Make, Making, Site
from .metadata import Effective
from .names import Names, open_entry
from .options import AttachOptions
from .policy import Policy, host_perms, is_special


def _settle(fd: int, mode: int) -> None:
    """Give a new host object the permissions of `mode` exactly (no umask; `host_perms`).

    Its owner stays the server's: no host object is ever chowned to a client's claim.
    """
    os.chmod(proc_path(fd), host_perms(mode))


@dataclass(frozen=True, slots=True)
class Tree:
    """What the Files of one attach share."""

    export: object  # objects of different exports never meet (EXDEV)
    options: AttachOptions
    names: Names
    policy: Policy
    staging: stored.Staging
    making: Making  # plain objects, or objects with their metadata (volfs.making)
    calls: HostCalls  # which host calls run inline (volfs.hostio)


P = ParamSpec("P")
R = TypeVar("R")


def _operation(
    method: Callable[Concatenate[Node, P], Awaitable[R]],
) -> Callable[Concatenate[Node, P], Coroutine[Any, Any, R]]:
    """A File method as one `Operation`: the entry fds it uses stay open until it ends."""

    @wraps(method)
    async def run(self: Node, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with Operation():
            return await method(self, *args, **kwargs)

    return run


class Node:
    """One object of the export, as a fid refers to it."""

    def __init__(self, tree: Tree, entry: Entry, qid: Qid) -> None:
        self._tree = tree
        self._entry = entry
        self._qid = qid
        self._closed = False
        self._opened_for_write = False  # as a fid: Tsetattr on it is then an ftruncate

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

    @property
    def qid(self) -> Qid:
        return self._qid

    def _live(self) -> Entry:
        if self._closed:
            raise OSError(errno.EBADF, "file is closed")
        return self._entry

    @property
    def _fd(self) -> int:
        return self._live().fd

    @property
    def _is_root(self) -> bool:
        return self._live().parent is None

    @property
    def _names(self) -> Names:
        return self._tree.names

    @property
    def _descriptors(self) -> Descriptors:
        return self._live().owner

    def _stat(self) -> os.stat_result:
        return os.stat(self._fd)

    @property
    def _policy(self) -> Policy:
        return self._tree.policy

    @property
    def _making(self) -> Making:
        return self._tree.making

    def _view(self, st: os.stat_result | None = None) -> Effective:
        """Mode, owner, group and rdev as the attach shows them (`st`: the host's, just taken)."""
        entry = self._live()
        return self._policy.view(entry.fd, self._stat() if st is None else st, entry.metadata)

    def _child_view(self, host: str) -> Effective:
        """The view of entry (host name) `host` of this directory."""
        return self._view_at(self._fd, host)

    def _qid_of(self, fd: int) -> Qid:
        return self._policy.qid(fd, os.stat(fd))

    def _entry_qid(self, entry: Entry) -> Qid:
        fd = entry.fd
        return self._policy.qid(fd, os.stat(fd), entry.metadata)

    def _peer(self, other: File) -> Node:
        """`other` as a Node of the same export (EXDEV otherwise)."""
        if not isinstance(other, Node) or other._tree.export is not self._tree.export:
            raise OSError(errno.EXDEV, "not in the same export")
        return other

    def _adopt(self, fd: int, name: str) -> Node:
        """A Node taking over `fd`, the O_PATH fd of entry (host name) `name` of this directory."""
        entry, st = self._descriptors.child(self._live(), name, fd)
        try:
            return Node(self._tree, entry, self._policy.qid(entry.fd, st, entry.metadata))
        except BaseException:
            entry.release()
            raise

    def _release(self) -> None:
        if not self._closed:
            self._closed = True
            self._entry.release()

    def _made(self, host: str, mode: int | None) -> Qid:
        """The qid of the object just made as host name `host` here, settled to `mode`
        (None: a symlink, whose mode is fixed, or an object made with its metadata)."""
        fd = open_entry(self._fd, host)
        try:
            if mode is not None:
                _settle(fd, mode)
            return self._qid_of(fd)
        finally:
            os.close(fd)

    def _where(self) -> tuple[Entry, str]:
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

    def _searched(self) -> os.stat_result | None:
        """Before a walk from here: search permission checked (metadata on); this object's
        fstat if that took it (so that a walk stats it at most once)."""
        if not self._policy.metadata:
            return None
        st = self._stat()
        if stat.S_ISDIR(st.st_mode):
            self._policy.check_search(self._view(st))
        return st

    def _dots(self, name: str, st: os.stat_result | None) -> Entry:
        """The entry `name`, `.` or `..`, names from here (`st`: `_searched`'s)."""
        if not stat.S_ISDIR((self._stat() if st is None else st).st_mode):
            raise OSError(errno.ENOTDIR, f"cannot walk {name!r} from a non-directory")
        entry = self._live()
        return entry if name == "." or entry.parent is None else entry.parent

    @_operation
    async def walk(self, name: str) -> Node:
        entry, st = self._live(), self._searched()
        if name not in (".", ".."):
            fd, host = await self._names.lookup(entry.fd, name, self._is_root, st, entry.case_flag)
            return self._adopt(fd, host)
        there = self._dots(name, st)
        if there is entry:
            return await self.clone()
        return Node(self._tree, there.retain(), self._entry_qid(there))

    @_operation
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

    def watch(self) -> Changes | None:
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

    @_operation
    async def getattr(self, mask: int) -> Attr:
        st = self._stat()
        return attr_of(st, self._view(st))

    @_operation
    async def setattr(self, attr: SetAttr) -> None:
        valid, path = attr.valid, proc_path(self._fd)
        if self._policy.metadata:
            opened = self._opened_for_write
            md, valid = self._policy.stored_setattr(self._view(), attr, "the file", opened)
            with bad_values_are_einval():
                stored.store(self._fd, md)
        else:  # WSL: chown is ignored, chmod only makes the file read-only or writable
            if valid & SetattrMask.MODE:  # a symlink: EOPNOTSUPP, as lchmod
                os.chmod(path, self._policy.wsl_host_mode(self._stat().st_mode, attr.mode))
            valid &= ~(SetattrMask.MODE | SetattrMask.UID | SetattrMask.GID)
        with bad_values_are_einval():
            if valid & SetattrMask.SIZE:
                size = self._stat().st_size
                cheap = size <= INLINE_FREE_MAX or attr.size >= size  # frees little, or grows
                await self._tree.calls.run(cheap, os.truncate, path, attr.size)
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

    @_operation
    async def statfs(self) -> StatFs:
        return statfs_of(os.fstatvfs(self._fd))

    @_operation
    async def open(self, flags: int) -> Handle:
        st = self._stat()
        shown = self._view(st)
        if stat.S_ISLNK(shown.mode):
            raise OSError(errno.ELOOP, "a symlink cannot be opened")
        if stat.S_ISREG(st.st_mode) and is_special(shown):
            raise OSError(errno.ENXIO, "a special file is opened by the client, not the server")
        self._policy.check_open(shown, flags)
        self._opened_for_write = flags & OpenFlag.ACCMODE != OpenFlag.RDONLY
        regular, is_dir = stat.S_ISREG(st.st_mode), stat.S_ISDIR(st.st_mode)
        guard = self._policy.write_guard() if regular else None
        if guard is not None and flags & OpenFlag.TRUNC:
            guard(self._fd)  # O_TRUNC truncates: as a write, it drops setuid and setgid
        host_flags = host_open_flags(flags)
        if stat.S_ISFIFO(st.st_mode):
            host_flags |= os.O_NONBLOCK  # else opening waits for the other end
        path, descriptors = proc_path(self._fd), self._descriptors
        dots = (self._qid, self._parent_qid()) if is_dir else None
        with descriptors.opening():
            if (regular or is_dir) and not flags & OpenFlag.TRUNC:
                fd = os.open(path, host_flags)
            else:  # O_TRUNC frees the data; other files may wait for a device or a peer
                cheap = regular and st.st_size <= INLINE_FREE_MAX
                fd = await self._tree.calls.run(cheap, os.open, path, host_flags)
        read_only, show = self._tree.options.read_only, self._names.shown
        return VolHandle(
            fd,
            calls=self._tree.calls,
            mode=st.st_mode,
            read_only=read_only,
            dots=dots,
            show=show,
            stored_types=self._policy.metadata,
            hidden=self._names.hidden(self._is_root),
            before_write=guard,
            closed=descriptors.handle_closed,
        )

    def _parent_qid(self) -> Qid:
        parent = self._entry.parent
        return self._qid if parent is None else self._entry_qid(parent)

    @_operation
    async def create(self, name: str, flags: int, mode: int, gid: int) -> tuple[File, Handle]:
        parent = self._view()
        self._policy.check_search(parent)
        existing = await self._names.find(self._fd, name, self._is_root)
        if existing is not None:
            if flags & OpenFlag.EXCL:
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), name)
            return await self._open_existing(existing, flags)
        self._policy.check_create(parent)
        host = self._names.new_host(name, self._is_root)
        make = self._making.file(parent, flags, mode, gid)
        with self._names.changing(self._fd) as change, bad_values_are_einval():
            fd = make(self._site(host, change))
        if fd is None:  # made by someone else meanwhile
            return await self._open_existing(host, flags)
        return self._new_file(fd, host, flags, self._making.settle(mode))

    def _new_file(self, fd: int, host: str, flags: int, mode: int | None) -> tuple[File, Handle]:
        """The File and Handle of regular file `host` just made here and opened as `fd` with
        client `flags` (a counted handle); settled to `mode` if not None (`_made`)."""
        node: Node | None = None
        try:
            node = self._adopt(os.open(proc_path(fd), os.O_PATH | os.O_CLOEXEC), host)
            if mode is not None:
                _settle(node._fd, mode)
        except BaseException:
            os.close(fd)
            self._descriptors.handle_closed()
            if node is not None:
                node._release()
            raise
        node._opened_for_write = flags & OpenFlag.ACCMODE != OpenFlag.RDONLY
        guard, closed = self._policy.write_guard(), self._descriptors.handle_closed
        handle = VolHandle(fd, calls=self._tree.calls, mode=stat.S_IFREG, read_only=False,
                           dots=None, before_write=guard, closed=closed)  # fmt: skip
        return node, handle

    def _site(self, host: str, change: Change) -> Site:
        return Site(self._fd, host, change, self._tree.staging, self._descriptors.opening)

    def _finish(
        self,
        host: str,
        changing: AbstractContextManager[Change],
        make: Make[None],
        settle: int | None,
        is_dir: bool = False,
    ) -> Qid:
        """Make entry `host` here by `make` within `changing`; its qid, its host permissions
        settled to `settle` if not None (last: a move out of staging needs the owner's; a
        directory is removed if that fails)."""
        with changing as change, bad_values_are_einval():
            make(self._site(host, change))
        try:
            return self._made(host, settle)
        except BaseException:
            if is_dir and settle is not None:
                with suppress(OSError):
                    os.rmdir(host, dir_fd=self._fd)
            raise

    def _new(self) -> Effective:
        """Check that an entry may be made here (metadata on); this directory's view."""
        parent = self._view()
        self._policy.check_create(parent)
        return parent

    async def _open_existing(self, host: str, flags: int) -> tuple[File, Handle]:
        node = self._adopt(open_entry(self._fd, host), host)
        try:
            return node, await node.open(flags)
        except BaseException:
            node._release()
            raise

    async def _fresh(self, name: str) -> tuple[str, AbstractContextManager[Change]]:
        """For a new entry `name` here: its host name, and the bracket of its making.

        EEXIST if `name` already names an entry (in any case, where names fold).
        """
        host = await self._names.fresh(self._fd, name, self._is_root)
        return host, self._names.changing(self._fd)

    @_operation
    async def mkdir(self, name: str, mode: int, gid: int) -> Qid:
        parent = self._new()
        host, changing = await self._fresh(name)
        case_flag = self._names.new_dir_flag(self._fd, self._is_root)
        make = self._making.directory(parent, mode, gid, case_flag)
        return self._finish(host, changing, make, self._making.settle(mode), is_dir=True)

    @_operation
    async def symlink(self, name: str, target: str, gid: int) -> Qid:
        parent = self._new()
        host, changing = await self._fresh(name)
        return self._finish(host, changing, self._making.symlink(parent, target, gid), None)

    @_operation
    async def mknod(self, name: str, mode: int, major: int, minor: int, gid: int) -> Qid:
        parent = self._new()
        host, changing = await self._fresh(name)
        make = self._making.node(parent, mode, (major, minor), gid, repr(name))
        return self._finish(host, changing, make, self._making.settle(mode))

    @_operation
    async def link(self, target: File, name: str) -> None:
        source = self._peer(target)
        self._new()
        self._policy.check_link(source._view())
        host, changing = await self._fresh(name)
        with changing as change:
            os.link(proc_path(source._fd), host, dst_dir_fd=self._fd, follow_symlinks=True)
            change.added.append(host)

    @_operation
    async def readlink(self) -> str:
        st = self._stat()
        if not stat.S_ISLNK(self._view(st).mode):
            raise OSError(errno.EINVAL, "not a symlink")
        if stat.S_ISLNK(st.st_mode):
            return os.readlink("", dir_fd=self._fd)
        with open(os.open(proc_path(self._fd), os.O_RDONLY | os.O_CLOEXEC), "rb") as f:
            return os.fsdecode(f.read())  # a stored symlink: the file holds the target

    @_operation
    async def rename(self, newdir: File, newname: str) -> None:
        dest = self._peer(newdir)
        parent, host = self._where()
        moved = await self._move(parent, host, dest, newname)
        if moved is not None:
            self._live().move(dest._live(), moved)

    @_operation
    async def renameat(self, oldname: str, newdir: File, newname: str) -> None:
        dest = self._peer(newdir)
        host = await self._names.existing(self._fd, oldname, self._is_root)
        await self._move(self._live(), host, dest, newname)

    async def _move(self, src_dir: Entry, src: str, dest: Node, newname: str) -> str | None:
        """Rename entry (host name) `src` of directory `src_dir` to `newname` in `dest`.

        Where `newname` names another entry in another case, that entry is
        replaced (as POSIX rename replaces its target, with the same checks)
        and the result takes the case of `newname`; where it names `src`
        itself, only the case changes. Returns the new host name, or None if
        nothing moved (both names are links to one file, as in POSIX). The entries of
        the names follow (`Entry.renamed`).
        """
        names, src_dirfd = self._names, src_dir.fd
        new = names.new_host(newname, dest._is_root)
        target = await names.find(dest._fd, newname, dest._is_root)
        src_st, dest_st = os.stat(src_dirfd), os.stat(dest._fd)
        same_dir = (src_st.st_dev, src_st.st_ino) == (dest_st.st_dev, dest_st.st_ino)
        itself = same_dir and target == src
        if self._policy.metadata:
            self._check_move(src_dirfd, src, dest, None if itself else target)
        moving = os.stat(src, dir_fd=src_dirfd, follow_symlinks=False)
        if target is not None and not itself:
            b = os.stat(target, dir_fd=dest._fd, follow_symlinks=False)
            if ident_of(moving) == ident_of(b):
                return None
        with names.moving(src_dirfd, dest._fd, same_dir) as (out, into):
            if target is None or target == new or itself:
                os.rename(src, new, src_dir_fd=src_dirfd, dst_dir_fd=dest._fd)
                out.removed.append(src)
            else:
                os.rename(src, target, src_dir_fd=src_dirfd, dst_dir_fd=dest._fd)
                out.removed.append(src)
                os.rename(target, new, src_dir_fd=dest._fd, dst_dir_fd=dest._fd)
                into.removed.append(target)
                dest._live().forget(target)
            into.added.append(new)
        src_dir.renamed(src, moving, dest._live(), new)
        return new

    def _check_move(self, src_dirfd: int, src: str, dest: Node, target: str | None) -> None:
        """Metadata on: `src` may leave `src_dirfd`, enter `dest` and replace `target` there."""
        policy, src_dir = self._policy, self._policy.view(src_dirfd, os.stat(src_dirfd))
        policy.check_delete(src_dir, self._view_at(src_dirfd, src), src)
        dest_dir = dest._view()
        policy.check_create(dest_dir)
        if target is not None:
            policy.check_delete(dest_dir, dest._child_view(target), target)

    def _view_at(self, dirfd: int, host: str) -> Effective:
        fd = open_entry(dirfd, host)
        try:
            return self._policy.view(fd, os.stat(fd))
        finally:
            os.close(fd)

    def _check_delete(self, dirfd: int, host: str) -> None:
        """Metadata on: entry `host` may be removed from directory `dirfd`."""
        if self._policy.metadata:
            shown_dir = self._policy.view(dirfd, os.stat(dirfd))
            self._policy.check_delete(shown_dir, self._view_at(dirfd, host), host)

    @_operation
    async def unlinkat(self, name: str, flags: int) -> None:
        if flags & ~AT_REMOVEDIR:
            raise OSError(errno.EINVAL, f"unknown unlinkat flags {flags:#x}")
        host = await self._names.existing(self._fd, name, self._is_root)
        self._check_delete(self._fd, host)
        with self._names.changing(self._fd) as change:
            await self._unlink(self._fd, host, bool(flags & AT_REMOVEDIR), self._tree.calls)
            change.removed.append(host)
        self._live().forget(host)

    @_operation
    async def remove(self) -> None:
        parent, host = self._where()
        is_dir = stat.S_ISDIR(self._stat().st_mode)
        self._check_delete(parent.fd, host)
        with self._names.changing(parent.fd) as change:
            await self._unlink(parent.fd, host, is_dir, self._tree.calls)
            change.removed.append(host)
        parent.forget(host)

    @staticmethod
    async def _unlink(dirfd: int, host: str, is_dir: bool, calls: HostCalls) -> None:
        if is_dir:
            os.rmdir(host, dir_fd=dirfd)
            return
        cheap = calls.local and os.stat(host, dir_fd=dirfd, follow_symlinks=False).st_size <= (
            INLINE_FREE_MAX
        )  # unlinking the last name frees the data
        await calls.run(cheap, partial(os.unlink, host, dir_fd=dirfd))

    @_operation
    async def getxattr(self, name: str) -> bytes:
        xattrs.check_namespace(name)
        if caseflag.is_client_name(name):
            return self._names.flag_value(self._fd, self._is_root)
        if xattrs.reserved(name):
            raise OSError(errno.ENODATA, f"no attribute {name!r}")
        with bad_values_are_einval():
            return os.getxattr(proc_path(self._fd), name)

    @_operation
    async def listxattr(self) -> list[str]:
        return xattrs.listed(os.listxattr(proc_path(self._fd)))

    @_operation
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

    @_operation
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
