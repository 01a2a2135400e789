"""Folded indexes of case-insensitive directories: a lookup that misses lists nothing.

One index per host directory, keyed by its (st_dev, st_ino) and shared by every
attach of the export: fold key -> the host names with that key, the one whose
shown name is least in code-point order first (the one a folded lookup finds).

Each use checks the index against the directory with one fstat: its stamp
(st_ino, st_mtime_ns, st_ctime_ns) must be the one the index was built or last
updated with, else the index is rebuilt from a fresh listing (in a worker
thread). Changes the export itself makes are applied to the index in place
(`changing`), when the stamp just before the change still matched.

A stamp can miss a change that lands in the same timestamp tick as the one it
records (filesystems stamp with a coarse clock; some store whole seconds). So
an index is *trusted* only when the directory's ctime was already settled
(`volfs.racy`) when its listing began: any later change then gets a later ctime. Other
indexes (the directory had just changed, or the export has since changed it
itself, when a host change could slip between the two fstats around its own
change) are rechecked by a new listing once `settle_ns` or ten times the last
listing's duration has passed since the last listing, whichever is longer:
such a change is seen within that delay, and a directory changed without
pause is listed at most that often.

Where the export's inotify watcher covers the directory (`follow`), a trusted
index stays trusted through the export's own changes (*watched*): a host
change that slips between the fstats is reported by inotify, and each
reported change is checked against the index (`changed`), which is dropped
if it does not show it (a report that comes while the export changes that
directory itself is held until the index follows that change); before a
watched index is used the watcher's queue is read (`drain`), so a change made
before the lookup began is never missed.
Losing changes (an overflow) or the watch drops every watched index. The
stamp is still checked at each use.
"""

from __future__ import annotations

import bisect
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from ninep.constants import ChangeKind
from ninep.notify import ChangeHub

from .casefold import fold
from .hostio import in_thread, proc_path
from .racy import SETTLE_NS, settled

Stamp = tuple[int, int, int]  # st_ino, st_mtime_ns, st_ctime_ns

RECHECK_FACTOR = 10  # an untrusted index is relisted at most once per 10 listing times
MAX_DIRS = 256  # indexes kept, least recently used dropped first


def stamp_of(st: os.stat_result) -> Stamp:
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(slots=True)
class _Index:
    stamp: Stamp
    names: dict[str, list[str]]  # fold key -> host names, the folded lookup's answer first
    trusted: bool
    recheck_ns: int  # when an untrusted index is listed again
    listing_ns: int  # how long its listing took
    watched: bool = False  # trusted through the export's own changes: inotify covers it


class Watched(Protocol):
    """What reports every change of the directories it covers (`ninep.watch.Watcher`)."""

    changes: ChangeHub

    def covered(self, dir: int) -> bool: ...

    def drain(self) -> None: ...


@dataclass(slots=True)
class ExportChange:
    """The host names a change added to and removed from one directory."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class DirIndexes:
    """The folded indexes of one export's directories; `show` maps host names to shown."""

    def __init__(
        self, show: Callable[[str], str], *, settle_ns: int = SETTLE_NS, max_dirs: int = MAX_DIRS
    ) -> None:
        self._show = show
        self._settle_ns = settle_ns
        self._max_dirs = max_dirs
        self._indexes: OrderedDict[tuple[int, int], _Index] = OrderedDict()
        self.listings = 0  # directory listings made so far (for tests and benchmarks)
        self._watcher: Watched | None = None
        self._watched: dict[int, tuple[int, int]] = {}  # qid path -> key of a watched index
        # directories (qid paths) the export is changing -> the reports held until it is done
        self._held: dict[int, list[tuple[ChangeKind, str]]] = {}

    def follow(self, watcher: Watched) -> None:
        """Keep indexes trusted through the export's own changes in directories `watcher`
        covers (see the module's docstring)."""
        self._watcher = watcher
        watcher.changes.observe(self)

    def key_of(self, host_name: str) -> str:
        """The fold key of a host name (of the name it is shown as)."""
        return fold(self._show(host_name))

    async def find(self, dirfd: int, name: str, st: os.stat_result | None = None) -> str | None:
        """The host name a folded lookup of shown name `name` finds in directory `dirfd`
        (`st`: its fstat, if this operation has just taken it)."""
        st = os.fstat(dirfd) if st is None else st
        key = (st.st_dev, st.st_ino)
        index = self._indexes.get(key)
        if index is not None and index.watched and self._watcher is not None:
            self._watcher.drain()  # what the host did so far is checked against it first
            index = self._indexes.get(key)
        if index is None or not self._usable(index, st):
            index = await in_thread(self._build, dirfd)
            self._indexes[key] = index
            while len(self._indexes) > self._max_dirs:
                self._indexes.popitem(last=False)
        self._indexes.move_to_end(key)
        found = index.names.get(fold(name))
        return found[0] if found else None

    @staticmethod
    def _usable(index: _Index, st: os.stat_result) -> bool:
        if index.stamp != stamp_of(st):
            return False
        return index.trusted or time.time_ns() < index.recheck_ns

    def _build(self, dirfd: int) -> _Index:
        """A new index of directory `dirfd` from a listing. Blocking: run in a thread."""
        start = time.time_ns()
        fd = os.open(proc_path(dirfd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            listing = os.listdir(fd)
        finally:
            os.close(fd)
        names: dict[str, list[str]] = {}
        for host in listing:
            names.setdefault(self.key_of(host), []).append(host)
        for same in names.values():
            if len(same) > 1:
                same.sort(key=self._show)
        took = time.time_ns() - start
        self.listings += 1
        trusted = settled(st, start, self._settle_ns)
        return _Index(stamp_of(st), names, trusted, self._recheck(start, took), took)

    def _recheck(self, listed_ns: int, took_ns: int) -> int:
        return listed_ns + max(self._settle_ns, RECHECK_FACTOR * took_ns)

    @contextmanager
    def changing(self, dirfd: int) -> Iterator[ExportChange]:
        """Bracket a change the export makes in directory `dirfd`.

        The caller records in the ExportChange each host call that went through, as it
        goes; when the block ends, even by an error, the index follows those if it
        was current just before, and is dropped if it was not.
        """
        before = os.fstat(dirfd)
        change = ExportChange()
        outer = before.st_ino not in self._held
        held = self._held.setdefault(before.st_ino, [])  # what the watcher reports meanwhile
        try:
            yield change
        finally:
            try:
                if change.added or change.removed:
                    self._follow(dirfd, before, change)
            finally:
                if outer:  # checked against the index once it follows the change
                    del self._held[before.st_ino]
                    for kind, name in held:
                        self.changed(before.st_ino, kind, name)

    def _follow(self, dirfd: int, before: os.stat_result, change: ExportChange) -> None:
        key = (before.st_dev, before.st_ino)
        index = self._indexes.get(key)
        if index is None:
            return
        if index.stamp != stamp_of(before):
            del self._indexes[key]
            return
        for host in change.removed:
            self._remove(index, host)
        for host in change.added:
            self._add(index, host)
        index.stamp = stamp_of(os.fstat(dirfd))
        watcher = self._watcher
        if index.trusted and watcher is not None and watcher.covered(before.st_ino):
            index.watched = True
            self._watched[before.st_ino] = key
        elif index.trusted:
            index.trusted = False
            index.recheck_ns = self._recheck(time.time_ns(), index.listing_ns)

    # ---- the watcher's reports (`ninep.notify.Observer`) ----

    def changed(self, dir: int, kind: ChangeKind, name: str) -> None:
        """A change the watcher reports: a watched index that does not show it is dropped
        (a change of the export's own that it does show is no news)."""
        held = self._held.get(dir)
        if held is not None:  # the export is changing it: checked once the index follows
            held.append((kind, name))
            return
        key = self._watched.get(dir)
        index = self._indexes.get(key) if key is not None else None
        if index is None or not index.watched:
            self._watched.pop(dir, None)
            return
        if kind in (ChangeKind.CREATED, ChangeKind.RENAMED_TO, ChangeKind.REMOVED,
                    ChangeKind.RENAMED_FROM):  # fmt: skip
            host = self._show(name)
            shown = host in index.names.get(self.key_of(host), ())
            if shown == (kind in (ChangeKind.CREATED, ChangeKind.RENAMED_TO)):
                return
        elif kind != ChangeKind.UNCOVERED:
            return
        assert key is not None
        del self._indexes[key], self._watched[dir]

    def lost(self) -> None:
        """Changes were lost: no watched index can be relied on."""
        for key in self._watched.values():
            index = self._indexes.get(key)
            if index is not None and index.watched:
                del self._indexes[key]
        self._watched.clear()

    def _add(self, index: _Index, host: str) -> None:
        same = index.names.setdefault(self.key_of(host), [])
        if host not in same:
            bisect.insort(same, host, key=self._show)

    def _remove(self, index: _Index, host: str) -> None:
        key = self.key_of(host)
        same = index.names.get(key)
        if same is not None and host in same:
            same.remove(host)
            if not same:
                del index.names[key]
