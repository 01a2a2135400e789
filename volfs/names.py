"""Names in a host directory: checking them, resolving them, listing them.

A client's name becomes a host name by `Names.host` (the escape of names
Windows cannot hold, `ninep.escape`) and a host name is shown by `Names.shown`.
In a case-insensitive directory a name finds the entry whose shown name folds
to the same key (`volfs.casefold`): the entry of exactly that name first, else
the one whose shown name is least in code-point order, found through the
directory's folded index (`volfs.dirindex`). Which directories are
case-insensitive: `Names.sensitive`. The rules in full: docs/names.md.
Resolution never follows a host symlink.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import TypeVar

from . import caseflag
from .dirindex import DirIndexes, ExportChange
from .hostio import in_thread
from .options import CaseOption
from .racy import Memo

#: The export root's directory where objects with metadata are made on a host without
#: O_TMPFILE (`volfs.stored`): no client sees, makes, replaces or removes it.
STAGING_DIR = ".volfs-staging"
_DOTS = (".", "..")  # never a host name of an entry: `Names.host` refuses them

T = TypeVar("T")


def open_entry(dirfd: int, host_name: str) -> int:
    """An O_PATH fd on the entry `host_name` of directory `dirfd`, not following a symlink."""
    return os.open(host_name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)


def lstat_entry(dirfd: int, host_name: str) -> os.stat_result:
    """The host's stat of the entry `host_name` of directory `dirfd`, not following a symlink."""
    return os.stat(host_name, dir_fd=dirfd, follow_symlinks=False)


# An exact name that fails so may still fold like a name that is there (`ß` * 128 is
# too long for the host, `ss` * 128 is not).
_NOT_THERE = (errno.ENOENT, errno.ENAMETOOLONG)


_HIDDEN_AT_ROOT = frozenset({STAGING_DIR})


def _exists(dirfd: int, host_name: str) -> bool:
    """Whether directory `dirfd` has the entry `host_name` (ENOTDIR if `dirfd` is none)."""
    try:
        lstat_entry(dirfd, host_name)
    except OSError as e:
        if e.errno in _NOT_THERE:
            return False
        raise
    return True


class Names:
    """The name policy of one attach.

    `sensitive_export`: every directory is case-sensitive (no folding, no index);
    `show`: the host name -> shown name map (the escape, or the identity), which
    is its own inverse; `case`: the attach's `case=` option; `indexes`: the
    export's folded indexes.
    """

    def __init__(
        self,
        *,
        sensitive_export: bool,
        show: Callable[[str], str],
        case: CaseOption,
        indexes: DirIndexes,
    ) -> None:
        self._sensitive_export = sensitive_export
        self._show = show
        self._case = case
        self._indexes = indexes

    def host(self, name: str) -> str:
        """The host name a client's name is stored as: one component, never `/`, NUL, `.`
        or `..`, whoever called (the server checked the name already, `ninep.gate`; an
        escape must not depend on that alone)."""
        host = self._show(name)
        if not host or "/" in host or "\0" in host or host in _DOTS:
            raise OSError(errno.EINVAL, f"invalid name {name!r}")
        return host

    def shown(self, host_name: str) -> str:
        """The name a client sees for a host name."""
        return self._show(host_name)

    # ---- which directories fold ----

    def sensitive(
        self,
        dirfd: int,
        root: bool,
        st: os.stat_result | None = None,
        flag: Memo[bool] | None = None,
    ) -> bool:
        """Whether the directory `dirfd` (the export's root if `root`) is case-sensitive.

        `flag`: the memo of its stored flag, used with `st`, its fstat just taken.
        """
        fixed = self._fixed(root)
        if fixed is not None:
            return fixed
        if flag is None or st is None:
            return caseflag.stored(dirfd)
        return flag.recall(st, partial(caseflag.stored, dirfd))

    def _fixed(self, root: bool) -> bool | None:
        """Whether a directory is case-sensitive whatever its flag; None if its flag says."""
        if self._sensitive_export:
            return True
        if root:
            return False
        return True if self._case is CaseOption.FORCE else None

    def new_dir_flag(self, parent_fd: int, parent_root: bool) -> bool:
        """Whether a directory made in `parent_fd` gets the flag: `case=dir`, or inherited."""
        if self._sensitive_export:
            return False
        return self._case is CaseOption.DIR or (not parent_root and caseflag.stored(parent_fd))

    def flag_value(self, fd: int, root: bool) -> bytes:
        """The case flag a client reads on object `fd` (ENODATA unless a directory)."""
        if not stat.S_ISDIR(os.stat(fd).st_mode):
            raise OSError(errno.ENODATA, "only a directory has a case flag")
        return caseflag.render(self.sensitive(fd, root))

    async def set_flag(self, fd: int, root: bool, value: bytes) -> None:
        """Set the case flag of directory `fd` as a client asks: only while it is empty."""
        want = caseflag.parse(value)
        if not stat.S_ISDIR(os.stat(fd).st_mode):
            raise OSError(errno.ENOTDIR, "only a directory has a case flag")
        if want == self.sensitive(fd, root):
            return
        if self._sensitive_export or (self._case is CaseOption.FORCE and not root):
            raise OSError(errno.EPERM, "every directory of this attach is case-sensitive")
        if root:
            raise OSError(errno.EPERM, "the root of the export stays case-insensitive")
        if not await in_thread(caseflag.is_empty, fd):
            raise OSError(errno.ENOTEMPTY, "the case flag changes only while it is empty")
        caseflag.store(fd, want)

    # ---- resolving ----

    @staticmethod
    def hidden(root: bool) -> frozenset[str]:
        """The host names clients never see in a directory (the root if `root`)."""
        return _HIDDEN_AT_ROOT if root else frozenset()

    def new_host(self, name: str, root: bool) -> str:
        """The host name for client name `name` as a new or replacing entry; EPERM if hidden."""
        host = self.host(name)
        if host in self.hidden(root):
            raise OSError(errno.EPERM, f"{name!r} is reserved by the export")
        return host

    async def find(self, dirfd: int, name: str, root: bool) -> str | None:
        """The host name of the entry `name` names in directory `dirfd`, or None."""
        host = self.host(name)
        hidden = self.hidden(root)
        if host not in hidden and _exists(dirfd, host):
            return host
        if self.sensitive(dirfd, root):
            return None
        found = await self._indexes.find(dirfd, name)
        return None if found in hidden else found

    async def lookup(
        self,
        dirfd: int,
        name: str,
        root: bool,
        st: os.stat_result | None = None,
        flag: Memo[bool] | None = None,
    ) -> tuple[int, str]:
        """An O_PATH fd on the entry `name` names in directory `dirfd`, and its host name.

        `st`: the directory's fstat if this operation has just taken it; `flag`: the memo
        of its case flag. Either way the directory is stat'ed at most once.
        """
        return await self._resolve(open_entry, dirfd, name, root, st, flag)

    async def stat_entry(
        self,
        dirfd: int,
        name: str,
        root: bool,
        st: os.stat_result | None = None,
        flag: Memo[bool] | None = None,
    ) -> tuple[os.stat_result, str]:
        """As `lookup`, the entry's lstat instead of a descriptor on it: one fstatat
        (AT_SYMLINK_NOFOLLOW) where the name is exactly the host's."""
        return await self._resolve(lstat_entry, dirfd, name, root, st, flag)

    async def _resolve(
        self,
        reach: Callable[[int, str], T],
        dirfd: int,
        name: str,
        root: bool,
        st: os.stat_result | None,
        flag: Memo[bool] | None,
    ) -> tuple[T, str]:
        """`reach(dirfd, host)` of the host name `host` that `name` names, and `host`."""
        host = self.host(name)
        hidden = self.hidden(root)
        try:
            if host in hidden:
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), name)
            return reach(dirfd, host), host  # the exact name: no index needed
        except OSError as e:
            if e.errno not in _NOT_THERE:
                raise
            missing = e
        if st is None and flag is not None and self._fixed(root) is None:
            st = os.fstat(dirfd)  # once, for the flag's memo and the index
        if self.sensitive(dirfd, root, st, flag):
            raise missing
        found = await self._indexes.find(dirfd, name, st)
        if found is None or found in hidden:
            raise missing
        return reach(dirfd, found), found

    async def existing(self, dirfd: int, name: str, root: bool) -> str:
        """As `find`, ENOENT if there is no such entry."""
        found = await self.find(dirfd, name, root)
        if found is None:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        return found

    async def fresh(self, dirfd: int, name: str, root: bool) -> str:
        """The host name for a new entry `name` of `dirfd`; EEXIST if `name` names one."""
        if await self.find(dirfd, name, root) is not None:
            raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), name)
        return self.new_host(name, root)

    def changing(self, dirfd: int) -> AbstractContextManager[ExportChange]:
        """Bracket a change of directory `dirfd` (see `DirIndexes.changing`)."""
        return self._indexes.changing(dirfd)

    @contextmanager
    def moving(
        self, src_fd: int, dst_fd: int, same_dir: bool
    ) -> Iterator[tuple[ExportChange, ExportChange]]:
        """Bracket a rename from directory `src_fd` to `dst_fd`: (change there, change here)."""
        if same_dir:
            with self._indexes.changing(src_fd) as change:
                yield change, change
        else:
            with self._indexes.changing(src_fd) as out, self._indexes.changing(dst_fd) as into:
                yield out, into


def list_dir(fd: int) -> list[tuple[str, int, int]]:
    """(name, inode, S_IFMT type or 0) of each entry of directory `fd`, `.` and `..` aside.

    Blocking: run it in a worker thread. Types come from d_type; only entries
    the filesystem does not type (or that are neither file, directory nor
    symlink) cost an lstat.
    """
    os.lseek(fd, 0, os.SEEK_SET)  # scandir shares the offset of `fd`
    out = []
    with os.scandir(fd) as entries:
        for e in entries:
            out.append((e.name, e.inode(), _file_type(e)))
    return out


def _file_type(e: os.DirEntry[str]) -> int:
    try:
        if e.is_symlink():
            mode = stat.S_IFLNK
        elif e.is_dir(follow_symlinks=False):
            mode = stat.S_IFDIR
        elif e.is_file(follow_symlinks=False):
            mode = stat.S_IFREG
        else:
            mode = e.stat(follow_symlinks=False).st_mode
    except OSError:  # gone since the listing
        return 0
    return stat.S_IFMT(mode)
