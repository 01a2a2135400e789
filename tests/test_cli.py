"""`ninep-server` as a user runs it: a subprocess, used over its sockets, stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import trio

from ninep import messages as m
from ninep.constants import GetattrMask
from ninep.version import package_version

from .rawconn import RawConn

SERVER = [sys.executable, "-m", "ninep", "--allow-root"]  # the tests may run as root


async def _listening(proc: trio.Process, count: int) -> list[str]:
    """Read the server's log until it has announced `count` listening addresses."""
    assert proc.stderr is not None
    text, found = "", list[str]()
    with trio.fail_after(30):
        while len(found) < count:
            chunk = await proc.stderr.receive_some()
            assert chunk, f"server exited early:\n{text}"
            text += chunk.decode()
            found = re.findall(r"listening on (\S+)", text)
    return found


async def test_serves_tcp_and_unix_then_stops_on_sigterm(tmp_path: Path) -> None:
    export = tmp_path / "c"
    export.mkdir()
    (export / "hello.txt").write_text("hi")
    sock = tmp_path / "ninep.sock"
    cmd = [*SERVER, "--export", f"C={export}", "-v",
           "--listen", "tcp:127.0.0.1:0", "--listen", f"unix:{sock}"]  # fmt: skip
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            lambda task_status: trio.run_process(
                cmd, stderr=subprocess.PIPE, check=False, task_status=task_status
            )
        )
        addresses = await _listening(proc, 2)
        assert any(a.startswith("tcp:127.0.0.1:") for a in addresses)
        assert f"unix:{sock}" in addresses
        for address in addresses:
            conn = await RawConn.open(address)
            await conn.handshake()
            walk = await conn.call(m.Twalk(1, fid=0, newfid=1, wnames=["hello.txt"]))
            assert walk.kind is m.Rwalk and len(walk.qids) == 1
            attr = await conn.call(m.Tgetattr(2, fid=1, request_mask=GetattrMask.BASIC))
            assert attr.attr.size == 2
            await conn.aclose()
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    assert not sock.exists()


def test_serves_one_connection_on_stdin_stdout(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        proc = subprocess.Popen(
            [*SERVER, "--export", f"C={tmp_path}", "--listen", "fd:0,1"],
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
        )
        theirs.close()
        ours.sendall(m.Tversion(0xFFFF, msize=8192, version="9P2000.L").encode())
        reply = m.decode(ours.recv(8192))
        assert isinstance(reply, m.Rversion) and reply.msize == 8192
        ours.shutdown(socket.SHUT_WR)
        assert proc.wait(timeout=30) == 0


def test_help_and_usage_errors() -> None:
    out = subprocess.run([*SERVER, "--help"], capture_output=True, text=True, check=True)
    assert "--export NAME=PATH" in out.stdout and "mount -t 9p" in out.stdout
    bad = subprocess.run([*SERVER, "--export", "nopath"], capture_output=True, text=True)
    assert bad.returncode == 2 and "expected NAME=PATH" in bad.stderr
    bad = subprocess.run(
        [*SERVER, "--export", "C=/", "--listen", "udp:1"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown scheme 'udp'" in bad.stderr


def test_missing_export_directory_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    line = _fails_to_start("--export", f"C={missing}", "--listen", "tcp:127.0.0.1:0")
    assert line == f"ninep-server: cannot export {missing}: No such file or directory"
    assert not os.path.exists(missing)


# ---- start-up failures: one line, exit 1, nothing left listening (issue 17) ----


def _fails_to_start(*args: str, prefix: tuple[str, ...] = ()) -> str:
    """Run the server expecting it not to start; its one line of stderr."""
    out = subprocess.run([*prefix, *SERVER, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    return out.stderr.strip()


def _free_after(port: int, sock_path: Path) -> None:
    """The failed server left nothing behind: the port binds again, no socket file."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    assert not sock_path.exists()


def test_an_address_in_use_is_one_line_and_closes_the_others(tmp_path: Path) -> None:
    sock = tmp_path / "first.sock"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _fails_to_start("--export", f"C={tmp_path}", "--listen", f"unix:{sock}",
                               "--listen", f"tcp:127.0.0.1:{port}")  # fmt: skip
    assert line == f"ninep-server: cannot listen on tcp:127.0.0.1:{port}: Address already in use"
    _free_after(port, sock)


def _without(*caps: str) -> tuple[str, ...]:
    """A command prefix that runs the server without these capabilities, as an ordinary
    user runs it: setpriv (util-linux, which make test installs) when root, nothing else."""
    if os.geteuid() != 0:
        return ()
    dropped = ",".join(f"-{cap}" for cap in caps)
    return ("setpriv", f"--bounding-set={dropped}", f"--inh-caps={dropped}")


def test_a_privileged_port_is_one_line(tmp_path: Path) -> None:
    first = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if first == 0:  # the issue's own condition: then no port is privileged at all
        pytest.skip("net.ipv4.ip_unprivileged_port_start is 0: every port is unprivileged")
    sock = tmp_path / "first.sock"
    line = _fails_to_start("--export", f"C={tmp_path}", "--listen", f"unix:{sock}",
                           "--listen", f"tcp:127.0.0.1:{first - 1}",
                           prefix=_without("net_bind_service"))  # fmt: skip
    assert line == f"ninep-server: cannot listen on tcp:127.0.0.1:{first - 1}: Permission denied"
    assert not sock.exists()


def test_a_live_servers_socket_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "live.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        line = _fails_to_start("--export", f"C={tmp_path}", "--listen", f"unix:{path}")
        assert path.exists()
    assert line == f"ninep-server: cannot listen on unix:{path}: another server is listening there"


def test_a_socket_that_cannot_be_probed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sock"
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen()
        os.chmod(path, 0)  # connect(2) needs write permission on the socket file
        line = _fails_to_start("--export", f"C={tmp_path}", "--listen", f"unix:{path}",
                               prefix=_without("dac_override", "dac_read_search"))  # fmt: skip
        assert path.exists()
    assert line == (
        f"ninep-server: cannot listen on unix:{path}: cannot tell whether a server listens"
        " there: Permission denied"
    )


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as gone:
        gone.bind(str(path))  # never listened: nothing answers there
    proc = subprocess.Popen(
        [*SERVER, "--export", f"C={tmp_path}", "-v", "--listen", f"unix:{path}"],
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        assert b"listening on" in proc.stderr.readline()
    finally:
        proc.terminate()
        assert proc.wait(60) == 0
    assert not path.exists()


def test_an_export_is_checked_as_the_serving_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:  # CI runs as root; an ordinary user cannot serve as another
        pytest.skip("only root can start the server with --user (becoming another user)")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    line = _fails_to_start("--user", "nobody", "--export", f"C={private}",
                           "--listen", "tcp:127.0.0.1:0")  # fmt: skip
    assert line == f"ninep-server: cannot export {private}: Permission denied"


def test_a_host_name_that_does_not_resolve_says_so(tmp_path: Path) -> None:
    """Not "give --allow-net": the name is the problem (.invalid never resolves, RFC 2606)."""
    line = _fails_to_start("--export", f"C={tmp_path}", "--listen", "tcp:nosuchhost.invalid:5706")
    prefix = "ninep-server: cannot listen on tcp:nosuchhost.invalid:5706: nosuchhost.invalid: "
    assert line.startswith(prefix) and "allow-net" not in line, line


def test_version_names_the_package_and_the_protocols() -> None:
    out = subprocess.run([*SERVER, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"ninep-server {package_version()} (ninep-volfs)",
        "protocols: 9P2000.L, 9P2000.L.ninep",
    ]
    assert package_version() == version("ninep-volfs")


# ---- python -m ninep.stats: one line and 1 when no server answers ----

STATS = [sys.executable, "-m", "ninep.stats"]


def _stats(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STATS, *args], capture_output=True, text=True, timeout=60)


def test_stats_of_a_missing_or_dead_socket_is_one_line(tmp_path: Path) -> None:
    missing = _stats(str(tmp_path / "none.sock"))
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == (
        f"python -m ninep.stats: {tmp_path / 'none.sock'}: no such socket (is a ninep-server"
        " running with --stats PATH?)\n"
    )
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as gone:
        gone.bind(str(dead))  # a server that stopped without removing it
    out = _stats(str(dead))
    assert out.returncode == 1 and out.stderr == (
        f"python -m ninep.stats: {dead}: nothing serves it (the server that made it has stopped)\n"
    )


def test_stats_help_and_version() -> None:
    helped = _stats("--help")
    assert helped.returncode == 0 and "--stats PATH" in helped.stdout
    assert "Traceback" not in helped.stderr
    shown = _stats("--version")
    assert (
        shown.returncode == 0 and shown.stdout == f"ninep.stats {package_version()} (ninep-volfs)\n"
    )
    assert _stats().returncode == 2
