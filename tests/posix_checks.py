"""POSIX checks that take a directory and exercise it with the standard library.

They are run on a drvfs mount and on a plain local directory (see
tests/test_drvfs_posix.py): a check must pass on a native filesystem, so that a
failure on drvfs means drvfs (or the server) is wrong, not the check. The tests
run as root, so nothing here relies on permission bits stopping anyone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import filecmp
import hashlib
import mmap
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

Check = Callable[[Path], None]
CHECKS: dict[str, Check] = {}

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def check(fn: Check) -> Check:
    """Register a check under its name without the `check_` prefix."""
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


def renameat2(old: Path, new: Path, flags: int) -> None:
    """rename(2) with flags (RENAME_NOREPLACE, RENAME_EXCHANGE)."""
    if _libc.renameat2(AT_FDCWD, bytes(old), AT_FDCWD, bytes(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(new))


@contextlib.contextmanager
def raises_errno(code: int) -> Iterator[None]:
    """Expect an OSError with exactly `code`."""
    with pytest.raises(OSError) as info:
        yield
    assert info.value.errno == code, info.value


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _errno(fn: Callable[[], object]) -> int | None:
    try:
        fn()
    except OSError as e:
        return e.errno
    return None


# ---- files ----


@check
def check_write_read_and_offsets(root: Path) -> None:
    path = root / "f.bin"
    path.write_bytes(b"hello world")
    assert path.read_bytes() == b"hello world"
    fd = os.open(path, os.O_RDWR)
    try:
        assert os.pwrite(fd, b"WORLD", 6) == 5
        assert os.pread(fd, 100, 0) == b"hello WORLD"
        assert os.pread(fd, 5, 100) == b""
        os.pwrite(fd, b"end", 1 << 20)  # a hole in between
        assert os.fstat(fd).st_size == (1 << 20) + 3
        assert os.pread(fd, 4, 1000) == b"\0" * 4
        assert os.lseek(fd, 0, os.SEEK_END) == (1 << 20) + 3
    finally:
        os.close(fd)
    with open(path, "ab") as f:
        f.write(b"+more")
    assert path.read_bytes().endswith(b"end+more")


@check
def check_truncate(root: Path) -> None:
    path = root / "t"
    path.write_bytes(b"x" * 10000)
    os.truncate(path, 100)
    assert path.stat().st_size == 100
    with open(path, "r+b") as f:
        f.truncate(5000)
        assert os.fstat(f.fileno()).st_size == 5000
    assert path.read_bytes() == b"x" * 100 + b"\0" * 4900
    with open(path, "wb") as f:  # O_TRUNC
        f.write(b"ab")
    assert path.read_bytes() == b"ab"


@check
def check_open_flags(root: Path) -> None:
    path = root / "o"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, b"abc")
    assert _errno(lambda: os.read(fd, 1)) == errno.EBADF
    os.close(fd)
    assert _errno(lambda: os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)) == errno.EEXIST
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"def")
    os.close(fd)
    assert path.read_bytes() == b"abcdef"
    assert _errno(lambda: os.open(path, os.O_RDONLY | os.O_DIRECTORY)) == errno.ENOTDIR
    assert _errno(lambda: os.open(root / "missing", os.O_RDONLY)) == errno.ENOENT
    assert _errno(lambda: os.open(root, os.O_WRONLY)) == errno.EISDIR


@check
def check_modes_and_umask(root: Path) -> None:
    with umask(0o022):
        fd = os.open(root / "m", os.O_CREAT | os.O_WRONLY, 0o666)
        os.close(fd)
        os.mkdir(root / "d", 0o777)
    assert stat.S_IMODE((root / "m").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "d").stat().st_mode) == 0o755
    os.chmod(root / "m", 0o4751)
    st = (root / "m").stat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o4751
    os.chmod(root / "d", 0o1700)
    assert stat.S_IMODE((root / "d").stat().st_mode) == 0o1700
    with open(root / "m", "rb") as f:  # fchmod
        os.fchmod(f.fileno(), 0o600)
    assert stat.S_IMODE((root / "m").stat().st_mode) == 0o600


@check
def check_owner(root: Path) -> None:
    path = root / "owned"
    path.write_bytes(b"")
    os.chown(path, 1234, 5678)
    st = path.stat()
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    os.chown(path, -1, 42)
    assert (path.stat().st_uid, path.stat().st_gid) == (1234, 42)
    os.symlink("owned", root / "link")
    os.lchown(root / "link", 77, 88)
    assert (os.lstat(root / "link").st_uid, os.lstat(root / "link").st_gid) == (77, 88)
    assert path.stat().st_uid == 1234


@check
def check_made_by_another_user(root: Path) -> None:
    os.chmod(root, 0o777)
    # A shell, not Python: the interpreter may sit where that user cannot read.
    script = "echo x > f && mkdir d && mkfifo p && ln -s f l && echo y >> f"
    subprocess.run(["sh", "-c", script], cwd=root, user=4321, group=4322, extra_groups=[],
                   check=True, timeout=60)  # fmt: skip
    for name in ("f", "d", "p", "l"):
        st = os.lstat(root / name)
        assert (st.st_uid, st.st_gid) == (4321, 4322), name
    assert (root / "f").read_text() == "x\ny\n"


@check
def check_times(root: Path) -> None:
    path = root / "timed"
    path.write_bytes(b"x")
    os.utime(path, ns=(1_000_000_123, 2_000_000_456))
    st = path.stat()
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 2_000_000_456)
    os.utime(path, ns=(-5_000_000_000, 3_000_000_000))  # before 1970
    assert path.stat().st_atime_ns == -5_000_000_000
    before = path.stat().st_mtime_ns
    os.utime(path)  # now
    assert path.stat().st_mtime_ns > before
    with open(path, "rb") as f:  # futimens
        os.utime(f.fileno(), ns=(7_000_000_000, 8_000_000_000))
    assert path.stat().st_mtime_ns == 8_000_000_000


@check
def check_write_updates_mtime_and_size(root: Path) -> None:
    path = root / "grow"
    path.write_bytes(b"a")
    os.utime(path, ns=(0, 0))
    with open(path, "ab") as f:
        f.write(b"bc")
    st = path.stat()
    assert st.st_size == 3 and st.st_mtime_ns > 0


@check
def check_unlink_while_open(root: Path) -> None:
    path = root / "gone"
    path.write_bytes(b"still here")
    with open(path, "r+b") as f:
        path.unlink()
        assert not path.exists()
        assert f.read() == b"still here"
        f.write(b"!")
        f.flush()
        f.seek(0)
        assert f.read() == b"still here!"
    assert _errno(path.unlink) == errno.ENOENT
    assert list(root.iterdir()) == []


_FD_LOCKER = """
import fcntl, sys
fd = int(sys.argv[1])
for lock in (lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB),
             lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)):
    try:
        lock()
    except OSError:
        print("busy")
    else:
        print("locked")
"""


def _other_process_locks_fd(fd: int) -> list[str]:
    """What another process holding the same open file description can lock."""
    out = subprocess.run([sys.executable, "-c", _FD_LOCKER, str(fd)], pass_fds=(fd,),
                         capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return out.stdout.split()


def _mode_after_chmod(root: Path, mode: int) -> int:
    """The mode a new file of `root` shows after chmod to `mode` (without metadata, a
    WSL-like mount keeps only whether it is writable)."""
    probe = root / "probe"
    probe.touch()
    try:
        probe.chmod(mode)
        return probe.stat().st_mode
    finally:
        probe.unlink()


@check
def check_unlinked_file_through_its_descriptor(root: Path) -> None:
    """unlink(2) leaves the open file whole: fstat shows nlink 0, and every call on the
    descriptor works (POSIX conformance suites' unlink/14)."""
    path = root / "f1"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        assert os.write(fd, b"hello, world!") == 13
        os.unlink(path)
        st = os.fstat(fd)
        assert (st.st_nlink, st.st_size) == (0, 13)
        assert os.pread(fd, 100, 0) == b"hello, world!"
        assert os.pwrite(fd, b"W", 7) == 1
        assert os.pread(fd, 5, 7) == b"World"
        os.ftruncate(fd, 5)
        assert os.fstat(fd).st_size == 5 and os.pread(fd, 100, 0) == b"hello"
        os.fsync(fd)
        os.fdatasync(fd)
        os.fchmod(fd, 0o600)
        os.utime(fd, ns=(1_000_000_000, 2_000_000_000))
        st = os.fstat(fd)
        assert st.st_mode == _mode_after_chmod(root, 0o600) and st.st_mtime_ns == 2_000_000_000
        assert st.st_nlink == 0
        fcntl.lockf(fd, fcntl.LOCK_EX, 0, 0)
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert _other_process_locks_fd(fd) == ["busy", "locked"]  # flock: the same description
        fcntl.lockf(fd, fcntl.LOCK_UN, 0, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert not path.exists()
    finally:
        os.close(fd)
    assert list(root.iterdir()) == []


@check
def check_temporary_files(root: Path) -> None:
    """What compilers, sqlite and editors do: create, unlink, keep using."""
    with tempfile.TemporaryFile(dir=root) as f:
        assert list(root.iterdir()) == []
        f.write(b"x" * 100_000)
        f.seek(0)
        assert f.read() == b"x" * 100_000
        assert os.fstat(f.fileno()).st_size == 100_000
    with tempfile.NamedTemporaryFile(dir=root, delete=True) as g:
        g.write(b"named")
        g.flush()
        assert Path(g.name).read_bytes() == b"named"
        os.unlink(g.name)  # as a program that removes it early
        g.seek(0)
        assert g.read() == b"named" and os.fstat(g.fileno()).st_nlink == 0
        with pytest.raises(FileNotFoundError):
            g.close()  # delete=True: the name is gone already
    assert list(root.iterdir()) == []


@check
def check_renamed_and_replaced_while_open(root: Path) -> None:
    """An open file renamed, then replaced by a rename over its name: the descriptor
    keeps the file it opened; the name leads to the new one."""
    fd = os.open(root / "old", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"first")
        os.rename(root / "old", root / "moved")
        assert os.fstat(fd).st_nlink == 1 and os.fstat(fd).st_ino == (root / "moved").stat().st_ino
        assert os.pwrite(fd, b"!", 5) == 1
        assert (root / "moved").read_bytes() == b"first!"
        (root / "new").write_bytes(b"second")
        os.chmod(root / "new", 0o604)
        os.rename(root / "new", root / "moved")  # replaces the open file
        st = os.fstat(fd)
        assert (st.st_nlink, st.st_size) == (0, 6)
        assert st.st_ino != (root / "moved").stat().st_ino
        assert os.pread(fd, 100, 0) == b"first!"
        os.pwrite(fd, b"more", 6)
        os.fchmod(fd, 0o640)
        assert os.fstat(fd).st_mode == _mode_after_chmod(root, 0o640)
        assert os.pread(fd, 100, 0) == b"first!more"
        assert (root / "moved").read_bytes() == b"second"
        assert (root / "moved").stat().st_mode == _mode_after_chmod(root, 0o604)
    finally:
        os.close(fd)
    assert sorted(os.listdir(root)) == ["moved"]
    assert (root / "moved").read_bytes() == b"second"


@check
def check_removed_directory_still_open(root: Path) -> None:
    """An open directory and a working directory, removed: fstat shows nlink 0 and they
    list nothing; renamed: they keep their entries."""
    (root / "d").mkdir()
    fd = os.open(root / "d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.rmdir(root / "d")
        assert os.fstat(fd).st_nlink == 0
        assert os.listdir(fd) == []
    finally:
        os.close(fd)
    (root / "cwd").mkdir()
    (root / "e" / "inner").mkdir(parents=True)
    (root / "e" / "inner" / "f").write_text("kept")
    fd = os.open(root / "e", os.O_RDONLY | os.O_DIRECTORY)
    here = os.getcwd()
    try:
        os.chdir(root / "cwd")
        os.rmdir(root / "cwd")
        assert os.stat(".").st_nlink == 0 and os.listdir(".") == []
        os.rename(root / "e", root / "renamed")
        assert os.fstat(fd).st_nlink == 3 and sorted(os.listdir(fd)) == ["inner"]
        os.chdir(root / "renamed" / "inner")
        os.rename(root / "renamed", root / "again")
        assert Path("f").read_text() == "kept" and os.stat(".").st_nlink == 2
    finally:
        os.chdir(here)
        os.close(fd)
    assert os.listdir(root) == ["again"]


@check
def check_fsync(root: Path) -> None:
    with open(root / "s", "wb") as f:
        f.write(b"data")
        f.flush()
        os.fsync(f.fileno())
        os.fdatasync(f.fileno())
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    assert (root / "s").read_bytes() == b"data"


@check
def check_mmap(root: Path) -> None:
    path = root / "mapped"
    path.write_bytes(b"\0" * 8192)
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 8192) as m:
        m[4090:4100] = b"0123456789"
        m.flush()
    assert path.read_bytes()[4090:4100] == b"0123456789"
    with open(path, "rb") as r, mmap.mmap(r.fileno(), 0, prot=mmap.PROT_READ) as m:
        assert m[4095] == ord("5")


# ---- names ----


@check
def check_directories(root: Path) -> None:
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "c" / "f").write_text("x")
    assert _errno(lambda: os.mkdir(root / "a")) == errno.EEXIST
    assert _errno(lambda: os.rmdir(root / "a")) == errno.ENOTEMPTY
    assert _errno(lambda: os.rmdir(root / "a" / "b" / "c" / "f")) == errno.ENOTDIR
    assert _errno(lambda: os.unlink(root / "a")) in (errno.EISDIR, errno.EPERM)
    assert _errno(lambda: (root / "a" / "b" / "c" / "f" / "x").stat()) == errno.ENOTDIR
    assert _errno(lambda: os.mkdir(root / "nope" / "x")) == errno.ENOENT
    assert sorted(os.listdir(root / "a" / "b")) == ["c"]
    assert (root / "a").stat().st_nlink == 3  # itself, its entry, b's ..
    shutil.rmtree(root / "a")
    assert os.listdir(root) == []


@check
def check_many_entries(root: Path) -> None:
    names = {f"file-{i:04d}-{'x' * (i % 40)}" for i in range(300)}
    for name in names:
        (root / name).write_bytes(name.encode())
    os.mkdir(root / "sub")
    assert set(os.listdir(root)) == names | {"sub"}
    with os.scandir(root) as it:
        entries = list(it)
    assert len(entries) == len(names) + 1
    for e in entries:
        st = os.stat(e.path, follow_symlinks=False)
        assert e.inode() == st.st_ino
        assert e.is_dir() == (e.name == "sub") and e.is_file() == (e.name != "sub")
    for i, name in enumerate(sorted(names)):
        if i % 2:
            (root / name).unlink()
    assert len(os.listdir(root)) == len(names) // 2 + 1


@check
def check_rename(root: Path) -> None:
    (root / "a").write_text("A")
    (root / "b").write_text("B")
    os.rename(root / "a", root / "b")  # replaces b
    assert (root / "b").read_text() == "A" and not (root / "a").exists()
    (root / "d1" / "inner").mkdir(parents=True)
    (root / "d1" / "inner" / "f").write_text("deep")
    os.rename(root / "d1", root / "d2")
    assert (root / "d2" / "inner" / "f").read_text() == "deep"
    os.rename(root / "b", root / "d2" / "inner" / "moved")  # into another directory
    assert (root / "d2" / "inner" / "moved").read_text() == "A"
    (root / "full").mkdir()
    (root / "full" / "x").write_text("")
    assert _errno(lambda: os.rename(root / "d2", root / "full")) in (errno.ENOTEMPTY, errno.EEXIST)
    (root / "empty").mkdir()
    os.rename(root / "d2", root / "empty")  # over an empty directory
    assert (root / "empty" / "inner" / "f").read_text() == "deep"
    assert _errno(lambda: os.rename(root / "empty", root / "empty" / "inner" / "x")) == errno.EINVAL
    assert _errno(lambda: os.rename(root / "nothing", root / "y")) == errno.ENOENT


@check
def check_rename_noreplace(root: Path) -> None:
    (root / "src").write_text("s")
    (root / "dst").write_text("d")
    with raises_errno(errno.EEXIST):
        renameat2(root / "src", root / "dst", RENAME_NOREPLACE)
    renameat2(root / "src", root / "new", RENAME_NOREPLACE)
    assert (root / "new").read_text() == "s" and not (root / "src").exists()


@check
def check_rename_open_file(root: Path) -> None:
    with open(root / "before", "w+b") as f:
        f.write(b"one")
        f.flush()
        os.rename(root / "before", root / "after")
        f.write(b"two")
        f.flush()
    assert (root / "after").read_bytes() == b"onetwo"


@check
def check_hard_links(root: Path) -> None:
    (root / "orig").write_bytes(b"shared")
    os.link(root / "orig", root / "alias")
    a, b = (root / "orig").stat(), (root / "alias").stat()
    assert a.st_ino == b.st_ino and a.st_nlink == b.st_nlink == 2
    with open(root / "alias", "ab") as f:
        f.write(b"+")
    assert (root / "orig").read_bytes() == b"shared+"
    (root / "orig").unlink()
    assert (root / "alias").stat().st_nlink == 1
    assert _errno(lambda: os.link(root / "alias", root / "alias")) == errno.EEXIST


@check
def check_symlinks(root: Path) -> None:
    (root / "target").write_text("T")
    os.symlink("target", root / "rel")
    os.symlink("/nonexistent/elsewhere", root / "dangling")
    (root / "dir").mkdir()
    os.symlink("dir", root / "dirlink")
    assert os.readlink(root / "rel") == "target"
    assert os.readlink(root / "dangling") == "/nonexistent/elsewhere"
    assert stat.S_ISLNK(os.lstat(root / "rel").st_mode)
    assert os.lstat(root / "rel").st_size == len("target")
    assert (root / "rel").read_text() == "T"
    assert not (root / "dangling").exists() and (root / "dangling").is_symlink()
    (root / "dirlink" / "via").write_text("v")
    assert (root / "dir" / "via").read_text() == "v"
    assert _errno(lambda: os.readlink(root / "target")) == errno.EINVAL
    long_target = "x/" * 500 + "end"
    os.symlink(long_target, root / "long")
    assert os.readlink(root / "long") == long_target


@check
def check_special_files(root: Path) -> None:
    os.mkfifo(root / "fifo", 0o600)
    assert stat.S_ISFIFO(os.stat(root / "fifo").st_mode)
    fd = os.open(root / "fifo", os.O_RDWR | os.O_NONBLOCK)  # both ends: no waiting
    try:
        os.write(fd, b"through the pipe")
        assert os.read(fd, 100) == b"through the pipe"
    finally:
        os.close(fd)
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    st = os.stat(root / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    os.mknod(root / "plain", stat.S_IFREG | 0o640)
    assert stat.S_ISREG(os.stat(root / "plain").st_mode)


@check
def check_long_names_and_odd_characters(root: Path) -> None:
    for name in ("space name", "ünïcödé-名前", "tab\tand\nnewline", "x" * 255, "-dash", ".hidden"):
        (root / name).write_text(name)
        assert (root / name).read_text() == name
    assert len(os.listdir(root)) == 6
    assert _errno(lambda: (root / ("y" * 256)).write_text("")) == errno.ENAMETOOLONG


# ---- attributes of the filesystem and extended attributes ----


@check
def check_statvfs(root: Path) -> None:
    vfs = os.statvfs(root)
    assert vfs.f_bsize > 0 and vfs.f_blocks > 0 and vfs.f_bavail <= vfs.f_blocks
    assert vfs.f_namemax >= 255


@check
def check_xattrs(root: Path) -> None:
    path = root / "x"
    path.write_bytes(b"")
    os.setxattr(path, "user.one", b"1")
    os.setxattr(path, "user.big", bytes(range(256)) * 4)  # ext4 keeps ~4 KiB per file
    assert os.getxattr(path, "user.one") == b"1"
    assert os.getxattr(path, "user.big") == bytes(range(256)) * 4
    assert {"user.one", "user.big"} <= set(os.listxattr(path))
    with raises_errno(errno.EEXIST):
        os.setxattr(path, "user.one", b"2", os.XATTR_CREATE)
    with raises_errno(errno.ENODATA):
        os.setxattr(path, "user.none", b"2", os.XATTR_REPLACE)
    os.setxattr(path, "user.one", b"replaced", os.XATTR_REPLACE)
    assert os.getxattr(path, "user.one") == b"replaced"
    os.removexattr(path, "user.one")
    with raises_errno(errno.ENODATA):
        os.getxattr(path, "user.one")
    with raises_errno(errno.ENODATA):
        os.removexattr(path, "user.one")
    (root / "d").mkdir()
    os.setxattr(root / "d", "user.on-dir", b"yes")
    assert os.getxattr(root / "d", "user.on-dir") == b"yes"


# ---- locks, concurrency, real programs ----

_LOCKER = """
import fcntl, sys
with open(sys.argv[1], "r+b") as f:
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
    except OSError:
        print("busy")
    else:
        print("locked")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("busy")
    else:
        print("locked")
"""


def _other_process_locks(path: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _LOCKER, str(path)],
                         capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return out.stdout.split()


@check
def check_locks_between_processes(root: Path) -> None:
    path = root / "locked"
    path.write_bytes(b"0" * 100)
    with open(path, "r+b") as f:
        fcntl.lockf(f, fcntl.LOCK_EX, 10, 0)
        fcntl.flock(f, fcntl.LOCK_EX)
        assert _other_process_locks(path) == ["busy", "busy"]
        fcntl.lockf(f, fcntl.LOCK_UN, 10, 0)
        fcntl.flock(f, fcntl.LOCK_UN)
    assert _other_process_locks(path) == ["locked", "locked"]


_SQLITE_WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=60)
for i in range(int(sys.argv[3])):
    with db:
        db.execute("INSERT INTO t (who, n) VALUES (?, ?)", (sys.argv[2], i))
db.close()
"""


@check
def check_sqlite_two_writers(root: Path) -> None:
    path = root / "db.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT, n INTEGER)")
    rows = 60
    writers = [
        subprocess.Popen([sys.executable, "-c", _SQLITE_WRITER, str(path), who, str(rows)])
        for who in ("a", "b")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        counts = dict(db.execute("SELECT who, COUNT(DISTINCT n) FROM t GROUP BY who"))
    assert counts == {"a": rows, "b": rows}


@check
def check_concurrent_io(root: Path) -> None:
    def work(i: int) -> None:
        data = bytes([i]) * (3 << 20 | i)
        (root / f"w{i}").write_bytes(data)
        assert (root / f"w{i}").read_bytes() == data
        os.listdir(root)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))  # raises what a thread raised
    assert sorted(os.listdir(root)) == sorted(f"w{i}" for i in range(8))
    for i in range(8):
        assert (root / f"w{i}").stat().st_size == 3 << 20 | i


def _stdlib_tree() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


STDLIB_PACKAGES = ("json", "email", "asyncio")


def _assert_same_tree(a: Path, b: Path) -> int:
    """Compare two trees file by file (content, mode, mtime seconds); the number of files.

    `__pycache__` directories are left out (the archives leave them out).
    """
    count = 0
    for dirpath, dirnames, filenames in os.walk(a):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel = Path(dirpath).relative_to(a)
        theirs = [n for n in os.listdir(b / rel) if n != "__pycache__"]
        assert sorted(theirs) == sorted(dirnames + filenames), rel
        for name in filenames:
            x, y = Path(dirpath) / name, b / rel / name
            sx, sy = os.lstat(x), os.lstat(y)
            assert sx.st_mode == sy.st_mode, y
            assert int(sx.st_mtime) == int(sy.st_mtime), y
            assert filecmp.cmp(x, y, shallow=False), y
            count += 1
    return count


@check
def check_tar_round_trip(root: Path) -> None:
    stdlib = _stdlib_tree()
    archive = root / "stdlib.tar"
    with tarfile.open(archive, "w") as tar:
        for package in STDLIB_PACKAGES:
            tar.add(stdlib / package, arcname=package,
                    filter=lambda t: None if "__pycache__" in t.name else t)  # fmt: skip
    with tarfile.open(archive) as tar:
        tar.extractall(root / "out", filter="tar")
    files = sum(_assert_same_tree(root / "out" / p, stdlib / p) for p in STDLIB_PACKAGES)
    assert files > 50
    with tempfile.TemporaryDirectory() as back, tarfile.open(root / "again.tar", "w") as tar:
        tar.add(root / "out", arcname="out")  # and back out of the directory under test
        tar.close()
        with tarfile.open(root / "again.tar") as again:
            again.extractall(back, filter="tar")
        assert _assert_same_tree(root / "out", Path(back) / "out") == files


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd), "LC_ALL": "C"}
    done = subprocess.run(
        ["git", "-c", "user.name=drvfs", "-c", "user.email=drvfs@example.com",
         "-c", "init.defaultBranch=main", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


@check
def check_git_clone_fsck_status(root: Path) -> None:
    assert shutil.which("git"), "git is missing: make test installs it (scripts/system-deps)"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(_stdlib_tree() / "json", src / "json",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        (src / "run.sh").write_text("#!/bin/sh\necho hi\n")
        (src / "run.sh").chmod(0o755)
        os.symlink("json/__init__.py", src / "link")
        _git("init", "-q", cwd=src)
        _git("add", "-A", cwd=src)
        _git("commit", "-q", "-m", "first", cwd=src)
        (src / "json" / "extra.txt").write_text("second commit\n")
        _git("add", "-A", cwd=src)
        _git("commit", "-q", "-m", "second", cwd=src)
        _git("clone", "-q", "--no-hardlinks", str(src), str(root / "clone"), cwd=root)
    clone = root / "clone"
    _git("fsck", "--full", "--strict", cwd=clone)
    assert _git("status", "--porcelain", cwd=clone) == ""
    assert os.readlink(clone / "link") == "json/__init__.py"
    assert os.access(clone / "run.sh", os.X_OK)
    (clone / "json" / "extra.txt").write_text("changed\n")
    assert _git("status", "--porcelain", cwd=clone).split() == ["M", "json/extra.txt"]
    _git("commit", "-q", "-am", "third", cwd=clone)
    _git("gc", "-q", "--prune=now", cwd=clone)
    _git("fsck", "--full", "--strict", cwd=clone)
    assert _git("status", "--porcelain", cwd=clone) == ""
    assert len(_git("log", "--oneline", cwd=clone).splitlines()) == 3


BIG = 256 << 20


@check
def check_big_file_checksum(root: Path) -> None:
    block = os.urandom(1 << 20)
    written = hashlib.sha256()
    with open(root / "big", "wb") as f:
        for i in range(BIG >> 20):
            chunk = i.to_bytes(8, "little") + block[8:]
            written.update(chunk)
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)  # read from the filesystem
    read = hashlib.sha256()
    with open(root / "big", "rb", buffering=0) as f:
        while data := f.read(3 << 20 | 7):
            read.update(data)
    assert (root / "big").stat().st_size == BIG
    assert read.hexdigest() == written.hexdigest()
