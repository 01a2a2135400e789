"""Atomic creation of host objects that carry metadata: an error leaves nothing behind.

A file, symlink, fifo, socket or device node made by a client is a regular host
file with its attributes. It is made nameless (O_TMPFILE), given its content
and its attributes, and only then linked under its name (linkat never
replaces: EEXIST if the name was taken meanwhile). So no client, and no host
tool, ever sees it without its mode attribute, even if the server dies in the
middle: a nameless file is freed by the host's kernel.

A host filesystem without O_TMPFILE (NFS, SMB, FUSE) gets the same order of
steps with a name no client can see: the file is made in `Staging`, the
export root's hidden directory (`names.STAGING_DIR`), then linked under its
name and unlinked there. What a server that died in the middle leaves in it is
removed when the next server first uses it.

A directory with attributes to store (`make_dir`: metadata, or the case flag)
is made in `Staging` too, on any host, given its attributes, and renamed to its
name without replacing anything (RENAME_NOREPLACE); it is removed from there on
any failure. So the staging directory appears at the export's root with the
first such directory.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
import weakref
from collections.abc import Callable

from . import metadata
from .hostio import entry_path, proc_path, rename_noreplace
from .metadata import Metadata
from .names import STAGING_DIR, open_entry

HOST_FILE_MODE = 0o600  # the host's mode of a stored object: the server reads and writes it


def make(dirfd: int, host: str, md: Metadata, staging: Staging, content: bytes = b"") -> int:
    """Link a new regular file named `host` in `dirfd`, holding `content` and `md`.

    Returns an O_RDWR fd on it; the caller closes it. Nothing is left behind on failure.
    """
    try:
        fd = os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, HOST_FILE_MODE, dir_fd=dirfd)
    except OSError as e:
        if e.errno not in _NO_TMPFILE:
            raise
        return staging.make(dirfd, host, md, content)
    try:
        _fill(fd, md, content)
        os.link(proc_path(fd), host, dst_dir_fd=dirfd, follow_symlinks=True)
    except BaseException:
        os.close(fd)
        raise
    return fd


_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR)  # EISDIR: a kernel that predates O_TMPFILE


def _fill(fd: int, md: Metadata, content: bytes) -> None:
    if content:
        os.write(fd, content)
    store(fd, md)


def make_dir(dirfd: int, host: str, settle: Callable[[int], None] | None, staging: Staging) -> None:
    """Make directory `host` (host mode 0700) in `dirfd`, given its attributes by
    `settle(O_PATH fd)` first; made in place if there is nothing to settle.

    EEXIST if `host` exists; nothing is left behind on failure. Made in place
    (and removed on failure) where `dirfd` is on another filesystem than the
    staging directory, or where that cannot be made.
    """
    if settle is None:
        os.mkdir(host, 0o700, dir_fd=dirfd)
        return
    try:
        staging.make_dir(dirfd, host, settle)
    except OSError as e:
        if e.errno not in _NO_STAGING:
            raise
        os.mkdir(host, 0o700, dir_fd=dirfd)
        _settle_or_remove(dirfd, host, settle)


_NO_STAGING = (errno.EXDEV, errno.EACCES, errno.EPERM)


def _settle_or_remove(dirfd: int, name: str, settle: Callable[[int], None]) -> None:
    """`settle` the new directory `name` of `dirfd`; remove it if that fails."""
    try:
        fd = open_entry(dirfd, name)
        try:
            settle(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.rmdir(name, dir_fd=dirfd)
        raise


class Staging:
    """The export root's hidden directory, made when first needed (see the module)."""

    def __init__(self, root_fd: int) -> None:
        self._root_fd = root_fd
        self._fd = -1
        self._serial = itertools.count()

    def _name(self) -> str:
        return f"{os.getpid()}.{next(self._serial)}"

    def make_dir(self, dirfd: int, host: str, settle: Callable[[int], None]) -> None:
        """As `make_dir`, through a staged name (EXDEV if `dirfd` is on another filesystem)."""
        staging, name = self._open(), self._name()
        os.mkdir(name, 0o700, dir_fd=staging)
        _settle_or_remove(staging, name, settle)
        try:
            rename_noreplace(staging, name, dirfd, host)
        except BaseException:
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=staging)
            raise

    def make(self, dirfd: int, host: str, md: Metadata, content: bytes) -> int:
        """As `make`, through a staged name."""
        staging, name = self._open(), self._name()
        fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, HOST_FILE_MODE,
                     dir_fd=staging)  # fmt: skip
        try:
            try:
                _fill(fd, md, content)
                os.link(name, host, src_dir_fd=staging, dst_dir_fd=dirfd)
            finally:
                os.unlink(name, dir_fd=staging)
        except BaseException as e:
            os.close(fd)
            if isinstance(e, OSError) and e.errno == errno.EXDEV:
                message = "no O_TMPFILE here, and not on the filesystem of the export's root"
                raise OSError(errno.EOPNOTSUPP, message) from e
            raise
        return fd

    def _open(self) -> int:
        if self._fd < 0:
            with contextlib.suppress(FileExistsError):
                os.mkdir(STAGING_DIR, 0o700, dir_fd=self._root_fd)
            flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            self._fd = os.open(STAGING_DIR, flags, dir_fd=self._root_fd)
            weakref.finalize(self, os.close, self._fd)
            _sweep(self._fd)
        return self._fd


def _sweep(staging: int) -> None:
    """Remove what servers that are gone (or an earlier one with our pid) left in `staging`."""
    for name in os.listdir(proc_path(staging)):
        pid = name.partition(".")[0]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(name, dir_fd=staging, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(name, dir_fd=staging)  # a directory made there is empty
                else:
                    os.unlink(name, dir_fd=staging)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return True


def store(fd: int, md: Metadata) -> None:
    """Write the fields `md` holds to the object of `fd` (any kind of fd)."""
    metadata.store(proc_path(fd), uid=md.uid, gid=md.gid, mode=md.mode, rdev=md.rdev)


def listed_types(dirfd: int, entries: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """`entries` of `names.list_dir` with the type of each regular file as stored.

    Blocking (one getxattr per regular file): run it in a worker thread.
    """
    out = []
    for name, ino, kind in entries:
        if kind == stat.S_IFREG:
            path = entry_path(dirfd, name)  # a symlink there now is not followed
            mode = metadata.load_mode(path, stat.S_IFREG, follow=False)
            if mode is not None and stat.S_IFMT(mode):
                kind = stat.S_IFMT(mode)
        out.append((name, ino, kind))
    return out
