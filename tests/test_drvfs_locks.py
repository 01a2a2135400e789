"""POSIX locks and flock through drvfs mounts, held on the server (drvfs/locks.py).

Each locker is a separate process driven line by line (tests/locker.py), since
POSIX locks belong to processes. Two mounts of one server stand for two
clients; a process locking the export's file on the host is a third.
"""

from __future__ import annotations

import errno
import fcntl
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .drvfs_harness import NEEDS_FUSE, PYTHON, MountProcess, drvfs_mount
from .locker import Locker

pytestmark = NEEDS_FUSE

EAGAIN = errno.EAGAIN
WR, RD, UN = fcntl.F_WRLCK, fcntl.F_RDLCK, fcntl.F_UNLCK


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(first mount, second mount of the same export, the export on the host)."""
    with drvfs_mount(tmp_path) as (one, server, _):
        two = tmp_path / "mnt2"
        two.mkdir()
        other = MountProcess(server.address, two, tmp_path / "drvfs2.log")
        try:
            other.start()
            (server.export / "f").write_bytes(bytes(100))
            yield one, two, server.export
        finally:
            other.stop()


@pytest.fixture
def lockers() -> Iterator[list[Locker]]:
    """Lockers made by the test; all stopped at teardown."""
    made: list[Locker] = []
    yield made
    for locker in made:
        locker.stop()


def test_posix_locks_exclude_other_processes_on_either_mount(
    mounts: tuple[Path, Path, Path], lockers: list[Locker]
) -> None:
    one, two, _ = mounts
    a, b, c = (Locker.start(lockers) for _ in range(3))
    fa, fb, fc = a.open(one / "f"), b.open(two / "f"), c.open(one / "f")
    assert a.setlk(fa, WR, 0, 10) == 0
    assert b.setlk(fb, WR, 5, 5) == EAGAIN  # another client
    assert c.setlk(fc, RD, 0, 1) == EAGAIN  # another process of the same mount
    assert b.setlk(fb, WR, 10, 10) == 0  # beside it
    assert b.getlk(fb, WR, 0, 0)[:3] == [WR, 0, 10]  # a's lock; b's own never conflicts
    assert a.getlk(fa, RD, 0, 10)[0] == UN
    assert a.setlk(fa, WR, 0, 5) == 0  # a process's locks merge and replace its own
    assert a.setlk(fa, UN, 0, 10) == 0
    assert c.setlk(fc, RD, 0, 1) == 0
    assert b.setlk(fb, RD, 0, 1) == 0  # read locks share


def test_a_host_process_and_a_mount_exclude_each_other(
    mounts: tuple[Path, Path, Path], lockers: list[Locker]
) -> None:
    one, _, export = mounts
    host, guest = Locker.start(lockers), Locker.start(lockers)
    fh, fg = host.open(export / "f"), guest.open(one / "f")
    assert host.setlk(fh, WR, 0, 0) == 0
    assert guest.setlk(fg, RD, 50, 1) == EAGAIN
    assert guest.getlk(fg, RD, 50, 1)[:3] == [WR, 0, 0]
    assert host.setlk(fh, UN, 0, 0) == 0
    assert guest.setlk(fg, WR, 0, 0) == 0
    assert host.setlk(fh, RD, 99, 1) == EAGAIN


def test_closing_any_descriptor_releases_the_process_locks(
    mounts: tuple[Path, Path, Path], lockers: list[Locker]
) -> None:
    one, two, _ = mounts
    a, b = Locker.start(lockers), Locker.start(lockers)
    first, second, fb = a.open(one / "f"), a.open(one / "f"), b.open(two / "f")
    assert a.setlk(first, WR, 0, 0) == 0
    assert b.setlk(fb, WR, 0, 0) == EAGAIN
    a.close(second)  # POSIX: any descriptor of the file
    assert b.setlk(fb, WR, 0, 0) == 0
    b.stop()  # and when the process ends
    c = Locker.start(lockers)
    assert c.setlk(c.open(two / "f"), WR, 0, 0) == 0


def test_a_close_releases_the_locks_of_its_file_only_and_each_time(
    mounts: tuple[Path, Path, Path], lockers: list[Locker]
) -> None:
    """pyfuse3 answers FLUSH itself where the closing process may hold no POSIX lock on the
    file (third_party/pyfuse3/fast-flush.patch): what it tracks is per file and per lock."""
    one, two, _ = mounts
    (one / "g").write_text("")
    a, b = Locker.start(lockers), Locker.start(lockers)
    af, ag = a.open(one / "f"), a.open(one / "g")
    bf, bg = b.open(two / "f"), b.open(two / "g")
    a.close(a.open(one / "f"))  # no lock yet: nothing to release
    assert a.setlk(af, WR, 0, 0) == 0 and a.setlk(ag, WR, 0, 0) == 0
    a.close(a.open(one / "f"))  # releases f's lock, not g's
    assert b.setlk(bf, WR, 0, 0) == 0
    assert b.setlk(bg, WR, 0, 0) == EAGAIN
    assert b.setlk(bf, UN, 0, 0) == 0
    assert a.setlk(af, WR, 0, 0) == 0  # locked again after a release
    a.close(a.open(one / "g"))
    assert b.setlk(bg, WR, 0, 0) == 0
    assert b.setlk(bf, WR, 0, 0) == EAGAIN
    a.close(a.open(one / "f"))
    assert b.setlk(bf, WR, 0, 0) == 0


def test_open_file_description_locks_go_with_the_open_file(
    mounts: tuple[Path, Path, Path], lockers: list[Locker]
) -> None:
    one, two, _ = mounts
    a, b = Locker.start(lockers), Locker.start(lockers)
    fa, fb = a.open(one / "f"), b.open(two / "f")
    assert a.setlk(fa, WR, 0, 0, ofd=True) == 0
    assert b.setlk(fb, WR, 0, 0) == EAGAIN
    a.close(fa)  # FUSE releases the file after close() returns: b waits for that
    assert b.setlk(fb, WR, 0, 0, wait=True) == 0


def test_setlkw_waits_until_the_lock_is_free(
    mounts: tuple[Path, Path, Path], lockers: list[Locker]
) -> None:
    one, two, _ = mounts
    a, b = Locker.start(lockers), Locker.start(lockers)
    fa, fb = a.open(one / "f"), b.open(two / "f")
    assert a.setlk(fa, WR, 0, 0) == 0
    b.send("setlk", fb, WR, 0, 0, True)
    assert not b.answered_within(0.5)  # still waiting (a slow answer cannot fail this)
    assert a.setlk(fa, UN, 0, 0) == 0
    assert b.answer() == 0
    assert a.setlk(fa, RD, 0, 0) == EAGAIN


def test_flock_excludes_other_open_files(
    mounts: tuple[Path, Path, Path], lockers: list[Locker]
) -> None:
    one, two, _ = mounts
    a, b = Locker.start(lockers), Locker.start(lockers)
    fa, fb = a.open(one / "f"), b.open(two / "f")
    assert a.flock(fa, fcntl.LOCK_SH) == 0
    assert b.flock(fb, fcntl.LOCK_SH | fcntl.LOCK_NB) == 0
    assert b.flock(fb, fcntl.LOCK_EX | fcntl.LOCK_NB) == EAGAIN
    b.send("flock", fb, fcntl.LOCK_EX)
    assert not b.answered_within(0.5)
    a.close(fa)  # the last descriptor of the open file: its flock lock goes
    assert b.answer() == 0
    assert a.flock(a.open(one / "f"), fcntl.LOCK_SH | fcntl.LOCK_NB) == EAGAIN


def test_flock_and_fcntl_locks_are_apart_as_on_linux(
    mounts: tuple[Path, Path, Path], lockers: list[Locker]
) -> None:
    one, _, export = mounts
    a, host = Locker.start(lockers), Locker.start(lockers)
    fa, fh = a.open(one / "f"), host.open(export / "f")
    assert a.setlk(fa, WR, 0, 0) == 0
    assert a.flock(fa, fcntl.LOCK_EX | fcntl.LOCK_NB) == 0  # the same process: both kinds
    assert host.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB) == EAGAIN  # flock meets flock
    assert host.setlk(fh, RD, 0, 0) == EAGAIN  # fcntl meets fcntl
    assert a.flock(fa, fcntl.LOCK_UN) == 0
    assert host.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB) == 0
    assert host.setlk(fh, RD, 0, 0) == EAGAIN


SQLITE_WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
for i in range(100):
    db.execute("BEGIN IMMEDIATE")
    n = db.execute("SELECT COUNT(*) FROM t").fetchone()[0]
    db.execute("INSERT INTO t VALUES (?, ?)", (sys.argv[2], n))
    db.execute("COMMIT")
db.close()
"""


def test_sqlite_writers_on_two_mounts(mounts: tuple[Path, Path, Path]) -> None:
    one, two, export = mounts
    with sqlite3.connect(one / "db.sqlite") as db:
        db.execute("CREATE TABLE t (who TEXT, seen INTEGER)")
    db.close()
    writers = [
        subprocess.Popen([PYTHON, "-c", SQLITE_WRITER, str(mnt / "db.sqlite"), name])
        for mnt, name in ((one, "one"), (two, "two"))
    ]
    assert [w.wait(120) for w in writers] == [0, 0]
    with sqlite3.connect(export / "db.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT seen FROM t ORDER BY rowid").fetchall()
    db.close()
    # each writer counted the rows under its lock: no two saw the same count
    assert [seen for (seen,) in rows] == list(range(200))
