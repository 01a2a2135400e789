"""The volfs export with metadata on (xattrs, permission checks) and off (WSL's masks)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ninep import cli
from ninep.backend import File, SetAttr, User
from ninep.client import connect
from ninep.constants import OpenFlag, QidType, SetattrMask
from ninep.options import given
from volfs import metadata
from volfs.access import NOBODY
from volfs.export import VolExport, open_export
from volfs.options import parse_options

from .test_volfs import host_names

RDONLY, WRONLY, RDWR = int(OpenFlag.RDONLY), int(OpenFlag.WRONLY), int(OpenFlag.RDWR)
ALICE, BOB = 1000, 1001


@pytest.fixture
async def meta(export_dir: Path) -> AsyncIterator[VolExport]:
    """`export_dir` exported with metadata on, with a sticky world-writable `shared` dir."""
    ex = open_export(str(export_dir), metadata=True)
    root = await ex.attach("", User("root", 0))
    await root.mkdir("shared", stat.S_IFDIR | 0o1777, 0)
    await root.close()
    yield ex
    ex.close()


async def attach(ex: VolExport, uid: int, options: str = "") -> File:
    return await ex.attach(options, User(str(uid), uid))


async def shared(ex: VolExport, uid: int) -> File:
    return await (await attach(ex, uid)).walk("shared")


async def make_file(
    directory: File, name: str, mode: int, gid: int = 100, data: bool = True
) -> File:
    """Create `name` (opened RDWR), and write `secret` to it unless not `data`."""
    node, handle = await directory.create(name, RDWR, mode, gid)
    if data:
        await handle.write(0, b"secret")
    await handle.close()
    return node


def stored(path: Path) -> metadata.Metadata:
    st = os.lstat(path)
    return metadata.load(str(path), st.st_mode)


def errno_of(exc: pytest.ExceptionInfo[OSError]) -> int | None:
    return exc.value.errno


def test_options_parse() -> None:
    opts = parse_options("metadata;uid=1000;gid=50;umask=022;fmask=111;dmask=7")
    assert (opts.metadata, opts.uid, opts.gid) == (True, 1000, 50)
    assert (opts.umask, opts.fmask, opts.dmask) == (0o22, 0o111, 0o7)
    for bad in ("umask=9", "uid=x", "uid=-1", "metadata=1", "dmask=1000"):
        with pytest.raises(OSError) as e:
            parse_options(bad)
        assert errno_of(e) == errno.EINVAL


async def test_new_file_gets_caller_owner_mode_in_xattrs(meta: VolExport, export_dir: Path) -> None:
    node = await make_file(await shared(meta, ALICE), "f", 0o640, gid=100)
    attr = await node.getattr(0)
    assert (attr.mode, attr.uid, attr.gid) == (stat.S_IFREG | 0o640, ALICE, 100)
    host = export_dir / "shared" / "f"
    assert stored(host) == metadata.Metadata(ALICE, 100, stat.S_IFREG | 0o640, None)
    assert host.stat().st_uid == 0  # the host's owner is untouched: the server's


async def test_chmod_chown_change_only_xattrs(meta: VolExport, export_dir: Path) -> None:
    root = await attach(meta, 0)
    node = await make_file(root, "f", 0o644, gid=0)
    host = export_dir / "f"
    before = host.stat()
    await node.setattr(SetAttr(SetattrMask.MODE, mode=0o600))
    await node.setattr(SetAttr(SetattrMask.UID | SetattrMask.GID, uid=BOB, gid=7))
    attr = await node.getattr(0)
    assert (attr.mode, attr.uid, attr.gid) == (stat.S_IFREG | 0o600, BOB, 7)
    after = host.stat()
    assert (after.st_mode, after.st_uid, after.st_gid) == (
        before.st_mode,
        before.st_uid,
        before.st_gid,
    )
    await node.setattr(SetAttr(SetattrMask.SIZE, size=2))
    assert host.read_bytes() == b"se"


async def test_other_user_denied_0600(meta: VolExport) -> None:
    await make_file(await shared(meta, BOB), "bobs", 0o600)
    alice = await shared(meta, ALICE)
    node = await alice.walk("bobs")
    with pytest.raises(OSError) as e:
        await node.open(RDONLY)
    assert errno_of(e) == errno.EACCES
    bob_node = await (await shared(meta, BOB)).walk("bobs")
    handle = await bob_node.open(RDONLY)
    assert await handle.read(0, 10) == b"secret"
    await handle.close()


async def test_lookup_needs_search(meta: VolExport) -> None:
    bob = await shared(meta, BOB)
    await bob.mkdir("private", stat.S_IFDIR | 0o700, 100)
    await make_file(await bob.walk("private"), "x", 0o644)
    private = await (await shared(meta, ALICE)).walk("private")
    with pytest.raises(OSError) as e:
        await private.walk("x")
    assert errno_of(e) == errno.EACCES
    with pytest.raises(OSError) as e:
        await private.create("y", RDWR, 0o644, 100)
    assert errno_of(e) == errno.EACCES


async def test_sticky_bit(meta: VolExport) -> None:
    await make_file(await shared(meta, BOB), "bobs", 0o666)
    with pytest.raises(OSError) as e:
        await (await shared(meta, ALICE)).unlinkat("bobs", 0)
    assert errno_of(e) == errno.EPERM
    with pytest.raises(OSError) as e:
        await (await shared(meta, ALICE)).renameat("bobs", await shared(meta, ALICE), "mine")
    assert errno_of(e) == errno.EPERM
    await (await shared(meta, BOB)).unlinkat("bobs", 0)


async def test_chmod_chown_rules(meta: VolExport) -> None:
    node = await make_file(await shared(meta, BOB), "bobs", 0o666)
    as_alice = await (await shared(meta, ALICE)).walk("bobs")
    for change in (
        SetAttr(SetattrMask.MODE, mode=0o777),
        SetAttr(SetattrMask.UID, uid=ALICE),
    ):
        with pytest.raises(OSError) as e:
            await as_alice.setattr(change)
        assert errno_of(e) == errno.EPERM
    with pytest.raises(OSError) as e:  # the owner may not give the file away
        await node.setattr(SetAttr(SetattrMask.UID, uid=ALICE))
    assert errno_of(e) == errno.EPERM
    await node.setattr(SetAttr(SetattrMask.MODE, mode=0o600))
    assert (await node.getattr(0)).mode == stat.S_IFREG | 0o600


async def test_chown_drops_setuid_and_setgid(meta: VolExport) -> None:
    node = await make_file(await shared(meta, 0), "tool", 0o6755, gid=0)
    await node.setattr(SetAttr(SetattrMask.UID | SetattrMask.GID, uid=ALICE, gid=ALICE))
    assert (await node.getattr(0)).mode == stat.S_IFREG | 0o755  # as Linux, even for root


async def test_protected_hard_links(meta: VolExport) -> None:
    await make_file(await shared(meta, BOB), "private", 0o600)
    await make_file(await shared(meta, BOB), "open", 0o666)
    alice = await shared(meta, ALICE)
    with pytest.raises(OSError) as e:  # alice may not read and write it
        await alice.link(await alice.walk("private"), "mine")
    assert errno_of(e) == errno.EPERM
    await alice.link(await alice.walk("open"), "mine")  # she may read and write this one
    bob = await shared(meta, BOB)
    await bob.link(await bob.walk("private"), "bobs")  # the owner may, whatever the mode


async def test_setgid_directory_inheritance(meta: VolExport) -> None:
    root = await attach(meta, 0)
    await root.mkdir("team", stat.S_IFDIR | 0o2777, 0)
    team = await root.walk("team")
    await team.setattr(SetAttr(SetattrMask.GID, gid=50))
    alice_team = await (await attach(meta, ALICE)).walk("team")
    node = await make_file(alice_team, "f", 0o644, gid=100)
    assert (await node.getattr(0)).gid == 50
    await alice_team.mkdir("sub", stat.S_IFDIR | 0o755, 100)
    sub = await (await alice_team.walk("sub")).getattr(0)
    assert (sub.gid, sub.mode) == (50, stat.S_IFDIR | stat.S_ISGID | 0o755)


async def test_squash_root(export_dir: Path) -> None:
    ex = open_export(str(export_dir), metadata=True, squash_root=True)
    root = await attach(ex, 0)
    with pytest.raises(OSError) as e:
        await root.create("f", RDWR, 0o644, 0)  # the root dir is 0755 root: nobody can't write
    assert errno_of(e) == errno.EACCES
    ex.close()


async def test_symlink_stored_as_file(meta: VolExport, export_dir: Path) -> None:
    root = await attach(meta, 0)
    qid = await root.symlink("link", "shared/target", 0)
    assert qid.type == QidType.SYMLINK
    host = export_dir / "link"
    assert stat.S_ISREG(os.lstat(host).st_mode)
    assert host.read_bytes() == b"shared/target"
    node = await root.walk("link")
    assert await node.readlink() == "shared/target"
    attr = await node.getattr(0)
    assert (stat.S_IFMT(attr.mode), attr.size) == (stat.S_IFLNK, len("shared/target"))
    with pytest.raises(OSError) as e:
        await node.open(RDONLY)
    assert errno_of(e) == errno.ELOOP


async def test_host_symlink_still_a_symlink(meta: VolExport, export_dir: Path) -> None:
    os.symlink("elsewhere", export_dir / "hostlink")
    node = await (await attach(meta, 0)).walk("hostlink")
    assert await node.readlink() == "elsewhere"
    assert stat.S_ISLNK((await node.getattr(0)).mode)


@pytest.mark.parametrize(
    "kind", [stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFREG]
)
async def test_special_files_are_regular_host_files(
    meta: VolExport, export_dir: Path, kind: int
) -> None:
    device = kind in (stat.S_IFCHR, stat.S_IFBLK)
    who = 0 if device else ALICE  # a device needs root (CAP_MKNOD)
    shared_dir = await shared(meta, who)
    await shared_dir.mknod("node", kind | 0o640, 8, 1, 100)
    host = export_dir / "shared" / "node"
    st = os.lstat(host)
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, os.geteuid())
    attr = await (await shared_dir.walk("node")).getattr(0)
    assert (attr.mode, attr.uid, attr.gid) == (kind | 0o640, who, 100)
    assert attr.rdev == (0x801 if device else 0)
    assert stored(host).rdev == (0x801 if device else None)
    if kind != stat.S_IFREG:
        with pytest.raises(OSError) as e:
            await (await shared_dir.walk("node")).open(RDONLY)
        assert errno_of(e) == errno.ENXIO


async def test_internal_xattrs_hidden(meta: VolExport) -> None:
    node = await make_file(await attach(meta, 0), "f", 0o644, 0)
    await node.setxattr("user.note", b"hi", 0)
    assert await node.listxattr() == ["user.note"]
    with pytest.raises(OSError) as e:
        await node.getxattr(metadata.XATTRS["mode"])
    assert errno_of(e) == errno.ENODATA
    for call in (
        node.setxattr(metadata.XATTRS["uid"], b"\0\0\0\0", 0),
        node.removexattr(metadata.XATTRS["mode"]),
    ):
        with pytest.raises(OSError) as e:
            await call
        assert errno_of(e) == errno.EPERM


async def test_failed_creation_leaves_nothing(meta: VolExport, export_dir: Path) -> None:
    root = await attach(meta, 0)
    # a gid the format cannot hold fails after the file is made, before it is linked
    with pytest.raises(OSError) as e:
        await root.symlink("link", "target", metadata.NO_ID)
    assert errno_of(e) == errno.EINVAL
    with pytest.raises(OSError) as e:
        await root.mknod("dev", stat.S_IFCHR | 0o600, 1, 3, metadata.NO_ID)
    assert errno_of(e) == errno.EINVAL
    assert host_names(export_dir) == ["shared"]


async def test_host_tree_holds_only_files_and_dirs(meta: VolExport, export_dir: Path) -> None:
    root = await attach(meta, 0)
    await root.symlink("l", "x", 0)
    await root.mknod("p", stat.S_IFIFO | 0o644, 0, 0, 0)
    await root.mkdir("d", stat.S_IFDIR | 0o750, 0)
    await make_file(root, "f", 0o600, 0)
    kinds = {
        name: stat.S_IFMT(os.lstat(export_dir / name).st_mode) for name in host_names(export_dir)
    }
    assert set(kinds.values()) <= {stat.S_IFREG, stat.S_IFDIR}
    assert sorted(kinds) == ["d", "f", "l", "p", "shared"]  # no temporary names
    modes = {name: stored(export_dir / name).mode for name in kinds}
    assert modes == {
        "d": stat.S_IFDIR | 0o750,
        "f": stat.S_IFREG | 0o600,
        "l": stat.S_IFLNK | 0o777,
        "p": stat.S_IFIFO | 0o644,
        "shared": stat.S_IFDIR | 0o1777,
    }


async def test_hard_link_shares_metadata(meta: VolExport) -> None:
    root = await attach(meta, 0)
    node = await make_file(root, "f", 0o644, 0)
    await root.link(node, "g")
    await node.setattr(SetAttr(SetattrMask.MODE, mode=0o600))
    other = await (await root.walk("g")).getattr(0)
    assert (other.mode, other.qid.path) == (stat.S_IFREG | 0o600, node.qid.path)


async def test_metadata_off_wsl_masks(export: VolExport, export_dir: Path) -> None:
    (export_dir / "file").write_text("x")
    (export_dir / "dir").mkdir()
    root = await export.attach("uid=1000;gid=50;umask=022;fmask=111", User("u", 7))
    f = await (await root.walk("file")).getattr(0)
    d = await (await root.walk("dir")).getattr(0)
    assert (f.mode, f.uid, f.gid) == (stat.S_IFREG | 0o644, 1000, 50)
    assert (d.mode, d.uid, d.gid) == (stat.S_IFDIR | 0o755, 1000, 50)
    with pytest.raises(OSError) as e:
        await root.mknod("fifo", stat.S_IFIFO | 0o644, 0, 0, 0)
    assert errno_of(e) == errno.EPERM
    assert not any(metadata.is_internal(n) for n in os.listxattr(export_dir / "file"))


async def test_metadata_off_chmod_toggles_host_write(export: VolExport, export_dir: Path) -> None:
    (export_dir / "file").write_text("x")
    os.chmod(export_dir / "file", 0o644)
    root = await export.attach("umask=022", User("u", 0))
    node = await root.walk("file")
    await node.setattr(SetAttr(SetattrMask.MODE, mode=0o444))
    assert stat.S_IMODE(os.stat(export_dir / "file").st_mode) == 0o444
    assert (await node.getattr(0)).mode == stat.S_IFREG | 0o555
    await node.setattr(SetAttr(SetattrMask.MODE, mode=0o600))
    assert stat.S_IMODE(os.stat(export_dir / "file").st_mode) == 0o644
    assert (await node.getattr(0)).mode == stat.S_IFREG | 0o755


async def test_through_the_server(server_address: str) -> None:
    """Over 9P with `C;metadata`: per-uid attaches, the 1000-vs-1001 denial, hidden xattrs."""
    async with connect(server_address) as client:
        root = await client.attach("C;metadata", "root", 0)
        await root.mkdir("shared", 0o1777)
        bob = await (await client.attach("C;metadata", "bob", BOB)).walk("shared")
        await bob.create("bobs", RDWR, 0o600, 100)
        await bob.clunk()
        alice = await client.attach("C;metadata", "alice", ALICE)
        node = await alice.walk("shared", "bobs")
        with pytest.raises(OSError) as e:
            await node.open(RDONLY)
        assert errno_of(e) == errno.EACCES
        attr = await node.getattr()
        assert (attr.mode, attr.uid, attr.gid) == (stat.S_IFREG | 0o600, BOB, 100)


def test_cli_forwards_metadata_flags_only_when_given() -> None:
    p = cli.parser()
    declared = open_export.options
    assert given(p.parse_args(["--export", "C=/x"]), declared) == {}
    args = p.parse_args(["--export", "C=/x", "--metadata", "--squash-root"])
    assert given(args, declared) == {"metadata": True, "squash_root": True}


async def test_readdir_lists_stored_types(meta: VolExport) -> None:
    root = await attach(meta, 0)
    await root.symlink("l", "x", 0)
    await root.mknod("p", stat.S_IFIFO | 0o644, 0, 0, 0)
    await make_file(root, "f", 0o600, 0)
    handle = await root.open(RDONLY | int(OpenFlag.DIRECTORY))
    types = {d.name: d.type for d in await handle.readdir(0)}
    await handle.close()
    dt = {n: stat.S_IFMT(m) >> 12 for n, m in (("l", stat.S_IFLNK), ("p", stat.S_IFIFO))}
    assert types["l"] == dt["l"] and types["p"] == dt["p"]
    assert types["f"] == stat.S_IFREG >> 12 and types["shared"] == stat.S_IFDIR >> 12


async def test_metadata_off_shows_wsl_view_with_or_without_options(
    export: VolExport, export_dir: Path
) -> None:
    (export_dir / "file").write_text("x")
    os.chmod(export_dir / "file", 0o600)
    for options in ("umask=0", ""):
        root = await export.attach(options, User("u", 4242))  # a uid the host does not know
        attr = await (await root.walk("file")).getattr(0)
        assert (attr.mode, attr.uid, attr.gid) == (stat.S_IFREG | 0o777, 4242, NOBODY)
