"""A process that takes locks when told: POSIX locks belong to processes, so tests drive several.

`Locker.start()` spawns `python -m tests.locker`, which reads one JSON command
per line (`[name, *args]`) and answers one JSON value per line: a descriptor
number, an errno (0: success) or a lock as [type, start, length, pid].
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from .drvfs_harness import PYTHON, TIMEOUT

REPO = Path(__file__).resolve().parent.parent
_FLOCK = struct.Struct("hhqqi4x")  # struct flock on 64-bit Linux


class Locker:
    """The test's side of one locking process."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    @classmethod
    def start(cls, registry: list[Locker]) -> Locker:
        """A new locking process, added to `registry` (which the test stops at teardown)."""
        proc = subprocess.Popen(
            [PYTHON, "-m", "tests.locker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        locker = cls(proc)
        registry.append(locker)
        return locker

    def send(self, *command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def answered_within(self, seconds: float) -> bool:
        """Whether an answer is ready within `seconds` (for a command that should wait)."""
        assert self.proc.stdout is not None
        return bool(select.select([self.proc.stdout], [], [], seconds)[0])

    def answer(self) -> Any:
        assert self.proc.stdout is not None
        assert self.answered_within(TIMEOUT), "the locker did not answer"
        line = self.proc.stdout.readline()
        assert line, f"the locker died (exit {self.proc.wait(TIMEOUT)})"
        return json.loads(line)

    def call(self, *command: Any) -> Any:
        self.send(*command)
        return self.answer()

    def open(self, path: Path) -> int:
        fd = self.call("open", str(path))
        assert isinstance(fd, int) and fd >= 0
        return fd

    def close(self, fd: int) -> None:
        assert self.call("close", fd) == 0

    def setlk(
        self, fd: int, kind: int, start: int, length: int, wait: bool = False, ofd: bool = False
    ) -> int:
        return int(self.call("setlk", fd, kind, start, length, wait, ofd))

    def getlk(self, fd: int, kind: int, start: int, length: int) -> list[int]:
        return list(self.call("getlk", fd, kind, start, length))

    def flock(self, fd: int, op: int) -> int:
        return int(self.call("flock", fd, op))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


# ---- the locking process ----


def _errno_of(fn: Any, *args: Any) -> int:
    try:
        fn(*args)
    except OSError as e:
        return e.errno or errno.EIO
    return 0


def _setlk(
    fd: int, kind: int, start: int, length: int, wait: bool = False, ofd: bool = False
) -> int:
    if ofd:
        cmd = fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK
    else:
        cmd = fcntl.F_SETLKW if wait else fcntl.F_SETLK
    return _errno_of(fcntl.fcntl, fd, cmd, _FLOCK.pack(kind, os.SEEK_SET, start, length, 0))


def _getlk(fd: int, kind: int, start: int, length: int) -> list[int]:
    reply = fcntl.fcntl(fd, fcntl.F_GETLK, _FLOCK.pack(kind, os.SEEK_SET, start, length, 0))
    got_kind, _, got_start, got_length, pid = _FLOCK.unpack(reply)
    return [got_kind, got_start, got_length, pid]


_COMMANDS: dict[str, Any] = {
    "open": lambda path: os.open(path, os.O_RDWR),
    "close": lambda fd: _errno_of(os.close, fd),
    "setlk": _setlk,
    "getlk": _getlk,
    "flock": lambda fd, op: _errno_of(fcntl.flock, fd, op),
}


def main() -> None:
    for line in sys.stdin:
        name, *args = json.loads(line)
        print(json.dumps(_COMMANDS[name](*args)), flush=True)


if __name__ == "__main__":
    main()
