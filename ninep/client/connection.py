"""One client connection: version negotiation, tags, fids, concurrent requests, flush on cancel.

Each request is the task that awaits its reply. It writes its frame to the
socket itself when nothing else is being sent (one write, no hop through
another task); else a sender task writes the queued frames (batching small
ones). A receiver task routes each reply by its tag and wakes its task.
It, not the request, reads the reply: trio lets one task wait on the socket,
and the receiver waits there between requests too (a pending Tnotify, the
server closing), so a request reading its own reply would first have to take
the socket from it (a task step) and give it back: more than the one step
(about 3.5 us of CPU) it saves.
A request cancelled after it was sent is flushed (Tflush) in the background:
its tag is reused only after Rflush, and a reply that arrives first is
honoured as 9P requires (a fid it allocated is clunked). Tclunk and Tremove
are never flushed: they always complete, so the fid is released.

With a `timeout`, a watchdog task watches a server that is quiet while
requests wait: after a quarter of `timeout` with nothing received it sends a
probe, a Tflush of a tag not in use (every server answers it at once, without
touching its backend; ours starts it ahead of queued requests), and again a
quarter after each answer. A server that answers nothing at all for `timeout`
(stopped, or partitioned with the connection open) is lost; a slow request on
a live server is not, since its probes are answered. An idle connection is
never probed and never times out; a pending Tnotify (which waits for changes,
however long) leaves it idle.
"""

from __future__ import annotations

import enum
import errno
import logging
import math
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import trio

from .. import messages as m
from ..constants import (
    DEFAULT_MSIZE,
    EXTENSION_SETS,
    IOHDRSZ,
    MIN_MSIZE,
    NOFID,
    NOTAG,
    UNKNOWN_VERSION,
    VERSION,
)
from ..listing import ExportInfo, NoListing
from ..messages import Message, ProtocolError, R, Request
from ..transport import Address, FrameReader, fast_stream, parse_address
from ..transport import connect as connect_stream
from .fid import Fid

log = logging.getLogger("ninep.client")

_BATCH_BYTES = 1 << 16  # small frames queued together leave in one send
_CLOSED = "the client is closed"  # the reason of a connection closed on purpose
_PROBES = 4  # a quiet server is probed after each quarter of the timeout


class _State(enum.Enum):
    QUEUED = "queued"  # waiting for the sender
    DROPPED = "dropped"  # cancelled before it was sent: never sent
    SENT = "sent"  # on the wire, no reply yet
    DONE = "done"  # answered, flushed away, or failed with the connection


class _Request:
    """One tag in use: a T-message and what became of it."""

    __slots__ = (
        "abandoned", "flush", "flushed", "frame", "msg", "reply", "state", "task", "waiter"
    )  # fmt: skip

    def __init__(self, msg: Message, frame: bytes, awaited: bool, waiter: trio.Event | None = None):
        self.msg = msg
        self.frame = frame  # what is still to be sent of it
        self.waiter = waiter  # set once it is over (the watchdog's probe)
        self.task: trio.lowlevel.Task | None = None  # the task parked for its reply
        self.state = _State.QUEUED
        self.reply: Message | None = None
        self.abandoned = not awaited  # nobody awaits the reply
        self.flush: _Request | None = None  # the Tflush sent for this request
        self.flushed: _Request | None = None  # for a Tflush: the request it flushes


def _created_fid(msg: Message) -> int | None:
    """The fid a request brings into existence if it succeeds (its `newfid` trait)."""
    return msg.traits.created_fid(msg)


def _creates(msg: Message, reply: Message) -> bool:
    """Whether `reply` means the fid of `msg` now exists (a partial walk creates nothing)."""
    return not isinstance(reply, m.Rlerror) and msg.traits.creates(msg, reply)


def _answer(reply: Message, kind: type[Request[R]]) -> R:
    """`reply`, the answer to a request of `kind` (checked by its type number); Rlerror
    raises OSError(ecode)."""
    if isinstance(reply, m.Rlerror):
        raise OSError(reply.ecode, os.strerror(reply.ecode))
    assert reply.id == kind.id + 1, f"{reply} answers no {kind.__name__}"
    return cast(R, reply)


def _freed_fid(msg: Message) -> int | None:
    """The fid a request releases whatever its outcome (its `frees` trait)."""
    field = msg.traits.frees
    return None if field is None else int(getattr(msg, field))


class _Pool:
    """Numbers handed out lowest-first and reused most-recently-freed first."""

    def __init__(self, limit: int) -> None:
        self._limit = limit  # first number never handed out
        self._next = 0
        self._free: list[int] = []

    def take(self) -> int | None:
        if self._free:
            return self._free.pop()
        if self._next >= self._limit:
            return None
        self._next += 1
        return self._next - 1

    def give(self, n: int) -> None:
        self._free.append(n)

    def in_use(self) -> int:
        return self._next - len(self._free)


class Client:
    """A 9P2000.L connection; use `connect` or `Client.from_stream` to open one."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        reader: FrameReader,
        msize: int,
        timeout: float | None = None,
        extensions: int = 0,
    ) -> None:
        self.msize = msize
        # the sets of this project's extensions the server agreed to (EXTENSION_SETS)
        self.extensions = extensions
        self.iosize = msize - IOHDRSZ  # the most data one Tread/Twrite carries
        self.client_id = socket.gethostname()  # default Tlock/Tgetlock client_id
        # called with each message as it is sent or received (tests, tools), as the trace is
        self.on_send: Callable[[Message], None] | None = None
        self.on_receive: Callable[[Message], None] | None = None
        self._stream = stream
        self._reader = reader
        self._tags = _Pool(NOTAG)
        self._fids = _Pool(NOFID)
        self._pending: dict[int, _Request] = {}
        self._waits = 0  # of them, Tnotify: waiting for changes is not waiting for an answer
        self._outbox, self._outbox_out = trio.open_memory_channel[_Request](math.inf)
        self._backlog = 0  # requests queued for the sender task, and its send under way
        # a send straight to the socket, without waiting: the bytes it took
        self._direct: Callable[[bytes], int] | None = getattr(stream, "send_now", None)
        self._tag_waiters = trio.lowlevel.ParkingLot()
        self._orphans = 0  # pending requests nobody awaits (flushes, background clunks)
        self._settled = trio.lowlevel.ParkingLot()
        self._closed_reason: str | None = None
        self._tasks = trio.CancelScope()
        self._timeout = timeout
        self._heard = trio.current_time()  # the last receive, or when requests began waiting
        self._busy = trio.lowlevel.ParkingLot()  # the watchdog waits here while nothing is pending
        self._probe: _Request | None = None  # the last probe sent
        self.silent_since: float | None = None  # lost to silence: when the server was last heard

    @property
    def extended(self) -> bool:
        """Whether the server agreed to this project's extensions (docs/protocol-extensions.md)."""
        return self.extensions > 0

    # ---- opening and closing ----

    @classmethod
    @asynccontextmanager
    async def from_stream(
        cls,
        stream: trio.abc.Stream,
        *,
        msize: int = DEFAULT_MSIZE,
        timeout: float | None = None,
        version_timeout: float | None = None,
        extensions: bool | int = True,
    ) -> AsyncIterator[Client]:
        """Negotiate 9P2000.L on `stream` and serve requests until the block exits.

        `timeout` (seconds, None: wait forever): how long requests may wait while
        nothing at all comes from the server; past it the connection is lost
        (every request raises ConnectionError). `version_timeout` bounds the wait
        for Rversion (None: `timeout`; math.inf: however long, the caller bounds it).
        `extensions`: ask for this project's extensions first, every set (True) or the
        first `extensions` sets (`Client.extensions` tells which the server agreed to).
        On exit pending requests fail and the stream is closed; nothing is clunked.
        """
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive or None, not {timeout}")
        bound = version_timeout if version_timeout is not None else timeout
        async with stream:
            stream = fast_stream(stream)
            reader = FrameReader(stream, msize)
            with trio.move_on_after(math.inf if bound is None else bound) as version:
                wanted = max(EXTENSION_SETS.values()) if extensions is True else int(extensions)
                negotiated, agreed = await _negotiate(stream, reader, msize, wanted)
            if version.cancelled_caught:
                raise ConnectionError(
                    errno.ETIMEDOUT, f"the server did not answer Tversion for {bound:g} s"
                )
            client = cls(stream, reader, negotiated, timeout, agreed)
            error: Exception | None = None
            async with trio.open_nursery() as nursery:
                await nursery.start(client._run)
                try:
                    yield client
                except Exception as e:  # re-raised below, not wrapped in an ExceptionGroup
                    error = e
                finally:
                    client._fail(_CLOSED)
            if error is not None:
                raise error

    @property
    def closed(self) -> bool:
        """True once the connection is closed or lost: every request then fails."""
        return self._closed_reason is not None

    def _connection_error(self) -> ConnectionError:
        return ConnectionError(errno.ENOTCONN, f"9P connection closed: {self._closed_reason}")

    def _fail(self, reason: str) -> None:
        """Close the connection: every pending and future request fails with ConnectionError."""
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        if reason != _CLOSED:
            log.warning("9P connection lost: %s", reason)
        pending, self._pending = self._pending, {}
        self._waits = 0
        for req in pending.values():
            req.state = _State.DONE
            self._wake(req)
        self._orphans = 0
        self._tag_waiters.unpark_all()
        self._settled.unpark_all()
        self._tasks.cancel()

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self._tasks:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._receive_loop)
                    nursery.start_soon(self._send_loop)
                    if self._timeout is not None:
                        nursery.start_soon(self._watchdog, self._timeout)
                    task_status.started()
            finally:
                self._fail(_CLOSED)
                await trio.aclose_forcefully(self._stream)

    # ---- the tasks: sender, receiver, watchdog ----

    async def _send_loop(self) -> None:
        batch: list[bytes] = []
        size = 0
        try:
            async for req in self._outbox_out:
                while True:
                    if req.state is _State.QUEUED:
                        self._sent(req)
                    if req.state is _State.SENT and req.frame:  # queued, or a partial send's rest
                        batch.append(req.frame)
                        size += len(req.frame)
                        req.frame = b""
                    self._backlog -= 1
                    if size >= _BATCH_BYTES:
                        break
                    try:
                        req = self._outbox_out.receive_nowait()
                    except trio.WouldBlock:
                        break
                if batch:
                    data = batch[0] if len(batch) == 1 else b"".join(batch)
                    batch.clear()
                    size = 0
                    self._backlog += 1  # no direct send while this one is under way
                    await self._stream.send_all(data)
                    self._backlog -= 1
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            self._fail(f"cannot send: {e!r}")

    async def _receive_loop(self) -> None:
        try:
            while (frame := await self._reader.read()) is not None:
                self._heard = trio.current_time()
                reply = m.decode(frame)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("<- %s", reply)
                if self.on_receive is not None:
                    self.on_receive(reply)
                self._dispatch(reply)
            self._fail("the server closed the connection")
        except ProtocolError as e:
            self._fail(f"protocol error: {e}")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            self._fail(f"cannot receive: {e!r}")

    async def _watchdog(self, timeout: float) -> None:
        """Probe a server quiet while requests wait; lose it after `timeout` s of silence."""
        interval = timeout / _PROBES
        while True:
            while len(self._pending) == self._waits:
                await self._busy.park()
            quiet = trio.current_time() - self._heard
            if quiet >= timeout:
                self.silent_since = self._heard
                self._fail(f"the server did not answer for {timeout:g} s")
                return
            if quiet < interval:
                await trio.sleep_until(self._heard + interval)
                continue  # a receive may have moved the clock: look again
            if self._probe is None or self._probe.state is _State.DONE:
                self._probe = self._send_probe()
            answered = self._probe.waiter if self._probe is not None else None
            with trio.move_on_at(self._heard + timeout):  # then look again
                await (answered.wait() if answered is not None else trio.sleep_forever())

    def _send_probe(self) -> _Request | None:
        """Ask the server for a sign of life: a Tflush of NOTAG, which no request ever uses."""
        tag = self._tags.take()
        if tag is None:  # every tag in flight: any reply is the sign of life
            return None
        msg = m.Tflush(tag, oldtag=NOTAG)
        probe = _Request(msg, msg.encode(), True, trio.Event())  # the watchdog awaits it
        self._track(probe)
        self._send(probe)
        return probe

    def _dispatch(self, reply: Message) -> None:
        req = self._pending.get(reply.tag)
        if req is None or req.state is not _State.SENT:
            raise ProtocolError(f"reply {reply} has a tag no request is waiting on")
        if not isinstance(reply, m.Rlerror) and reply.id != req.msg.id + 1:
            raise ProtocolError(f"reply {reply} does not answer {req.msg}")
        self._complete(req, reply)

    # ---- bookkeeping of tags and fids ----

    def _complete(self, req: _Request, reply: Message) -> None:
        """Record the reply of a sent request, as if it had not been flushed."""
        req.state = _State.DONE
        req.reply = reply
        created = _created_fid(req.msg)
        if created is not None:
            if not _creates(req.msg, reply):
                self._fids.give(created)
            elif req.abandoned:
                self.discard_fid(created)
        freed = _freed_fid(req.msg)
        if freed is not None:
            self._fids.give(freed)
        target = req.flushed
        if target is not None:
            if reply.kind is m.Rflush:
                if target.state is _State.SENT:  # flushed before it was answered: it never happened
                    target.state = _State.DONE
                    created = _created_fid(target.msg)
                    if created is not None:
                        self._fids.give(created)
                self._release(target)
            else:  # the flush failed: the request's tag is freed by its own reply
                target.flush = None
                if target.state is _State.DONE:
                    self._release(target)
        if req.flush is None:
            self._release(req)
        self._wake(req)

    @staticmethod
    def _wake(req: _Request) -> None:
        """Tell whoever awaits `req` that it is over."""
        if req.task is not None:
            trio.lowlevel.reschedule(req.task)
            req.task = None
        if req.waiter is not None:
            req.waiter.set()

    def _release(self, req: _Request) -> None:
        """Free the tag of a request that is over."""
        del self._pending[req.msg.tag]
        self._waits -= req.msg.traits.waits
        self._tags.give(req.msg.tag)
        self._tag_waiters.unpark()
        if req.abandoned:
            self._orphans -= 1
            if not self._orphans:
                self._settled.unpark_all()

    def _abandon(self, req: _Request) -> None:
        """The task awaiting `req` was cancelled: drop, flush or finish it in the background."""
        if req.state is _State.DONE:  # answered (or failed) just before the cancellation
            created = _created_fid(req.msg)
            if req.reply is not None and created is not None and _creates(req.msg, req.reply):
                self.discard_fid(created)
            return
        req.abandoned = True
        self._orphans += 1
        if _freed_fid(req.msg) is not None:
            return  # Tclunk and Tremove always complete, so that the fid is released
        if req.state is _State.QUEUED:
            req.state = _State.DROPPED
            created = _created_fid(req.msg)
            if created is not None:
                self._fids.give(created)
            self._release(req)
            return
        tag = self._tags.take()
        if tag is None:
            return  # no tag for a Tflush: the reply is simply awaited in the background
        # queued: this runs while trio delivers a cancellation, no place to fail the connection
        req.flush = self._send_background(m.Tflush(tag, oldtag=req.msg.tag), direct=False)
        req.flush.flushed = req

    def _send_background(self, msg: Message, direct: bool = True) -> _Request:
        """Send a request nobody awaits (Tflush, Tclunk); its reply is handled on arrival."""
        req = _Request(msg, msg.encode(), False)
        self._orphans += 1
        self._track(req)
        self._send(req, direct)
        return req

    def _send(self, req: _Request, direct: bool = True) -> None:
        """Send `req` now if nothing else is being sent (what the socket does not take at
        once is left to the sender task), else (or unless `direct`) queue it for the sender."""
        if self._backlog or self._direct is None or not direct:
            self._backlog += 1
            self._outbox.send_nowait(req)
            return
        self._sent(req)
        try:
            n = self._direct(req.frame)
        except (trio.BrokenResourceError, OSError) as e:
            self._fail(f"cannot send: {e!r}")
            return
        if n < len(req.frame):  # the socket is full: the sender task waits to send the rest
            req.frame = req.frame[n:]
            self._backlog += 1
            self._outbox.send_nowait(req)
        else:
            req.frame = b""

    def _sent(self, req: _Request) -> None:
        """`req` goes on the wire now."""
        req.state = _State.SENT
        if log.isEnabledFor(logging.DEBUG):
            log.debug("-> %s", req.msg)
        if self.on_send is not None:
            self.on_send(req.msg)

    def _track(self, req: _Request) -> None:
        """Hold the tag of a request about to be sent; the first one starts the watchdog's clock."""
        waits = req.msg.traits.waits
        if not waits and len(self._pending) == self._waits:
            self._heard = trio.current_time()
            self._busy.unpark_all()
        self._pending[req.msg.tag] = req
        self._waits += waits

    def alloc_fid(self) -> int:
        """A fid number for a new Tattach, Twalk or Txattrwalk (freed by its failure or clunk)."""
        if self.closed:
            raise self._connection_error()
        fid = self._fids.take()
        if fid is None:
            raise OSError(errno.EMFILE, "no fid numbers left")
        return fid

    def discard_fid(self, fid: int) -> None:
        """Clunk `fid` in the background (its number is reused once the server answers)."""
        if self.closed:
            return
        tag = self._tags.take()
        if tag is None:  # every tag in flight: leak the fid rather than block
            log.warning("no tag left to clunk fid %d", fid)
            return
        self._send_background(m.Tclunk(tag, fid=fid))

    @property
    def fids_in_use(self) -> int:
        """How many fid numbers are taken (live fids and those still being released)."""
        return self._fids.in_use()

    @property
    def tags_in_use(self) -> int:
        """How many tags are taken (requests in flight, flushes not yet answered)."""
        return len(self._pending)

    async def settle(self) -> None:
        """Wait until the requests the client sent on its own (flushes, clunks) are answered."""
        while self._orphans and not self.closed:
            await self._settled.park()

    # ---- requests ----

    async def request(self, msg: Request[R]) -> R:
        """Send T-message `msg` (its tag is the client's to set) and return its R-message;
        Rlerror raises OSError(ecode).

        Fids created by the request must come from `alloc_fid`: a failed request
        frees them. Raises ConnectionError if the connection is closed or lost.
        """
        if self.closed:
            raise self._connection_error()
        tag = self._tags.take()
        while tag is None:
            await self._tag_waiters.park()
            if self.closed:
                raise self._connection_error()
            tag = self._tags.take()
        msg.tag = tag
        try:
            if _freed_fid(msg) is None:  # a clunk goes out even in a cancelled scope
                await trio.lowlevel.checkpoint_if_cancelled()
            frame = msg.encode()
        except BaseException:
            self._tags.give(tag)
            self._tag_waiters.unpark()
            created = _created_fid(msg)
            if created is not None:
                self._fids.give(created)
            raise
        req = _Request(msg, frame, True)
        self._track(req)
        self._send(req)
        if req.state is not _State.DONE:
            req.task = trio.lowlevel.current_task()

            def abort(_: Any) -> trio.lowlevel.Abort:
                req.task = None
                self._abandon(req)
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        reply = req.reply
        if reply is None:
            raise self._connection_error()
        return _answer(reply, type(msg))

    async def attach(self, aname: str, uname: str = "", n_uname: int = 0) -> Fid:
        """The root fid of export `aname` (mount options after `;`) for user `n_uname`."""
        fid = self.alloc_fid()
        reply = await self.request(
            m.Tattach(fid=fid, afid=NOFID, uname=uname, aname=aname, n_uname=n_uname)
        )
        return Fid(self, fid, reply.qid)

    async def exports(self) -> list[ExportInfo]:
        """The exports the server offers (Texports); NoListing where it has no listing."""
        if not self.extended:
            raise NoListing("the server offers no listing of exports (it is not ninep-server)")
        try:
            reply = await self.request(m.Texports())
        except OSError as e:  # an older ninep-server cuts the connection at an unknown type
            if e.errno != errno.EOPNOTSUPP and not isinstance(e, ConnectionError):
                raise
            raise NoListing(
                f"the server offers no listing of exports (an older ninep-server: {e.strerror})"
            ) from None
        return [ExportInfo.parse(text) for text in reply.exports]


async def _version(
    stream: trio.abc.Stream, reader: FrameReader, msize: int, version: str
) -> m.Rversion | m.Rlerror:
    """One Tversion exchange: the server's answer."""
    request = m.Tversion(NOTAG, msize=msize, version=version)
    log.debug("-> %s", request)
    await stream.send_all(request.encode())
    frame = await reader.read()
    if frame is None:
        raise ConnectionError(errno.ECONNRESET, "the server closed the connection at Tversion")
    decoded = m.decode(frame)
    log.debug("<- %s", decoded)
    if not isinstance(decoded, m.Rversion | m.Rlerror) or decoded.tag != NOTAG:
        raise ProtocolError(f"expected Rversion, got {decoded}")
    return decoded


async def _negotiate(
    stream: trio.abc.Stream, reader: FrameReader, msize: int, wanted: int
) -> tuple[int, int]:
    """Tversion; return the msize both sides accept and the extension sets agreed to.

    Each set's version (EXTENSION_SETS) is asked for in turn, up to the `wanted` sets,
    while the server agrees. A server that answers 9P2000.L to the first (ours, before
    the extensions) is plain at once; one that refuses it (diod: Rlerror EIO; QEMU:
    "unknown") is asked for plain 9P2000.L. A server that agrees to a set but not to the
    next (ours, before that set: it answers 9P2000.L) is asked for the set it agreed to
    again, since each Tversion starts the connection afresh.
    """
    if msize < MIN_MSIZE:
        raise ValueError(f"msize {msize} is below the minimum of {MIN_MSIZE}")
    asks = [v for v, n in sorted(EXTENSION_SETS.items(), key=lambda vn: vn[1]) if 0 < n <= wanted]
    agreed = VERSION  # the last version the server agreed to as asked
    decoded: m.Rversion | m.Rlerror | None = None
    for version in asks:
        decoded = await _version(stream, reader, msize, version)
        if not (isinstance(decoded, m.Rversion) and decoded.version == version):
            break
        agreed = version
    if not (isinstance(decoded, m.Rversion) and decoded.version == agreed):
        # nothing asked yet, a refusal, or a set agreed to and the next one not
        log.debug("asking for %s after %s", agreed, decoded)
        decoded = await _version(stream, reader, msize, agreed)
    reply = _answer(decoded, m.Tversion)
    sets = EXTENSION_SETS.get(reply.version)
    if sets is None or sets > wanted:
        why = ": it does not speak 9P2000.L" if reply.version == UNKNOWN_VERSION else ""
        raise ConnectionError(
            errno.EPROTONOSUPPORT, f"server answered version {reply.version!r} to {VERSION!r}{why}"
        )
    if not MIN_MSIZE <= reply.msize <= msize:
        raise ProtocolError(f"server msize {reply.msize} is outside {MIN_MSIZE}..{msize}")
    reader.max_size = reply.msize
    return int(reply.msize), sets


@asynccontextmanager
async def connect(
    address: str | Address,
    *,
    msize: int = DEFAULT_MSIZE,
    timeout: float | None = None,
    version_timeout: float | None = None,
    extensions: bool | int = True,
) -> AsyncIterator[Client]:
    """Connect to a 9P2000.L server (`tcp:HOST:PORT`, `unix:PATH`, `fd:IN,OUT`).

    `timeout`, `version_timeout`, `extensions`: see `Client.from_stream` (neither
    timeout bounds connecting itself).
    """
    if isinstance(address, str):
        address = parse_address(address)
    stream = await connect_stream(address)
    async with Client.from_stream(
        stream,
        msize=msize,
        timeout=timeout,
        version_timeout=version_timeout,
        extensions=extensions,
    ) as client:
        yield client
