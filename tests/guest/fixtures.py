"""pytest fixtures for the Linux-kernel-client tests (QEMU guest mounting a 9P server).

Import them into ``tests/conftest.py``::

    from guest.fixtures import guest_runner, p9_server_factory  # noqa: F401

``guest_runner`` boots one guest per (server, mount-option set) running the
standard workloads, at most ``$NINEP_GUEST_JOBS`` (default 2) at a time, and
hands out the results. Set ``NINEP_GUEST_SKIP=1`` to skip every guest test.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .hostside import TarMember, build_tar, tar_members
from .servers import SERVERS, Server
from .vm import GuestRun, kill_all_guests, load_workload, run_guest

#: Mount option sets every server is tested with (added to trans=tcp,version=9p2000.L).
MOUNT_OPTION_SETS: dict[str, str] = {
    "none-64k": "msize=65536,cache=none",
    "loose-1m": "msize=1048576,cache=loose",
}

#: Servers the guest tests run against (see servers.SERVERS).
GUEST_SERVERS: tuple[str, ...] = ("diod", "ninep")

#: The workloads (workloads/<name>.sh) one standard boot runs, in order.
STANDARD_WORKLOADS: tuple[str, ...] = ("basic", "xattr", "locks", "git", "bigfile", "tar")

#: Name of the tar archive the host puts at the root of the export before boot.
TAR_INPUT = "input.tar"

#: Time limit of one standard boot (seconds).
BOOT_TIMEOUT = float(os.environ.get("NINEP_GUEST_TIMEOUT", "900"))


@dataclass
class GuestResult:
    """A standard guest run against one server with one mount-option set."""

    server: str
    options: str
    export: Path
    tar_members: dict[str, TarMember]
    run: GuestRun | None = None
    error: str | None = None  # why there is no run (e.g. the server did not start)
    server_log: str = ""
    server_survived: bool = True  # the server was still running when the guest finished
    console_log: Path | None = None

    def describe(self, lines: int = 60) -> str:
        """Everything useful for an assertion message: guest console and server log tails."""
        parts = [f"[{self.server} / {self.options}: {MOUNT_OPTION_SETS[self.options]}]"]
        if self.error:
            parts.append(f"error: {self.error}")
        if self.run is not None:
            parts.append(self.run.describe(lines))
        if self.server_log:
            log_tail = "\n".join(self.server_log.splitlines()[-25:])
            parts.append(f"--- {self.server} log (tail) ---\n{log_tail}")
        return "\n".join(parts)

    def require_run(self) -> GuestRun:
        """Return the run, failing the test if the guest never ran."""
        if self.run is None:
            pytest.fail(f"no guest run:\n{self.describe()}", pytrace=False)
        return self.run


def run_standard(server: str, options: str, workdir: Path) -> GuestResult:
    """Start ``server`` on a fresh export, boot the guest with the standard workloads."""
    export = workdir / "export"
    export.mkdir(parents=True)
    members = tar_members()
    (export / TAR_INPUT).write_bytes(build_tar(members))
    result = GuestResult(
        server=server,
        options=options,
        export=export,
        tar_members=members,
        console_log=workdir / "console.log",
    )
    try:
        srv = SERVERS[server](export, workdir / "server.log")
    except Exception as exc:  # the server may not exist yet or may fail to start
        result.error = f"{server} did not start: {exc}"
        log = workdir / "server.log"
        result.server_log = log.read_text(errors="replace") if log.exists() else ""
        return result
    try:
        result.run = run_guest(
            load_workload(*STANDARD_WORKLOADS),
            srv.port,
            MOUNT_OPTION_SETS[options],
            aname=srv.aname,
            timeout=BOOT_TIMEOUT,
            console_log=result.console_log,
        )
    except Exception:
        result.error = traceback.format_exc()
    finally:
        result.server_survived = srv.alive()
        srv.stop()
        result.server_log = srv.log.read_text(errors="replace")
    return result


@dataclass
class GuestRunner:
    """Runs standard guest boots in the background, each once, and hands out results."""

    base: Path
    jobs: int = 2
    _pool: ThreadPoolExecutor | None = None
    _futures: dict[tuple[str, str], Future[GuestResult]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Queue runs for ``(server, options)`` keys not started yet, in the given order."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="guest")
            for key in keys:
                if key not in self._futures:
                    workdir = self.base / f"{key[0]}-{key[1]}"
                    self._futures[key] = self._pool.submit(run_standard, *key, workdir)

    def get(self, server: str, options: str) -> GuestResult:
        """Return the result for one key, starting (and waiting for) its run if needed."""
        self.prefetch([(server, options)])
        return self._futures[(server, options)].result()

    def close(self) -> None:
        """Drop queued runs and kill guests still running."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        kill_all_guests()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def skip_if_guests_disabled() -> None:
    """Skip the calling test when NINEP_GUEST_SKIP=1 (the guest tests take minutes)."""
    if os.environ.get("NINEP_GUEST_SKIP") == "1":
        pytest.skip("NINEP_GUEST_SKIP=1: guest tests disabled by the environment")


@pytest.fixture(scope="session")
def guest_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestRunner]:
    """Session-wide runner of standard guest boots (skipped if NINEP_GUEST_SKIP=1)."""
    skip_if_guests_disabled()
    jobs = max(1, int(os.environ.get("NINEP_GUEST_JOBS", "2")))
    runner = GuestRunner(base=tmp_path_factory.mktemp("guest"), jobs=jobs)
    yield runner
    runner.close()


@pytest.fixture
def p9_server_factory(tmp_path: Path) -> Iterator[Callable[[str, Path], Server]]:
    """Start 9P servers by name (``"diod"``, ``"ninep"``) on an export; stopped at teardown."""
    started: list[Server] = []

    def start(name: str, export: Path) -> Server:
        server = SERVERS[name](export, tmp_path / f"{name}-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
