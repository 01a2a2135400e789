"""Translations between 9P2000.L values and FUSE's: attributes, statfs, open flags."""

from __future__ import annotations

import pyfuse3

from ninep.client import Attr, StatFs
from ninep.constants import OpenFlag
from ninep.convert import time_ns, wire_open_flags

# Host open(2) flags the server is told about (the access mode too). The others
# (O_NOATIME, O_NOFOLLOW, O_CLOEXEC, O_LARGEFILE, O_DIRECT, O_NOCTTY, O_NONBLOCK)
# concern the client's own kernel only.
_SENT = (
    OpenFlag.CREAT,
    OpenFlag.EXCL,
    OpenFlag.TRUNC,
    OpenFlag.APPEND,
    OpenFlag.DSYNC,
    OpenFlag.SYNC,
    OpenFlag.DIRECTORY,
)

REOPEN_MASK = ~int(OpenFlag.CREAT | OpenFlag.EXCL | OpenFlag.TRUNC)  # to open again by path


def open_flags(flags: int) -> int:
    """The Tlopen/Tlcreate flags (OpenFlag) for host open(2) `flags`."""
    return wire_open_flags(flags, _SENT)


def stamp(attr: Attr) -> tuple[int, int, int]:
    """What tells whether a file's content changed: its mtime and size."""
    return (attr.mtime_sec, attr.mtime_nsec, attr.size)


def entry(
    ino: int, attr: Attr, attr_timeout: float, entry_timeout: float
) -> pyfuse3.EntryAttributes:
    """FUSE attributes of inode `ino` from Rgetattr fields."""
    e = pyfuse3.EntryAttributes()
    e.st_ino = ino
    e.generation = 0
    e.attr_timeout = attr_timeout
    e.entry_timeout = entry_timeout
    e.st_mode = attr.mode
    e.st_nlink = attr.nlink
    e.st_uid = attr.uid
    e.st_gid = attr.gid
    e.st_rdev = attr.rdev
    e.st_size = attr.size
    e.st_blksize = attr.blksize or 4096
    e.st_blocks = attr.blocks
    e.st_atime_ns = time_ns(attr.atime_sec, attr.atime_nsec)
    e.st_mtime_ns = time_ns(attr.mtime_sec, attr.mtime_nsec)
    e.st_ctime_ns = time_ns(attr.ctime_sec, attr.ctime_nsec)
    e.st_birthtime_ns = time_ns(attr.btime_sec, attr.btime_nsec)
    return e


def dot_entry(ino: int, mode: int) -> pyfuse3.EntryAttributes:
    """Attributes for `.` and `..` in a listing: the kernel uses only the number and type."""
    e = pyfuse3.EntryAttributes()
    e.st_ino = ino
    e.st_mode = mode
    return e


def entry_unknown(ino: int, dirent_type: int) -> pyfuse3.EntryAttributes:
    """Attributes of a listed entry whose own could not be read: its type, cached for no time."""
    e = pyfuse3.EntryAttributes()
    e.st_ino = ino
    e.st_mode = dirent_type << 12
    e.attr_timeout = 0
    e.entry_timeout = 0
    return e


def statvfs(fs: StatFs) -> pyfuse3.StatvfsData:
    """FUSE statfs figures from Rstatfs fields."""
    s = pyfuse3.StatvfsData()
    s.f_bsize = fs.bsize
    s.f_frsize = fs.bsize
    s.f_blocks = fs.blocks
    s.f_bfree = fs.bfree
    s.f_bavail = fs.bavail
    s.f_files = fs.files
    s.f_ffree = fs.ffree
    s.f_favail = fs.ffree
    s.f_namemax = fs.namelen
    return s
