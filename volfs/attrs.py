"""Attributes of host objects as 9P presents them: qids, Rgetattr fields, statfs.

Mode, owner, group and rdev are shown as the attach's policy says (`volfs.policy`).
"""

from __future__ import annotations

import os
import stat

from ninep.backend import Attr, StatFs
from ninep.constants import V9FS_MAGIC, GetattrMask, QidType
from ninep.messages import Qid

from .metadata import Effective

_U64 = (1 << 64) - 1
QID_VERSION = 0  # constant: the Linux client matches inodes on the whole qid


def qid_type(mode: int) -> int:
    """The qid type of a file of mode `mode`."""
    if stat.S_ISDIR(mode):
        return int(QidType.DIR)
    if stat.S_ISLNK(mode):
        return int(QidType.SYMLINK)
    return int(QidType.FILE)


def dirent_type(mode: int) -> int:
    """The DT_* value of a file of mode `mode` (DT_UNKNOWN 0 if the type is 0)."""
    return stat.S_IFMT(mode) >> 12


def qid_of(ino: int, mode: int) -> Qid:
    """The qid of inode `ino` shown with mode (or directory entry type) `mode`."""
    return Qid(qid_type(mode), QID_VERSION, ino)


def attr_of(st: os.stat_result, shown: Effective | None = None) -> Attr:
    """The Rgetattr fields of an lstat result (the BASIC set; birth time unknown).

    `shown`: the mode, owner, group and rdev to show instead of the host's.
    """
    mode, uid, gid, rdev = (
        (st.st_mode, st.st_uid, st.st_gid, st.st_rdev) if shown is None else shown
    )
    return Attr(
        valid=int(GetattrMask.BASIC),
        qid=qid_of(st.st_ino, mode),
        mode=mode,
        uid=uid,
        gid=gid,
        nlink=st.st_nlink,
        rdev=rdev,
        size=st.st_size,
        blksize=st.st_blksize,
        blocks=st.st_blocks,
        atime_sec=_sec(st.st_atime_ns),
        atime_nsec=st.st_atime_ns % 10**9,
        mtime_sec=_sec(st.st_mtime_ns),
        mtime_nsec=st.st_mtime_ns % 10**9,
        ctime_sec=_sec(st.st_ctime_ns),
        ctime_nsec=st.st_ctime_ns % 10**9,
    )


def _sec(ns: int) -> int:
    """Seconds of a time in ns as the u64 of the wire (a time before 1970 in two's complement)."""
    return (ns // 10**9) & _U64


def time_ns(sec: int, nsec: int) -> int:
    """A time in ns from the wire's u64 seconds (two's complement) and nanoseconds."""
    return (sec - (1 << 64) if sec >> 63 else sec) * 10**9 + nsec


def statfs_of(vfs: os.statvfs_result) -> StatFs:
    """Rstatfs fields from the host's statvfs, with the 9P filesystem type."""
    return StatFs(
        type=V9FS_MAGIC,
        bsize=vfs.f_frsize,
        blocks=vfs.f_blocks,
        bfree=vfs.f_bfree,
        bavail=vfs.f_bavail,
        files=vfs.f_files,
        ffree=vfs.f_ffree,
        fsid=vfs.f_fsid,
        namelen=vfs.f_namemax,
    )
