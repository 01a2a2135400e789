"""The trio 9P2000.L server: listens on addresses and serves each connection in its own task.

Admission comes first, in constant time (`admission.PeerFinder`): who the peer
is, whether it may connect, and whether the server has room for it (`ServerLimits`:
connections in total and per peer); a refusal closes the connection before its
Tversion and is logged at most once a minute per peer (`ratelog.RateLog`). The
accept loop keeps one descriptor in reserve: when the process has none left, a
new connection is still accepted and closed at once, with one log line, and the
server goes on when descriptors are free again.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import socket
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from socket import AF_UNIX

import trio

from . import stats
from .admission import Admission, Peer, PeerFinder
from .backend import Export
from .constants import MIN_MSIZE, SERVER_MSIZE
from .limits import Budgets, Limits, ServerLimits
from .ratelog import RateLog
from .session import Session
from .stats import Figures, ServerFigures
from .systemd import in_runtime_directory
from .transport import Address, fd_stream, open_listeners

log = logging.getLogger("ninep.server")

# accept(2) errors that mean "no descriptor (or memory) for one more connection now"
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# and those of a connection that went before it was accepted (as trio's SocketListener)
_GONE = frozenset({errno.EAGAIN, errno.ECONNABORTED, errno.EPROTO, errno.ECONNRESET,
                   errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EHOSTUNREACH,
                   errno.ETIMEDOUT, errno.ENOPROTOOPT, errno.EOPNOTSUPP})  # fmt: skip


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

    def adopt(self, sockets: Sequence[socket.socket]) -> None:
        """Serve listening sockets made by another (systemd's socket activation): never
        unlinked by `close`, their files being theirs."""
        for sock in sockets:
            self.listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
            name = sock.getsockname()
            if sock.family == AF_UNIX:
                self.bound.append(Address("unix", path=name if isinstance(name, str) else ""))
            else:
                self.bound.append(Address("tcp", host=name[0], port=name[1]))

    def split_off(self, path: str | None) -> Listening:
        """The listener of unix socket `path` (none if None), taken out of these: bound
        with them, served apart (`Server.serve_stats`)."""
        part = Listening()
        if path is None:
            return part
        for listener in list(self.listeners):
            name = listener.socket.getsockname() if listener.socket.family == AF_UNIX else None
            if name == path:
                self.listeners.remove(listener)
                part.listeners.append(listener)
        self.bound = [b for b in self.bound if not (b.scheme == "unix" and b.path == path)]
        self.unix_paths.remove(path)
        part.unix_paths.append(path)
        part.bound.append(Address("unix", path=path))
        return part

    def hand_over(self, uid: int) -> None:
        """Give the unix socket files to the serving user `uid` (before becoming it)."""
        for path in self.unix_paths:
            os.chown(path, uid, -1)

    def close(self) -> None:
        """Close every listener and remove the unix socket files (each one it cannot, in a
        directory the serving user may not write, is logged)."""
        for listener in self.listeners:
            listener.socket.close()
        for path in self.unix_paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                if in_runtime_directory(path):  # systemd removes it, or the next start does
                    continue
                log.warning("cannot remove the socket file %s: %s (serve from a directory "
                            "the serving user owns, as systemd's RuntimeDirectory)", path,
                            e.strerror)  # fmt: skip


class Server:
    """Serves a set of named exports to any number of connections.

    `admission` says which peers are served (root and this process's uid by default);
    `limits` bound each connection, `server_limits` all of them together.
    """

    def __init__(
        self,
        exports: Mapping[str, Export],
        max_msize: int = SERVER_MSIZE,
        admission: Admission | None = None,
        limits: Limits | None = None,
        server_limits: ServerLimits | None = None,
    ) -> None:
        if max_msize < MIN_MSIZE:
            raise ValueError(f"msize {max_msize} is below the minimum of {MIN_MSIZE}")
        self.exports = dict(exports)
        self.max_msize = max_msize
        self.admission = admission or Admission.serving(os.geteuid())
        self.limits = limits or Limits()
        self.server_limits = server_limits or ServerLimits()
        self.budgets = Budgets.of(self.server_limits)
        self.finder = PeerFinder()
        self.refusals = RateLog(log)
        self.connections = 0
        self._sessions: set[Session] = set()
        self._closed_requests: Counter[str] = Counter()
        self._per_peer: Counter[str] = Counter()  # connections served now, by `_peer_key`
        self._refused: Counter[str] = Counter()  # connections refused, by reason

    def stats(self) -> Figures:
        """The server's figures: in total, per open connection, and the exports' own
        (of those that have a `stats` method: `ninep.backend.Export`)."""
        connections = [session.figures() for session in self._sessions]
        exports = {name: figures() for name, export in self.exports.items()
                   if (figures := getattr(export, "stats", None)) is not None}  # fmt: skip
        return {
            "total": stats.total(connections, self._closed_requests),
            "connections": connections,
            "exports": exports,
            "server": self._server_figures(),
        }

    def _server_figures(self) -> ServerFigures:
        """The limits of all connections together, what is used of them, and admission."""
        b, limits = self.budgets, self.server_limits
        return {
            "connections": {"used": len(self._sessions), "limit": limits.connections,
                            "per_peer_limit": limits.connections_per_peer},
            "fids": {"used": b.fids.used, "limit": b.fids.limit},
            "open_files": {"used": b.open_files.used, "limit": b.open_files.limit,
                           "per_connection_limit": self.limits.open_files},
            "refused": dict(self._refused),
            "admission": self.finder.figures(),
        }  # fmt: skip

    async def serve_connection(
        self, stream: trio.abc.Stream, peer: str = "", bound: int | None = None
    ) -> None:
        """Serve one connection until it closes; a misbehaving client is cut off alone.
        `bound`: the uid the peer may attach as (`Admission.bound`), None if trusted."""
        self.connections += 1
        peer = peer or f"connection {self.connections}"
        log.info("%s: connected", peer)
        session = Session(
            self.exports, stream, self.max_msize, peer, self.limits, self.budgets, bound
        )
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
        self,
        stats: Listening,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Answer each connection to the unix socket(s) of `stats` with the figures (JSON),
        until cancelled."""

        async def answer(stream: trio.SocketStream) -> None:
            async with stream:
                if self.admission.refusal(Peer.of_unix(stream.socket)) is None:
                    await stream.send_all(json.dumps(self.stats()).encode())

        task_status.started()
        await trio.serve_listeners(answer, stats.listeners)

    async def _admit(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        """Admit a new connection (who, and whether there is room for it) in the accept
        loop, and serve it in a task of `nursery`; a refusal costs no task and no stream."""
        try:
            peer = await self.finder.peer(sock)
        except OSError as e:
            sock.close()
            if e.errno in _EXHAUSTED:  # no descriptor left to find who it is
                self._out_of_descriptors(e)
            else:  # gone already
                log.info("connection lost before it was served: %s", e)
            return
        key = _peer_key(peer)
        refusal = self.admission.refusal(peer)
        why = "admission"
        if refusal is None:
            refusal, why = self._no_room(key), "connections"
        if refusal is not None:
            self._refused[why] += 1
            self.refusals.warning(f"{why} {key}", f"{peer}: refused: {refusal}")
            sock.close()
            return
        self._per_peer[key] += 1  # counted now: the next accept sees it
        nursery.start_soon(self._serve_socket, trio.SocketStream(sock), peer, key)

    async def _serve_socket(self, stream: trio.SocketStream, peer: Peer, key: str) -> None:
        try:
            await self.serve_connection(stream, str(peer), self.admission.bound(peer))
        finally:
            self._per_peer[key] -= 1
            if not self._per_peer[key]:
                del self._per_peer[key]

    def _no_room(self, key: str) -> str | None:
        """Why a new connection of peer `key` would go past the server's limits, or None."""
        limits = self.server_limits
        if len(self._sessions) >= limits.connections:
            return f"the server serves {limits.connections} connections, its limit"
        if self._per_peer[key] >= limits.connections_per_peer:
            return f"{key} has {limits.connections_per_peer} connections, its limit"
        return None

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        """Accept connections on `listener`, admit each at once, and serve each admitted one
        in a task of `nursery`. When the process is out of descriptors, the spare one
        lets a new connection be closed at once rather than left waiting
        (`serve_listeners` would retry every 100 ms, logging a traceback each time)."""
        spare: int | None = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while True:
                try:
                    sock, _ = await listener.socket.accept()
                except OSError as e:
                    if e.errno in _GONE:
                        continue
                    if e.errno not in _EXHAUSTED:
                        raise
                    if spare is not None:
                        os.close(spare)
                        spare = None
                    await self._turn_away(listener, e)
                    spare = _reopen_spare()
                    continue
                await self._admit(sock, nursery)
        finally:
            if spare is not None:
                os.close(spare)

    def _out_of_descriptors(self, e: OSError) -> None:
        self._refused["descriptors"] += 1
        self.refusals.warning(
            "descriptors", f"out of descriptors ({e.strerror}): new connections are closed"
        )

    async def _turn_away(self, listener: trio.SocketListener, e: OSError) -> None:
        """Accept one waiting connection with the descriptor just freed and close it."""
        self._out_of_descriptors(e)
        try:
            with trio.move_on_after(0.1):
                sock, _ = await listener.socket.accept()
                sock.close()
        except OSError:
            await trio.sleep(0.1)  # none to spare yet: the next try after a pause

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
                nursery.start_soon(self._accept, listener, nursery)
            task_status.started(listening.bound)

    async def serve_fds(self, fds: tuple[int, int] = (0, 1)) -> None:
        """Serve the one connection carried by a pair of descriptors (stdin/stdout, inetd)."""
        await self.serve_connection(fd_stream(fds), f"fd:{fds[0]},{fds[1]}")


def _peer_key(peer: Peer) -> str:
    """What connections are counted and refusals logged by: a local peer's uid, or the
    network (/24, /64) of another host."""
    if peer.uid is not None or peer.address is None:
        return f"uid {peer.uid}"
    prefix = 24 if peer.address.version == 4 else 64
    return str(ipaddress.ip_network(f"{peer.address}/{prefix}", strict=False))


def _reopen_spare() -> int | None:
    """The spare descriptor again, if one is free (else at the next shortage)."""
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
