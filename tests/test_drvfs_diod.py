"""The server-neutral POSIX checks through drvfs mounted from diod (plain 9P2000.L).

drvfs asks for the protocol extensions, diod refuses them, and drvfs falls back
to plain 9P2000.L: the checks below (no case folding, no metadata, no flock
flag) must pass there as on ninep-server. Not here: what diod itself does not do
(xattrs; locks, which the unlinked-file check takes too). A file whose name goes
while it is open is an expected failure: diod's fids are paths. diod's export path is the attach
name, given to drvfs as is (`--aname`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .drvfs_harness import NEEDS_FUSE, MountProcess
from .posix_checks import CHECKS, Check

pytestmark = NEEDS_FUSE

# A file whose name changed while open: getattr of its open fid reaches the path.
_PATH_FIDS = "diod's fids are paths, so the descriptor of a file whose name went gets "

SERVER_NEUTRAL = [
    "write_read_and_offsets",
    "truncate",
    "open_flags",
    "times",
    "write_updates_mtime_and_size",
    "fsync",
    "mmap",
    "directories",
    "many_entries",
    pytest.param(
        "rename",
        marks=pytest.mark.xfail(
            strict=True,
            reason="diod's fids are paths: the fids drvfs holds below a directory renamed "
            "through another fid keep the old path (ENOENT); drvfs would have to walk them again",
        ),
    ),
    "rename_noreplace",
    "rename_open_file",
    *(
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=reason))
        for name, reason in [
            ("unlink_while_open", _PATH_FIDS + "ESTALE after the unlink"),
            ("temporary_files", _PATH_FIDS + "ESTALE after the unlink"),
            ("renamed_and_replaced_while_open", _PATH_FIDS + "the new file's attributes"),
            ("removed_directory_still_open", _PATH_FIDS + "ESTALE after the rmdir"),
        ]
    ),
    "hard_links",
    "symlinks",
    "long_names_and_odd_characters",
    "statvfs",
    "concurrent_io",
    "tar_round_trip",
    "big_file_checksum",
]


@pytest.fixture(scope="module")
def diod_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A drvfs mount of a diod export (one for the module: each check works in its own
    directory)."""
    from .guest.servers import start_diod

    tmp = tmp_path_factory.mktemp("diod")
    export, mountpoint = tmp / "export", tmp / "mnt"
    export.mkdir()
    mountpoint.mkdir()
    try:
        server = start_diod(export, tmp / "diod.log")
    except (OSError, RuntimeError) as e:
        pytest.skip(f"diod: {e}")
    mount = MountProcess(f"tcp:127.0.0.1:{server.port}", mountpoint, tmp / "drvfs.log", "",
                         aname=str(export))  # fmt: skip
    try:
        mount.start()
        yield mountpoint
    finally:
        try:
            mount.stop()
        finally:
            server.stop()
            print(f"--- drvfs log\n{mount.log()}")


@pytest.mark.parametrize("name", SERVER_NEUTRAL)
def test_posix_on_diod(name: str, diod_root: Path) -> None:
    check: Check = CHECKS[name]
    root = diod_root / name
    root.mkdir()
    check(root)


def test_diod_connection_is_plain(diod_root: Path) -> None:
    log = (diod_root.parent / "drvfs.log").read_text()
    assert "Traceback" not in log
    assert (diod_root / "x").exists() is False
