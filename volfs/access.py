"""POSIX permission rules, as pure functions, for the export's own checks (metadata on).

The host's permissions say nothing about a stored mode, so the export decides
for the attached user as Linux decides for a process: `fs/namei.c`
(generic_permission, may_delete), `fs/attr.c` (setattr_prepare: chown_ok,
chgrp_ok, the setgid bit on chmod, setattr_should_drop_suidgid on write and
truncate), `vfs_mknod` and `inode_init_owner` / `mode_strip_sgid` for new
objects. Root (uid 0, unless squashed) holds CAP_DAC_OVERRIDE, CAP_FOWNER,
CAP_CHOWN, CAP_FSETID and CAP_MKNOD; everyone else gets the owner, group or
other class. Modes are full st_modes (type bits included).

`may_*` answer with a boolean; `check_*` raise OSError with the errno Linux gives.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from dataclasses import dataclass
from typing import Final

from ninep.constants import OpenFlag

R_OK: Final = os.R_OK
W_OK: Final = os.W_OK
X_OK: Final = os.X_OK
NOBODY: Final = 65534  # the overflow uid and gid: nobody, nogroup


@dataclass(frozen=True, slots=True)
class Cred:
    """Who acts: uid, primary gid (for new objects), and the groups the user is a member of.

    `client_groups`: the client has already decided group membership (a kernel
    client mounted with access=client), so chgrp by the owner and the setgid
    rules take any group as the user's, and an access check that turns on a
    membership the host cannot tell (a group not among `gids`) follows the
    client: the group's bits or the others', whichever the client used.
    `bounded`: a peer admitted by --allow-uid: it makes objects only in its own
    host groups (`check_new_group`), and never has `client_groups`.
    """

    uid: int
    gid: int
    gids: frozenset[int]
    client_groups: bool = False
    bounded: bool = False

    @property
    def root(self) -> bool:
        """Whether this is root: every permission check passes (bar execute, see may_access)."""
        return self.uid == 0

    def in_group_or_capable(self, gid: int) -> bool:
        """Whether the user may chgrp to, or keep setgid for, group `gid` (Linux's name).

        Root, a member of `gid`, or anyone when the client decides membership.
        """
        return self.root or self.client_groups or gid in self.gids


def cred_for(
    uid: int, squash_root: bool | int = False, client_groups: bool = False, bounded: bool = False
) -> Cred:
    """The credentials of attached uid `uid`, from the host's user and group databases.

    `squash_root`: False keeps uid 0 as root; True maps it to nobody (65534); an
    int maps it to that uid. Groups are the user's in the host's databases; a
    uid the host does not know is in no group (no membership is invented:
    Tattach carries a uid, never groups) and makes new objects with gid nogroup.
    `client_groups`, `bounded`: see `Cred` (a bounded peer gets no `client_groups`).
    """
    client_groups = client_groups and not bounded
    if uid == 0 and squash_root is not False:
        uid = NOBODY if squash_root is True else int(squash_root)
        if uid == 0:
            raise ValueError("root cannot be squashed to uid 0")
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return Cred(uid, NOBODY, frozenset(), client_groups, bounded)
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    return Cred(uid, entry.pw_gid, frozenset(groups) | {entry.pw_gid}, client_groups, bounded)


def may_access(cred: Cred, mode: int, uid: int, gid: int, want: int) -> bool:
    """Whether `cred` may do `want` (R_OK|W_OK|X_OK bits) to an object of mode/owner/group.

    One class decides: owner if the uid matches, else group if `cred` is in the
    group, else other (with `client_groups`, a membership the host cannot tell
    is the client's: either class). Root may read and write anything, search
    any directory, and execute a file that has at least one x bit.
    """
    want &= R_OK | W_OK | X_OK
    if cred.root:
        return not want & X_OK or stat.S_ISDIR(mode) or bool(mode & 0o111)
    if cred.uid == uid:
        granted = mode >> 6
    elif gid in cred.gids:
        granted = mode >> 3
    elif cred.client_groups:
        granted = mode >> 3 | mode
    else:
        granted = mode
    return want & ~granted == 0


def open_want(flags: int) -> int:
    """The access an open with client flags `flags` asks of an existing file.

    O_TRUNC asks for write too. A file the same request has just created is
    opened without a check, as Linux does.
    """
    accmode = flags & OpenFlag.ACCMODE
    want = {OpenFlag.RDONLY: R_OK, OpenFlag.WRONLY: W_OK}.get(accmode, R_OK | W_OK)
    return want | (W_OK if flags & OpenFlag.TRUNC else 0)


def _sticky_allows(cred: Cred, dir_mode: int, dir_uid: int, file_uid: int) -> bool:
    """The sticky bit rule: in a sticky directory only the file's or the directory's owner."""
    return not dir_mode & stat.S_ISVTX or cred.root or cred.uid in (file_uid, dir_uid)


def may_delete(cred: Cred, dir_mode: int, dir_uid: int, dir_gid: int, file_uid: int) -> bool:
    """Whether `cred` may remove (or rename away) an entry owned by `file_uid` from a directory.

    Write and search on the directory, and the sticky bit rule.
    """
    return may_access(cred, dir_mode, dir_uid, dir_gid, W_OK | X_OK) and _sticky_allows(
        cred, dir_mode, dir_uid, file_uid
    )


def may_chmod(cred: Cred, owner_uid: int) -> bool:
    """Whether `cred` may change the mode (or set the times) of a file: its owner or root."""
    return cred.root or cred.uid == owner_uid


def may_chown(
    cred: Cred, cur_uid: int, cur_gid: int, new_uid: int | None = None, new_gid: int | None = None
) -> bool:
    """Whether `cred` may set owner `new_uid` and group `new_gid` (None: unchanged).

    Root may set anything. The owner may "set" the owner it already has, and
    set the group to the current one or to any group of his own (any group at
    all with `client_groups`).
    """
    if cred.root:
        return True
    owner = cred.uid == cur_uid
    uid_ok = new_uid is None or (owner and new_uid == cur_uid)
    gid_ok = new_gid is None or (
        owner and (new_gid == cur_gid or cred.in_group_or_capable(new_gid))
    )
    return uid_ok and gid_ok


def chmod_mode(cred: Cred, mode: int, file_gid: int) -> int:
    """The mode a permitted chmod to `mode` stores: setgid is dropped for a non-member.

    `file_gid` is the file's group after the request (a chown in the same
    Tsetattr counts).
    """
    if cred.in_group_or_capable(file_gid):
        return mode
    return mode & ~stat.S_ISGID


def chown_mode(mode: int) -> int:
    """The mode after a chown of an object of full mode `mode`, by anyone (root too).

    Linux drops setuid from a non-directory, and setgid where group execute
    makes it mean setgid (not mandatory locking).
    """
    if stat.S_ISDIR(mode):
        return mode
    both = stat.S_ISGID | stat.S_IXGRP
    return mode & ~(stat.S_ISUID | (stat.S_ISGID if mode & both == both else 0))


def kill_privs(cred: Cred, mode: int, gid: int) -> int:
    """The mode after a write or truncate by `cred` of an object of full mode `mode`, group `gid`.

    As Linux (setattr_should_drop_suidgid): for anyone but root, a regular
    file loses setuid, and setgid where group execute is set or the writer is
    not in its group.
    """
    if cred.root or not stat.S_ISREG(mode):
        return mode
    sgid = mode & stat.S_IXGRP or not cred.in_group_or_capable(gid)
    return mode & ~(stat.S_ISUID | (stat.S_ISGID if sgid else 0))


def may_mknod(cred: Cred, mode: int, rdev: int) -> bool:
    """Whether `cred` may make a node of full mode `mode` and device `rdev` (Linux's vfs_mknod).

    A character or block device needs root (CAP_MKNOD), bar a whiteout
    (character device 0:0); fifos, sockets and regular files do not.
    """
    device = stat.S_ISBLK(mode) or (stat.S_ISCHR(mode) and rdev != 0)
    return cred.root or not device


def may_link(cred: Cred, mode: int, uid: int, gid: int) -> bool:
    """Whether `cred` may make a hard link to an object (Linux's protected_hardlinks rule).

    Its owner and root may; anyone else only to a regular file that is neither
    setuid nor setgid-and-group-executable, and that they may read and write.
    """
    if cred.root or cred.uid == uid:
        return True
    both = stat.S_ISGID | stat.S_IXGRP
    if not stat.S_ISREG(mode) or mode & stat.S_ISUID or mode & both == both:
        return False
    return may_access(cred, mode, uid, gid, R_OK | W_OK)


def check_new_group(cred: Cred, parent_mode: int, gid: int, what: str) -> None:
    """A bounded peer makes an object in a group of its own only (EPERM, as a chown by an
    owner who is not root): the group a create asks for is not taken as given."""
    if cred.bounded and not parent_mode & stat.S_ISGID and gid not in cred.gids | {cred.gid}:
        raise OSError(errno.EPERM, f"{what}: uid {cred.uid} is not in group {gid}")


def new_file_gid(parent_mode: int, parent_gid: int, cred_gid: int) -> int:
    """The group of a new object: the parent's if the parent is setgid, else the creator's."""
    return parent_gid if parent_mode & stat.S_ISGID else cred_gid


def new_mode(cred: Cred, parent_mode: int, parent_gid: int, mode: int) -> int:
    """The mode of a new object asked as `mode` (type bits included; umask already applied).

    In a setgid directory, a new directory inherits setgid; a new file asking
    for setgid and group execute loses setgid unless the creator is in the
    parent's group.
    """
    if not parent_mode & stat.S_ISGID:
        return mode
    if stat.S_ISDIR(mode):
        return mode | stat.S_ISGID
    both = stat.S_ISGID | stat.S_IXGRP
    if mode & both == both and not cred.in_group_or_capable(parent_gid):
        return mode & ~stat.S_ISGID
    return mode


# ---- the same rules raising the errno Linux gives ----


def _verbs(want: int) -> str:
    names = [v for bit, v in ((R_OK, "read"), (W_OK, "write"), (X_OK, "execute")) if want & bit]
    return "+".join(names) or "access"


def _who(cred: Cred) -> str:
    return "root" if cred.root else f"uid {cred.uid}"


def check(allowed: bool, code: int, message: str) -> None:
    """Raise OSError(`code`, `message`) unless `allowed`."""
    if not allowed:
        raise OSError(code, message)


def check_access(cred: Cred, mode: int, uid: int, gid: int, want: int, what: str) -> None:
    """EACCES unless `may_access`; `what` names the object in the message."""
    check(
        may_access(cred, mode, uid, gid, want),
        errno.EACCES,
        f"{_who(cred)} may not {_verbs(want)} {what} (mode {mode & 0o7777:04o},"
        f" owner {uid}, group {gid})",
    )


def check_delete(
    cred: Cred, dir_mode: int, dir_uid: int, dir_gid: int, file_uid: int, what: str
) -> None:
    """EACCES without write and search on the directory; EPERM from the sticky bit rule."""
    check_access(cred, dir_mode, dir_uid, dir_gid, W_OK | X_OK, f"the directory of {what}")
    check(
        _sticky_allows(cred, dir_mode, dir_uid, file_uid),
        errno.EPERM,
        f"{_who(cred)} may not remove {what} (owner {file_uid}) from a sticky directory"
        f" owned by uid {dir_uid}",
    )


def check_chmod(cred: Cred, owner_uid: int, what: str) -> None:
    """EPERM unless `may_chmod`."""
    check(
        may_chmod(cred, owner_uid),
        errno.EPERM,
        f"{_who(cred)} may not change the mode of {what}: owned by uid {owner_uid}",
    )


def check_chown(
    cred: Cred,
    cur_uid: int,
    cur_gid: int,
    new_uid: int | None,
    new_gid: int | None,
    what: str,
) -> None:
    """EPERM unless `may_chown`."""
    check(
        may_chown(cred, cur_uid, cur_gid, new_uid, new_gid),
        errno.EPERM,
        f"{_who(cred)} may not change {what} (owner {cur_uid}, group {cur_gid}) to owner"
        f" {'unchanged' if new_uid is None else new_uid},"
        f" group {'unchanged' if new_gid is None else new_gid}",
    )


def check_mknod(cred: Cred, mode: int, rdev: int, what: str) -> None:
    """EPERM unless `may_mknod`."""
    check(
        may_mknod(cred, mode, rdev),
        errno.EPERM,
        f"{_who(cred)} may not make device node {what}: only root may (CAP_MKNOD)",
    )


def check_link(cred: Cred, mode: int, uid: int, gid: int, what: str) -> None:
    """EPERM unless `may_link`."""
    check(
        may_link(cred, mode, uid, gid),
        errno.EPERM,
        f"{_who(cred)} may not link to {what} (mode {mode & 0o7777:04o}, owner {uid}):"
        " protected hard links",
    )
