"""What one attach shows, allows and makes: the interface of its one `Policy`.

The policy is chosen once per attach, from its options: `Stored` with
`metadata` on (`volfs.policy_stored`: mode, uid, gid and rdev stored in
extended attributes over the host's, enforced for the attached user by
`volfs.access`, new objects made with them), else `Plain`
(`volfs.policy_plain`: WSL's view, the host's own permissions apply, plain
host objects). The Files of the attach (`volfs.node`) ask it everything
metadata decides; they never read the metadata attributes themselves.

Whatever a client asks, the host objects it makes or changes never carry
setuid, setgid or sticky bits (`host_perms`), and are never chowned: the
server acts on the host as one identity, and a client's claims shape only what
that client is shown.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import ClassVar

from ninep.backend import SetAttr
from ninep.messages import Qid

from .access import W_OK, X_OK, Cred, open_want
from .descriptors import Entry
from .metadata import Effective, Metadata
from .options import AttachOptions
from .racy import Memo
from .site import Make

SPECIAL_TYPES = frozenset((stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK))


def host_perms(asked: int) -> int:
    """The host permission bits a client's request for mode `asked` may give: never setuid,
    setgid or sticky."""
    return asked & 0o777


def is_special(shown: Effective) -> bool:
    """Whether `shown` is a fifo, socket or device node (never opened on the server)."""
    return stat.S_IFMT(shown.mode) in SPECIAL_TYPES


class Policy:
    """The view, the rules and the new objects of one attach, for the attached user `cred`.

    `Policy(opts, cred)` is the one its options choose, as `pathlib.Path()` is a
    `PosixPath`: a `Stored` with metadata on, else a `Plain`. Both implement every
    method that raises NotImplementedError here.
    """

    stored_types: ClassVar[bool]
    """Whether a listing shows the types kept in attributes (`VolHandle`)."""

    def __new__(cls, opts: AttachOptions, cred: Cred) -> Policy:
        kind = cls
        if cls is Policy:
            kind = policy_stored.Stored if opts.metadata else policy_plain.Plain
        return super().__new__(kind)

    def __init__(self, opts: AttachOptions, cred: Cred) -> None:
        self.cred = cred
        self._opts = opts

    # ---- the view ----

    def view(self, fd: int, st: os.stat_result, memo: Memo[Metadata] | None = None) -> Effective:
        """What a client is shown for the object of O_PATH fd `fd` and host stat `st`, just
        taken; `memo`: the object's stored metadata as last read (`volfs.racy`)."""
        raise NotImplementedError

    def view_entry(
        self, dirfd: int, host: str, st: os.stat_result, memo: Memo[Metadata] | None = None
    ) -> Effective | None:
        """As `view`, for entry (host name) `host` of directory `dirfd` with no descriptor of
        its own, `st` its lstat just taken; None if the name did not hold the same object,
        unchanged, meanwhile (then ask `view` through a descriptor)."""
        raise NotImplementedError

    def qid(self, fd: int, st: os.stat_result, memo: Memo[Metadata] | None = None) -> Qid:
        """The qid of the object: its type as shown (a stored symlink is a SYMLINK)."""
        raise NotImplementedError

    # ---- the checks ----

    def check(self, shown: Effective, want: int, what: str) -> None:
        """EACCES unless the user may `want` (R_OK|W_OK|X_OK) the object shown so."""
        raise NotImplementedError

    def check_search(self, shown: Effective) -> None:
        """A lookup in a directory: search permission."""
        self.check(shown, X_OK, "the directory")

    def check_create(self, parent: Effective) -> None:
        """Making an entry in directory `parent`: write and search."""
        self.check(parent, W_OK | X_OK, "the directory")

    def check_open(self, shown: Effective, flags: int) -> None:
        """Opening an existing object with client flags `flags`."""
        self.check(shown, open_want(flags), "the file")

    def check_walk(self, entry: Entry) -> os.stat_result | None:
        """Before a walk from the object of `entry`: search permission checked if it is a
        directory; its fstat if that took it (so that a walk stats it at most once)."""
        raise NotImplementedError

    def check_unlink(self, dirfd: int, host: str) -> None:
        """Entry `host` may be removed from directory `dirfd`: write, search, sticky bit."""
        raise NotImplementedError

    def check_move(self, src_dirfd: int, src: str, dest: Entry, target: str | None) -> None:
        """Entry `src` may leave directory `src_dirfd`, enter directory `dest` and replace
        its entry `target`."""
        raise NotImplementedError

    def check_xattr_write(self, shown: Effective) -> None:
        """Setting or removing an extended attribute: write permission (or the owner)."""
        raise NotImplementedError

    def check_link(self, shown: Effective) -> None:
        """Making a hard link to the object shown so: the protected_hardlinks rule."""
        raise NotImplementedError

    # ---- changes ----

    def chmod_chown(self, entry: Entry, attr: SetAttr, opened_for_write: bool) -> int:
        """The mode, owner and group parts of Tsetattr `attr` on the object of `entry`, checked
        and made; the SetattrMask bits left for the host (size and times, checked).
        `opened_for_write`: the fid is open for writing (a size change is an ftruncate)."""
        raise NotImplementedError

    def write_guard(self) -> Callable[[int], None] | None:
        """What is called with a regular file's fd (any kind) before each write to it or
        truncation by open; None where that changes no metadata."""
        raise NotImplementedError

    # ---- new objects ----

    def settle(self, mode: int) -> int | None:
        """The host permissions a new object asked with `mode` gets once made (`host_perms`
        of them), or None to leave those it was made with."""
        raise NotImplementedError

    def make_file(self, parent: Effective, flags: int, mode: int, gid: int) -> Make[int | None]:
        """A regular file in directory `parent`, opened with client `flags` (a counted
        handle); None if another made the name meanwhile (the caller opens that one)."""
        raise NotImplementedError

    def make_dir(self, parent: Effective, mode: int, gid: int, case_flag: bool) -> Make[None]:
        """A directory; with the case flag if `case_flag`."""
        raise NotImplementedError

    def make_symlink(self, parent: Effective, target: str, gid: int) -> Make[None]:
        """A symlink to `target`."""
        raise NotImplementedError

    def make_node(
        self, parent: Effective, mode: int, rdev: tuple[int, int], gid: int, what: str
    ) -> Make[None]:
        """mknod of `what` with full mode `mode` and device numbers `rdev`."""
        raise NotImplementedError


from . import policy_plain, policy_stored  # noqa: E402  (they implement the Policy above)
