"""Change notification for volfs Nodes (`ninep.backend.Watchable`): the export's
inotify `Watcher` (`ninep.watch`) watches the directories clients reach."""

from __future__ import annotations

import os

from ninep.constants import QidType
from ninep.messages import Qid
from ninep.notify import ChangeHub
from ninep.watch import Watcher

from .descriptors import Entry, Operation
from .hostio import proc_path


def _watcher(export: object) -> Watcher | None:
    watcher = getattr(export, "watcher", None)  # a VolExport's
    return watcher if isinstance(watcher, Watcher) else None


def watch(export: object, entry: Entry, qid: Qid) -> ChangeHub | None:
    """Watch the object of `entry` if a directory; the export's changes."""
    watcher = _watcher(export)
    if watcher is None:
        return None
    if qid.type & QidType.DIR and not watcher.covered(qid.path):
        with Operation():
            watcher.watch(entry.fd, qid.path)
    return watcher.changes


def place(export: object, entry: Entry) -> tuple[int, str] | None:
    """(qid path of the directory holding `entry`'s object, its name as clients see it)."""
    watcher = _watcher(export)
    if watcher is None or entry.parent is None:
        return None
    return entry.parent.ident[1], watcher.show(entry.name)  # a qid path is the inode number


def empty(entry: Entry) -> bool:
    """Whether the directory of `entry` has no entry (one read of its first entries)."""
    with Operation():
        fd = os.open(proc_path(entry.fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with os.scandir(fd) as entries:
            return next(entries, None) is None
    finally:
        os.close(fd)
