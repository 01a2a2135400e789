"""One connection: version negotiation, bounded concurrent requests, flush (handlers.py)."""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import trio

from . import messages as m
from .backend import Export
from .constants import EXTENSION_SETS, IOHDRSZ, MIN_MSIZE, UNKNOWN_VERSION, VERSION
from .fastcodec import data_parts
from .fids import FidTable
from .gate import admit
from .handlers import HANDLERS
from .limits import BIG, Budgets, Limits
from .messages import Message, ProtocolError
from .notify import Subscription
from .stats import ConnectionFigures, ConnectionStats
from .transport import FrameReader, SocketIO, fast_stream

log = logging.getLogger("ninep.server")
trace = logging.getLogger("ninep.trace")


@dataclass(slots=True, eq=False)
class _InFlight:
    scope: trio.CancelScope
    done: trio.Event
    big: bool


#: At most this many quick replies wait to go out together (a flood of them is sent,
#: and other connections get their turn, as they come).
_REPLIES_HELD = 16


def _frame_parts(reply: Message) -> list[bytes]:
    """The frame of `reply` in parts to send one after the other: the bulk data a reply
    ends in (its `bulk` trait: Rread, Rreaddir, Rreaddirattr) is sent where it lies
    instead of being copied into the frame."""
    if reply.traits.bulk is not None:
        return data_parts(reply)
    return [reply.encode()]


def _is_big(msg: Message) -> bool:
    """Whether `msg` moves more than `BIG` bytes of data (its own, or its reply's: its
    `bulk` trait names the data, or the count asked for)."""
    field = msg.traits.bulk
    if field is None:
        return False
    bulk: bytes | int = getattr(msg, field)
    return (bulk if isinstance(bulk, int) else len(bulk)) > BIG


class Session:
    """Serves one connection until it closes or misbehaves.

    Requests are read and queued, and started while the connection is within
    its `Limits`; past them (a full queue) the connection is not read at all,
    so what it holds stays bounded whatever it sends. A Tflush skips the queue.
    """

    def __init__(
        self,
        exports: Mapping[str, Export],
        stream: trio.abc.Stream,
        max_msize: int,
        peer: str,
        limits: Limits | None = None,
        budgets: Budgets | None = None,
        bound: int | None = None,
    ) -> None:
        self.exports = exports
        self.bound = bound  # the uid a bounded peer attaches as (None: trusted, as it says)
        self.stream = fast_stream(stream)
        self.max_msize = max_msize
        self.msize = 0  # 0 until Tversion
        self.extensions = 0  # the sets of this project's extensions asked for in Tversion
        self.peer = peer
        self.limits = limits or Limits()
        self.fids = FidTable(self.limits.fids, self.limits.open_files, budgets)
        self.stats = ConnectionStats(peer)
        self._inflight: dict[int, _InFlight] = {}
        # a pending Tnotify waits without working: outside the bounds, at most one at a time
        self._parked: dict[int, _InFlight] = {}
        self.notify: Subscription | None = None  # this connection's changes (after a Tnotify)
        self._queue: dict[int, Message] = {}  # read and not started, oldest first
        self._big = 0  # big requests in flight
        self._room = trio.Event()  # set when the queue shrinks
        self._nursery: trio.Nursery | None = None
        self._send_lock = trio.Lock()
        self._replies: list[bytes] = []  # answers of quick requests, sent together

    def figures(self) -> ConnectionFigures:
        """This connection's statistics (`ninep.stats`)."""
        changes = len(self.notify) if self.notify is not None else 0
        return self.stats.figures(len(self.fids), self.fids.open, changes)

    async def run(self) -> None:
        """Read frames, queue them, and serve each request in its own task."""
        reader = FrameReader(self.stream, self.max_msize)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    while True:
                        if self._replies and (
                            not reader.has_frame() or len(self._replies) >= _REPLIES_HELD
                        ):
                            await self._send()  # before waiting, or before holding too many
                        if (frame := await reader.read()) is None:
                            break
                        msg = m.decode(frame)
                        if trace.isEnabledFor(logging.DEBUG):
                            trace.debug(">>> %s", msg)
                        if isinstance(msg, m.Tversion):
                            await self._abort_all()
                            await self._send(self._version(msg))
                            reader.max_size = self.msize or self.max_msize
                        elif (
                            msg.tag in self._inflight
                            or msg.tag in self._queue
                            or msg.tag in self._parked
                        ):
                            raise ProtocolError(f"tag {msg.tag} is already in flight")
                        else:
                            await self._accept(msg)
                except ProtocolError as e:
                    log.warning("%s: protocol error, closing the connection: %s", self.peer, e)
                except trio.BrokenResourceError as e:
                    log.info("%s: connection lost: %s", self.peer, e)
                nursery.cancel_scope.cancel()
        finally:
            self._unsubscribe()
            with trio.CancelScope(shield=True):
                await self.fids.clear()
                await trio.aclose_forcefully(self.stream)

    async def _accept(self, msg: Message) -> None:
        """Start or queue request `msg`; wait while the queue is full (back-pressure)."""
        self.stats.requests[type(msg).__name__] += 1
        if msg.traits.waits:
            if self._parked:  # decided here, in arrival order, not by which task runs first
                self._replies.append(m.Rlerror(msg.tag, ecode=errno.EBUSY).encode())
                return
            assert self._nursery is not None
            entry = _InFlight(trio.CancelScope(), trio.Event(), False)
            self._parked[msg.tag] = entry
            self._nursery.start_soon(self._serve, msg, entry)
            return
        reserve = self.limits.in_flight + self.limits.read_ahead
        if isinstance(msg, m.Tflush) and len(self._inflight) < reserve:
            self._start(msg)  # a flush never waits behind what it may have to cancel
            return
        if msg.traits.quick and not self._queue and len(self._inflight) < self.limits.in_flight:
            await self._serve_inline(msg)
            return
        self._queue[msg.tag] = msg
        self._start_queued()
        while len(self._queue) >= self.limits.read_ahead:
            self._room = trio.Event()
            await self._room.wait()

    def _start_queued(self) -> None:
        """Start queued requests, oldest first, while the limits allow."""
        while self._queue:
            msg = next(iter(self._queue.values()))
            big = _is_big(msg)
            if len(self._inflight) >= self.limits.in_flight or (
                big and self._big >= self.limits.big_in_flight
            ):
                break
            del self._queue[msg.tag]
            self._start(msg, big)
        self.stats.queued = len(self._queue)
        self._room.set()

    def _enter(self, msg: Message, big: bool = False) -> _InFlight:
        """Count request `msg` in flight from now."""
        entry = _InFlight(trio.CancelScope(), trio.Event(), big)
        self._inflight[msg.tag] = entry
        self._big += big
        self.stats.started(len(self._inflight))
        return entry

    def _start(self, msg: Message, big: bool = False) -> None:
        """Serve request `msg` in a task of its own."""
        assert self._nursery is not None
        self._nursery.start_soon(self._serve, msg, self._enter(msg, big))

    async def _abort_all(self) -> None:
        """Tversion: abort every outstanding request and clunk every fid."""
        self._queue.clear()
        entries = [*self._inflight.values(), *self._parked.values()]
        for entry in entries:
            entry.scope.cancel()
        for entry in entries:
            await entry.done.wait()
        self._unsubscribe()
        await self.fids.clear()

    def _unsubscribe(self) -> None:
        if self.notify is not None:
            self.notify.close()
            self.notify = None

    def _version(self, msg: m.Tversion) -> Message:
        """Rversion: a version of this project's extensions (EXTENSION_SETS) if asked for
        exactly, else 9P2000.L (any other suffix dropped)."""
        version = msg.version
        self.extensions = 0
        if not (version == VERSION or version.startswith(VERSION + ".")):
            return m.Rversion(
                msg.tag, msize=min(msg.msize, self.max_msize), version=UNKNOWN_VERSION
            )
        if msg.msize < MIN_MSIZE:
            return m.Rversion(msg.tag, msize=msg.msize, version=UNKNOWN_VERSION)
        self.msize = min(msg.msize, self.max_msize)
        self.extensions = EXTENSION_SETS.get(version, 0)
        answer = version if self.extensions else VERSION
        return m.Rversion(msg.tag, msize=self.msize, version=answer)

    async def _serve_inline(self, msg: Message) -> None:
        """Serve a quick request in the connection's task; its reply waits in `_replies`.

        Nothing is read meanwhile, so no Tflush can name it and nothing needs a
        scope or an event; the reply goes out with the next `_send`, before any
        later reply, and at the latest before the connection waits for input.
        """
        self.stats.started(len(self._inflight) + 1)
        reply = await self._handle(msg)
        self.stats.in_flight = len(self._inflight)
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("<<< %s", reply)
        self._replies.append(reply.encode())

    async def _serve(self, msg: Message, entry: _InFlight) -> None:
        reply: Message | None = None
        try:
            with entry.scope:
                reply = await self._handle(msg)
            if reply is not None:
                await self._send(reply, entry)
        except trio.BrokenResourceError:
            pass  # the reader notices and closes the connection
        finally:
            self._release(msg.tag, entry)
            self._big -= entry.big  # only now: a big reply is held until it is sent
            self._start_queued()

    def _release(self, tag: int, entry: _InFlight) -> None:
        """The request is over: its tag is free, and a Tflush waiting for it may answer."""
        if self._inflight.get(tag) is entry:
            del self._inflight[tag]
            self.stats.in_flight = len(self._inflight)
            entry.done.set()
        elif self._parked.get(tag) is entry:
            del self._parked[tag]
            entry.done.set()

    async def _handle(self, msg: Message) -> Message:
        handler = HANDLERS.get(msg.id)
        try:
            if handler is None:
                raise OSError(errno.EOPNOTSUPP, f"{type(msg).__name__} is not a request")
            if not self.msize:
                raise OSError(errno.EPROTO, "Tversion must come first")
            if msg.traits.gated:
                await admit(msg, self.fids)
            return await handler(self, msg)
        except OSError as e:
            code = e.errno or errno.EIO
            log.debug("%s: %s failed: %s", self.peer, type(msg).__name__, e)
        except Exception:
            log.exception("%s: %s crashed", self.peer, msg)
            code = errno.EIO
        return m.Rlerror(msg.tag, ecode=code)

    async def _send(self, reply: Message | None = None, entry: _InFlight | None = None) -> None:
        """Send the waiting replies of quick requests, then `reply`, in one system call.

        The tag is released first (the client may reuse it at once), but under the
        send lock, so that a Tflush of this request answers after this reply.
        """
        parts: list[bytes] = []
        if reply is not None:
            if trace.isEnabledFor(logging.DEBUG):
                trace.debug("<<< %s", reply)
            parts = _frame_parts(reply)
        if self._send_lock.locked():
            await self._send_lock.acquire()
        else:
            self._send_lock.acquire_nowait()  # without the two passes of trio's loop
        try:
            if entry is not None and reply is not None:
                self._release(reply.tag, entry)
            waiting, self._replies = self._replies, []
            if isinstance(self.stream, SocketIO):
                await self.stream.send_parts(waiting + parts)
            else:
                await self.stream.send_all(b"".join(waiting + parts))
        finally:
            self._send_lock.release()

    def iosize(self, count: int) -> int:
        """A read or readdir count clamped to what fits in one reply."""
        return min(count, self.msize - IOHDRSZ)

    async def flush(self, oldtag: int) -> None:
        """Cancel request `oldtag` if still running, and wait until it is answered or gone."""
        if self._queue.pop(oldtag, None) is not None:
            self._start_queued()  # never started: it is gone, unanswered
            return
        entry = self._inflight.get(oldtag) or self._parked.get(oldtag)
        if entry is not None:
            entry.scope.cancel()
            await entry.done.wait()
