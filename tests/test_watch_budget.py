"""The watch budget (docs/operations.md): a real `ninep-server` in a user namespace of its
own whose inotify watch limit is low, so that no real user's watches are spent."""

from __future__ import annotations

import errno
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from ninep import stats
from ninep.client import connect
from ninep.constants import NOTIFY_COVERED

from .test_cli import SERVER
from .test_notify import Collector, until

LIMIT = 40  # the namespace's max_inotify_watches
SHARE = 0.25
BUDGET = 10  # SHARE of LIMIT
DIRS = 2 * BUDGET  # directories of the export a client walks to

#: In a namespace of its own: lower the limit, then run the rest of the command line.
IN_NAMESPACE = [
    "unshare", "--user", "--map-root-user", "sh", "-c",
    f'echo {LIMIT} > /proc/sys/user/max_inotify_watches && exec "$@"', "sh",
]  # fmt: skip

#: Another program of the same user: watches each directory given until the kernel
#: refuses; prints how many it got and the errno that stopped it (0: none did).
OTHER_PROGRAM = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
fd, added, error = libc.inotify_init1(0), 0, 0
for path in sys.argv[1:]:
    if libc.inotify_add_watch(fd, path.encode(), 2) < 0:
        error = ctypes.get_errno()
        break
    added += 1
print(added, error)
"""


def _namespaces() -> bool:
    return subprocess.run([*IN_NAMESPACE, "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces(), reason="needs user namespaces (unshare)")


async def _walk(sock: Path, names: list[str]) -> list[bool]:
    """Subscribe to the export's changes, walk to each of `names`: whether each is covered
    (the root is, first: it takes one watch)."""
    async with connect(f"unix:{sock}") as client:
        root = await client.attach("C")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(Collector().run, root)
            covered = False
            with trio.move_on_after(10):
                while not covered:  # the root is watched once the Tnotify is in
                    covered = bool((await root.getattr()).valid & NOTIFY_COVERED)
            assert covered, "the root is covered"
            walked = [bool((await root.walk_getattr(n))[1].valid & NOTIFY_COVERED) for n in names]
            nursery.cancel_scope.cancel()
    return walked


async def _other_program(server: subprocess.Popen[bytes], dirs: list[Path]) -> tuple[int, int]:
    """`OTHER_PROGRAM` as uid 0 of `server`'s namespace: the same user, counted together."""
    cmd = ["nsenter", "--user", f"--target={server.pid}", sys.executable, "-c", OTHER_PROGRAM]
    done = await trio.run_process([*cmd, *map(str, dirs)], capture_stdout=True)
    added, error = map(int, done.stdout.split())
    return added, error


async def test_past_the_budget_directories_are_uncovered_and_the_rest_stays_the_users(
    tmp_path: Path,
) -> None:
    export = tmp_path / "c"
    names = [f"d{i:02}" for i in range(DIRS)]
    for name in names:
        (export / name).mkdir(parents=True)
    spare = [tmp_path / "spare" / str(i) for i in range(LIMIT)]
    for d in spare:
        d.mkdir(parents=True)
    sock, stats_sock, log = tmp_path / "9p.sock", tmp_path / "stats.sock", tmp_path / "log"
    cmd = [*IN_NAMESPACE, *SERVER, "--export", f"C={export}", "--listen", f"unix:{sock}",
           "--stats", str(stats_sock), "--watch-share", str(SHARE), "-v"]  # fmt: skip
    with log.open("wb") as err:
        server = subprocess.Popen(cmd, stderr=err)
    try:
        await until(lambda: "listening on" in log.read_text(), "the server listens")
        walked = await _walk(sock, names)
        # the connection is closed: the watches stay until the directories go
        assert walked == [True] * (BUDGET - 1) + [False] * (DIRS - BUDGET + 1)
        watch = stats.read(str(stats_sock))["exports"]["C"]["watch"]
        refused = DIRS - BUDGET + 1
        assert watch == {"watches": BUDGET, "overflows": 0, "refused": refused,
                         "budget": BUDGET, "budget_used": BUDGET, "user_limit": LIMIT}  # fmt: skip
        # while the server holds its watches, the rest of the limit is the user's, up to
        # the limit itself (ENOSPC)
        assert await _other_program(server, spare) == (LIMIT - BUDGET, errno.ENOSPC)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    told = re.findall(r".*served uncovered.*", log.read_text())
    assert len(told) == 1, told
    assert f"export {export}: the watch budget is spent" in told[0]
