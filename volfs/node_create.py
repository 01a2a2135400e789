"""Making entries in a Node's directory: create, mkdir, symlink, mknod and link.

The attach's policy checks and says how the object is made (a `Make`,
`volfs.site`); here it is made within the bracket of the directory's change
(`Names.changing`), and the operation ends with its qid, or the File and
Handle of a new file.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import AbstractContextManager, suppress
from typing import Self

from ninep.backend import File, Handle
from ninep.constants import OpenFlag
from ninep.convert import writes_data
from ninep.messages import Qid

from .dirindex import ExportChange
from .handle import VolHandle
from .hostio import bad_values_are_einval, proc_path
from .metadata import Effective
from .names import open_entry
from .node_base import operation
from .node_open import Opening
from .policy import host_perms
from .site import Make, Site


def _settle(fd: int, mode: int) -> None:
    """Give a new host object the permissions of `mode` exactly (no umask; `host_perms`).

    Its owner stays the server's: no host object is ever chowned to a client's claim.
    """
    os.chmod(proc_path(fd), host_perms(mode))


class Creating(Opening):
    """The File's create, mkdir, symlink, mknod and link."""

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

    @operation
    async def create(self, name: str, flags: int, mode: int, gid: int) -> tuple[Self, Handle]:
        parent = self._view()
        self._policy.check_search(parent)
        existing = await self._names.find(self._fd, name, self._is_root)
        if existing is not None:
            if flags & OpenFlag.EXCL:
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), name)
            return await self._open_existing(existing, flags)
        self._policy.check_create(parent)
        host = self._names.new_host(name, self._is_root)
        make = self._policy.make_file(parent, flags, mode, gid)
        with self._names.changing(self._fd) as change, bad_values_are_einval():
            fd = make(self._site(host, change))
        if fd is None:  # made by someone else meanwhile
            return await self._open_existing(host, flags)
        return self._new_file(fd, host, flags, self._policy.settle(mode))

    def _new_file(self, fd: int, host: str, flags: int, mode: int | None) -> tuple[Self, Handle]:
        """The File and Handle of regular file `host` just made here and opened as `fd` with
        client `flags` (a counted handle); settled to `mode` if not None (`_made`)."""
        node: Self | None = None
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
        node._opened_for_write = writes_data(flags)
        guard, closed = self._policy.write_guard(), self._descriptors.handle_closed
        handle = VolHandle(fd, calls=self._tree.calls, mode=stat.S_IFREG, dots=None,
                           before_write=guard, closed=closed)  # fmt: skip
        return node, handle

    def _site(self, host: str, change: ExportChange) -> Site:
        return Site(self._fd, host, change, self._tree.staging, self._descriptors.opening)

    def _finish(
        self,
        host: str,
        changing: AbstractContextManager[ExportChange],
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
        """Check that an entry may be made here; this directory's view."""
        parent = self._view()
        self._policy.check_create(parent)
        return parent

    async def _open_existing(self, host: str, flags: int) -> tuple[Self, Handle]:
        node = self._adopt(open_entry(self._fd, host), host)
        try:
            return node, await node.open(flags)
        except BaseException:
            node._release()
            raise

    async def _fresh(self, name: str) -> tuple[str, AbstractContextManager[ExportChange]]:
        """For a new entry `name` here: its host name, and the bracket of its making.

        EEXIST if `name` already names an entry (in any case, where names fold).
        """
        host = await self._names.fresh(self._fd, name, self._is_root)
        return host, self._names.changing(self._fd)

    @operation
    async def mkdir(self, name: str, mode: int, gid: int) -> Qid:
        parent = self._new()
        host, changing = await self._fresh(name)
        case_flag = self._names.new_dir_flag(self._fd, self._is_root)
        make = self._policy.make_dir(parent, mode, gid, case_flag)
        return self._finish(host, changing, make, self._policy.settle(mode), is_dir=True)

    @operation
    async def symlink(self, name: str, target: str, gid: int) -> Qid:
        parent = self._new()
        host, changing = await self._fresh(name)
        return self._finish(host, changing, self._policy.make_symlink(parent, target, gid), None)

    @operation
    async def mknod(self, name: str, mode: int, major: int, minor: int, gid: int) -> Qid:
        parent = self._new()
        host, changing = await self._fresh(name)
        make = self._policy.make_node(parent, mode, (major, minor), gid, repr(name))
        return self._finish(host, changing, make, self._policy.settle(mode))

    @operation
    async def link(self, target: File, name: str) -> None:
        source = self._peer(target)
        self._new()
        self._policy.check_link(source._view())
        host, changing = await self._fresh(name)
        with changing as change:
            os.link(proc_path(source._fd), host, dst_dir_fd=self._fd, follow_symlinks=True)
            change.added.append(host)
