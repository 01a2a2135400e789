"""Start 9P servers on the host's loopback for the guest to mount.

``diod`` (Debian's reference 9P2000.L server) and the project's own server
(``python -m ninep``), each on a free port with a given export directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .kernel import ensure_host_packages

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Seconds a server may take to start listening.
START_TIMEOUT = 30.0


def free_port() -> int:
    """Return a currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def is_listening(port: int) -> bool:
    """Tell whether some socket listens on 127.0.0.1:``port`` (from /proc/net/tcp).

    Reading the kernel's socket table avoids connecting, which a 9P server
    would see as a client that hangs up at once.
    """
    want = f"0100007F:{port:04X}"
    any_addr = f"00000000:{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[1] in (want, any_addr) and fields[3] == "0A":
            return True
    return False


@dataclass
class Server:
    """A running 9P server process."""

    name: str
    port: int
    export: Path
    aname: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of the server's output."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        """Tell whether the server process is still running."""
        return self.proc.poll() is None

    def stop(self) -> int | None:
        """Terminate the server (SIGTERM, then SIGKILL); return its exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def _spawn(
    name: str,
    command: list[str],
    export: Path,
    aname: str,
    port: int,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Server:
    """Start ``command`` and wait until it listens on ``port`` (or dies)."""
    logfh: IO[bytes] = open(log, "wb")  # noqa: SIM115 - handed to the child process
    with logfh:
        logfh.write(f"$ {' '.join(command)}\n".encode())
        logfh.flush()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=logfh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )
    server = Server(name=name, port=port, export=export, aname=aname, proc=proc, log=log)
    deadline = time.monotonic() + START_TIMEOUT
    while not is_listening(port):
        if proc.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {proc.returncode} before listening:\n{server.log_tail()}"
            )
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"{name} did not listen on port {port} within "
                f"{START_TIMEOUT}s:\n{server.log_tail()}"
            )
        time.sleep(0.05)
    return server


def start_diod(export: Path, log: Path, port: int | None = None) -> Server:
    """Start Debian's diod exporting ``export``; its aname is the export path."""
    ensure_host_packages(["diod"])
    port = port or free_port()
    command = [
        shutil.which("diod") or "/usr/sbin/diod",
        "-f",  # foreground
        "-n",  # no authentication
        "-S",
        "-U",
        "root",  # squash every user to root
        "-L",
        "stderr",
        "-c",
        "/dev/null",  # ignore any /etc/diod.conf
        "-l",
        f"127.0.0.1:{port}",
        "-e",
        str(export),
    ]
    return _spawn("diod", command, export, str(export), port, log)


def start_ninep(
    export: Path, log: Path, port: int | None = None, extra_args: tuple[str, ...] = ()
) -> Server:
    """Start the project's server (``python -m ninep``) exporting ``export`` as ``C``.

    The harness runs as root: the server serves as root on purpose (``--allow-root``)
    unless ``extra_args`` give ``--user NAME``, the way docs/security.md runs it for a VM.
    """
    port = port or free_port()
    as_root = () if "--user" in extra_args else ("--allow-root",)
    command = [
        sys.executable,
        "-m",
        "ninep",
        *as_root,
        "--export",
        f"C={export}",
        "--listen",
        f"tcp:127.0.0.1:{port}",
        "-v",
        *extra_args,
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return _spawn("ninep", command, export, "C", port, log, env=env, cwd=REPO_ROOT)


def start_ninep_posix(export: Path, log: Path) -> Server:
    """The project's server with POSIX metadata on (``--metadata``), for the POSIX workloads."""
    return start_ninep(export, log, extra_args=("--metadata",))


#: Server launchers by name: ``start(export, log) -> Server``. Without metadata the
#: project's server shows WSL's synthesised modes and owners; the standard
#: workloads check POSIX behaviour, which it gives with metadata on.
SERVERS: dict[str, Callable[[Path, Path], Server]] = {
    "diod": start_diod,
    "ninep": start_ninep_posix,
}
