"""Change notification: the kernel caches long where the server reports every change, and
each reported change invalidates precisely what it makes stale (docs/protocol-extensions.md,
Tnotify/Rnotify).

After attaching on an extended connection, `Notifications.run` keeps a Tnotify
pending on the root fid (`Fid.changes()`). A directory whose attributes come
with bit 63 of `valid` (NOTIFY_COVERED) is *covered*: from that reply on, the
server reports each change of its entries, so the names looked up in it and
the attributes of its files are given to the kernel with `covered_timeout`
(`Coverage`, used by `drvfs.entries`); elsewhere the short timeouts stay. On a
plain connection, or an export without notification, nothing is covered and
drvfs caches as before.

Each change, mapped from its directory's qid path to the inode, becomes the
kernel invalidation it calls for: a name made, removed or renamed drops that
name (and the case variants the kernel was given of it, `InodeTable`), with
the delete notification for a removed file the kernel knew (which inotify
watchers of the mount see as IN_DELETE), and drops the directory's attributes
and listing; ATTRIB drops the attributes of the entry (or of the directory);
DATA its attributes and pages; UNCOVERED ends the coverage and drops what was
cached long in it. An overflow, a lost connection and a reconnection drop
everything the kernel was given. Changes marked OWN (made through this
connection) are skipped: the kernel's cache already holds their outcome, which
this mount's own operations gave it.

The invalidations go out from this task, a batch at a time, in a worker
thread: an invalidation of an entry waits while the kernel holds its
directory's lock for a request, and that request waits for this event loop,
which the thread leaves free (the deadlock libfuse documents). The next
Tnotify goes out when a batch is done: a client slower than the host's
changes ends in an overflow, never in unbounded memory on either side.
"""

from __future__ import annotations

import functools
import logging
import stat
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from ninep.client import Attr, Changes
from ninep.constants import NOTIFY_COVERED, ChangeFlag, ChangeKind

from .inodes import ROOT, InodeTable
from .kernelcache import drop_entry, drop_inode
from .remote import Attachment, Remote

if TYPE_CHECKING:
    from .directories import Directories

log = logging.getLogger("drvfs")

_NAMING = {ChangeKind.CREATED, ChangeKind.REMOVED, ChangeKind.RENAMED_FROM, ChangeKind.RENAMED_TO}
ROOT_PROBES = (0.0, 0.02, 0.1, 0.5, 2.0)  # seconds before each getattr of the root, until covered

Invalidation = Callable[[], None]


class Coverage:
    """The directories (inodes) whose changes the live connection's Tnotify reports."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout  # what is cached in a covered directory, in seconds
        self.active = False  # a Tnotify stream runs on the live connection
        self._dirs: set[int] = set()

    def note(self, ino: int, attr: Attr) -> Attr:
        """`attr` of inode `ino`, just received, without the coverage bit; records the bit."""
        if attr.valid & NOTIFY_COVERED:
            attr.valid &= ~NOTIFY_COVERED
            if self.active and stat.S_ISDIR(attr.mode):
                self._dirs.add(ino)
        return attr

    def covered(self, ino: int) -> bool:
        return ino in self._dirs

    def discard(self, ino: int) -> bool:
        """End the coverage of `ino`; whether it was covered."""
        if ino in self._dirs:
            self._dirs.discard(ino)
            return True
        return False

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False
        self._dirs.clear()


class Notifications:
    """The task that follows the server's changes and invalidates the kernel's caches."""

    def __init__(
        self, remote: Remote, inodes: InodeTable, coverage: Coverage, directories: Directories
    ) -> None:
        self._remote = remote
        self._inodes = inodes
        self._coverage = coverage
        self._directories = directories
        self._closing = threading.Lock()  # held while invalidating; `closed` once unmounted
        self._closed = False
        self.drops = 0  # full cache drops (overflow, lost connection, reconnection)
        self.batches = 0

    async def run(self) -> None:
        """Follow each connection's changes, from the current one on, until cancelled."""
        number = 0
        while True:
            a = await self._remote.attached(number)
            if number:  # what was cached before may have changed unseen: drop it all
                await self.drop_all("reconnected")
            number = a.number
            followed = False
            try:
                followed = await self._follow(a)
            except Exception as e:  # the connection was lost
                followed = True
                log.info("change notification ended: %r", e)
            self._coverage.stop()
            if followed:
                await self.drop_all("the connection's changes are no longer followed")

    async def _follow(self, a: Attachment) -> bool:
        """Apply the changes of connection `a` while it lasts; whether it had any to give."""
        self._coverage.start()
        followed = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._probe_root, a)
            async for batch in a.root.changes(others_only=True):
                followed = True
                await self._apply(batch)
            nursery.cancel_scope.cancel()
        if not followed:
            log.info("the server notifies no changes: short cache timeouts everywhere")
        return followed

    async def _probe_root(self, a: Attachment) -> None:
        """Learn whether the root is covered (its Tnotify's fid is, once the Tnotify is in):
        the kernel asks the root's attributes rarely."""
        for delay in ROOT_PROBES:
            await trio.sleep(delay)
            self._coverage.note(ROOT, await a.root.getattr())
            if self._coverage.covered(ROOT):
                return

    async def _apply(self, batch: Changes) -> None:
        self.batches += 1
        if batch.overflow:
            await self.drop_all("the server lost changes (overflow)")
            return
        todo: list[Invalidation] = []
        listings: set[int] = set()
        for change in batch.changes:
            if change.flags & ChangeFlag.OWN:
                continue  # this mount made it: the kernel got its outcome
            parent = self._inodes.ino(change.dir)
            node = self._inodes.get(parent)
            if node is None:
                continue  # the kernel knows nothing of that directory, nor of what is in it
            self._directories.notified(node, change.kind, change.name)
            todo.extend(self._invalidations(parent, change.kind, change.name))
            if change.kind in _NAMING:
                listings.add(parent)
        todo.extend(_inode(ino, attr_only=False) for ino in listings)
        await self._run(todo)

    def _invalidations(self, parent: int, kind: int, name: str) -> list[Invalidation]:
        """What change `kind` of `name` in directory `parent` makes the kernel drop."""
        inodes = self._inodes
        if kind in _NAMING:
            child = inodes.ino_named(parent, name) if kind == ChangeKind.REMOVED else None
            # The records stay: this mount's own operations on the name (`CaseVariants`)
            # still need them, and the kernel's FORGET ends them.
            variants = inodes.variants(parent, name)
            return [_entry(parent, name, child or 0)] + [_entry(parent, v) for v in variants]
        if kind in (ChangeKind.ATTRIB, ChangeKind.DATA):
            target = inodes.ino_named(parent, name) if name else parent
            node = inodes.get(target) if target is not None else None
            if node is None:
                return []
            node.given = None
            return [_inode(node.ino, attr_only=kind == ChangeKind.ATTRIB)]
        if kind == ChangeKind.UNCOVERED and self._coverage.discard(parent):
            log.debug("directory %d is no longer covered", parent)
            todo = [_inode(parent, attr_only=False)]  # and its listing, if the kernel cached it
            for n, ino in inodes.names_in(parent):
                todo.append(_entry(parent, n))
                if ino:
                    todo.append(_inode(ino, attr_only=True))
            return todo
        return []

    async def drop_all(self, why: str) -> None:
        """Drop every name, attribute and page the kernel was given (and what drvfs knows
        of the directories' names)."""
        self.drops += 1
        self._directories.drop_all()
        todo = [_entry(parent, name) for parent, name, _ in self._inodes.all_names()]
        names = len(todo)
        for ino in self._inodes.inos():
            node = self._inodes.get(ino)
            if node is not None:
                node.given = None
                self._directories.touched(node)
            todo.append(_inode(ino, attr_only=False))
        await self._run(todo)
        log.info("%s: dropped every cached name (%d) and inode (%d)", why, names, len(todo) - names)

    async def _run(self, todo: list[Invalidation]) -> None:
        if todo:
            await trio.to_thread.run_sync(self._invalidate, todo, abandon_on_cancel=True)

    def _invalidate(self, todo: list[Invalidation]) -> None:
        """In a worker thread: each invalidation, unless the filesystem is unmounted."""
        for invalidation in todo:
            with self._closing:
                if self._closed:
                    return
                invalidation()

    def close(self, timeout: float = 2.0) -> None:
        """No invalidation from now on (before the FUSE session closes)."""
        acquired = self._closing.acquire(timeout=timeout)
        self._closed = True
        if acquired:
            self._closing.release()


def _entry(parent: int, name: str, deleted: int = 0) -> Invalidation:
    return functools.partial(drop_entry, parent, name, deleted)


def _inode(ino: int, attr_only: bool) -> Invalidation:
    return functools.partial(drop_inode, ino, attr_only)
