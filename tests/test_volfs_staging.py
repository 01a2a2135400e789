"""Creation with metadata on a host filesystem without O_TMPFILE, through the staging directory.

The host filesystem is a real FUSE passthrough (tests/passthrough_fs.py): FUSE
has user extended attributes but no O_TMPFILE, like NFS or SMB.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from ninep.backend import User
from ninep.constants import OpenFlag
from volfs import metadata
from volfs.export import open_export
from volfs.names import STAGING_DIR

from .passthrough_fs import mounted_passthrough
from .test_volfs import fails, shown

ROOT = User("root", 0)
DEAD_PID = 2**22 + 1  # above the kernel's pid_max limit: never a live process


async def test_the_staging_directory_is_hidden_at_the_root(export_dir: Path) -> None:
    (export_dir / STAGING_DIR).mkdir()
    (export_dir / "d" / STAGING_DIR).mkdir(parents=True)  # below the root: an ordinary name
    ex = open_export(str(export_dir), metadata=True)
    root = await ex.attach("", ROOT)
    assert await shown(root) == ["d"]
    for name in (STAGING_DIR, STAGING_DIR.upper()):
        with fails(errno.ENOENT):
            await root.walk(name)
        with fails(errno.ENOENT):
            await root.unlinkat(name, 0)
    with fails(errno.EPERM):
        await root.mkdir(STAGING_DIR, 0o755, 0)
    with fails(errno.EPERM):
        await root.renameat("d", root, STAGING_DIR)
    d = await root.walk("d")
    assert await shown(d) == [STAGING_DIR]
    await (await d.walk(STAGING_DIR.upper())).close()
    assert (export_dir / STAGING_DIR).is_dir() and (export_dir / "d").is_dir()
    ex.close()


@pytest.fixture
def no_tmpfile(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(host directory, FUSE passthrough of it): a filesystem without O_TMPFILE."""
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        pytest.skip("needs /dev/fuse and root to mount the passthrough filesystem")
    source, mnt = tmp_path / "source", tmp_path / "mnt"
    source.mkdir()
    mnt.mkdir()
    with mounted_passthrough(source, mnt):
        with pytest.raises(OSError) as info:
            os.close(os.open(mnt, os.O_TMPFILE | os.O_RDWR, 0o600))
        assert info.value.errno == errno.EOPNOTSUPP
        yield source, mnt


def test_objects_are_made_through_the_staging_directory(no_tmpfile: tuple[Path, Path]) -> None:
    source, mnt = no_tmpfile
    (source / STAGING_DIR).mkdir()
    (source / STAGING_DIR / f"{DEAD_PID}.0").write_bytes(b"left by a dead server")
    (source / STAGING_DIR / f"{DEAD_PID}.1").mkdir()  # a directory it was making

    async def main() -> None:
        ex = open_export(str(mnt), metadata=True)
        root = await ex.attach("", User("alice", 1000))
        await root.close()
        root = await ex.attach("", ROOT)
        await root.mkdir("d", 0o755, 0)
        d = await root.walk("d")
        f, h = await d.create("file", int(OpenFlag.RDWR | OpenFlag.CREAT), 0o640, 50)
        await h.write(0, b"data")
        await h.close()
        await d.symlink("link", "file", 0)
        await d.mknod("fifo", stat.S_IFIFO | 0o600, 0, 0, 0)
        await d.mknod("dev", stat.S_IFCHR | 0o600, 1, 3, 0)
        with fails(errno.EEXIST):
            await d.symlink("link", "elsewhere", 0)
        attrs = {name: (await (await d.walk(name)).getattr(0)) for name in await shown(d)}
        assert {n: stat.S_IFMT(a.mode) for n, a in attrs.items()} == {
            "dev": stat.S_IFCHR,
            "fifo": stat.S_IFIFO,
            "file": stat.S_IFREG,
            "link": stat.S_IFLNK,
        }
        assert (attrs["file"].mode & 0o7777, attrs["file"].gid) == (0o640, 50)
        assert attrs["dev"].rdev == os.makedev(1, 3)
        assert await (await d.walk("link")).readlink() == "file"
        assert await shown(root) == ["d"]
        await f.close()
        ex.close()

    trio.run(main)
    assert os.listdir(source / STAGING_DIR) == []  # the dead server's leftovers are swept too
    for name in ("file", "link", "fifo", "dev"):
        path = source / "d" / name
        assert path.is_file() and not path.is_symlink()
        assert metadata.XATTRS["mode"] in os.listxattr(path)
    assert (source / "d" / "link").read_bytes() == b"file"
