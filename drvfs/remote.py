"""The connection to the server, opened again on demand after it is lost.

A `Session` is one connection and its root fid. While the server is away every
request fails at once with ENOTCONN: the next request after a failure tries to
connect again (requests arriving during that attempt share its outcome), so a
restarted server is picked up by the first operation that needs it. A server
that stops answering without closing the connection is lost the same way after
`timeout` seconds (see `ninep.client.Client.from_stream`).
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field

import trio

from ninep.client import Client, Fid, connect
from ninep.messages import ProtocolError

log = logging.getLogger("drvfs.remote")

CONNECT_TIMEOUT = 10.0  # seconds for connecting, Tversion and Tattach


@dataclass(eq=False)
class Session:
    """One live connection: its client and the root fid of the attach."""

    client: Client
    root: Fid
    number: int  # 1 for the first connection, then counting reconnections
    done: trio.Event = field(default_factory=trio.Event)  # set: close the connection

    @property
    def alive(self) -> bool:
        return not self.client.closed and not self.done.is_set()

    def owns(self, fid: Fid) -> bool:
        """Whether `fid` was made on this connection."""
        return fid.client is self.client


class Remote:
    """Connects to `address`, attaches `aname` as user `uid`, reconnects when needed."""

    def __init__(
        self,
        nursery: trio.Nursery,
        address: str,
        aname: str,
        uid: int,
        msize: int,
        timeout: float | None = None,
    ) -> None:
        self.address = address
        self.aname = aname
        self.uid = uid
        self.msize = msize
        self.timeout = timeout or None  # None (or 0): wait for the server forever
        self._nursery = nursery
        self._session: Session | None = None
        self._attempt: trio.Event | None = None  # set when the current attempt is over
        self._error = ""  # why the last attempt failed
        self._count = 0

    @property
    def connections(self) -> int:
        """How many connections were made so far (the first, then reconnections)."""
        return self._count

    async def session(self) -> Session:
        """The live session, connecting first if there is none (ConnectionError: ENOTCONN)."""
        s = self._session
        if s is not None and s.alive:
            return s
        if self._attempt is not None:  # someone is connecting: share the outcome
            await self._attempt.wait()
            s = self._session
            if s is not None and s.alive:
                return s
            raise ConnectionError(errno.ENOTCONN, self._error)
        return await self._connect()

    async def _connect(self) -> Session:
        if self._session is not None:
            self._session.done.set()
            self._session = None
        self._attempt = attempt = trio.Event()
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                s: Session = await self._nursery.start(self._hold, self._count + 1)
        except _AttachRefused as e:
            self._error = f"the 9P server at {self.address} refused {self.aname!r}: {e.strerror}"
            log.warning("%s", self._error)
            raise ConnectionError(errno.ENOTCONN, self._error) from None
        except (OSError, ProtocolError, trio.TooSlowError) as e:
            self._error = f"cannot reach the 9P server at {self.address}: {_describe(e)}"
            log.warning("%s", self._error)
            raise ConnectionError(errno.ENOTCONN, self._error) from None
        finally:
            self._attempt = None
            attempt.set()
        self._count = s.number
        self._session = s
        if s.number > 1:
            log.warning("reconnected to %s", self.address)
        return s

    async def _hold(self, number: int, *, task_status: trio.TaskStatus[Session]) -> None:
        """Open a connection, hand its session over, and keep it until it is done."""
        started = False
        try:
            async with connect(self.address, msize=self.msize, timeout=self.timeout) as client:
                try:
                    root = await client.attach(self.aname, n_uname=self.uid)
                except OSError as e:
                    if client.closed:
                        raise
                    raise _AttachRefused(e.errno, e.strerror) from None
                s = Session(client, root, number)
                task_status.started(s)
                started = True
                await s.done.wait()
        except Exception:
            if not started:
                raise
            log.exception("connection %d ended with an error", number)

    def close(self) -> None:
        """Close the current connection (if any)."""
        if self._session is not None:
            self._session.done.set()


class _AttachRefused(OSError):
    """The server answered Tattach with an error (an unknown export or option)."""


def _describe(e: BaseException) -> str:
    if isinstance(e, trio.TooSlowError):
        return "timed out"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__
