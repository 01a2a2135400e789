"""drvfs `timeout=` against real processes: a stopped server (SIGSTOP) costs an operation
about `timeout=`, not that again for each request that follows, and the mount works again
after SIGCONT; a live server with a slow disk is never taken for a stopped one."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .drvfs_harness import NEEDS_FUSE, PYTHON, REPO, TIMEOUT, ServerProcess, drvfs_mount

pytestmark = NEEDS_FUSE

SILENCE = 3  # the mount's timeout=, in seconds
SLOW_FSYNC = 3 * SILENCE  # how long the slow server's fsync takes

# Opens a file on the mount, then at each line on stdin runs the next batch of operations,
# answering one JSON line per operation: [name, errno (0: success), seconds].
_OPERATOR = """
import json, os, sys, time
mnt = sys.argv[1]
fd = os.open(os.path.join(mnt, "data"), os.O_RDWR)
def read():
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # not from the page cache
    os.pread(fd, 1 << 16, 4 << 20)
OPS = {
    "read": read,
    "write": lambda: os.pwrite(fd, b"written while stopped", 0),
    "stat": lambda: os.stat(os.path.join(mnt, "never-seen")),
    "listdir": lambda: os.listdir(os.path.join(mnt, "dir")),
    "create": lambda: open(os.path.join(mnt, "new"), "w").close(),
    "fsync": lambda: os.fsync(fd),
}
print("ready", flush=True)
for line in sys.stdin:
    for name in line.split():
        start = time.monotonic()
        try:
            OPS[name]()
            code = 0
        except OSError as e:
            code = e.errno
        print(json.dumps([name, code, time.monotonic() - start]), flush=True)
"""


class _Operator:
    """A process with a file open on the mount, running operations when told."""

    def __init__(self, mountpoint: Path) -> None:
        self.proc = subprocess.Popen([PYTHON, "-c", _OPERATOR, str(mountpoint)], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def run(self, *names: str) -> list[tuple[str, int, float]]:
        """Run operations `names` in turn: (name, errno, seconds) of each."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(names) + "\n")
        self.proc.stdin.flush()
        return [tuple(json.loads(self._line())) for _ in names]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(TIMEOUT)


@contextmanager
def _operator(mountpoint: Path) -> Iterator[_Operator]:
    operator = _Operator(mountpoint)
    try:
        yield operator
    finally:
        operator.stop()


@contextmanager
def _stopped(server: ServerProcess) -> Iterator[None]:
    """The server process stopped (SIGSTOP): its sockets stay open, nothing answers."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.proc.send_signal(signal.SIGCONT)


def _wait_until_it_works(mnt: Path) -> list[str]:
    """The mount's listing, once the mount answers again (TIMEOUT: a hang guard)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return sorted(os.listdir(mnt))
        except OSError as e:
            if e.errno != errno.ENOTCONN or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_stopped_server_fails_operations_within_the_timeout_then_recovers(
    tmp_path: Path,
) -> None:
    with drvfs_mount(tmp_path, f"timeout={SILENCE}") as (mnt, server, mount):
        data = os.urandom(8 << 20)
        (mnt / "data").write_bytes(data)
        (mnt / "dir").mkdir()
        with _operator(mnt) as operator:
            with _stopped(server):
                start = time.monotonic()
                done = operator.run("read", "write", "stat", "listdir", "create", "fsync")
                elapsed = time.monotonic() - start
            print(done, f"{elapsed:.1f} s", sep="\n")
            assert [code for _, code, _ in done] == [errno.ENOTCONN] * len(done), done
            # The silence is paid once, not again by each: that would take SILENCE each.
            assert elapsed < len(done) * SILENCE, done
            assert f"the server did not answer for {SILENCE} s" in mount.log()

            assert _wait_until_it_works(mnt) == ["data", "dir"]
            again = operator.run("read", "write", "fsync")  # the open file, reopened
            assert [code for _, code, _ in again] == [0, 0, 0], again
        assert "reconnected" in mount.log()
        assert (server.export / "data").read_bytes()[:21] == b"written while stopped"
        (mnt / "new").write_text("after the stop")
        assert (server.export / "new").read_text() == "after the stop"


class _SlowFsyncServer(ServerProcess):
    """A live server whose fsync of files named slow* takes SLOW_FSYNC s (tests/slow_server)."""

    def command(self) -> list[str]:
        return [PYTHON, "-m", "tests.slow_server", str(self.export), self.address,
                str(SLOW_FSYNC)]  # fmt: skip


def test_a_slow_fsync_on_a_live_server_is_not_cut_short(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, f"timeout={SILENCE}", _SlowFsyncServer) as (mnt, server, mount):
        code = (
            "import os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)\n"
            "os.write(fd, b'record')\n"
            "start = time.monotonic()\n"
            "os.fsync(fd)\n"
            "print(time.monotonic() - start)\n"
        )
        child = [PYTHON, "-c", code, str(mnt / "slow.db")]
        done = subprocess.run(child, capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)
        assert done.returncode == 0, done.stderr  # the fsync succeeded
        assert float(done.stdout) >= SLOW_FSYNC > SILENCE  # it waited past timeout=
        assert "connection lost" not in mount.log() and "reconnected" not in mount.log()
        assert (server.export / "slow.db").read_bytes() == b"record"
