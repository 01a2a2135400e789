"""The trio 9P2000.L server: listens on addresses and serves each connection in its own task."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from . import stats
from .admission import Admission, Peer
from .backend import Export
from .constants import MIN_MSIZE, SERVER_MSIZE
from .limits import Limits
from .session import Session
from .transport import Address, fd_stream, open_listeners

log = logging.getLogger("ninep.server")


@dataclass
class Listening:
    """Bound listeners (tcp, unix) and what they are bound to; `close` undoes it all."""

    listeners: list[trio.SocketListener] = field(default_factory=list)
    bound: list[Address] = field(default_factory=list)
    unix_paths: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, addresses: Sequence[Address], socket_group: int | None = None) -> Listening:
        """Bind every address, or none: if one fails, those bound before it are closed."""
        done = cls()
        try:
            for address in addresses:
                if address.scheme == "fd":
                    raise ValueError("serve one fd connection with serve_connection(fd_stream())")
                new = await open_listeners(address, socket_group)
                done.listeners += new
                if address.scheme == "unix":
                    done.unix_paths.append(address.path)
                    done.bound.append(address)
                else:
                    for listener in new:
                        host, port = listener.socket.getsockname()[:2]
                        done.bound.append(Address("tcp", host=host, port=port))
        except BaseException:
            done.close()
            raise
        return done

    def hand_over(self, uid: int) -> None:
        """Give the unix socket files to the serving user `uid` (before becoming it)."""
        for path in self.unix_paths:
            os.chown(path, uid, -1)

    def close(self) -> None:
        """Close every listener and remove the unix socket files."""
        for listener in self.listeners:
            listener.socket.close()
        for path in self.unix_paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as e:  # a directory the serving user may not write
                log.warning("cannot remove the socket file %s: %s", path, e.strerror)


class Server:
    """Serves a set of named exports to any number of connections.

    `admission` says which peers are served (root and this process's uid by default).
    """

    def __init__(
        self,
        exports: Mapping[str, Export],
        max_msize: int = SERVER_MSIZE,
        admission: Admission | None = None,
        limits: Limits | None = None,
    ) -> None:
        if max_msize < MIN_MSIZE:
            raise ValueError(f"msize {max_msize} is below the minimum of {MIN_MSIZE}")
        self.exports = dict(exports)
        self.max_msize = max_msize
        self.admission = admission or Admission.serving(os.geteuid())
        self.limits = limits or Limits()
        self.connections = 0
        self._sessions: set[Session] = set()
        self._closed_requests: Counter[str] = Counter()

    def stats(self) -> dict[str, Any]:
        """The server's figures: in total, per open connection, and the exports' own
        (of those that have a `stats` method: `ninep.backend.Export`)."""
        connections = [session.figures() for session in self._sessions]
        exports = {name: figures() for name, export in self.exports.items()
                   if (figures := getattr(export, "stats", None)) is not None}  # fmt: skip
        return {
            "total": stats.total(connections, self._closed_requests),
            "connections": connections,
            "exports": exports,
        }

    async def serve_connection(self, stream: trio.abc.Stream, peer: str = "") -> None:
        """Serve one connection until it closes; a misbehaving client is cut off alone."""
        self.connections += 1
        peer = peer or f"connection {self.connections}"
        log.info("%s: connected", peer)
        session = Session(self.exports, stream, self.max_msize, peer, self.limits)
        self._sessions.add(session)
        try:
            await session.run()
        except Exception:
            log.exception("%s: session failed", peer)
        finally:
            self._sessions.discard(session)
            self._closed_requests.update(session.stats.requests)
            log.info("%s: closed", peer)

    async def serve_stats(
        self, path: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Answer each connection to unix socket `path` with the figures (JSON); until cancelled."""
        listening = await Listening.open([Address("unix", path=path)])
        try:
            task_status.started()

            async def answer(stream: trio.SocketStream) -> None:
                async with stream:
                    if self.admission.refusal(Peer.of(stream.socket)) is None:
                        await stream.send_all(json.dumps(self.stats()).encode())

            await trio.serve_listeners(answer, listening.listeners)
        finally:
            listening.close()

    async def _serve_socket(self, stream: trio.SocketStream) -> None:
        try:
            peer = Peer.of(stream.socket)
        except OSError as e:  # gone already
            log.info("connection lost before it was served: %s", e)
            await trio.aclose_forcefully(stream)
            return
        refusal = self.admission.refusal(peer)
        if refusal is not None:
            log.warning("%s: refused: %s", peer, refusal)
            await trio.aclose_forcefully(stream)
            return
        await self.serve_connection(stream, str(peer))

    async def serve(
        self,
        addresses: Sequence[Address],
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on every address (tcp, unix) until cancelled; `started` gets the bound ones.

        A unix socket file is removed when the server stops.
        """
        listening = await Listening.open(addresses)
        try:
            await self.serve_listening(listening, task_status=task_status)
        finally:
            listening.close()

    async def serve_listening(
        self,
        listening: Listening,
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve connections on listeners already bound, until cancelled."""
        for b in listening.bound:
            log.info("listening on %s", b)
        async with trio.open_nursery() as nursery:
            for listener in listening.listeners:
                nursery.start_soon(trio.serve_listeners, self._serve_socket, [listener])
            task_status.started(listening.bound)

    async def serve_fds(self, fds: tuple[int, int] = (0, 1)) -> None:
        """Serve the one connection carried by a pair of descriptors (stdin/stdout, inetd)."""
        await self.serve_connection(fd_stream(fds), f"fd:{fds[0]},{fds[1]}")
