"""The server as a whole (docs/operations.md): admission that a flood cannot stall, limits on
all connections together, the descriptor reserve, and the socket files it makes.

Servers here are real: in this process (so that an audit hook sees which thread
reads /proc) or as `ninep-server` subprocesses; the flooding peers are real
processes of another uid. Nothing is timed: figures are counts.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio

from ninep import stats
from ninep.client import Client, connect
from ninep.constants import OpenFlag
from ninep.limits import Limits, ServerLimits
from ninep.ratelog import RateLog
from ninep.server import Server
from ninep.transport import Address
from volfs.export import open_export

from .children import as_ids

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: children of other uids")
REFUSED = 4242  # a uid the host does not know, not admitted
NOBODY = 65534
FLOOD = 200  # connect/close pairs of the refused uid

# ---- which threads read /proc/net/tcp: an audit hook (it cannot be removed: a switch) ----

_proc_reads: list[tuple[int, str]] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and _proc_reads is not None and str(args[0]).startswith("/proc/net/tcp"):
        _proc_reads.append((threading.get_ident(), str(args[0])))


sys.addaudithook(_audit)


# ---- a server in this process ----


@asynccontextmanager
async def served(
    tmp: Path, limits: Limits | None = None, server_limits: ServerLimits | None = None
) -> AsyncIterator[tuple[Server, str]]:
    """A server of a fresh export on 127.0.0.1 (port chosen by the system), in this process."""
    (tmp / "c").mkdir(exist_ok=True)
    server = Server({"C": open_export(str(tmp / "c"))}, limits=limits, server_limits=server_limits)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve, [Address("tcp", host="127.0.0.1", port=0)])
        yield server, f"tcp:127.0.0.1:{bound[0].port}"
        nursery.cancel_scope.cancel()


def _flood(port: int, pairs: int) -> int:
    """Connect and close `pairs` times (in a child of another uid); how many connected."""
    done = 0
    for _ in range(pairs):
        with socket.create_connection(("127.0.0.1", port), timeout=60):
            done += 1
    return done


async def _flooded(server: Server, address: str) -> list[str]:
    """A refused uid floods while an admitted client connects and works; what it read."""
    port = int(address.rsplit(":", 1)[1])
    flood = trio.to_thread.run_sync(as_ids, REFUSED, REFUSED, (), _flood, port, FLOOD)
    read: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: flood)
        for i in range(5):
            async with connect(address) as client:
                root = await client.attach("C")
                f = await root.clone()
                await f.create(f"f{i}", OpenFlag.RDWR, 0o644)
                await f.write(0, b"admitted")
                read.append((await f.read(0, 100)).decode())
    with trio.fail_after(60):  # a hang guard: the accepted connections wait in the backlog
        while server.stats()["server"]["refused"].get("admission", 0) < FLOOD:
            await trio.sleep(0.01)
    return read


@ROOT_ONLY
def test_a_refused_flood_is_told_apart_by_the_kernel_off_the_event_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    global _proc_reads
    _proc_reads = []

    async def main() -> None:
        async with served(tmp_path) as (server, address):
            assert await _flooded(server, address) == ["admitted"] * 5
            figures = server.stats()["server"]
            assert figures["admission"]["asked_kernel"] == FLOOD + 5
            assert figures["admission"]["scanned_proc"] == 0
            assert figures["refused"] == {"admission": FLOOD}

    try:
        with caplog.at_level(logging.WARNING, "ninep.server"):
            trio.run(main)
    finally:
        reads, _proc_reads = _proc_reads, None
    assert reads == []  # the kernel told every owner: /proc was never read
    # once a minute per kind of peer: its uid, or none (closed before it was looked at)
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    kinds = (f"uid {REFUSED} is not allowed", "its uid could not be found")
    assert 1 <= len(refusals) <= 2 and all(any(k in r for k in kinds) for r in refusals), refusals


@ROOT_ONLY
def test_without_sock_diag_proc_is_read_in_a_worker_thread(tmp_path: Path) -> None:
    global _proc_reads
    _proc_reads = []
    loop_thread = threading.get_ident()

    async def main() -> None:
        async with served(tmp_path) as (server, address):
            server.finder.refused = "as where netlink is refused"  # the fallback, from the start
            assert await _flooded(server, address) == ["admitted"] * 5
            figures = server.stats()["server"]
            assert figures["admission"] == {
                "asked_kernel": 0, "scanned_proc": FLOOD + 5,
                "sock_diag_refused": "as where netlink is refused",
            }  # fmt: skip
            assert figures["refused"] == {"admission": FLOOD}

    try:
        trio.run(main)
    finally:
        reads, _proc_reads = _proc_reads, None
    assert reads, "the owners were read from /proc"
    assert all(thread != loop_thread for thread, _ in reads)


def test_refusals_are_logged_once_a_minute_per_peer(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RateLog(logging.getLogger("ninep.test"), interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "ninep.test"):
        written = [log.warning("uid 4242", "uid 4242: refused") for _ in range(5)]
        assert written == [True, False, False, False, False]
        assert log.warning("uid 4243", "uid 4243: refused")  # another peer: its own line
        now[0] = 59.9
        assert not log.warning("uid 4242", "uid 4242: refused")
        now[0] = 60.0
        assert log.warning("uid 4242", "uid 4242: refused")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["uid 4242: refused", "uid 4243: refused",
                     "uid 4242: refused (5 more like it not logged)"]  # fmt: skip


def test_the_keys_a_rate_log_remembers_are_bounded() -> None:
    now = [0.0]
    log = RateLog(logging.getLogger("ninep.test"), interval=60, clock=lambda: now[0])
    for i in range(5000):  # a flood from ever new networks
        log.warning(f"net {i}", "refused")
    assert len(log._seen) <= 1024


def _send_and_close(port: int, frames: bytes, times: int) -> int:
    """Connect, send `frames` and close at once, `times` times (in a child of another uid)."""
    for _ in range(times):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(frames)
    return times


@ROOT_ONLY
def test_a_peer_gone_before_it_is_looked_at_is_nobody_not_root(tmp_path: Path) -> None:
    """A socket its process closed has no owner, and the kernel then reports uid 0 for it:
    frames sent before the close must not be served as root's."""
    from ninep import messages as m
    from ninep.constants import NOFID

    frames = b"".join(f.encode() for f in (
        m.Tversion(0xFFFF, msize=8192, version="9P2000.L"),
        m.Tattach(1, fid=0, afid=NOFID, uname="", aname="C", n_uname=0),
        m.Tlcreate(2, fid=0, name="made-by-a-refused-uid", flags=OpenFlag.RDWR, mode=0o644, gid=0),
    ))  # fmt: skip
    times = 50

    async def main() -> None:
        async with served(tmp_path) as (server, address):
            port = int(address.rsplit(":", 1)[1])
            await trio.to_thread.run_sync(
                as_ids, REFUSED, REFUSED, (), _send_and_close, port, frames, times
            )
            with trio.fail_after(60):  # a hang guard
                while server.stats()["server"]["refused"].get("admission", 0) < times:
                    await trio.sleep(0.01)
            assert server.connections == 0  # none was served

    trio.run(main)
    assert os.listdir(tmp_path / "c") == []


# ---- limits on all connections together ----


async def _refused_at_version(address: str) -> bool:
    """Whether a new connection is closed before its Tversion is answered."""
    try:
        async with connect(address, version_timeout=60):
            return False
    except (ConnectionError, trio.BrokenResourceError, trio.ClosedResourceError, EOFError):
        return True


@pytest.mark.parametrize("which", ["connections", "connections_per_peer"])
def test_one_connection_too_many_is_closed_and_room_comes_back(tmp_path: Path, which: str) -> None:
    limits = ServerLimits(**{which: 2})

    async def main() -> None:
        async with served(tmp_path, server_limits=limits) as (server, address):
            async with AsyncExitStack() as held:
                for _ in range(2):
                    await (await held.enter_async_context(connect(address))).attach("C")
                assert await _refused_at_version(address)
            assert not await _refused_at_version(address)  # room again once they closed
            assert server.stats()["server"]["refused"] == {"connections": 1}

    trio.run(main)


def test_the_fids_of_all_connections_share_one_budget(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path, server_limits=ServerLimits(fids=5)) as (server, address):
            async with connect(address) as a, connect(address) as b:
                root_a, root_b = await a.attach("C"), await b.attach("C")
                spare = [await root_a.clone(), await root_a.clone(), await root_b.clone()]
                with pytest.raises(OSError) as info:
                    await root_b.clone()  # a sixth fid, on either connection
                assert info.value.errno == errno.EMFILE
                assert server.stats()["server"]["fids"] == {"used": 5, "limit": 5}
                await spare[0].clunk()
                await root_b.clone()  # room again
            assert server.budgets.fids.used == 0

    trio.run(main)


def test_open_files_are_bounded_per_connection_and_in_all(tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        (tmp_path / "c").mkdir(exist_ok=True)
        (tmp_path / "c" / name).write_text(name)

    async def opened(client: Client, name: str) -> object:
        f = await (await client.attach("C")).walk(name)
        await f.open(OpenFlag.RDONLY)
        return f

    async def main() -> None:
        limits, total = Limits(open_files=2), ServerLimits(open_files=3)
        async with served(tmp_path, limits, total) as (server, address):
            async with connect(address) as a, connect(address) as b:
                kept = [await opened(a, "a"), await opened(a, "b")]
                with pytest.raises(OSError) as info:
                    await opened(a, "c")  # a third on one connection
                assert info.value.errno == errno.EMFILE
                await opened(b, "c")
                with pytest.raises(OSError) as info:
                    await opened(b, "d")  # a fourth in all
                assert info.value.errno == errno.ENFILE
                await kept[0].clunk()  # type: ignore[attr-defined]
                await opened(b, "d")
            assert server.budgets.open_files.used == 0

    trio.run(main)


# ---- the server as a process: the descriptor reserve, its socket files ----


def _start(*args: str) -> tuple[subprocess.Popen[bytes], str, list[str]]:
    """`ninep-server` with `args`; its process, first address, and log (read as it comes)."""
    proc = subprocess.Popen([sys.executable, "-m", "ninep", "-v", *args], stderr=subprocess.PIPE)
    assert proc.stderr is not None
    log: list[str] = []
    while not (found := re.search(r"listening on (\S+)", "".join(log))):
        line = proc.stderr.readline().decode()
        assert line, "the server did not start:\n" + "".join(log)
        log.append(line)
    stderr = proc.stderr
    threading.Thread(target=lambda: log.extend(x.decode() for x in stderr), daemon=True).start()
    return proc, found.group(1), log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_out_of_descriptors_new_connections_are_closed_and_it_recovers(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    limit = 48
    proc, address, log = _start("--allow-root", "--export", f"C={tmp_path / 'c'}",
                                "--listen", "tcp:127.0.0.1:0")  # fmt: skip
    try:
        subprocess.run(["prlimit", f"--pid={proc.pid}", f"--nofile={limit}:{limit}"], check=True)

        async def main() -> None:
            async with AsyncExitStack() as held:
                served = []
                for _ in range(limit + 8):  # more connections than descriptors, all kept
                    try:
                        await held.enter_async_context(connect(address, version_timeout=60))
                        served.append(True)
                    except (ConnectionError, trio.BrokenResourceError, EOFError):
                        served.append(False)  # closed at once, not left waiting
                assert served[-8:] == [False] * 8 and served.count(True) > 8, served
            with trio.fail_after(60):  # a hang guard: the server closes them as it reads EOF
                while await _refused_at_version(address):
                    await trio.sleep(0.05)  # descriptors free again: served

        trio.run(main)
    finally:
        _stop(proc)
    text = "".join(log)
    assert text.count("out of descriptors") == 1 and "Traceback" not in text, text


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A directory of root's, 0755: the serving user may not write in it."""
    top = Path(tempfile.mkdtemp(prefix="ninep-run-"))
    top.chmod(0o755)
    (top / "c").mkdir()
    yield top
    shutil.rmtree(top)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: --user becomes another user")
@pytest.mark.parametrize("owner", [0, NOBODY], ids=["root's directory", "nobody's directory"])
def test_the_stats_socket_is_made_before_the_privilege_drop(run_dir: Path, owner: int) -> None:
    sockets = run_dir / "run"
    sockets.mkdir()
    os.chown(sockets, owner, owner)
    names = [sockets / "9p.sock", sockets / "stats.sock"]
    proc, _, log = _start("--user", "nobody", "--export", f"C={run_dir / 'c'}",
                          "--listen", f"unix:{names[0]}", "--stats", str(names[1]))  # fmt: skip
    try:
        assert [os.stat(n).st_uid for n in names] == [NOBODY, NOBODY]
        assert stats.read(str(names[1]))["server"]["connections"]["used"] == 0
    finally:
        _stop(proc)
    left = [n for n in names if n.exists()]
    warned = [n for n in names if any(f"cannot remove the socket file {n}" in x for x in log)]
    assert left == warned == ([] if owner == NOBODY else names)
