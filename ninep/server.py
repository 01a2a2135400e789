"""The trio 9P2000.L server: listens on addresses and serves each connection in its own task."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence

import trio

from .backend import Export
from .constants import MIN_MSIZE, SERVER_MSIZE
from .session import Session
from .transport import Address, fd_stream, open_listeners

log = logging.getLogger("ninep.server")


class Server:
    """Serves a set of named exports to any number of connections."""

    def __init__(self, exports: Mapping[str, Export], max_msize: int = SERVER_MSIZE) -> None:
        if max_msize < MIN_MSIZE:
            raise ValueError(f"msize {max_msize} is below the minimum of {MIN_MSIZE}")
        self.exports = dict(exports)
        self.max_msize = max_msize
        self.connections = 0

    async def serve_connection(self, stream: trio.abc.Stream, peer: str = "") -> None:
        """Serve one connection until it closes; a misbehaving client is cut off alone."""
        self.connections += 1
        peer = peer or f"connection {self.connections}"
        log.info("%s: connected", peer)
        try:
            await Session(self.exports, stream, self.max_msize, peer).run()
        except Exception:
            log.exception("%s: session failed", peer)
        finally:
            log.info("%s: closed", peer)

    async def _serve_socket(self, stream: trio.SocketStream) -> None:
        try:
            name = stream.socket.getpeername()
            peer = f"{name[0]}:{name[1]}" if isinstance(name, tuple) else "unix peer"
        except OSError:
            peer = ""
        await self.serve_connection(stream, peer)

    async def serve(
        self,
        addresses: Sequence[Address],
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on every address (tcp, unix) until cancelled; `started` gets the bound ones.

        A unix socket file is removed when the server stops.
        """
        listeners: list[trio.SocketListener] = []
        bound: list[Address] = []
        unix_paths: list[str] = []
        try:
            for address in addresses:
                if address.scheme == "fd":
                    raise ValueError("serve one fd connection with serve_connection(fd_stream())")
                new = await open_listeners(address)
                listeners += new
                if address.scheme == "unix":
                    unix_paths.append(address.path)
                    bound.append(address)
                else:
                    for listener in new:
                        host, port = listener.socket.getsockname()[:2]
                        bound.append(Address("tcp", host=host, port=port))
            for b in bound:
                log.info("listening on %s", b)
            async with trio.open_nursery() as nursery:
                for listener in listeners:
                    nursery.start_soon(trio.serve_listeners, self._serve_socket, [listener])
                task_status.started(bound)
        finally:
            for listener in listeners:
                listener.socket.close()
            for path in unix_paths:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    async def serve_fds(self, fds: tuple[int, int] = (0, 1)) -> None:
        """Serve the one connection carried by a pair of descriptors (stdin/stdout, inetd)."""
        await self.serve_connection(fd_stream(fds), f"fd:{fds[0]},{fds[1]}")
