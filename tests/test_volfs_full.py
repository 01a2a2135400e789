"""Creation with metadata on a full filesystem: an error at any step leaves nothing behind.

The host filesystem is a small tmpfs the test mounts, whose inodes and user
extended attributes draw on one budget (its "inode space", nr_inodes x 1 KiB).
The budget is filled with ballast attributes, then freed one attribute at a
time; at each level every kind of creation is tried, so that one fails at
each of its steps in turn (the object, then its attributes) until it fits.
The tmpfs is the export's root, or a directory below it: another filesystem
than the staging directory's, where a directory is made in place and removed
if its attributes cannot be stored.
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
from ninep.constants import AT_REMOVEDIR, OpenFlag
from volfs import metadata
from volfs.export import VolExport
from volfs.names import STAGING_DIR

ROOT = User("root", 0)
BALLAST_FILES = 8


@pytest.fixture(params=["root", "below"])
def small_fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(export, a tmpfs of 64 inodes' worth of inode space mounted for the test): the
    export's root itself, or a directory below it (on another filesystem than its root's)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    export = tmp_path / "export"
    mnt = export if request.param == "root" else export / "small"
    mnt.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=64,mode=0755", "tmpfs",
                    str(mnt)], check=True)  # fmt: skip
    try:
        try:
            os.setxattr(mnt, "user.probe", b"1")
        except OSError as e:
            pytest.skip(f"no user extended attributes on tmpfs here: {e.strerror}")
        os.removexattr(mnt, "user.probe")
        yield export, mnt
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
    small_fs: tuple[Path, Path], kind: str
) -> None:
    export, small = small_fs  # below the root, a directory is made in place (EXDEV)
    ex = VolExport(str(export), metadata=True)
    root = await ex.attach("", ROOT)
    await root.mkdir("x", 0o755, 0)  # the staging directory is made with it
    host = export / "x" if small == export else small  # where objects are made
    work = await root.walk(host.name)
    ballast = Ballast(small / "ballast")
    make, outcomes = MAKERS[kind], list[str]()
    while len(outcomes) < 3 or outcomes[-3:] != ["made"] * 3:
        try:
            await make(work, "new")
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
            outcomes.append("midway" if _fits_a_directory(host) else "at once")
            assert "new" not in os.listdir(host)
        else:
            outcomes.append("made")
            assert metadata.XATTRS["mode"] in os.listxattr(host / "new")
            await work.unlinkat("new", AT_REMOVEDIR if kind == "mkdir" else 0)
        assert os.listdir(export / STAGING_DIR) == []
        ballast.free_one()
    assert "midway" in outcomes, outcomes  # failed after its first step, at least once
    await work.close()
    await root.close()
    ex.close()
