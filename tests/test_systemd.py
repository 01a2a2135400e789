"""The server under systemd: ready (Type=notify) once listening, socket activation through
$LISTEN_FDS (with systemd-socket-activate), and the units of systemd/ verified."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from ninep import stats
from ninep.client import connect

from .drvfs_harness import short_dir
from .notified import REPO, SERVER, TIMEOUT, NotifySocket, notified_server

UNITS = sorted((REPO / "systemd").glob("*.service")) + sorted((REPO / "systemd").glob("*.socket"))


@pytest.fixture
def place() -> Iterator[Path]:
    with short_dir() as path:
        (path / "c").mkdir()
        (path / "c" / "hello.txt").write_text("hi")
        yield path


async def _read_hello(address: str) -> bytes:
    async with connect(address) as client:
        root = await client.attach("C")
        data: bytes = await root.read_file("hello.txt")
        return data


async def test_ready_means_listening_with_the_exports_open(place: Path) -> None:
    args = ["--export", f"C={place}/c", "--listen", f"unix:{place}/9p.sock",
            "--stats", f"{place}/stats.sock"]  # fmt: skip
    with notified_server(place, args):  # READY=1 came: both sockets answer at once
        assert stats.read(f"{place}/stats.sock")["total"]["connections"] == 0
        assert await _read_hello(f"unix:{place}/9p.sock") == b"hi"


def _needs(command: str) -> str:
    path = shutil.which(command)
    if path is None:
        pytest.skip(f"{command} is not installed (Debian's systemd package, in TEST_PACKAGES)")
    return path


def test_socket_activation_serves_the_sockets_systemd_passed(place: Path) -> None:
    activate, sock = _needs("systemd-socket-activate"), place / "activated.sock"
    notify, log = NotifySocket(place), place / "server.log"
    env = {**os.environ, "NOTIFY_SOCKET": notify.path, "PYTHONPATH": str(REPO)}
    server = [*SERVER, "-v", "--export", f"C={place}/c", "--listen", "tcp:127.0.0.1:0"]
    command = [activate, "-l", str(sock), "-E", "PYTHONPATH", "-E", "NOTIFY_SOCKET", *server]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, env=env, cwd=REPO)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline().decode()  # systemd-socket-activate listens
        assert f"Listening on {sock} as 3." in first, first
        with open(log, "wb") as out:
            drain = threading.Thread(target=shutil.copyfileobj, args=(proc.stderr, out))
            drain.start()
            # the first connection starts the server, which answers it on the passed socket
            assert trio.run(_read_hello, f"unix:{sock}") == b"hi"
            notify.wait(proc, "READY=1", log)
            proc.terminate()
            assert proc.wait(TIMEOUT) == 0
            drain.join(TIMEOUT)
        text = log.read_text()
        assert f"listening on unix:{sock}" in text and "listening on tcp" not in text, text
        assert sock.exists()  # systemd's socket: not the server's to remove
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        notify.close()


def test_units_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` of every unit, with the commands found where an install puts
    them (a temporary directory bound over /usr/local/bin in a private mount namespace)."""
    analyze = _needs("systemd-analyze")
    if os.geteuid() != 0:
        pytest.skip("binding over /usr/local/bin in a private mount namespace needs root")
    assert {u.name for u in UNITS} >= {"ninep-server.service", "ninep-server.socket"}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("ninep-server", "drvfs"):
        (bin_dir / command).symlink_to(Path(sys.executable).parent / command)
    script = 'mount --bind "$1" /usr/local/bin && shift && exec "$@"'
    out = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(bin_dir),
         analyze, "verify", *map(str, UNITS)],
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
