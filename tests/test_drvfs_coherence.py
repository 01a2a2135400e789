"""drvfs with its cache defaults: case variants seen at once, no fid per listed entry, and
the requests each operation costs, counted by the server (its --stats socket)."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .drvfs_harness import NEEDS_FUSE, StatsServer, drvfs_mount

pytestmark = NEEDS_FUSE

ROUNDS = 10  # each case-variant sequence, on fresh names: a stale cache shows in any round
# For counting requests: no notification (host changes would make the kernel ask again),
# and nothing the kernel was given expires while a test counts, however slow the machine.
COUNTED = "covered_timeout=0,attr_timeout=3600,entry_timeout=3600"
LISTINGS = 5  # of 10,000 entries, until one the kernel reclaimed nothing during
DEADLINE = 60.0  # seconds for a host change to reach the mount: a hang guard, not a measure


def until(predicate: Callable[[], bool], what: str) -> None:
    """Poll `predicate` until it holds; fail with `what` past DEADLINE."""
    end = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"not within {DEADLINE} s: {what}")
        time.sleep(0.005)


def served(server: StatsServer) -> Counter[str]:
    """The requests `server` served so far, but clunks: drvfs clunks in the background
    after a release, which the kernel sends after close(2) returns, so a clunk may land
    on either side of a count."""
    counts = server.requests()
    counts.pop("Tclunk", None)
    return counts


# ---- case variants: the kernel's dentry cache is case-sensitive, the directory is not ----


def test_a_name_made_after_a_failed_lookup_of_a_case_variant_is_found_at_once(
    tmp_path: Path,
) -> None:
    with drvfs_mount(tmp_path, "case=off") as (mnt, _server, _):
        for i in range(ROUNDS):
            file, directory, link = f"foo{i}", f"dir{i}", f"link{i}"
            for name in (file, directory, link):
                assert not (mnt / name).exists()
            (mnt / file.upper()).write_text("made")
            (mnt / directory.upper()).mkdir()
            os.symlink(file.upper(), mnt / link.upper())
            assert (mnt / file).read_text() == "made"
            assert (mnt / directory).is_dir()
            assert os.readlink(mnt / link) == file.upper()


def test_unlinking_a_case_variant_removes_the_cached_name_at_once(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, "case=off") as (mnt, server, _):
        for i in range(ROUNDS):
            upper, lower = f"FOO{i}", f"foo{i}"
            (mnt / upper).write_text("old")
            assert os.stat(mnt / upper).st_size == 3  # cached by the kernel as FOO
            os.unlink(mnt / lower)
            assert not (mnt / upper).exists()
            assert not (server.export / upper).exists()
            with pytest.raises(FileNotFoundError):
                (mnt / upper).read_text()
            (mnt / upper).write_text("new")  # made again, not the old file
            assert (mnt / lower).read_text() == "new"
            (mnt / f"D{i}").mkdir()
            assert (mnt / f"D{i}").is_dir()
            os.rmdir(mnt / f"d{i}")
            assert not (mnt / f"D{i}").exists()


def test_renames_between_case_variants_are_seen_at_once(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, "case=off") as (mnt, server, _):
        for i in range(ROUNDS):
            # away from a variant the kernel has cached
            (mnt / f"A{i}").write_text("a")
            assert (mnt / f"A{i}").exists()
            os.rename(mnt / f"a{i}", mnt / f"moved{i}")
            assert not (mnt / f"A{i}").exists()
            assert (mnt / f"moved{i}").read_text() == "a"
            # onto a variant found missing just before
            assert not (mnt / f"b{i}").exists()
            os.rename(mnt / f"moved{i}", mnt / f"B{i}")
            assert (mnt / f"b{i}").read_text() == "a"
            # onto a variant of a cached file, which it replaces
            (mnt / f"C{i}").write_text("replaced")
            replaced = os.stat(mnt / f"C{i}").st_ino
            os.rename(mnt / f"B{i}", mnt / f"c{i}")
            assert os.stat(mnt / f"C{i}").st_ino != replaced
            assert (mnt / f"C{i}").read_text() == "a"
            assert sorted(os.listdir(server.export)) == [f"c{j}" for j in range(i + 1)]


def test_an_open_file_stays_readable_after_a_case_variant_is_unlinked(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, "case=off") as (mnt, _server, _):
        (mnt / "Open").write_text("still here")
        with open(mnt / "Open") as f:
            os.unlink(mnt / "open")
            assert os.fstat(f.fileno()).st_nlink == 0  # not ESTALE: its name is not asked
            assert f.read() == "still here"
        assert not (mnt / "Open").exists()


# ---- fids and requests, counted by the server ----


def _shrinker_scans() -> int:
    """Objects the kernel's shrinkers have scanned so far (slabs_scanned in /proc/vmstat):
    every dentry or inode it reclaims, by drop_caches or under memory pressure, is one."""
    with open("/proc/vmstat") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("slabs_scanned "))


def test_listing_10000_entries_holds_no_server_fid_per_entry(tmp_path: Path) -> None:
    """READDIRPLUS gives the kernel each entry with its attributes and drvfs no fid, so
    stat'ing the listed entries asks nothing. Unless the kernel reclaims the listing's
    dentries before they are stat'ed (drop_caches, as ninep-bench's cold runs do, or
    memory pressure): each stat is then a LOOKUP, whose walk keeps its fid
    (docs/architecture.md), for up to the 195 entries of one READDIRPLUS reply per drop.
    Such a listing shows only that each extra fid is a lookup's; fresh names are listed
    again."""
    with drvfs_mount(tmp_path, COUNTED, StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        for attempt in range(LISTINGS):
            big = server.export / f"big{attempt}"
            big.mkdir()
            for i in range(10_000):
                (big / f"entry-{i:05}").write_bytes(b"x" * (i % 7))
            scans = _shrinker_scans()
            fids_before = server.total()["fids"]
            requests_before = served(server)
            listed = {e.name: e.stat(follow_symlinks=False) for e in os.scandir(mnt / big.name)}
            assert len(listed) == 10_000
            assert all(listed[f"entry-{i:05}"].st_size == i % 7 for i in range(10_000))
            spent = served(server) - requests_before
            held = server.total()["fids"] - fids_before
            walks = spent["Twalk"] + spent["Twalkgetattr"] + spent["Tgetattr"]
            figures = {"fids held": held, "walks": walks, **spent}
            assert spent["Treaddirattr"] >= 2, figures
            if held <= 3 and walks < 10:  # the directory's fids, none per entry
                break
            assert _shrinker_scans() != scans, figures  # else nothing excuses them
            assert held <= 3 + spent["Twalkgetattr"], figures
        else:
            pytest.skip(f"the kernel reclaimed dentries during each of {LISTINGS} listings")
        # each entry is usable: a fid is walked when one is needed
        assert (mnt / big.name / "entry-00006").read_bytes() == b"x" * 6


def test_a_lookup_and_stat_of_a_fresh_name_is_one_request(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, COUNTED, StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        os.listdir(mnt)  # the root is known, the names below are not
        (server.export / "fresh").write_bytes(b"12345")
        (server.export / "dir").mkdir()
        before = served(server)
        assert os.stat(mnt / "fresh").st_size == 5
        assert served(server) - before == Counter(Twalkgetattr=1)
        before = served(server)
        assert not (mnt / "missing").exists()
        assert served(server) - before == Counter(Twalkgetattr=1)
        before = served(server)
        os.mkdir(mnt / "dir" / "new")  # the lookup of "dir", of "new" (missing), the mkdir
        spent = served(server) - before
        assert spent["Tmkdirattrs"] == 1 and spent["Twalkgetattr"] == 2
        assert spent["Tmkdir"] == spent["Twalk"] == 0
        assert stat.S_ISDIR(os.stat(mnt / "dir" / "new").st_mode)


def test_each_name_change_is_one_request_and_the_directory_needs_none(tmp_path: Path) -> None:
    """create, link, symlink, mkdir, rename and unlink in a looked-up directory: each one
    request, beside the lookup of a new name (and the walk to the file a link names); the
    kernel's GETATTR of the directory, which each makes it send, is answered from the
    attributes the change brought, which are the host's."""
    with drvfs_mount(tmp_path, COUNTED, StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        (server.export / "d").mkdir()
        d = mnt / "d"
        os.stat(d)
        before = served(server)
        os.close(os.open(d / "f", os.O_CREAT | os.O_WRONLY, 0o644))
        os.link(d / "f", d / "hard")
        os.symlink("f", d / "ln")
        os.mkdir(d / "sub")
        os.rename(d / "ln", d / "sub" / "ln")
        os.unlink(d / "hard")
        st = os.stat(d)
        spent = served(server) - before
        assert spent == Counter(
            Twalkgetattr=5, Twalk=1, Tlcreateattrs=1, Tlinkattrs=1, Tsymlinkattrs=1,
            Tmkdirattrs=1, Trenameatattrs=1, Tunlinkatattrs=1,
        )  # fmt: skip
        host = os.stat(server.export / "d")
        assert (st.st_nlink, st.st_mtime_ns, st.st_ctime_ns) == (3, host.st_mtime_ns,
                                                                 host.st_ctime_ns)  # fmt: skip


@contextmanager
def covered_mount(tmp_path: Path) -> Iterator[tuple[Path, StatsServer]]:
    """A mount with change notification (the defaults) of an export holding `listed` (with
    `have`) and `other`, made before it: no host change while it starts; once the server
    has taken the mount's Tnotify, so that what it looks up is covered."""
    export = tmp_path / "export"
    for d in ("listed", "other"):
        (export / d).mkdir(parents=True)
    (export / "listed" / "have").write_text("x")
    with drvfs_mount(tmp_path, "", StatsServer, export) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        until(lambda: server.watches() >= 1, "the mount's Tnotify")
        yield mnt, server


def test_misses_in_a_covered_directory_cost_no_request_where_drvfs_knows_them(
    tmp_path: Path,
) -> None:
    """A listing read whole answers every miss there; elsewhere a miss is asked once; a
    name that folds like a listed one (a case variant) is asked, and found."""
    with covered_mount(tmp_path) as (mnt, server):
        assert os.listdir(mnt / "listed") == ["have"]
        names = [f"{n}{i}" for i in range(10) for n in ("miss", "MISS", "Ünï")]
        before = served(server)
        assert not any((mnt / "listed" / n).exists() for n in names)
        assert served(server) == before
        assert (mnt / "listed" / "HAVE").read_text() == "x"
        assert served(server) - before == Counter(Twalkopen=1, Tread=1, Twalkgetattr=1)
        os.stat(mnt / "other")
        before = served(server)
        assert not any((mnt / "other" / n).exists() for n in names)
        assert served(server) - before == Counter(Twalkgetattr=len(names))
        assert not any((mnt / "other" / n).exists() for n in names)
        assert served(server) - before == Counter(Twalkgetattr=len(names))  # none more


def test_a_directory_this_mount_made_is_known_empty(tmp_path: Path) -> None:
    """mkdir watches the new directory while still empty: the lookup before a create in
    it asks nothing, nor does its fid need a walk; the create and its clunk remain (and
    the lookup of the new name in a directory never listed)."""
    with covered_mount(tmp_path) as (mnt, server):
        os.stat(mnt / "other")
        before = served(server)
        os.mkdir(mnt / "other" / "new")
        for name in ("a", "b", "c"):
            os.close(os.open(mnt / "other" / "new" / name, os.O_CREAT | os.O_WRONLY, 0o644))
        spent = served(server) - before
        assert spent == Counter(Twalkgetattr=1, Tmkdirattrs=1, Tlcreateattrs=3)
        assert sorted(os.listdir(mnt / "other" / "new")) == ["a", "b", "c"]


def test_a_known_miss_gives_way_to_every_name_that_folds_like_it(tmp_path: Path) -> None:
    """The case-variant trap stays closed: a variant made through the mount is found at
    once (the miss is forgotten before the create is answered), one made on the host as
    soon as it is notified; in a listed directory and in one that is not; and a name the
    host removes is then a miss of the listing kept by its notification."""
    with covered_mount(tmp_path) as (mnt, server):
        os.listdir(mnt / "listed")
        for d in ("listed", "other"):
            where = mnt / d
            for name in ("mine", "host"):
                assert not (where / name).exists()
                assert not (where / name).exists()  # known now, in either directory
            (where / "MINE").write_text("made here")
            assert (where / "mine").read_text() == "made here"
            (server.export / d / "Host").write_text("made there")
            variant = where / "host"
            until(variant.exists, f"the host's variant in {d}")
        os.unlink(server.export / "listed" / "have")
        until(lambda: not (mnt / "listed" / "have").exists(), "the host's removal")
        before = served(server)
        assert not (mnt / "listed" / "have").exists()
        assert served(server) == before  # the listing, kept by the notification


def test_listing_a_directory_costs_one_open_and_one_listing(tmp_path: Path) -> None:
    """opendir walks one fid and opens it in one request (none kept for the node),
    READDIRPLUS lists the entries with their attributes and learns in the same reply
    that they are all, and the kernel's last call after the end is answered without
    asking the server again."""
    with drvfs_mount(tmp_path, COUNTED, StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        (server.export / "d").mkdir()
        for name in ("a", "b", "c"):
            (server.export / "d" / name).write_text(name)
        os.listdir(mnt)  # "d" is known from its parent's listing, without a fid
        before = served(server)
        assert sorted(os.listdir(mnt / "d")) == ["a", "b", "c"]
        spent = served(server) - before
        assert spent == Counter(Twalkopen=1, Treaddirattr=1)  # and, after it, a Tclunk


def test_opening_a_listed_file_is_one_request(tmp_path: Path) -> None:
    """open walks a new fid to the file, opens it and brings its attributes (for the
    close-to-open check) in one Twalkopen."""
    with drvfs_mount(tmp_path, COUNTED, StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        (server.export / "f").write_bytes(b"12345")
        os.listdir(mnt)  # "f" is known from the listing, with its attributes, without a fid
        before = served(server)
        assert (mnt / "f").read_bytes() == b"12345"
        spent = served(server) - before
        assert spent == Counter(Twalkopen=1, Tread=1)  # and, after it, a Tclunk


def test_a_setattr_brings_the_attributes_back(tmp_path: Path) -> None:
    """chmod, truncate and utimes of a looked-up file: one Tsetattrattr each, whose
    attributes the kernel is given (no Tgetattr after it)."""
    with drvfs_mount(tmp_path, COUNTED, StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        (server.export / "f").write_bytes(b"12345")
        os.stat(mnt / "f")  # looked up: the node has a fid
        before = served(server)
        os.chmod(mnt / "f", 0o600)
        os.truncate(mnt / "f", 2)
        os.utime(mnt / "f", ns=(1_000_000_000, 2_000_000_000))
        spent = served(server) - before
        # (and, depending on the kernel, its read of security.capability before a truncate)
        assert spent["Tsetattrattr"] == 3 and spent["Tgetattr"] == spent["Tsetattr"] == 0
        st = os.stat(mnt / "f")
        assert (st.st_size, st.st_mtime_ns) == (2, 2 * 10**9)  # (no metadata: chmod keeps 777)


def test_a_refused_security_xattr_is_asked_once_per_connection(tmp_path: Path) -> None:
    """The kernel reads security.capability before each write and chown; the server
    refuses every name outside user. for every file, so drvfs asks it once."""
    with drvfs_mount(tmp_path, COUNTED, StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        for name in ("f", "g"):
            (server.export / name).write_bytes(b"x")
            os.stat(mnt / name)
        asked = []
        for name, xattr in [("f", "security.capability"), ("g", "security.capability")] + [
            ("f", "user.missing")
        ] * 2:
            before = served(server)
            with pytest.raises(OSError) as info:
                os.getxattr(mnt / name, xattr)
            assert info.value.errno == (
                errno.ENODATA if xattr.startswith("user.") else errno.EOPNOTSUPP
            )
            asked.append((served(server) - before)["Txattrwalk"])
        assert asked == [1, 0, 1, 1]  # a missing user. name is no refusal: asked each time


def test_a_file_just_made_is_set_through_its_open_fid(tmp_path: Path) -> None:
    """tar's pattern: create, write, then set times and mode by path while the file is
    open. The new node has no fid of its own: the open file's serves, with no walk; a
    size change still walks (a fid opened for writing may truncate without permission)."""
    with drvfs_mount(tmp_path, COUNTED, StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        (mnt / "first").write_bytes(b"x")  # the kernel's security.capability read, refused
        path = mnt / "made"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"12345")
            before = served(server)
            os.utime(path, ns=(1_000_000_000, 3_000_000_000))
            os.chmod(path, 0o640)
            spent = served(server) - before
            assert spent["Tsetattrattr"] == 2 and spent["Twalk"] == spent["Twalkgetattr"] == 0
            assert os.stat(path).st_mtime_ns == 3 * 10**9
            before = served(server)
            os.truncate(path, 2)
            spent = served(server) - before
            assert spent["Tsetattrattr"] == 1 and spent["Twalk"] == 1  # the node's own fid
        finally:
            os.close(fd)
        assert os.stat(path).st_size == 2
        assert (server.export / "made").read_bytes() == b"12"
