"""The per-directory case flag as the host stores it and as clients read and set it.

On the host the flag is the extended attribute `HOST_XATTR` of the directory,
value `1`; a directory without it is case-insensitive. Clients never see that
name: they read and set the flag as WSL's `system.wsl_case_sensitive`, or as
`user.wsl_case_sensitive` (the Linux kernel's 9p client forwards only `user.`,
`trusted.` and `security.` names), with the value `0` or `1`. Neither client
name is listed by listxattr, so copying tools (`cp -a`, `rsync -X`, `tar
--xattrs`) do not carry the flag onto directories that already hold files.
"""

from __future__ import annotations

import errno
import os

from .hostio import XATTR_ABSENT, proc_path

HOST_XATTR = "user.volfs.case_sensitive"
CLIENT_XATTRS = frozenset({"system.wsl_case_sensitive", "user.wsl_case_sensitive"})


def is_client_name(name: str) -> bool:
    """Whether a client's xattr `name` is the case flag."""
    return name in CLIENT_XATTRS


def is_hidden(name: str) -> bool:
    """Whether host xattr `name` is kept from clients."""
    return name == HOST_XATTR


def render(sensitive: bool) -> bytes:
    """The value a client reads."""
    return b"1" if sensitive else b"0"


def parse(value: bytes) -> bool:
    """The flag a client sets: `0` or `1`, a final newline allowed; EINVAL otherwise."""
    text = value[:-1] if value.endswith(b"\n") else value
    if text not in (b"0", b"1"):
        raise OSError(errno.EINVAL, f"the case flag is 0 or 1, not {value!r}")
    return text == b"1"


def stored(fd: int) -> bool:
    """Whether the directory of O_PATH fd `fd` has the flag on the host."""
    try:
        return os.getxattr(proc_path(fd), HOST_XATTR) == b"1"
    except OSError as e:
        if e.errno in XATTR_ABSENT:
            return False
        raise


def store(fd: int, sensitive: bool) -> None:
    """Set or clear the flag of the directory of O_PATH fd `fd` on the host."""
    path = proc_path(fd)
    if sensitive:
        os.setxattr(path, HOST_XATTR, b"1")
        return
    try:
        os.removexattr(path, HOST_XATTR)
    except OSError as e:
        if e.errno not in XATTR_ABSENT:
            raise


def is_empty(fd: int) -> bool:
    """Whether the directory of O_PATH fd `fd` holds no entry. Blocking: run in a thread."""
    dfd = os.open(proc_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with os.scandir(dfd) as entries:
            return next(entries, None) is None
    finally:
        os.close(dfd)
