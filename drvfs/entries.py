"""Entries the kernel gets: attributes with the mount's timeouts, lookups counted, new files."""

from __future__ import annotations

import logging

import pyfuse3

from ninep.client import Attr, Fid

from . import convert
from .inodes import Inode
from .options import MountOptions
from .resolver import FidResolver

log = logging.getLogger("drvfs")


class Entries:
    """FUSE entries of the nodes `fids` resolves, cached for `options`' timeouts."""

    def __init__(self, fids: FidResolver, options: MountOptions) -> None:
        self._fids = fids
        self._attr_timeout = options.attr_timeout
        self._entry_timeout = options.entry_timeout

    def entry(self, ino: int, attr: Attr) -> pyfuse3.EntryAttributes:
        """The FUSE attributes of inode `ino`."""
        return convert.entry(ino, attr, self._attr_timeout, self._entry_timeout)

    async def found(self, parent: Inode, name: str, fid: Fid) -> pyfuse3.EntryAttributes:
        """Count a lookup of `name` in `parent`, just walked to with `fid`; its attributes."""
        try:
            attr = await fid.getattr()
        except BaseException:
            self._fids.drop(fid)
            raise
        node = self._fids.count_lookup(parent, name, attr.qid.path, fid)
        return self.entry(node.ino, attr)

    async def made(
        self, parent: Inode, dir_fid: Fid, name: str, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        """The entry of `name`, just made in `parent` by the caller of `ctx`."""
        fid = await dir_fid.walk(name)
        try:
            await self.give_to_caller(fid, ctx)
        except BaseException:
            self._fids.drop(fid)
            raise
        return await self.found(parent, name, fid)

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
