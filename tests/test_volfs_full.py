"""Creation with metadata on a full filesystem: an error at any step leaves nothing behind.

The host filesystem is a small tmpfs the test mounts, whose inodes and user
extended attributes draw on one budget (its "inode space", nr_inodes x 1 KiB).
The budget is filled with ballast attributes, then freed one attribute at a
time; at each level every kind of creation is tried, so that one fails at
each of its steps in turn (the object, then its attributes) until it fits.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from ninep.backend import File, User
from ninep.constants import OpenFlag
from volfs import metadata
from volfs.export import VolExport
from volfs.names import STAGING_DIR

ROOT = User("root", 0)
BALLAST_FILES = 8


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 64 inodes' worth of inode space, mounted for the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=64,mode=0755", "tmpfs",
                    str(mnt)], check=True)  # fmt: skip
    try:
        try:
            os.setxattr(mnt, "user.probe", b"1")
        except OSError as e:
            pytest.skip(f"no user extended attributes on tmpfs here: {e.strerror}")
        os.removexattr(mnt, "user.probe")
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


class Ballast:
    """Attributes on a few files of the filesystem that hold all of its free inode space."""

    def __init__(self, top: Path) -> None:
        top.mkdir()
        self.files = [top / str(i) for i in range(BALLAST_FILES)]
        for f in self.files:
            f.touch()
        self.names: list[tuple[Path, str]] = []
        for i in itertools.count():
            f, name = self.files[i % BALLAST_FILES], f"user.b{i}"
            try:
                os.setxattr(f, name, b"x")
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
            self.names.append((f, name))

    def free_one(self) -> None:
        f, name = self.names.pop()
        os.removexattr(f, name)


def _fits_a_directory(top: Path) -> bool:
    """Whether one more bare directory fits (the first step of a creation)."""
    try:
        (top / "probe").mkdir()
    except OSError:
        return False
    (top / "probe").rmdir()
    return True


Make = Callable[[File, str], Awaitable[object]]


async def _create(d: File, name: str) -> None:
    f, h = await d.create(name, int(OpenFlag.RDWR | OpenFlag.EXCL), 0o640, 0)
    await h.close()
    await f.close()


MAKERS: dict[str, Make] = {
    "mkdir": lambda d, name: d.mkdir(name, 0o750, 0),
    "create": _create,
    "symlink": lambda d, name: d.symlink(name, "some/target", 0),
    "mknod": lambda d, name: d.mknod(name, stat.S_IFIFO | 0o640, 0, 0, 0),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
async def test_creation_on_a_full_filesystem_leaves_nothing_behind(
    small_fs: Path, kind: str
) -> None:
    ex = VolExport(str(small_fs), metadata=True)
    root = await ex.attach("", ROOT)
    await root.mkdir("work", 0o755, 0)  # the staging directory is made with it
    work = await root.walk("work")
    ballast = Ballast(small_fs / "ballast")
    make, outcomes = MAKERS[kind], list[str]()
    while len(outcomes) < 3 or outcomes[-3:] != ["made"] * 3:
        try:
            await make(work, "new")
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
            outcomes.append("midway" if _fits_a_directory(small_fs / "work") else "at once")
            assert os.listdir(small_fs / "work") == []
        else:
            outcomes.append("made")
            assert metadata.XATTRS["mode"] in os.listxattr(small_fs / "work" / "new")
            await work.unlinkat("new", 0x200 if kind == "mkdir" else 0)
        staged = small_fs / STAGING_DIR
        assert not staged.exists() or os.listdir(staged) == []
        ballast.free_one()
    assert "midway" in outcomes, outcomes  # failed after its first step, at least once
    await work.close()
    await root.close()
    ex.close()
