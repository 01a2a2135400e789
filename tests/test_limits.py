"""Limits and liveness: one connection cannot make the server grow, and the figures show it."""

from __future__ import annotations

import errno
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio

from ninep import messages as m
from ninep import stats
from ninep.constants import GetattrMask, OpenFlag
from ninep.limits import Limits
from ninep.server import Server
from ninep.stats import ConnectionFigures
from ninep.transport import Address
from volfs.export import open_export

from .rawconn import RawConn
from .test_server import gated_server

GETATTR = GetattrMask.BASIC


async def _until(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds (a hang fails the test after 30 s)."""
    with trio.fail_after(30):
        while not condition():
            await trio.sleep(0.01)


async def _connected(address: str) -> RawConn:
    conn = await RawConn.open(address)
    await conn.handshake()
    return conn


@pytest.fixture
async def limited(export_dir: Path) -> AsyncIterator[tuple[Server, str]]:
    """A server over TCP with small limits, and its address."""
    (export_dir / "big").write_bytes(b"x" * (1 << 20))
    server = Server({"C": open_export(str(export_dir))}, limits=Limits(8, 2, 4, fids=16))
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve, [Address("tcp", host="127.0.0.1", port=0)])
        yield server, str(bound[0])
        nursery.cancel_scope.cancel()


async def test_a_client_that_never_reads_is_held_to_its_bound(
    limited: tuple[Server, str],
) -> None:
    server, address = limited
    flood = await _connected(address)
    await flood.call(m.Twalk(1, fid=0, newfid=1, wnames=["big"]))
    await flood.call(m.Tlopen(1, fid=1, flags=OpenFlag.RDONLY))
    sent = 0

    async def send_forever() -> None:
        nonlocal sent
        for i in range(60_000):
            tag = 2 + i % 60_000
            if i % 100 == 0:
                await flood.send(m.Tread(tag, fid=1, offset=0, count=1 << 20))
            else:
                await flood.send(m.Tgetattr(tag, fid=0, request_mask=GETATTR))
            sent += 1

    def figures() -> ConnectionFigures:
        return server.stats()["connections"][0]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_forever)
        await trio.testing.wait_all_tasks_blocked(cushion=0.2)  # the sender is stuck
        served = sum(figures()["requests"].values())
        assert sent < 60_000 and served < 1000  # the server stopped reading
        assert figures()["peak_in_flight"] <= server.limits.in_flight

        other = await _connected(address)  # another connection is served meanwhile
        reply = await other.call(m.Tgetattr(1, fid=0, request_mask=GETATTR))
        assert reply.kind is m.Rgetattr
        await other.aclose()
        nursery.cancel_scope.cancel()
    await flood.aclose()  # everything is released when the flooder goes
    await _until(lambda: server.stats()["total"]["connections"] == 0)
    assert server.stats()["total"]["fids"] == 0


async def test_a_flush_skips_the_queue() -> None:
    limits = Limits(in_flight=2, big_in_flight=1, read_ahead=4)
    async with gated_server(limits) as (server, conn, gate):
        for tag in (10, 11):  # both slots held by reads waiting at the gate
            await conn.send(m.Tread(tag, fid=1, offset=0, count=8))
        await gate.entered.wait()
        await conn.send(m.Tgetattr(12, fid=0, request_mask=GETATTR))  # queued
        await _until(lambda: server.stats()["connections"][0]["queued"] == 1)
        assert (await conn.call(m.Tflush(13, oldtag=12))).kind is m.Rflush  # never started
        assert (await conn.call(m.Tflush(14, oldtag=10))).kind is m.Rflush  # cancelled
        gate.open.set()
        reply = await conn.recv()
        assert (reply.kind, reply.tag, reply.data) == (m.Rread, 11, b"contents")
        reply = await conn.call(m.Tgetattr(15, fid=0, request_mask=GETATTR))
        assert reply.kind is m.Rgetattr  # nothing came for tags 10 and 12


async def test_the_fid_limit_answers_that_connection_alone(
    limited: tuple[Server, str],
) -> None:
    server, address = limited
    conn = await _connected(address)
    for fid in range(1, server.limits.fids):
        assert (await conn.call(m.Twalk(1, fid=0, newfid=fid, wnames=[]))).kind is m.Rwalk
    reply = await conn.call(m.Twalk(1, fid=0, newfid=999, wnames=[]))
    assert (reply.kind, reply.ecode) == (m.Rlerror, errno.EMFILE)
    other = await _connected(address)
    assert (await other.call(m.Twalk(1, fid=0, newfid=1, wnames=[]))).kind is m.Rwalk
    await conn.call(m.Tclunk(1, fid=1))
    assert (await conn.call(m.Twalk(1, fid=0, newfid=999, wnames=[]))).kind is m.Rwalk


def test_the_figures_are_read_from_another_process(tmp_path: Path) -> None:
    export = tmp_path / "c"
    export.mkdir()
    path = tmp_path / "stats.sock"
    cmd = [sys.executable, "-m", "ninep", "--allow-root", "--export", f"C={export}", "-v",
           "--listen", f"unix:{tmp_path / '9p.sock'}", "--stats", str(path)]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        while b"listening on" not in proc.stderr.readline():
            assert proc.poll() is None, "the server did not start"

        async def use() -> stats.Figures:
            conn = await RawConn.open(f"unix:{tmp_path / '9p.sock'}")
            await conn.handshake()
            await conn.call(m.Tgetattr(1, fid=0, request_mask=GETATTR))
            await _until(path.exists)
            figures = await trio.to_thread.run_sync(stats.read, str(path))
            await conn.aclose()
            return figures

        figures = trio.run(use)
        printed = subprocess.run(
            [sys.executable, "-m", "ninep.stats", str(path)], capture_output=True, text=True
        )
    finally:
        proc.terminate()
        proc.wait(60)
    total = figures["total"]
    assert total["requests"]["Tgetattr"] == 1 and total["requests"]["Tattach"] == 1
    assert total["connections"] == 1 and total["fids"] == 1
    assert total["descriptors"] > 0 and total["memory_resident"] > 0
    assert figures["connections"][0]["requests"]["Tgetattr"] == 1
    assert printed.returncode == 0 and '"total"' in printed.stdout
