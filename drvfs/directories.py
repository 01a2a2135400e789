"""Directories between the kernel's requests: the attributes each name change of this mount
brings back, answered to the kernel's next GETATTR of the directory.

The kernel drops a directory's attributes after every name change in it
(`fuse_dir_changed`) and, with `default_permissions`, asks them again
before the next lookup there. On a connection with the second set of
extensions each name change answers the directory's attributes after it
(`dattr`, docs/protocol-extensions.md): they are kept on the directory's
node (`Inode.fresh`) and answer that GETATTR, once, with no request.

Every change of a directory's names seen here counts on its node
(`Inode.changes`): this mount's own, from when its request is sent
(`changing`), and another client's, from its notification (`notified`). The
attributes a change brought are kept only if the count did not move while it
ran (no other change may have come after them), and a notified change drops
them, as does any other change of the directory's own attributes through this
mount (`touched`: a setattr, an xattr change, a rename of it). In a directory
that is not covered (no notification), they answer only within
`attr_timeout` of their arrival, as the kernel would have kept them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import trio

from ninep.client import Attr

from .inodes import Inode

if TYPE_CHECKING:
    from .notified import Coverage


class Change:
    """This mount's change of names in one directory, under way."""

    def __init__(self, directory: Inode) -> None:
        directory.changes += 1
        directory.fresh = None
        self.directory = directory
        self._count = directory.changes

    def done(self, attr: Attr | None) -> None:
        """The change is made; `attr`: the directory's attributes after it (None: not given),
        kept unless another change came meanwhile."""
        node = self.directory
        if attr is not None and node.changes == self._count:
            node.fresh = (attr, trio.current_time())


class Directories:
    """The attributes of directories after this mount's changes, until the kernel asks."""

    def __init__(self, coverage: Coverage, attr_timeout: float) -> None:
        self._coverage = coverage
        self._attr_timeout = attr_timeout

    @contextmanager
    def changing(self, *directories: Inode) -> Iterator[tuple[Change, ...]]:
        """Bracket this mount's change of names in `directories` (a Change for each; one
        for a directory named twice)."""
        changes = {d: Change(d) for d in dict.fromkeys(directories)}
        yield tuple(changes[d] for d in directories)

    @staticmethod
    def touched(node: Inode) -> None:
        """The names or attributes of `node` changed otherwise: by another client (notified),
        or by this mount's setattr, xattr change or rename of it."""
        node.changes += 1
        node.fresh = None

    def attributes(self, node: Inode) -> Attr | None:
        """The attributes of `node` after this mount's last change there, if they still
        hold; once."""
        fresh, node.fresh = node.fresh, None
        if fresh is None:
            return None
        attr, since = fresh
        if self._coverage.covered(node.ino) or trio.current_time() - since <= self._attr_timeout:
            return attr
        return None
