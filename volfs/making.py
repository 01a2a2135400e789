"""How an attach makes new objects on the host, chosen once per attach (`making_for`).

`Plain` (metadata off): host objects of the kinds asked for (regular files,
directories, symlinks; mknod makes regular files only), given the permissions
asked for once made (`settle`). `Stored` (metadata on): regular host files and
directories that carry their owner, group, mode and rdev in extended
attributes from the start (`volfs.stored`, atomic), never changed after.

Each method checks what it must and returns the host call to make (a `Make`),
so that a refusal costs no host call; `volfs.node` runs it on a `Site` within
the bracket of the directory's change and ends the operation (the qid, or the
File and Handle of a new file).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from ninep.constants import OpenFlag

from . import caseflag, metadata, stored
from .dirindex import ExportChange
from .hostio import bad_values_are_einval, host_open_flags, proc_path
from .metadata import Effective, Metadata
from .policy import Policy, host_perms

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Site:
    """Where a new object is made: entry `host` of directory `dirfd`.

    `change` records it (`volfs.dirindex`); `opening` counts an open handle
    (`Descriptors.opening`).
    """

    dirfd: int
    host: str
    change: ExportChange
    staging: stored.Staging
    opening: Callable[[], AbstractContextManager[None]]

    def made(self) -> None:
        """Record that the entry now exists."""
        self.change.added.append(self.host)


Make = Callable[[Site], T]
"""One host call (or atomic sequence) that makes the object at a Site."""


class Plain:
    """Metadata off: plain host objects, owned by the server, their permissions settled."""

    @staticmethod
    def settle(mode: int) -> int | None:
        """The permissions a new object gets once made (`host_perms` of them)."""
        return mode

    @staticmethod
    def file(parent: Effective, flags: int, mode: int, gid: int) -> Make[int | None]:
        """A regular file, opened with client `flags` (a counted handle); None if another
        made the name meanwhile and `flags` has no EXCL (the caller opens that one)."""
        host_flags = host_open_flags(flags & ~int(OpenFlag.DIRECTORY)) | os.O_CREAT | os.O_EXCL

        def make(site: Site) -> int | None:
            try:
                with site.opening():
                    fd = os.open(site.host, host_flags, host_perms(mode), dir_fd=site.dirfd)
            except FileExistsError:
                if flags & OpenFlag.EXCL:
                    raise
                return None
            site.made()
            return fd

        return make

    @staticmethod
    def directory(parent: Effective, mode: int, gid: int, case_flag: bool) -> Make[None]:
        """A directory; with the case flag if `case_flag` (made in staging then)."""
        settle = partial(caseflag.store, sensitive=True) if case_flag else None
        return partial(_make_dir, settle)

    @staticmethod
    def symlink(parent: Effective, target: str, gid: int) -> Make[None]:
        def make(site: Site) -> None:
            os.symlink(target, site.host, dir_fd=site.dirfd)
            site.made()

        return make

    @staticmethod
    def node(
        parent: Effective, mode: int, rdev: tuple[int, int], gid: int, what: str
    ) -> Make[None]:
        """mknod: a regular file only (EPERM for any other type)."""
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise OSError(errno.EPERM, "only regular files can be made without metadata")

        def make(site: Site) -> None:
            os.mknod(site.host, stat.S_IFREG | host_perms(mode), dir_fd=site.dirfd)
            site.made()

        return make


class Stored:
    """Metadata on: objects made with their stored fields (`volfs.stored`) for `policy`'s user."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy

    @staticmethod
    def settle(mode: int) -> int | None:
        """None: the host's permissions stay those `volfs.stored` makes."""
        return None

    def file(self, parent: Effective, flags: int, mode: int, gid: int) -> Make[int | None]:
        """A regular file, opened with client `flags` (a counted handle)."""
        md = self._policy.new_object(parent, stat.S_IFREG | mode & 0o7777, gid)
        wanted = host_open_flags(flags & ~int(OpenFlag.DIRECTORY | OpenFlag.TRUNC))

        def make(site: Site) -> int | None:
            made = stored.make(site.dirfd, site.host, md, site.staging)
            site.made()
            try:
                with site.opening():
                    return os.open(proc_path(made), wanted)
            finally:
                os.close(made)

        return make

    def directory(self, parent: Effective, mode: int, gid: int, case_flag: bool) -> Make[None]:
        """A directory with its fields (and the case flag if `case_flag`), made in staging."""
        md = self._policy.new_object(parent, stat.S_IFDIR | mode & 0o7777, gid)

        def settle(fd: int) -> None:
            if case_flag:
                caseflag.store(fd, True)
            stored.store(fd, md)

        return partial(_make_dir, settle)

    def symlink(self, parent: Effective, target: str, gid: int) -> Make[None]:
        """A regular host file holding the target."""
        md = self._policy.new_object(parent, stat.S_IFLNK | 0o777, gid)
        return lambda site: _make_regular(md, os.fsencode(target), site)

    def node(
        self, parent: Effective, mode: int, rdev: tuple[int, int], gid: int, what: str
    ) -> Make[None]:
        """A fifo, socket, device node or regular file as an empty regular host file (a
        device needs root: EPERM; a directory or symlink type is EINVAL)."""
        kind = stat.S_IFMT(mode) or stat.S_IFREG
        if kind not in metadata.STORED_AS_REGULAR - {stat.S_IFLNK}:
            raise OSError(errno.EINVAL, f"mknod of file type {kind:#o}")
        md = self._policy.new_object(parent, kind | mode & 0o7777, gid)
        if kind in (stat.S_IFCHR, stat.S_IFBLK):
            with bad_values_are_einval():
                md = Metadata(md.uid, md.gid, md.mode, metadata.makedev(*rdev))
        self._policy.check_mknod(md, what)
        return partial(_make_regular, md, b"")


Making = Plain | Stored


def making_for(policy: Policy) -> Making:
    """How the attach of `policy` makes objects: with their metadata if it has it on."""
    return Stored(policy) if policy.metadata else Plain()


def _make_dir(settle: Callable[[int], None] | None, site: Site) -> None:
    stored.make_dir(site.dirfd, site.host, settle, site.staging)
    site.made()


def _make_regular(md: Metadata, content: bytes, site: Site) -> None:
    os.close(stored.make(site.dirfd, site.host, md, site.staging, content))
    site.made()
