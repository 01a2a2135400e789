"""Change notification, apart from where changes come from: an export's hub and each
connection's bounded queue (Tnotify; docs/protocol-extensions.md).

A source (`ninep.watch`, inotify) publishes each change of a watched directory
to the export's `ChangeHub`, which fans it out to the `Subscription` of every
connection that sent a Tnotify. A subscription holds at most `limit` changes;
past that it holds none and answers OVERFLOW once, so a client that does not
collect costs the server a bounded amount of memory. A change made by a
request of one connection (and of no other) while it ran is marked OWN for it
(`ChangeHub.origin`), or not queued for it at all where it asked for the others'
only (Tnotifyflags OTHERS: `Subscription.others_only`). Observers (`Observer`)
see every change too, as it is published: the export's own caches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

import trio

from .constants import ChangeFlag, ChangeKind
from .messages import Change, change_size

Place = tuple[int, str]  # a directory's qid path and a name in it ("" for itself)


class Source(Protocol):
    """Where an export's changes come from (`ninep.watch.Watcher`)."""

    def drain(self) -> None:
        """Publish at once every change the host has already reported."""
        ...

    def covered(self, dir: int) -> bool:
        """Whether changes of the directory of qid path `dir` are reported."""
        ...


class Observer(Protocol):
    """What follows an export's changes apart from the connections (volfs's folded indexes)."""

    def changed(self, dir: int, kind: ChangeKind, name: str) -> None:
        """`kind` happened to `name` in the directory of qid path `dir` (as published)."""
        ...

    def lost(self) -> None:
        """Changes were lost: what relies on them must not any more."""
        ...


class Subscription:
    """One connection's changes not yet sent: at most `limit`, else an overflow."""

    def __init__(self, hub: ChangeHub, limit: int) -> None:
        self.hub = hub
        self.limit = limit
        self.overflowed = False
        self.others_only = False  # its own changes are not queued (Tnotifyflags OTHERS)
        self._changes: dict[Change, None] = {}  # ordered by last occurrence, each once
        self._arrived = trio.Event()

    def __len__(self) -> int:
        return len(self._changes)

    def put(self, change: Change) -> None:
        """Queue `change`: a change already queued moves to the end rather than repeat."""
        if self.overflowed:
            return
        if self._changes.pop(change, 0) is None or len(self._changes) < self.limit:
            self._changes[change] = None
        else:
            self.overflow()
            return
        self._arrived.set()

    def overflow(self) -> None:
        """Changes were lost: drop what is queued; the next answer is OVERFLOW."""
        self._changes.clear()
        self.overflowed = True
        self._arrived.set()

    async def take(self, room: int) -> tuple[bool, list[Change]]:
        """Wait for changes; (overflowed, the oldest that fit in `room` bytes of data)."""
        while not self._changes and not self.overflowed:
            self._arrived = trio.Event()
            await self._arrived.wait()
        if self.overflowed:
            self.overflowed = False
            return True, []
        batch: list[Change] = []
        for c in self._changes:
            room -= change_size(c.name)
            if room < 0 and batch:
                break
            batch.append(c)
        for c in batch:
            del self._changes[c]
        return False, batch

    def close(self) -> None:
        self.hub.unsubscribe(self)


class ChangeHub:
    """An export's hub of changes: what its source reports, to every subscription."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._subscriptions: list[Subscription] = []
        self._origins: dict[Place, Counter[Subscription]] = {}
        self._observers: list[Observer] = []

    def observe(self, observer: Observer) -> None:
        """Tell `observer` of every change published from now on, and of every loss."""
        self._observers.append(observer)

    def subscribe(self, limit: int) -> Subscription:
        sub = Subscription(self, limit)
        self._subscriptions.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def covered(self, dir: int) -> bool:
        return self.source.covered(dir)

    def publish(self, dir: int, kind: ChangeKind, name: str) -> None:
        """Hand a change to every observer and subscription (marked OWN for its only
        origin, if one)."""
        for observer in self._observers:
            observer.changed(dir, kind, name)
        origins = self._origins.get((dir, name))
        own = next(iter(origins)) if origins is not None and len(origins) == 1 else None
        for sub in self._subscriptions:
            if sub is not own:
                sub.put(Change(dir, kind, 0, name))
            elif not sub.others_only:
                sub.put(Change(dir, kind, ChangeFlag.OWN, name))

    def overflow(self) -> None:
        """The source lost changes: every observer is told, every subscription overflows."""
        for observer in self._observers:
            observer.lost()
        for sub in self._subscriptions:
            sub.overflow()

    @contextmanager
    def origin(self, sub: Subscription, places: Iterable[Place]) -> Iterator[None]:
        """Around a request of `sub`'s connection that changes `places`: what the host
        reports of them meanwhile is that connection's own. What it reported before is
        published first, and what the request made is published before the mark ends
        (the host queues a change before the call that made it returns)."""
        marked = list(places)
        self.source.drain()
        for place in marked:
            self._origins.setdefault(place, Counter())[sub] += 1
        try:
            yield
        finally:
            self.source.drain()
            for place in marked:
                origins = self._origins[place]
                origins[sub] -= 1
                if not origins[sub]:
                    del origins[sub]
                    if not origins:
                        del self._origins[place]
