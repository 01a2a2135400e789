"""What the benchmarks share: timing, a server subprocess, and the table of figures."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass


@dataclass
class Row:
    """One figure measured two ways, `a` and `b`, compared as a / b."""

    name: str
    unit: str
    a: float
    b: float

    @property
    def ratio(self) -> float:
        return self.a / self.b if self.b else float("nan")


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


async def timed(fn: Callable[[], Awaitable[None]]) -> float:
    """Seconds `fn` takes."""
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


def host_timed(fn: Callable[[], object]) -> float:
    """Seconds the blocking `fn` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def start_server(export: str, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """`ninep-server` exporting `export` as "C" (with `options`) on a free port; its address."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ninep", "--allow-root", "--export", f"C={export}", "-v",
         "--listen", "tcp:127.0.0.1:0", *options],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    text = b""
    while not (found := re.search(rb"listening on (\S+)", text)):
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError(f"ninep-server did not start:\n{text.decode()}")
        text += line
    return proc, found.group(1).decode()


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait()


def table(rows: Sequence[Row], a: str, b: str, digits: int = 0) -> str:
    """A markdown table of `rows`: columns `a` and `b` and their ratio."""
    ratio = f"{a}/{b}"
    w, aw, bw, rw = (
        max(28, *(len(r.name) for r in rows)),
        max(10, len(a)),
        max(10, len(b)),
        max(7, len(ratio)),
    )
    lines = [
        f"| {'operation':<{w}} | {'unit':<7} | {a:>{aw}} | {b:>{bw}} | {ratio:>{rw}} |",
        "|" + "|".join("-" * (n + 2) for n in (w, 7, aw, bw, rw)) + "|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name:<{w}} | {r.unit:<7} | {r.a:>{aw}.{digits}f} | {r.b:>{bw}.{digits}f} "
            f"| {r.ratio:>{rw}.3f} |"
        )
    return "\n".join(lines)
