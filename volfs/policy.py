"""What one attach shows and allows: modes, owners and the permission checks.

With `metadata` on, mode, uid, gid and rdev are the stored attributes over the
host's (`volfs.metadata`), and the export enforces them for the attached user
(`volfs.access`). With it off, WSL's defaults are shown: the owner and group
of `uid=` and `gid=` (the attaching user's by default) and 0777 less `umask`
and `fmask` or `dmask`; the host's own permissions apply (no checks here).
Every check of node.py goes through a `Policy`; node.py never reads the
metadata attributes itself.

Whatever a client asks, the host objects it makes or changes never carry
setuid, setgid or sticky bits (`host_perms`), and are never chowned: the
server acts on the host as one identity, and a client's claims shape only what
that client is shown.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from functools import partial

from ninep.backend import SetAttr
from ninep.constants import SetattrMask
from ninep.messages import Qid

from . import access, metadata
from .access import W_OK, X_OK, Cred
from .attrs import qid_of
from .hostio import entry_path, proc_path
from .metadata import Effective, Metadata
from .names import lstat_entry
from .options import AttachOptions
from .racy import Memo

SPECIAL_TYPES = frozenset((stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK))
PRIVS = stat.S_ISUID | stat.S_ISGID


def host_perms(asked: int) -> int:
    """The host permission bits a client's request for mode `asked` may give: never setuid,
    setgid or sticky."""
    return asked & 0o777


class Policy:
    """The view and the rules of one attach, for the attached user `cred`."""

    def __init__(self, opts: AttachOptions, cred: Cred) -> None:
        self.metadata = opts.metadata
        self.cred = cred
        self._opts = opts

    # ---- the view ----

    def view(self, fd: int, st: os.stat_result, memo: Memo[Metadata] | None = None) -> Effective:
        """What a client is shown for the object of O_PATH fd `fd` and host stat `st`, just
        taken; `memo`: the object's stored metadata as last read (`volfs.racy`)."""
        if self.metadata:
            load = partial(self._load, fd, st)
            return metadata.effective(st, load() if memo is None else memo.recall(st, load))
        return self._wsl_view(st)

    @staticmethod
    def _load(fd: int, st: os.stat_result) -> Metadata:
        if not _may_hold_metadata(st):
            return Metadata()
        return metadata.load(proc_path(fd), st.st_mode, metadata.ident_of(st))

    def view_entry(
        self, dirfd: int, host: str, st: os.stat_result, memo: Memo[Metadata] | None = None
    ) -> Effective | None:
        """As `view`, for entry (host name) `host` of directory `dirfd` with no descriptor of
        its own: `st` is its lstat, just taken, and its stored metadata is read by its name
        in `dirfd`, never following it (`hostio.entry_path`).

        None if the name did not hold the same object, unchanged, from `st` to the end of
        that read (its (st_dev, st_ino, st_ctime_ns) moved): the metadata read may be
        another object's, so ask `view` again through a descriptor. Without metadata,
        no host call.
        """
        if not self.metadata:
            return self._wsl_view(st)
        load = partial(_load_entry, dirfd, host, st)
        try:
            return metadata.effective(st, load() if memo is None else memo.recall(st, load))
        except _Moved:
            return None

    def _wsl_view(self, st: os.stat_result) -> Effective:
        o, kind = self._opts, stat.S_IFMT(st.st_mode)
        mask = (o.umask or 0) | ((o.dmask if kind == stat.S_IFDIR else o.fmask) or 0)
        perm = 0o777 & ~mask
        if kind == stat.S_IFREG and not st.st_mode & 0o222:
            perm &= ~0o222  # a read-only host file
        uid = self.cred.uid if o.uid is None else o.uid
        gid = self.cred.gid if o.gid is None else o.gid
        return Effective(kind | perm, uid, gid, st.st_rdev)

    @staticmethod
    def wsl_host_mode(host_mode: int, asked: int) -> int:
        """WSL's chmod without metadata: no write bit makes the host file read-only, any
        write bit makes it writable again; the other bits are not kept, and setuid,
        setgid and sticky bits go (`host_perms`)."""
        if asked & 0o222:
            return host_perms(host_mode) | 0o200
        return host_perms(host_mode) & ~0o222

    def qid(self, fd: int, st: os.stat_result, memo: Memo[Metadata] | None = None) -> Qid:
        """The qid of the object: its type as shown (a stored symlink is a SYMLINK)."""
        mode = self.view(fd, st, memo).mode if self.metadata else st.st_mode
        return qid_of(st.st_ino, mode)

    # ---- the checks (metadata on only) ----

    def check(self, shown: Effective, want: int, what: str) -> None:
        """EACCES unless the user may `want` (R_OK|W_OK|X_OK) the object shown so."""
        if self.metadata:
            access.check_access(self.cred, shown.mode, shown.uid, shown.gid, want, what)

    def check_search(self, shown: Effective) -> None:
        """A lookup in a directory: search permission."""
        self.check(shown, X_OK, "the directory")

    def check_create(self, parent: Effective) -> None:
        """Making an entry in directory `parent`: write and search."""
        self.check(parent, W_OK | X_OK, "the directory")

    def check_delete(self, parent: Effective, child: Effective, name: str) -> None:
        """Removing (or renaming away) entry `name` from `parent`: write, search, sticky bit."""
        if self.metadata:
            d = parent
            access.check_delete(self.cred, d.mode, d.uid, d.gid, child.uid, repr(name))

    def check_open(self, shown: Effective, flags: int) -> None:
        """Opening an existing object with client flags `flags`."""
        self.check(shown, access.open_want(flags), "the file")

    def check_xattr_write(self, shown: Effective) -> None:
        """Setting or removing an extended attribute: write permission (or the owner)."""
        if self.metadata and shown.uid != self.cred.uid:
            self.check(shown, W_OK, "the file")

    def check_mknod(self, md: Metadata, what: str) -> None:
        """Making node `what` with the fields `md`: a device needs root (EPERM)."""
        if self.metadata and md.mode is not None:
            access.check_mknod(self.cred, md.mode, md.rdev or 0, what)

    def check_link(self, shown: Effective) -> None:
        """Making a hard link to the object shown so: the protected_hardlinks rule."""
        if self.metadata:
            access.check_link(self.cred, shown.mode, shown.uid, shown.gid, "the file")

    def new_object(self, parent: Effective, mode: int, gid: int) -> Metadata:
        """The stored fields of a new object of full mode `mode` asked for by group `gid`."""
        c = self.cred
        access.check_new_group(c, parent.mode, gid, "the new object")
        return Metadata(
            uid=c.uid,
            gid=access.new_file_gid(parent.mode, parent.gid, gid),
            mode=access.new_mode(c, parent.mode, parent.gid, mode),
        )

    def stored_setattr(
        self, shown: Effective, attr: SetAttr, what: str, opened_for_write: bool = False
    ) -> tuple[Metadata, int]:
        """Check a Tsetattr; the fields to store and the SetattrMask bits left for the host.

        chmod and chown change the attributes only; sizes and times go to the host.
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

    def write_guard(self) -> Callable[[int], None] | None:
        """What is called with a regular file's fd (any kind) before each write to it or
        truncation by open; None where that changes no metadata (metadata off, or root)."""
        return self._drop_privs if self.metadata and not self.cred.root else None

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

    def _check_times(self, shown: Effective, attr: SetAttr, what: str) -> None:
        v = attr.valid
        if not v & (SetattrMask.ATIME | SetattrMask.MTIME):
            return
        if access.may_chmod(self.cred, shown.uid):
            return
        if v & (SetattrMask.ATIME_SET | SetattrMask.MTIME_SET):
            raise OSError(errno.EPERM, f"only the owner may set the times of {what}")
        self.check(shown, W_OK, what)


def _may_hold_metadata(st: os.stat_result) -> bool:
    """Whether the host object of `st` can hold stored metadata: Linux keeps no user.*
    attributes on anything but regular files and directories."""
    return stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)


class _Moved(Exception):
    """The name read changed objects, or its object changed, while its metadata was read."""


def _load_entry(dirfd: int, host: str, st: os.stat_result) -> Metadata:
    """The stored metadata of entry `host` of `dirfd`, whose lstat `st` was just taken,
    read by name (`Policy.view_entry`); `_Moved` if its lstat moved meanwhile."""
    if not _may_hold_metadata(st):
        return Metadata()
    raw = metadata.read(entry_path(dirfd, host), follow=False)
    now = lstat_entry(dirfd, host)
    if (now.st_dev, now.st_ino, now.st_ctime_ns) != (st.st_dev, st.st_ino, st.st_ctime_ns):
        raise _Moved(host)
    return metadata.decode(raw, st.st_mode, metadata.ident_of(st))


def is_special(shown: Effective) -> bool:
    """Whether `shown` is a fifo, socket or device node (never opened on the server)."""
    return stat.S_IFMT(shown.mode) in SPECIAL_TYPES
