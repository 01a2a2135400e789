"""Addresses (`tcp:HOST:PORT`, `unix:PATH`, `fd:IN,OUT`), listening, connecting and framing."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import trio

from .constants import HEADER_SIZE
from .messages import ProtocolError, frame_size

DEFAULT_PORT = 5640
DEFAULT_ADDRESS = f"tcp:127.0.0.1:{DEFAULT_PORT}"


@dataclass(frozen=True)
class Address:
    """Where a server listens or a client connects."""

    scheme: str  # "tcp", "unix" or "fd"
    host: str = ""
    port: int = 0
    path: str = ""
    fds: tuple[int, int] = (0, 1)

    def __str__(self) -> str:
        if self.scheme == "tcp":
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"tcp:{host}:{self.port}"
        if self.scheme == "unix":
            return f"unix:{self.path}"
        return f"fd:{self.fds[0]},{self.fds[1]}"


def parse_address(text: str) -> Address:
    """Parse `tcp:HOST:PORT` (IPv6 as `tcp:[::1]:PORT`), `unix:PATH`, or `fd:IN,OUT`."""
    scheme, sep, rest = text.partition(":")
    if not sep or not rest:
        raise ValueError(f"address {text!r} is not tcp:HOST:PORT, unix:PATH or fd:IN,OUT")
    if scheme == "unix":
        return Address("unix", path=rest)
    if scheme == "fd":
        try:
            fd_in, fd_out = (int(x) for x in rest.split(","))
        except ValueError:
            raise ValueError(f"address {text!r}: expected fd:IN,OUT with two numbers") from None
        return Address("fd", fds=(fd_in, fd_out))
    if scheme == "tcp":
        host, sep, port = rest.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"address {text!r}: expected tcp:HOST:PORT")
        host = host.removeprefix("[").removesuffix("]")
        return Address("tcp", host=host or "127.0.0.1", port=int(port))
    raise ValueError(f"address {text!r}: unknown scheme {scheme!r} (tcp, unix or fd)")


class ListenError(Exception):
    """An address the server cannot listen on, and why (one line for the user)."""

    def __init__(self, address: Address, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")


def _reason(e: BaseException) -> str:
    """The reason an OSError gives, from inside an exception group too."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e)


async def open_listeners(
    address: Address, socket_group: int | None = None
) -> list[trio.SocketListener]:
    """Listening sockets for a tcp or unix address (a stale unix socket file is replaced).

    A unix socket file is made 0600, or 0660 and given group `socket_group`.
    ListenError says why an address cannot be listened on.
    """
    try:
        if address.scheme == "tcp":
            return await trio.open_tcp_listeners(address.port, host=address.host)
        if address.scheme == "unix":
            return [await _unix_listener(address.path, socket_group)]
    except ListenError:
        raise
    except (OSError, BaseExceptionGroup) as e:
        raise ListenError(address, _reason(e)) from e
    raise ValueError(f"cannot listen on {address}")


async def _unix_listener(path: str, socket_group: int | None) -> trio.SocketListener:
    sock, bound = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM), False
    try:
        if os.path.lexists(path):
            _remove_stale_socket(Address("unix", path=path))
        old_umask = os.umask(0o177 if socket_group is None else 0o117)
        try:
            await sock.bind(path)
            bound = True
        finally:
            os.umask(old_umask)
        if socket_group is not None:
            os.chown(path, -1, socket_group)
        sock.listen(128)
    except BaseException:
        sock.close()
        if bound:
            os.unlink(path)
        raise
    return trio.SocketListener(sock)


def _remove_stale_socket(address: Address) -> None:
    """Remove the socket file of a server that is gone; ListenError if it is not that."""
    if not stat.S_ISSOCK(os.lstat(address.path).st_mode):
        raise ListenError(address, "the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(address.path)
    except ConnectionRefusedError:
        os.unlink(address.path)
        return
    except OSError as e:
        raise ListenError(
            address, f"cannot tell whether a server listens there: {e.strerror}"
        ) from e
    finally:
        probe.close()
    raise ListenError(address, "another server is listening there")


async def connect(address: Address) -> trio.abc.Stream:
    """A stream to a server."""
    if address.scheme == "tcp":
        return await trio.open_tcp_stream(address.host, address.port)
    if address.scheme == "unix":
        return await trio.open_unix_socket(address.path)
    return fd_stream(address.fds)


def fd_stream(fds: tuple[int, int]) -> trio.abc.Stream:
    """One stream over an input and an output file descriptor (stdin/stdout: (0, 1))."""
    fd_in, fd_out = (os.dup(fd) for fd in fds)
    return trio.StapledStream(trio.lowlevel.FdStream(fd_out), trio.lowlevel.FdStream(fd_in))


class FrameReader:
    """Reads whole 9P frames from a stream, refusing any larger than `max_size`."""

    def __init__(self, stream: trio.abc.ReceiveStream, max_size: int) -> None:
        self.stream = stream
        self.max_size = max_size
        self._buf = bytearray()

    def has_frame(self) -> bool:
        """Whether a whole frame is already buffered (`read` returns it without waiting)."""
        return len(self._buf) >= 4 and len(self._buf) >= frame_size(self._buf)

    async def _fill(self, n: int) -> bool:
        while len(self._buf) < n:
            chunk = await self.stream.receive_some(max(n - len(self._buf), 65536))
            if not chunk:
                if self._buf:
                    raise ProtocolError(
                        f"connection closed inside a frame ({len(self._buf)} bytes)"
                    )
                return False
            self._buf += chunk
        return True

    async def read(self) -> bytes | None:
        """The next frame, or None at a clean end of stream."""
        if not await self._fill(4):
            return None
        size = frame_size(self._buf)
        if size < HEADER_SIZE:
            raise ProtocolError(f"frame size {size} is shorter than the 7-byte header")
        if size > self.max_size:
            raise ProtocolError(f"frame size {size} exceeds msize {self.max_size}")
        if not await self._fill(size):
            raise ProtocolError("connection closed inside a frame")
        frame = bytes(self._buf[:size])
        del self._buf[:size]
        return frame


_T = TypeVar("_T")
_IOV_MAX = 1024  # the most buffers one writev takes (Linux's UIO_MAXIOV)


class SocketIO(trio.abc.Stream):
    """A connected socket read and written straight through its descriptor.

    trio's SocketStream passes through trio's scheduler two or three times per
    send or receive (checkpoints before and after the call); this one calls the
    host directly while the socket is ready and waits on trio only when it is
    not, so a request and its reply cost one pass of the loop. It yields to
    other tasks at least every `FAIR` calls that did not wait.
    """

    FAIR = 8

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._fd = stream.socket.fileno()
        self._unyielded = 0

    async def _fair(self) -> None:
        self._unyielded += 1
        if self._unyielded >= self.FAIR:
            self._unyielded = 0
            await trio.lowlevel.checkpoint()

    async def _when_ready(
        self, call: Callable[[], _T], wait: Callable[[int], Awaitable[None]]
    ) -> _T:
        """`call()`, once the socket is ready for it: waits (and yields) only if it is not."""
        while True:
            try:
                return call()
            except BlockingIOError:
                self._unyielded = 0
                await wait(self._fd)
            except OSError as e:
                raise trio.BrokenResourceError(e) from e

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        n = max_bytes or 65536
        data = await self._when_ready(lambda: os.read(self._fd, n), trio.lowlevel.wait_readable)
        await self._fair()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.send_parts([data])

    async def send_parts(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        """Send the concatenation of `parts`, without joining them (os.writev)."""
        views = [memoryview(p) for p in parts if len(p)]
        while views:
            n = await self._when_ready(
                lambda: os.writev(self._fd, views[:_IOV_MAX]), trio.lowlevel.wait_writable
            )
            while views and n >= len(views[0]):
                n -= len(views.pop(0))
            if n:
                views[0] = views[0][n:]
        await self._fair()

    def send_now(self, data: bytes) -> int:
        """Send what the socket takes of `data` without waiting: the bytes sent (0 if full)."""
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0
        except OSError as e:
            raise trio.BrokenResourceError(e) from e

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self._fd)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


def fast_stream(stream: trio.abc.Stream) -> trio.abc.Stream:
    """`stream` itself, or for a socket a `SocketIO` over it."""
    return SocketIO(stream) if isinstance(stream, trio.SocketStream) else stream
