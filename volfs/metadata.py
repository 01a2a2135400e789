"""POSIX metadata kept in extended attributes: QEMU's mapped-xattr format.

Four attributes beside the data, each optional (absent: the host's value):
`user.virtfs.uid`, `user.virtfs.gid`, `user.virtfs.mode` (4 bytes little-endian
each; mode is the full st_mode, type bits included) and `user.virtfs.rdev` (8
bytes little-endian, the dev_t of glibc's `makedev`: see `makedev`).
A symlink, fifo, socket or device node is a regular host file whose type is in
the mode attribute. `docs/metadata.md` describes the format for people.

`decode` and `encode` are pure; `load` and `store` do the host I/O. Each field
is validated on its own when read: a bad one is ignored (the host's value
stands) and logged once per (file, field); reading never raises for bad data.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from .hostio import XATTR_ABSENT

log = logging.getLogger(__name__)

PREFIX: Final = "user.virtfs."
"""The namespace of internal attributes: hidden from clients, as QEMU hides it."""

Field = Literal["uid", "gid", "mode", "rdev"]
FIELDS: Final[tuple[Field, ...]] = ("uid", "gid", "mode", "rdev")
SIZES: Final[Mapping[Field, int]] = {"uid": 4, "gid": 4, "mode": 4, "rdev": 8}
XATTRS: Final[Mapping[Field, str]] = {field: PREFIX + field for field in FIELDS}
INTERNAL_NAMES: Final = frozenset(XATTRS.values())

NO_ID: Final = 0xFFFF_FFFF  # (uid_t)-1: "no change" to chown, never an owner
ST_MODE_MAX: Final = 0o177777  # type and permission bits: st_mode is 16 bits
FILE_TYPES: Final = frozenset(
    (
        stat.S_IFREG,
        stat.S_IFDIR,
        stat.S_IFLNK,
        stat.S_IFIFO,
        stat.S_IFSOCK,
        stat.S_IFCHR,
        stat.S_IFBLK,
    )
)
STORED_AS_REGULAR: Final = FILE_TYPES - {stat.S_IFDIR}
"""Types a regular host file can carry in its mode attribute."""

Ident = tuple[int, int]
"""A host object's identity for reporting: (st_dev, st_ino)."""


@dataclass(frozen=True, slots=True)
class Metadata:
    """The valid stored fields of one object; None: absent or ignored (use the host's)."""

    uid: int | None = None
    gid: int | None = None
    mode: int | None = None  # type bits 0: permission bits only, type from the host
    rdev: int | None = None


class Effective(NamedTuple):
    """What a client is shown: stored values over the host's."""

    mode: int
    uid: int
    gid: int
    rdev: int


def is_internal(name: str) -> bool:
    """Whether xattr `name` is internal: not listed, read, written or removed by clients."""
    return name.startswith(PREFIX)


def ident_of(st: os.stat_result) -> Ident:
    """The identity of a stat result, for `decode`'s reports."""
    return (st.st_dev, st.st_ino)


def value_problem(field: Field, value: int) -> str | None:
    """Why `value` cannot be stored in `field`, or None if it can."""
    if field == "mode":
        if not 0 <= value <= ST_MODE_MAX:
            return f"mode {value:#o} has bits outside st_mode"
        kind = stat.S_IFMT(value)
        if kind and kind not in FILE_TYPES:
            return f"mode {value:#o} has an unknown file type {kind:#o}"
        return None
    if field == "rdev":
        return None if 0 <= value < 1 << 64 else f"rdev {value} out of range"
    return None if 0 <= value < NO_ID else f"{field} {value} is not a valid id"


def makedev(major: int, minor: int) -> int:
    """The stored rdev of device `major`:`minor`: glibc's `makedev`, as `os.makedev` gives.

    Over the whole u32 range that Tmknod carries (`os.makedev` stops at a C int).
    """
    if not (0 <= major < 1 << 32 and 0 <= minor < 1 << 32):
        raise ValueError(f"device number {major}:{minor} out of range")
    return (
        (major & 0xFFFFF000) << 32
        | (major & 0xFFF) << 8
        | (minor & 0xFFFFFF00) << 12
        | minor & 0xFF
    )


def encode(field: Field, value: int) -> bytes:
    """The attribute value of `field`; ValueError for a value the format cannot hold."""
    problem = value_problem(field, value)
    if problem is not None:
        raise ValueError(problem)
    return value.to_bytes(SIZES[field], "little")


def encode_all(md: Metadata) -> dict[str, bytes]:
    """Attribute name → value for every field `md` holds."""
    out = {}
    for field in FIELDS:
        value = getattr(md, field)
        if value is not None:
            out[XATTRS[field]] = encode(field, value)
    return out


def type_allowed(host_mode: int, stored_mode: int) -> bool:
    """Whether a stored mode's type fits the host object (type 0 always does)."""
    kind, host_kind = stat.S_IFMT(stored_mode), stat.S_IFMT(host_mode)
    if not kind or kind == host_kind:
        return True
    return host_kind == stat.S_IFREG and kind in STORED_AS_REGULAR


def decode(raw: Mapping[str, bytes], host_mode: int, ident: Ident | None = None) -> Metadata:
    """The valid fields among raw attribute values of an object of host st_mode `host_mode`.

    An invalid field is left out (None) and reported once per (`ident`, field);
    without `ident`, every time.
    """
    values: dict[str, int | None] = {}
    for field in FIELDS:
        data = raw.get(XATTRS[field])
        values[field] = None if data is None else _checked(field, data, host_mode, ident)
    return Metadata(**values)


def _checked(field: Field, data: bytes, host_mode: int, ident: Ident | None) -> int | None:
    """The value of one attribute, or None (reported) if it is invalid."""
    problem: str | None
    if len(data) != SIZES[field]:
        problem = f"{len(data)} bytes instead of {SIZES[field]}"
    else:
        value = int.from_bytes(data, "little")
        problem = value_problem(field, value)
        if problem is None and field == "mode" and not type_allowed(host_mode, value):
            problem = (
                f"type {stat.filemode(value)[0]!r} of mode {value:#o} contradicts"
                f" the host's {stat.filemode(host_mode)[0]!r}"
            )
        if problem is None:
            return value
    if ident is None or _reported.first((ident, field)):
        where = "" if ident is None else f" of dev {ident[0]} inode {ident[1]}"
        log.warning("ignoring %s%s: %s", XATTRS[field], where, problem)
    return None


class _Once:
    """Keys seen, the oldest forgotten beyond `limit` (so memory stays bounded)."""

    def __init__(self, limit: int) -> None:
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._limit = limit

    def first(self, key: Hashable) -> bool:
        """Whether `key` is new; it is remembered from now on."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True


_reported = _Once(4096)


def effective(st: os.stat_result, md: Metadata) -> Effective:
    """Mode, uid, gid and rdev shown for host stat `st` and its valid stored fields `md`."""
    mode = st.st_mode if md.mode is None else md.mode
    if not stat.S_IFMT(mode):
        mode |= stat.S_IFMT(st.st_mode)
    return Effective(
        mode=mode,
        uid=st.st_uid if md.uid is None else md.uid,
        gid=st.st_gid if md.gid is None else md.gid,
        rdev=st.st_rdev if md.rdev is None else md.rdev,
    )


_NOT_THERE: Final = (*XATTR_ABSENT, errno.ENOENT)  # ENOENT: the object is gone


def load_mode(path: str, host_mode: int, *, follow: bool = True) -> int | None:
    """The valid stored mode of the object at `path`, by one getxattr (`follow`: as `read`'s).

    None if it is absent (or bad, or the object is gone, or the filesystem has
    no user xattrs).
    """
    try:
        raw = os.getxattr(path, XATTRS["mode"], follow_symlinks=follow)
    except OSError as e:
        if e.errno not in _NOT_THERE:
            raise
        return None
    return decode({XATTRS["mode"]: raw}, host_mode).mode


def load(path: str, host_mode: int, ident: Ident | None = None) -> Metadata:
    """Read and decode the attributes of the object at `path` (a /proc/self/fd/N path).

    An absent attribute, or a filesystem without user xattrs, gives None; other
    host errors are raised.
    """
    return decode(read(path), host_mode, ident)


def read(path: str, *, follow: bool = True) -> dict[str, bytes]:
    """The raw attributes the object at `path` has (`follow`: as `os.getxattr`'s
    `follow_symlinks`: False for a path whose last component is the object's own name).

    Absent ones are left out, all of them on a filesystem without user xattrs;
    other host errors are raised.
    """
    raw = {}
    for name in XATTRS.values():
        try:
            raw[name] = os.getxattr(path, name, follow_symlinks=follow)
        except OSError as e:
            if e.errno == errno.ENOTSUP:
                break
            if e.errno != errno.ENODATA:
                raise
    return raw


def store(
    path: str,
    *,
    uid: int | None = None,
    gid: int | None = None,
    mode: int | None = None,
    rdev: int | None = None,
) -> None:
    """Write the given fields to the object at `path`; ValueError if one cannot be stored.

    Every value is checked before the first write.
    """
    for name, value in encode_all(Metadata(uid, gid, mode, rdev)).items():
        os.setxattr(path, name, value)
