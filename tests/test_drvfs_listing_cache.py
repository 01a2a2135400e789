"""drvfs's listings of covered directories cached by the kernel (FOPEN_CACHE_DIR, through
third_party/pyfuse3/cache-readdir.patch), and dropped by every change of their names:
the host's (through the server's change notification), this mount's own (by the kernel
itself), and not cached where the server cannot see every change. Real FUSE mounts of a
real server; host changes are awaited with a deadline, never timed.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyfuse3
import pytest

from .drvfs_harness import NEEDS_FUSE, StatsServer, drvfs_mount
from .test_drvfs_notify import HOUR, uncovered_mount, until

pytestmark = [
    NEEDS_FUSE,
    pytest.mark.skipif(
        not getattr(pyfuse3, "CACHE_READDIR_SUPPORTED", False),
        reason="needs pyfuse3 with cache-readdir.patch (make setup; test_pyfuse3_patched fails)",
    ),
]


def listing(d: Path) -> list[str]:
    return sorted(os.listdir(d))


def requests(server: StatsServer) -> Counter[str]:
    """What the server served, but the clunks (of fids the kernel forgets, when it will) and
    statfs (find's fstatfs of each directory: the kernel never caches it)."""
    counts = server.requests()
    counts.pop("Tclunk", None)
    counts.pop("Tstatfs", None)
    return counts


def listed_from_cache(server: StatsServer, d: Path) -> bool:
    """Whether a listing of `d` (done twice) is answered the second time without any
    request to the server: no Tlopen, no Treaddirattr, nothing."""
    listing(d)
    before = requests(server)
    listing(d)
    return requests(server) == before


def test_a_covered_listing_is_cached_and_host_changes_reach_it(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, HOUR, StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        host, elsewhere = server.export / "d", server.export / "elsewhere"
        host.mkdir()
        elsewhere.mkdir()
        (host / "empty").mkdir()
        for name in ("a", "b", "c"):
            (host / name).write_text(name)
        (elsewhere / "x").write_text("x")
        d = mnt / "d"

        def seen(names: list[str], what: str, where: Path = d) -> None:
            until(lambda: listing(where) == names, f"{what}: {names}")
            until(lambda: listed_from_cache(server, where), f"{where.name} cached again")

        seen(["a", "b", "c", "empty"], "the first listing")
        assert requests(server)["Treaddirattr"] >= 1  # listed once, from the server
        served = requests(server)
        for _ in range(3):
            assert listing(d) == ["a", "b", "c", "empty"]
        assert requests(server) == served  # not a request more

        (host / "new").write_text("made on the host")
        seen(["a", "b", "c", "empty", "new"], "a host create")
        os.unlink(host / "a")
        seen(["b", "c", "empty", "new"], "a host unlink")
        os.rename(host / "b", host / "b2")
        seen(["b2", "c", "empty", "new"], "a host rename within d")
        os.rename(elsewhere / "x", host / "x")
        seen(["b2", "c", "empty", "new", "x"], "a host rename into d")
        os.rename(host / "c", elsewhere / "c")
        seen(["b2", "empty", "new", "x"], "a host rename out of d")
        assert os.listdir(mnt / "elsewhere") == ["c"]
        os.mkdir(host / "sub")
        seen(["b2", "empty", "new", "sub", "x"], "a host mkdir")
        os.rmdir(host / "sub")
        seen(["b2", "empty", "new", "x"], "a host rmdir")

        # An empty listing is cached too (no page of it to drop), and dropped as well.
        seen([], "the empty directory", d / "empty")
        (host / "empty" / "now").touch()
        seen(["now"], "a host create in the empty directory", d / "empty")


def test_a_tree_is_walked_from_the_cache(tmp_path: Path) -> None:
    """find over a tree whose subdirectories the server first lists in their parents
    (without the coverage bit: it watches what it walks to or lists), with the default
    timeouts: once each directory was listed and its attributes asked again, find makes
    no listing request, and a host change deep down is still seen."""
    with drvfs_mount(tmp_path, "", StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        deep = server.export / "top" / "s1" / "s2" / "s3"
        deep.mkdir(parents=True)
        for level in (deep, deep.parent, deep.parent.parent):
            (level / "f").write_text("f")

        def walk() -> list[str]:
            found = subprocess.run(["find", mnt], capture_output=True, text=True, check=True)
            return sorted(found.stdout.splitlines())

        def walked_from_cache() -> bool:
            walk()
            before = requests(server)
            walk()
            return requests(server) == before

        until(walked_from_cache, "the whole tree listed from the kernel's cache")
        (deep / "g").touch()
        until(lambda: "g" in os.listdir(mnt / "top" / "s1" / "s2" / "s3"), "a host create, deep")
        until(walked_from_cache, "cached again")


def test_this_mounts_own_changes_are_listed_at_once(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, HOUR, StatsServer) as (mnt, server, _):
        assert isinstance(server, StatsServer)
        (server.export / "d").mkdir()
        (server.export / "e").mkdir()
        (server.export / "d" / "a").write_text("a")
        d, e = mnt / "d", mnt / "e"
        until(lambda: listed_from_cache(server, d), "d cached")
        until(lambda: listed_from_cache(server, e), "e cached")

        (d / "new").write_text("made here")
        assert listing(d) == ["a", "new"]
        os.unlink(d / "a")
        assert listing(d) == ["new"]
        os.rename(d / "new", d / "renamed")
        assert listing(d) == ["renamed"]
        os.rename(d / "renamed", e / "moved")
        assert listing(d) == []
        assert listing(e) == ["moved"]
        os.mkdir(d / "sub")
        os.link(e / "moved", d / "hard")
        os.symlink("moved", d / "sym")
        assert listing(d) == ["hard", "sub", "sym"]
        os.rmdir(d / "sub")
        assert listing(d) == ["hard", "sym"]
        assert listed_from_cache(server, d)  # and cached again


def test_an_uncovered_directory_is_listed_afresh_each_time(tmp_path: Path) -> None:
    """An export on a FUSE host filesystem: the server cannot see every change there."""
    with uncovered_mount(tmp_path) as (mnt, srv, source):
        d = mnt / "d"
        listings: Callable[[], int] = lambda: srv.requests()["Treaddirattr"]  # noqa: E731
        for _ in range(3):
            before = listings()
            assert listing(d) == ["f"]
            assert listings() > before
        (source / "d" / "g").write_text("behind the server's back")
        os.unlink(source / "d" / "f")
        assert listing(d) == ["g"]
