"""The one identity the server acts as on the host (`--user`, `--allow-root`).

The server binds its listeners, then becomes the serving user with that user's
groups, for good (real, effective and saved ids), before it opens an export.
Root serves only when asked to on purpose.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    """A host user: name, uid, primary gid and every group."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def lookup_user(name: str) -> Identity:
    """The user `name` (or a numeric uid) in the host's databases; ValueError if unknown."""
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"no user {name!r} on this host") from None
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    return Identity(entry.pw_name, entry.pw_uid, entry.pw_gid, tuple(groups))


def lookup_group(name: str) -> int:
    """The gid of group `name` (or a numeric gid); ValueError if unknown."""
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ValueError(f"no group {name!r} on this host") from None


def become(user: Identity) -> None:
    """Act as `user` from now on; PermissionError if this process may not."""
    if os.geteuid() == user.uid != 0:
        return  # already that user
    os.setgroups(list(user.groups))
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)


def root_refusal(user: Identity | None, allow_root: bool) -> str | None:
    """Why the server may not start as it is, or None: root serves only on purpose."""
    if os.geteuid() == 0 and user is None and not allow_root:
        return (
            "refusing to serve as root: give --user NAME to serve as that user"
            " (root then only binds the listeners), or --allow-root to serve as root on purpose"
        )
    if user is not None and os.geteuid() not in (0, user.uid):
        return f"--user {user.name} needs root (this process is uid {os.geteuid()})"
    return None
