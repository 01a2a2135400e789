"""Change notification for volfs Nodes (`ninep.backend.Watchable`): the export's
inotify `Watcher` (`ninep.watch`) watches the directories clients reach."""

from __future__ import annotations

from ninep.constants import QidType
from ninep.messages import Qid
from ninep.notify import Changes
from ninep.watch import Watcher

from .descriptors import Entry, Operation


def _watcher(export: object) -> Watcher | None:
    watcher = getattr(export, "watcher", None)  # a VolExport's
    return watcher if isinstance(watcher, Watcher) else None


def watch(export: object, entry: Entry, qid: Qid) -> Changes | None:
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
