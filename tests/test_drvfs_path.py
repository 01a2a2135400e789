"""`drvfs path` (wslpath's conversions) through real drvfs mounts of a real server: names with
every Windows-illegal character round-trip, escaped only where the export escapes (and then
the Windows name is the host's), drive letters in either case, shares, relative and absolute
paths; a path on no drvfs mount is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drvfs.winpath import PathError, to_linux, to_windows
from ninep.escape import WINDOWS_ILLEGAL, swap

from .drvfs_harness import NEEDS_FUSE, short_dir
from .notified import REPO, TIMEOUT, notified_server

pytestmark = NEEDS_FUSE

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def drvfs(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drvfs", *args], capture_output=True,
                          text=True, env=ENV, cwd=cwd, timeout=TIMEOUT)  # fmt: skip


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    """ROOT, where automount mounted export C (escaping) at ROOT/c, Data (escaping) at
    ROOT/data and N (no escaping) at ROOT/n; the host directories are ROOT/../c, data, n."""
    with short_dir() as place:
        for name in ("c", "data", "n"):
            (place / name).mkdir()
        (place / "server.toml").write_text(f"""\
listen = ["unix:{place}/9p.sock"]
[export.C]
path = "{place}/c"
[export.Data]
path = "{place}/data"
[export.N]
path = "{place}/n"
no-escape = true
""")
        conf = place / "drvfs.conf"
        conf.write_text(f"[automount]\nroot = {place}/mnt\nmountFsTab = false\n"
                        f"server = unix:{place}/9p.sock\n")  # fmt: skip
        with notified_server(place, ["--config", str(place / "server.toml")]):
            mounted = drvfs("automount", "--config", str(conf))
            try:
                assert mounted.returncode == 0, mounted.stderr
                yield place / "mnt"
            finally:
                drvfs("automount", "--config", str(conf), "--unmount")


# names with each character Windows cannot hold (and a private-use image, which a host
# name made by hand may hold: shown as the character it stands for)
NAMES = [f"a{c}b" for c in WINDOWS_ILLEGAL] + ["x\uf03ay", "plain"]


def test_every_windows_illegal_character_round_trips(root: Path) -> None:
    (root / "c" / "dir").mkdir(exist_ok=True)
    for name in NAMES:
        linux = f"{root}/c/dir/{name}"
        windows = to_windows(linux)
        assert windows == f"C:\\dir\\{swap(name)}"
        assert to_linux(windows) == linux
        if name[1] in WINDOWS_ILLEGAL:  # a name Windows could not hold, now one it can
            assert not set(windows[3:]) & set(WINDOWS_ILLEGAL.replace("\\", ""))
        # the Windows name is the host's: what the server stored for the name made
        (root / "c" / "dir" / name).write_text("x")
        assert swap(name) in os.listdir(root.parent / "c" / "dir")


def test_a_mount_that_does_not_escape_passes_names_as_they_are(root: Path) -> None:
    for name in NAMES:
        if "\\" in name:
            with pytest.raises(PathError, match="does not escape names"):
                to_windows(f"{root}/n/{name}")
            continue
        assert to_windows(f"{root}/n/{name}") == f"N:\\{name}"
        assert to_linux(f"N:\\{name}") == f"{root}/n/{name}"


def test_drives_in_either_case_shares_and_slashes(root: Path) -> None:
    assert to_linux("c:\\Users\\x") == to_linux("C:/Users/x") == f"{root}/c/Users/x"
    assert to_linux("C:") == to_linux("c:\\") == f"{root}/c"
    assert to_windows(f"{root}/c") == "C:\\"
    assert to_windows(f"{root}/data/a:b") == "\\\\ninep\\Data\\a\uf03ab"
    assert to_linux("\\\\ninep\\Data\\a\uf03ab") == to_linux("//NINEP/data/a\uf03ab")
    assert to_linux("//ninep/Data/a\uf03ab") == f"{root}/data/a:b"


def test_relative_paths_stay_relative_unless_absolute_is_asked(root: Path) -> None:
    here = root / "c" / "rel"
    here.mkdir(exist_ok=True)
    assert drvfs("path", "-w", "x/a:b", cwd=here).stdout == "x\\a\uf03ab\n"
    assert drvfs("path", "-m", "-a", "x/a:b", cwd=here).stdout == "C:/rel/x/a\uf03ab\n"
    assert drvfs("path", "-u", "x\\a\uf03ab", cwd=here).stdout == "x/a:b\n"
    assert drvfs("path", "-a", "x\\a\uf03ab", cwd=here).stdout == f"{here}/x/a:b\n"
    assert drvfs("path", "-w", "../rel/y", cwd=here).stdout == "..\\rel\\y\n"


def test_a_path_on_no_drvfs_mount_is_refused_in_one_line(root: Path) -> None:
    for args in (["-w", str(root.parent)], ["-u", "Z:\\x"], ["-u", "\\\\wsl.localhost\\x"],
                 ["-w", "x"]):  # fmt: skip
        out = drvfs("path", *args, cwd=root.parent)
        assert out.returncode == 1 and out.stdout == "", out
        assert out.stderr.startswith("drvfs path: ") and out.stderr.count("\n") == 1, out.stderr
