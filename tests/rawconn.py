"""A bare 9P connection for tests that need to send exact frames, bad ones included."""

from __future__ import annotations

from typing import Any

import trio

from ninep import messages as m
from ninep.constants import DEFAULT_MSIZE, NOFID
from ninep.transport import FrameReader, connect, parse_address


class RawConn:
    """Sends frames and reads replies one at a time, with no client logic in between."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.reader = FrameReader(stream, 16 * DEFAULT_MSIZE)

    @classmethod
    async def open(cls, address: str) -> RawConn:
        return cls(await connect(parse_address(address)))

    async def send(self, msg: m.Message | bytes) -> None:
        await self.stream.send_all(msg if isinstance(msg, bytes) else msg.encode())

    async def recv(self) -> Any:
        """The next reply, of whatever kind (tests read its fields directly)."""
        frame = await self.reader.read()
        assert frame is not None, "connection closed"
        return m.decode(frame)

    async def call(self, msg: m.Message) -> Any:
        await self.send(msg)
        reply = await self.recv()
        assert reply.tag == msg.tag
        return reply

    async def closed(self) -> bool:
        """True once the server has closed the connection."""
        try:
            return await self.reader.read() is None
        except (trio.BrokenResourceError, m.ProtocolError):
            return True

    async def handshake(self, aname: str = "C", msize: int = DEFAULT_MSIZE) -> Any:
        """Tversion and Tattach of fid 0; returns the Rattach."""
        reply = await self.call(m.Tversion(0xFFFF, msize=msize, version="9P2000.L"))
        assert reply.kind is m.Rversion and reply.version == "9P2000.L"
        return await self.call(
            m.Tattach(1, fid=0, afid=NOFID, uname="root", aname=aname, n_uname=0)
        )

    async def aclose(self) -> None:
        await self.stream.aclose()
