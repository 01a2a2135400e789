"""A real `ninep-server` and a real drvfs FUSE mount, as subprocesses, for the drvfs tests.

Readiness is never guessed: the server is ready when its log says "listening
on", the mount when drvfs writes "ok" on its --ready-fd (after the kernel's
INIT). Teardown unmounts (SIGTERM, which drvfs answers by unmounting), falls
back to a lazy umount, and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from ninep import messages as m
from ninep import stats

#: Tests that mount a FUSE filesystem need the device and root (CI has both).
NEEDS_FUSE = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or os.geteuid() != 0, reason="needs /dev/fuse and root"
)

PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60  # seconds for a process to start or stop; a hang fails the test


class ServerProcess:
    """`python -m ninep` exporting `export` as C on a unix socket."""

    def __init__(self, export: Path, socket_path: Path) -> None:
        self.export = export
        self.socket_path = socket_path
        self.address = f"unix:{socket_path}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: list[str] = []

    def command(self) -> list[str]:
        """The server's command line (run from the repository)."""
        return [PYTHON, "-m", "ninep", "--allow-root", "--export", f"C={self.export}", "-v",
                "--listen", self.address]  # fmt: skip

    def start(self) -> None:
        self.proc = proc = subprocess.Popen(self.command(), stderr=subprocess.PIPE, cwd=REPO)
        listening = threading.Event()
        threading.Thread(target=self._drain, args=(proc, listening), daemon=True).start()
        if not listening.wait(TIMEOUT) or proc.poll() is not None:
            self.stop()
            raise RuntimeError("the server did not start:\n" + "".join(self.log))

    def _drain(self, proc: subprocess.Popen[bytes], listening: threading.Event) -> None:
        """Keep reading the server's log (a full pipe would stop it); note when it listens."""
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace")
            self.log.append(line)
            if "listening on" in line:
                listening.set()
        listening.set()  # it exited: start() sees that

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing anything itself."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(TIMEOUT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(TIMEOUT)


QUIET_READS = 5  # the same figures read this many times, 50 ms apart: the mount is quiet


class StatsServer(ServerProcess):
    """The server with a --stats socket beside its 9P socket (`ninep.stats`)."""

    def command(self) -> list[str]:
        return [*super().command(), "--stats", str(self.stats_path)]

    @property
    def stats_path(self) -> Path:
        return self.socket_path.with_suffix(".stats")

    def total(self) -> stats.TotalFigures:
        """The server's figures over all connections (docs/operations.md)."""
        return stats.read(str(self.stats_path))["total"]

    def watches(self) -> int:
        """The inotify watches the export holds: one at least once a mount asked for changes
        (its Tnotify watches the root before it subscribes)."""
        return int(stats.read(str(self.stats_path))["exports"]["C"]["watch"]["watches"])

    def requests(self) -> Counter[str]:
        """Requests served so far by message name, once the mount is quiet (clunks that
        follow an operation in the background counted: the kernel sends a release after
        close(2) returns), the pending Tnotify apart."""
        last: Counter[str] = Counter()
        same = -1  # the first read compares with nothing
        while same < QUIET_READS:
            time.sleep(0.05)
            now = Counter(self.total()["requests"])
            for waiting in m.NOTIFIES:
                now.pop(waiting.__name__, None)
            same = same + 1 if now == last else 0
            last = now
        return last


class MountProcess:
    """`python -m drvfs mount --foreground` of export C (or of the attach name `aname`,
    sent as is) on `mountpoint`."""

    def __init__(
        self,
        address: str,
        mountpoint: Path,
        log_path: Path,
        options: str = "",
        aname: str | None = None,
    ) -> None:
        self.address = address
        self.mountpoint = mountpoint
        self.log_path = log_path
        self.options = options
        self.aname = aname
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        command = [PYTHON, "-m", "drvfs", "mount", "--foreground", "--ready-fd", str(write_fd),
                   "--server", self.address, "-v"]  # fmt: skip
        if self.options:
            command += ["-o", self.options]
        export = ["C:"] if self.aname is None else ["--aname", "--", self.aname]
        command += [*export, str(self.mountpoint)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, stderr=log, pass_fds=(write_fd,))
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            answer = _read_all(pipe, TIMEOUT).decode().strip()
        if answer != "ok":
            self.stop()
            raise RuntimeError(f"drvfs did not mount ({answer!r}):\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        """Unmount (SIGTERM) and wait; a lazy umount and SIGKILL if that fails. The exit code."""
        proc, code = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(TIMEOUT)
        elif proc is not None:
            code = proc.returncode
        if is_mounted(self.mountpoint):
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False)
        return code


def _read_all(pipe: BinaryIO, timeout: float) -> bytes:
    """Everything until end of file, or what came within `timeout` seconds (a hang guard)."""
    data = b""
    while select.select([pipe], [], [], timeout)[0]:
        chunk = os.read(pipe.fileno(), 4096)
        if not chunk:
            break
        data += chunk
    return data


def is_mounted(path: Path) -> bool:
    """Whether something is mounted on `path` (read from mountinfo: never touches `path`)."""
    target = os.path.realpath(path.parent) + "/" + path.name
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return any(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), p) == target for p in points)


def in_mount_namespace(
    script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`sh -euc SCRIPT sh ARGS...` in a private mount namespace (util-linux's unshare): what it
    binds or mounts over /sbin, /dev or /usr/local no other process sees. A FUSE mount it
    makes lives on with its drvfs process (which holds the namespace): the script unmounts."""
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-euc", script, "sh", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env)


@contextlib.contextmanager
def short_dir() -> Iterator[Path]:
    """A directory with a short path (a unix socket path must fit in 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="drvfs-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def server_alone(export: Path) -> Iterator[ServerProcess]:
    """A server of `export` (made if missing) on a socket of its own, for tests that mount
    by themselves; stopped on exit."""
    export.mkdir(exist_ok=True)
    with short_dir() as sockets:
        server = ServerProcess(export, sockets / "9p.sock")
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def drvfs_mount(
    tmp_path: Path,
    options: str = "",
    server_class: type[ServerProcess] = ServerProcess,
    export: Path | None = None,
) -> Iterator[tuple[Path, ServerProcess, MountProcess]]:
    """Serve a fresh export (or the directory `export`) with a `server_class` process and
    mount it; yields (mountpoint, server, mount).

    On exit the mount is gone and both processes have ended, whatever happened.
    """
    mountpoint = tmp_path / "mnt"
    if export is None:
        export = tmp_path / "export"
        export.mkdir()
    mountpoint.mkdir()
    with short_dir() as sockets:
        server = server_class(export, sockets / "9p.sock")
        mount = MountProcess(server.address, mountpoint, tmp_path / "drvfs.log", options)
        try:
            server.start()
            mount.start()
            yield mountpoint, server, mount
        finally:
            try:
                mount.stop()
            finally:
                server.stop()
                print(f"--- drvfs log\n{mount.log()}--- server log\n{''.join(server.log)}")
            assert not is_mounted(mountpoint), "the mount outlived its test"
