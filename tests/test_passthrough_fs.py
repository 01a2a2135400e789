"""tests/passthrough_fs.py: a real FUSE passthrough, with user xattrs and no O_TMPFILE."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from .drvfs_harness import NEEDS_FUSE, is_mounted
from .passthrough_fs import mounted_passthrough

pytestmark = NEEDS_FUSE


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(source, mountpoint): an empty source directory mounted through the passthrough."""
    source, mountpoint = tmp_path / "source", tmp_path / "mnt"
    source.mkdir()
    mountpoint.mkdir()
    with mounted_passthrough(source, mountpoint) as mounted:
        assert mounted == mountpoint
        yield source, mountpoint
    assert not is_mounted(mountpoint)


def test_data_passes_through(dirs: tuple[Path, Path]) -> None:
    src, mnt = dirs
    data = os.urandom(3 * 1024 * 1024 + 17)
    (mnt / "f").write_bytes(data)
    assert (src / "f").read_bytes() == data
    (src / "g").write_bytes(b"from the host")
    assert (mnt / "g").read_bytes() == b"from the host"
    with open(mnt / "f", "r+b") as f:  # in place, then truncated
        f.seek(10)
        f.write(b"XYZ")
        f.truncate(20)
    assert (src / "f").read_bytes() == data[:10] + b"XYZ" + data[13:20]
    os.truncate(mnt / "g", 4)
    os.chmod(mnt / "g", 0o640)
    os.chown(mnt / "g", 1234, 5678)
    os.utime(mnt / "g", ns=(1_000_000_001, 2_000_000_002))
    st = (src / "g").stat()
    assert (st.st_size, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (4, 0o640, 1234, 5678)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_001, 2_000_000_002)
    assert (mnt / "g").stat().st_ino == st.st_ino
    fd = os.open(mnt / "h", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:  # an open file outlives its name
        os.unlink(mnt / "h")
        os.write(fd, b"still here")
        assert os.pread(fd, 100, 0) == b"still here"
        assert os.fstat(fd).st_size == 10
    finally:
        os.close(fd)
    assert sorted(os.listdir(mnt)) == sorted(os.listdir(src)) == ["f", "g"]
    assert os.statvfs(mnt).f_blocks == os.statvfs(src).f_blocks


def test_names(dirs: tuple[Path, Path]) -> None:
    src, mnt = dirs
    (mnt / "d").mkdir(mode=0o750)
    assert stat.S_IMODE((src / "d").stat().st_mode) == 0o750 & ~_umask()
    (mnt / "d" / "f").write_bytes(b"f")
    os.rename(mnt / "d", mnt / "e")  # a directory: what was below it moves too
    assert (mnt / "e" / "f").read_bytes() == b"f"
    assert (src / "e" / "f").exists() and not (src / "d").exists()
    os.rename(mnt / "e" / "f", mnt / "g")
    os.symlink("g", mnt / "s")
    assert os.readlink(src / "s") == "g" and os.readlink(mnt / "s") == "g"
    assert (mnt / "s").read_bytes() == b"f"
    os.link(mnt / "g", mnt / "h")
    assert (mnt / "h").stat().st_nlink == 2 == (src / "g").stat().st_nlink
    assert (mnt / "h").stat().st_ino == (mnt / "g").stat().st_ino == (src / "h").stat().st_ino
    (mnt / "t").write_bytes(b"t")
    os.rename(mnt / "t", mnt / "h")  # over an existing name
    assert (src / "h").read_bytes() == b"t" and (mnt / "g").read_bytes() == b"f"
    os.unlink(mnt / "g")
    os.rmdir(mnt / "e")
    os.mkfifo(mnt / "p", 0o600)
    assert stat.S_ISFIFO((src / "p").lstat().st_mode)
    assert sorted(os.listdir(src)) == ["h", "p", "s"]
    assert sorted(os.listdir(mnt)) == ["h", "p", "s"]


def test_xattrs_reach_the_source(dirs: tuple[Path, Path]) -> None:
    src, mnt = dirs
    (mnt / "f").write_bytes(b"")
    os.setxattr(mnt / "f", "user.x", b"1")
    assert os.getxattr(src / "f", "user.x") == b"1"
    os.setxattr(mnt / "f", "trusted.y", b"2")
    assert os.getxattr(src / "f", "trusted.y") == b"2"
    os.setxattr(src / "f", "user.z", b"3" * 1000)
    assert os.getxattr(mnt / "f", "user.z") == b"3" * 1000
    assert sorted(os.listxattr(mnt / "f")) == ["trusted.y", "user.x", "user.z"]
    os.removexattr(mnt / "f", "user.x")
    assert sorted(os.listxattr(src / "f")) == ["trusted.y", "user.z"]
    with pytest.raises(OSError) as missing:
        os.getxattr(mnt / "f", "user.x")
    assert missing.value.errno == errno.ENODATA
    with pytest.raises(FileExistsError):
        os.setxattr(mnt / "f", "user.z", b"", os.XATTR_CREATE)


def test_no_o_tmpfile(dirs: tuple[Path, Path]) -> None:
    _src, mnt = dirs
    with pytest.raises(OSError) as refused:
        os.close(os.open(mnt, os.O_TMPFILE | os.O_RDWR, 0o600))
    assert refused.value.errno == errno.EOPNOTSUPP, os.strerror(refused.value.errno or 0)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
