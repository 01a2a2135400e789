"""Directories between the kernel's requests: the attributes each name change of this mount
brings back, and the names a covered directory lacks, answered without the server.

**Attributes after a change.** The kernel drops a directory's attributes
after every name change in it (`fuse_dir_changed`) and, with
`default_permissions`, asks them again before the next lookup there. On a
connection with the second set of extensions each name change answers the
directory's attributes after it (`dattr`, docs/protocol-extensions.md): they
are kept on the directory's node (`Inode.fresh`) and answer that GETATTR,
once, with no request.

Every change of a directory's names seen here counts on its node
(`Inode.changes`): this mount's own, from when its request is sent (`change`),
and another client's, from its notification (`notified`). The attributes a
change brought are kept only if the count did not move while it ran (no
other change may have come after them), and a notified change drops them,
as does any other change of the directory's own attributes through this
mount (`touched`: a setattr, an xattr change, a rename of it). In a directory
that is not covered (no notification), they answer only within
`attr_timeout` of their arrival, as the kernel would have kept them.

**Misses.** In a covered directory (the server reports every change of its
names: `drvfs.notified`), a lookup of a name that is not there is answered
ENOENT with no request where drvfs knows:

- the directory's complete listing (`_Listing`): read by one listing from
  its start to its end while no change of the directory was seen, or empty
  when this mount has just made it and the server watched it while still
  empty (Tmkdirattrs). It is kept by this mount's own changes and by the
  notified ones, and a name is missing when no listed name folds like it
  (`ninep.convert.fold`, the server's fold: in a case-sensitive directory a
  name that folds like a listed one is asked);
- or that the server answered ENOENT for that very name, or this mount
  removed it, within `covered_timeout`, while no change of the directory was
  seen (at most MAX_MISSES of them, the least recently recorded dropped
  first): a lock file made and removed again and again is asked once.

A miss is forgotten as soon as a name that folds like it is made there, by
this mount (when its request is sent) or by another client (when notified),
so that a case variant made meanwhile is never hidden; the kernel itself is
not given the miss to keep (but with `negative_timeout`), so every lookup of
it reaches this table. A listing errs only towards names that are gone: a
notified removal may be older than this mount's own remaking of the name,
and a removal of its own may cross a notified remaking, so neither removes a
name then (`_Listing.own`, the `quiet` check): such a name is asked of the
server, as without a listing. Listings hold at most MAX_LISTED names
in all, the least recently used dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import trio

from ninep.client import Attr
from ninep.constants import ChangeKind
from ninep.convert import fold

from .inodes import Inode

if TYPE_CHECKING:
    from .notified import Coverage

MAX_LISTED = 100_000  # names of complete listings kept, in all
MAX_MISSES = 4096  # names the server answered missing, kept
_ADDED = {ChangeKind.CREATED, ChangeKind.RENAMED_TO}
_REMOVED = {ChangeKind.REMOVED, ChangeKind.RENAMED_FROM}


class _Listing:
    """The names of a covered directory, complete: folded name -> the names that fold so."""

    __slots__ = ("names", "own", "size")

    def __init__(self, names: list[str]) -> None:
        self.names: dict[str, set[str]] = {}
        self.own: set[str] = set()  # added by this mount's changes: no notification removes them
        self.size = 0
        for name in names:
            self.add(name)

    def add(self, name: str) -> None:
        same = self.names.setdefault(fold(name), set())
        if name not in same:
            same.add(name)
            self.size += 1

    def remove(self, name: str) -> bool:
        """Remove `name`, or the one name that folds like it (a case-insensitive removal);
        False where that is ambiguous (the listing can no longer be relied on)."""
        key = fold(name)
        same = self.names.get(key, set())
        if name not in same:
            if len(same) > 1:
                return False
            name = next(iter(same), name)
        if name in same:
            same.discard(name)
            self.size -= 1
            if not same:
                del self.names[key]
        return True


class MountChange:
    """This mount's change of names in one directory, under way: `added` made there,
    `removed` removed from there (by a rename too). `added` may exist from the moment
    the request is sent: it is listed, and its misses forgotten, at once; `removed` is
    unlisted by `done`, unless another change was seen meanwhile (a change that fails is
    never done: whether it removed anything is not known, the name stays listed)."""

    def __init__(
        self, directories: Directories, node: Inode, added: str | None, removed: str | None
    ) -> None:
        node.changes += 1
        node.fresh = None
        self._directories = directories
        self.directory = node
        self._count = node.changes
        self._removed = removed
        if added is not None:
            directories.own(node, added, None, quiet=False)

    def done(self, attr: Attr | None) -> None:
        """The change is made; `attr`: the directory's attributes after it (None: not given),
        kept unless another change came meanwhile."""
        node = self.directory
        quiet = node.changes == self._count
        if attr is not None and quiet:
            node.fresh = (attr, trio.current_time())
        self._directories.own(node, None, self._removed, quiet)


class Directories:
    """The attributes of directories after this mount's changes, until the kernel asks; the
    complete listings and the misses of covered directories."""

    def __init__(self, coverage: Coverage, attr_timeout: float, covered_timeout: float) -> None:
        self._coverage = coverage
        self._attr_timeout = attr_timeout
        self._covered_timeout = covered_timeout
        self._listings: OrderedDict[int, _Listing] = OrderedDict()
        self._listed = 0  # names in `_listings`
        # (directory, folded name) -> the names the server answered missing, and when
        self._misses: OrderedDict[tuple[int, str], tuple[set[str], float]] = OrderedDict()
        self._missed_in: dict[int, set[str]] = {}  # directory -> its folded names in `_misses`

    def change(
        self, node: Inode, added: str | None = None, removed: str | None = None
    ) -> MountChange:
        """Bracket this mount's change of names in directory `node` (`MountChange`)."""
        return MountChange(self, node, added, removed)

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

    # ---- misses ----

    def missing(self, node: Inode, name: str) -> bool:
        """Whether `name` is known missing from directory `node`, with no request."""
        ino = node.ino
        if not self._coverage.covered(ino):
            return False
        listing = self._listings.get(ino)
        if listing is not None:
            self._listings.move_to_end(ino)
            return fold(name) not in listing.names
        missed = self._misses.get((ino, fold(name)))
        if missed is None or name not in missed[0]:
            return False
        if trio.current_time() - missed[1] > self._covered_timeout:
            self._unmiss(ino, fold(name))
            return False
        return True

    def missed(self, node: Inode, name: str, since: int) -> None:
        """The server answered that `name` is not in `node`, asked when its count of changes
        was `since`: kept if that still holds and the directory is covered."""
        if node.changes != since or not self._coverage.covered(node.ino):
            return
        self._miss(node.ino, name)

    def _miss(self, ino: int, name: str) -> None:
        key = (ino, fold(name))
        names = self._misses.pop(key, (set(), 0.0))[0]
        names.add(name)
        self._misses[key] = (names, trio.current_time())
        self._missed_in.setdefault(ino, set()).add(key[1])
        while len(self._misses) > MAX_MISSES:
            self._unmiss(*next(iter(self._misses)))

    def _unmiss(self, ino: int, folded: str) -> None:
        """Forget the misses of directory `ino` that fold to `folded`."""
        if self._misses.pop((ino, folded), None) is not None:
            keys = self._missed_in[ino]
            keys.discard(folded)
            if not keys:
                del self._missed_in[ino]

    # ---- complete listings ----

    def listed(self, node: Inode, names: list[str], since: int) -> None:
        """`names` are all of directory `node`, listed from when its count was `since`: its
        complete listing, if nothing changed meanwhile and it is covered."""
        if node.changes == since and self._coverage.covered(node.ino):
            self._keep(node.ino, _Listing(names))

    def made_empty(self, ino: int) -> None:
        """Directory `ino` was just made by this mount and watched while still empty."""
        if self._coverage.covered(ino):
            self._keep(ino, _Listing([]))

    def _keep(self, ino: int, listing: _Listing) -> None:
        self.forget(ino)
        if listing.size > MAX_LISTED:
            return
        self._listings[ino] = listing
        self._listed += listing.size
        while self._listed > MAX_LISTED:
            _, dropped = self._listings.popitem(last=False)
            self._listed -= dropped.size

    # ---- what changes them ----

    def own(self, node: Inode, added: str | None, removed: str | None, quiet: bool) -> None:
        """This mount removed `removed` from directory `node` and made `added` there; `quiet`:
        no other change was seen meanwhile (else a removal may cross another's remaking)."""
        listing = self._listings.get(node.ino)
        if removed is not None and quiet:  # now missing, as the server would answer
            if listing is not None:
                listing.own.discard(removed)
                self._remove(node.ino, listing, removed)
            elif self._coverage.covered(node.ino):
                self._miss(node.ino, removed)
        if added is not None:
            self._add(node.ino, added, own=True)

    def notified(self, node: Inode, kind: int, name: str) -> None:
        """Another client's change `kind` of `name` in directory `node` (name "": of itself)."""
        if kind in _ADDED or kind in _REMOVED or not name:
            self.touched(node)
        listing = self._listings.get(node.ino)
        if kind in _ADDED:
            self._add(node.ino, name, own=False)
        elif kind in _REMOVED and listing is not None and name not in listing.own:
            self._remove(node.ino, listing, name)
        elif kind == ChangeKind.UNCOVERED:
            self.forget(node.ino)

    def _add(self, ino: int, name: str, own: bool) -> None:
        """`name` was made in directory `ino`: listed, and misses that fold like it forgotten."""
        self._unmiss(ino, fold(name))
        listing = self._listings.get(ino)
        if listing is not None:
            before = listing.size
            listing.add(name)
            self._listed += listing.size - before
            if own:
                listing.own.add(name)

    def _remove(self, ino: int, listing: _Listing, name: str) -> None:
        before = listing.size
        if not listing.remove(name):
            self.forget(ino)
            return
        self._listed += listing.size - before

    def forget(self, ino: int) -> None:
        """Drop what is known of directory `ino`'s names (forgotten, uncovered)."""
        listing = self._listings.pop(ino, None)
        if listing is not None:
            self._listed -= listing.size
        for folded in self._missed_in.pop(ino, set()):
            del self._misses[(ino, folded)]

    def drop_all(self) -> None:
        """Drop every listing and miss (changes were lost, or the connection)."""
        self._listings.clear()
        self._listed = 0
        self._misses.clear()
        self._missed_in.clear()
