"""The POSIX checks of tests/posix_checks.py, on a drvfs mount and on a local directory.

Each drvfs case starts a real server and a real FUSE mount (subprocesses) and
unmounts at the end, whatever happens; the local case runs the same check on a
plain directory, so a check that is wrong about POSIX fails there too.
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
