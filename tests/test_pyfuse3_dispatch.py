"""pyfuse3's dispatch (third_party/pyfuse3/fast-dispatch.patch): the worker that reads a
request keeps reading while the handlers it runs answer without waiting, and hands the FUSE
descriptor on to another worker when one waits (tests/taskfs.py tells which task answered)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .drvfs_harness import NEEDS_FUSE
from .taskfs import mounted_taskfs

pytestmark = NEEDS_FUSE


@pytest.fixture
def mnt(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "mnt").mkdir()
    with mounted_taskfs(tmp_path, tmp_path / "mnt") as mounted:
        yield mounted


def answered_by(path: Path) -> int:
    """The number of the worker task that answered the lookup of `path`."""
    return os.lstat(path).st_size


def test_requests_answered_without_waiting_stay_with_one_worker(mnt: Path) -> None:
    assert {answered_by(mnt / f"a{i}") for i in range(20)} == {1}
    answered_by(mnt / "checkpoint")  # waits once: another worker reads meanwhile
    assert len({answered_by(mnt / f"b{i}") for i in range(20)}) == 1


def read_answered_by(path: Path) -> int:
    """The number of the worker task that answered a read of `path`."""
    return int(path.read_bytes())


def test_a_waiting_handler_hands_the_descriptor_on(mnt: Path) -> None:
    with ThreadPoolExecutor(1) as pool:
        blocked = pool.submit(read_answered_by, mnt / "blocked")
        while not answered_by(mnt / "waiting"):  # served by another worker meanwhile
            pass
        releasing = answered_by(mnt / "release")
        assert blocked.result() != releasing
    assert answered_by(mnt / "after") == releasing
