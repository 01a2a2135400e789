"""Entries the kernel gets: attributes with the mount's timeouts, lookups counted, new files.

A name in a directory whose changes the server notifies (`drvfs.notified.Coverage`)
is given with `covered_timeout`, and so are the attributes of the file it names
(of a directory, only once that directory is covered itself: what changes inside
it is reported by its own watch; of a file with more than one link, never: a
change through another name is reported only in that name's directory, which
may be outside the export); elsewhere the short `entry_timeout` and
`attr_timeout`.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Awaitable, Callable

import pyfuse3

from ninep.client import Attr, Fid
from ninep.messages import Qid

from . import convert
from .inodes import Inode
from .notified import Coverage
from .options import MountOptions
from .resolver import FidResolver

log = logging.getLogger("drvfs")

#: What making a name answers: the new object's qid and attributes, the directory's
#: attributes after (None: not given), and a fid of the new object (None: none made).
Made = tuple[Qid, Attr, Attr | None, Fid | None]


class Entries:
    """FUSE entries of the nodes `fids` resolves, cached for `options`' timeouts."""

    def __init__(self, fids: FidResolver, options: MountOptions, coverage: Coverage) -> None:
        self._fids = fids
        self._coverage = coverage
        self._attr_timeout = options.attr_timeout
        self._entry_timeout = options.entry_timeout
        self._long_attr = max(options.attr_timeout, options.covered_timeout)
        self._long_entry = max(options.entry_timeout, options.covered_timeout)

    def entry(self, ino: int, attr: Attr, parent: Inode | None = None) -> pyfuse3.EntryAttributes:
        """The FUSE attributes of inode `ino`, just received, named in `parent` (by default
        the directory it was last reached in)."""
        coverage = self._coverage
        attr = coverage.note(ino, attr)
        node = self._fids.inodes.get(ino)
        if node is not None:
            node.given = convert.stamp(attr)
            if parent is None:
                parent = node.parent
        names_long = parent is not None and coverage.covered(parent.ino)
        # a directory's own attributes (mtime, links) change with what is in it, which
        # only its own watch reports: long only once it is covered itself; a file's
        # change through another of its names is reported only in that name's directory
        if stat.S_ISDIR(attr.mode):
            attrs_long = coverage.covered(ino)
        else:
            attrs_long = names_long and attr.nlink <= 1
        return convert.entry(
            ino,
            attr,
            self._long_attr if attrs_long else self._attr_timeout,
            self._long_entry if names_long else self._entry_timeout,
        )

    def found(
        self, parent: Inode, name: str, fid: Fid | None, attr: Attr
    ) -> pyfuse3.EntryAttributes:
        """Count a lookup of `name` in `parent`, found to have `attr` (through `fid`, which
        becomes the node's fid or is clunked; None: the node needs no fid yet)."""
        node = self._fids.count_lookup(parent, name, attr.qid.path, fid)
        return self.entry(node.ino, attr)

    async def made(
        self,
        parent: Inode,
        dir_fid: Fid,
        name: str,
        ctx: pyfuse3.RequestContext,
        make: Callable[[], Awaitable[Made]],
    ) -> tuple[pyfuse3.EntryAttributes, Attr | None]:
        """Make `name` in `parent` for the caller of `ctx` with `make` (which answers the
        new entry's attributes, perhaps its fid, and perhaps the directory's attributes
        after: one round trip on an extended connection); its entry, and the directory's
        attributes."""
        _, attr, dattr, fid = await make()
        if ctx.uid == self._fids.remote.uid:
            return self.found(parent, name, fid, attr), dattr
        if fid is None:
            fid = await dir_fid.walk(name)
        try:
            await self.give_to_caller(fid, ctx)
            attr = await fid.getattr()
        except BaseException:
            self._fids.drop(fid)
            raise
        return self.found(parent, name, fid, attr), dattr

    async def give_to_caller(self, fid: Fid, ctx: pyfuse3.RequestContext) -> None:
        """Make the caller the owner of what it made (the server made it the attaching user's).

        The group came with the request. Best effort: a server not run as root cannot.
        """
        if ctx.uid == self._fids.remote.uid:
            return
        try:
            await fid.setattr(uid=ctx.uid)
        except PermissionError as e:
            log.debug("cannot give %r to uid %d: %s", fid, ctx.uid, e)
