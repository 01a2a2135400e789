"""POSIX metadata in extended attributes seen by the Linux kernel's 9p client (issue 5).

Three QEMU guest boots against the project's server: with ``--metadata``,
``workloads/metadata.sh`` and then, with a new server on the same export,
``workloads/metadata_again.sh`` (what was stored is found again); without it,
``workloads/metadata_off.sh`` with WSL's owner and mask options. Each CHECK
line is a test; the host then checks that the export holds only regular files
and directories carrying the expected attributes. (One mount per boot: the
guest reaches the server through one forwarded connection.) Slow (TCG);
NINEP_GUEST_SKIP=1 skips it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from volfs import metadata

from .guest.fixtures import BOOT_TIMEOUT, skip_if_guests_disabled
from .guest.servers import start_ninep
from .guest.vm import GuestRun, declared_checks, load_workload, run_guest

MOUNT_OPTIONS = "msize=262144,cache=loose"
OFF_ANAME = "C;uid=1000;gid=1001;umask=022;fmask=111"
BOOTS = {"metadata": ("--metadata",), "metadata_again": ("--metadata",), "metadata_off": ()}


@dataclass
class Boot:
    run: GuestRun
    log: str

    def describe(self) -> str:
        return f"{self.run.describe()}\n--- server log (tail) ---\n{self.log[-3000:]}"


@pytest.fixture(scope="module")
def boots(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Boot], Path]:
    skip_if_guests_disabled()
    workdir = tmp_path_factory.mktemp("guest-metadata")
    export = workdir / "export"
    export.mkdir()
    out = {}
    for name, args in BOOTS.items():
        server = start_ninep(export, workdir / f"{name}.log", extra_args=args)
        try:
            run = run_guest(
                load_workload(name),
                server.port,
                MOUNT_OPTIONS,
                aname=OFF_ANAME if name == "metadata_off" else server.aname,
                timeout=BOOT_TIMEOUT,
                console_log=workdir / f"{name}.console.log",
            )
        finally:
            server.stop()
        out[name] = Boot(run, server.log.read_text(errors="replace"))
    return out, export


CHECKS = [(boot, check) for boot in BOOTS for check in declared_checks(boot)]


@pytest.mark.parametrize("boot", list(BOOTS))
def test_metadata_guest_ran(boots: tuple[dict[str, Boot], Path], boot: str) -> None:
    b = boots[0][boot]
    assert not b.run.timed_out and b.run.booted and b.run.mounted, b.describe()


@pytest.mark.parametrize(("boot", "check"), CHECKS)
def test_metadata_check(boots: tuple[dict[str, Boot], Path], boot: str, check: str) -> None:
    b = boots[0][boot]
    assert b.run.checks.get(check) == "OK", f"check {check}\n{b.describe()}"


def _stored(path: Path) -> metadata.Metadata:
    return metadata.load(str(path), os.lstat(path).st_mode)


def test_metadata_host_tree(boots: tuple[dict[str, Boot], Path]) -> None:
    """Only regular files and directories on the host, the types in the mode attribute."""
    export = boots[1]
    m = export / "w" / "meta"
    for path in export.rglob("*"):
        assert stat.S_IFMT(os.lstat(path).st_mode) in (stat.S_IFREG, stat.S_IFDIR), path
    expected = {
        "fifo": stat.S_IFIFO | 0o644,
        "chr": stat.S_IFCHR | 0o644,
        "blk": stat.S_IFBLK | 0o644,
        "link": stat.S_IFLNK | 0o777,
        "owned": stat.S_IFREG | 0o640,
        "h1": stat.S_IFREG | 0o604,
    }
    assert {n: _stored(m / n).mode for n in expected} == expected
    assert (m / "link").read_bytes() == b"some/target"
    assert _stored(m / "chr").rdev == metadata.makedev(1, 3)
    assert _stored(m / "blk").rdev == metadata.makedev(8, 1)
    owned = _stored(m / "owned")
    assert (owned.uid, owned.gid) == (1000, 1001)
    assert _stored(m / "users" / "bobs").uid == 1001


def test_metadata_off_host_tree(boots: tuple[dict[str, Boot], Path]) -> None:
    """Without metadata nothing is stored in the attributes."""
    off = boots[1] / "w" / "off"
    assert sorted(os.listdir(off)) == ["dir", "file"]
    for name in ("dir", "file"):
        assert not any(metadata.is_internal(n) for n in os.listxattr(off / name))
