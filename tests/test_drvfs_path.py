"""`drvfs path` (wslpath's conversions) through real drvfs mounts of a real server: names with
every Windows-illegal character round-trip, escaped only where the export escapes (and then
the Windows name is the host's), drive letters in either case, shares, relative and absolute
paths; a path on no drvfs mount is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drvfs import mounts
from drvfs.winpath import PathError, to_linux, to_windows
from ninep.escape import WINDOWS_ILLEGAL, swap

from .drvfs_harness import NEEDS_FUSE, short_dir
from .notified import REPO, TIMEOUT, notified_server

pytestmark = NEEDS_FUSE

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def drvfs(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drvfs", *args], capture_output=True,
                          text=True, env=ENV, cwd=cwd, timeout=TIMEOUT)  # fmt: skip


@dataclass(frozen=True)
class Drives:
    """Where automount mounted a server's exports: `drive` (escaping) at root/<drive>,
    `share` (escaping, not a letter) at root/<share>, `plain` (no escaping) at root/<plain>;
    letters no other drvfs mount serves, so that a drive names one mount."""

    root: Path
    drive: str
    share: str
    plain: str

    def at(self, export: str) -> str:
        return f"{self.root}/{export.lower()}"


@pytest.fixture(scope="module")
def drives() -> Iterator[Drives]:
    used = {m.export.upper() for m in mounts.table() if m.export}
    drive, plain = [c for c in "QRSTUVWXYZ" if c not in used][:2]
    share = f"Share{os.getpid()}"
    with short_dir() as place:
        tables = ""
        for name, own in [(drive, ""), (share, ""), (plain, "no-escape = true\n")]:
            (place / name).mkdir()
            tables += f'[export.{name}]\npath = "{place}/{name}"\n{own}'
        (place / "server.toml").write_text(f'listen = ["unix:{place}/9p.sock"]\n{tables}')
        conf = place / "drvfs.conf"
        conf.write_text(f"[automount]\nroot = {place}/mnt\nmountFsTab = false\n"
                        f"server = unix:{place}/9p.sock\n")  # fmt: skip
        with notified_server(place, ["--config", str(place / "server.toml")]):
            mounted = drvfs("automount", "--config", str(conf))
            try:
                assert mounted.returncode == 0, mounted.stderr
                yield Drives(place / "mnt", drive, share, plain)
            finally:
                drvfs("automount", "--config", str(conf), "--unmount")


# names with each character Windows cannot hold (and a private-use image, which a host
# name made by hand may hold: shown as the character it stands for)
NAMES = [f"a{c}b" for c in WINDOWS_ILLEGAL] + ["x\uf03ay", "plain"]


def test_every_windows_illegal_character_round_trips(drives: Drives) -> None:
    d = drives.drive
    os.makedirs(f"{drives.at(d)}/dir", exist_ok=True)
    for name in NAMES:
        linux = f"{drives.at(d)}/dir/{name}"
        windows = to_windows(linux)
        assert windows == f"{d}:\\dir\\{swap(name)}"
        assert to_linux(windows) == linux
        if name[1] in WINDOWS_ILLEGAL:  # a name Windows could not hold, now one it can
            assert not set(windows[3:]) & set(WINDOWS_ILLEGAL.replace("\\", ""))
        # the Windows name is the host's: what the server stored for the name made
        Path(linux).write_text("x")
        assert swap(name) in os.listdir(drives.root.parent / d / "dir")


def test_a_mount_that_does_not_escape_passes_names_as_they_are(drives: Drives) -> None:
    p = drives.plain
    for name in NAMES:
        if "\\" in name:
            with pytest.raises(PathError, match="does not escape names"):
                to_windows(f"{drives.at(p)}/{name}")
            continue
        assert to_windows(f"{drives.at(p)}/{name}") == f"{p}:\\{name}"
        assert to_linux(f"{p}:\\{name}") == f"{drives.at(p)}/{name}"


def test_drives_in_either_case_shares_and_slashes(drives: Drives) -> None:
    d, s, at = drives.drive, drives.share, drives.at
    assert to_linux(f"{d.lower()}:\\Users\\x") == to_linux(f"{d}:/Users/x") == f"{at(d)}/Users/x"
    assert to_linux(f"{d}:") == to_linux(f"{d.lower()}:\\") == at(d)
    assert to_windows(at(d)) == f"{d}:\\"
    assert to_windows(f"{at(s)}/a:b") == f"\\\\ninep\\{s}\\a\uf03ab"
    assert to_linux(f"\\\\ninep\\{s}\\a\uf03ab") == f"{at(s)}/a:b"
    assert to_linux(f"//NINEP/{s.upper()}/a\uf03ab") == f"{at(s)}/a:b"


def test_relative_paths_stay_relative_unless_absolute_is_asked(drives: Drives) -> None:
    d = drives.drive
    here = Path(drives.at(d)) / "rel"
    here.mkdir(exist_ok=True)
    assert drvfs("path", "-w", "x/a:b", cwd=here).stdout == "x\\a\uf03ab\n"
    assert drvfs("path", "-m", "-a", "x/a:b", cwd=here).stdout == f"{d}:/rel/x/a\uf03ab\n"
    assert drvfs("path", "-u", "x\\a\uf03ab", cwd=here).stdout == "x/a:b\n"
    assert drvfs("path", "-a", "x\\a\uf03ab", cwd=here).stdout == f"{here}/x/a:b\n"
    assert drvfs("path", "-w", "../rel/y", cwd=here).stdout == "..\\rel\\y\n"


def test_a_path_on_no_drvfs_mount_is_refused_in_one_line(drives: Drives) -> None:
    used = {m.export.upper() for m in mounts.table() if m.export}
    none = next(c for c in "ABCDEFGHIJKLMNOP" if c not in used)
    for args in (["-w", str(drives.root.parent)], ["-u", f"{none}:\\x"],
                 ["-u", "\\\\wsl.localhost\\x"], ["-w", "x"]):  # fmt: skip
        out = drvfs("path", *args, cwd=drives.root.parent)
        assert out.returncode == 1 and out.stdout == "", out
        assert out.stderr.startswith("drvfs path: ") and out.stderr.count("\n") == 1, out.stderr
