"""The client: its protocol handling against a scripted peer, every operation against the server.

The scripted peer is the far end of a real socketpair driven step by step by
the test; it is used only where the order of replies must be exact (tags,
flush, replies out of order, connection loss). Everything else runs against
the real server over tcp and unix sockets.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import trio
import trio.testing

from ninep import messages as m
from ninep.backend import Attr
from ninep.client import NOW, Client, Fid, connect
from ninep.constants import (
    AT_REMOVEDIR,
    EXTENDED_VERSION,
    EXTENDED_VERSION_2,
    IOHDRSZ,
    MIN_MSIZE,
    NOTAG,
    VERSION,
    XATTR_CREATE,
    GetattrMask,
    LockStatus,
    LockType,
    OpenFlag,
    QidType,
)
from ninep.messages import Qid
from ninep.transport import FrameReader

M = TypeVar("M", bound=m.Message)

MSIZE = 65536


def _qid(path: int, type: int = QidType.DIR) -> Qid:
    return Qid(type, 0, path)


class Peer:
    """The server end of a socketpair, scripted by the test."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = FrameReader(stream, MSIZE)

    async def send(self, *replies: m.Message) -> None:
        await self.stream.send_all(b"".join(r.encode() for r in replies))

    async def expect(self, kind: type[M]) -> M:
        frame = await self.reader.read()
        assert frame is not None, "the client closed the connection"
        msg = m.decode(frame)
        assert isinstance(msg, kind), f"expected {kind.__name__}, got {msg}"
        return msg


@asynccontextmanager
async def scripted(
    version: str = VERSION, msize: int = MSIZE, timeout: float | None = None
) -> AsyncIterator[tuple[Client, Peer]]:
    """A client connected to a scripted peer that has answered Tversion (plain 9P2000.L:
    the client does not ask for the extensions; see the negotiation tests)."""
    ours, theirs = trio.socket.socketpair()
    peer = Peer(trio.SocketStream(theirs))
    await peer.send(m.Rversion(NOTAG, msize=msize, version=version))  # waits in the socket
    client_stream = trio.SocketStream(ours)
    async with (
        peer.stream,
        Client.from_stream(client_stream, msize=MSIZE, timeout=timeout, extensions=False) as c,
    ):
        yield c, peer


@asynccontextmanager
async def watched(timeout: float) -> AsyncIterator[tuple[Client, Peer, Fid]]:
    """A client with a `timeout` (its watchdog on), and its root fid, attached through the peer."""
    async with scripted(timeout=timeout) as (client, peer):
        await peer.expect(m.Tversion)
        yield client, peer, await attached(client, peer)


async def attached(client: Client, peer: Peer) -> Fid:
    """The root fid, attached through the peer."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_answer_attach, peer)
        root = await client.attach("C")
    return root


async def _answer_attach(peer: Peer) -> None:
    msg = await peer.expect(m.Tattach)
    await peer.send(m.Rattach(msg.tag, qid=_qid(1)))


# ---- the client's own protocol handling, against the scripted peer ----


async def test_version_is_negotiated() -> None:
    async with scripted(msize=8192) as (client, peer):
        msg = await peer.expect(m.Tversion)
        assert (msg.tag, msg.msize, msg.version) == (NOTAG, MSIZE, "9P2000.L")
        assert (client.msize, client.iosize) == (8192, 8192 - IOHDRSZ)


@pytest.mark.parametrize(
    "refusal",
    [
        m.Rlerror(NOTAG, ecode=errno.EIO),  # diod
        m.Rversion(NOTAG, msize=MSIZE, version="unknown"),  # QEMU
    ],
    ids=["rlerror", "unknown"],
)
async def test_a_refused_extended_version_falls_back_to_9p2000l(refusal: m.Message) -> None:
    ours, theirs = trio.socket.socketpair()
    peer = Peer(trio.SocketStream(theirs))
    await peer.send(refusal, m.Rversion(NOTAG, msize=8192, version=VERSION))
    async with peer.stream, Client.from_stream(trio.SocketStream(ours), msize=MSIZE) as client:
        asked = [await peer.expect(m.Tversion), await peer.expect(m.Tversion)]
        assert [t.version for t in asked] == [EXTENDED_VERSION, VERSION]
        assert not client.extended and client.msize == 8192


async def test_a_server_without_the_second_set_is_asked_for_the_first_again() -> None:
    """Ours before the second set answers 9P2000.L to it, which started the connection
    afresh as plain: the first set is asked for again, and stands."""
    ours, theirs = trio.socket.socketpair()
    peer = Peer(trio.SocketStream(theirs))
    await peer.send(
        m.Rversion(NOTAG, msize=8192, version=EXTENDED_VERSION),
        m.Rversion(NOTAG, msize=8192, version=VERSION),
        m.Rversion(NOTAG, msize=8192, version=EXTENDED_VERSION),
    )
    async with peer.stream, Client.from_stream(trio.SocketStream(ours), msize=MSIZE) as client:
        asked = [(await peer.expect(m.Tversion)).version for _ in range(3)]
        assert asked == [EXTENDED_VERSION, EXTENDED_VERSION_2, EXTENDED_VERSION]
        assert client.extensions == 1 and client.extended
        root = await attached(client, peer)  # the next frame is the attach
        assert root.qid == _qid(1)


async def test_a_server_that_answers_an_earlier_set_is_taken_at_its_word() -> None:
    ours, theirs = trio.socket.socketpair()
    peer = Peer(trio.SocketStream(theirs))
    await peer.send(*[m.Rversion(NOTAG, msize=8192, version=EXTENDED_VERSION)] * 2)
    async with peer.stream, Client.from_stream(trio.SocketStream(ours), msize=MSIZE) as client:
        asked = [(await peer.expect(m.Tversion)).version for _ in range(2)]
        assert asked == [EXTENDED_VERSION, EXTENDED_VERSION_2]
        assert client.extensions == 1
        assert (await attached(client, peer)).qid == _qid(1)


async def test_an_extended_version_answered_9p2000l_is_plain_at_once() -> None:
    ours, theirs = trio.socket.socketpair()
    peer = Peer(trio.SocketStream(theirs))
    await peer.send(m.Rversion(NOTAG, msize=8192, version=VERSION))
    async with peer.stream, Client.from_stream(trio.SocketStream(ours), msize=MSIZE) as client:
        assert (await peer.expect(m.Tversion)).version == EXTENDED_VERSION
        assert not client.extended
        root = await attached(client, peer)  # the next frame is the attach: one Tversion only
        assert root.qid == _qid(1)


async def test_server_without_9p2000l_is_refused() -> None:
    with pytest.raises(ConnectionError, match=r"does not speak 9P2000\.L") as info:
        async with scripted(version="unknown"):
            pass
    assert info.value.errno == errno.EPROTONOSUPPORT


async def test_errors_in_the_block_are_not_wrapped() -> None:
    with pytest.raises(KeyError):
        async with scripted():
            raise KeyError("mine")


async def test_cancelling_the_block_closes_the_client() -> None:
    with trio.CancelScope() as scope:
        async with scripted() as (client, _):
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert client.closed
    with pytest.raises(ConnectionError, match="the client is closed"):
        await client.attach("C")


async def test_replies_out_of_order_reach_their_requests() -> None:
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)
        results: dict[int, int] = {}

        async def getattr_(mask: int) -> None:
            results[mask] = (await root.getattr(mask)).mode

        async with trio.open_nursery() as nursery:
            for mask in range(1, 11):
                nursery.start_soon(getattr_, mask)
            requests = [await peer.expect(m.Tgetattr) for _ in range(10)]
            assert len({r.tag for r in requests}) == 10
            assert NOTAG not in {r.tag for r in requests}
            for r in reversed(requests):  # the peer echoes each request's mask as the mode
                await peer.send(_rgetattr(r.tag, mode=r.request_mask))
        assert results == {mask: mask for mask in range(1, 11)}
        assert client.tags_in_use == 0


def _rgetattr(tag: int, mode: int) -> m.Message:
    attr = Attr(0, _qid(1), mode, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return m.Rgetattr(tag, attr=attr)


async def test_tags_and_fids_are_reused_after_their_reply() -> None:
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)
        seen = []

        async def answer_twice() -> None:
            for _ in range(2):
                msg = await peer.expect(m.Twalk)
                seen.append((msg.tag, msg.newfid))
                await peer.send(m.Rlerror(msg.tag, ecode=errno.ENOENT))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_twice)
            for _ in range(2):
                with pytest.raises(FileNotFoundError):
                    await root.walk("a")
        assert seen[0] == seen[1]
        assert client.fids_in_use == 1


async def test_rlerror_raises_the_matching_oserror() -> None:
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)

        async def answer() -> None:
            msg = await peer.expect(m.Twalk)
            await peer.send(m.Rlerror(msg.tag, ecode=errno.ENOENT))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            with pytest.raises(FileNotFoundError) as info:
                await root.walk("missing")
        assert info.value.errno == errno.ENOENT
        assert info.value.strerror == os.strerror(errno.ENOENT)


async def test_cancelled_request_is_flushed_and_its_tag_held_until_rflush() -> None:
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def blocked() -> None:
                with scope:
                    await root.getattr()

            nursery.start_soon(blocked)
            old = await peer.expect(m.Tgetattr)
            scope.cancel()
            flush = await peer.expect(m.Tflush)
        assert scope.cancelled_caught  # the cancelled task did not wait for the Rflush
        assert flush.oldtag == old.tag and flush.tag != old.tag
        assert client.tags_in_use == 2
        for _ in range(3):  # neither tag is handed out while the flush is pending
            async with trio.open_nursery() as nursery:
                nursery.start_soon(root.getattr)
                msg = await peer.expect(m.Tgetattr)
                assert msg.tag not in (old.tag, flush.tag)
                await peer.send(_rgetattr(msg.tag, mode=0))
        await peer.send(m.Rflush(flush.tag))
        await client.settle()
        assert client.tags_in_use == 0


async def _cancelled_walk(root: Fid, peer: Peer) -> tuple[m.Twalk, m.Tflush]:
    """Start a walk, cancel it once sent; return the Twalk and the Tflush the peer saw."""
    scope = trio.CancelScope()

    async def walk() -> None:
        with scope:
            await root.walk("a")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(walk)
        twalk = await peer.expect(m.Twalk)
        scope.cancel()
        tflush = await peer.expect(m.Tflush)
    assert tflush.oldtag == twalk.tag
    return twalk, tflush


async def test_reply_before_rflush_is_honoured_and_its_fid_clunked() -> None:
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)
        twalk, tflush = await _cancelled_walk(root, peer)
        await peer.send(m.Rwalk(twalk.tag, qids=[_qid(2)]), m.Rflush(tflush.tag))
        clunk = await peer.expect(m.Tclunk)
        assert clunk.fid == twalk.newfid
        assert client.fids_in_use == 2  # not reused before the server answers the clunk
        await peer.send(m.Rclunk(clunk.tag))
        await client.settle()
        assert (client.fids_in_use, client.tags_in_use) == (1, 0)


async def test_request_flushed_unanswered_frees_its_fid() -> None:
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)
        twalk, tflush = await _cancelled_walk(root, peer)
        await peer.send(m.Rflush(tflush.tag))
        await client.settle()
        assert (client.fids_in_use, client.tags_in_use) == (1, 0)
        async with trio.open_nursery() as nursery:  # the next message is a new walk, no clunk
            nursery.start_soon(root.walk, "b")
            again = await peer.expect(m.Twalk)
            await peer.send(m.Rwalk(again.tag, qids=[_qid(3)]))
        assert again.newfid == twalk.newfid


async def test_request_in_a_cancelled_scope_is_not_sent() -> None:
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)
        with trio.CancelScope() as scope:
            scope.cancel()
            await root.walk("a")
        assert scope.cancelled_caught
        assert (client.fids_in_use, client.tags_in_use) == (1, 0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(root.statfs)
            await peer.expect(m.Tstatfs)  # neither the walk nor a Tflush came first
            nursery.cancel_scope.cancel()


async def test_request_cancelled_while_queued_is_dropped() -> None:
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)
        data = bytes(MSIZE - IOHDRSZ)
        async with trio.open_nursery() as nursery:
            for i in range(50):  # more than the socket holds: the sender blocks
                nursery.start_soon(root.write, i * len(data), data)
            await trio.testing.wait_all_tasks_blocked()
            scope = trio.CancelScope()

            async def walk() -> None:
                with scope:
                    await root.walk("a")

            nursery.start_soon(walk)
            await trio.testing.wait_all_tasks_blocked()
            assert (client.fids_in_use, client.tags_in_use) == (2, 51)
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert scope.cancelled_caught
            assert (client.fids_in_use, client.tags_in_use) == (1, 50)
            for _ in range(50):
                msg = await peer.expect(m.Twrite)
                await peer.send(m.Rwrite(msg.tag, count=len(msg.data)))
            nursery.start_soon(root.statfs)
            await peer.expect(m.Tstatfs)  # neither the walk nor a Tflush was sent
            nursery.cancel_scope.cancel()


async def test_a_frame_the_socket_takes_in_part_is_finished_before_the_next() -> None:
    """A request writes its frame itself; what the full socket does not take is left to the
    sender task, and the frames queued meanwhile follow it whole and in order."""
    ours, theirs = trio.socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer = Peer(trio.SocketStream(theirs))
    await peer.send(m.Rversion(NOTAG, msize=MSIZE, version=VERSION))
    async with (
        peer.stream,
        Client.from_stream(trio.SocketStream(ours), msize=MSIZE, extensions=False) as client,
    ):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)
        data = os.urandom(MSIZE - 100)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(root.write, 0, data)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(root.statfs)
            await trio.testing.wait_all_tasks_blocked()
            write = await peer.expect(m.Twrite)
            assert write.data == data
            await peer.expect(m.Tstatfs)
            nursery.cancel_scope.cancel()


async def test_clunk_completes_even_when_cancelled() -> None:
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)
        with trio.CancelScope() as scope:
            scope.cancel()
            async with root:
                pass
        assert root.fid is None
        clunk = await peer.expect(m.Tclunk)
        assert clunk.fid == 0
        await peer.send(m.Rclunk(clunk.tag))
        await client.settle()
        assert client.fids_in_use == 0


async def test_long_walk_goes_sixteen_names_at_a_time() -> None:
    names = [f"d{i}" for i in range(20)]
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)
        result: list[Fid] = []

        async def walk() -> None:
            result.append(await root.walk(*names))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(walk)
            first = await peer.expect(m.Twalk)
            assert (first.fid, first.wnames) == (0, names[:16])
            await peer.send(m.Rwalk(first.tag, qids=[_qid(i) for i in range(16)]))
            second = await peer.expect(m.Twalk)
            assert (second.fid, second.newfid, second.wnames) == (first.newfid,) * 2 + (names[16:],)
            await peer.send(m.Rwalk(second.tag, qids=[_qid(i) for i in range(16, 20)]))
        assert result[0].qid == _qid(19)


async def test_walk_stopping_in_a_later_chunk_raises_and_clunks_the_new_fid() -> None:
    names = [f"d{i}" for i in range(20)]
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)

        async def answer() -> None:
            first = await peer.expect(m.Twalk)
            await peer.send(m.Rwalk(first.tag, qids=[_qid(i) for i in range(16)]))
            second = await peer.expect(m.Twalk)
            await peer.send(m.Rwalk(second.tag, qids=[_qid(16), _qid(17)]))  # d18 is missing
            clunk = await peer.expect(m.Tclunk)
            assert clunk.fid == first.newfid
            await peer.send(m.Rclunk(clunk.tag))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            with pytest.raises(FileNotFoundError) as info:
                await root.walk(*names)
        assert info.value.filename == "d18"
        await client.settle()
        assert client.fids_in_use == 1


async def test_lost_connection_fails_pending_and_later_requests() -> None:
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)
        failures: list[BaseException] = []

        async def getattr_() -> None:
            try:
                await root.getattr()
            except ConnectionError as e:
                failures.append(e)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(getattr_)
            for _ in range(3):
                await peer.expect(m.Tgetattr)
            await peer.stream.aclose()
        assert [e.errno for e in failures] == [errno.ENOTCONN] * 3  # type: ignore[attr-defined]
        assert client.closed
        with pytest.raises(ConnectionError, match="server closed the connection"):
            await root.statfs()
        await root.clunk()  # nothing to clunk any more: not an error


async def test_reply_with_an_unknown_tag_closes_the_connection() -> None:
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)

        async def answer() -> None:
            msg = await peer.expect(m.Tgetattr)
            await peer.send(_rgetattr(msg.tag + 1, mode=0))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            with pytest.raises(ConnectionError, match="protocol error"):
                await root.getattr()
        assert client.closed


async def test_a_server_that_stops_answering_fails_the_connection() -> None:
    async with watched(0.5) as (client, peer, root):
        with trio.fail_after(30), pytest.raises(ConnectionError) as info:  # 30: a hang guard
            await root.getattr()  # the peer never answers it, nor the probe that follows
        assert info.value.errno == errno.ENOTCONN
        assert "the server did not answer for 0.5 s" in str(info.value)
        assert client.closed and client.silent_since is not None
        with pytest.raises(ConnectionError, match="did not answer"):
            await root.statfs()
        await peer.expect(m.Tgetattr)
        probe = await peer.expect(m.Tflush)
        assert probe.oldtag == NOTAG  # a tag no request uses: nothing is cancelled


async def test_a_server_that_never_answers_tversion_is_refused() -> None:
    ours, theirs = trio.socket.socketpair()
    with theirs, trio.fail_after(30), pytest.raises(ConnectionError) as info:
        async with Client.from_stream(trio.SocketStream(ours), timeout=0.5):
            pass
    assert info.value.errno == errno.ETIMEDOUT
    assert "did not answer Tversion" in str(info.value)


async def test_an_idle_connection_does_not_time_out(mock_clock: trio.testing.MockClock) -> None:
    async with watched(0.2) as (client, peer, root):
        mock_clock.jump(0.5)  # idle for longer than the timeout
        await trio.testing.wait_all_tasks_blocked()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(root.getattr)
            msg = await peer.expect(m.Tgetattr)
            await peer.send(_rgetattr(msg.tag, mode=0))
        assert not client.closed


async def test_replies_to_other_requests_keep_a_slow_one_waiting(
    mock_clock: trio.testing.MockClock,
) -> None:
    async with watched(2.0) as (client, peer, root):
        modes: list[int] = []

        async def getattr_() -> None:
            modes.append((await root.getattr()).mode)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(getattr_)
            slow = await peer.expect(m.Tgetattr)
            for mode in range(1, 7):  # 2.4 s in all for the slow one, never 0.5 s of silence
                mock_clock.jump(0.4)  # short of a probe (a quarter of the timeout)
                async with trio.open_nursery() as fast:  # answered before the clock moves on
                    fast.start_soon(getattr_)
                    msg = await peer.expect(m.Tgetattr)
                    await peer.send(_rgetattr(msg.tag, mode=mode))
            await peer.send(_rgetattr(slow.tag, mode=7))
        assert modes == [1, 2, 3, 4, 5, 6, 7]
        assert not client.closed


async def test_a_slow_request_on_a_live_server_is_not_cut_short(
    mock_clock: trio.testing.MockClock,
) -> None:
    async with watched(0.5) as (client, peer, root):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(root.fsync)
            slow = await peer.expect(m.Tfsync)
            for _ in range(10):  # 2 s in all: the server answers each probe, so it is alive
                mock_clock.jump(0.2)
                probe = await peer.expect(m.Tflush)
                assert probe.oldtag == NOTAG
                await peer.send(m.Rflush(probe.tag))
                await trio.testing.wait_all_tasks_blocked()  # received before the clock moves
            await peer.send(m.Rfsync(slow.tag))
        assert not client.closed and client.tags_in_use == 0


async def test_every_message_is_traced(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ninep.client")
    async with scripted() as (client, peer):
        await peer.expect(m.Tversion)
        root = await attached(client, peer)
    lines = [r.getMessage() for r in caplog.records if r.name == "ninep.client"]
    assert f"-> {m.Tversion(NOTAG, msize=MSIZE, version=VERSION)}" in lines
    assert f"<- {m.Rversion(NOTAG, msize=MSIZE, version=VERSION)}" in lines
    assert any(line.startswith("-> Tattach tag 0 fid 0") for line in lines)
    assert f"<- {m.Rattach(0, qid=root.qid)}" in lines


# ---- every operation, against the real server over tcp and unix sockets ----


@pytest.fixture
async def client(server_address: str) -> AsyncIterator[Client]:
    async with connect(server_address) as client:
        yield client


@pytest.fixture
async def root(client: Client) -> Fid:
    """The export's root with POSIX metadata on, so modes set are modes shown."""
    return await client.attach("C;metadata")


async def test_attach_to_an_unknown_export_fails(client: Client) -> None:
    with pytest.raises(FileNotFoundError):
        await client.attach("nope")
    assert client.fids_in_use == 0


async def test_files_round_trip_in_many_chunks(server_address: str, export_dir: Path) -> None:
    data = os.urandom(50_000)
    async with connect(server_address, msize=MIN_MSIZE) as client:
        assert client.iosize == MIN_MSIZE - IOHDRSZ
        root = await client.attach("C")
        await root.write_file("big", data)
        assert (export_dir / "big").read_bytes() == data
        assert await root.read_file("big") == data
        async with await root.walk("big") as f:
            assert await f.open(OpenFlag.RDONLY) == (f.qid, 0)
            assert await f.read(1000, 20_000) == data[1000:21_000]
            assert await f.read(49_000, 5000) == data[49_000:]  # short only at end of file
            assert await f.read(60_000, 10) == b""


async def test_create_opens_the_new_file(root: Fid, export_dir: Path) -> None:
    async with await root.clone() as f:
        qid = await f.create("new", OpenFlag.RDWR | OpenFlag.CREAT | OpenFlag.EXCL, 0o640)
        assert qid.type == QidType.FILE and f.qid == qid
        assert await f.write(0, b"abcdef") == 6
        await f.fsync()
        await f.fsync(datasync=True)
        assert await f.read(2, 100) == b"cdef"
        attr = await f.getattr()
        assert (attr.mode, attr.size, attr.qid) == (stat.S_IFREG | 0o640, 6, qid)
    assert (export_dir / "new").read_bytes() == b"abcdef"
    async with await root.clone() as f:
        with pytest.raises(FileExistsError):
            await f.create("new", OpenFlag.RDWR | OpenFlag.CREAT | OpenFlag.EXCL, 0o640)


async def test_walks(client: Client, root: Fid, export_dir: Path) -> None:
    (export_dir / "a" / "b").mkdir(parents=True)
    (export_dir / "a" / "b" / "f").write_bytes(b"x")
    async with await root.walk("a", "b", "f") as f, await root.walk_path("a/b/f") as g:
        assert f.qid.type == QidType.FILE and f.qid == g.qid
        assert f.fid != g.fid
        async with await f.clone() as h:
            assert h.qid == f.qid and (await h.getattr()).qid == f.qid
        with pytest.raises(FileNotFoundError) as info:
            await root.walk("a", "missing", "x")
        assert info.value.filename == "missing"
        with pytest.raises(FileNotFoundError):
            await root.walk("missing")
        with pytest.raises(NotADirectoryError):
            await f.walk("below")
        await client.settle()
        assert client.fids_in_use == 3
    assert client.fids_in_use == 1


async def test_deep_walk_takes_several_twalks(root: Fid, export_dir: Path) -> None:
    names = [f"level{i}" for i in range(40)]
    export_dir.joinpath(*names).mkdir(parents=True)
    async with await root.walk(*names) as deep:
        assert deep.qid == (await deep.getattr()).qid
        assert deep.qid.path == os.stat(export_dir.joinpath(*names)).st_ino


async def test_setattr(root: Fid, export_dir: Path) -> None:
    path = export_dir / "f"
    path.write_bytes(b"0123456789")
    async with await root.walk("f") as f:
        await f.setattr(mode=0o600, size=4)
        await f.setattr(atime=1_000_000_123, mtime=2_000_000_456)
        st = os.stat(path)
        assert (stat.S_IMODE((await f.getattr()).mode), st.st_size) == (0o600, 4)
        assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 2_000_000_456)
        attr = await f.getattr(GetattrMask.BASIC)
        assert (attr.mtime_sec, attr.mtime_nsec) == (2, 456)
        await f.setattr(mtime=NOW)
        assert os.stat(path).st_mtime_ns > 2_000_000_456
        assert os.stat(path).st_atime_ns == 1_000_000_123


async def test_statfs(root: Fid, export_dir: Path) -> None:
    st, host = await root.statfs(), os.statvfs(export_dir)
    assert (st.bsize, st.blocks, st.files, st.namelen) == (
        host.f_bsize,
        host.f_blocks,
        host.f_files,
        host.f_namemax,
    )


async def test_readdir_of_a_large_directory(server_address: str, export_dir: Path) -> None:
    names = {f"file-with-a-rather-long-name-{i:04}" for i in range(300)}
    for name in names:
        (export_dir / name).touch()
    async with connect(server_address, msize=MIN_MSIZE) as client:
        root = await client.attach("C")
        async with await root.clone() as d:
            await d.open(OpenFlag.RDONLY | OpenFlag.DIRECTORY)
            entries = await d.readdir()
            first = await d.readdir_chunk(0, 200)
            after = await d.readdir_chunk(first[-1].offset, 200)
        listed = [e.name for e in entries if e.name not in (".", "..")]
        assert sorted(listed) == sorted(names)
        assert 0 < len(first) < 10 and first == entries[: len(first)]
        assert after == entries[len(first) : len(first) + len(after)]
        assert sorted(await root.listdir()) == sorted(names)


async def test_making_objects(root: Fid, export_dir: Path) -> None:
    qid = await root.mkdir("dir", 0o750)
    assert qid.type == QidType.DIR
    async with await root.walk("dir") as d:
        assert (await d.getattr()).mode == stat.S_IFDIR | 0o750
    qid = await root.symlink("ln", "dir/target")
    assert qid.type == QidType.SYMLINK
    async with await root.walk("ln") as ln:
        assert await ln.readlink() == "dir/target"
    await root.mknod("fifo", stat.S_IFIFO | 0o644)
    async with await root.walk("fifo") as fifo:
        assert stat.S_ISFIFO((await fifo.getattr()).mode)
    await root.write_file("f", b"data")
    async with await root.walk("f") as f, await root.walk("dir") as d:
        await d.link(f, "hard")
        assert (await f.getattr()).nlink == 2
    assert (export_dir / "dir" / "hard").read_bytes() == b"data"


async def test_renaming_and_removing(root: Fid, export_dir: Path) -> None:
    (export_dir / "d").mkdir()
    (export_dir / "d" / "sub").mkdir()
    for name in ("a", "b", "c"):
        (export_dir / name).write_bytes(name.encode())
    async with await root.walk("d") as d, await root.walk("a") as a:
        await a.rename(d, "a2")
        await root.renameat("b", d, "b2")
        assert sorted(os.listdir(export_dir / "d")) == ["a2", "b2", "sub"]
        assert await a.read_file("") == b"a"  # the fid followed its file
        await d.unlinkat("a2")
        await d.unlinkat("sub", AT_REMOVEDIR)
        with pytest.raises(FileNotFoundError):
            await d.unlinkat("a2")
    c = await root.walk("c")
    await c.remove()
    assert c.fid is None
    assert sorted(os.listdir(export_dir)) == ["d"]
    with pytest.raises(OSError) as info:
        await c.getattr()
    assert info.value.errno == errno.EBADF


async def test_xattrs(root: Fid, export_dir: Path) -> None:
    path = export_dir / "f"
    path.touch()
    async with await root.walk("f") as f:
        await f.setxattr("user.small", b"v")
        await f.setxattr("user.large", bytes(range(256)) * 8)
        assert os.getxattr(path, "user.large") == bytes(range(256)) * 8
        assert await f.getxattr("user.small") == b"v"
        assert await f.getxattr("user.large") == bytes(range(256)) * 8
        assert {"user.small", "user.large"} <= set(await f.listxattr())
        with pytest.raises(FileExistsError):
            await f.setxattr("user.small", b"w", XATTR_CREATE)
        await f.removexattr("user.small")
        assert "user.small" not in os.listxattr(path)
        with pytest.raises(OSError) as info:
            await f.getxattr("user.small")
        assert info.value.errno == errno.ENODATA
        with pytest.raises(OSError) as info:
            await f.removexattr("user.small")
        assert info.value.errno == errno.ENODATA
    assert root.client.fids_in_use == 1


async def test_many_requests_in_flight(client: Client, root: Fid, export_dir: Path) -> None:
    for i in range(50):
        (export_dir / f"f{i}").write_bytes(bytes(i))
    fids = [await root.walk(f"f{i}") for i in range(50)]
    sizes: dict[int, int] = {}

    async def getattr_(i: int) -> None:
        sizes[i] = (await fids[i].getattr()).size

    seen: list[str] = []
    client.on_send = lambda msg: seen.append(f"-> {msg.kind.__name__}")
    client.on_receive = lambda msg: seen.append(f"<- {msg.kind.__name__}")
    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(getattr_, i)
    assert sizes == {i: i for i in range(50)}
    assert seen[:50] == ["-> Tgetattr"] * 50  # all sent before the first reply came
    assert client.tags_in_use == 0


class _CancelWhenSent:
    """Cancels `scope` when the client sends its `nth` message of `kind` (a Client.on_send)."""

    def __init__(self, scope: trio.CancelScope, kind: m.Kind, nth: int) -> None:
        self.scope, self.kind, self.left = scope, kind, nth

    def __call__(self, msg: m.Message) -> None:
        if isinstance(msg, self.kind):
            self.left -= 1
            if not self.left:
                self.scope.cancel()


@pytest.mark.parametrize("kind", [m.Twalk, m.Tgetattr, m.Tclunk], ids=lambda k: k.__name__)
async def test_cancellation_at_any_point_keeps_the_connection_consistent(
    client: Client, root: Fid, export_dir: Path, kind: m.Kind
) -> None:
    (export_dir / "d").mkdir()

    async def walk_and_stat() -> None:
        for _ in range(3):
            async with await root.walk("d") as d:
                await d.getattr()

    for nth in range(1, 13):
        with trio.CancelScope() as scope:
            client.on_send = _CancelWhenSent(scope, kind, nth)
            try:
                async with trio.open_nursery() as nursery:
                    for _ in range(10):
                        nursery.start_soon(walk_and_stat)
            finally:
                client.on_send = None
        assert scope.cancelled_caught
        await client.settle()
        assert (client.fids_in_use, client.tags_in_use) == (1, 0)
        fids = [await root.walk("d") for _ in range(10)]  # the numbers the client reuses are free
        for fid in fids:
            await fid.clunk()


async def test_flush_of_an_answered_tag_is_harmless(client: Client, root: Fid) -> None:
    await root.getattr()
    reply = await client.request(m.Tflush(oldtag=0))
    assert reply.kind is m.Rflush
    assert (await root.getattr()).qid == root.qid


async def test_locks_between_two_clients(server_address: str, export_dir: Path) -> None:
    (export_dir / "f").write_bytes(b"x" * 100)
    async with connect(server_address) as one, connect(server_address) as two:
        f1 = await (await one.attach("C")).walk("f")
        f2 = await (await two.attach("C")).walk("f")
        await f1.open(OpenFlag.RDWR)
        await f2.open(OpenFlag.RDWR)
        assert await f1.lock(LockType.WRLCK, 0, 10, proc_id=1) == LockStatus.SUCCESS
        assert await f2.lock(LockType.WRLCK, 5, 10, proc_id=2) == LockStatus.BLOCKED
        assert await f2.lock(LockType.WRLCK, 10, 10, proc_id=2) == LockStatus.SUCCESS
        conflict = await f2.getlock(LockType.RDLCK, 0, 0, proc_id=2)
        assert (conflict.type, conflict.start, conflict.length) == (LockType.WRLCK, 0, 10)
        free = await f2.getlock(LockType.WRLCK, 50, 10, proc_id=2)
        assert free.type == LockType.UNLCK
        assert await f1.lock(LockType.UNLCK, 0, 10, proc_id=1) == LockStatus.SUCCESS
        assert await f2.lock(LockType.WRLCK, 0, 10, proc_id=2) == LockStatus.SUCCESS
        assert await f1.lock(LockType.RDLCK, 0, 0, proc_id=1) == LockStatus.BLOCKED
        await f2.clunk()  # closing the file releases its locks
        assert await f1.lock(LockType.RDLCK, 0, 0, proc_id=1) == LockStatus.SUCCESS


async def test_fid_survives_the_rename_of_its_parent(root: Fid, export_dir: Path) -> None:
    (export_dir / "old").mkdir()
    (export_dir / "old" / "f").write_bytes(b"content")
    async with await root.walk("old", "f") as f:
        (export_dir / "old").rename(export_dir / "new")  # behind the server's back
        assert await f.read_file("") == b"content"
        async with await root.walk("new") as new, await root.walk("new", "f") as g:
            assert g.qid == f.qid
            await new.renameat("f", root, "moved")  # and through it
        await f.open(OpenFlag.RDWR)
        await f.write(0, b"CONTENT")
    assert (export_dir / "moved").read_bytes() == b"CONTENT"
