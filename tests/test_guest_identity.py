"""Who a client is, through the Linux kernel's 9p client (issue 10).

One QEMU guest boot against the project's server run the way a VM should be
served: as an ordinary user (``--user nobody``; root only binds the listener,
and QEMU, run by root here, is admitted as root), with ``--metadata --case
sensitive --client-groups``. The guest mounts with ``cache=none,access=client``
(the kernel's default for 9p2000.L, given explicitly) and runs
``workloads/identity.sh``: a guest user in a group the host does not know
chgrps its file to that group and keeps setgid on it, a uid the host does not
know gets the "other" bits of a file whose group is 65534, and writes clear
setuid/setgid unless root writes. Each CHECK line is a test; the host then
checks that the server really acted as nobody and that no host object carries
a setuid, setgid or sticky bit. Slow (TCG); NINEP_GUEST_SKIP=1 skips it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from volfs import metadata

from .guest.fixtures import BOOT_TIMEOUT, skip_if_guests_disabled
from .guest.servers import start_ninep
from .guest.vm import GuestRun, declared_checks, load_workload, run_guest

#: The serving user's uid (``--user nobody``).
NOBODY = 65534
#: As a VM should serve a guest's POSIX tree (the docs' way), and what the guest mounts with.
SERVER_ARGS = ("--user", "nobody", "--metadata", "--case", "sensitive", "--client-groups")
MOUNT_OPTIONS = "msize=262144,cache=none,access=client"
CHECKS = declared_checks("identity")


@dataclass
class IdentityRun:
    run: GuestRun
    export: Path
    log: str
    ids: dict[str, list[str]]  # Uid, Gid and Groups of the server process while it served

    def describe(self) -> str:
        return f"{self.run.describe()}\n--- server log (tail) ---\n{self.log[-3000:]}"


def _ids(pid: int) -> dict[str, list[str]]:
    """The Uid, Gid and Groups lines of a process's /proc status."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {k: v.split() for k, v in re.findall(r"^(Uid|Gid|Groups):\s*(.*)$", status, re.M)}


@pytest.fixture(scope="module")
def identity_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityRun]:
    skip_if_guests_disabled()
    if os.geteuid() != 0:
        pytest.skip("needs root: the server is started as root and drops to nobody")
    workdir = tmp_path_factory.mktemp("guest-identity")
    # pytest's directories are root's alone (0700): nobody could not reach an export there.
    place = Path(tempfile.mkdtemp(prefix="ninep-identity-"))
    try:
        place.chmod(0o755)
        export = place / "export"
        export.mkdir()
        os.chown(export, NOBODY, NOBODY)
        server = start_ninep(export, workdir / "server.log", extra_args=SERVER_ARGS)
        try:
            run = run_guest(
                load_workload("identity"),
                server.port,
                MOUNT_OPTIONS,
                aname=server.aname,
                timeout=BOOT_TIMEOUT,
                console_log=workdir / "console.log",
            )
            ids = _ids(server.proc.pid) if server.alive() else {}
        finally:
            server.stop()
        yield IdentityRun(run, export, server.log.read_text(errors="replace"), ids)
    finally:
        shutil.rmtree(place)


def test_identity_guest_ran(identity_run: IdentityRun) -> None:
    run = identity_run.run
    assert not run.timed_out and run.booted and run.mounted, identity_run.describe()
    assert run.exit_status is not None, identity_run.describe()
    assert "MOUNT" in run.console and "access=client" in run.console


@pytest.mark.parametrize("check", CHECKS)
def test_identity_check(identity_run: IdentityRun, check: str) -> None:
    result = identity_run.run.checks.get(check)
    assert result == "OK", f"check {check}: {result}\n{identity_run.describe()}"


def test_identity_no_undeclared_checks(identity_run: IdentityRun) -> None:
    assert sorted(set(identity_run.run.checks) - set(CHECKS)) == []


def test_identity_server_served_as_nobody(identity_run: IdentityRun) -> None:
    """Every id of the server process was nobody's, and so is every object it made."""
    ids = identity_run.ids
    assert ids.get("Uid") == [str(NOBODY)] * 4, identity_run.describe()
    assert ids.get("Gid") == [str(NOBODY)] * 4
    assert "0" not in ids.get("Groups", [])
    made = list(identity_run.export.rglob("*"))
    assert identity_run.export / "w" / "ident" / "grouped" in made
    assert {p.name: os.lstat(p).st_uid for p in made} == {p.name: NOBODY for p in made}


def test_identity_host_carries_no_privilege(identity_run: IdentityRun) -> None:
    """No host object has setuid, setgid or sticky bits; the guest's modes live in xattrs."""
    export = identity_run.export
    for path in [export, *export.rglob("*")]:
        st = os.lstat(path)
        assert stat.S_IFMT(st.st_mode) in (stat.S_IFREG, stat.S_IFDIR), path
        assert stat.S_IMODE(st.st_mode) & 0o7000 == 0, (path, oct(st.st_mode))
    ident = export / "w" / "ident"
    names = ("grouped", "sgid", "sgdir/sub", "others", "setid", "locking", "rootsuid")
    assert {name: _stored(ident / name) for name in names} == {
        "grouped": (0o644, 1000, 3000),
        "sgid": (0o2750, 1000, 3000),
        "sgdir/sub": (0o2755, 1000, 3000),
        "others": (0o0006, NOBODY, NOBODY),
        "setid": (0o755, 1000, 1000),
        "locking": (0o2644, 1000, 1000),
        "rootsuid": (0o4755, 0, 0),
    }
    assert _stored(ident)[0] == 0o1777


def _stored(path: Path) -> tuple[int | None, int | None, int | None]:
    """The permission bits, uid and gid a guest sees for `path`, as stored in its xattrs."""
    md = metadata.load(str(path), os.lstat(path).st_mode)
    return (None if md.mode is None else stat.S_IMODE(md.mode), md.uid, md.gid)
