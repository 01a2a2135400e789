"""Metadata on (`Stored`): stored attributes shown, enforced, and given to new objects.

Mode, uid, gid and rdev are the stored attributes over the host's
(`volfs.metadata`), and the export enforces them for the attached user
(`volfs.access`). chmod and chown change the attributes only. New objects are
regular host files and directories that carry their owner, group, mode and
rdev in extended attributes from the start (`volfs.stored`, atomic), never
changed after.
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

from . import access, caseflag, metadata, stored
from .access import W_OK
from .attrs import qid_of
from .descriptors import Entry
from .hostio import bad_values_are_einval, entry_path, host_open_flags, proc_path
from .metadata import Effective, Metadata
from .names import lstat_entry, open_entry
from .policy import Policy
from .racy import Memo
from .site import Make, Site, mkdir_at

PRIVS = stat.S_ISUID | stat.S_ISGID


class Stored(Policy):
    """The policy of an attach with metadata."""

    stored_types: ClassVar[bool] = True

    # ---- the view ----

    def view(self, fd: int, st: os.stat_result, memo: Memo[Metadata] | None = None) -> Effective:
        load = partial(_load, fd, st)
        return metadata.effective(st, load() if memo is None else memo.recall(st, load))

    def view_entry(
        self, dirfd: int, host: str, st: os.stat_result, memo: Memo[Metadata] | None = None
    ) -> Effective | None:
        """Its stored metadata is read by its name in `dirfd`, never following it
        (`hostio.entry_path`); None if its (st_dev, st_ino, st_ctime_ns) moved meanwhile:
        the metadata read may be another object's."""
        load = partial(_load_entry, dirfd, host, st)
        try:
            return metadata.effective(st, load() if memo is None else memo.recall(st, load))
        except _Moved:
            return None

    def qid(self, fd: int, st: os.stat_result, memo: Memo[Metadata] | None = None) -> Qid:
        return qid_of(st.st_ino, self.view(fd, st, memo).mode)

    def _view_at(self, dirfd: int, host: str) -> Effective:
        fd = open_entry(dirfd, host)
        try:
            return self.view(fd, os.stat(fd))
        finally:
            os.close(fd)

    # ---- the checks ----

    def check(self, shown: Effective, want: int, what: str) -> None:
        access.check_access(self.cred, shown.mode, shown.uid, shown.gid, want, what)

    def check_walk(self, entry: Entry) -> os.stat_result | None:
        st = os.stat(entry.fd)
        if stat.S_ISDIR(st.st_mode):
            self.check_search(self.view(entry.fd, st, entry.metadata))
        return st

    def _check_delete(self, parent: Effective, child: Effective, name: str) -> None:
        """Removing (or renaming away) entry `name` from `parent`: write, search, sticky bit."""
        d = parent
        access.check_delete(self.cred, d.mode, d.uid, d.gid, child.uid, repr(name))

    def check_unlink(self, dirfd: int, host: str) -> None:
        shown_dir = self.view(dirfd, os.stat(dirfd))
        self._check_delete(shown_dir, self._view_at(dirfd, host), host)

    def check_move(self, src_dirfd: int, src: str, dest: Entry, target: str | None) -> None:
        src_dir = self.view(src_dirfd, os.stat(src_dirfd))
        self._check_delete(src_dir, self._view_at(src_dirfd, src), src)
        dest_fd = dest.fd
        dest_dir = self.view(dest_fd, os.stat(dest_fd), dest.metadata)
        self.check_create(dest_dir)
        if target is not None:
            self._check_delete(dest_dir, self._view_at(dest_fd, target), target)

    def check_xattr_write(self, shown: Effective) -> None:
        if shown.uid != self.cred.uid:
            self.check(shown, W_OK, "the file")

    def check_link(self, shown: Effective) -> None:
        access.check_link(self.cred, shown.mode, shown.uid, shown.gid, "the file")

    # ---- changes ----

    def chmod_chown(self, entry: Entry, attr: SetAttr, opened_for_write: bool) -> int:
        """chmod and chown change the stored attributes only."""
        fd = entry.fd
        shown = self.view(fd, os.stat(fd), entry.metadata)
        md, valid = self._stored_setattr(shown, attr, "the file", opened_for_write)
        with bad_values_are_einval():
            stored.store(fd, md)
        return valid

    def _stored_setattr(
        self, shown: Effective, attr: SetAttr, what: str, opened_for_write: bool = False
    ) -> tuple[Metadata, int]:
        """Check a Tsetattr; the fields to store and the SetattrMask bits left for the host.

        A size change needs write permission, as truncate(2) (EACCES), unless the
        fid is opened for writing (ftruncate(2), which Linux does not check); it
        drops setuid and setgid as a write does.
        """
        v, c = attr.valid, self.cred
        uid = attr.uid if v & SetattrMask.UID else None
        gid = attr.gid if v & SetattrMask.GID else None
        after_gid = shown.gid if gid is None else gid
        mode = shown.mode
        if uid is not None or gid is not None:
            access.check_chown(c, shown.uid, shown.gid, uid, gid, what)
            mode = access.chown_mode(mode)  # setuid and setgid go, as on Linux
        if v & SetattrMask.SIZE:
            if not opened_for_write:
                self.check(shown, W_OK, what)
            mode = access.kill_privs(c, mode, after_gid)
        if v & SetattrMask.MODE:
            access.check_chmod(c, shown.uid, what)
            perm = access.chmod_mode(c, attr.mode & 0o7777, after_gid)
            mode = stat.S_IFMT(shown.mode) | perm
        self._check_times(shown, attr, what)
        rest = v & ~(SetattrMask.UID | SetattrMask.GID | SetattrMask.MODE)
        stored = v & SetattrMask.MODE or mode != shown.mode
        return Metadata(uid=uid, gid=gid, mode=mode if stored else None), rest

    def _check_times(self, shown: Effective, attr: SetAttr, what: str) -> None:
        v = attr.valid
        if not v & (SetattrMask.ATIME | SetattrMask.MTIME):
            return
        if access.may_chmod(self.cred, shown.uid):
            return
        if v & (SetattrMask.ATIME_SET | SetattrMask.MTIME_SET):
            raise OSError(errno.EPERM, f"only the owner may set the times of {what}")
        self.check(shown, W_OK, what)

    def write_guard(self) -> Callable[[int], None] | None:
        """None for root, whose writes keep setuid and setgid."""
        return None if self.cred.root else self._drop_privs

    def _drop_privs(self, fd: int) -> None:
        """Before the user writes to regular file `fd`: drop setuid and setgid as Linux does
        (`access.kill_privs`). One getxattr where the stored mode has neither bit."""
        path = proc_path(fd)
        mode = metadata.load_mode(path, stat.S_IFREG)
        if not (os.stat(fd).st_mode if mode is None else mode) & PRIVS:
            return
        shown = self.view(fd, os.stat(fd))
        kept = access.kill_privs(self.cred, shown.mode, shown.gid)
        if kept != shown.mode:
            metadata.store(path, mode=kept)

    # ---- new objects: made with their stored fields, atomically ----

    def settle(self, mode: int) -> int | None:
        """None: the host's permissions stay those `volfs.stored` makes."""
        return None

    def _new_object(self, parent: Effective, mode: int, gid: int) -> Metadata:
        """The stored fields of a new object of full mode `mode` asked for by group `gid`."""
        c = self.cred
        access.check_new_group(c, parent.mode, gid, "the new object")
        return Metadata(
            uid=c.uid,
            gid=access.new_file_gid(parent.mode, parent.gid, gid),
            mode=access.new_mode(c, parent.mode, parent.gid, mode),
        )

    def make_file(self, parent: Effective, flags: int, mode: int, gid: int) -> Make[int | None]:
        md = self._new_object(parent, stat.S_IFREG | mode & 0o7777, gid)
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

    def make_dir(self, parent: Effective, mode: int, gid: int, case_flag: bool) -> Make[None]:
        """Made in staging, given its fields (and the case flag if `case_flag`)."""
        md = self._new_object(parent, stat.S_IFDIR | mode & 0o7777, gid)

        def settle(fd: int) -> None:
            if case_flag:
                caseflag.store(fd, True)
            stored.store(fd, md)

        return partial(mkdir_at, settle)

    def make_symlink(self, parent: Effective, target: str, gid: int) -> Make[None]:
        """A regular host file holding the target."""
        md = self._new_object(parent, stat.S_IFLNK | 0o777, gid)
        return lambda site: _make_regular(md, os.fsencode(target), site)

    def make_node(
        self, parent: Effective, mode: int, rdev: tuple[int, int], gid: int, what: str
    ) -> Make[None]:
        """A fifo, socket, device node or regular file as an empty regular host file (a
        device needs root: EPERM; a directory or symlink type is EINVAL)."""
        kind = stat.S_IFMT(mode) or stat.S_IFREG
        if kind not in metadata.STORED_AS_REGULAR - {stat.S_IFLNK}:
            raise OSError(errno.EINVAL, f"mknod of file type {kind:#o}")
        md = self._new_object(parent, kind | mode & 0o7777, gid)
        if kind in (stat.S_IFCHR, stat.S_IFBLK):
            with bad_values_are_einval():
                md = Metadata(md.uid, md.gid, md.mode, metadata.makedev(*rdev))
        if md.mode is not None:
            access.check_mknod(self.cred, md.mode, md.rdev or 0, what)
        return partial(_make_regular, md, b"")


def _make_regular(md: Metadata, content: bytes, site: Site) -> None:
    os.close(stored.make(site.dirfd, site.host, md, site.staging, content))
    site.made()


def _may_hold_metadata(st: os.stat_result) -> bool:
    """Whether the host object of `st` can hold stored metadata: Linux keeps no user.*
    attributes on anything but regular files and directories."""
    return stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)


def _load(fd: int, st: os.stat_result) -> Metadata:
    if not _may_hold_metadata(st):
        return Metadata()
    return metadata.load(proc_path(fd), st.st_mode, metadata.ident_of(st))


class _Moved(Exception):
    """The name read changed objects, or its object changed, while its metadata was read."""


def _load_entry(dirfd: int, host: str, st: os.stat_result) -> Metadata:
    """The stored metadata of entry `host` of `dirfd`, whose lstat `st` was just taken,
    read by name (`Stored.view_entry`); `_Moved` if its lstat moved meanwhile."""
    if not _may_hold_metadata(st):
        return Metadata()
    raw = metadata.read(entry_path(dirfd, host), follow=False)
    now = lstat_entry(dirfd, host)
    if (now.st_dev, now.st_ino, now.st_ctime_ns) != (st.st_dev, st.st_ino, st.st_ctime_ns):
        raise _Moved(host)
    return metadata.decode(raw, st.st_mode, metadata.ident_of(st))
