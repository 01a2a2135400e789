"""The Linux kernel's own 9p client against diod (reference) and the project's server.

One QEMU guest boot per (server, mount-option set) runs every workload in
``tests/guest/workloads``; each ``CHECK`` line the guest prints becomes one
test here, and the host then inspects the export directory itself.
Needs root (to apt-get what is missing) and several minutes (TCG emulation).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from .guest.fixtures import (
    GUEST_SERVERS,
    MOUNT_OPTION_SETS,
    STANDARD_WORKLOADS,
    GuestResult,
    GuestRunner,
)
from .guest.hostside import HostView, compare_untarred, host_git, sha256_file
from .guest.initramfs import run_conf_text
from .guest.vm import GuestRun, declared_checks, mount_option_string, parse_console

CONFIGS: list[tuple[str, str]] = [(s, o) for s in GUEST_SERVERS for o in MOUNT_OPTION_SETS]
CHECKS: list[str] = declared_checks(*STANDARD_WORKLOADS)

#: Checks that fail for a reason of the server's own, not the workload's:
#: (server, option set or None for all, check) -> why. They are xfailed (not strict).
EXPECTED_TO_DIFFER: dict[tuple[str, str | None, str], str] = {
    ("diod", "loose-1m", "rename_cross_dir"): (
        "diod's fids hold path names: after a directory is renamed, the fids the "
        "kernel keeps (cache=loose keeps dentries and their fids) for files inside "
        "it still name the old path, so opening to/sub-moved/inner gets ENOENT"
    ),
}

#: Names the basic workload creates in bigdir (see workloads/basic.sh).
BIGDIR_PREFIX = "entry-with-a-rather-long-name-to-fill-readdir-buffers-quickly-0123456789abcdef-"

VIEW = HostView()


def _selected_configs(session: pytest.Session) -> list[tuple[str, str]]:
    """The guest configurations the collected tests need, in test order."""
    keys: list[tuple[str, str]] = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "guest" in callspec.params:
            key = callspec.params["guest"]
            if key not in keys:
                keys.append(key)
    return keys


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: f"{c[0]}-{c[1]}")
def guest(request: pytest.FixtureRequest, guest_runner: GuestRunner) -> GuestResult:
    """The standard guest run for one (server, mount-option set)."""
    guest_runner.prefetch(_selected_configs(request.session))
    server, options = request.param
    return guest_runner.get(server, options)


def test_guest_ran(guest: GuestResult) -> None:
    """The guest booted, mounted, ran the workloads to the end; the server survived."""
    run = guest.require_run()
    assert not run.timed_out, guest.describe()
    assert run.booted and run.mounted, guest.describe()
    assert run.exit_status is not None, guest.describe()
    assert guest.server_survived, guest.describe()


@pytest.mark.parametrize("check", CHECKS)
def test_check(guest: GuestResult, check: str) -> None:
    """One CHECK line of the guest workloads reported OK."""
    run = guest.require_run()
    result = run.checks.get(check)
    if result != "OK":
        for key in ((guest.server, guest.options, check), (guest.server, None, check)):
            if key in EXPECTED_TO_DIFFER:
                pytest.xfail(f"{EXPECTED_TO_DIFFER[key]} (got: {result})")
    assert result is not None, f"check {check} never reported\n{guest.describe()}"
    assert result == "OK", f"check {check}: {result}\n{guest.describe()}"


def test_no_undeclared_checks(guest: GuestResult) -> None:
    """Every check the guest reported is one this file knows (so none goes unasserted)."""
    run = guest.require_run()
    assert sorted(set(run.checks) - set(CHECKS)) == []


def _work(guest: GuestResult) -> Path:
    """The workloads' scratch directory on the host ($W in the guest)."""
    return guest.export / "w"


def test_host_sees_basic(guest: GuestResult) -> None:
    """What the basic workload wrote is on the host, byte for byte, with its metadata."""
    guest.require_run()
    b = _work(guest) / "basic"
    problems: list[str] = []

    def want_bytes(name: str, data: bytes) -> None:
        path = b / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif (got := path.read_bytes()) != data:
            problems.append(
                f"{name}: {got[:40]!r}... ({len(got)} bytes), want {data[:40]!r}... "
                f"({len(data)} bytes)"
            )

    def want_absent(name: str) -> None:
        if os.path.lexists(b / name):
            problems.append(f"{name}: still exists")

    want_bytes("created", b"hello\n")
    want_bytes("written", b"abcXYfgh\0\0Z")
    want_bytes("appended", b"one\ntwo\nthree\n")
    want_bytes("truncated", b"0123" + bytes(100000 - 4))
    want_bytes("emptied", b"")
    want_bytes("rename-dst", b"moved\n")
    want_absent("rename-src")
    want_bytes("replace-dst", b"new\n")
    want_absent("replace-src")
    want_bytes("to/file-renamed", b"travelling\n")
    want_bytes("to/sub-moved/inner", b"deep\n")
    want_absent("from/file")
    want_absent("from/sub")
    want_bytes("hl-a", b"linked\nmore\n")
    want_bytes("hl-b", b"linked\nmore\n")
    want_absent("hl-c")
    if (b / "hl-a").exists() and (b / "hl-b").exists():
        a, c = os.lstat(b / "hl-a"), os.lstat(b / "hl-b")
        if a.st_ino != c.st_ino or a.st_nlink != 2:
            problems.append(f"hl-a/hl-b: inodes {a.st_ino}/{c.st_ino}, nlink {a.st_nlink}")
    for name, target in (
        ("sl", "created"),
        ("dangling", "../nowhere/at/all"),
        ("sldir/up", "../created"),
    ):
        if not os.path.lexists(b / name) or not VIEW.is_symlink(b / name):
            problems.append(f"{name}: not a symlink")
        elif (got_target := VIEW.readlink(b / name)) != target:
            problems.append(f"{name}: points to {got_target!r}, want {target!r}")
    for name, kind, mode in (("modes", stat.S_IFREG, 0o600), ("moddir", stat.S_IFDIR, 0o711)):
        if os.path.lexists(b / name):
            got_mode = VIEW.mode(b / name)
            if stat.S_IFMT(got_mode) != kind or stat.S_IMODE(got_mode) != mode:
                problems.append(f"{name}: mode {got_mode:o}, want {kind | mode:o}")
        else:
            problems.append(f"{name}: missing")
    if os.path.lexists(b / "owned") and (owner := VIEW.owner(b / "owned")) != (4321, 8765):
        problems.append(f"owned: owner {owner}, want (4321, 8765)")
    if (b / "tree").is_dir() and (listing := sorted(os.listdir(b / "tree"))) != ["kept"]:
        problems.append(f"tree: holds {listing}, want ['kept']")
    want_absent("doomed")
    want_absent("open-unlinked")
    if (b / "bigdir").is_dir():
        names = set(os.listdir(b / "bigdir"))
        expected = {f"{BIGDIR_PREFIX}{i}" for i in range(1, 1001)}
        if names != expected:
            problems.append(
                f"bigdir: {len(names)} entries, {len(expected - names)} missing, "
                f"{len(names - expected)} unexpected"
            )
    else:
        problems.append("bigdir: missing")
    assert problems == [], "\n".join(problems)


def test_host_sees_bigfile(guest: GuestResult) -> None:
    """The 64 MiB file written in the guest has on the host the hash the guest printed."""
    run = guest.require_run()
    path = _work(guest) / "big" / "random.bin"
    assert path.is_file(), guest.describe()
    assert path.stat().st_size == 64 * 1024 * 1024
    assert "bigfile_sha256" in run.values, guest.describe()
    assert sha256_file(path) == run.values["bigfile_sha256"]


def test_host_sees_untarred_tree(guest: GuestResult) -> None:
    """The tree unpacked in the guest equals the archive's contents, file by file."""
    guest.require_run()
    root = _work(guest) / "untar"
    assert root.is_dir(), guest.describe()
    assert compare_untarred(root, guest.tar_members, VIEW) == []


def test_host_sees_git_repository(guest: GuestResult) -> None:
    """The repository the guest committed is sound and clean for the host's git too."""
    run = guest.require_run()
    repo = _work(guest) / "git" / "repo"
    assert (repo / ".git").is_dir(), guest.describe()
    host_git(repo, "fsck", "--strict", "--no-progress", "--no-dangling")
    # With metadata, symlinks and modes live in xattrs: the host's files are plain,
    # which git reads as on a filesystem without symlinks or executable bits.
    plain = ["-c", "core.symlinks=false", "-c", "core.fileMode=false"]
    stored = plain if guest.server == "ninep" else []
    assert host_git(repo, *stored, "status", "--porcelain") == ""
    assert host_git(repo, "rev-parse", "HEAD").strip() == run.values.get("git_head")
    assert host_git(repo, "rev-list", "--count", "HEAD").strip() == "2"


def test_host_sees_sqlite_rows(guest: GuestResult) -> None:
    """Both concurrent sqlite writers' rows are in the database, which is intact."""
    guest.require_run()
    path = _work(guest) / "locks" / "concurrent.sqlite"
    assert path.is_file(), guest.describe()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT writer, count(*), count(DISTINCT n) FROM t GROUP BY writer ORDER BY writer"
        ).fetchall()
        integrity = conn.execute("PRAGMA integrity_check").fetchone()
    finally:
        conn.close()
    assert rows == [("a", 100, 100), ("b", 100, 100)]
    assert integrity == ("ok",)


def test_host_sees_xattrs(guest: GuestResult) -> None:
    """The user xattrs the guest left are stored on the host file."""
    guest.require_run()
    path = _work(guest) / "xattr" / "file"
    assert path.is_file(), guest.describe()
    assert VIEW.user_xattr(path, "user.kept") == b"kept-value"
    assert VIEW.user_xattr(path, "user.big") == b"v" * 3000
    assert VIEW.user_xattr(path, "user.colour") is None


# -- harness self-tests (no boot) --------------------------------------------------


def test_mount_options_survive_shell_quoting(tmp_path: Path) -> None:
    """An aname with ';' reaches mount(8) intact through the guest's run.conf."""
    options = mount_option_string("msize=65536,cache=none", "C;ro;uid=1000")
    (tmp_path / "run.conf").write_text(run_conf_text(options, {"EXTRA": "a b;'c'"}))
    out = subprocess.run(
        ["sh", "-c", '. ./run.conf && printf "%s|%s" "$MOUNT_OPTIONS" "$EXTRA"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == (
        "trans=tcp,port=564,version=9p2000.L,msize=65536,cache=none,aname=C;ro;uid=1000|a b;'c'"
    )


def test_parse_console() -> None:
    """CHECK/VALUE lines inside the workload markers are parsed; others are ignored."""
    console = "\n".join(
        [
            "CHECK early OK",
            "\x1bc\x1b[?7l\x1b[2J@@GUEST BOOTED 6.1 uptime=2.50",
            "@@GUEST MOUNTED",
            "@@GUEST WORKLOAD BEGIN",
            "CHECK a OK",
            "CHECK b FAIL rc=1: got 'x'",
            "VALUE v some text",
            "[   1.0] 9pnet: noise",
            "CHECK a OK",
            "@@GUEST WORKLOAD END status=1",
        ]
    )
    run = GuestRun(console=console, returncode=0, timed_out=False, duration=0.0, command=[])
    parse_console(console, run)
    assert run.booted and run.mounted and run.exit_status == 1
    assert run.boot_seconds == 2.5
    assert run.checks["b"] == "FAIL rc=1: got 'x'"
    assert run.checks["a"].startswith("FAIL reported twice")
    assert "early" not in run.checks
    assert run.values == {"v": "some text"}
