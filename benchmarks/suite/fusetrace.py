"""The FUSE requests the kernel sends one mount, counted by its `fuse_request_send`
tracepoint in a tracefs instance of this process's own (its own ring buffer: other
tracing on the machine is left alone). Needs tracefs mounted and writable (root)."""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

TRACEFS = Path("/sys/kernel/tracing")
EVENT = Path("events/fuse/fuse_request_send")
BUFFER_KB = 4096  # per CPU: about 100,000 events
_OPCODE = re.compile(rb"opcode \d+ \((\w+)\)")


class FuseRequests:
    """The requests of one FUSE connection since the last `clear`, by opcode name."""

    def __init__(self, instance: Path) -> None:
        self._instance = instance

    def clear(self) -> None:
        (self._instance / "trace").write_text("")

    def counts(self) -> Counter[str]:
        text = (self._instance / "trace").read_bytes()
        return Counter(m.decode().removeprefix("FUSE_") for m in _OPCODE.findall(text))


def kernel_dev(st_dev: int) -> int:
    """The kernel's dev_t (the tracepoint's `connection`) of a userspace st_dev."""
    return os.major(st_dev) << 20 | os.minor(st_dev)


@contextlib.contextmanager
def fuse_requests(mountpoint: Path) -> Iterator[FuseRequests | None]:
    """Count the FUSE requests to the mount on `mountpoint` while in the block; None where
    it is no FUSE mount or the tracepoint cannot be used."""
    if not (TRACEFS / EVENT).is_dir() or not _is_fuse(mountpoint):
        yield None
        return
    instance = TRACEFS / "instances" / f"ninep-bench-{os.getpid()}"
    try:
        instance.mkdir()
    except OSError:
        yield None
        return
    event = instance / EVENT
    try:
        (instance / "buffer_size_kb").write_text(str(BUFFER_KB))
        (event / "filter").write_text(f"connection == {kernel_dev(os.stat(mountpoint).st_dev)}")
        (event / "enable").write_text("1")
        yield FuseRequests(instance)
    finally:
        with contextlib.suppress(OSError):
            (event / "enable").write_text("0")
        instance.rmdir()


def _is_fuse(mountpoint: Path) -> bool:
    """Whether a FUSE filesystem is mounted on `mountpoint` (from mountinfo)."""
    where = os.path.realpath(mountpoint)
    with open("/proc/self/mountinfo") as f:
        types = [line.split(" - ")[1].split()[0] for line in f if line.split()[4] == where]
    return bool(types) and types[-1].startswith("fuse")
