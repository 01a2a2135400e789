"""`ninep-server` started as systemd starts a `Type=notify` unit: ready once it says
`READY=1` on $NOTIFY_SOCKET, never guessed from its log."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60  # seconds for a process to start or stop; a hang fails the test
SERVER = [sys.executable, "-m", "ninep", "--allow-root"]  # the tests may run as root


class NotifySocket:
    """The datagram socket a service manager listens on, bound in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def wait(self, proc: subprocess.Popen[bytes], state: str, log: Path) -> None:
        """Until `proc` sends `state` (a line of its message); AssertionError if it exits
        first, or stays silent for TIMEOUT seconds (a hang guard)."""
        for _ in range(TIMEOUT * 10):
            if select.select([self.sock], [], [], 0.1)[0]:
                if state in self.sock.recv(4096).decode().splitlines():
                    return
            elif proc.poll() is not None:
                raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()}")
        raise AssertionError(f"no {state} within {TIMEOUT} s:\n{log.read_text()}")

    def close(self) -> None:
        self.sock.close()
        os.unlink(self.path)


def three_exports(place: Path, top: str = "") -> Path:
    """place/server.toml: a server on unix:place/9p.sock (keys `top` too) of exports C
    (place/c), D (place/d, read-only) and E (place/e, metadata), directories it makes."""
    for name in "cde":
        (place / name).mkdir(exist_ok=True)
    path = place / "server.toml"
    path.write_text(f"""\
listen = ["unix:{place}/9p.sock"]
{top}
[export.C]
path = "{place}/c"

[export.D]
path = "{place}/d"
read-only = true

[export.E]
path = "{place}/e"
metadata = true
""")
    return path


@contextlib.contextmanager
def notified_server(
    directory: Path, args: Sequence[str], prefix: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """`ninep-server ARGS` (after `prefix`, a command that runs it) until READY=1; stopped
    with SIGTERM at the end (exit status 0 asserted), its log in `directory`/server.log."""
    notify, log = NotifySocket(directory), directory / "server.log"
    env = {**os.environ, "NOTIFY_SOCKET": notify.path, "PYTHONPATH": str(REPO)}
    with open(log, "ab") as out:
        proc = subprocess.Popen([*prefix, *SERVER, *args], stderr=out, env=env, cwd=REPO)
    try:
        notify.wait(proc, "READY=1", log)
        yield proc
        proc.send_signal(signal.SIGTERM)
        notify.wait(proc, "STOPPING=1", log)
        assert proc.wait(TIMEOUT) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        notify.close()
