"""The volfs export, called directly (no server): every File/Handle method, escapes, locks."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from ninep.backend import File, Lock, SetAttr, User
from ninep.constants import (
    AT_REMOVEDIR,
    V9FS_MAGIC,
    XATTR_CREATE,
    XATTR_REPLACE,
    GetattrMask,
    LockFlag,
    LockStatus,
    LockType,
    OpenFlag,
    QidType,
    SetattrMask,
)
from ninep.messages import Qid
from volfs import metadata
from volfs.export import VolExport, open_export
from volfs.names import STAGING_DIR
from volfs.options import AttachOptions, parse_options

from .audit import audited

ROOT = User("root", 0)
SERVER = (os.geteuid(), os.getegid())  # the owner of every host object the export makes
RDWR = int(OpenFlag.RDWR)
DT_DIR, DT_REG, DT_LNK, DT_FIFO, DT_SOCK = 4, 8, 10, 1, 12


@contextmanager
def fails(code: int) -> Iterator[None]:
    """Expect an OSError with exactly errno `code`."""
    with pytest.raises(OSError) as info:
        yield
    got = info.value.errno
    assert got == code, f"{errno.errorcode.get(got or 0)} instead of {errno.errorcode[code]}"


def host_names(path: Path) -> list[str]:
    """The names in host directory `path`, sorted, less the export's staging directory if
    it is there and empty (at the root, with the first directory made with attributes)."""
    names = sorted(os.listdir(path))
    if STAGING_DIR in names and not os.listdir(path / STAGING_DIR):
        names.remove(STAGING_DIR)
    return names


def host_qid(path: Path) -> Qid:
    st = os.lstat(path)
    kind = QidType.DIR if stat.S_ISDIR(st.st_mode) else QidType.FILE
    if stat.S_ISLNK(st.st_mode):
        kind = QidType.SYMLINK
    return Qid(int(kind), 0, st.st_ino)


def snapshot(top: Path) -> dict[str, tuple[object, ...]]:
    """What could show a read or a change under `top`, gathered without reading any file.

    File atimes count (the `outside` fixture makes them older than the mtime, so
    a read updates them under relatime); directory atimes do not (listing them
    here updates them).
    """
    out: dict[str, tuple[object, ...]] = {}
    for path in [top, *sorted(top.rglob("*"))]:
        st = os.lstat(path)
        atime = None if stat.S_ISDIR(st.st_mode) else st.st_atime_ns
        xattrs = () if path.is_symlink() else tuple(sorted(os.listxattr(path)))
        out[str(path.relative_to(top))] = (
            *(st.st_mode, st.st_ino, st.st_nlink, st.st_uid, st.st_gid, st.st_size),
            *(st.st_mtime_ns, st.st_ctime_ns, atime, xattrs),
        )
    return out


class Outside:
    """A directory next to the export, which nothing done through the export may touch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "sub").mkdir(parents=True)
        for f in (path / "secret", path / "sub" / "inner"):
            f.write_bytes(b"not yours")
            st = os.stat(f)
            os.utime(f, ns=(st.st_mtime_ns - 10**10, st.st_mtime_ns))  # read => atime moves
        self.before = snapshot(path)

    def assert_untouched(self) -> None:
        assert snapshot(self.path) == self.before, "something outside the export was touched"


@pytest.fixture
def outside(tmp_path: Path) -> Outside:
    return Outside(tmp_path / "outside")


def test_outside_notices_a_read(outside: Outside) -> None:
    """The tripwire works: reading a file outside changes what `assert_untouched` compares."""
    outside.assert_untouched()
    (outside.path / "sub" / "inner").read_bytes()
    with pytest.raises(AssertionError):
        outside.assert_untouched()


async def shown(d: File) -> list[str]:
    """The names readdir shows in directory `d`, sorted, without `.` and `..`."""
    h = await d.open(int(OpenFlag.RDONLY))
    try:
        return sorted(e.name for e in await h.readdir(0) if e.name not in (".", ".."))
    finally:
        await h.close()


async def make_file(root: File, name: str, data: bytes = b"") -> File:
    """Create `name` with `data` through the export; the File (its Handle closed)."""
    f, h = await root.create(name, RDWR, 0o644, 0)
    if data:
        assert await h.write(0, data) == len(data)
    await h.close()
    return f


async def qid_at(f: File, name: str) -> Qid:
    """The qid of what `name` walks to from `f`."""
    child = await f.walk(name)
    await child.close()
    return child.qid


async def read_all(f: File) -> bytes:
    h = await f.open(int(OpenFlag.RDONLY))
    try:
        return await h.read(0, 1 << 20)
    finally:
        await h.close()


# ---- export, options, attach ----


def test_entry_point_is_open_export() -> None:
    (ep,) = [e for e in entry_points(group="ninep.backends") if e.name == "volfs"]
    assert ep.load() is open_export


def test_open_export_needs_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with fails(errno.ENOTDIR):
        open_export(str(tmp_path / "file"))
    with fails(errno.ENOENT):
        open_export(str(tmp_path / "missing"))


def test_parse_options() -> None:
    assert parse_options("") == AttachOptions(read_only=False)
    assert parse_options(";ro;") == AttachOptions(read_only=True)


async def test_unknown_attach_option_is_einval_and_logged(
    export: VolExport, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), fails(errno.EINVAL):
        await export.attach("ro;bogus=1", ROOT)
    assert "unknown attach option 'bogus'" in caplog.text
    with fails(errno.EINVAL):
        await export.attach("ro=yes", ROOT)


async def test_root_qid_and_export_close(export: VolExport, export_dir: Path) -> None:
    root = await export.attach("", ROOT)
    assert root.qid == host_qid(export_dir)
    export.close()
    assert (await root.getattr(GetattrMask.BASIC)).qid == root.qid  # attached roots live on
    with fails(errno.EBADF):
        await export.attach("", ROOT)
    await root.close()


# ---- walk ----


async def test_walk(root: File, export_dir: Path) -> None:
    (export_dir / "d").mkdir()
    (export_dir / "d" / "f").write_bytes(b"x")
    d = await root.walk("d")
    f = await d.walk("f")
    assert d.qid == host_qid(export_dir / "d")
    assert f.qid == host_qid(export_dir / "d" / "f")
    assert await qid_at(d, ".") == d.qid
    assert await qid_at(d, "..") == root.qid
    assert await qid_at(root, "..") == root.qid
    with fails(errno.ENOENT):
        await d.walk("missing")
    with fails(errno.ENOTDIR):
        await f.walk("x")
    with fails(errno.ENOTDIR):
        await f.walk("..")
    await f.close()
    with fails(errno.EBADF):
        await f.getattr(GetattrMask.BASIC)
    await f.close()  # closing twice is harmless
    await d.close()


# ---- escapes: nothing outside the export is read or changed ----


async def test_dotdot_at_root_stays_at_root(root: File, outside: Outside) -> None:
    up = await root.clone()
    for _ in range(5):
        nxt = await up.walk("..")
        await up.close()
        up = nxt
        assert up.qid == root.qid
    with fails(errno.ENOENT):
        await up.walk(outside.path.name)  # the export's parent holds it; the root does not
    await up.close()
    outside.assert_untouched()


@pytest.mark.parametrize("relative", [False, True])
async def test_symlink_to_a_file_outside(
    root: File, export_dir: Path, outside: Outside, relative: bool
) -> None:
    secret = outside.path / "secret"
    target = os.path.relpath(secret, export_dir) if relative else str(secret)
    (export_dir / "evil").symlink_to(target)
    evil = await root.walk("evil")
    assert evil.qid.type == QidType.SYMLINK
    attr = await evil.getattr(GetattrMask.BASIC)
    assert stat.S_ISLNK(attr.mode)
    assert attr.size == len(target)
    assert await evil.readlink() == target
    for flags in (OpenFlag.RDONLY, OpenFlag.WRONLY | OpenFlag.TRUNC, OpenFlag.RDWR):
        with fails(errno.ELOOP):
            await evil.open(int(flags))
    with fails(errno.EINVAL):
        await evil.setattr(SetAttr(int(SetattrMask.SIZE), size=0))
    with fails(errno.EOPNOTSUPP):
        await evil.setattr(SetAttr(int(SetattrMask.MODE), mode=0o777))
    with fails(errno.EPERM):
        await evil.setxattr("user.x", b"1", 0)
    with fails(errno.ENODATA):
        await evil.getxattr("user.x")
    # times act on the symlink itself
    await evil.setattr(
        SetAttr(int(SetattrMask.MTIME | SetattrMask.MTIME_SET), mtime_sec=1000, mtime_nsec=5)
    )
    assert os.lstat(export_dir / "evil").st_mtime_ns == 1000 * 10**9 + 5
    # a hard link to it is a link to the symlink
    await root.link(evil, "hard")
    assert os.readlink(export_dir / "hard") == target
    await evil.close()
    outside.assert_untouched()


async def test_symlink_to_a_directory_outside(
    root: File, export_dir: Path, outside: Outside
) -> None:
    (export_dir / "evil").symlink_to(outside.path)
    evil = await root.walk("evil")
    for name in ("secret", "sub", ".", ".."):
        with fails(errno.ENOTDIR):
            await evil.walk(name)
    with fails(errno.ENOTDIR):
        await evil.create("new", RDWR, 0o644, 0)
    with fails(errno.ENOTDIR):
        await evil.mkdir("new", 0o755, 0)
    with fails(errno.ENOTDIR):
        await evil.symlink("new", "x", 0)
    with fails(errno.ENOTDIR):
        await evil.mknod("new", stat.S_IFIFO | 0o644, 0, 0, 0)
    with fails(errno.ENOTDIR):
        await evil.unlinkat("secret", 0)
    with fails(errno.ENOTDIR):
        await evil.renameat("secret", root, "stolen")
    with fails(errno.ENOTDIR):
        await root.renameat("evil", evil, "moved")  # renaming into it fails too
    with fails(errno.ELOOP):
        await evil.open(int(OpenFlag.RDONLY | OpenFlag.DIRECTORY))
    await evil.close()
    assert sorted(os.listdir(export_dir)) == ["evil"]
    outside.assert_untouched()


async def test_a_listing_never_follows_an_entry_replaced_by_a_symlink(
    export_dir: Path, outside: Outside
) -> None:
    """With metadata, a listing reads the stored type of each regular file by its name; a
    host process replaces one by a symlink to a file outside that stores a fifo's mode,
    just before that read: the symlink is not followed, the entry is not listed a fifo."""
    secret = outside.path / "secret"
    os.setxattr(secret, metadata.XATTRS["mode"], metadata.encode("mode", stat.S_IFIFO | 0o644))
    (export_dir / "victim").write_text("x")
    export = open_export(str(export_dir), metadata=True)
    root = await export.attach("", User("root", 0))
    replaced: list[str] = []

    def replace(event: str, args: tuple[Any, ...]) -> None:
        if event == "os.getxattr" and str(args[0]).endswith("/victim") and not replaced:
            replaced.append(str(args[0]))
            (export_dir / "victim").unlink()
            (export_dir / "victim").symlink_to(secret)

    handle = await root.open(int(OpenFlag.RDONLY | OpenFlag.DIRECTORY))
    try:
        with audited(replace):
            listed = {e.name: e.type for e in await handle.readdir(0)}
        assert replaced
        assert listed["victim"] == stat.S_IFREG >> 12  # what the listing saw: a file
    finally:
        await handle.close()
        await root.close()
        export.close()


async def test_create_over_a_dangling_symlink_to_outside(
    root: File, export_dir: Path, outside: Outside
) -> None:
    (export_dir / "dangling").symlink_to(outside.path / "planted")
    with fails(errno.ELOOP):
        await root.create("dangling", int(OpenFlag.WRONLY | OpenFlag.CREAT), 0o644, 0)
    with fails(errno.EEXIST):
        await root.create("dangling", int(OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.EXCL), 0, 0)
    with fails(errno.EEXIST):
        await root.mkdir("dangling", 0o755, 0)
    assert not (outside.path / "planted").exists()
    outside.assert_untouched()


BAD_NAMES = ["", "/", "a/b", "../outside", "a\0b", "\0"]


def _calls(root: File, other: File, name: str) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
    """Every call that takes `name` as a name, as (label, call)."""
    return [
        ("walk", lambda: root.walk(name)),
        ("create", lambda: root.create(name, RDWR, 0o644, 0)),
        ("mkdir", lambda: root.mkdir(name, 0o755, 0)),
        ("symlink", lambda: root.symlink(name, "target", 0)),
        ("mknod", lambda: root.mknod(name, stat.S_IFIFO | 0o644, 0, 0, 0)),
        ("link", lambda: root.link(other, name)),
        ("rename", lambda: other.rename(root, name)),
        ("renameat new", lambda: root.renameat("f", root, name)),
        ("renameat old", lambda: root.renameat(name, root, "g")),
        ("unlinkat", lambda: root.unlinkat(name, 0)),
        ("unlinkat dir", lambda: root.unlinkat(name, AT_REMOVEDIR)),
    ]


@pytest.mark.parametrize("name", [*BAD_NAMES, ".", ".."])
async def test_invalid_names_are_einval(
    root: File, export_dir: Path, outside: Outside, name: str
) -> None:
    other = await make_file(root, "f", b"data")
    before = snapshot(export_dir)
    for what, call in _calls(root, other, name):
        if name in (".", "..") and what == "walk":
            continue  # walking them is fine
        with fails(errno.EINVAL):
            await call()
    await other.close()
    assert snapshot(export_dir) == before
    outside.assert_untouched()


# ---- a File follows its object ----


async def test_file_survives_rename_of_its_parent(root: File, export_dir: Path) -> None:
    (export_dir / "a").mkdir()
    (export_dir / "a" / "f").write_bytes(b"content")
    a = await root.walk("a")
    f = await a.walk("f")
    await root.renameat("a", root, "b")  # through the export
    os.rename(export_dir / "b", export_dir / "c")  # and behind its back
    assert (await f.getattr(GetattrMask.BASIC)).qid == host_qid(export_dir / "c" / "f")
    assert await read_all(f) == b"content"
    new, h = await a.create("new", RDWR, 0o644, 0)
    await h.write(0, b"here")
    await h.close()
    assert (export_dir / "c" / "new").read_bytes() == b"here"
    await f.rename(a, "g")  # its parent entry is the renamed directory
    assert (export_dir / "c" / "g").read_bytes() == b"content"
    await f.remove()
    assert sorted(os.listdir(export_dir / "c")) == ["new"]
    for x in (new, f, a):
        await x.close()


async def test_rename_moves_the_file_and_its_clones(root: File, export_dir: Path) -> None:
    (export_dir / "d").mkdir()
    f = await make_file(root, "f", b"1")
    twin = await f.clone()
    d = await root.walk("d")
    await f.rename(d, "g")
    assert (export_dir / "d" / "g").read_bytes() == b"1"
    assert await qid_at(d, "g") == f.qid
    await twin.remove()  # the clone knows the new place
    assert os.listdir(export_dir / "d") == []
    for x in (f, twin, d):
        await x.close()


async def test_a_rename_through_the_server_moves_every_fid_on_the_file(
    root: File, export_dir: Path
) -> None:
    f1 = await make_file(root, "x", b"old")
    f2 = await root.walk("x")
    await f2.rename(root, "y")
    await root.renameat("y", root, "z")
    await f1.rename(root, "w")
    (export_dir / "x").write_bytes(b"newcomer")
    await f2.remove()
    assert sorted(os.listdir(export_dir)) == ["x"]
    await f1.close()
    await f2.close()


async def test_rename_or_remove_by_a_stale_name_is_enoent(root: File, export_dir: Path) -> None:
    f1 = await make_file(root, "x", b"old")
    os.rename(export_dir / "x", export_dir / "y")  # behind the server's back
    (export_dir / "x").write_bytes(b"newcomer")
    with fails(errno.ENOENT):
        await f1.remove()
    with fails(errno.ENOENT):
        await f1.rename(root, "z")
    assert (export_dir / "x").read_bytes() == b"newcomer"
    assert (export_dir / "y").read_bytes() == b"old"
    await f1.close()


async def test_root_cannot_be_renamed_or_removed(root: File, export_dir: Path) -> None:
    (export_dir / "d").mkdir()
    d = await root.walk("d")
    with fails(errno.EBUSY):
        await root.rename(d, "r")
    with fails(errno.EBUSY):
        await root.remove()
    await d.close()
    assert export_dir.is_dir()


# ---- attributes ----


async def test_getattr_matches_lstat(root: File, export_dir: Path) -> None:
    f = await make_file(root, "f", b"12345")
    st = os.lstat(export_dir / "f")
    a = await f.getattr(GetattrMask.ALL)
    assert a.valid & GetattrMask.BASIC == GetattrMask.BASIC
    assert a.qid == f.qid == host_qid(export_dir / "f")
    assert (a.mode, a.uid, a.gid) == (stat.S_IFREG | 0o777, 0, 0)  # WSL's view, attached as root
    assert (a.nlink, a.rdev) == (st.st_nlink, st.st_rdev)
    assert (a.size, a.blksize, a.blocks) == (5, st.st_blksize, st.st_blocks)
    assert a.mtime_sec * 10**9 + a.mtime_nsec == st.st_mtime_ns
    assert a.atime_sec * 10**9 + a.atime_nsec == st.st_atime_ns
    assert a.ctime_sec * 10**9 + a.ctime_nsec == st.st_ctime_ns
    assert (a.btime_sec, a.btime_nsec) == (0, 0)
    await f.close()


async def test_setattr(root: File, export_dir: Path) -> None:
    f = await make_file(root, "f", b"0123456789")
    path = export_dir / "f"
    host = os.lstat(path)
    await f.setattr(SetAttr(int(SetattrMask.UID | SetattrMask.GID), uid=1234, gid=5678))
    await f.setattr(SetAttr(int(SetattrMask.SIZE), size=4))
    st = os.lstat(path)  # chown is accepted and ignored without metadata, as WSL
    assert (st.st_uid, st.st_gid, st.st_mode, st.st_size) == (
        host.st_uid,
        host.st_gid,
        host.st_mode,
        4,
    )
    assert path.read_bytes() == b"0123"
    await f.setattr(SetAttr(int(SetattrMask.SIZE), size=6))
    assert path.read_bytes() == b"0123\0\0"

    both_set = SetattrMask.ATIME | SetattrMask.ATIME_SET | SetattrMask.MTIME | SetattrMask.MTIME_SET
    given = SetAttr(int(both_set), atime_sec=100, atime_nsec=1, mtime_sec=200, mtime_nsec=2)
    await f.setattr(given)
    st = os.lstat(path)
    assert (st.st_atime_ns, st.st_mtime_ns) == (100 * 10**9 + 1, 200 * 10**9 + 2)

    before = time.time_ns()
    await f.setattr(SetAttr(int(SetattrMask.MTIME)))  # mtime now, atime kept
    after = time.time_ns()
    st = os.lstat(path)
    assert st.st_atime_ns == 100 * 10**9 + 1
    assert before <= st.st_mtime_ns <= after

    await f.setattr(SetAttr(int(SetattrMask.ATIME | SetattrMask.MTIME)))  # both now
    st = os.lstat(path)
    assert st.st_atime_ns == st.st_mtime_ns > 200 * 10**9

    await f.setattr(SetAttr(int(SetattrMask.CTIME)))  # alone: nothing to do, no error
    with fails(errno.EINVAL):
        await f.setattr(SetAttr(int(SetattrMask.SIZE), size=(1 << 64) - 1))
    await f.close()


async def test_times_before_1970_round_trip(root: File) -> None:
    f = await make_file(root, "f")
    minus_one = (1 << 64) - 1  # -1 s as the wire's u64
    await f.setattr(
        SetAttr(int(SetattrMask.MTIME | SetattrMask.MTIME_SET), mtime_sec=minus_one, mtime_nsec=0)
    )
    a = await f.getattr(GetattrMask.BASIC)
    assert (a.mtime_sec, a.mtime_nsec) == (minus_one, 0)
    await f.close()


async def test_statfs(root: File, export_dir: Path) -> None:
    s = await root.statfs()
    host = os.statvfs(export_dir)
    assert s.type == V9FS_MAGIC
    assert (s.fsid, s.namelen, s.bsize, s.blocks) == (
        host.f_fsid,
        host.f_namemax,
        host.f_frsize,
        host.f_blocks,
    )


async def test_xattrs(root: File, export_dir: Path) -> None:
    f = await make_file(root, "f")
    await f.setxattr("user.a", b"1", 0)
    await f.setxattr("user.b", b"\0\xff", XATTR_CREATE)
    assert os.getxattr(export_dir / "f", "user.b") == b"\0\xff"
    assert await f.getxattr("user.a") == b"1"
    assert sorted(await f.listxattr()) == ["user.a", "user.b"]
    with fails(errno.EEXIST):
        await f.setxattr("user.a", b"2", XATTR_CREATE)
    await f.setxattr("user.a", b"2", XATTR_REPLACE)
    assert await f.getxattr("user.a") == b"2"
    with fails(errno.ENODATA):
        await f.setxattr("user.c", b"2", XATTR_REPLACE)
    with fails(errno.EINVAL):
        await f.setxattr("user.c", b"2", 4)
    with fails(errno.EINVAL):
        await f.getxattr("user.\0")
    await f.removexattr("user.a")
    with fails(errno.ENODATA):
        await f.getxattr("user.a")
    with fails(errno.ENODATA):
        await f.removexattr("user.a")
    assert os.listxattr(export_dir / "f") == ["user.b"]
    await f.close()


# ---- open, read, write ----


async def test_open_flags(root: File, export_dir: Path) -> None:
    f = await make_file(root, "f", b"abc")
    h = await f.open(int(OpenFlag.WRONLY | OpenFlag.APPEND))
    assert await h.write(0, b"de") == 2  # O_APPEND: at the end, whatever the offset
    await h.close()
    assert (export_dir / "f").read_bytes() == b"abcde"
    h = await f.open(int(OpenFlag.RDONLY | OpenFlag.CREAT | OpenFlag.EXCL))  # stripped
    assert await h.read(1, 2) == b"bc"
    assert await h.read(10, 5) == b""
    with fails(errno.EBADF):
        await h.write(0, b"x")
    with fails(errno.ENOTDIR):
        await h.readdir(0)
    await h.close()
    with fails(errno.EBADF):
        await h.read(0, 1)
    h = await f.open(int(OpenFlag.RDWR | OpenFlag.TRUNC))
    assert (export_dir / "f").read_bytes() == b""
    await h.close()
    with fails(errno.ENOTDIR):
        await f.open(int(OpenFlag.RDONLY | OpenFlag.DIRECTORY))
    with fails(errno.EISDIR):
        await root.open(int(OpenFlag.WRONLY))
    d = await root.open(int(OpenFlag.RDONLY))
    with fails(errno.EISDIR):
        await d.read(0, 10)
    await d.close()
    await f.close()


async def test_large_read_and_write(root: File, export_dir: Path) -> None:
    data = os.urandom(3 << 20)
    f, h = await root.create("big", RDWR, 0o600, 0)
    for off in range(0, len(data), 1 << 20):
        assert await h.write(off, data[off : off + (1 << 20)]) == 1 << 20
    await h.fsync(True)
    await h.fsync(False)
    got = b"".join([await h.read(off, 1 << 20) for off in range(0, len(data), 1 << 20)])
    assert got == data
    assert await h.read(len(data) - 10, 1 << 20) == data[-10:]
    await h.close()
    assert (export_dir / "big").read_bytes() == data
    await f.close()


async def test_fifo_opens_without_waiting(root: File, export_dir: Path) -> None:
    os.mkfifo(export_dir / "fifo")  # made on the host: clients cannot without metadata
    fifo = await root.walk("fifo")
    h = await fifo.open(int(OpenFlag.RDONLY))
    assert await h.read(0, 10) == b""  # no writer: end of file
    await h.close()
    with fails(errno.ENXIO):
        await fifo.open(int(OpenFlag.WRONLY))  # no reader
    await fifo.close()


# ---- create and the other makers ----


async def test_create(root: File, export_dir: Path, export: VolExport) -> None:
    excl = int(OpenFlag.RDWR | OpenFlag.CREAT | OpenFlag.EXCL)
    f, h = await root.create("n", excl, 0o777, 4321)
    assert f.qid == host_qid(export_dir / "n")
    await h.write(0, b"kept")
    await h.close()
    st = os.lstat(export_dir / "n")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o777, *SERVER)  # no umask
    with fails(errno.EEXIST):
        await root.create("n", excl, 0o644, 0)
    g, h = await root.create("n", int(OpenFlag.RDWR | OpenFlag.CREAT), 0o600, 0)  # opens it
    assert g.qid == f.qid
    assert await h.read(0, 10) == b"kept"
    await h.close()
    for x in (f, g):
        await x.close()
    user = await export.attach("", User("someone", 1000))
    f, h = await user.create("mine", RDWR, 0o640, 1001)
    st = os.lstat(export_dir / "mine")  # never chowned to the claimed uid and gid
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (*SERVER, 0o640)
    await h.close()
    await f.close()
    await user.close()


async def test_mkdir(root: File, export_dir: Path) -> None:
    qid = await root.mkdir("d", 0o1777, 77)
    st = os.lstat(export_dir / "d")
    assert qid == host_qid(export_dir / "d")
    assert qid.type == QidType.DIR
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o777, SERVER[1])  # no sticky bit
    with fails(errno.EEXIST):
        await root.mkdir("d", 0o755, 0)


async def test_symlink_and_readlink(root: File, export_dir: Path) -> None:
    qid = await root.symlink("s", "/anywhere/at/all", 88)
    assert qid == host_qid(export_dir / "s")
    assert qid.type == QidType.SYMLINK
    assert os.readlink(export_dir / "s") == "/anywhere/at/all"
    assert (os.lstat(export_dir / "s").st_uid, os.lstat(export_dir / "s").st_gid) == SERVER
    s = await root.walk("s")
    assert await s.readlink() == "/anywhere/at/all"
    await s.close()
    with fails(errno.EINVAL):
        await root.readlink()
    with fails(errno.EINVAL):
        await root.symlink("t", "nul\0inside", 0)
    with fails(errno.EEXIST):
        await root.symlink("s", "x", 0)


def _host_allows_devices(tmp_path: Path) -> bool:
    try:
        os.mknod(tmp_path / "probe", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        return False
    os.unlink(tmp_path / "probe")
    return True


async def test_mknod(root: File, export_dir: Path, tmp_path: Path) -> None:
    qid = await root.mknod("r", stat.S_IFREG | 0o6640, 0, 0, 55)
    st = os.lstat(export_dir / "r")
    assert qid == host_qid(export_dir / "r")
    assert (st.st_mode, st.st_gid) == (stat.S_IFREG | 0o640, SERVER[1])  # no setuid, setgid
    with fails(errno.EEXIST):
        await root.mknod("r", stat.S_IFIFO | 0o644, 0, 0, 0)
    for kind in (stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):
        with fails(errno.EPERM):  # without metadata, as WSL
            await root.mknod("special", kind | 0o600, 1, 3, 0)
    assert sorted(os.listdir(export_dir)) == ["r"]


async def test_host_device_nodes_are_shown(root: File, export_dir: Path, tmp_path: Path) -> None:
    if not _host_allows_devices(tmp_path):
        pytest.skip("this host does not allow making device nodes (no CAP_MKNOD)")
    for name, kind, major, minor in [("c", stat.S_IFCHR, 1, 3), ("b", stat.S_IFBLK, 7, 0)]:
        os.mknod(export_dir / name, kind | 0o600, os.makedev(major, minor))
        f = await root.walk(name)
        a = await f.getattr(GetattrMask.BASIC)
        assert (stat.S_IFMT(a.mode), a.rdev) == (kind, os.makedev(major, minor))
        await f.close()


async def test_link(root: File, export_dir: Path, tmp_path: Path) -> None:
    f = await make_file(root, "f", b"x")
    (export_dir / "d").mkdir()
    d = await root.walk("d")
    await d.link(f, "hard")
    assert os.lstat(export_dir / "d" / "hard").st_ino == os.lstat(export_dir / "f").st_ino
    assert os.lstat(export_dir / "f").st_nlink == 2
    with fails(errno.EEXIST):
        await d.link(f, "hard")
    with fails(errno.EPERM):
        await root.link(d, "dirlink")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = open_export(str(other_dir))
    other_root = await other.attach("", ROOT)
    with fails(errno.EXDEV):
        await other_root.link(f, "x")
    with fails(errno.EXDEV):
        await f.rename(other_root, "x")
    with fails(errno.EXDEV):
        await root.renameat("f", other_root, "x")
    assert os.listdir(other_dir) == []
    await other_root.close()
    other.close()
    for x in (f, d):
        await x.close()


async def test_unlinkat(root: File, export_dir: Path) -> None:
    (export_dir / "d").mkdir()
    (export_dir / "full").mkdir()
    (export_dir / "full" / "x").write_bytes(b"")
    (export_dir / "f").write_bytes(b"")
    with fails(errno.EISDIR):
        await root.unlinkat("d", 0)
    with fails(errno.ENOTDIR):
        await root.unlinkat("f", AT_REMOVEDIR)
    with fails(errno.EINVAL):
        await root.unlinkat("f", 0x1)
    with fails(errno.ENOTEMPTY):
        await root.unlinkat("full", AT_REMOVEDIR)
    with fails(errno.ENOENT):
        await root.unlinkat("missing", 0)
    await root.unlinkat("d", AT_REMOVEDIR)
    await root.unlinkat("f", 0)
    assert os.listdir(export_dir) == ["full"]


async def test_renameat(root: File, export_dir: Path) -> None:
    (export_dir / "d").mkdir()
    (export_dir / "a").write_bytes(b"a")
    (export_dir / "b").write_bytes(b"b")
    d = await root.walk("d")
    await root.renameat("a", d, "a2")
    assert (export_dir / "d" / "a2").read_bytes() == b"a"
    await d.renameat("a2", root, "b")  # replaces b
    assert sorted(os.listdir(export_dir)) == ["b", "d"]
    assert (export_dir / "b").read_bytes() == b"a"
    with fails(errno.EINVAL):
        await root.renameat("d", d, "inside")  # a directory into itself
    with fails(errno.ENOENT):
        await root.renameat("missing", root, "x")
    await d.close()


async def test_remove(root: File, export_dir: Path) -> None:
    (export_dir / "d").mkdir()
    (export_dir / "full").mkdir()
    (export_dir / "full" / "x").write_bytes(b"")
    f = await make_file(root, "f")
    d = await root.walk("d")
    full = await root.walk("full")
    await f.remove()
    await d.remove()
    with fails(errno.ENOTEMPTY):
        await full.remove()
    assert os.listdir(export_dir) == ["full"]
    for x in (f, d, full):
        await x.close()


# ---- readdir ----


async def test_readdir(root: File, export_dir: Path) -> None:
    (export_dir / "d").mkdir()
    (export_dir / "f").write_bytes(b"")
    (export_dir / "l").symlink_to("nowhere")
    os.mkfifo(export_dir / "p")
    os.mknod(export_dir / "s", stat.S_IFSOCK | 0o600)
    h = await root.open(int(OpenFlag.RDONLY))
    entries = list(await h.readdir(0))
    assert [e.offset for e in entries] == list(range(1, 8))
    assert [(e.name, e.type) for e in entries[:2]] == [(".", DT_DIR), ("..", DT_DIR)]
    assert entries[0].qid == entries[1].qid == root.qid  # `..` of the root is the root
    types = {"d": DT_DIR, "f": DT_REG, "l": DT_LNK, "p": DT_FIFO, "s": DT_SOCK}
    rest = {e.name: e for e in entries[2:]}
    assert {n: e.type for n, e in rest.items()} == types
    assert {n: e.qid for n, e in rest.items()} == {n: host_qid(export_dir / n) for n in types}
    assert list(await h.readdir(3)) == entries[3:]
    assert list(await h.readdir(7)) == []
    assert list(await h.readdir(1000)) == []
    await h.close()

    d = await root.walk("d")
    h = await d.open(int(OpenFlag.RDONLY | OpenFlag.DIRECTORY))
    dots = list(await h.readdir(0))
    assert [(e.name, e.qid) for e in dots] == [(".", d.qid), ("..", root.qid)]
    await h.close()
    await d.close()


async def test_readdir_offsets_survive_concurrent_changes(root: File, export_dir: Path) -> None:
    originals = {f"orig{i:04}" for i in range(1000)}
    for name in originals:
        (export_dir / name).write_bytes(b"")
    h = await root.open(int(OpenFlag.RDONLY))
    seen: list[str] = []
    offset, added = 0, 0
    present = sorted(originals)
    for _ in range(100):  # 1002 entries in chunks of 97 need 11 rounds; more means a bug
        entries = list(await h.readdir(offset))[:97]  # a client that takes a few at a time
        if not entries:
            break
        seen += [e.name for e in entries]
        offset = entries[-1].offset
        # meanwhile entries come and go, by the export and on the host: originals not yet
        # listed and ones already listed are removed, new ones added
        unseen = [n for n in present if n not in seen]
        for name in unseen[:3] + [n for n in present if n in seen][:2]:
            present.remove(name)
            await root.unlinkat(name, 0)
        for _ in range(3):
            f, fh = await root.create(f"new{added}", RDWR, 0o644, 0)
            await fh.close()
            await f.close()
            (export_dir / f"host{added}").write_bytes(b"")
            added += 1
    else:
        pytest.fail("readdir never reached the end")
    await h.close()
    counts = Counter(seen)
    assert all(counts[n] == 1 for n in originals), "an original entry missed or repeated"
    assert counts["."] == counts[".."] == 1
    assert len(seen) == len(originals) + 2  # the snapshot holds nothing that came later
    assert len(os.listdir(export_dir)) == len(present) + 2 * added != len(originals)


async def test_readdir_restarts_at_offset_zero(root: File, export_dir: Path) -> None:
    (export_dir / "a").write_bytes(b"")
    h = await root.open(int(OpenFlag.RDONLY))
    assert [e.name for e in await h.readdir(0)][2:] == ["a"]
    (export_dir / "b").write_bytes(b"")
    assert [e.name for e in await h.readdir(2)] == ["a"]  # same snapshot
    assert sorted(e.name for e in await h.readdir(0))[2:] == ["a", "b"]  # a new one
    await h.close()


# ---- locks ----


def lk(kind: LockType, start: int, length: int, proc: int = 1) -> Lock:
    return Lock(int(kind), start, length, proc, "client")


async def test_locks_exclude_across_handles(root: File) -> None:
    f = await make_file(root, "f", b"x" * 100)
    h1, h2 = await f.open(RDWR), await f.open(RDWR)
    assert await h1.lock(0, lk(LockType.WRLCK, 0, 100)) == LockStatus.SUCCESS
    assert await h2.lock(0, lk(LockType.WRLCK, 50, 10, 2)) == LockStatus.BLOCKED
    assert await h2.lock(int(LockFlag.BLOCK), lk(LockType.RDLCK, 99, 1, 2)) == LockStatus.BLOCKED
    conflict = await h2.getlock(lk(LockType.RDLCK, 50, 10, 2))
    assert (conflict.type, conflict.start, conflict.length) == (LockType.WRLCK, 0, 100)
    assert await h2.lock(0, lk(LockType.WRLCK, 100, 0, 2)) == LockStatus.SUCCESS  # to EOF
    far = await h1.getlock(lk(LockType.RDLCK, 1 << 40, 1))
    assert (far.type, far.start, far.length) == (LockType.WRLCK, 100, 0)
    assert await h1.getlock(lk(LockType.WRLCK, 0, 100)) == lk(LockType.UNLCK, 0, 100)  # its own
    assert await h1.lock(0, lk(LockType.UNLCK, 0, 100)) == LockStatus.SUCCESS
    assert await h2.lock(0, lk(LockType.WRLCK, 50, 10, 2)) == LockStatus.SUCCESS
    await h2.close()  # closing releases its locks
    assert await h1.lock(0, lk(LockType.WRLCK, 0, 0)) == LockStatus.SUCCESS
    await h1.close()
    await f.close()


async def test_read_locks_share(root: File) -> None:
    f = await make_file(root, "f")
    h1, h2, h3 = await f.open(RDWR), await f.open(RDWR), await f.open(RDWR)
    assert await h1.lock(0, lk(LockType.RDLCK, 0, 10)) == LockStatus.SUCCESS
    assert await h2.lock(0, lk(LockType.RDLCK, 5, 10)) == LockStatus.SUCCESS
    assert await h3.lock(0, lk(LockType.WRLCK, 9, 1)) == LockStatus.BLOCKED
    assert await h3.lock(0, lk(LockType.WRLCK, 15, 1)) == LockStatus.SUCCESS
    with fails(errno.EINVAL):
        await h1.lock(0, Lock(7, 0, 0, 1, "c"))
    with fails(errno.EINVAL):
        await h1.lock(0, lk(LockType.RDLCK, 1 << 63, 1))
    for h in (h1, h2, h3):
        await h.close()
    await f.close()


async def test_flock_locks_are_apart_from_posix_locks(root: File, export_dir: Path) -> None:
    f = await make_file(root, "f", b"x")
    h1, h2 = await f.open(RDWR), await f.open(RDWR)
    flock, whole = int(LockFlag.FLOCK), lk(LockType.WRLCK, 0, 0)
    assert await h1.lock(flock, whole) == LockStatus.SUCCESS
    assert await h2.lock(flock, lk(LockType.RDLCK, 0, 0)) == LockStatus.BLOCKED
    assert await h2.lock(0, whole) == LockStatus.SUCCESS  # a POSIX lock: another kind
    with open(export_dir / "f") as host, pytest.raises(BlockingIOError):  # the host sees it
        fcntl.flock(host, fcntl.LOCK_SH | fcntl.LOCK_NB)
    assert await h1.lock(flock, lk(LockType.UNLCK, 0, 0)) == LockStatus.SUCCESS
    assert await h2.lock(flock, lk(LockType.RDLCK, 0, 0)) == LockStatus.SUCCESS
    for h in (h1, h2):
        await h.close()
    await f.close()


# ---- read-only exports: the server's gate refuses changes (tests/test_gate.py) ----


# ---- no fd leaks ----


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_no_fd_leaks(root: File, export_dir: Path) -> None:
    (export_dir / "link").symlink_to("/")
    before = open_fds()
    for round_ in range(3):
        d_qid = await root.mkdir(f"d{round_}", 0o755, 0)
        d = await root.walk(f"d{round_}")
        assert d.qid == d_qid
        f, h = await d.create("f", RDWR, 0o644, 0)
        await h.write(0, b"x" * 100_000)
        assert await h.lock(0, lk(LockType.WRLCK, 0, 0)) == LockStatus.SUCCESS
        await h.close()
        again, h = await d.create("f", RDWR, 0o644, 0)  # opens the existing file
        await h.close()
        await again.close()
        up = await d.walk("..")
        twin = await f.clone()
        dh = await d.open(0)
        assert len(await dh.readdir(0)) == 3
        await dh.close()
        await f.setxattr("user.k", b"v", 0)
        with fails(errno.ENOENT):
            await d.walk("missing")
        with fails(errno.EEXIST):
            await d.create("f", int(OpenFlag.RDWR | OpenFlag.EXCL), 0o644, 0)
        with fails(errno.ELOOP):
            await root.create("link", RDWR, 0o644, 0)  # walks to it, then cannot open it
        link = await root.walk("link")
        with fails(errno.ELOOP):
            await link.open(0)
        await link.close()
        await f.rename(root, f"moved{round_}")
        await twin.remove()
        await d.remove()
        for x in (f, twin, d, up):
            await x.close()
    assert open_fds() == before
