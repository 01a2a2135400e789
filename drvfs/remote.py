"""The connection to the server, opened again on demand after it is lost.

An `Attachment` is one connection and its root fid. An operation that finds no
live attachment starts a connection attempt, or shares the one under way, and
waits for it while the server may still be silent: up to `timeout`
(CONNECT_TIMEOUT without one) of silence, counted from the attempt's start or,
after a connection lost to the server's silence (`ninep.client`), from when
the server last answered; at least GRACE. So a stopped server costs an
operation about `timeout` however many requests the kernel chains after the
loss. A refused or reset attempt ends at once (the next operation tries
again); an unanswered one carries on in the background while operations fail
with ENOTCONN, and its attachment serves them as soon as the server answers.
"""

from __future__ import annotations

import errno
import logging
import math
from dataclasses import dataclass, field

import trio

from ninep.client import Client, Fid, connect
from ninep.messages import ProtocolError

log = logging.getLogger("drvfs.remote")

CONNECT_TIMEOUT = 10.0  # seconds an operation waits for an attempt, without a timeout
GRACE = 1.0  # seconds an operation waits at least (a resumed server answering the attempt)
_REFUSED_MAX = 16  # xattr names remembered as refused (the kernel asks a few: capabilities)


@dataclass(eq=False)
class Attachment:
    """One live connection: its client and the root fid of the attach."""

    client: Client
    root: Fid
    number: int  # 1 for the first connection, then counting reconnections
    done: trio.Event = field(default_factory=trio.Event)  # set: close the connection
    # names outside user. that the server refused (EOPNOTSUPP) on an extended connection,
    # where that holds for every file (docs/protocol-extensions.md); a few at most
    refused_xattrs: set[str] = field(default_factory=set)

    def xattr_refused(self, name: str) -> bool:
        """Whether reading xattr `name` is known to be refused for every file."""
        return name in self.refused_xattrs

    def refused(self, name: str, e: OSError) -> None:
        """Remember a refusal of `name` (`e`) that holds for every file."""
        if (
            e.errno == errno.EOPNOTSUPP
            and self.client.extended
            and not name.startswith("user.")
            and len(self.refused_xattrs) < _REFUSED_MAX
        ):
            self.refused_xattrs.add(name)

    @property
    def alive(self) -> bool:
        return not self.client.closed and not self.done.is_set()

    def owns(self, fid: Fid) -> bool:
        """Whether `fid` was made on this connection."""
        return fid.client is self.client


@dataclass(eq=False)
class _Attempt:
    """One connection attempt, in the background; operations wait for it until `deadline`."""

    deadline: float  # when the server has been silent too long for anyone to wait on
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    over: trio.Event = field(default_factory=trio.Event)  # connected or failed
    error: str = ""  # why it failed
    options_refused: bool = False  # the server refused the attach options (EINVAL)


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
        self._patience = self.timeout or CONNECT_TIMEOUT
        self._grace = min(GRACE, self._patience / 4)
        self._nursery = nursery
        self._attachment: Attachment | None = None
        self._attempt: _Attempt | None = None  # the attempt under way
        self._count = 0
        self._new = trio.Event()  # set (and replaced) at each new attachment

    @property
    def connections(self) -> int:
        """How many connections were made so far (the first, then reconnections)."""
        return self._count

    async def attached(self, after: int) -> Attachment:
        """The live attachment once there is one numbered above `after` (made by an
        operation's request: this starts no connection attempt)."""
        while True:
            a = self._attachment
            if a is not None and a.alive and a.number > after:
                return a
            await self._new.wait()

    async def attachment(self) -> Attachment:
        """The live attachment, connecting first if there is none (ConnectionError: ENOTCONN,
        or EINVAL if the server refused the attach options)."""
        a = self._attachment
        if a is not None and a.alive:
            return a
        attempt = self._attempt or self._start()
        with trio.move_on_at(max(attempt.deadline, trio.current_time() + self._grace)):
            await attempt.over.wait()
        a = self._attachment
        if a is not None and a.alive:
            return a
        error = attempt.error or (
            f"the 9P server at {self.address} has answered nothing for {self._patience:g} s"
        )
        raise ConnectionError(errno.EINVAL if attempt.options_refused else errno.ENOTCONN, error)

    def _start(self) -> _Attempt:
        """Start a connection attempt; the server's silence counts from now, or from before
        the loss of a connection it stopped answering."""
        since = trio.current_time()
        if self._attachment is not None:
            self._attachment.done.set()
            silent = self._attachment.client.silent_since
            since = since if silent is None else silent
            self._attachment = None
        self._attempt = attempt = _Attempt(since + self._patience)
        self._nursery.start_soon(self._hold, attempt)
        return attempt

    async def _hold(self, attempt: _Attempt) -> None:
        """Connect, attach, publish the attachment and keep it until it is done."""
        try:
            with attempt.scope:
                await self._connect(attempt)
        finally:
            if self._attempt is attempt:
                self._attempt = None
            attempt.over.set()

    async def _connect(self, attempt: _Attempt) -> None:
        where = self.address
        try:
            async with connect(
                self.address, msize=self.msize, timeout=self.timeout, version_timeout=math.inf
            ) as client:
                a = Attachment(client, await self._attach(client), self._count + 1)
                self._connected(a, attempt)
                await a.done.wait()
        except _AttachRefused as e:
            export, _, options = self.aname.partition(";")
            attempt.options_refused = e.errno == errno.EINVAL and bool(options)
            what = f"the options {options!r} of export {export!r}"
            refused = what if attempt.options_refused else repr(self.aname)
            self._failed(attempt, f"the 9P server at {where} refused {refused}: {e.strerror}")
        except (OSError, ProtocolError) as e:
            self._failed(attempt, f"cannot reach the 9P server at {where}: {_describe(e)}")
        except Exception as e:
            log.exception("connection %d to %s failed", self._count + 1, where)
            self._failed(attempt, f"connecting to {where}: {e!r}")

    async def _attach(self, client: Client) -> Fid:
        try:
            return await client.attach(self.aname, n_uname=self.uid)
        except OSError as e:
            if client.closed:
                raise
            raise _AttachRefused(e.errno, e.strerror) from None

    def _connected(self, a: Attachment, attempt: _Attempt) -> None:
        self._count = a.number
        self._attachment = a
        self._attempt = None
        attempt.over.set()
        self._new.set()
        self._new = trio.Event()
        if a.number > 1:
            log.warning("reconnected to %s", self.address)

    def _failed(self, attempt: _Attempt, error: str) -> None:
        if attempt.over.is_set():  # an attachment that was up: its loss is logged by the client
            return
        attempt.error = error
        log.warning("%s", error)

    def close(self) -> None:
        """Close the current connection (if any) and give up an attempt under way."""
        if self._attachment is not None:
            self._attachment.done.set()
        if self._attempt is not None:
            self._attempt.scope.cancel()


class _AttachRefused(OSError):
    """The server answered Tattach with an error (an unknown export or option)."""


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__
