"""Wire values <-> host (Linux) values: every conversion both sides need, declared once.

The server (volfs) turns what clients send into host calls, and the client
(drvfs) turns host calls into what it sends: each uses the same tables here,
each choosing the part that concerns it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import unicodedata
from collections.abc import Iterable
from typing import Final

from .constants import LockType, OpenFlag

# ---- open flags ----

#: Each wire open flag (the Linux x86 octal value) and the host's own value; the
#: access mode (RDONLY 0, WRONLY 1, RDWR 2) has the same value everywhere.
OPEN_FLAGS: Final[dict[OpenFlag, int]] = {
    OpenFlag.CREAT: os.O_CREAT,
    OpenFlag.EXCL: os.O_EXCL,
    OpenFlag.NOCTTY: os.O_NOCTTY,
    OpenFlag.TRUNC: os.O_TRUNC,
    OpenFlag.APPEND: os.O_APPEND,
    OpenFlag.NONBLOCK: os.O_NONBLOCK,
    OpenFlag.DSYNC: os.O_DSYNC,
    OpenFlag.DIRECTORY: os.O_DIRECTORY,
    OpenFlag.NOFOLLOW: os.O_NOFOLLOW,
    OpenFlag.NOATIME: os.O_NOATIME,
    OpenFlag.CLOEXEC: os.O_CLOEXEC,
    OpenFlag.SYNC: os.O_SYNC,
}


def host_open_flags(wire: int, honoured: Iterable[OpenFlag]) -> int:
    """Host open(2) flags for wire `wire`: its access mode and the `honoured` flags it has."""
    host = wire & OpenFlag.ACCMODE
    for flag in honoured:
        if wire & flag == flag:
            host |= OPEN_FLAGS[flag]
    return host


def writes_data(wire: int) -> bool:
    """Whether an open with wire flags `wire` may write the file's data: an access mode
    other than read-only."""
    return wire & OpenFlag.ACCMODE != OpenFlag.RDONLY


def wire_open_flags(host: int, sent: Iterable[OpenFlag]) -> int:
    """Wire open flags for host `host`: its access mode and the `sent` flags it has."""
    wire = host & os.O_ACCMODE
    for flag in sent:
        if host & OPEN_FLAGS[flag] == OPEN_FLAGS[flag]:
            wire |= flag
    return int(wire)


# ---- lock types ----

#: Tlock/Tgetlock lock types and the host's fcntl types.
LOCK_TYPES: Final[dict[LockType, int]] = {
    LockType.RDLCK: fcntl.F_RDLCK,
    LockType.WRLCK: fcntl.F_WRLCK,
    LockType.UNLCK: fcntl.F_UNLCK,
}
_WIRE_LOCK_TYPES: Final = {host: wire for wire, host in LOCK_TYPES.items()}


def host_lock_type(wire: int) -> int:
    """The fcntl type of wire lock type `wire`; EINVAL if there is none."""
    try:
        return LOCK_TYPES[LockType(wire)]
    except (ValueError, KeyError):
        raise OSError(errno.EINVAL, f"unknown lock type {wire}") from None


def wire_lock_type(host: int) -> LockType:
    """The wire lock type of fcntl type `host`."""
    return _WIRE_LOCK_TYPES[host]


# ---- times ----

_NS: Final = 1_000_000_000
_U64: Final = (1 << 64) - 1


def wire_time(ns: int) -> tuple[int, int]:
    """A time in ns as the wire's (u64 seconds, nanoseconds); before 1970, two's complement."""
    sec, nsec = divmod(ns, _NS)
    return sec & _U64, nsec


def time_ns(sec: int, nsec: int) -> int:
    """A time in ns from the wire's u64 seconds (two's complement) and nanoseconds."""
    return (sec - (1 << 64) if sec >> 63 else sec) * _NS + nsec


# ---- extended attribute names (the value of a Txattrwalk with an empty name) ----


def encode_xattr_names(names: Iterable[str]) -> bytes:
    """A listxattr payload: each name followed by a NUL, as listxattr(2) gives them."""
    return b"".join(n.encode("utf-8", "surrogateescape") + b"\0" for n in names)


def decode_xattr_names(payload: bytes) -> list[str]:
    """The names of a listxattr payload."""
    return [n.decode("utf-8", "surrogateescape") for n in payload.split(b"\0") if n]


# ---- names ----


def check_name(name: str) -> None:
    """EINVAL unless `name` is one non-empty path component the host can spell."""
    if not name or "/" in name or "\0" in name:
        raise OSError(errno.EINVAL, f"invalid name {name!r}")
    try:
        os.fsencode(name)
    except UnicodeEncodeError as e:
        raise OSError(errno.EINVAL, f"invalid name {name!r}") from e


def check_new_name(name: str) -> str:
    """As `check_name`, and `.` and `..` are EINVAL too (they cannot be made or removed)."""
    check_name(name)
    if name in (".", ".."):
        raise OSError(errno.EINVAL, f"{name!r} cannot be used here")
    return name


def fold(name: str) -> str:
    """The key by which names are the same in a case-insensitive directory (docs/names.md):
    the NFC form of the full Unicode case folding of the NFC form (`Straße` = `STRASSE`,
    composed `É` = decomposed `É`, the three Greek sigmas alike); not Turkic. The server
    folds by it; a client that answers misses itself compares by it."""
    if name.isascii():  # the common case, and the same result
        return name.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())
