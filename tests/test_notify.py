"""Change notification (Tnotify, docs/protocol-extensions.md) against a real server over
real sockets, with real changes of the host directory: each kind arrives, changes made
through another connection arrive (marked own for the connection that made them), a
client that does not collect gets an overflow and the server holds a bounded number,
Tflush cancels a pending Tnotify, a pending Tnotify takes no slot of the in-flight bound,
a plain connection has none of it, and a FUSE host directory is reported as not covered."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import pytest
import trio

from ninep import messages as m
from ninep.backend import Export, User, watchable
from ninep.client import Fid, connect
from ninep.constants import (
    EXTENDED_VERSION,
    NOFID,
    NOTIFY_COVERED,
    VERSION,
    ChangeFlag,
    ChangeKind,
    GetattrMask,
    NotifyFlag,
    OpenFlag,
)
from ninep.limits import Limits
from ninep.server import Server
from ninep.stats import ConnectionFigures
from ninep.transport import Address
from volfs.export import VolExport, open_export

from .rawconn import RawConn
from .test_server import _Gate, _GatedExport
from .test_volfs_staging import no_tmpfile  # noqa: F401  (a fixture)

DEADLINE = 60  # seconds for a change to arrive: a hang guard, never a measure
ALL = int(GetattrMask.ALL)


@pytest.fixture
def export(export_dir: Path) -> Iterator[VolExport]:
    """The volfs export of `export_dir`, closed (its watcher too) after the test."""
    opened = open_export(str(export_dir))
    yield opened
    opened.close()


@asynccontextmanager
async def served(export: Export, limits: Limits | None = None) -> AsyncIterator[tuple[Server, str]]:
    """An in-process server of `export` as "C" on loopback TCP: the server, its address."""
    server = Server({"C": export}, limits=limits)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve, [Address("tcp", host="127.0.0.1", port=0)])
        yield server, str(bound[0])
        nursery.cancel_scope.cancel()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds; fail past DEADLINE."""
    with trio.move_on_after(DEADLINE):
        while not condition():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"not within {DEADLINE} s: {what}")


class Collector:
    """Every change a fid's `changes()` yields, collected by a task of its own (`others_only`:
    not this connection's own)."""

    def __init__(self, others_only: bool = False) -> None:
        self.changes: list[m.Change] = []
        self.overflows = 0
        self.others_only = others_only

    async def run(self, fid: Fid) -> None:
        async for batch in fid.changes(self.others_only):
            self.overflows += batch.overflow
            self.changes += batch.changes

    def has(self, dir: int, kind: ChangeKind, name: str, flags: int = 0) -> bool:
        return m.Change(dir, kind, flags, name) in self.changes

    async def expect(self, dir: int, kind: ChangeKind, name: str, flags: int = 0) -> None:
        await until(lambda: self.has(dir, kind, name, flags), f"{kind.name} {name!r}")


async def subscribed(export: VolExport, root: Fid, nursery: trio.Nursery) -> Collector:
    """A collector of `root`'s changes, once the server has taken its first Tnotify."""
    collector = Collector()
    nursery.start_soon(collector.run, root)
    await until(lambda: export.watcher.covered(root.qid.path), "the root is watched")
    return collector


async def test_host_changes_arrive_as_their_kind(export_dir: Path, export: VolExport) -> None:
    d = export_dir / "d"
    d.mkdir()
    (d / "f").write_bytes(b"one")
    async with served(export) as (_, address), connect(address) as client:
        root = await client.attach("C")
        async with trio.open_nursery() as nursery:
            seen = await subscribed(export, root, nursery)
            dfid, attr = await root.walk_getattr("d")
            assert attr.valid & NOTIFY_COVERED  # watched before its attributes were read
            assert not (await (await root.walk("d", "f")).getattr()).valid & NOTIFY_COVERED
            async with await root.clone() as listing:
                await listing.open(OpenFlag.RDONLY | OpenFlag.DIRECTORY)
                listed = {e.name: a for e, a in await listing.readdir_attrs() if a is not None}
            assert listed["d"].valid & NOTIFY_COVERED
            where = dfid.qid.path

            (d / "new").write_bytes(b"x")
            await seen.expect(where, ChangeKind.CREATED, "new")
            with open(d / "f", "ab") as f:
                f.write(b"two")
            await seen.expect(where, ChangeKind.DATA, "f")
            os.rename(d / "f", d / "g")
            await seen.expect(where, ChangeKind.RENAMED_FROM, "f")
            await seen.expect(where, ChangeKind.RENAMED_TO, "g")
            os.unlink(d / "g")
            await seen.expect(where, ChangeKind.REMOVED, "g")
            seen.changes.clear()
            os.chmod(d / "new", 0o600)
            await seen.expect(where, ChangeKind.ATTRIB, "new")
            seen.changes.clear()
            os.setxattr(d / "new", "user.test", b"1")
            await seen.expect(where, ChangeKind.ATTRIB, "new")
            os.chmod(d, 0o700)  # the directory itself: "" in its own watch
            await seen.expect(where, ChangeKind.ATTRIB, "")
            assert seen.overflows == 0
            nursery.cancel_scope.cancel()


async def test_a_removed_directory_is_no_longer_covered(
    export_dir: Path, export: VolExport
) -> None:
    (export_dir / "d").mkdir()
    async with served(export) as (_, address), connect(address) as client:
        root = await client.attach("C")
        async with trio.open_nursery() as nursery:
            seen = await subscribed(export, root, nursery)
            dfid, attr = await root.walk_getattr("d")
            assert attr.valid & NOTIFY_COVERED
            os.rmdir(export_dir / "d")
            await seen.expect(root.qid.path, ChangeKind.REMOVED, "d")
            await dfid.clunk()  # the host lets the directory go once no descriptor holds it
            await seen.expect(dfid.qid.path, ChangeKind.UNCOVERED, "")
            assert not export.watcher.covered(dfid.qid.path)
            nursery.cancel_scope.cancel()


async def test_changes_through_another_connection_arrive_marked_own_for_it(
    export_dir: Path, export: VolExport
) -> None:
    (export_dir / "d").mkdir()
    async with served(export) as (_, address), connect(address) as a, connect(address) as b:
        root_a, root_b = await a.attach("C"), await b.attach("C")
        async with trio.open_nursery() as nursery:
            seen_a = await subscribed(export, root_a, nursery)
            seen_b = Collector()
            nursery.start_soon(seen_b.run, root_b)
            await until(lambda: len(export.watcher.changes._subscriptions) == 2, "b")
            d_a = await root_a.walk("d")
            d_b = await root_b.walk("d")
            await d_b.create("made", OpenFlag.WRONLY, 0o644)
            await d_b.write(0, b"data")
            own = ChangeFlag.OWN
            await seen_a.expect(d_a.qid.path, ChangeKind.CREATED, "made")
            await seen_b.expect(d_a.qid.path, ChangeKind.CREATED, "made", own)
            await seen_a.expect(d_a.qid.path, ChangeKind.DATA, "made")
            await seen_b.expect(d_a.qid.path, ChangeKind.DATA, "made", own)
            await (await root_a.walk("d")).unlinkat("made")
            await seen_a.expect(d_a.qid.path, ChangeKind.REMOVED, "made", own)
            await seen_b.expect(d_a.qid.path, ChangeKind.REMOVED, "made")
            assert not seen_a.has(d_a.qid.path, ChangeKind.CREATED, "made", own)
            assert not seen_b.has(d_a.qid.path, ChangeKind.REMOVED, "made", own)
            nursery.cancel_scope.cancel()


async def test_every_name_change_of_a_connection_is_marked_own_for_it(
    export_dir: Path, export: VolExport
) -> None:
    """The places each name change marks follow its declared traits (names, and the
    directories of `modifies`): renames and links too, across two directories."""
    (export_dir / "d").mkdir()
    (export_dir / "e").mkdir()
    (export_dir / "d" / "f").write_bytes(b"f")
    async with served(export) as (_, address), connect(address) as b:
        root = await b.attach("C")
        async with trio.open_nursery() as nursery:
            seen = await subscribed(export, root, nursery)
            d, e = await root.walk("d"), await root.walk("e")
            where_d, where_e, own = d.qid.path, e.qid.path, ChangeFlag.OWN
            await d.renameat("f", e, "g")  # Trenameat: both names, in both directories
            await seen.expect(where_d, ChangeKind.RENAMED_FROM, "f", own)
            await seen.expect(where_e, ChangeKind.RENAMED_TO, "g", own)
            g = await e.walk("g")
            await g.rename(d, "h")  # Trename: the new name in dfid, and the object's place
            await seen.expect(where_e, ChangeKind.RENAMED_FROM, "g", own)
            await seen.expect(where_d, ChangeKind.RENAMED_TO, "h", own)
            await e.link(g, "l")  # Tlink: the name in dfid
            await seen.expect(where_e, ChangeKind.CREATED, "l", own)
            await d.symlink("s", "h")
            await seen.expect(where_d, ChangeKind.CREATED, "s", own)
            assert all(c.flags & own for c in seen.changes if c.dir in (where_d, where_e))
            nursery.cancel_scope.cancel()


async def test_a_connection_that_asks_for_the_others_changes_gets_none_of_its_own(
    export_dir: Path, export: VolExport
) -> None:
    """Tnotifyflags OTHERS: a's own changes are not sent to it at all, b's are; b, which
    sends plain Tnotify on the same kind of connection, still gets its own, marked."""
    (export_dir / "d").mkdir()
    async with served(export) as (_, address), connect(address) as a, connect(address) as b:
        assert a.extensions == b.extensions == 2
        root_a, root_b = await a.attach("C"), await b.attach("C")
        async with trio.open_nursery() as nursery:
            seen_a, seen_b = Collector(others_only=True), Collector()
            nursery.start_soon(seen_a.run, root_a)
            nursery.start_soon(seen_b.run, root_b)
            await until(lambda: len(export.watcher.changes._subscriptions) == 2, "both")
            d_a, d_b = await root_a.walk("d"), await root_b.walk("d")
            where = d_a.qid.path
            await d_a.mkdir("mine", 0o755)
            await d_b.mkdir("theirs", 0o755)
            await seen_a.expect(where, ChangeKind.CREATED, "theirs")
            await seen_b.expect(where, ChangeKind.CREATED, "mine")
            await seen_b.expect(where, ChangeKind.CREATED, "theirs", ChangeFlag.OWN)
            # queued in order: a change of "mine" would have come before "theirs"
            assert [c for c in seen_a.changes if c.name == "mine"] == []
            nursery.cancel_scope.cancel()


async def test_a_directory_made_by_a_watching_connection_is_covered_empty(
    export_dir: Path, export: VolExport
) -> None:
    """Tmkdirattrs with a newfid on a connection that asked for changes: the new directory
    is watched (as a walk to it would be), found still empty, and says so by the coverage
    bit; the parent's attributes carry theirs. Without a newfid it is not watched."""
    (export_dir / "d").mkdir()
    async with served(export) as (_, address), connect(address) as client:
        root = await client.attach("C")
        async with trio.open_nursery() as nursery:
            await subscribed(export, root, nursery)
            d = await root.walk("d")
            qid, attr, dattr, sub = await d.mkdir_attrs("sub", 0o755, fid=True)
            assert sub is not None and attr.valid & NOTIFY_COVERED
            assert export.watcher.covered(qid.path)
            assert dattr is not None and dattr.valid & NOTIFY_COVERED
            qid, plain, _, none = await d.mkdir_attrs("nofid", 0o755)
            assert none is None and not plain.valid & NOTIFY_COVERED
            assert not export.watcher.covered(qid.path)
            nursery.cancel_scope.cancel()
    # what the claim rests on: the backend's own look at the new directory, once watched
    node = await (await export.attach("", User("root", 0))).walk("d")
    made = await node.walk("sub")
    offered = watchable(made)
    assert offered is not None and offered.empty()
    (export_dir / "d" / "sub" / "made").touch()
    assert not offered.empty()
    await made.close()
    await node.close()


@asynccontextmanager
async def extended_conn(address: str, version: str = EXTENDED_VERSION) -> AsyncIterator[RawConn]:
    """A bare connection to `address` that negotiated `version` and attached fid 0 to "C"."""
    conn = await RawConn.open(address)
    try:
        reply = await conn.call(m.Tversion(0xFFFF, msize=65536, version=version))
        assert reply.version == version
        attached = await conn.call(
            m.Tattach(1, fid=0, afid=NOFID, uname="root", aname="C", n_uname=0)
        )
        assert attached.kind is m.Rattach
        yield conn
    finally:
        await conn.stream.aclose()


async def test_a_client_that_does_not_collect_gets_an_overflow(
    export_dir: Path, export: VolExport
) -> None:
    limit = 16
    async with (
        served(export, Limits(changes=limit)) as (server, address),
        extended_conn(address) as conn,
    ):
        await conn.send(m.Tnotify(5, fid=0))
        await until(lambda: export.watcher.covered(export_dir.stat().st_ino), "watched")
        (export_dir / "first").touch()
        reply = await conn.recv()
        assert (reply.kind, reply.flags) == (m.Rnotify, 0)
        assert m.Change(export_dir.stat().st_ino, ChangeKind.CREATED, 0, "first") in (
            m.decode_changes(reply.data)
        )
        queued = []
        for i in range(20 * limit):  # no Tnotify pending: the server holds them
            (export_dir / f"flood{i}").touch()
            if i % 16 == 0:
                export.watcher.drain()
                queued.append(server.stats()["connections"][0]["changes"])
        export.watcher.drain()
        queued.append(server.stats()["connections"][0]["changes"])
        assert max(queued) <= limit and queued[-1] == 0  # dropped at the overflow
        reply = await conn.call(m.Tnotify(6, fid=0))
        assert (reply.kind, reply.flags, reply.data) == (m.Rnotify, NotifyFlag.OVERFLOW, b"")
        (export_dir / "after").touch()
        reply = await conn.call(m.Tnotify(7, fid=0))
        assert (reply.kind, reply.flags) == (m.Rnotify, 0)
        names = {c.name for c in m.decode_changes(reply.data)}
        assert "after" in names and not any(n.startswith("flood") for n in names)


async def test_tflush_cancels_a_pending_tnotify(export_dir: Path, export: VolExport) -> None:
    async with served(export) as (server, address), extended_conn(address) as conn:
        await conn.send(m.Tnotify(5, fid=0))
        await until(lambda: export.watcher.covered(export_dir.stat().st_ino), "watched")
        reply = await conn.call(m.Tflush(6, oldtag=5))
        assert reply.kind is m.Rflush  # and nothing for tag 5: it was cancelled, not answered
        await conn.send(m.Tnotify(7, fid=0))  # not EBUSY: the flushed one is gone
        (export_dir / "x").touch()
        reply = await conn.recv()
        assert (reply.kind, reply.tag) == (m.Rnotify, 7)
        assert "x" in {c.name for c in m.decode_changes(reply.data)}
        assert server.stats()["connections"][0]["in_flight"] == 0


async def test_a_second_pending_tnotify_is_refused(export_dir: Path, export: VolExport) -> None:
    # sent in one write, over many connections: the first always stays pending and the
    # second is refused, whichever of their tasks trio happens to run first
    async with served(export) as (_, address):
        for _ in range(20):
            async with extended_conn(address) as conn:
                await conn.send(m.Tnotify(5, fid=0).encode() + m.Tnotify(6, fid=0).encode())
                reply = await conn.recv()
                assert (reply.tag, reply.kind, reply.ecode) == (6, m.Rlerror, errno.EBUSY)
                reply = await conn.call(m.Tflush(7, oldtag=5))  # 5 was pending, unanswered
                assert reply.kind is m.Rflush


async def test_a_pending_tnotify_takes_no_slot_of_the_in_flight_bound(
    export_dir: Path, export: VolExport
) -> None:
    (export_dir / "f").write_bytes(b"contents")
    gate = _Gate()
    inner = export
    limits = Limits(in_flight=2, big_in_flight=1, read_ahead=4)
    async with (
        served(cast(Export, _GatedExport(cast(Export, inner), gate)), limits) as (
            server,
            address,
        ),
        extended_conn(address) as conn,
    ):
        await conn.call(m.Twalk(2, fid=0, newfid=1, wnames=["f"]))
        await conn.call(m.Tlopen(3, fid=1, flags=OpenFlag.RDONLY))
        await conn.send(m.Tnotify(5, fid=0))
        for tag in (10, 11):  # the whole bound: two reads held at the gate
            await conn.send(m.Tread(tag, fid=1, offset=0, count=8))
        await gate.entered.wait()

        def figures() -> ConnectionFigures:
            return server.stats()["connections"][0]

        await until(lambda: figures()["in_flight"] == 2, "both reads started")
        assert figures()["queued"] == 0
        await conn.send(m.Tread(12, fid=1, offset=0, count=8))  # past the bound: queued
        await until(lambda: figures()["queued"] == 1, "the third read queued")
        gate.open.set()
        replies = {(await conn.recv()).tag for _ in range(3)}
        assert replies == {10, 11, 12}


async def test_a_plain_connection_has_no_notification(export_dir: Path, export: VolExport) -> None:
    async with served(export) as (_, address):
        async with extended_conn(address, VERSION) as conn:
            reply = await conn.call(m.Tnotify(5, fid=0))
            assert (reply.kind, reply.ecode) == (m.Rlerror, errno.EOPNOTSUPP)
            d = await conn.call(m.Tgetattr(6, fid=0, request_mask=ALL))
            assert not d.attr.valid & NOTIFY_COVERED
        async with connect(address, extensions=False) as client:
            root = await client.attach("C")
            assert [batch async for batch in root.changes()] == []  # ends at once
    assert export.watcher.stats()["watches"] == 0


async def test_a_fuse_host_directory_is_not_covered(
    no_tmpfile: tuple[Path, Path],  # noqa: F811
) -> None:
    source, mnt = no_tmpfile
    (source / "d").mkdir()
    export = open_export(str(mnt))
    async with served(export) as (_, address), connect(address) as client:
        root = await client.attach("C")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(Collector().run, root)
            await until(lambda: len(export.watcher.changes._subscriptions) == 1, "subscribed")
            _, attr = await root.walk_getattr("d")
            assert not attr.valid & NOTIFY_COVERED
            assert not (await root.getattr()).valid & NOTIFY_COVERED
            assert export.watcher.stats()["watches"] == 0
            nursery.cancel_scope.cancel()
    export.close()


async def test_the_watchdog_does_not_probe_a_pending_tnotify(
    export_dir: Path, export: VolExport
) -> None:
    """A client with a liveness timeout, idle but for its pending Tnotify: no probe goes
    out and the connection stays (counted as pending, it would be probed every quarter
    of the timeout), and a change still arrives."""
    timeout = 0.4
    async with served(export) as (_, address), connect(address, timeout=timeout) as client:
        root = await client.attach("C")
        sent: list[m.Message] = []
        async with trio.open_nursery() as nursery:
            seen = await subscribed(export, root, nursery)
            client.on_send = sent.append  # from here (a slow walk before may well be probed)
            await trio.sleep(4 * timeout)  # four timeouts of nothing but the Tnotify
            assert not [msg for msg in sent if isinstance(msg, m.Tflush)]
            assert not client.closed
            (export_dir / "late").touch()
            await seen.expect(root.qid.path, ChangeKind.CREATED, "late")
            nursery.cancel_scope.cancel()
