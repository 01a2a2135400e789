"""The protocol extensions (docs/protocol-extensions.md) against a real server over real
sockets: negotiation and fallback, the same answers as the plain sequences they replace,
nothing of them on a plain connection, and no fid kept per listed entry."""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ninep import messages as m
from ninep.backend import Attr, Dirent, File, User, child_attrs
from ninep.client import Client, Fid, connect, make_setattr
from ninep.constants import (
    AT_REMOVEDIR,
    EXTENDED_VERSION,
    EXTENDED_VERSION_2,
    NOFID,
    VERSION,
    GetattrMask,
    LockFlag,
    LockStatus,
    LockType,
    OpenFlag,
    SetattrMask,
)
from ninep.escape import swap
from ninep.server import Server
from ninep.transport import Address
from volfs import metadata
from volfs.caseflag import HOST_XATTR
from volfs.export import open_export
from volfs.names import STAGING_DIR
from volfs.racy import settled

from .audit import audited
from .rawconn import RawConn

T = TypeVar("T")

ALL = int(GetattrMask.ALL)
RDWR = int(OpenFlag.RDWR)
DIRECTORY = int(OpenFlag.RDONLY | OpenFlag.DIRECTORY)


@asynccontextmanager
async def served(export_dir: Path) -> AsyncIterator[tuple[Server, str]]:
    """An in-process server of `export_dir` as "C" on loopback TCP: the server, its address."""
    export = open_export(str(export_dir))
    server = Server({"C": export})
    try:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(server.serve, [Address("tcp", host="127.0.0.1", port=0)])
            yield server, str(bound[0])
            nursery.cancel_scope.cancel()
    finally:
        export.close()


async def handshake(conn: RawConn, version: str, aname: str = "C") -> str:
    """Tversion `version`, then Tattach of fid 0; the version the server answered."""
    reply = await conn.call(m.Tversion(0xFFFF, msize=65536, version=version))
    attached = await conn.call(
        m.Tattach(1, fid=0, afid=NOFID, uname="root", aname=aname, n_uname=0)
    )
    assert attached.kind is m.Rattach
    return str(reply.version)


# ---- negotiation ----


async def test_our_client_gets_the_extensions_from_our_server(export_dir: Path) -> None:
    async with served(export_dir) as (_, address):
        async with connect(address) as client:
            assert client.extended
        async with connect(address, extensions=False) as client:
            assert not client.extended


@pytest.mark.parametrize(
    ("asked", "answered"),
    [
        (EXTENDED_VERSION, EXTENDED_VERSION),
        (VERSION, VERSION),
        (VERSION + ".other", VERSION),  # any other suffix: plain 9P2000.L, as before
        (EXTENDED_VERSION + "2", VERSION),
    ],
)
async def test_only_the_exact_extended_version_is_answered_extended(
    export_dir: Path, asked: str, answered: str
) -> None:
    async with served(export_dir) as (_, address):
        conn = await RawConn.open(address)
        assert await handshake(conn, asked) == answered
        reply = await conn.call(m.Twalkgetattr(2, fid=0, newfid=1, wnames=[], request_mask=ALL))
        assert (reply.kind is m.Rwalkgetattr) == (answered == EXTENDED_VERSION)
        await conn.aclose()


def _requests(fid: int) -> list[m.Message]:
    """One of each extension request, from directory fid `fid` (opened, for Treaddirattr)."""
    return [
        m.Twalkgetattr(2, fid=fid, newfid=9, wnames=["f"], request_mask=ALL),
        m.Treaddirattr(3, fid=fid, offset=0, count=8192, request_mask=ALL),
        m.Tlcreateattr(
            4, fid=fid, newfid=11, name="new", flags=RDWR, mode=0o644, gid=0, request_mask=ALL
        ),
        m.Tsymlinkattr(5, fid=fid, name="ln", symtgt="f", gid=0, request_mask=ALL),
        m.Tmknodattr(
            6, dfid=fid, name="p", mode=stat.S_IFIFO, major=0, minor=0, gid=0, request_mask=ALL
        ),
        m.Tmkdirattr(7, dfid=fid, name="d", mode=0o755, gid=0, request_mask=ALL),
        m.Tnotify(8, fid=fid),
        m.Twalkopen(9, fid=fid, newfid=9, wnames=["f"], flags=RDWR, request_mask=ALL),
        m.Tsetattrattr(10, fid=fid, attr=make_setattr(mode=0o700), request_mask=ALL),
        m.Texports(11),
    ]


async def test_a_plain_connection_sees_no_extension(server_address: str, export_dir: Path) -> None:
    (export_dir / "f").write_text("x")
    conn = await RawConn.open(server_address)
    await conn.handshake()
    assert (await conn.call(m.Twalk(1, fid=0, newfid=1, wnames=[]))).kind is m.Rwalk
    assert (await conn.call(m.Tlopen(1, fid=1, flags=DIRECTORY))).kind is m.Rlopen
    requests = _requests(1)
    assert {type(r) for r in requests} == set(m.EXTENSIONS)
    for request in requests:
        reply = await conn.call(request)
        assert (reply.kind, reply.ecode) == (m.Rlerror, errno.EOPNOTSUPP), request
    # nothing was made or changed, and the walk made no fid 9
    assert sorted(os.listdir(export_dir)) == ["f"]
    assert stat.S_IMODE(export_dir.stat().st_mode) != 0o700
    assert (await conn.call(m.Tclunk(1, fid=9))).kind is m.Rlerror
    await conn.aclose()


async def test_a_new_tversion_turns_the_extensions_off(export_dir: Path) -> None:
    async with served(export_dir) as (_, address):
        conn = await RawConn.open(address)
        assert await handshake(conn, EXTENDED_VERSION) == EXTENDED_VERSION
        walk = m.Twalkgetattr(2, fid=0, newfid=1, wnames=[], request_mask=ALL)
        assert (await conn.call(walk)).kind is m.Rwalkgetattr
        assert await handshake(conn, VERSION) == VERSION
        assert (await conn.call(walk)).ecode == errno.EOPNOTSUPP
        await conn.aclose()


@pytest.mark.parametrize("version", [VERSION, EXTENDED_VERSION])
async def test_the_flock_flag_is_honoured_only_on_an_extended_connection(
    export_dir: Path, version: str
) -> None:
    """A flock lock and a POSIX lock do not meet; on a plain connection the flag is
    ignored and the lock is a POSIX one, which another fid's Tgetlock then finds."""
    (export_dir / "f").write_text("x")
    async with served(export_dir) as (_, address):
        holder, asker = await RawConn.open(address), await RawConn.open(address)
        await handshake(holder, version)
        await handshake(asker, VERSION)
        for conn in (holder, asker):
            assert (await conn.call(m.Twalk(2, fid=0, newfid=1, wnames=["f"]))).kind is m.Rwalk
            assert (await conn.call(m.Tlopen(3, fid=1, flags=RDWR))).kind is m.Rlopen
        whole: dict[str, Any] = {"type": LockType.WRLCK, "start": 0, "length": 0}
        whole |= {"proc_id": 1, "client_id": "t"}
        locked = await holder.call(m.Tlock(4, fid=1, flags=int(LockFlag.FLOCK), **whole))
        assert locked.status == LockStatus.SUCCESS
        found = await asker.call(m.Tgetlock(4, fid=1, **whole))
        posix = version == VERSION
        assert found.type == (LockType.WRLCK if posix else LockType.UNLCK)
        for conn in (holder, asker):
            await conn.aclose()


# ---- the same answers as the plain sequences they replace, on random trees ----

# Host names: case variants of one another, names with characters Windows cannot hold
# (`:` raw, shown escaped) and their private-use images (U+F03F, shown as `?`).
_names = st.sampled_from(
    ["a", "b", "Case", "case", "CASE", "d.txt", "x y", "\u00e9t\u00e9", "a:b", "q\uf03f"]
)
_BY_ROOT, _BY_OTHER = 0, 1000  # owners of stored metadata
_leaf = st.one_of(
    st.integers(0, 3000).map(lambda n: ("file", n)),
    st.sampled_from(["a", "../b", "nowhere"]).map(lambda t: ("link", t)),
    st.just(("fifo", 0)),  # a host fifo
    # a regular host file with stored metadata (docs/metadata.md): what it shows with it
    st.sampled_from(["fifo", "chr", "blk", "sock", "symlink", "setuid", "private"]).map(
        lambda kind: ("stored", kind)
    ),
)
# A directory: plain, case-sensitive by its flag, or with stored metadata that lets
# others list it but not search it (mode 0744, owned by root).
_dir_kinds = st.sampled_from(["plain", "sensitive", "unsearchable"])
_tree = st.dictionaries(
    _names,
    st.recursive(
        _leaf,
        lambda kids: st.tuples(_dir_kinds, st.dictionaries(_names, kids, max_size=4)),
        max_leaves=12,
    ),
    max_size=5,
)
_STORED: dict[str, dict[metadata.Field, int]] = {
    "fifo": {"mode": stat.S_IFIFO | 0o640, "uid": _BY_OTHER, "gid": _BY_OTHER},
    "chr": {"mode": stat.S_IFCHR | 0o660, "uid": 0, "gid": 6, "rdev": metadata.makedev(1, 3)},
    "blk": {"mode": stat.S_IFBLK | 0o600, "rdev": metadata.makedev(8, 1)},
    "sock": {"mode": stat.S_IFSOCK | 0o755},
    "symlink": {"mode": stat.S_IFLNK | 0o777, "uid": _BY_OTHER},
    "setuid": {"mode": stat.S_IFREG | 0o4755, "uid": _BY_OTHER, "gid": 50},
    "private": {"mode": stat.S_IFREG | 0o600, "uid": 0, "gid": 0},
    "unsearchable": {"mode": stat.S_IFDIR | 0o744, "uid": 0, "gid": 0},
}


def _store(path: Path, kind: str) -> None:
    for field, value in _STORED[kind].items():
        os.setxattr(path, metadata.XATTRS[field], metadata.encode(field, value))


def _build(path: Path, tree: dict[str, Any]) -> list[tuple[str, ...]]:
    """Make `tree` under `path`; every path in it, and paths that miss, as tuples of host
    names (clients see them escaped: `ninep.escape.swap`)."""
    paths: list[tuple[str, ...]] = [(), ("missing",)]
    for name, node in tree.items():
        here = path / name
        kind, value = node
        if isinstance(value, dict):
            here.mkdir()
            paths += [(name, *sub) for sub in _build(here, value)]
            if kind == "sensitive":
                os.setxattr(here, HOST_XATTR, b"1")
            elif kind == "unsearchable":
                _store(here, kind)
        elif kind == "file":
            here.write_bytes(b"x" * value)
            paths += [(name,), (name, "below")]  # through a file: ENOTDIR
        elif kind == "link":
            here.symlink_to(value)
            paths.append((name,))
        elif kind == "fifo":
            os.mkfifo(here)
            paths.append((name,))
        else:
            here.write_bytes(value.encode())
            _store(here, value)
            paths.append((name,))
    os.listdir(path)  # the directory's atime settles (relatime) before anything compares
    return paths


def _build_export(top: Path, tree: dict[str, Any], staging: bool) -> list[tuple[str, ...]]:
    """`_build`, and the export's hidden staging directory (`volfs.names.STAGING_DIR`)
    at its root if `staging`: no client sees it, by any name."""
    paths = _build(top, tree)
    if staging:
        (top / STAGING_DIR).mkdir()
        (top / STAGING_DIR / "inside").write_text("x")
    return [*paths, (STAGING_DIR,), (STAGING_DIR.upper(),)]


def _lmode(path: Path) -> int:
    """The mode of `path` itself (0 if missing)."""
    try:
        return path.lstat().st_mode
    except OSError:
        return 0


async def _walk_then_getattr(root: Fid, path: tuple[str, ...]) -> Attr | int:
    """The plain sequence: Twalk, Tgetattr, Tclunk; or the errno."""
    try:
        fid = await root.walk(*path)
    except OSError as e:
        return e.errno or 0
    async with fid:
        return await fid.getattr(ALL)


_OPEN = int(OpenFlag.RDONLY | OpenFlag.NONBLOCK)  # a fifo opens without a writer


async def _walk_open_then_getattr(root: Fid, path: tuple[str, ...]) -> Attr | int:
    """The plain sequence: Twalk, Tlopen, Tgetattr, Tclunk; or the errno."""
    try:
        fid = await root.walk(*path)
    except OSError as e:
        return e.errno or 0
    async with fid:
        try:
            await fid.open(_OPEN)
            return await fid.getattr(ALL)
        except OSError as e:
            return e.errno or 0


async def _walk_open(root: Fid, path: tuple[str, ...]) -> Attr | int:
    """Twalkopen (and Tclunk); or the errno."""
    try:
        fid, attr = await root.walk_open(*path, flags=_OPEN)
    except OSError as e:
        return e.errno or 0
    await fid.clunk()
    assert fid.qid == attr.qid and fid.iounit == 0
    return attr


async def _readdir_then_walk(root: Fid, path: tuple[str, ...]) -> list[tuple[Dirent, Attr | None]]:
    """The plain sequence: Treaddir, then Twalk, Tgetattr and Tclunk of each entry (None
    where that fails: EACCES in a directory that may be listed but not searched)."""
    async with await root.walk(*path) as d:
        await d.open(DIRECTORY)
        listed = []
        for entry in await d.readdir():
            attr = await _walk_then_getattr(d, (entry.name,))
            listed.append((entry, attr if isinstance(attr, Attr) else None))
        return listed


async def _readdirattr(
    root: Fid, path: tuple[str, ...], count: int
) -> list[tuple[Dirent, Attr | None]]:
    """Treaddirattr chunks of `count` bytes, each entry's attributes read by the server;
    each chunk says it ends the listing exactly when a next one would be empty."""
    async with await root.walk(*path) as d:
        await d.open(DIRECTORY)
        listed: list[tuple[Dirent, Attr | None]] = []
        end = False
        while not end:
            offset = listed[-1][0].offset if listed else 0
            chunk, end = await d.readdir_attrs_chunk(offset, count, ALL)
            listed += chunk
            after = listed[-1][0].offset if listed else 0
            assert end == (not (await d.readdir_attrs_chunk(after, count, ALL))[0]), path
        return listed


async def _errno_or(result: Awaitable[T]) -> T | int:
    try:
        return await result
    except OSError as e:
        return e.errno or 0


@asynccontextmanager
async def _both(address: str, aname: str, uid: int = 0) -> AsyncIterator[tuple[Fid, Fid]]:
    """Roots attached (as `uid`) by an extended client and by a plain one."""
    async with connect(address) as ext, connect(address, extensions=False) as plain:
        assert ext.extended and not plain.extended
        async with (
            await ext.attach(aname, n_uname=uid) as ext_root,
            await plain.attach(aname, n_uname=uid) as plain_root,
        ):
            yield ext_root, plain_root


# (attach options, uid): plain; with metadata as root, and as another user (who may list
# but not search an "unsearchable" directory); every directory below the root sensitive.
_ATTACHES = [("C", 0), ("C;metadata", 0), ("C;metadata", _BY_OTHER), ("C;case=force", 0)]


@pytest.mark.parametrize(("aname", "uid"), _ATTACHES)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=_tree, count=st.sampled_from([400, 1000, 65536]), staging=st.booleans())
def test_extended_answers_equal_the_plain_sequences(
    tmp_path: Path, aname: str, uid: int, tree: dict[str, Any], count: int, staging: bool
) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as top:
        hosts = _build_export(Path(top), tree, staging)
        paths = [tuple(map(swap, p)) for p in hosts]  # as the export shows them
        dirs = [tuple(map(swap, p)) for p in hosts if stat.S_ISDIR(_lmode(Path(top, *p)))]

        async def compare() -> None:
            async with (
                served(Path(top)) as (_, address),
                _both(address, aname, uid) as (ext, plain),
            ):
                for path in paths:
                    expected = await _walk_then_getattr(plain, path)
                    try:
                        fid, attr = await ext.walk_getattr(*path, mask=ALL)
                    except OSError as e:
                        assert isinstance(expected, int), (path, e)
                        if len(path) == 1:  # a partial Twalk does not say why it stopped
                            assert e.errno == expected, path
                        continue
                    await fid.clunk()
                    assert attr == expected, path
                    assert fid.qid == attr.qid
                for path in paths:
                    expected = await _walk_open_then_getattr(plain, path)
                    opened = await _walk_open(ext, path)
                    if isinstance(expected, int) and len(path) > 1:  # a partial Twalk
                        assert isinstance(opened, int), path
                    else:
                        assert opened == expected, path
                for path in dirs:
                    listed = await _errno_or(_readdirattr(ext, path, count))
                    assert listed == await _errno_or(_readdir_then_walk(plain, path)), path

        trio.run(compare)


# ---- the backend's getattr_child itself: every name a client may send ----


def _asked(shown: list[str]) -> list[str]:
    """Names to ask a directory of entries `shown` for: each, in other cases, and names
    that are not there, are hidden, or are not names."""
    variants = {v for n in shown for v in (n, n.upper(), n.lower(), n.swapcase())}
    others = [".", "..", "missing", STAGING_DIR, STAGING_DIR.upper(), "", "a/b"]
    return sorted(variants) + others


async def _walk_node(root: File, names: list[str]) -> File:
    """The File at `names` below `root` (a new one: the caller closes it)."""
    node = await root.clone()
    for name in names:
        try:
            child = await node.walk(name)
        finally:
            await node.close()
        node = child
    return node


async def _walked_attr(node: File, name: str) -> Attr:
    child = await node.walk(name)
    try:
        return await child.getattr(ALL)
    finally:
        await child.close()


@pytest.mark.parametrize(
    ("options", "uid", "sensitive"),
    [
        ("", 0, False),
        ("metadata", 0, False),
        ("metadata", _BY_OTHER, False),
        ("metadata;case=force", 0, False),
        ("metadata", 0, True),  # a case-sensitive export: no escape, no folding
    ],
)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=_tree, staging=st.booleans())
def test_getattr_child_equals_walk_then_getattr(
    tmp_path: Path, options: str, uid: int, sensitive: bool, tree: dict[str, Any], staging: bool
) -> None:
    """volfs's `getattr_child` (what Treaddirattr and the creations with attributes ask)
    gives what a walk then a getattr gives, or the walk's errno, for the names a listing
    shows, their case variants (found by folding where the directory folds), escaped
    names, missing and hidden names, `.` and `..`, from directories and from files."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as top:
        hosts = _build_export(Path(top), tree, staging)

        async def compare() -> None:
            export = open_export(top, case_sensitive=sensitive)
            root = await export.attach(options, User("u", uid))
            assert child_attrs(root) is not None
            try:
                for path in hosts:
                    try:
                        node = await _walk_node(root, [export.show(n) for n in path])
                    except OSError:
                        continue
                    offered = child_attrs(node)
                    assert offered is not None
                    here = Path(top, *path)
                    shown = [export.show(h) for h in os.listdir(here)] if here.is_dir() else []
                    for name in _asked(shown):
                        expected = await _errno_or(_walked_attr(node, name))
                        got = await _errno_or(offered.getattr_child(name, ALL))
                        assert got == expected, (path, name)
                    await node.close()
            finally:
                await root.close()
                export.close()

        trio.run(compare)


# ---- what a listed entry costs the server's host: no walk ----


async def _settled(*paths: Path) -> None:
    """Wait until the ctime of each of `paths` is settled (`volfs.racy`): a read of its
    stored metadata is then kept, not made again at each use."""
    for path in paths:
        while not settled(os.stat(path), time.time_ns()):
            await trio.sleep(0.005)


@pytest.mark.parametrize("aname", ["C", "C;metadata"])
async def test_a_listed_entry_costs_no_walk(export_dir: Path, aname: str) -> None:
    """Treaddirattr asks volfs's getattr_child: no host object is opened per listed entry
    (a walk opens each), and stored metadata is read by the entry's name in the listed
    directory, never through a descriptor of the entry."""
    big = export_dir / "big"
    big.mkdir()
    names = {f"entry-{i:04d}" for i in range(500)}
    for i, name in enumerate(sorted(names)):
        (big / name).write_bytes(b"x" * (i % 5))
        if i % 2:
            _store(big / name, "setuid")
    await _settled(big)  # else its metadata is read again for each entry's search check
    async with served(export_dir) as (_, address), connect(address) as client:
        root = await client.attach(aname)
        async with await root.walk("big") as d:
            await d.open(DIRECTORY)
            events: list[tuple[str, tuple[Any, ...]]] = []
            with audited(lambda event, args: events.append((event, args))):
                listed = await d.readdir_attrs()
    assert {e.name for e, _ in listed} == names | {".", ".."}
    assert all(attr is not None and attr.valid for _, attr in listed)
    opened = [args for event, args in events if event == "open"]
    assert opened == []
    read = [os.fsdecode(args[0]) for event, args in events if event == "os.getxattr"]
    by_name = [path for path in read if path.rpartition("/")[2] in names]
    dots = [path for path in read if path not in by_name]  # `.` and `..`, if not kept
    assert all(re.fullmatch(r"/proc/self/fd/\d+", path) for path in dots), dots
    if "metadata" in aname:
        assert len(by_name) == 5 * len(names)  # the listing's stored type, then the 4 fields
        assert len(dots) <= 2 * len(metadata.FIELDS)
    else:
        assert read == []


async def test_an_entry_replaced_while_its_metadata_is_read_is_walked_to(
    export_dir: Path,
) -> None:
    """The host renames another file over a listed entry between its lstat and the read of
    its stored metadata (by name): the attributes are the new file's, all of them, as a
    walk then a getattr gives, never the old file's stat with the new file's metadata."""
    victim, other = export_dir / "victim", export_dir / "other"
    victim.write_bytes(b"old")
    _store(victim, "private")
    other.write_bytes(b"newer")
    _store(other, "setuid")
    export = open_export(str(export_dir), metadata=True)
    root = await export.attach("", User("root", 0))
    offered = child_attrs(root)
    assert offered is not None
    replaced: list[str] = []

    def replace(event: str, args: tuple[Any, ...]) -> None:
        if event == "os.getxattr" and os.fsdecode(args[0]).endswith("/victim") and not replaced:
            replaced.append(os.fsdecode(args[0]))
            os.rename(other, victim)

    try:
        with audited(replace):
            attr = await offered.getattr_child("victim", ALL)
        assert replaced and not other.exists()
        assert attr == await _walked_attr(root, "victim")
        assert (attr.size, attr.uid, attr.mode) == (5, _BY_OTHER, stat.S_IFREG | 0o4755)
    finally:
        await root.close()
        export.close()


async def test_a_live_entry_lends_its_metadata_as_read(export_dir: Path) -> None:
    """An entry a fid holds keeps its stored metadata as last read, while its ctime holds
    (`volfs.racy`): getattr_child of its name reads none, and gives the fid's getattr."""
    for name in ("held", "free"):
        (export_dir / name).write_bytes(b"x")
        _store(export_dir / name, "setuid")
    await _settled(export_dir, export_dir / "held")  # (the root's: read for its search check)
    export = open_export(str(export_dir), metadata=True)
    root = await export.attach("", User("root", 0))
    offered = child_attrs(root)
    assert offered is not None
    held = await root.walk("held")  # reads the metadata, kept in the entry's memo
    read: list[str] = []

    def reads(event: str, args: tuple[Any, ...]) -> None:
        if event == "os.getxattr":
            read.append(os.fsdecode(args[0]))

    try:
        with audited(reads):
            attr = await offered.getattr_child("held", ALL)
            assert read == []
            other = await offered.getattr_child("free", ALL)
            assert len(read) == 4 and all(path.endswith("/free") for path in read)
        assert attr == await held.getattr(ALL) and attr.uid == _BY_OTHER
        assert other.uid == _BY_OTHER and other.qid != attr.qid
    finally:
        await held.close()
        await root.close()
        export.close()


async def _reply(root: Fid, msg: m.Request[m.R]) -> m.R:
    return await root.client.request(msg)


@pytest.mark.parametrize("aname", ["C", "C;metadata"])
async def test_made_with_attributes_equal_made_then_getattr(export_dir: Path, aname: str) -> None:
    async with served(export_dir) as (_, address), _both(address, aname) as (ext, plain):
        made: dict[str, tuple[m.Qid, Attr]] = {}
        async with await ext.clone() as f:
            r1 = await _reply(
                f, m.Tlcreateattr(fid=f._num(), newfid=f._num(), name="file", flags=RDWR,
                mode=0o640, gid=0, request_mask=ALL),
            )  # fmt: skip
            made["file"] = r1.qid, r1.attr
            assert await f.write(0, b"data") == 4
        r2 = await _reply(
            ext, m.Tmkdirattr(dfid=ext._num(), name="dir", mode=0o750, gid=0, request_mask=ALL)
        )
        r3 = await _reply(
            ext, m.Tsymlinkattr(fid=ext._num(), name="link", symtgt="file", gid=0,
            request_mask=ALL),
        )  # fmt: skip
        made |= {"dir": (r2.qid, r2.attr), "link": (r3.qid, r3.attr)}
        fifo = stat.S_IFIFO | 0o600
        if "metadata" in aname:  # a fifo is kept in metadata; without it mknod is EPERM
            r4 = await _reply(
                ext, m.Tmknodattr(dfid=ext._num(), name="fifo", mode=fifo, major=0, minor=0,
                gid=0, request_mask=ALL),
            )  # fmt: skip
            made["fifo"] = r4.qid, r4.attr
            assert stat.S_ISFIFO(r4.attr.mode)
        else:
            for root in (ext, plain):
                with pytest.raises(OSError) as info:
                    await root.mknod_getattr("fifo", fifo)
                assert info.value.errno == errno.EPERM
        for name, (qid, attr) in made.items():
            assert attr.valid and attr.qid == qid, name
            expected = await _walk_then_getattr(plain, (name,))
            assert isinstance(expected, Attr), name
            if name == "file":  # written since: only size, blocks and times moved
                assert (expected.size, attr.size) == (4, 0)
                expected.size, expected.blocks = attr.size, attr.blocks
                expected.mtime_sec, expected.mtime_nsec = attr.mtime_sec, attr.mtime_nsec
                expected.ctime_sec, expected.ctime_nsec = attr.ctime_sec, attr.ctime_nsec
            assert attr == expected, name
        assert stat.S_ISLNK(made["link"][1].mode) and stat.S_ISDIR(made["dir"][1].mode)
        # the client's helpers give the same
        _, attr = await ext.mkdir_getattr("dir2", 0o700)
        expected = await _walk_then_getattr(plain, ("dir2",))
        assert attr == expected


@pytest.mark.parametrize("aname", ["C", "C;metadata"])
async def test_setattr_with_attributes_equals_setattr_then_getattr(
    export_dir: Path, aname: str
) -> None:
    (export_dir / "f").write_bytes(b"12345678")
    (export_dir / "d").mkdir()
    changes = [
        make_setattr(mode=0o600),
        make_setattr(size=3),
        make_setattr(atime=1_000_000_000_123, mtime=2_000_000_000_456),
        make_setattr(mode=0o751, uid=0, gid=0),
    ]
    async with served(export_dir) as (_, address), _both(address, aname) as (ext, plain):
        for name in ("f", "d"):
            for change in changes:
                if name == "d" and change.valid & SetattrMask.SIZE:
                    continue
                async with await ext.walk(name) as fid:
                    attr = await fid.setattr_getattr(change)
                assert attr == await _walk_then_getattr(plain, (name,)), (name, change)
        assert (export_dir / "f").read_bytes() == b"123"
        async with await ext.walk("d") as fid:  # a failed setattr is the plain error
            with pytest.raises(OSError) as info:
                await fid.setattr_getattr(make_setattr(size=0))
            assert info.value.errno == errno.EISDIR


async def test_a_file_created_on_a_new_fid_leaves_the_directory_fid(export_dir: Path) -> None:
    (export_dir / "taken").write_text("x")
    async with served(export_dir) as (server, address), _both(address, "C") as (ext, plain):
        for root, name in ((ext, "a"), (plain, "b")):  # one request, or clone + create
            client = root.client
            before = client.fids_in_use
            fid, attr = await root.create_at(name, RDWR, 0o640)
            assert attr == await _walk_then_getattr(plain, (name,)) and fid.qid == attr.qid
            assert await fid.write(0, b"data") == 4
            await fid.clunk()
            assert (export_dir / name).read_bytes() == b"data"
            assert stat.S_ISDIR((await root.getattr()).mode)  # still the directory's fid
            with pytest.raises(OSError) as info:
                await root.create_at("taken", RDWR | int(OpenFlag.EXCL), 0o640)
            assert info.value.errno == errno.EEXIST
            await client.settle()  # (the plain way clunks its clone in the background)
            assert client.fids_in_use == before  # none left by the failure
        assert [c["fids"] for c in server.stats()["connections"]] == [1, 1]


async def test_a_failed_walkopen_leaves_no_fid_in_use(export_dir: Path) -> None:
    (export_dir / "d").mkdir()
    async with served(export_dir) as (server, address), connect(address) as client:
        root = await client.attach("C")
        before = client.fids_in_use
        for names, flags in [(("d",), int(OpenFlag.WRONLY)), (("gone",), 0)]:
            with pytest.raises(OSError):
                await root.walk_open(*names, flags=flags)
        assert client.fids_in_use == before
        assert server.stats()["connections"][0]["fids"] == 1


async def test_a_failed_creation_with_attributes_is_the_plain_error(export_dir: Path) -> None:
    (export_dir / "taken").mkdir()
    async with served(export_dir) as (_, address), _both(address, "C") as (ext, plain):
        for root in (ext, plain):
            with pytest.raises(OSError) as info:
                await root.mkdir_getattr("taken", 0o755)
            assert info.value.errno == errno.EEXIST
            with pytest.raises(OSError) as info:
                await root.walk_getattr("taken", "nothing")
            assert info.value.errno == errno.ENOENT


async def test_walkopen_is_all_or_nothing(export_dir: Path) -> None:
    (export_dir / "d").mkdir()
    (export_dir / "f").write_bytes(b"contents")
    async with served(export_dir) as (_, address):
        conn = await RawConn.open(address)
        assert await handshake(conn, EXTENDED_VERSION) == EXTENDED_VERSION

        async def walkopen(fid: int, newfid: int, names: list[str], flags: int) -> Any:
            return await conn.call(
                m.Twalkopen(2, fid=fid, newfid=newfid, wnames=names, flags=flags, request_mask=ALL)
            )

        async def exists(fid: int) -> bool:
            return (await conn.call(m.Tgetattr(3, fid=fid, request_mask=ALL))).kind is m.Rgetattr

        wronly = int(OpenFlag.WRONLY)
        for names, flags, code in [(["d"], wronly, errno.EISDIR), (["gone"], 0, errno.ENOENT)]:
            reply = await walkopen(0, 1, names, flags)
            assert (reply.kind, reply.ecode) == (m.Rlerror, code)
            assert not await exists(1)  # no fid made
        reply = await walkopen(0, 1, ["f"], 0)
        assert reply.kind is m.Rwalkopen and reply.qid == reply.qids[-1] == reply.attr.qid
        assert reply.attr.size == 8
        assert (await conn.call(m.Tread(4, fid=1, offset=0, count=8))).data == b"contents"
        # in place: a failed open leaves the fid where it was, a good one moves and opens it
        assert (await conn.call(m.Twalk(5, fid=0, newfid=2, wnames=[]))).kind is m.Rwalk
        assert (await walkopen(2, 2, ["d"], wronly)).ecode == errno.EISDIR
        assert (await conn.call(m.Tgetattr(6, fid=2, request_mask=ALL))).attr.qid.path == (
            export_dir.stat().st_ino
        )
        assert (await walkopen(2, 2, ["f"], 0)).kind is m.Rwalkopen
        assert (await conn.call(m.Tread(7, fid=2, offset=0, count=3))).data == b"con"
        assert (await walkopen(2, 2, [], 0)).ecode == errno.EINVAL  # an open fid stays
        await conn.aclose()


async def test_readdir_with_attributes_keeps_no_fid_per_entry(export_dir: Path) -> None:
    big = export_dir / "big"
    big.mkdir()
    for i in range(3000):
        (big / f"entry-{i:05d}").write_bytes(b"x" * (i % 7))
    async with served(export_dir) as (server, address), connect(address) as client:
        assert client.extended

        def fids() -> int:
            (connection,) = server.stats()["connections"]
            return int(connection["fids"])

        root = await client.attach("C")
        d = await root.walk("big")
        await d.open(DIRECTORY)
        before, client_before = fids(), client.fids_in_use
        requests: list[m.Message] = []
        client.on_send = requests.append
        listed = await d.readdir_attrs()
        assert fids() == before == 2 and client.fids_in_use == client_before
        assert len(listed) == 3002 and all(attr is not None for _, attr in listed)
        sizes = {e.name: a.size for e, a in listed if a is not None and e.name.startswith("e")}
        assert sizes == {f"entry-{i:05d}": i % 7 for i in range(3000)}
        assert {type(r) for r in requests} == {m.Treaddirattr}  # no walk, no getattr
        assert len(requests) == 1  # one chunk holds them all, and says it is the end


# ---- against diod: the client falls back to plain 9P2000.L ----


@pytest.fixture
def diod(tmp_path: Path) -> Any:
    from .guest.servers import start_diod

    export = tmp_path / "diod-export"
    export.mkdir()
    try:
        server = start_diod(export, tmp_path / "diod.log")
    except (OSError, RuntimeError) as e:
        pytest.skip(f"diod: {e}")
    yield server
    server.stop()


async def test_against_diod_the_client_falls_back_and_works(diod: Any) -> None:
    export: Path = diod.export
    (export / "sub").mkdir()
    (export / "sub" / "f").write_bytes(b"12345")
    seen: list[m.Message] = []
    async with connect(f"tcp:127.0.0.1:{diod.port}") as client:
        assert not client.extended
        client.on_send = seen.append
        async with await client.attach(str(export), uname="root") as root:
            await _use_every_helper(client, root, export)
    assert not {type(msg) for msg in seen} & set(m.EXTENSIONS)


async def _use_every_helper(client: Client, root: Fid, export: Path) -> None:
    fid, attr = await root.walk_getattr("sub", "f")
    await fid.clunk()
    assert attr.size == 5 and stat.S_ISREG(attr.mode) and attr.qid == fid.qid
    async with await root.walk("sub") as d:
        await d.open(DIRECTORY)
        listed = {e.name: a for e, a in await d.readdir_attrs()}
    assert {"f", "."} <= set(listed)
    attr_f = listed["f"]
    assert attr_f is not None and attr_f.size == 5
    _, made = await root.mkdir_getattr("newdir", 0o755)
    assert stat.S_ISDIR(made.mode) and (export / "newdir").is_dir()
    _, link = await root.symlink_getattr("ln", "sub/f")
    assert stat.S_ISLNK(link.mode) and os.readlink(export / "ln") == "sub/f"
    async with await root.clone() as f:
        _, created = await f.create_getattr("new", RDWR, 0o644)
        assert stat.S_ISREG(created.mode) and created.size == 0
        assert await f.write(0, b"ab") == 2
    assert (export / "new").read_bytes() == b"ab"


@pytest.mark.parametrize("extensions", [False, True])
async def test_the_client_sends_the_flock_flag_only_when_extended(
    export_dir: Path, extensions: bool
) -> None:
    (export_dir / "f").write_text("x")
    async with served(export_dir) as (_, address):
        async with connect(address, extensions=extensions) as client:
            sent: list[m.Message] = []
            client.on_send = sent.append
            async with await client.attach("C") as root, await root.walk("f") as f:
                await f.open(RDWR)
                flags = int(LockFlag.FLOCK | LockFlag.BLOCK)
                assert await f.lock(LockType.WRLCK, flags=flags) == LockStatus.SUCCESS
        (tlock,) = [msg for msg in sent if isinstance(msg, m.Tlock)]
        assert tlock.flags == (flags if extensions else LockFlag.BLOCK)


# ---- the second set: name changes with the attributes of their directories ----


async def _name_changes(root: Fid, export: Path, removals: bool = True) -> list[Attr | None]:
    """Each name change of the second set's client helpers in directory `d` of `root`, its
    outcome checked on the host and each attribute record it brought against a getattr
    made after it; the directories' attributes each answered (None: not given)."""
    d = await root.walk("d")
    given: list[Attr | None] = []

    async def same_as_now(attr: Attr | None, fid: Fid) -> None:
        given.append(attr)
        if attr is not None:
            assert attr == await fid.getattr()

    fid, attr, dattr = await d.create_attrs("new", RDWR, 0o644)
    assert attr == await fid.getattr() and (export / "d" / "new").is_file()
    await same_as_now(dattr, d)
    qid, attr, dattr, sub = await d.mkdir_attrs("sub", 0o755, fid=True)
    assert attr.qid == qid and (export / "d" / "sub").is_dir()
    await same_as_now(dattr, d)
    if sub is not None:  # made by the same request, and usable
        assert sub.qid == qid and attr == await sub.getattr()
        await sub.clunk()
    _, attr, dattr = await d.symlink_attrs("ln", "new")
    assert stat.S_ISLNK(attr.mode) and os.readlink(export / "d" / "ln") == "new"
    await same_as_now(dattr, d)
    _, attr, dattr = await d.mknod_attrs("node", stat.S_IFREG | 0o600)
    assert (export / "d" / "node").is_file()
    await same_as_now(dattr, d)
    attr, dattr = await d.link_attrs(fid, "hard")
    assert attr.nlink == 2 and attr == await fid.getattr()
    await same_as_now(dattr, d)
    if removals:
        into = await d.walk("sub")
        olddattr, newdattr = await d.renameat_attrs("hard", into, "moved")
        assert (export / "d" / "sub" / "moved").is_file()
        await same_as_now(olddattr, d)
        await same_as_now(newdattr, into)
        await same_as_now(await d.unlinkat_attrs("ln"), d)
        assert not (export / "d" / "ln").exists()
        with pytest.raises(OSError) as failed:
            await d.unlinkat_attrs("sub", AT_REMOVEDIR)
        assert failed.value.errno == errno.ENOTEMPTY and (export / "d" / "sub").is_dir()
    return given


async def test_the_second_set_brings_what_a_getattr_of_the_directory_would(
    export_dir: Path,
) -> None:
    (export_dir / "d").mkdir()
    async with served(export_dir) as (_, address), connect(address) as client:
        assert client.extensions == 2
        sent: list[m.Message] = []
        client.on_send = sent.append
        given = await _name_changes(await client.attach("C"), export_dir)
        assert len(given) == 8 and all(a is not None and stat.S_ISDIR(a.mode) for a in given)
        changes = [type(msg) for msg in sent if type(msg) in m.EXTENSIONS_2]
        assert set(changes) == set(m.EXTENSIONS_2) - {m.Tnotifyflags}
        assert len(changes) == 8  # one request each, the failed rmdir's too
        plain = {m.Tlcreateattr, m.Tmkdirattr, m.Tsymlinkattr, m.Tmknodattr, m.Tlink}
        assert not {type(msg) for msg in sent} & (plain | {m.Trenameat, m.Tunlinkat})


@pytest.mark.parametrize("extensions", [1, False])
async def test_without_the_second_set_the_helpers_do_the_plain_changes(
    export_dir: Path, extensions: int
) -> None:
    """On a connection with the first set only, or none: the same changes, no attributes
    of the directories, and nothing of the second set sent."""
    (export_dir / "d").mkdir()
    async with served(export_dir) as (_, address), connect(address, extensions=extensions) as c:
        assert c.extensions == extensions
        sent: list[m.Message] = []
        c.on_send = sent.append
        given = await _name_changes(await c.attach("C"), export_dir)
    assert given == [None] * 8
    assert not {type(msg) for msg in sent} & set(m.EXTENSIONS_2)


async def test_against_diod_the_second_set_falls_back(diod: Any) -> None:
    export: Path = diod.export
    (export / "d").mkdir()
    seen: list[m.Message] = []
    async with connect(f"tcp:127.0.0.1:{diod.port}") as client:
        assert client.extensions == 0
        client.on_send = seen.append
        async with await client.attach(str(export), uname="root") as root:
            # diod has no Tunlinkat nor Trenameat: drvfs removes and renames by fid there
            assert await _name_changes(root, export, removals=False) == [None] * 5
    assert not {type(msg) for msg in seen} & set(m.EXTENSIONS_2)


async def test_the_second_set_is_negotiated_apart_and_refused_elsewhere(export_dir: Path) -> None:
    (export_dir / "d").mkdir()
    async with served(export_dir) as (_, address):
        for asked, answered in [
            (EXTENDED_VERSION_2, EXTENDED_VERSION_2),
            (EXTENDED_VERSION, EXTENDED_VERSION),
            (VERSION, VERSION),
        ]:
            conn = await RawConn.open(address)
            assert await handshake(conn, asked) == answered
            assert (await conn.call(m.Twalk(2, fid=0, newfid=1, wnames=["d"]))).kind is m.Rwalk
            unlink = m.Tunlinkatattrs(3, dirfid=1, name="x", flags=0, request_mask=ALL)
            mkdir = m.Tmkdirattrs(
                4, dfid=1, newfid=9, name="e", mode=0o755, gid=0, request_mask=ALL
            )
            replies = [await conn.call(unlink), await conn.call(mkdir)]
            if answered == EXTENDED_VERSION_2:
                assert replies[0].ecode == errno.ENOENT and replies[1].kind is m.Rmkdirattrs
                assert (await conn.call(m.Tclunk(5, fid=9))).kind is m.Rclunk  # made
                (export_dir / "d" / "e").rmdir()
            else:  # nothing made, no fid 9
                assert [r.ecode for r in replies] == [errno.EOPNOTSUPP] * 2
                assert not (export_dir / "d" / "e").exists()
                assert (await conn.call(m.Tclunk(5, fid=9))).kind is m.Rlerror
            await conn.aclose()
        async with connect(address) as client:
            assert (client.extensions, client.extended) == (2, True)
