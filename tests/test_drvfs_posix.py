"""The POSIX checks of tests/posix_checks.py, on a drvfs mount and on a local directory.

Each drvfs case starts a real server and a real FUSE mount (subprocesses) and
unmounts at the end, whatever happens; the local case runs the same check on a
plain directory, so a check that is wrong about POSIX fails there too. The
checks of files whose names change while they are open run on every attach
setup too (plain and metadata, case-insensitive and case-sensitive, and with
no attribute cache, so that every fstat reaches drvfs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .drvfs_harness import NEEDS_FUSE, drvfs_mount
from .posix_checks import CHECKS, Check

pytestmark = NEEDS_FUSE


@pytest.fixture(params=["drvfs", "local"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """An empty directory: the root of a fresh drvfs mount, or a local one."""
    if request.param == "local":
        path = tmp_path / "local"
        path.mkdir()
        yield path
        return
    with drvfs_mount(tmp_path, "allow_other,metadata") as (mountpoint, _server, _mount):
        yield mountpoint


@pytest.mark.parametrize("check", CHECKS.values(), ids=CHECKS.keys())
def test_posix(check: Check, root: Path) -> None:
    check(root)


OPEN_FILE_CHECKS = ("unlink_while_open", "unlinked_file_through_its_descriptor", "temporary_files",
                    "rename_open_file", "renamed_and_replaced_while_open",
                    "removed_directory_still_open")  # fmt: skip


@pytest.mark.parametrize(
    "options",
    ["case=off", "case=force", "metadata,case=force", "metadata,attr_timeout=0,entry_timeout=0"],
)
def test_open_files_whose_names_change(tmp_path: Path, options: str) -> None:
    with drvfs_mount(tmp_path, options) as (mountpoint, _server, _mount):
        for name in OPEN_FILE_CHECKS:
            (mountpoint / name).mkdir()
            CHECKS[name](mountpoint / name)
