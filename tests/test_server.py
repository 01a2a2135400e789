"""The server at the protocol level: negotiation, bad input, concurrency, flush.

These tests serve the in-memory backend (tests/memfs.py), not volfs, so that
they fail only for the protocol; after each, every File and Handle the server
was given must have been closed exactly once.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ninep import messages as m
from ninep.backend import Export, File, Handle, SetAttr, User
from ninep.constants import NOFID, SERVER_MSIZE, GetattrMask, OpenFlag
from ninep.limits import Limits
from ninep.server import Server

from .conftest import serving
from .memfs import MemExport
from .rawconn import RawConn

HANG = 60  # seconds for what takes milliseconds: a hang guard, never a measure


@pytest.fixture
def mem_export() -> Iterator[MemExport]:
    """The in-memory export the server serves; checked at the end: each object closed once."""
    export = MemExport()
    yield export
    export.ledger.check()


@pytest.fixture(params=["tcp", "unix"])
async def server_address(
    request: pytest.FixtureRequest, mem_export: MemExport, tmp_path: Path
) -> AsyncIterator[str]:
    """The address of a running server exporting `mem_export` as "C"."""
    async with serving(cast(Export, mem_export), request.param, tmp_path) as address:
        yield address


async def test_version_clamps_msize(server_address: str) -> None:
    conn = await RawConn.open(server_address)
    reply = await conn.call(m.Tversion(0xFFFF, msize=16 << 20, version="9P2000.L"))
    assert (reply.kind, reply.msize, reply.version) == (m.Rversion, SERVER_MSIZE, "9P2000.L")
    reply = await conn.call(m.Tversion(0xFFFF, msize=65536, version="9P2000.L"))
    assert reply.msize == 65536


@pytest.mark.parametrize("version", ["9P2000", "9P2000.u", "9P3000", ""])
async def test_other_versions_are_unknown(server_address: str, version: str) -> None:
    conn = await RawConn.open(server_address)
    reply = await conn.call(m.Tversion(0xFFFF, msize=65536, version=version))
    assert reply.version == "unknown"


async def test_requests_before_version_are_refused(server_address: str) -> None:
    conn = await RawConn.open(server_address)
    reply = await conn.call(m.Tattach(1, fid=0, afid=NOFID, uname="", aname="C", n_uname=0))
    assert (reply.kind, reply.ecode) == (m.Rlerror, errno.EPROTO)


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (m.Tauth(2, afid=5, uname="root", aname="C", n_uname=0), errno.ENOENT),
        (m.Tattach(2, fid=7, afid=NOFID, uname="", aname="nope", n_uname=0), errno.ENOENT),
        (m.Tattach(2, fid=7, afid=NOFID, uname="", aname="C;bogus=1", n_uname=0), errno.EINVAL),
        (m.Tattach(2, fid=0, afid=NOFID, uname="", aname="C", n_uname=0), errno.EBADF),
        (m.Tgetattr(2, fid=99, request_mask=GetattrMask.ALL), errno.EBADF),
        (m.Twalk(2, fid=0, newfid=1, wnames=["a"] * 17), errno.EINVAL),
        (m.Twalk(2, fid=0, newfid=1, wnames=["a/b"]), errno.EINVAL),
        (m.Tread(2, fid=0, offset=0, count=10), errno.EBADF),
        (m.Tlcreate(2, fid=0, name="..", flags=OpenFlag.CREAT, mode=0o644, gid=0), errno.EINVAL),
        (m.Tmkdir(2, dfid=0, name="a\0b", mode=0o755, gid=0), errno.EINVAL),
        (m.Rclunk(2), errno.EOPNOTSUPP),
    ],
    ids=lambda v: v.kind.__name__ if isinstance(v, m.Message) else errno.errorcode[v],
)
async def test_bad_requests_get_the_right_errno(
    server_address: str, request_: m.Message, code: int
) -> None:
    conn = await RawConn.open(server_address)
    await conn.handshake()
    reply = await conn.call(request_)
    assert (reply.kind, reply.ecode) == (m.Rlerror, code)
    # the connection still works
    reply = await conn.call(m.Tgetattr(3, fid=0, request_mask=GetattrMask.BASIC))
    assert reply.kind is m.Rgetattr


async def test_empty_aname_selects_the_only_export(server_address: str) -> None:
    conn = await RawConn.open(server_address)
    assert (await conn.handshake(aname="")).kind is m.Rattach


BAD_FRAMES = {
    "short size": b"\x03\x00\x00\x00",
    "over msize": (70000).to_bytes(4, "little") + b"\x78\x01\x00" + b"\0" * 8,
    "unknown type": b"\x07\x00\x00\x00\x03\x01\x00",
    "trailing bytes": m.Tclunk(1, fid=0).encode()[:4] + b"\x00" + m.Tclunk(1, fid=0).encode()[4:],
    "short body": b"\x09\x00\x00\x00\x78\x01\x00\x00\x00",
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
async def test_malformed_frame_ends_only_that_connection(server_address: str, name: str) -> None:
    good, bad = await RawConn.open(server_address), await RawConn.open(server_address)
    await good.handshake()
    await bad.handshake(msize=65536)
    frame = BAD_FRAMES[name]
    if name == "trailing bytes":
        frame = (len(frame)).to_bytes(4, "little") + frame[4:]
    await bad.send(frame)
    with trio.fail_after(HANG):
        assert await bad.closed()
    reply = await good.call(m.Tgetattr(9, fid=0, request_mask=GetattrMask.BASIC))
    assert reply.kind is m.Rgetattr


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_frames_never_disturb_other_connections(data: st.DataObject) -> None:
    """Random bit flips and truncations of valid frames: never a crash, never a hang."""
    frames = [
        m.Twalk(1, fid=0, newfid=1, wnames=["x", "y"]).encode(),
        m.Tlcreate(2, fid=0, name="f", flags=OpenFlag.RDWR, mode=0o644, gid=0).encode(),
        m.Twrite(3, fid=0, offset=0, data=b"hello").encode(),
        m.Tsetattr(4, fid=0, attr=SetAttr(0)).encode(),
        m.Txattrwalk(5, fid=0, newfid=2, name="").encode(),
    ]  # fmt: skip
    frame = bytearray(data.draw(st.sampled_from(frames)))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(frame) - 1))
        frame[pos] = data.draw(st.integers(0, 255))
    frame = frame[: data.draw(st.integers(1, len(frame)))]

    async def scenario() -> None:
        a, b = trio.testing.memory_stream_pair()
        c, d = trio.testing.memory_stream_pair()
        export = MemExport()
        server = Server({"C": cast(Export, export)}, max_msize=65536)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve_connection, b)
            nursery.start_soon(server.serve_connection, d)
            bad, good = RawConn(a), RawConn(c)
            await bad.handshake()
            await good.handshake()
            await bad.send(bytes(frame))
            await bad.send(m.Tgetattr(60, fid=0, request_mask=GetattrMask.BASIC))
            await a.send_eof()  # a truncated frame would otherwise rightly wait for more
            with trio.fail_after(HANG):
                # answers (the mutation was valid) or cuts off: both are fine, a hang is not
                while not await bad.closed():
                    pass
                reply = await good.call(m.Tgetattr(61, fid=0, request_mask=GetattrMask.BASIC))
            assert reply.kind is m.Rgetattr
            nursery.cancel_scope.cancel()
        export.ledger.check()

    async def bounded() -> None:
        with trio.fail_after(2 * HANG):
            await scenario()

    trio.run(bounded)


class _Gate:
    """Holds every read of a gated export until opened; `entered` is set when one waits.

    `shielded`: the wait cannot be cancelled (a disk read that a flush cannot stop).
    """

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.open = trio.Event()
        self.shielded = False


class _GatedHandle:
    def __init__(self, inner: Handle, gate: _Gate) -> None:
        self.inner, self.gate = inner, gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def read(self, offset: int, count: int) -> bytes:
        self.gate.entered.set()
        with trio.CancelScope(shield=self.gate.shielded):
            await self.gate.open.wait()
        return await self.inner.read(offset, count)


class _GatedFile:
    """A volfs file whose reads wait at a gate: a backend with a slow disk."""

    def __init__(self, inner: File, gate: _Gate) -> None:
        self.inner, self.gate = inner, gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def walk(self, name: str) -> _GatedFile:
        return _GatedFile(await self.inner.walk(name), self.gate)

    async def clone(self) -> _GatedFile:
        return _GatedFile(await self.inner.clone(), self.gate)

    async def open(self, flags: int) -> _GatedHandle:
        return _GatedHandle(await self.inner.open(flags), self.gate)


class _GatedExport:
    def __init__(self, inner: Export, gate: _Gate) -> None:
        self.inner, self.gate = inner, gate

    async def attach(self, options: str, user: User) -> File:
        return cast(File, _GatedFile(await self.inner.attach(options, user), self.gate))


def stream_pair(kind: str) -> tuple[trio.abc.Stream, trio.abc.Stream]:
    """Two connected streams: in memory, or a socket pair (which the server reads and
    writes through its descriptor, `ninep.transport.SocketIO`)."""
    if kind == "memory":
        return trio.testing.memory_stream_pair()
    a, b = trio.socket.socketpair()
    return trio.SocketStream(a), trio.SocketStream(b)


@asynccontextmanager
async def gated_server(
    limits: Limits | None = None, kind: str = "memory"
) -> AsyncIterator[tuple[Server, RawConn, _Gate]]:
    """A server whose export holds reads until the gate opens, and a connection to it
    with file "f" open as fid 1."""
    inner = MemExport()
    inner.root.add("f", b"contents")
    gate = _Gate()
    export = _GatedExport(cast(Export, inner), gate)
    server = Server({"C": cast(Export, export)}, limits=limits)
    ours, theirs = stream_pair(kind)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_connection, theirs)
        conn = RawConn(ours)
        await conn.handshake()
        await conn.call(m.Twalk(1, fid=0, newfid=1, wnames=["f"]))
        await conn.call(m.Tlopen(1, fid=1, flags=OpenFlag.RDONLY))
        yield server, conn, gate
        nursery.cancel_scope.cancel()
    inner.ledger.check()


@pytest.fixture(params=["memory", "socket"])
async def gated(request: pytest.FixtureRequest) -> AsyncIterator[tuple[RawConn, _Gate]]:
    """A connection to a server whose export holds reads until the gate opens."""
    async with gated_server(kind=request.param) as (_, conn, gate):
        yield conn, gate


async def test_a_slow_read_does_not_hold_up_a_getattr(gated: tuple[RawConn, _Gate]) -> None:
    conn, gate = gated
    await conn.send(m.Tread(2, fid=1, offset=0, count=100))
    await gate.entered.wait()
    reply = await conn.call(m.Tgetattr(3, fid=0, request_mask=GetattrMask.BASIC))
    assert reply.kind is m.Rgetattr
    gate.open.set()
    reply = await conn.recv()
    assert (reply.kind, reply.tag, reply.data) == (m.Rread, 2, b"contents")


async def test_flush_cancels_a_pending_request(gated: tuple[RawConn, _Gate]) -> None:
    conn, gate = gated
    await conn.send(m.Tread(2, fid=1, offset=0, count=100))
    await gate.entered.wait()
    reply = await conn.call(m.Tflush(3, oldtag=2))
    assert reply.kind is m.Rflush
    # tag 2 is free again and no Rread for the flushed request ever comes
    gate.open.set()
    reply = await conn.call(m.Tread(2, fid=1, offset=0, count=3))
    assert (reply.kind, reply.data) == (m.Rread, b"con")


async def test_flush_of_a_request_that_finishes_comes_after_its_answer(
    gated: tuple[RawConn, _Gate],
) -> None:
    conn, gate = gated
    gate.shielded = True  # the read cannot be stopped: it will be answered
    await conn.send(m.Tread(2, fid=1, offset=0, count=100))
    await gate.entered.wait()
    await conn.send(m.Tflush(3, oldtag=2))
    gate.open.set()
    first, second = await conn.recv(), await conn.recv()
    assert (first.kind, first.tag, first.data) == (m.Rread, 2, b"contents")
    assert (second.kind, second.tag) == (m.Rflush, 3)


async def test_quick_requests_sent_together_are_answered_in_order_before_a_flush(
    gated: tuple[RawConn, _Gate],
) -> None:
    """Quick requests are served in the connection's task and their replies sent
    together; a Tflush of one of them, sent in the same write, answers after it."""
    conn, _ = gated
    batch = [m.Tgetattr(10 + i, fid=0, request_mask=GetattrMask.BASIC) for i in range(40)]
    frames: list[m.Message] = [*batch, m.Tflush(9, oldtag=49)]
    await conn.send(b"".join(msg.encode() for msg in frames))
    replies = [await conn.recv() for _ in range(41)]
    assert [(r.kind, r.tag) for r in replies] == [
        *((m.Rgetattr, 10 + i) for i in range(40)),
        (m.Rflush, 9),
    ]


async def test_a_flood_of_quick_requests_leaves_other_connections_their_turn() -> None:
    """One connection's pipelined quick requests, all read at once, are not served in
    one go while another connection waits: the server yields between groups of them."""
    export = MemExport()
    server = Server({"C": cast(Export, export)})
    flood_count = 4000  # 11-byte Rlerror each: all fit in the socket buffers, never blocking
    async with trio.open_nursery() as nursery:
        (a, b), (c, d) = stream_pair("socket"), stream_pair("socket")
        nursery.start_soon(server.serve_connection, b)
        nursery.start_soon(server.serve_connection, d)
        flooder, other = RawConn(a), RawConn(c)
        await flooder.handshake()
        await other.handshake()
        flood = b"".join(m.Tclunk(i, fid=999).encode() for i in range(flood_count))
        await flooder.send(flood)
        await other.call(m.Tgetattr(5, fid=0, request_mask=GetattrMask.BASIC))
        served = server.stats()["connections"][0]["requests"].get("Tclunk", 0)
        assert served < flood_count, "the other connection waited for the whole flood"
        replies = [await flooder.recv() for _ in range(flood_count)]
        assert [r.tag for r in replies] == list(range(flood_count))
        nursery.cancel_scope.cancel()
    export.ledger.check()


async def test_a_tag_reused_while_in_flight_ends_the_connection(
    gated: tuple[RawConn, _Gate],
) -> None:
    conn, gate = gated
    await conn.send(m.Tread(5, fid=1, offset=0, count=100))
    await gate.entered.wait()
    await conn.send(m.Tgetattr(5, fid=0, request_mask=GetattrMask.BASIC))
    with trio.fail_after(HANG):
        while not await conn.closed():
            pass


async def test_flush_of_itself_answers_at_once(server_address: str) -> None:
    conn = await RawConn.open(server_address)
    await conn.handshake()
    assert (await conn.call(m.Tflush(7, oldtag=7))).kind is m.Rflush


async def test_flush_of_an_unknown_tag_answers_at_once(server_address: str) -> None:
    conn = await RawConn.open(server_address)
    await conn.handshake()
    assert (await conn.call(m.Tflush(7, oldtag=1234))).kind is m.Rflush


async def test_trace_logs_every_message(
    server_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ninep.trace")
    conn = await RawConn.open(server_address)
    await conn.handshake()
    await conn.call(m.Twalk(1, fid=0, newfid=1, wnames=[]))
    lines = [r.getMessage() for r in caplog.records if r.name == "ninep.trace"]
    assert ">>> Twalk tag 1 fid 0 newfid 1 wnames []" in lines
    assert "<<< Rwalk tag 1 qids []" in lines


async def test_closing_the_connection_releases_every_fid(
    server_address: str, mem_export: MemExport
) -> None:
    mem_export.root.add("f", b"data")
    conn = await RawConn.open(server_address)
    await conn.handshake()
    for i in range(1, 20):
        await conn.call(m.Twalk(i, fid=0, newfid=i, wnames=["f"]))
        await conn.call(m.Tlopen(i, fid=i, flags=OpenFlag.RDONLY))
    closes = mem_export.ledger.closes
    assert list(closes.values()).count(0) == 1 + 2 * 19  # open: root, files, handles
    await conn.aclose()
    with trio.fail_after(HANG):
        while not all(closes.values()):
            await trio.sleep(0.01)


async def test_an_open_fid_walks_to_a_new_fid_but_not_itself(
    server_address: str, mem_export: MemExport
) -> None:
    mem_export.root.add("f", b"data")
    conn = await RawConn.open(server_address)
    await conn.handshake()
    await conn.call(m.Twalk(1, fid=0, newfid=1, wnames=[]))
    assert (await conn.call(m.Tlopen(1, fid=1, flags=OpenFlag.RDONLY))).kind is m.Rlopen
    walked = await conn.call(m.Twalk(1, fid=1, newfid=2, wnames=["f"]))  # as diodls -l does
    assert walked.kind is m.Rwalk and len(walked.qids) == 1
    itself = await conn.call(m.Twalk(1, fid=1, newfid=1, wnames=["f"]))
    assert (itself.kind, itself.ecode) == (m.Rlerror, errno.EINVAL)
