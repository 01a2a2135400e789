"""`ninep-server` as a user runs it: a subprocess, used over its sockets, stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import trio

from ninep import messages as m
from ninep.constants import GetattrMask

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
            assert attr.size == 2
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
        assert (reply.kind, reply.msize) == (m.Rversion, 8192)
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
    bad = subprocess.run([*SERVER, "--export", f"C={missing}"], capture_output=True, text=True)
    assert bad.returncode == 1 and f"cannot export {missing}" in bad.stderr
    assert not os.path.exists(missing)
