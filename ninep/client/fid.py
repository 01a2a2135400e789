"""`Fid`: one fid of a client connection and every 9P2000.L operation on it."""

from __future__ import annotations

import contextlib
import enum
import errno
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from .. import messages as m
from ..backend import Attr, Dirent, Lock, SetAttr, StatFs
from ..constants import (
    MAXWELEM,
    NOFID,
    GetattrMask,
    LockFlag,
    LockStatus,
    NotifyAsk,
    NotifyFlag,
    OpenFlag,
    ReaddirFlag,
    SetattrMask,
)
from ..convert import decode_xattr_names, wire_time
from ..messages import Change, Qid, R, Request

if TYPE_CHECKING:
    from types import TracebackType

    from .connection import Client

Buffer = bytes | bytearray | memoryview
#: The requests that make an object and answer its attributes, and their replies.
_Making = m.Tmkdirattr | m.Tsymlinkattr | m.Tmknodattr | m.Tsymlinkattrs | m.Tmknodattrs
_Made = m.Rmkdirattr | m.Rsymlinkattr | m.Rmknodattr | m.Rsymlinkattrs | m.Rmknodattrs


class Now(enum.Enum):
    """`NOW` as a time given to `Fid.setattr`: the server's current time."""

    NOW = "now"


NOW = Now.NOW


def make_setattr(
    *,
    mode: int | None = None,
    uid: int | None = None,
    gid: int | None = None,
    size: int | None = None,
    atime: int | Literal[Now.NOW] | None = None,
    mtime: int | Literal[Now.NOW] | None = None,
    ctime: bool = False,
) -> SetAttr:
    """A Tsetattr request from the changes given (times in ns since the epoch, or NOW)."""
    valid = 0
    values: dict[str, int] = {}
    for name, value, bit in (
        ("mode", mode, SetattrMask.MODE),
        ("uid", uid, SetattrMask.UID),
        ("gid", gid, SetattrMask.GID),
        ("size", size, SetattrMask.SIZE),
    ):
        if value is not None:
            valid |= bit
            values[name] = value
    for name, time, bit, set_bit in (
        ("atime", atime, SetattrMask.ATIME, SetattrMask.ATIME_SET),
        ("mtime", mtime, SetattrMask.MTIME, SetattrMask.MTIME_SET),
    ):
        if time is None:
            continue
        valid |= bit
        if time is not NOW:
            valid |= set_bit
            values[f"{name}_sec"], values[f"{name}_nsec"] = wire_time(time)
    if ctime:
        valid |= SetattrMask.CTIME
    return SetAttr(valid, **values)


@dataclass(frozen=True, slots=True)
class Changes:
    """One Rnotify: the changes in order, or `overflow` (changes were lost: drop every cache)."""

    overflow: bool
    changes: list[Change]


def _present(attr: Attr) -> Attr | None:
    """An attribute record of a reply, or None where it is absent (valid 0)."""
    return attr if attr.valid else None


def _split(path: str) -> list[str]:
    return [name for name in path.split("/") if name not in ("", ".")]


class Fid:
    """A server-side reference to one file; it follows the file across renames.

    `async with fid:` clunks it on exit. Operations on a clunked fid raise EBADF.
    """

    def __init__(self, client: Client, fid: int, qid: Qid) -> None:
        self.client = client
        self.fid: int | None = fid
        self.qid = qid
        self.iounit = 0  # from Tlopen/Tlcreate; 0 means msize - IOHDRSZ

    def __repr__(self) -> str:
        return f"<Fid {self.fid} qid={self.qid}>"

    async def __aenter__(self) -> Fid:
        return self

    async def __aexit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.clunk()

    def _num(self) -> int:
        if self.fid is None:
            raise OSError(errno.EBADF, "the fid is clunked")
        return self.fid

    async def _call(self, msg: Request[R]) -> R:
        return await self.client.request(msg)

    def _iosize(self) -> int:
        return min(self.iounit, self.client.iosize) if self.iounit else self.client.iosize

    # ---- walking and releasing ----

    async def walk(self, *names: str) -> Fid:
        """A new fid for the file at `names` below this one (no names: a clone).

        Walks 16 names per Twalk; a walk that stops early raises ENOENT.
        """
        num = self._num()
        newfid = self.client.alloc_fid()
        qid = self.qid
        created = False  # newfid exists on the server once a whole chunk was walked
        try:
            for start in range(0, max(len(names), 1), MAXWELEM):
                chunk = list(names[start : start + MAXWELEM])
                source = newfid if created else num
                reply = await self._call(m.Twalk(fid=source, newfid=newfid, wnames=chunk))
                if len(reply.qids) < len(chunk):
                    missing = names[start + len(reply.qids)]
                    raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), missing)
                created = True
                if reply.qids:
                    qid = reply.qids[-1]
        except BaseException:
            if created:
                self.client.discard_fid(newfid)
            raise
        return Fid(self.client, newfid, qid)

    async def clone(self) -> Fid:
        """A new fid for the same file."""
        return await self.walk()

    async def walk_getattr(self, *names: str, mask: int = GetattrMask.ALL) -> tuple[Fid, Attr]:
        """`walk(*names)` and the attributes of the file reached, in one round trip where
        the server has the extensions (Twalkgetattr); else a walk, then a getattr."""
        if not self.client.extended:
            fid = await self.walk(*names)
            try:
                return fid, await fid.getattr(mask)
            except BaseException:
                fid._discard()
                raise
        split = max(0, len(names) - MAXWELEM)  # names before the last 16 go by Twalk
        source = await self.walk(*names[:split]) if split else self
        newfid = source._num() if split else self.client.alloc_fid()  # in place, or a new fid
        try:
            reply = await self._call(
                m.Twalkgetattr(
                    fid=source._num(),
                    newfid=newfid,
                    wnames=list(names[split:]),
                    request_mask=mask,
                )
            )
        except BaseException:
            if split:
                source._discard()
            raise
        qid = reply.qids[-1] if reply.qids else source.qid
        if split:  # walked in place
            source.qid = qid
            return source, reply.attr
        return Fid(self.client, newfid, qid), reply.attr

    async def walk_open(
        self, *names: str, flags: int, mask: int = GetattrMask.ALL
    ) -> tuple[Fid, Attr]:
        """A new fid for the file at `names` (no names: this file), opened with `flags`
        (OpenFlag), and its attributes once open: one round trip where the server has
        the extensions (Twalkopen) and at most 16 names; else a walk, the open and a
        getattr. If the open fails, no fid is left."""
        if not self.client.extended or len(names) > MAXWELEM:
            fid = await self.walk(*names)
            try:
                await fid.open(flags)
                return fid, await fid.getattr(mask)
            except BaseException:
                fid._discard()
                raise
        newfid = self.client.alloc_fid()
        reply = await self._call(
            m.Twalkopen(
                fid=self._num(),
                newfid=newfid,
                wnames=list(names),
                flags=flags,
                request_mask=mask,
            )
        )
        fid = Fid(self.client, newfid, reply.qid)
        fid.iounit = reply.iounit
        return fid, reply.attr

    async def clunk(self) -> None:
        """Release the fid (a no-op if already clunked or the connection is gone).

        Clunking a Txattrcreate fid commits the attribute: its failure raises here.
        """
        num, self.fid = self.fid, None
        if num is None or self.client.closed:
            return
        with contextlib.suppress(ConnectionError):  # the server dropped it with the connection
            await self._call(m.Tclunk(fid=num))

    def _discard(self) -> None:
        """Clunk in the background, without waiting (for cleanup on errors and cancellation)."""
        num, self.fid = self.fid, None
        if num is not None:
            self.client.discard_fid(num)

    async def remove(self) -> None:
        """Remove the file and clunk the fid, whatever the outcome (Tremove).

        Like a clunk, the request goes out even if the calling task is cancelled.
        """
        num, self.fid = self._num(), None
        await self._call(m.Tremove(fid=num))

    # ---- attributes ----

    async def getattr(self, mask: int = GetattrMask.ALL) -> Attr:
        """The file's attributes (`mask`: the GetattrMask fields wanted)."""
        return (await self._call(m.Tgetattr(fid=self._num(), request_mask=mask))).attr

    async def setattr(
        self,
        attr: SetAttr | None = None,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        size: int | None = None,
        atime: int | Literal[Now.NOW] | None = None,
        mtime: int | Literal[Now.NOW] | None = None,
        ctime: bool = False,
    ) -> None:
        """Change attributes: give a SetAttr, or keywords (times in ns since the epoch, or NOW)."""
        changes = make_setattr(
            mode=mode, uid=uid, gid=gid, size=size, atime=atime, mtime=mtime, ctime=ctime
        )
        if attr is None:
            attr = changes
        elif changes.valid:
            raise TypeError("setattr takes a SetAttr or keywords, not both")
        await self._call(m.Tsetattr(fid=self._num(), attr=attr))

    async def setattr_getattr(self, attr: SetAttr, mask: int = GetattrMask.ALL) -> Attr:
        """`setattr(attr)`, and the attributes after it (one round trip: Tsetattrattr)."""
        if not self.client.extended:
            await self.setattr(attr)
            return await self.getattr(mask)
        reply = await self._call(m.Tsetattrattr(fid=self._num(), attr=attr, request_mask=mask))
        return reply.attr if reply.attr.valid else await self.getattr(mask)

    async def statfs(self) -> StatFs:
        """Figures of the filesystem holding the file."""
        return (await self._call(m.Tstatfs(fid=self._num()))).statfs

    # ---- opening and I/O ----

    async def open(self, flags: int) -> tuple[Qid, int]:
        """Open the fid for I/O (`flags`: OpenFlag); return the qid and iounit."""
        reply = await self._call(m.Tlopen(fid=self._num(), flags=flags))
        self.qid, self.iounit = reply.qid, reply.iounit
        return reply.qid, int(reply.iounit)

    async def create(self, name: str, flags: int, mode: int, gid: int = 0) -> Qid:
        """Create regular file `name` in this directory; this fid becomes the new file, open."""
        reply = await self._call(
            m.Tlcreate(fid=self._num(), name=name, flags=flags, mode=mode, gid=gid)
        )
        self.qid, self.iounit = reply.qid, reply.iounit
        return reply.qid

    async def create_getattr(
        self, name: str, flags: int, mode: int, gid: int = 0, mask: int = GetattrMask.ALL
    ) -> tuple[Qid, Attr]:
        """`create`, and the new file's attributes (one round trip: Tlcreateattr)."""
        if not self.client.extended:
            return await self.create(name, flags, mode, gid), await self.getattr(mask)
        request = m.Tlcreateattr(
            fid=self._num(), newfid=self._num(), name=name, flags=flags, mode=mode, gid=gid,
            request_mask=mask,
        )  # fmt: skip
        reply = await self._call(request)
        self.qid, self.iounit = reply.qid, reply.iounit
        return reply.qid, reply.attr if reply.attr.valid else await self.getattr(mask)

    async def create_at(
        self, name: str, flags: int, mode: int, gid: int = 0, mask: int = GetattrMask.ALL
    ) -> tuple[Fid, Attr]:
        """A new fid for regular file `name` created in this directory and opened with
        `flags`, and its attributes; this fid stays the directory's. One round trip
        (Tlcreateattr to a new fid) where the server has the extensions; else a clone of
        this fid, `create` and a getattr."""
        if not self.client.extended:
            fid = await self.clone()
            try:
                _, attr = await fid.create_getattr(name, flags, mode, gid, mask)
            except BaseException:
                fid._discard()
                raise
            return fid, attr
        newfid = self.client.alloc_fid()
        request = m.Tlcreateattr(
            fid=self._num(), newfid=newfid, name=name, flags=flags, mode=mode, gid=gid,
            request_mask=mask,
        )  # fmt: skip
        fid, attr, _ = await self._create_new(newfid, request)
        return fid, attr

    async def _create_new(
        self, newfid: int, request: m.Tlcreateattr | m.Tlcreateattrs
    ) -> tuple[Fid, Attr, Attr | None]:
        """`request` to fid `newfid`: the fid, the file's attributes, the directory's (None:
        not given)."""
        mask = request.request_mask
        reply: m.Rlcreateattr | m.Rlcreateattrs = await self._call(cast(Request[Any], request))
        fid = Fid(self.client, newfid, reply.qid)
        fid.iounit = reply.iounit
        dattr = _present(reply.dattr) if isinstance(reply, m.Rlcreateattrs) else None
        if reply.attr.valid:
            return fid, reply.attr, dattr
        try:
            return fid, await fid.getattr(mask), dattr
        except BaseException:
            fid._discard()
            raise

    async def create_attrs(
        self, name: str, flags: int, mode: int, gid: int = 0, mask: int = GetattrMask.ALL
    ) -> tuple[Fid, Attr, Attr | None]:
        """`create_at`, and this directory's attributes after it where the server gives
        them in the same reply (Tlcreateattrs, the second set); else None, at no extra
        request."""
        if self.client.extensions < 2:
            return (*await self.create_at(name, flags, mode, gid, mask), None)
        newfid = self.client.alloc_fid()
        request = m.Tlcreateattrs(
            fid=self._num(), newfid=newfid, name=name, flags=flags, mode=mode, gid=gid,
            request_mask=mask,
        )  # fmt: skip
        return await self._create_new(newfid, request)

    async def read(self, offset: int, count: int) -> bytes:
        """Up to `count` bytes at `offset`, in iounit-sized Treads; fewer only at end of file."""
        num, chunk = self._num(), self._iosize()
        parts: list[bytes] = []
        while count > 0:
            want = min(count, chunk)
            data: bytes = (await self._call(m.Tread(fid=num, offset=offset, count=want))).data
            parts.append(data)
            offset += len(data)
            count -= len(data)
            if len(data) < want:
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def write(self, offset: int, data: Buffer) -> int:
        """Write `data` at `offset` in iounit-sized Twrites; return the bytes written."""
        num, chunk = self._num(), self._iosize()
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            piece = view[done : done + chunk]
            # the codec takes any buffer: the piece is sent without a copy
            request = m.Twrite(fid=num, offset=offset + done, data=cast(bytes, piece))
            reply = await self._call(request)
            done += reply.count
            if reply.count < len(piece):
                break
        return done

    async def readdir_chunk(self, offset: int, count: int) -> list[Dirent]:
        """One Treaddir: entries after cookie `offset` (0: from the start) in `count` bytes."""
        reply = await self._call(m.Treaddir(fid=self._num(), offset=offset, count=count))
        return [Dirent(*entry) for entry in m.decode_dirents(reply.data)]

    async def readdir(self) -> list[Dirent]:
        """Every entry of this open directory."""
        entries: list[Dirent] = []
        offset = 0
        while chunk := await self.readdir_chunk(offset, self.client.iosize):
            entries += chunk
            offset = chunk[-1].offset
        return entries

    async def readdir_attrs_chunk(
        self, offset: int, count: int, mask: int = GetattrMask.ALL
    ) -> tuple[list[tuple[Dirent, Attr | None]], bool]:
        """One Treaddirattr: `readdir_chunk` with each entry's attributes (None: the server
        could not read them), and whether the listing ends with them (an empty chunk does).
        Without the extensions: Treaddir, then a walk and a getattr of each entry (its fid
        clunked at once), in a Treaddir chunk of `count` bytes; the end only when empty."""
        if self.client.extended:
            reply = await self._call(
                m.Treaddirattr(fid=self._num(), offset=offset, count=count, request_mask=mask)
            )
            entries = [
                (Dirent(q, o, t, n), a if a.valid else None)
                for q, o, t, n, a in m.decode_dirent_attrs(reply.data)
            ]
            return entries, not entries or bool(reply.flags & ReaddirFlag.END)
        listed: list[tuple[Dirent, Attr | None]] = []
        for entry in await self.readdir_chunk(offset, count):
            try:
                fid, attr = await self.walk_getattr(entry.name, mask=mask)
            except OSError:
                listed.append((entry, None))
                continue
            await fid.clunk()
            listed.append((entry, attr))
        return listed, not listed

    async def readdir_attrs(self, mask: int = GetattrMask.ALL) -> list[tuple[Dirent, Attr | None]]:
        """Every entry of this open directory with its attributes (`readdir_attrs_chunk`)."""
        entries: list[tuple[Dirent, Attr | None]] = []
        end = False
        while not end:
            offset = entries[-1][0].offset if entries else 0
            chunk, end = await self.readdir_attrs_chunk(offset, self.client.iosize, mask)
            entries += chunk
        return entries

    async def fsync(self, datasync: bool = False) -> None:
        """Flush the open file to stable storage (only its data if `datasync`)."""
        await self._call(m.Tfsync(fid=self._num(), datasync=int(datasync)))

    # ---- directory operations (this fid is the directory) ----

    async def mkdir(self, name: str, mode: int, gid: int = 0) -> Qid:
        """Make directory `name` in this directory."""
        reply = await self._call(m.Tmkdir(dfid=self._num(), name=name, mode=mode, gid=gid))
        return reply.qid

    async def symlink(self, name: str, target: str, gid: int = 0) -> Qid:
        """Make `name` in this directory a symbolic link to `target`."""
        reply = await self._call(m.Tsymlink(fid=self._num(), name=name, symtgt=target, gid=gid))
        return reply.qid

    async def mknod(
        self, name: str, mode: int, major: int = 0, minor: int = 0, gid: int = 0
    ) -> Qid:
        """Make a device node, fifo or socket (`mode` includes the S_IF* type bits)."""
        reply = await self._call(
            m.Tmknod(dfid=self._num(), name=name, mode=mode, major=major, minor=minor, gid=gid)
        )
        return reply.qid

    async def _made(self, name: str, qid: Qid, attr: Attr | None, mask: int) -> tuple[Qid, Attr]:
        """`qid` of the object just made as `name` here, with its attributes (`attr`, else
        read by a walk and a getattr)."""
        if attr is None or not attr.valid:
            fid, attr = await self.walk_getattr(name, mask=mask)
            await fid.clunk()
        return qid, attr

    async def mkdir_getattr(
        self, name: str, mode: int, gid: int = 0, mask: int = GetattrMask.ALL
    ) -> tuple[Qid, Attr]:
        """`mkdir`, and the new directory's attributes (one round trip: Tmkdirattr)."""
        if not self.client.extended:
            return await self._made(name, await self.mkdir(name, mode, gid), None, mask)
        request = m.Tmkdirattr(dfid=self._num(), name=name, mode=mode, gid=gid, request_mask=mask)
        return (await self._made_by(name, request))[:2]

    async def symlink_getattr(
        self, name: str, target: str, gid: int = 0, mask: int = GetattrMask.ALL
    ) -> tuple[Qid, Attr]:
        """`symlink`, and the new link's attributes (one round trip: Tsymlinkattr)."""
        if not self.client.extended:
            return await self._made(name, await self.symlink(name, target, gid), None, mask)
        request = m.Tsymlinkattr(
            fid=self._num(), name=name, symtgt=target, gid=gid, request_mask=mask
        )
        return (await self._made_by(name, request))[:2]

    async def mknod_getattr(
        self,
        name: str,
        mode: int,
        major: int = 0,
        minor: int = 0,
        gid: int = 0,
        mask: int = GetattrMask.ALL,
    ) -> tuple[Qid, Attr]:
        """`mknod`, and the new node's attributes (one round trip: Tmknodattr)."""
        if not self.client.extended:
            qid = await self.mknod(name, mode, major, minor, gid)
            return await self._made(name, qid, None, mask)
        request = m.Tmknodattr(
            dfid=self._num(), name=name, mode=mode, major=major, minor=minor, gid=gid,
            request_mask=mask,
        )  # fmt: skip
        return (await self._made_by(name, request))[:2]

    async def _made_by(self, made: str, request: _Making) -> tuple[Qid, Attr, Attr | None]:
        """`request`, the making of `made` with attributes: the new object's qid and
        attributes, and this directory's where the reply has them (the second set)."""
        reply: _Made = await self._call(cast(Request[Any], request))
        qid, attr = await self._made(made, reply.qid, reply.attr, request.request_mask)
        dattr = reply.dattr if isinstance(reply, m.Rsymlinkattrs | m.Rmknodattrs) else None
        return qid, attr, _present(dattr) if dattr is not None else None

    async def link(self, target: Fid, name: str) -> None:
        """Make `name` in this directory a hard link to `target`."""
        await self._call(m.Tlink(dfid=self._num(), fid=target._num(), name=name))

    async def renameat(self, oldname: str, newdir: Fid, newname: str) -> None:
        """Move `oldname` of this directory to `newname` in `newdir`."""
        request = m.Trenameat(
            olddirfid=self._num(), oldname=oldname, newdirfid=newdir._num(), newname=newname
        )
        await self._call(request)

    async def unlinkat(self, name: str, flags: int = 0) -> None:
        """Remove `name` from this directory (flags: AT_REMOVEDIR for a directory)."""
        await self._call(m.Tunlinkat(dirfid=self._num(), name=name, flags=flags))

    # ---- name changes with the attributes of their directories (the second set) ----
    # Each does its plain operation where the server has not the second set, and answers
    # None for the attributes it would have brought: a caller asks for them if it must.

    async def mkdir_attrs(
        self, name: str, mode: int, gid: int = 0, mask: int = GetattrMask.ALL, fid: bool = False
    ) -> tuple[Qid, Attr, Attr | None, Fid | None]:
        """`mkdir_getattr`, this directory's attributes after it, and with `fid` a fid of
        the new directory made by the same request (Tmkdirattrs); elsewhere None for both.
        The new directory's attributes carry NOTIFY_COVERED only if it was covered while
        still empty (docs/protocol-extensions.md)."""
        if self.client.extensions < 2:
            return (*await self.mkdir_getattr(name, mode, gid, mask), None, None)
        newfid = self.client.alloc_fid() if fid else NOFID
        request = m.Tmkdirattrs(
            dfid=self._num(), newfid=newfid, name=name, mode=mode, gid=gid, request_mask=mask
        )
        reply = await self._call(request)
        made = Fid(self.client, newfid, reply.qid) if fid and reply.attr.valid else None
        _, attr = await self._made(name, reply.qid, reply.attr, mask)
        return reply.qid, attr, _present(reply.dattr), made

    async def symlink_attrs(
        self, name: str, target: str, gid: int = 0, mask: int = GetattrMask.ALL
    ) -> tuple[Qid, Attr, Attr | None]:
        """`symlink_getattr`, and this directory's attributes after it (Tsymlinkattrs)."""
        if self.client.extensions < 2:
            return (*await self.symlink_getattr(name, target, gid, mask), None)
        request = m.Tsymlinkattrs(
            fid=self._num(), name=name, symtgt=target, gid=gid, request_mask=mask
        )
        return await self._made_by(name, request)

    async def mknod_attrs(
        self,
        name: str,
        mode: int,
        major: int = 0,
        minor: int = 0,
        gid: int = 0,
        mask: int = GetattrMask.ALL,
    ) -> tuple[Qid, Attr, Attr | None]:
        """`mknod_getattr`, and this directory's attributes after it (Tmknodattrs)."""
        if self.client.extensions < 2:
            return (*await self.mknod_getattr(name, mode, major, minor, gid, mask), None)
        request = m.Tmknodattrs(
            dfid=self._num(), name=name, mode=mode, major=major, minor=minor, gid=gid,
            request_mask=mask,
        )  # fmt: skip
        return await self._made_by(name, request)

    async def link_attrs(
        self, target: Fid, name: str, mask: int = GetattrMask.ALL
    ) -> tuple[Attr, Attr | None]:
        """`link`, then the attributes of `target` (one more link) and this directory's
        after it: one request where the server has the second set (Tlinkattrs), else a
        link and a getattr of `target`, and None for the directory's."""
        if self.client.extensions < 2:
            await self.link(target, name)
            return await target.getattr(mask), None
        request = m.Tlinkattrs(dfid=self._num(), fid=target._num(), name=name, request_mask=mask)
        reply = await self._call(request)
        return (reply.attr if reply.attr.valid else await target.getattr(mask)), _present(
            reply.dattr
        )

    async def renameat_attrs(
        self, oldname: str, newdir: Fid, newname: str, mask: int = GetattrMask.ALL
    ) -> tuple[Attr | None, Attr | None]:
        """`renameat`, and the attributes of this directory and of `newdir` after it
        (Trenameatattrs)."""
        if self.client.extensions < 2:
            await self.renameat(oldname, newdir, newname)
            return None, None
        request = m.Trenameatattrs(
            olddirfid=self._num(), oldname=oldname, newdirfid=newdir._num(), newname=newname,
            request_mask=mask,
        )  # fmt: skip
        reply = await self._call(request)
        return _present(reply.olddattr), _present(reply.newdattr)

    async def unlinkat_attrs(
        self, name: str, flags: int = 0, mask: int = GetattrMask.ALL
    ) -> Attr | None:
        """`unlinkat`, and this directory's attributes after it (Tunlinkatattrs)."""
        if self.client.extensions < 2:
            await self.unlinkat(name, flags)
            return None
        reply = await self._call(
            m.Tunlinkatattrs(dirfid=self._num(), name=name, flags=flags, request_mask=mask)
        )
        return _present(reply.dattr)

    # ---- operations on the file itself ----

    async def readlink(self) -> str:
        """The target of this symbolic link."""
        return (await self._call(m.Treadlink(fid=self._num()))).target

    async def rename(self, newdir: Fid, name: str) -> None:
        """Move this file to `name` in `newdir` (Trename)."""
        await self._call(m.Trename(fid=self._num(), dfid=newdir._num(), name=name))

    # ---- extended attributes ----

    async def _xattr_read(self, name: str) -> bytes:
        newfid = self.client.alloc_fid()
        reply = await self._call(m.Txattrwalk(fid=self._num(), newfid=newfid, name=name))
        async with Fid(self.client, newfid, self.qid) as xfid:
            return await xfid.read(0, reply.size) if reply.size else b""

    async def getxattr(self, name: str) -> bytes:
        """The value of extended attribute `name` (ENODATA if it has none)."""
        return await self._xattr_read(name)

    async def listxattr(self) -> list[str]:
        """The names of the file's extended attributes."""
        names = await self._xattr_read("")
        return decode_xattr_names(names)

    async def _xattr_write(self, name: str, value: Buffer, flags: int) -> None:
        xfid = await self.clone()
        try:
            size = memoryview(value).nbytes
            await self._call(
                m.Txattrcreate(fid=xfid._num(), name=name, attr_size=size, flags=flags)
            )
            if await xfid.write(0, value) != size:
                raise OSError(errno.EIO, f"short write of xattr {name!r}")
        except BaseException:
            xfid._discard()
            raise
        await xfid.clunk()  # the server sets (or removes) the attribute now

    async def setxattr(self, name: str, value: Buffer, flags: int = 0) -> None:
        """Set attribute `name` (flags: XATTR_CREATE, XATTR_REPLACE); an empty value removes it."""
        await self._xattr_write(name, value, flags)

    async def removexattr(self, name: str) -> None:
        """Remove attribute `name` (Txattrcreate of size 0, then clunk, as the kernel does)."""
        await self._xattr_write(name, b"", 0)

    # ---- locks ----

    async def lock(
        self,
        type: int,
        start: int = 0,
        length: int = 0,
        flags: int = 0,
        proc_id: int | None = None,
        client_id: str | None = None,
    ) -> LockStatus:
        """Set or clear (type UNLCK) a POSIX lock on this open file; length 0: to the end.

        With `LockFlag.FLOCK` in `flags`, a whole-file flock(2) lock instead, where the
        connection is extended; elsewhere the flag is not sent, and the lock is a POSIX
        one of the range given (docs/protocol-extensions.md).
        """
        if not self.client.extended:
            flags &= ~LockFlag.FLOCK
        reply = await self._call(
            m.Tlock(
                fid=self._num(),
                type=type,
                flags=flags,
                start=start,
                length=length,
                proc_id=os.getpid() if proc_id is None else proc_id,
                client_id=self.client.client_id if client_id is None else client_id,
            )
        )
        return LockStatus(reply.status)

    async def getlock(
        self,
        type: int,
        start: int = 0,
        length: int = 0,
        proc_id: int | None = None,
        client_id: str | None = None,
    ) -> Lock:
        """The first lock that conflicts with the one described, or it with type UNLCK."""
        reply = await self._call(
            m.Tgetlock(
                fid=self._num(),
                type=type,
                start=start,
                length=length,
                proc_id=os.getpid() if proc_id is None else proc_id,
                client_id=self.client.client_id if client_id is None else client_id,
            )
        )
        return Lock(reply.type, reply.start, reply.length, reply.proc_id, reply.client_id)

    # ---- change notification ----

    async def changes(self, others_only: bool = False) -> AsyncIterator[Changes]:
        """Batches of changes of this fid's export, one Tnotify pending at a time (the next
        is sent when the caller asks for the next batch; leaving the loop flushes it).
        `others_only`: where the server has the second set, this connection's own changes
        are not sent at all (Tnotifyflags OTHERS); elsewhere they come marked OWN.

        Ends at once, yielding nothing, where the server has none: a plain connection
        (`Client.extended` false) or an export without notification (EOPNOTSUPP).
        """
        if not self.client.extended:
            return
        asked = NotifyAsk.OTHERS if others_only else 0
        while True:
            try:
                reply: m.Rnotify | m.Rnotifyflags
                if self.client.extensions < 2:
                    reply = await self._call(m.Tnotify(fid=self._num()))
                else:
                    reply = await self._call(m.Tnotifyflags(fid=self._num(), flags=asked))
            except OSError as e:
                if e.errno == errno.EOPNOTSUPP:
                    return
                raise
            overflow = bool(reply.flags & NotifyFlag.OVERFLOW)
            yield Changes(overflow, m.decode_changes(reply.data))

    # ---- path helpers ----

    async def walk_path(self, path: str) -> Fid:
        """A new fid for `path` (names separated by `/`) below this one."""
        return await self.walk(*_split(path))

    async def read_file(self, path: str) -> bytes:
        """The whole content of the file at `path`."""
        async with await self.walk_path(path) as f:
            await f.open(OpenFlag.RDONLY)
            parts: list[bytes] = []
            offset = 0
            while data := await f.read(offset, f._iosize()):
                parts.append(data)
                offset += len(data)
            return b"".join(parts)

    async def write_file(self, path: str, data: Buffer, mode: int = 0o644) -> None:
        """Create or truncate the file at `path` and write `data` to it."""
        *parent, name = _split(path) or [""]
        async with await self.walk(*parent) as f:
            await f.create(name, OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.TRUNC, mode)
            if await f.write(0, data) != memoryview(data).nbytes:
                raise OSError(errno.EIO, f"short write to {path!r}")

    async def listdir(self, path: str = "") -> list[str]:
        """The names in the directory at `path`, without `.` and `..`."""
        async with await self.walk_path(path) as d:
            await d.open(OpenFlag.RDONLY | OpenFlag.DIRECTORY)
            return [e.name for e in await d.readdir() if e.name not in (".", "..")]
