"""Attributes of host objects as 9P presents them: qids, Rgetattr fields, statfs.

Mode, owner, group and rdev are shown as the attach's policy says (`volfs.policy`).
"""

from __future__ import annotations

import os
import stat

from ninep.backend import Attr, StatFs
from ninep.constants import V9FS_MAGIC, GetattrMask, QidType
from ninep.convert import wire_time
from ninep.messages import Qid

from .metadata import Effective

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
    (atime_sec, atime_nsec), (mtime_sec, mtime_nsec), (ctime_sec, ctime_nsec) = (
        wire_time(st.st_atime_ns),
        wire_time(st.st_mtime_ns),
        wire_time(st.st_ctime_ns),
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
        atime_sec=atime_sec,
        atime_nsec=atime_nsec,
        mtime_sec=mtime_sec,
        mtime_nsec=mtime_nsec,
        ctime_sec=ctime_sec,
        ctime_nsec=ctime_nsec,
    )


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
