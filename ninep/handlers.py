"""One handler per 9P2000.L request: turns a T-message into backend calls and an R-message."""

from __future__ import annotations

import dataclasses
import errno
import logging
import pwd
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

from . import messages as m
from .backend import Attr, File, Handle, Lock, User, child_attrs, described, read_only, watchable
from .constants import (
    HEADER_SIZE,
    NOFID,
    NONUNAME,
    NOTIFY_COVERED,
    LockFlag,
    NotifyAsk,
    NotifyFlag,
    OpenFlag,
    QidType,
    ReaddirFlag,
)
from .convert import encode_xattr_names
from .fids import XATTR_SIZE_MAX, FidRef, XattrState
from .messages import Message, Qid

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger("ninep.server")

Handler = Callable[["Session", Any], Awaitable[Message]]
HANDLERS: dict[int, Handler] = {}
T = TypeVar("T", bound=Message)


def handles(
    kind: type[T],
) -> Callable[
    [Callable[[Session, T], Awaitable[Message]]], Callable[[Session, T], Awaitable[Message]]
]:
    """Register the decorated coroutine as the handler of requests of `kind`; an extension
    (its `extension` trait) is answered EOPNOTSUPP on a connection that did not negotiate
    its set."""

    def register(
        fn: Callable[[Session, T], Awaitable[Message]],
    ) -> Callable[[Session, T], Awaitable[Message]]:
        needs = kind.traits.extension
        if not needs:
            HANDLERS[kind.id] = fn
            return fn

        async def extension(s: Session, msg: T) -> Message:
            if s.extensions < needs:
                raise OSError(errno.EOPNOTSUPP, f"{kind.__name__} was not negotiated in Tversion")
            return await fn(s, msg)

        HANDLERS[kind.id] = extension
        return fn

    return register


def _user(uname: str, n_uname: int) -> User:
    if n_uname != NONUNAME:
        return User(uname, n_uname)
    try:
        return User(uname, pwd.getpwnam(uname).pw_uid)
    except KeyError:
        raise OSError(errno.EPERM, f"unknown user {uname!r}") from None


# ---- change notification (Tnotify): watches, coverage, own changes ----


def _watched(s: Session, file: File) -> bool:
    """On a connection that asked for changes: watch directory `file` (before anything it
    covers is read); whether its changes reach this connection."""
    sub = s.notify
    if sub is None or not file.qid.type & QidType.DIR or (w := watchable(file)) is None:
        return False
    return w.watch() is sub.hub and sub.hub.covered(file.qid.path)


def _covered(s: Session, attr: Attr) -> bool:
    """Whether the directory `attr` describes is covered for this connection (no watch set)."""
    sub = s.notify
    return sub is not None and bool(attr.qid.type & QidType.DIR) and sub.hub.covered(attr.qid.path)


def _with_coverage(attr: Attr, covered: bool) -> Attr:
    return dataclasses.replace(attr, valid=attr.valid | NOTIFY_COVERED) if covered else attr


async def _dir_attr(s: Session, directory: File, mask: int) -> Attr:
    """The attributes of `directory` after a change in it (with its coverage), as the
    second set's replies carry them; `Attr.absent()` if they cannot be read."""
    try:
        attr = await directory.getattr(mask)
    except OSError as e:
        log.debug("attributes of a changed directory not read: %s", e)
        return m.Attr.absent()
    return _with_coverage(attr, _covered(s, attr))


def _place(file: File) -> tuple[int, str] | None:
    w = watchable(file)
    return w.place() if w is not None else None


def _own(s: Session, *places: tuple[int, str] | None) -> AbstractContextManager[None]:
    """Around a request that changes `places` (qid path of a directory, name): what the
    host reports of them meanwhile is marked as this connection's own."""
    sub = s.notify
    if sub is None:
        return nullcontext()
    return sub.hub.origin(sub, [p for p in places if p is not None])


def _own_names(
    s: Session, msg: Message, *directories: FidRef, also: tuple[int, str] | None = None
) -> AbstractContextManager[None]:
    """`_own` for a change of the names `msg` carries (its `names` trait), each in the
    directory of the fid at the same place of its `modifies` (`directories`, in that
    order); and of `also`."""
    if s.notify is None:
        return nullcontext()
    names = msg.traits.names
    places = [(d.file.qid.path, getattr(msg, n)) for d, n in zip(directories, names, strict=True)]
    return _own(s, *places, also)


def _own_object(s: Session, file: File) -> AbstractContextManager[None]:
    """`_own` for a change of `file` itself: its entry, and if a directory, itself."""
    if s.notify is None:
        return nullcontext()
    return _own(s, _place(file), (file.qid.path, ""))


# ---- handlers: one per request, in protocol order ----


@handles(m.Tauth)
async def _auth(s: Session, msg: m.Tauth) -> Message:
    # ENOENT, as diod answers: diod's clients (diodcat, diodls, mount.diod) read it
    # as "attach without authentication" and give up on any other errno
    raise OSError(errno.ENOENT, "authentication is not required")


@handles(m.Tattach)
async def _attach(s: Session, msg: m.Tattach) -> Message:
    if msg.afid != NOFID:
        raise OSError(errno.EINVAL, "no authentication fid expected")
    s.fids.check_free(msg.fid)
    name, _, options = msg.aname.partition(";")
    export = s.exports.get(name)
    if export is None and not name and len(s.exports) == 1:
        export = next(iter(s.exports.values()))
    if export is None:
        log.warning("%s: attach to unknown export %r", s.peer, name)
        raise OSError(errno.ENOENT, f"no export named {name!r}")
    user = _user(msg.uname, msg.n_uname)
    if s.bound is not None:
        if user.uid != s.bound:
            raise OSError(errno.EPERM, f"uid {s.bound} may attach only as itself, not {user.uid}")
        user = User(user.name, user.uid, bounded=True)
    root = await export.attach(options, user)
    await s.fids.add(msg.fid, FidRef(root, user, read_only=read_only(export, options)))
    return m.Rattach(msg.tag, qid=root.qid)


@handles(m.Tflush)
async def _flush(s: Session, msg: m.Tflush) -> Message:
    if msg.oldtag != msg.tag:
        await s.flush(msg.oldtag)
    return m.Rflush(msg.tag)


_Walks = m.Twalk | m.Twalkgetattr | m.Twalkopen


def _check_walk(s: Session, msg: _Walks) -> None:
    if msg.newfid != msg.fid:
        s.fids.check_free(msg.newfid)


async def _walk_names(fid: FidRef, msg: _Walks) -> tuple[list[Qid], File, OSError | None]:
    """Walk `msg.wnames` from `fid`: the qids walked, the File reached (the caller's to
    close or keep), and the error of the name that stopped the walk (None: all walked)."""
    if fid.xattr is not None:
        raise OSError(errno.EBADF, "cannot walk from an attribute fid")
    if fid.handle is not None and msg.newfid == msg.fid:  # as QEMU; to a new fid is fine
        raise OSError(errno.EINVAL, "an open fid cannot walk itself")
    current = await fid.file.clone()
    qids: list[Qid] = []
    try:
        for name in msg.wnames:  # checked by the gate (ninep.gate)
            try:
                child = await current.walk(name)
            except OSError as e:
                return qids, current, e
            await current.close()
            current = child
            qids.append(child.qid)
    except BaseException:
        await current.close()
        raise
    return qids, current, None


async def _walked(
    s: Session, fid: FidRef, msg: _Walks, file: File, handle: Handle | None = None
) -> None:
    """Point `msg.newfid` (perhaps `fid` itself) at `file`, walked to from `fid` (and
    opened as `handle`)."""
    if msg.newfid == msg.fid:
        fid.replace_file(file)
        fid.handle = handle
        if handle is not None:
            s.fids.opened()
    else:
        await s.fids.add(msg.newfid, fid.derived(file, handle))


@handles(m.Twalk)
async def _walk(s: Session, msg: m.Twalk) -> Message:
    _check_walk(s, msg)
    async with s.fids.use(msg.fid) as fid:
        qids, current, error = await _walk_names(fid, msg)
        if error is None:
            _watched(s, current)
            await _walked(s, fid, msg, current)
        else:
            await current.close()
            if not qids:  # a walk failing on its first name is an error, a later one is not
                raise error
    return m.Rwalk(msg.tag, qids=qids)


@handles(m.Twalkgetattr)
async def _walkgetattr(s: Session, msg: m.Twalkgetattr) -> Message:
    _check_walk(s, msg)
    async with s.fids.use(msg.fid) as fid:
        qids, current, error = await _walk_names(fid, msg)
        try:
            if error is not None:  # all or nothing: the errno of the name that failed
                raise error
            covered = _watched(s, current)
            attr = _with_coverage(await current.getattr(msg.request_mask), covered)
        except BaseException:
            await current.close()
            raise
        await _walked(s, fid, msg, current)
    return m.Rwalkgetattr(msg.tag, qids=qids, attr=attr)


@handles(m.Twalkopen)
async def _walkopen(s: Session, msg: m.Twalkopen) -> Message:
    _check_walk(s, msg)
    async with s.fids.use(msg.fid) as fid:
        qids, current, error = await _walk_names(fid, msg)
        handle: Handle | None = None
        try:
            if error is not None:  # all or nothing, as Twalkgetattr
                raise error
            s.fids.check_open()
            covered = _watched(s, current)
            handle = await current.open(_open_flags(msg.flags))
            attr = _with_coverage(await current.getattr(msg.request_mask), covered)
        except BaseException:
            if handle is not None:
                await handle.close()
            await current.close()
            raise
        await _walked(s, fid, msg, current, handle)
    return m.Rwalkopen(msg.tag, qids=qids, qid=current.qid, iounit=0, attr=attr)


@handles(m.Tclunk)
async def _clunk(s: Session, msg: m.Tclunk) -> Message:
    async with s.fids.use(msg.fid) as fid:
        s.fids.pop(msg.fid)
        x = fid.xattr
        if x is not None and x.writing:
            if len(x.value) != x.size:
                raise OSError(errno.EINVAL, f"xattr {x.name}: {len(x.value)} of {x.size} bytes")
            with _own_object(s, fid.file):
                if x.size == 0:  # as QEMU: an empty value is how a client removes one
                    await fid.file.removexattr(x.name)
                else:
                    await fid.file.setxattr(x.name, bytes(x.value), x.flags)
    return m.Rclunk(msg.tag)


@handles(m.Tremove)
async def _remove(s: Session, msg: m.Tremove) -> Message:
    async with s.fids.use(msg.fid) as fid:
        s.fids.pop(msg.fid)
        with _own_object(s, fid.file):
            await fid.file.remove()
    return m.Rremove(msg.tag)


@handles(m.Tgetattr)
async def _getattr(s: Session, msg: m.Tgetattr) -> Message:
    async with s.fids.use(msg.fid) as fid:
        covered = _watched(s, fid.file)
        attr = _with_coverage(await fid.file.getattr(msg.request_mask), covered)
    return m.Rgetattr(msg.tag, attr=attr)


@handles(m.Tsetattr)
async def _setattr(s: Session, msg: m.Tsetattr) -> Message:
    async with s.fids.use(msg.fid) as fid:
        with _own_object(s, fid.file):
            await fid.file.setattr(msg.attr)
    return m.Rsetattr(msg.tag)


@handles(m.Tsetattrattr)
async def _setattrattr(s: Session, msg: m.Tsetattrattr) -> Message:
    async with s.fids.use(msg.fid) as fid:
        with _own_object(s, fid.file):
            await fid.file.setattr(msg.attr)
        try:
            covered = _watched(s, fid.file)
            attr = _with_coverage(await fid.file.getattr(msg.request_mask), covered)
        except OSError as e:  # set, but not read back: absent attributes
            log.debug("attributes after a setattr not read: %s", e)
            attr = m.Attr.absent()
    return m.Rsetattrattr(msg.tag, attr=attr)


@handles(m.Tstatfs)
async def _statfs(s: Session, msg: m.Tstatfs) -> Message:
    async with s.fids.use(msg.fid) as fid:
        st = await fid.file.statfs()
    return m.Rstatfs(msg.tag, statfs=st)


def _open_flags(flags: int) -> int:
    """What a File is asked to open with: the wire `flags` without CREAT and EXCL (an open
    makes nothing)."""
    return flags & ~(OpenFlag.CREAT | OpenFlag.EXCL)


def _check_unopened(fid: FidRef) -> None:
    if fid.handle is not None or fid.xattr is not None:
        raise OSError(errno.EBADF, "fid is already open")


@handles(m.Tlopen)
async def _lopen(s: Session, msg: m.Tlopen) -> Message:
    async with s.fids.use(msg.fid) as fid:
        _check_unopened(fid)
        s.fids.check_open()
        fid.handle = await fid.file.open(_open_flags(msg.flags))
        s.fids.opened()
        return m.Rlopen(msg.tag, qid=fid.file.qid, iounit=0)


async def _child_attr(directory: File, name: str, mask: int) -> Attr:
    """The attributes of entry `name` of `directory`, no File kept for it (`ChildAttrs`,
    else walk, getattr, close); `Attr.absent()` if they cannot be read."""
    try:
        if (offered := child_attrs(directory)) is not None:
            return await offered.getattr_child(name, mask)
        child = await directory.walk(name)
        try:
            return await child.getattr(mask)
        finally:
            await child.close()
    except OSError as e:
        log.debug("attributes of %r not read: %s", name, e)
        return m.Attr.absent()


async def _made_attr(directory: File, name: str, qid: Qid, mask: int) -> Attr:
    """The attributes of object `qid` just made as `name` in `directory`; absent if
    they cannot be read or `name` no longer names it."""
    attr = await _child_attr(directory, name, mask)
    return attr if attr.qid == qid else m.Attr.absent()


async def _create(
    s: Session,
    fid: FidRef,
    msg: m.Tlcreate | m.Tlcreateattr | m.Tlcreateattrs,
    newfid: int | None = None,
) -> File:
    """Create and open `msg.name` in `fid`'s directory; `fid` becomes the new file, or
    fid `newfid` is made for it (the directory's stays)."""
    _check_unopened(fid)
    if newfid is not None:
        s.fids.check_free(newfid)
    s.fids.check_open()
    with _own_names(s, msg, fid):
        file, handle = await fid.file.create(msg.name, msg.flags, msg.mode, msg.gid)
    if newfid is None:
        fid.replace_file(file)
        fid.handle = handle
        s.fids.opened()
        return file
    await s.fids.add(newfid, fid.derived(file, handle))  # closes both if taken meanwhile
    return file


@handles(m.Tlcreate)
async def _lcreate(s: Session, msg: m.Tlcreate) -> Message:
    async with s.fids.use(msg.fid) as fid:
        file = await _create(s, fid, msg)
        return m.Rlcreate(msg.tag, qid=file.qid, iounit=0)


@handles(m.Tlcreateattr)
async def _lcreateattr(s: Session, msg: m.Tlcreateattr) -> Message:
    async with s.fids.use(msg.fid) as fid:
        file = await _create(s, fid, msg, None if msg.newfid == msg.fid else msg.newfid)
        attr = await _attr_of(file, msg.request_mask)
        return m.Rlcreateattr(msg.tag, qid=file.qid, iounit=0, attr=attr)


@handles(m.Tlcreateattrs)
async def _lcreateattrs(s: Session, msg: m.Tlcreateattrs) -> Message:
    async with s.fids.use(msg.fid) as fid:
        if msg.newfid == msg.fid:  # the directory's fid becomes the file: no fid of it left
            raise OSError(errno.EINVAL, "Tlcreateattrs needs a newfid apart from fid")
        file = await _create(s, fid, msg, msg.newfid)
        attr = await _attr_of(file, msg.request_mask)
        dattr = await _dir_attr(s, fid.file, msg.request_mask)
        return m.Rlcreateattrs(msg.tag, qid=file.qid, iounit=0, attr=attr, dattr=dattr)


async def _attr_of(file: File, mask: int) -> Attr:
    """`file.getattr(mask)`; `Attr.absent()` if it cannot be read."""
    try:
        return await file.getattr(mask)
    except OSError:
        return m.Attr.absent()


async def _symlink_in(
    s: Session, fid: FidRef, msg: m.Tsymlink | m.Tsymlinkattr | m.Tsymlinkattrs
) -> Qid:
    with _own_names(s, msg, fid):
        return await fid.file.symlink(msg.name, msg.symtgt, msg.gid)


@handles(m.Tsymlink)
async def _symlink(s: Session, msg: m.Tsymlink) -> Message:
    async with s.fids.use(msg.fid) as fid:
        qid = await _symlink_in(s, fid, msg)
    return m.Rsymlink(msg.tag, qid=qid)


@handles(m.Tsymlinkattr)
async def _symlinkattr(s: Session, msg: m.Tsymlinkattr) -> Message:
    async with s.fids.use(msg.fid) as fid:
        qid = await _symlink_in(s, fid, msg)
        attr = await _made_attr(fid.file, msg.name, qid, msg.request_mask)
    return m.Rsymlinkattr(msg.tag, qid=qid, attr=attr)


@handles(m.Tsymlinkattrs)
async def _symlinkattrs(s: Session, msg: m.Tsymlinkattrs) -> Message:
    async with s.fids.use(msg.fid) as fid:
        qid = await _symlink_in(s, fid, msg)
        attr, dattr = await _made_attrs(s, fid.file, msg.name, qid, msg.request_mask)
    return m.Rsymlinkattrs(msg.tag, qid=qid, attr=attr, dattr=dattr)


async def _made_attrs(
    s: Session, directory: File, name: str, qid: Qid, mask: int
) -> tuple[Attr, Attr]:
    """`_made_attr` of `qid` just made as `name` in `directory`, and `_dir_attr` of it."""
    return await _made_attr(directory, name, qid, mask), await _dir_attr(s, directory, mask)


async def _mknod_in(s: Session, fid: FidRef, msg: m.Tmknod | m.Tmknodattr | m.Tmknodattrs) -> Qid:
    with _own_names(s, msg, fid):
        return await fid.file.mknod(msg.name, msg.mode, msg.major, msg.minor, msg.gid)


@handles(m.Tmknod)
async def _mknod(s: Session, msg: m.Tmknod) -> Message:
    async with s.fids.use(msg.dfid) as fid:
        qid = await _mknod_in(s, fid, msg)
    return m.Rmknod(msg.tag, qid=qid)


@handles(m.Tmknodattr)
async def _mknodattr(s: Session, msg: m.Tmknodattr) -> Message:
    async with s.fids.use(msg.dfid) as fid:
        qid = await _mknod_in(s, fid, msg)
        attr = await _made_attr(fid.file, msg.name, qid, msg.request_mask)
    return m.Rmknodattr(msg.tag, qid=qid, attr=attr)


@handles(m.Tmknodattrs)
async def _mknodattrs(s: Session, msg: m.Tmknodattrs) -> Message:
    async with s.fids.use(msg.dfid) as fid:
        qid = await _mknod_in(s, fid, msg)
        attr, dattr = await _made_attrs(s, fid.file, msg.name, qid, msg.request_mask)
    return m.Rmknodattrs(msg.tag, qid=qid, attr=attr, dattr=dattr)


async def _mkdir_in(s: Session, fid: FidRef, msg: m.Tmkdir | m.Tmkdirattr | m.Tmkdirattrs) -> Qid:
    with _own_names(s, msg, fid):
        return await fid.file.mkdir(msg.name, msg.mode, msg.gid)


@handles(m.Tmkdir)
async def _mkdir(s: Session, msg: m.Tmkdir) -> Message:
    async with s.fids.use(msg.dfid) as fid:
        qid = await _mkdir_in(s, fid, msg)
    return m.Rmkdir(msg.tag, qid=qid)


@handles(m.Tmkdirattr)
async def _mkdirattr(s: Session, msg: m.Tmkdirattr) -> Message:
    async with s.fids.use(msg.dfid) as fid:
        qid = await _mkdir_in(s, fid, msg)
        attr = await _made_attr(fid.file, msg.name, qid, msg.request_mask)
    return m.Rmkdirattr(msg.tag, qid=qid, attr=attr)


@handles(m.Tmkdirattrs)
async def _mkdirattrs(s: Session, msg: m.Tmkdirattrs) -> Message:
    async with s.fids.use(msg.dfid) as fid:
        if msg.newfid != NOFID:
            s.fids.check_free(msg.newfid)
        qid = await _mkdir_in(s, fid, msg)
        if msg.newfid == NOFID:
            attr = await _made_attr(fid.file, msg.name, qid, msg.request_mask)
        else:
            attr = await _new_dir_fid(s, fid, msg.name, qid, msg.newfid, msg.request_mask)
        dattr = await _dir_attr(s, fid.file, msg.request_mask)
    return m.Rmkdirattrs(msg.tag, qid=qid, attr=attr, dattr=dattr)


async def _new_dir_fid(
    s: Session, fid: FidRef, name: str, qid: Qid, newfid: int, mask: int
) -> Attr:
    """Fid `newfid` for directory `qid` just made as `name` in `fid`'s directory, as a walk
    to it would make (and watch); its attributes, covered only if it was still empty once
    watched (a client may then take it as empty). Absent, and no fid made, if `name` no
    longer names it."""
    try:
        child = await fid.file.walk(name)
    except OSError as e:
        log.debug("walk to the directory just made %r: %s", name, e)
        return m.Attr.absent()
    try:
        if child.qid != qid:
            await child.close()
            return m.Attr.absent()
        covered = _watched(s, child) and _empty(child)
        attr = _with_coverage(await child.getattr(mask), covered)
    except BaseException:
        await child.close()
        raise
    await s.fids.add(newfid, fid.derived(child))
    return attr


def _empty(directory: File) -> bool:
    """Whether watched `directory` has no entry."""
    w = watchable(directory)
    return w is not None and w.empty()


@handles(m.Trename)
async def _rename(s: Session, msg: m.Trename) -> Message:
    async with s.fids.use(msg.fid) as fid, s.fids.use(msg.dfid) as dfid:
        with _own_names(s, msg, dfid, also=_place(fid.file)):
            await fid.file.rename(dfid.file, msg.name)
    return m.Rrename(msg.tag)


@handles(m.Trenameat)
async def _renameat(s: Session, msg: m.Trenameat) -> Message:
    async with s.fids.use(msg.olddirfid) as old, s.fids.use(msg.newdirfid) as new:
        await _renameat_in(s, old, new, msg)
    return m.Rrenameat(msg.tag)


@handles(m.Trenameatattrs)
async def _renameatattrs(s: Session, msg: m.Trenameatattrs) -> Message:
    async with s.fids.use(msg.olddirfid) as old, s.fids.use(msg.newdirfid) as new:
        await _renameat_in(s, old, new, msg)
        olddattr = await _dir_attr(s, old.file, msg.request_mask)
        newdattr = await _dir_attr(s, new.file, msg.request_mask)
    return m.Rrenameatattrs(msg.tag, olddattr=olddattr, newdattr=newdattr)


async def _renameat_in(
    s: Session, old: FidRef, new: FidRef, msg: m.Trenameat | m.Trenameatattrs
) -> None:
    with _own_names(s, msg, old, new):
        await old.file.renameat(msg.oldname, new.file, msg.newname)


@handles(m.Tunlinkat)
async def _unlinkat(s: Session, msg: m.Tunlinkat) -> Message:
    async with s.fids.use(msg.dirfid) as fid:
        await _unlinkat_in(s, fid, msg)
    return m.Runlinkat(msg.tag)


@handles(m.Tunlinkatattrs)
async def _unlinkatattrs(s: Session, msg: m.Tunlinkatattrs) -> Message:
    async with s.fids.use(msg.dirfid) as fid:
        await _unlinkat_in(s, fid, msg)
        dattr = await _dir_attr(s, fid.file, msg.request_mask)
    return m.Runlinkatattrs(msg.tag, dattr=dattr)


async def _unlinkat_in(s: Session, fid: FidRef, msg: m.Tunlinkat | m.Tunlinkatattrs) -> None:
    with _own_names(s, msg, fid):
        await fid.file.unlinkat(msg.name, msg.flags)


@handles(m.Tlink)
async def _link(s: Session, msg: m.Tlink) -> Message:
    async with s.fids.use(msg.dfid) as dfid, s.fids.use(msg.fid) as fid:
        await _link_in(s, dfid, fid, msg)
    return m.Rlink(msg.tag)


@handles(m.Tlinkattrs)
async def _linkattrs(s: Session, msg: m.Tlinkattrs) -> Message:
    async with s.fids.use(msg.dfid) as dfid, s.fids.use(msg.fid) as fid:
        await _link_in(s, dfid, fid, msg)
        attr = await _attr_of(fid.file, msg.request_mask)
        dattr = await _dir_attr(s, dfid.file, msg.request_mask)
    return m.Rlinkattrs(msg.tag, attr=attr, dattr=dattr)


async def _link_in(s: Session, dfid: FidRef, fid: FidRef, msg: m.Tlink | m.Tlinkattrs) -> None:
    with _own_names(s, msg, dfid, also=_place(fid.file)):
        await dfid.file.link(fid.file, msg.name)


@handles(m.Treadlink)
async def _readlink(s: Session, msg: m.Treadlink) -> Message:
    async with s.fids.use(msg.fid) as fid:
        target = await fid.file.readlink()
    return m.Rreadlink(msg.tag, target=target)


def _opened(fid: FidRef) -> Handle:
    """The open handle of `fid`; EBADF if it was never opened."""
    if fid.handle is None:
        raise OSError(errno.EBADF, "fid is not open")
    return fid.handle


@handles(m.Tread)
async def _read(s: Session, msg: m.Tread) -> Message:
    count = s.iosize(msg.count)
    async with s.fids.use(msg.fid) as fid:
        if fid.xattr is not None and not fid.xattr.writing:
            data = bytes(fid.xattr.value[msg.offset : msg.offset + count])
        else:
            handle = _opened(fid)
            data = await handle.read(msg.offset, count)
    return m.Rread(msg.tag, data=data)


@handles(m.Twrite)
async def _write(s: Session, msg: m.Twrite) -> Message:
    async with s.fids.use(msg.fid) as fid:
        x = fid.xattr
        if x is not None and x.writing:
            if msg.offset != len(x.value) or len(x.value) + len(msg.data) > x.size:
                raise OSError(errno.EINVAL, f"xattr {x.name}: write outside its announced size")
            x.value += msg.data
            count = len(msg.data)
        else:
            handle = _opened(fid)
            with _own_object(s, fid.file):
                count = await handle.write(msg.offset, msg.data)
    return m.Rwrite(msg.tag, count=count)


@handles(m.Treaddir)
async def _readdir(s: Session, msg: m.Treaddir) -> Message:
    room = s.iosize(msg.count)
    async with s.fids.use(msg.fid) as fid:
        handle = _opened(fid)
        _watched(s, fid.file)
        entries = await handle.readdir(msg.offset)
    out = []
    for e in entries:
        room -= m.dirent_size(e.name)
        if room < 0:
            break
        out.append((e.qid, e.offset, e.type, e.name))
    return m.Rreaddir(msg.tag, data=m.encode_dirents(out))


@handles(m.Treaddirattr)
async def _readdirattr(s: Session, msg: m.Treaddirattr) -> Message:
    room = s.iosize(msg.count)
    async with s.fids.use(msg.fid) as fid:
        handle = _opened(fid)
        _watched(s, fid.file)
        entries = await handle.readdir(msg.offset)
        out: list[m.DirentAttr] = []
        for e in entries:
            room -= m.dirent_attr_size(e.name)
            if room < 0:
                break
            attr = await _child_attr(fid.file, e.name, msg.request_mask)
            out.append((e.qid, e.offset, e.type, e.name, _with_coverage(attr, _covered(s, attr))))
        # the end when all fit and nothing follows (a backend may list in several calls)
        end = not out or (len(out) == len(entries) and not await handle.readdir(out[-1][1]))
    flags = ReaddirFlag.END if end else 0
    return m.Rreaddirattr(msg.tag, flags=flags, data=m.encode_dirent_attrs(out))


@handles(m.Tfsync)
async def _fsync(s: Session, msg: m.Tfsync) -> Message:
    async with s.fids.use(msg.fid) as fid:
        handle = _opened(fid)
        await handle.fsync(bool(msg.datasync))
    return m.Rfsync(msg.tag)


def _lock(msg: m.Tlock | m.Tgetlock) -> Lock:
    return Lock(msg.type, msg.start, msg.length, msg.proc_id, msg.client_id)


@handles(m.Tlock)
async def _lock_(s: Session, msg: m.Tlock) -> Message:
    async with s.fids.use(msg.fid) as fid:
        handle = _opened(fid)
        flags = msg.flags if s.extensions else msg.flags & ~LockFlag.FLOCK
        status = await handle.lock(flags, _lock(msg))
    return m.Rlock(msg.tag, status=status)


@handles(m.Tgetlock)
async def _getlock(s: Session, msg: m.Tgetlock) -> Message:
    async with s.fids.use(msg.fid) as fid:
        handle = _opened(fid)
        lk = await handle.getlock(_lock(msg))
    return m.Rgetlock(
        msg.tag,
        type=lk.type,
        start=lk.start,
        length=lk.length,
        proc_id=lk.proc_id,
        client_id=lk.client_id,
    )


@handles(m.Txattrwalk)
async def _xattrwalk(s: Session, msg: m.Txattrwalk) -> Message:
    if msg.newfid != msg.fid:
        s.fids.check_free(msg.newfid)
    async with s.fids.use(msg.fid) as fid:
        if msg.name:
            value = await fid.file.getxattr(msg.name)
        else:
            value = encode_xattr_names(await fid.file.listxattr())
        state = XattrState(msg.name, bytearray(value), len(value), 0, writing=False)
        if msg.newfid == msg.fid:
            fid.xattr = state
        else:
            await s.fids.add(msg.newfid, fid.derived(await fid.file.clone(), xattr=state))
    return m.Rxattrwalk(msg.tag, size=len(value))


@handles(m.Txattrcreate)
async def _xattrcreate(s: Session, msg: m.Txattrcreate) -> Message:
    if msg.attr_size > XATTR_SIZE_MAX:
        raise OSError(errno.E2BIG, f"xattr value of {msg.attr_size} bytes is too large")
    if not msg.name or "\0" in msg.name:
        raise OSError(errno.EINVAL, f"invalid xattr name {msg.name!r}")
    async with s.fids.use(msg.fid) as fid:
        _check_unopened(fid)
        fid.xattr = XattrState(msg.name, bytearray(), msg.attr_size, msg.flags, writing=True)
    return m.Rxattrcreate(msg.tag)


@handles(m.Tnotify)
async def _notify(s: Session, msg: m.Tnotify) -> Message:
    overflow, data = await _changes(s, msg.fid)
    return m.Rnotify(msg.tag, flags=NotifyFlag.OVERFLOW if overflow else 0, data=data)


@handles(m.Tnotifyflags)
async def _notifyflags(s: Session, msg: m.Tnotifyflags) -> Message:
    overflow, data = await _changes(s, msg.fid, msg.flags)
    return m.Rnotifyflags(msg.tag, flags=NotifyFlag.OVERFLOW if overflow else 0, data=data)


async def _changes(s: Session, fid_number: int, asked: int = 0) -> tuple[bool, bytes]:
    """Wait for changes of the export of `fid_number`, as `asked` (NotifyAsk): (overflowed,
    the changes as Rnotify data)."""
    async with s.fids.use(fid_number) as fid:
        w = watchable(fid.file)
        hub = w.watch() if w is not None else None
        if hub is None:
            raise OSError(errno.EOPNOTSUPP, "this export offers no change notification")
        sub = s.notify
        if sub is None:  # at once after the watch: no change can fall between the two
            sub = s.notify = hub.subscribe(s.limits.changes)
        elif sub.hub is not hub:
            raise OSError(errno.EXDEV, "changes are notified of one export per connection")
        sub.others_only = bool(asked & NotifyAsk.OTHERS)
    # at most one pending per connection: the session refuses a second (EBUSY)
    overflow, batch = await sub.take(s.msize - HEADER_SIZE - 8)
    return overflow, m.encode_changes(batch)


@handles(m.Texports)
async def _exports(s: Session, msg: m.Texports) -> Message:
    listed = [described(name, export).encode() for name, export in sorted(s.exports.items())]
    if HEADER_SIZE + 2 + sum(2 + len(x.encode()) for x in listed) > s.msize:
        raise OSError(errno.EMSGSIZE, "the listing of exports does not fit in msize")
    return m.Rexports(msg.tag, exports=listed)


assert set(HANDLERS) == {
    k.id for k in m.KINDS.values() if issubclass(k, m.Request) and k is not m.Tversion
}
