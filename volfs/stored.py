"""Atomic creation of regular host files that carry metadata (metadata on).

A file, symlink, fifo, socket or device node made by a client is a regular host
file with its attributes. It is made nameless (O_TMPFILE), given its content
and its attributes, and only then linked under its name (linkat never
replaces: EEXIST if the name was taken meanwhile). So no client, and no host
tool, ever sees it without its mode attribute, even if the server dies in the
middle: a nameless file is freed by the host's kernel. There is no temporary
name to hide. A host filesystem without O_TMPFILE refuses these creations
(EOPNOTSUPP) rather than expose half-made objects.
"""

from __future__ import annotations

import errno
import os
import stat

from . import metadata
from .hostio import proc_path
from .metadata import Metadata

HOST_FILE_MODE = 0o600  # the host's mode of a stored object: the server reads and writes it


def make(dirfd: int, host: str, md: Metadata, content: bytes = b"") -> int:
    """Link a new regular file named `host` in `dirfd`, holding `content` and `md`.

    Returns an O_RDWR fd on it; the caller closes it. Nothing is left behind on failure.
    """
    fd = os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, HOST_FILE_MODE, dir_fd=dirfd)
    try:
        if content:
            os.write(fd, content)
        store(fd, md)
        os.link(proc_path(fd), host, dst_dir_fd=dirfd, follow_symlinks=True)
    except BaseException:
        os.close(fd)
        raise
    return fd


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
            path = os.path.join(proc_path(dirfd), name)
            try:
                raw = {metadata.XATTRS["mode"]: os.getxattr(path, metadata.XATTRS["mode"])}
            except OSError as e:
                if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.ENOENT):
                    raise
                raw = {}
            mode = metadata.decode(raw, stat.S_IFREG).mode
            if mode is not None and stat.S_IFMT(mode):
                kind = stat.S_IFMT(mode)
        out.append((name, ino, kind))
    return out
