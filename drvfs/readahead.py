"""readdir with read-ahead: entries listed with their attributes.

The kernel gets each entry with its attributes (READDIRPLUS: a lookup of each
entry, counted in the inode table). On an extended connection one
Treaddirattr brings a whole chunk of entries with their attributes, and the
listed nodes get no fid: one is walked to when the kernel first needs it
(`drvfs.resolver`). On a plain 9P2000.L connection the entries of each
Treaddir chunk are walked to and stat'ed READDIR_BATCH at a time,
concurrently, and keep the fids walked. An entry removed meanwhile is
skipped; one whose attributes cannot be read is listed with its type only.
A listing read whole from its start (on an extended connection) gives its
names to `drvfs.directories`: a covered directory's complete listing.
"""

from __future__ import annotations

import contextlib
import errno
import itertools

import pyfuse3
import trio

from ninep.client import Fid

from . import convert
from .directories import Directories
from .entries import Entries
from .openfiles import Listed, OpenDir
from .operation import name_bytes
from .resolver import FidResolver

READDIR_BATCH = 32  # entries whose attributes are fetched together, ahead of the kernel
_UNREADABLE = OSError(errno.EIO, "the server could not read the entry's attributes")


class DirReader:
    """Lists open directories to the kernel, reading entries and attributes ahead."""

    def __init__(self, fids: FidResolver, entries: Entries, directories: Directories) -> None:
        self._fids = fids
        self._inodes = fids.inodes
        self._entries = entries
        self._directories = directories  # told of each listing read whole

    async def readdir(self, directory: OpenDir, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        """List `directory` from cookie `start_id` until the kernel's buffer is full."""
        if start_id == directory.end:  # the kernel asks once more after the end: it is known
            return
        fid = await self._fids.opened(directory)
        if start_id != directory.offset:  # a seek: forget what was read ahead
            self.discard(directory)
            directory.offset = start_id
            directory.names = None
        if start_id == 0 and not directory.ahead and directory.end is None:
            directory.names, directory.since = [], directory.node.changes
        while True:
            if not directory.ahead and directory.offset == directory.end:
                return
            if not directory.ahead and fid.client.extended:
                listed, end = await fid.readdir_attrs_chunk(directory.offset, fid.client.iosize)
                if directory.names is not None:
                    directory.names += (d.name for d, _ in listed if d.name not in (".", ".."))
                if end:  # known without asking once more
                    directory.end = listed[-1][0].offset if listed else directory.offset
                    if directory.names is not None:  # the whole directory
                        self._directories.listed(directory.node, directory.names, directory.since)
                        directory.names = None
                directory.ahead.extend(
                    Listed(d, True, a, None, None if a is not None else _UNREADABLE)
                    for d, a in listed
                )
            elif not directory.ahead:
                chunk = await fid.readdir_chunk(directory.offset, fid.client.iosize)
                if not chunk:
                    directory.end = directory.offset
                    return
                directory.ahead.extend(Listed(d) for d in chunk)
            await self._fetch_attrs(directory)
            while directory.ahead and directory.ahead[0].done:
                item = directory.ahead[0]
                attrs = self._entry(directory, item)
                name = name_bytes(item.dirent.name)
                if attrs is not None and not pyfuse3.readdir_reply(
                    token, name, attrs, item.dirent.offset
                ):
                    return
                directory.ahead.popleft()
                directory.offset = item.dirent.offset
                if attrs is not None and item.dirent.name not in (".", ".."):
                    qid = item.attr.qid if item.attr is not None else item.dirent.qid
                    node = self._fids.count_lookup(
                        directory.node, item.dirent.name, qid.path, item.fid
                    )
                    if item.attr is not None:
                        node.given = convert.stamp(item.attr)

    def discard(self, directory: OpenDir) -> None:
        """Forget what was read ahead of `directory`, clunking the fids walked for it."""
        for item in directory.ahead:
            self._fids.drop(item.fid)
        directory.ahead.clear()

    def _entry(self, directory: OpenDir, item: Listed) -> pyfuse3.EntryAttributes | None:
        """The attributes to list `item` with (None: it vanished, skip it)."""
        name, ino = item.dirent.name, self._inodes.ino(item.dirent.qid.path)
        if name in (".", ".."):
            return convert.dot_entry(ino, 0o40000)
        if item.attr is not None:
            ino = self._inodes.ino(item.attr.qid.path)
            return self._entries.entry(ino, item.attr, directory.node)
        if item.error is None:
            return None
        # Listed but not reachable: shown with its type, asked again on use.
        return convert.entry_unknown(ino, item.dirent.type)

    async def _fetch_attrs(self, directory: OpenDir) -> None:
        """Fetch the attributes of the next READDIR_BATCH entries, all at once."""
        todo = [i for i in itertools.islice(directory.ahead, READDIR_BATCH) if not i.done]
        if not todo:
            return
        dir_fid = await self._fids.fid(directory.node)
        async with trio.open_nursery() as nursery:
            for item in todo:
                nursery.start_soon(self._fetch_attr, dir_fid, item)
        for item in todo:
            if item.error is not None and item.error.errno == errno.ENOTCONN:
                raise item.error

    async def _fetch_attr(self, dir_fid: Fid, item: Listed) -> None:
        """The attributes of `item`: through its node's fid if it has one, else by a walk."""
        name = item.dirent.name
        try:
            if name in (".", ".."):
                return
            known = self._inodes.get(self._inodes.ino(item.dirent.qid.path))
            if known is not None and known.fid is not None and known.fid.client is dir_fid.client:
                try:
                    item.attr = await known.fid.getattr()
                    if item.attr.qid.path == item.dirent.qid.path:
                        return
                except OSError:
                    pass
            fid = await dir_fid.walk(name)
            try:
                item.attr = await fid.getattr()
            except BaseException:
                with contextlib.suppress(OSError):
                    await fid.clunk()  # a fid nobody would clunk otherwise
                raise
            item.fid = fid
        except FileNotFoundError:
            item.attr = None  # removed since it was listed
        except OSError as e:
            item.attr, item.error = None, e
        finally:
            item.done = True
