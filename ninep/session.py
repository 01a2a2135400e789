"""One connection: version negotiation, concurrent requests and flush; handlers in handlers.py."""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import trio

from . import messages as m
from .backend import Export
from .constants import IOHDRSZ, MIN_MSIZE, UNKNOWN_VERSION, VERSION
from .fids import FidTable
from .handlers import HANDLERS
from .messages import Message, ProtocolError
from .transport import FrameReader

log = logging.getLogger("ninep.server")
trace = logging.getLogger("ninep.trace")


@dataclass(slots=True, eq=False)
class _InFlight:
    scope: trio.CancelScope
    done: trio.Event


class Session:
    """Serves one connection until it closes or misbehaves."""

    def __init__(
        self, exports: Mapping[str, Export], stream: trio.abc.Stream, max_msize: int, peer: str
    ) -> None:
        self.exports = exports
        self.stream = stream
        self.max_msize = max_msize
        self.msize = 0  # 0 until Tversion
        self.peer = peer
        self.fids = FidTable()
        self._inflight: dict[int, _InFlight] = {}
        self._send_lock = trio.Lock()

    async def run(self) -> None:
        """Read frames and serve each request in its own task."""
        reader = FrameReader(self.stream, self.max_msize)
        try:
            async with trio.open_nursery() as nursery:
                try:
                    while (frame := await reader.read()) is not None:
                        msg = m.decode(frame)
                        if trace.isEnabledFor(logging.DEBUG):
                            trace.debug(">>> %s", msg)
                        if msg.kind is m.Tversion:
                            await self._abort_all()
                            await self._send(self._version(msg))
                            reader.max_size = self.msize or self.max_msize
                        elif msg.tag in self._inflight:
                            raise ProtocolError(f"tag {msg.tag} is already in flight")
                        else:
                            entry = _InFlight(trio.CancelScope(), trio.Event())
                            self._inflight[msg.tag] = entry
                            nursery.start_soon(self._serve, msg, entry)
                except ProtocolError as e:
                    log.warning("%s: protocol error, closing the connection: %s", self.peer, e)
                except trio.BrokenResourceError as e:
                    log.info("%s: connection lost: %s", self.peer, e)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.fids.clear()
                await trio.aclose_forcefully(self.stream)

    async def _abort_all(self) -> None:
        """Tversion: abort every outstanding request and clunk every fid."""
        for entry in list(self._inflight.values()):
            entry.scope.cancel()
        for entry in list(self._inflight.values()):
            await entry.done.wait()
        await self.fids.clear()

    def _version(self, msg: Message) -> Message:
        version = msg.version
        if not (version == VERSION or version.startswith(VERSION + ".")):
            return m.Rversion(
                msg.tag, msize=min(msg.msize, self.max_msize), version=UNKNOWN_VERSION
            )
        if msg.msize < MIN_MSIZE:
            return m.Rversion(msg.tag, msize=msg.msize, version=UNKNOWN_VERSION)
        self.msize = min(msg.msize, self.max_msize)
        return m.Rversion(msg.tag, msize=self.msize, version=VERSION)

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

    def _release(self, tag: int, entry: _InFlight) -> None:
        """The request is over: its tag is free, and a Tflush waiting for it may answer."""
        if self._inflight.get(tag) is entry:
            del self._inflight[tag]
            entry.done.set()

    async def _handle(self, msg: Message) -> Message:
        handler = HANDLERS.get(msg.kind.id)
        try:
            if handler is None:
                raise OSError(errno.EOPNOTSUPP, f"{msg.kind.name} is not a request")
            if not self.msize:
                raise OSError(errno.EPROTO, "Tversion must come first")
            return await handler(self, msg)
        except OSError as e:
            code = e.errno or errno.EIO
            log.debug("%s: %s failed: %s", self.peer, msg.kind.name, e)
        except Exception:
            log.exception("%s: %s crashed", self.peer, msg)
            code = errno.EIO
        return m.Rlerror(msg.tag, ecode=code)

    async def _send(self, reply: Message, entry: _InFlight | None = None) -> None:
        """Send a reply; the tag is released first (the client may reuse it at once), but
        under the send lock, so that a Tflush of this request answers after this reply."""
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("<<< %s", reply)
        frame = reply.encode()
        async with self._send_lock:
            if entry is not None:
                self._release(reply.tag, entry)
            await self.stream.send_all(frame)

    def iosize(self, count: int) -> int:
        """A read or readdir count clamped to what fits in one reply."""
        return min(count, self.msize - IOHDRSZ)

    async def flush(self, oldtag: int) -> None:
        """Cancel request `oldtag` if still running, and wait until it is answered or gone."""
        entry = self._inflight.get(oldtag)
        if entry is not None:
            entry.scope.cancel()
            await entry.done.wait()
