"""Case-insensitive names and escaped names seen by the Linux kernel's 9p client (issue 4).

One QEMU guest boot against the project's server runs ``workloads/case.sh``
(diod, the reference, is case-sensitive: not used here); each of its CHECK
lines is a test, and the host then checks that the names on disk are exactly
the escaped, case-preserved names expected. Slow (TCG); NINEP_GUEST_SKIP=1
skips it, as the other guest tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from ninep.escape import swap
from volfs.caseflag import HOST_XATTR

from .guest.fixtures import BOOT_TIMEOUT, skip_if_guests_disabled
from .guest.hostside import host_git
from .guest.servers import start_ninep
from .guest.vm import GuestRun, declared_checks, load_workload, run_guest

#: As WSL 2 mounts a Windows drive (cache=mmap: a new inode per lookup, so that a
#: rename between two cases of one name reaches the server; with cache=loose the
#: kernel finds both names on one inode and skips the rename as POSIX allows).
MOUNT_OPTIONS = "msize=262144,cache=mmap"
CHECKS = declared_checks("case")
README = b"stored as readme.txt\n"


@dataclass
class CaseRun:
    run: GuestRun | None
    export: Path
    log: str

    def require(self) -> GuestRun:
        if self.run is None:
            pytest.fail(f"no guest run:\n{self.log}", pytrace=False)
        return self.run

    def describe(self) -> str:
        run = self.run.describe() if self.run is not None else "no run"
        return f"{run}\n--- server log (tail) ---\n{self.log[-3000:]}"


@pytest.fixture(scope="module")
def case_run(tmp_path_factory: pytest.TempPathFactory) -> CaseRun:
    skip_if_guests_disabled()
    workdir = tmp_path_factory.mktemp("guest-case")
    export = workdir / "export"
    export.mkdir()
    (export / "readme.txt").write_bytes(README)
    server = start_ninep(export, workdir / "server.log")
    try:
        run = run_guest(
            load_workload("case"),
            server.port,
            MOUNT_OPTIONS,
            aname=server.aname,
            timeout=BOOT_TIMEOUT,
            console_log=workdir / "console.log",
        )
    finally:
        server.stop()
    return CaseRun(run, export, server.log.read_text(errors="replace"))


def test_case_guest_ran(case_run: CaseRun) -> None:
    run = case_run.require()
    assert not run.timed_out and run.booted and run.mounted, case_run.describe()
    assert run.exit_status is not None, case_run.describe()


@pytest.mark.parametrize("check", CHECKS)
def test_case_check(case_run: CaseRun, check: str) -> None:
    result = case_run.require().checks.get(check)
    assert result == "OK", f"check {check}: {result}\n{case_run.describe()}"


def test_case_no_undeclared_checks(case_run: CaseRun) -> None:
    assert sorted(set(case_run.require().checks) - set(CHECKS)) == []


def _names(path: Path) -> list[str]:
    return sorted(os.listdir(path))


def _flag(path: Path) -> bytes | None:
    return os.getxattr(path, HOST_XATTR) if HOST_XATTR in os.listxattr(path) else None


def test_case_host_names(case_run: CaseRun) -> None:
    """The names on the host disk: case kept as created or renamed to, escaped."""
    case_run.require()
    k = case_run.export / "w" / "case"
    assert "readme.txt" in _names(case_run.export)
    assert (case_run.export / "readme.txt").read_bytes() == README
    expected = {
        "touch": ["Foo.txt"],
        "excl": ["Name"],
        "mv": ["Foo"],
        "cs": ["Makefile", "makefile", "sub"],
        "full": ["x"],
        "tar-src": ["Makefile", "makefile"],
        "tar-cs": ["Makefile", "makefile"],
        "tar-ci": ["Makefile"],
        "git-ci": [".git", "readme.md", "src"],
        "git-cs": [".git", "Makefile", "makefile"],
    }
    got = {name: _names(k / name) for name in expected if (k / name).is_dir()}
    assert got == expected
    assert _names(k / "git-ci" / "src") == ["Main.c"]
    assert (k / "mv" / "Foo").read_bytes() == b"other\n"
    assert (k / "tar-ci" / "Makefile").read_bytes() == b"upper\n"
    escaped = ["a:b", "WHAT?", "star*", 'quote"', "lt<gt>", "pipe|", "back\\slash", "ctl\x01x"]
    assert _names(k / "escape") == sorted(swap(n) for n in escaped)
    for name in escaped:
        content = "what?" if name == "WHAT?" else name  # renamed after it was written
        assert (k / "escape" / swap(name)).read_bytes() == content.encode()


def test_case_host_flags(case_run: CaseRun) -> None:
    """The case flag is stored on the directories set case-sensitive and those made in them."""
    case_run.require()
    k = case_run.export / "w" / "case"
    tops = [k / "cs", k / "git-cs", k / "tar-src", k / "tar-cs"]
    dirs = [p for p in k.rglob("*") if p.is_dir() and not p.is_symlink()]
    assert k / "git-cs" / ".git" / "objects" in dirs
    for d in [case_run.export, k, *dirs]:
        inside = any(d == top or top in d.parents for top in tops)
        assert _flag(d) == (b"1" if inside else None), d


@pytest.mark.parametrize(
    ("repo", "value"), [("git-ci", "case_git_ci_head"), ("git-cs", "case_git_cs_head")]
)
def test_case_host_git(case_run: CaseRun, repo: str, value: str) -> None:
    """Both repositories are sound for the host's git, at the commit the guest made."""
    run = case_run.require()
    path = case_run.export / "w" / "case" / repo
    host_git(path, "fsck", "--strict", "--no-progress", "--no-dangling")
    assert host_git(path, "rev-parse", "HEAD").strip() == run.values.get(value)
    assert host_git(path, "status", "--porcelain") == ""
