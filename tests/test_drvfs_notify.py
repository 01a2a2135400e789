"""drvfs with change notification (issue 16): long caching in covered directories, kept
true by the server's changes; real FUSE mounts of a real server.

No expiry can make these pass: what is covered is cached for an hour, and what is
not for no time at all (`attr_timeout=0,entry_timeout=0`), so a repeated stat that
makes no request shows the long cache at work, and a host change seen through the
mount shows its invalidation. Changes are awaited with a deadline, never timed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import signal
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ninep import stats
from ninep.messages import NOTIFIES

from .drvfs_harness import NEEDS_FUSE, MountProcess, ServerProcess, StatsServer, drvfs_mount
from .passthrough_fs import mounted_passthrough

pytestmark = NEEDS_FUSE

HOUR = "covered_timeout=3600,attr_timeout=0,entry_timeout=0"
DEADLINE = 60.0  # seconds for a host change to reach the mount: a hang guard, not a measure


def until(predicate: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll `predicate` until it holds; fail with `what` past `deadline` seconds."""
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"not within {deadline} s: {what}")
        time.sleep(0.005)


LOOKUPS = ("Twalk", "Twalkgetattr", "Tgetattr", "Treaddirattr")  # what a stat may cost


def served(server: StatsServer) -> Counter[str]:
    """Requests of the kinds a stat makes that the server served (not the clunks that
    follow in the background, nor the pending Tnotify)."""
    counts = server.requests()
    return Counter({k: counts[k] for k in LOOKUPS})


def cached(server: StatsServer, look: Callable[[], object]) -> bool:
    """Whether `look` (done twice) is answered the second time without a request."""
    look()
    before = served(server)
    look()
    return served(server) == before


def _mode(path: Path, mode: int) -> None:
    """chmod on the host of an export with metadata: the stored mode (docs/metadata.md)."""
    os.setxattr(path, "user.virtfs.mode", struct.pack("<I", mode))


def test_host_changes_reach_a_mount_that_caches_them_for_an_hour(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, f"metadata,{HOUR}", StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        host = server.export / "d"
        host.mkdir()
        for name in ("a", "b", "c"):
            (host / name).write_text("one")
        d = mnt / "d"
        files = [d / "a", d / "b", d / "c"]

        def look() -> None:
            for f in [d, *files]:
                os.stat(f)

        until(lambda: cached(server, look), "d and its files cached (covered)")
        old_dir = os.stat(d)

        (host / "new").write_text("made on the host")
        until(lambda: os.stat(d).st_mtime_ns != old_dir.st_mtime_ns, "d's new mtime")
        assert (d / "new").read_text() == "made on the host"

        (host / "a").write_text("longer content")
        until(lambda: os.stat(d / "a").st_size == len("longer content"), "a's new size")
        assert (d / "a").read_text() == "longer content"

        os.rename(host / "b", host / "b2")
        until(lambda: not (d / "b").exists(), "b renamed away")
        assert (d / "b2").read_text() == "one"

        os.unlink(host / "c")
        until(lambda: not (d / "c").exists(), "c removed")
        assert sorted(os.listdir(d)) == ["a", "b2", "new"]

        _mode(host / "a", 0o100600)
        until(lambda: os.stat(d / "a").st_mode == 0o100600, "a's new mode")
        ctime = os.stat(d / "a").st_ctime_ns
        os.setxattr(host / "a", "user.note", b"host")
        until(lambda: os.stat(d / "a").st_ctime_ns != ctime, "a's new ctime (xattr)")
        assert os.getxattr(d / "a", "user.note") == b"host"

        assert cached(server, lambda: os.stat(d / "a"))  # cached again, for long


def test_a_directory_listed_but_never_entered_is_not_cached_for_long(tmp_path: Path) -> None:
    """A subdirectory listed in a covered directory is not watched itself until entered:
    what changes inside it (its mtime, its link count) would not be reported, so its
    attributes are not cached for long until they come marked covered."""
    with drvfs_mount(tmp_path, HOUR, StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        (server.export / "top" / "sub").mkdir(parents=True)
        top = mnt / "top"
        until(lambda: cached(server, lambda: os.stat(top)), "top cached (covered)")
        os.listdir(top)  # READDIRPLUS: sub's attributes, before the server watches sub
        before = os.stat(top / "sub")
        (server.export / "top" / "sub" / "inner").mkdir()  # sub's mtime and links change
        until(lambda: os.stat(top / "sub").st_nlink == before.st_nlink + 1, "sub's new links")


def test_a_write_through_another_link_is_seen(tmp_path: Path) -> None:
    """A file with more than one link keeps the short attribute timeout in a covered
    directory: a write through a link in another directory (outside the export, or in
    one of its directories) is reported only there, so only a new getattr shows it."""
    with drvfs_mount(tmp_path, HOUR, StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        host = server.export
        (host / "d").mkdir()
        (host / "e").mkdir()
        (host / "d" / "f").write_text("one")
        (host / "d" / "single").write_text("one")
        (tmp_path / "outside").mkdir()
        os.link(host / "d" / "f", tmp_path / "outside" / "f")
        os.link(host / "d" / "f", host / "e" / "g")
        f, single = mnt / "d" / "f", mnt / "d" / "single"
        os.listdir(mnt / "e")  # e is watched: its changes are reported, of g too
        until(lambda: cached(server, lambda: os.stat(single)), "d covered, single cached")
        assert os.stat(f).st_nlink == 3
        assert not cached(server, lambda: os.stat(f))  # attr_timeout=0: asked each time
        for writer, text in ((tmp_path / "outside" / "f", "two!"), (host / "e" / "g", "three")):
            with open(writer, "a") as w:
                w.write(text)
            size = os.stat(writer).st_size
            until(lambda: os.stat(f).st_size == size, f"the write through {writer}")  # noqa: B023
        assert f.read_text() == "onetwo!three"


@contextmanager
def second_mount(tmp_path: Path, server: ServerProcess) -> Iterator[Path]:
    """Another drvfs mount of `server`'s export, beside the first; unmounted at the end."""
    other = tmp_path / "other"
    other.mkdir()
    second = MountProcess(server.address, other, tmp_path / "other.log", HOUR)
    second.start()
    try:
        yield other
    finally:
        second.stop()
        print(f"--- second drvfs log\n{second.log()}")


def test_two_mounts_of_one_export_see_each_other(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, HOUR) as (one, server, _), second_mount(tmp_path, server) as other:
        (one / "f").write_text("first")
        assert (other / "f").read_text() == "first"  # cached by the second mount
        os.stat(other / "f")
        for i in range(10):
            text = f"written through the first mount, round {i}" + "!" * i
            with open(one / "f", "w") as f:
                f.write(text)
            assert (other / "f").read_text() == text  # close-to-open: at once
        os.rename(one / "f", one / "g")
        assert (other / "g").read_text().startswith("written")
        until(lambda: not (other / "f").exists(), "the old name gone from the other mount")
        (other / "h").write_text("back")
        assert (one / "h").read_text() == "back"


def _held_while_removed(holder: Path, remover: Path) -> None:
    """`holder` keeps f open while `remover` unlinks it."""
    fd = os.open(holder / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"held open")
        os.unlink(remover / "f")
        until(lambda: not (holder / "f").exists(), "the name gone from the holder")
        until(lambda: os.fstat(fd).st_nlink == 0, "nlink 0 through the descriptor")
        assert os.pread(fd, 100, 0) == b"held open"
        os.pwrite(fd, b"H", 0)
        assert os.fstat(fd).st_size == 9 and os.pread(fd, 4, 0) == b"Held"
    finally:
        os.close(fd)


def test_an_open_file_outlives_its_name_in_another_mount(tmp_path: Path) -> None:
    """One mount removes or replaces a name another holds open: the other sees the name
    gone (or the new file), and its descriptor keeps the file it opened."""
    with drvfs_mount(tmp_path, HOUR) as (one, server, _), second_mount(tmp_path, server) as other:
        _held_while_removed(one, other)
        _held_while_removed(other, one)
        with open(one / "g", "w+b") as f:
            f.write(b"old")
            f.flush()
            (other / "new").write_bytes(b"replacement")
            os.rename(other / "new", other / "g")
            until(lambda: (one / "g").read_bytes() == b"replacement", "the new file seen")
            f.seek(0)
            assert f.read() == b"old" and os.fstat(f.fileno()).st_nlink == 0
        assert sorted(os.listdir(one)) == sorted(os.listdir(other)) == ["g"]


def test_an_overflow_drops_every_cache_and_the_server_stays_bounded(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, HOUR, StatsServer) as (mnt, server, mount):
        assert isinstance(server, StatsServer)
        (server.export / "keep").write_text("unchanged")
        (server.export / "flood").mkdir()
        (server.export / "flood" / "first").touch()
        assert os.listdir(mnt / "flood") == ["first"]
        until(lambda: cached(server, lambda: os.stat(mnt / "keep")), "keep cached")
        assert mount.proc is not None
        os.kill(mount.proc.pid, signal.SIGSTOP)  # a client too slow to collect its changes
        try:
            queued = []
            for i in range(6000):
                (server.export / "flood" / f"f{i}").touch()
                if i % 500 == 0:
                    queued.append(_queued(server))
            queued.append(_queued(server))
        finally:
            os.kill(mount.proc.pid, signal.SIGCONT)
        assert max(queued) <= 4096  # Limits.changes: then an overflow, nothing more held
        until(lambda: "(overflow): dropped" in mount.log(), "the overflow reached drvfs")
        before = served(server)
        os.stat(mnt / "keep")
        assert served(server) != before  # dropped, though cached for an hour
        names = sorted(os.listdir(mnt / "flood"))
        assert names == sorted(["first", *(f"f{i}" for i in range(6000))])
        until(lambda: cached(server, lambda: os.stat(mnt / "keep")), "keep cached again")


@contextmanager
def uncovered_mount(tmp_path: Path) -> Iterator[tuple[Path, StatsServer, Path]]:
    """drvfs (`HOUR`) of an export on a FUSE host filesystem (tests/passthrough_fs.py),
    which the server never covers: the mount point, the server, and the directory the
    FUSE filesystem passes through to (where host changes are made), holding d/f ("one")."""
    source, host_mnt = tmp_path / "source", tmp_path / "fuse"
    source.mkdir()
    host_mnt.mkdir()
    (source / "d").mkdir()
    (source / "d" / "f").write_text("one")
    with (
        mounted_passthrough(source, host_mnt),
        drvfs_mount(tmp_path, HOUR, StatsServer, export=host_mnt) as (mnt, srv, _),
    ):
        assert isinstance(srv, StatsServer)
        yield mnt, srv, source


def _queued(server: StatsServer) -> int:
    figures = stats.read(str(server.stats_path))
    return max((c.get("changes", 0) for c in figures["connections"]), default=0)


def _notified(server: StatsServer) -> int:
    """The Rnotify batches the server sent so far, each of which brought a new Tnotify."""
    served = server.total()["requests"]
    return sum(int(served.get(kind.__name__, 0)) for kind in NOTIFIES)


def test_this_mounts_own_changes_bring_no_notification(tmp_path: Path) -> None:
    """drvfs asks the server not to send its own changes (Tnotifyflags OTHERS): creates,
    writes, links, renames and removals through the mount bring no Rnotify; a host
    change does, and is seen."""
    export = tmp_path / "export"
    (export / "d").mkdir(parents=True)  # before the mount: no host change while it runs
    with drvfs_mount(tmp_path, HOUR, StatsServer, export) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        d = mnt / "d"
        os.listdir(d)
        until(lambda: _notified(server) >= 1, "the first Tnotify")
        server.requests()  # once the mount is quiet
        before = _notified(server)
        (d / "f").write_text("data")
        os.link(d / "f", d / "hard")
        os.symlink("f", d / "ln")
        os.mkdir(d / "sub")
        os.rename(d / "ln", d / "sub" / "ln")
        os.unlink(d / "hard")
        os.chmod(d / "f", 0o600)
        server.requests()
        assert _notified(server) == before
        (export / "d" / "host").write_text("made on the host")
        until(lambda: _notified(server) > before, "the host's change notified")
        until(lambda: "host" in os.listdir(d), "the host's change seen through the mount")


def test_an_uncovered_directory_keeps_short_timeouts(tmp_path: Path) -> None:
    """An export on a FUSE host filesystem: the server cannot see every change there."""
    with uncovered_mount(tmp_path) as (mnt, srv, source):
        f = mnt / "d" / "f"
        assert f.read_text() == "one"
        for _ in range(3):
            assert not cached(srv, lambda: os.stat(f))  # timeouts of 0: asked each time
        (source / "d" / "f").write_text("changed behind the server's back")
        assert os.stat(f).st_size == len("changed behind the server's back")
        assert f.read_text() == "changed behind the server's back"
        (source / "d" / "g").write_text("new")
        os.unlink(source / "d" / "f")
        assert sorted(os.listdir(mnt / "d")) == ["g"]
        assert not f.exists()


# ---- inotify on the mount ----

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
_EVENT = struct.Struct("iIII")


def _events(fd: int, deadline: float) -> Iterator[tuple[int, str]]:
    """(mask, name) of each inotify event on `fd` until `deadline` seconds pass."""
    end = time.monotonic() + deadline
    while (left := end - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            return
        buf = os.read(fd, 65536)
        offset = 0
        while offset < len(buf):
            _, mask, _, size = _EVENT.unpack_from(buf, offset)
            offset += _EVENT.size
            name = buf[offset : offset + size].rstrip(b"\0").decode()
            offset += size
            yield mask, name


def test_inotify_on_the_mount_sees_a_deletion_made_on_the_host(tmp_path: Path) -> None:
    """The kernel's delete notification (`invalidate_entry` with `deleted`) tells the
    watchers of the removed file (IN_DELETE_SELF); FUSE has none for its directory's."""
    with drvfs_mount(tmp_path, HOUR, ServerProcess) as (mnt, server, _):
        (server.export / "d").mkdir()
        (server.export / "d" / "gone").write_text("soon")
        (server.export / "d" / "stays").write_text("here")
        fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert fd >= 0
        try:
            assert _libc.inotify_add_watch(fd, bytes(mnt / "d"), IN_DELETE) >= 0
            assert _libc.inotify_add_watch(fd, bytes(mnt / "d" / "gone"), IN_DELETE_SELF) >= 0
            os.stat(mnt / "d" / "stays")
            os.unlink(server.export / "d" / "gone")
            seen = next((e for e in _events(fd, DEADLINE) if e[0] & IN_DELETE_SELF), None)
            assert seen is not None
            assert os.listdir(mnt / "d") == ["stays"]
        finally:
            os.close(fd)
