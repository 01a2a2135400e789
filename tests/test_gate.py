"""The server's gate (`ninep.gate`) and the message traits it and the session go by.

Over a real socket, to volfs through a backend that records every call: a change
through a read-only attach and a name with `/` or NUL are refused at dispatch,
before the backend is asked; and each message's declared traits agree with what
the session and the server do.
"""

from __future__ import annotations

import errno
import inspect
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple, cast, get_type_hints

import pytest

from ninep import messages as m
from ninep.backend import Export, SetAttr
from ninep.client import connect
from ninep.constants import AT_REMOVEDIR, EXTENDED_VERSION_2, NOFID, OpenFlag, SetattrMask
from ninep.limits import BIG
from ninep.session import _frame_parts, _is_big
from volfs.export import open_export

from .conftest import serving
from .rawconn import RawConn

MAKES_FID = 9  # the number a request that makes a fid is given


class _Spy:
    """A backend object (Export, File, Handle) that records the name of every coroutine
    method called on it in `calls`; the Files and Handles they return are spied on too."""

    def __init__(self, inner: Any, calls: list[str]) -> None:
        self.inner, self.calls = inner, calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any) -> Any:
            self.calls.append(name)
            result = await attr(*(a.inner if isinstance(a, _Spy) else a for a in args))
            return _spied(result, self.calls)

        return call


def _spied(result: Any, calls: list[str]) -> Any:
    if isinstance(result, tuple):
        return tuple(_spied(x, calls) for x in result)
    return _Spy(result, calls) if hasattr(result, "close") else result


class Served(NamedTuple):
    address: str
    calls: list[str]  # every backend call, by method name
    root: Path


@pytest.fixture
async def served(export_dir: Path, tmp_path: Path) -> AsyncIterator[Served]:
    """volfs serving `export_dir` (a file "f" with an xattr, a directory "d") on a unix
    socket, through a `_Spy`."""
    (export_dir / "f").write_bytes(b"data")
    (export_dir / "d").mkdir()
    os.setxattr(export_dir / "f", "user.x", b"1")
    export = open_export(str(export_dir))
    calls: list[str] = []
    try:
        async with serving(cast(Export, _Spy(export, calls)), "unix", tmp_path) as address:
            yield Served(address, calls, export_dir)
    finally:
        export.close()


def _tree(top: Path) -> list[tuple[str, int, int, int, list[str]]]:
    """What a change under `top` shows in: each path's mode, size, mtime and xattrs."""
    out = []
    for path in [top, *sorted(top.rglob("*"))]:
        st = path.lstat()
        xattrs = [] if path.is_symlink() else sorted(os.listxattr(path))
        out.append((str(path), st.st_mode, st.st_size, st.st_mtime_ns, xattrs))
    return out


async def _connect(address: str, aname: str) -> RawConn:
    """A connection with both sets of extensions, `aname` attached as fid 0."""
    conn = await RawConn.open(address)
    reply = await conn.call(m.Tversion(0xFFFF, msize=65536, version=EXTENDED_VERSION_2))
    assert reply.version == EXTENDED_VERSION_2
    reply = await conn.call(m.Tattach(1, fid=0, afid=NOFID, uname="root", aname=aname, n_uname=0))
    assert reply.kind is m.Rattach
    return conn


async def _walk(conn: RawConn, newfid: int, *names: str) -> None:
    reply = await conn.call(m.Twalk(1, fid=0, newfid=newfid, wnames=list(names)))
    assert reply.kind is m.Rwalk


def _example(kind: type[m.Message], fid: int, **given: Any) -> m.Message:
    """A request of `kind` on `fid` (every fid field; a fid it makes: MAKES_FID), making
    "new"; fields `given` as given."""
    hints = get_type_hints(kind)
    fields: dict[str, Any] = {}
    for name in kind.field_names:
        if name in given:
            fields[name] = given[name]
        elif name == kind.traits.newfid:
            fields[name] = MAKES_FID
        elif name.endswith("fid"):
            fields[name] = fid
        elif hints[name] is str:
            fields[name] = "new"
        elif hints[name] == list[str]:
            fields[name] = ["f"]
        elif hints[name] is bytes:
            fields[name] = b"x"
        elif hints[name] is SetAttr:
            fields[name] = SetAttr(int(SetattrMask.MODE), mode=0o600)
        else:
            fields[name] = 0
    return kind(2, **fields)


def _kinds(*traits: str) -> list[type[m.Message]]:
    """The message kinds that declare any of `traits`."""
    return [
        k for k in m.KINDS.values() if any(getattr(k.traits, t) for t in traits)
    ]  # fmt: skip


_WRITE_OPENS = [OpenFlag.WRONLY, OpenFlag.RDWR, OpenFlag.RDONLY | OpenFlag.TRUNC,
                OpenFlag.WRONLY | OpenFlag.TRUNC]  # fmt: skip


# ---- read-only: one gate, at dispatch ----


@pytest.mark.parametrize("kind", _kinds("modifies"), ids=lambda k: k.__name__)
async def test_a_read_only_attach_refuses_every_change_before_the_backend(
    served: Served, kind: type[m.Message]
) -> None:
    conn = await _connect(served.address, "C;ro")
    opens = kind.traits.modifies_if is not None
    for flags in _WRITE_OPENS if opens else [OpenFlag.RDWR]:
        on_file = opens or kind in (m.Tsetattr, m.Tsetattrattr, m.Twrite)
        await _walk(conn, 1, "f" if on_file else "d")
        served.calls.clear()
        reply = await conn.call(_example(kind, 1, flags=int(flags)))
        assert (reply.kind, reply.ecode) == (m.Rlerror, errno.EROFS), flags
        released = ["close"] if kind.traits.frees else []  # the fid, as a clunk would
        assert served.calls == released, f"{kind.__name__} reached the backend"
        clunked = await conn.call(m.Tclunk(3, fid=1))
        if kind.traits.frees:  # refused, and still released (Tremove)
            assert (clunked.kind, clunked.ecode) == (m.Rlerror, errno.EBADF)
        else:
            assert clunked.kind is m.Rclunk
    assert sorted(os.listdir(served.root)) == ["d", "f"]
    assert (served.root / "f").read_bytes() == b"data"


async def test_a_read_only_attach_still_reads(served: Served) -> None:
    conn = await _connect(served.address, "C;ro")
    await _walk(conn, 1, "f")
    reply = await conn.call(m.Tlopen(2, fid=1, flags=OpenFlag.RDONLY))
    assert reply.kind is m.Rlopen
    reply = await conn.call(m.Tread(2, fid=1, offset=0, count=10))
    assert reply.data == b"data"
    reply = await conn.call(
        m.Twalkopen(2, fid=0, newfid=2, wnames=["d"], flags=OpenFlag.RDONLY, request_mask=0)
    )
    assert reply.kind is m.Rwalkopen
    reply = await conn.call(m.Txattrwalk(2, fid=0, newfid=3, name=""))
    assert reply.kind is m.Rxattrwalk


async def test_a_read_only_attach_refuses_what_a_client_asks(served: Served) -> None:
    """Every change a client makes, through the project's client (what volfs refused
    itself before the gate), answers EROFS and changes nothing."""
    (served.root / "l").symlink_to("f")
    before = _tree(served.root)
    async with connect(served.address) as client:
        root = await client.attach("C;ro", "root")
        f, d = await root.walk("f"), await root.walk("d")
        reading = await root.walk("f")
        await reading.open(OpenFlag.RDONLY)
        rdwr = int(OpenFlag.RDWR)
        changes: list[Callable[[], Awaitable[object]]] = [
            lambda: f.setattr(SetAttr(int(SetattrMask.MODE), mode=0o600)),
            lambda: f.setattr(SetAttr(int(SetattrMask.ATIME | SetattrMask.MTIME))),
            lambda: root.create_at("new", rdwr, 0o644),
            lambda: root.create_at("f", int(OpenFlag.RDONLY), 0o644),
            lambda: root.mkdir("new", 0o755),
            lambda: root.symlink("new", "f"),
            lambda: root.mknod("new", stat.S_IFIFO | 0o644),
            lambda: root.link(f, "new"),
            lambda: f.rename(d, "new"),
            lambda: root.renameat("f", d, "new"),
            lambda: root.unlinkat("f", 0),
            lambda: root.unlinkat("d", AT_REMOVEDIR),
            lambda: f.setxattr("user.y", b"1"),
            lambda: f.removexattr("user.x"),
            lambda: d.setxattr("user.wsl_case_sensitive", b"1"),  # the case flag
            lambda: f.open(int(OpenFlag.WRONLY)),
            lambda: f.open(rdwr),
            lambda: f.open(int(OpenFlag.RDONLY | OpenFlag.TRUNC)),
            lambda: reading.write(0, b"x"),
            lambda: f.remove(),  # last: it clunks f
        ]
        for i, change in enumerate(changes):
            with pytest.raises(OSError) as info:
                await change()
            assert info.value.errno == errno.EROFS, i
            assert _tree(served.root) == before, f"change {i} went through"
        assert await reading.read(0, 10) == b"data"  # reading still works
        assert await d.getxattr("user.wsl_case_sensitive") == b"0"
        await d.open(int(OpenFlag.RDONLY))
        assert [e.name for e in await d.readdir()] == [".", ".."]
    assert os.getxattr(served.root / "f", "user.x") == b"1"


async def test_read_only_is_per_attach(served: Served) -> None:
    """A fid walked to from a read-only attach is read-only; a writable attach of the
    same export beside it is not, and a change that names a fid of each is refused."""
    conn = await _connect(served.address, "C;ro")
    reply = await conn.call(m.Tattach(1, fid=10, afid=NOFID, uname="root", aname="C", n_uname=0))
    assert reply.kind is m.Rattach
    await _walk(conn, 1, "d")  # read-only, as fid 0
    reply = await conn.call(m.Tmkdir(2, dfid=1, name="a", mode=0o755, gid=0))
    assert reply.ecode == errno.EROFS
    reply = await conn.call(m.Tmkdir(2, dfid=10, name="a", mode=0o755, gid=0))
    assert reply.kind is m.Rmkdir
    reply = await conn.call(m.Trenameat(2, olddirfid=10, oldname="a", newdirfid=1, newname="b"))
    assert reply.ecode == errno.EROFS  # into a directory of the read-only attach
    reply = await conn.call(m.Twalk(2, fid=10, newfid=11, wnames=["a"]))
    reply = await conn.call(m.Trename(2, fid=11, dfid=1, name="b"))
    assert reply.ecode == errno.EROFS
    assert sorted(os.listdir(served.root)) == ["a", "d", "f"]


# ---- names: checked once, at dispatch ----


@pytest.mark.parametrize("bad", ["a/b", "a\0b", "/", "\0"])
@pytest.mark.parametrize("kind", _kinds("names", "walks"), ids=lambda k: k.__name__)
async def test_a_name_with_slash_or_nul_is_refused_before_the_backend(
    served: Served, kind: type[m.Message], bad: str
) -> None:
    conn = await _connect(served.address, "C")
    walks = kind.traits.walks
    bad_fields: dict[str, Any] = {field: bad for field in kind.traits.names}
    if walks is not None:
        bad_fields[walks] = ["d", bad]  # not even the first name is walked
    for field, value in bad_fields.items():
        served.calls.clear()
        reply = await conn.call(_example(kind, 0, flags=0, **{field: value}))
        assert (reply.kind, reply.ecode) == (m.Rlerror, errno.EINVAL), field
        assert served.calls == [], f"{kind.__name__} reached the backend"
    assert sorted(os.listdir(served.root)) == ["d", "f"]


def test_every_name_field_is_declared() -> None:
    """A request's fields that hold names of the tree are in its `names` or `walks`
    (the xattr requests' `name` is an attribute's, checked by the backend)."""
    for kind in m.KINDS.values():
        if not issubclass(kind, m.Request) or kind in (m.Txattrwalk, m.Txattrcreate):
            continue
        named = {f for f in kind.field_names if f in ("name", "oldname", "newname", "wnames")}
        declared = {*kind.traits.names, *([kind.traits.walks] if kind.traits.walks else [])}
        assert named == declared, kind.__name__
        assert len(kind.traits.names) <= len(kind.traits.modifies), kind.__name__  # dirs


# ---- the traits agree with what the session and the server do ----


@pytest.mark.parametrize("kind", _kinds("newfid"), ids=lambda k: k.__name__)
async def test_a_declared_newfid_is_made_by_the_server(
    served: Served, kind: type[m.Message]
) -> None:
    conn = await _connect(served.address, "C")
    await _walk(conn, 1)  # the root, again
    given: dict[str, Any] = {"flags": int(OpenFlag.RDONLY), "request_mask": 0x7FF}
    if kind is m.Tattach:
        given = {"afid": NOFID, "uname": "root", "aname": "C"}
    elif kind.traits.walks:
        given[kind.traits.walks] = ["f"]
    elif kind is m.Txattrwalk:
        given["name"] = ""  # the list of names
    msg = _example(kind, 1, **given)
    assert kind.traits.created_fid(msg) == MAKES_FID
    reply = await conn.call(msg)
    assert reply.kind is not m.Rlerror, reply
    assert kind.traits.creates(msg, reply)
    assert (await conn.call(m.Tclunk(3, fid=MAKES_FID))).kind is m.Rclunk


async def test_a_partial_walk_and_a_fid_not_asked_for_make_none(served: Served) -> None:
    conn = await _connect(served.address, "C")
    walk = m.Twalk(2, fid=0, newfid=MAKES_FID, wnames=["d", "missing"])
    reply = await conn.call(walk)
    assert len(reply.qids) == 1 and not walk.traits.creates(walk, reply)
    mkdir = m.Tmkdirattrs(2, dfid=0, newfid=NOFID, name="e", mode=0o755, gid=0, request_mask=0)
    assert mkdir.traits.created_fid(mkdir) is None
    in_place = m.Tlcreateattr(2, fid=0, newfid=0, name="g", flags=0, mode=0o644, gid=0,
                              request_mask=0)  # fmt: skip
    assert in_place.traits.created_fid(in_place) is None
    reply = await conn.call(m.Tclunk(3, fid=MAKES_FID))
    assert reply.ecode == errno.EBADF


def test_bulk_data_is_counted_big_and_sent_where_it_lies() -> None:
    for kind in _kinds("bulk"):
        field = kind.traits.bulk
        assert field is not None
        assert field == kind.field_names[-1] or kind.id % 2 == 0, kind.__name__  # a reply's: last
        if kind.id % 2 == 0:  # a request: big past BIG
            for size, big in ((BIG, False), (BIG + 1, True)):
                value = b"x" * size if field == "data" else size
                assert _is_big(_example(kind, 0, **{field: value})) is big, kind.__name__
        else:
            reply = _example(kind, 0, data=b"payload")
            parts = _frame_parts(reply)
            assert len(parts) > 1 and b"".join(parts) == reply.encode(), kind.__name__
    assert not _is_big(m.Tgetattr(1, fid=0, request_mask=0))
    assert _frame_parts(m.Rwrite(1, count=5)) == [m.Rwrite(1, count=5).encode()]
