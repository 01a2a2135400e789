"""Metadata off (`Plain`): WSL's view, the host's own permissions, plain host objects.

A client is shown the owner and group of `uid=` and `gid=` (the attaching
user's by default) and 0777 less `umask` and `fmask` or `dmask`; the export
checks nothing itself. chown is ignored; chmod only makes a file read-only or
writable again. New objects are host objects of the kinds asked for (regular
files, directories, symlinks; mknod makes regular files only), given the
permissions asked for once made (`settle`).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from functools import partial
from typing import ClassVar

from ninep.backend import SetAttr
from ninep.constants import OpenFlag, SetattrMask
from ninep.messages import Qid

from . import caseflag
from .attrs import qid_of
from .descriptors import Entry
from .hostio import host_open_flags, proc_path
from .metadata import Effective, Metadata
from .policy import Policy, host_perms
from .racy import Memo
from .site import Make, Site, mkdir_at


class Plain(Policy):
    """The policy of an attach without metadata."""

    stored_types: ClassVar[bool] = False

    # ---- the view ----

    def view(self, fd: int, st: os.stat_result, memo: Memo[Metadata] | None = None) -> Effective:
        return self._shown(st)

    def view_entry(
        self, dirfd: int, host: str, st: os.stat_result, memo: Memo[Metadata] | None = None
    ) -> Effective | None:
        """No host call: the view follows from `st`."""
        return self._shown(st)

    def _shown(self, st: os.stat_result) -> Effective:
        o, kind = self._opts, stat.S_IFMT(st.st_mode)
        mask = (o.umask or 0) | ((o.dmask if kind == stat.S_IFDIR else o.fmask) or 0)
        perm = 0o777 & ~mask
        if kind == stat.S_IFREG and not st.st_mode & 0o222:
            perm &= ~0o222  # a read-only host file
        uid = self.cred.uid if o.uid is None else o.uid
        gid = self.cred.gid if o.gid is None else o.gid
        return Effective(kind | perm, uid, gid, st.st_rdev)

    def qid(self, fd: int, st: os.stat_result, memo: Memo[Metadata] | None = None) -> Qid:
        return qid_of(st.st_ino, st.st_mode)

    # ---- the checks: none, the host's permissions apply ----

    def check(self, shown: Effective, want: int, what: str) -> None:
        pass

    def check_walk(self, entry: Entry) -> os.stat_result | None:
        return None

    def check_unlink(self, dirfd: int, host: str) -> None:
        pass

    def check_move(self, src_dirfd: int, src: str, dest: Entry, target: str | None) -> None:
        pass

    def check_xattr_write(self, shown: Effective) -> None:
        pass

    def check_link(self, shown: Effective) -> None:
        pass

    # ---- changes ----

    def chmod_chown(self, entry: Entry, attr: SetAttr, opened_for_write: bool) -> int:
        """WSL's: chown is ignored, chmod only makes the file read-only or writable."""
        valid = attr.valid
        if valid & SetattrMask.MODE:  # a symlink: EOPNOTSUPP, as lchmod
            fd = entry.fd
            os.chmod(proc_path(fd), self.host_mode(os.stat(fd).st_mode, attr.mode))
        return valid & ~(SetattrMask.MODE | SetattrMask.UID | SetattrMask.GID)

    @staticmethod
    def host_mode(host_mode: int, asked: int) -> int:
        """WSL's chmod: no write bit makes the host file read-only, any write bit makes it
        writable again; the other bits are not kept, and setuid, setgid and sticky bits
        go (`host_perms`)."""
        if asked & 0o222:
            return host_perms(host_mode) | 0o200
        return host_perms(host_mode) & ~0o222

    def write_guard(self) -> Callable[[int], None] | None:
        return None

    # ---- new objects: plain host objects, owned by the server ----

    def settle(self, mode: int) -> int | None:
        return mode

    def make_file(self, parent: Effective, flags: int, mode: int, gid: int) -> Make[int | None]:
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

    def make_dir(self, parent: Effective, mode: int, gid: int, case_flag: bool) -> Make[None]:
        """Made in staging if it gets the case flag."""
        settle = partial(caseflag.store, sensitive=True) if case_flag else None
        return partial(mkdir_at, settle)

    def make_symlink(self, parent: Effective, target: str, gid: int) -> Make[None]:
        def make(site: Site) -> None:
            os.symlink(target, site.host, dir_fd=site.dirfd)
            site.made()

        return make

    def make_node(
        self, parent: Effective, mode: int, rdev: tuple[int, int], gid: int, what: str
    ) -> Make[None]:
        """A regular file only (EPERM for any other type)."""
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise OSError(errno.EPERM, "only regular files can be made without metadata")

        def make(site: Site) -> None:
            os.mknod(site.host, stat.S_IFREG | host_perms(mode), dir_fd=site.dirfd)
            site.made()

        return make
