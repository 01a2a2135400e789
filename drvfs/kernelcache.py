"""Dropping what the kernel caches: a name of a directory, or an inode's attributes and pages.

Each call returns once the kernel is done, which may take a while: an entry's
invalidation waits while the kernel holds its directory's lock for a request,
and with the writeback cache an inode's dirty pages are written back first,
both of them waiting on drvfs itself. So callers run these in a worker thread,
never in drvfs's event loop (the deadlock libfuse documents). That the kernel
holds nothing to drop (ENOENT) is no error.
"""

from __future__ import annotations

import logging

import pyfuse3

from .operation import name_bytes

log = logging.getLogger("drvfs")


def drop_entry(parent: int, name: str, deleted: int = 0) -> None:
    """Drop name `name` of directory inode `parent`. With `deleted` (the inode it named),
    tell the kernel that file is gone too (inotify watchers of the mount see IN_DELETE);
    where the kernel refuses that (a directory with cached entries), drop the name only."""
    try:
        pyfuse3.invalidate_entry(parent, name_bytes(name), deleted=deleted)
    except OSError as e:  # ENOENT: not cached; ENOTEMPTY: a directory with cached entries
        if deleted:
            drop_entry(parent, name)
        else:
            log.debug("invalidating %r in %d: %s", name, parent, e)


def drop_inode(ino: int, attr_only: bool = False) -> None:
    """Drop the attributes of inode `ino` and, unless `attr_only`, its pages (a directory's
    cached listing with them)."""
    try:
        pyfuse3.invalidate_inode(ino, attr_only=attr_only)
    except OSError as e:  # ENOENT: the kernel holds nothing of it
        log.debug("invalidating inode %d: %s", ino, e)
