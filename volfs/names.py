"""Names in a host directory: checking them, resolving one, listing them all.

This is where the name policy lives; for now names are used as they are
(case-sensitive, no escaping). Resolution never follows a host symlink.
"""

from __future__ import annotations

import errno
import os
import stat


def check_name(name: str) -> None:
    """EINVAL unless `name` is one non-empty path component the host can spell."""
    if not name or "/" in name or "\0" in name:
        raise OSError(errno.EINVAL, f"invalid name {name!r}")
    try:
        os.fsencode(name)
    except UnicodeEncodeError as e:
        raise OSError(errno.EINVAL, f"invalid name {name!r}") from e


def check_new_name(name: str) -> None:
    """As `check_name`, and `.` and `..` are EINVAL too (they cannot be created or removed)."""
    check_name(name)
    if name in (".", ".."):
        raise OSError(errno.EINVAL, f"{name!r} cannot be used here")


def lookup(dirfd: int, name: str) -> int:
    """An O_PATH fd on the entry `name` of directory `dirfd`, without following a symlink."""
    return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)


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
