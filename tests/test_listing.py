"""The listing of exports (Texports, docs/protocol-extensions.md) from a real server over a
real socket: each export's name and defaults, never a host path; none from diod."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from ninep import messages as m
from ninep.client import connect
from ninep.constants import EXTENDED_VERSION, VERSION
from ninep.listing import ExportInfo, NoListing
from ninep.server import Server
from ninep.transport import Address
from volfs.export import open_export

from .notified import REPO
from .rawconn import RawConn


@pytest.fixture
async def three(tmp_path: Path) -> AsyncIterator[str]:
    """A server of three exports (plain, read-only, metadata on a case-sensitive tree)."""
    exports = {
        "C": open_export(str(tmp_path)),
        "D": open_export(str(tmp_path), read_only=True),
        "E": open_export(str(tmp_path), metadata=True, case_sensitive=True),
    }
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(
            Server(exports).serve, [Address("tcp", host="127.0.0.1", port=0)]
        )
        yield str(bound[0])
        nursery.cancel_scope.cancel()
    for export in exports.values():
        export.close()


async def test_the_listing_gives_each_export_and_its_defaults(three: str, tmp_path: Path) -> None:
    async with connect(three) as client:
        assert client.extended
        assert await client.exports() == [
            ExportInfo("C", escape=True),
            ExportInfo("D", read_only=True, escape=True),
            ExportInfo("E", metadata=True, case_sensitive=True),
        ]
    conn = await RawConn.open(three)  # the wire form: names and properties, no host path
    await conn.call(m.Tversion(0xFFFF, msize=8192, version=EXTENDED_VERSION))
    reply = await conn.call(m.Texports(1))
    assert reply.exports == ["C;case=insensitive;escape", "D;ro;case=insensitive;escape",
                             "E;metadata;case=sensitive"]  # fmt: skip
    assert not any(str(tmp_path) in text for text in reply.exports)
    await conn.aclose()


async def test_a_plain_client_has_no_listing(three: str) -> None:
    async with connect(three, extensions=False) as client:
        with pytest.raises(NoListing, match="no listing"):
            await client.exports()
    conn = await RawConn.open(three)
    await conn.call(m.Tversion(0xFFFF, msize=8192, version=VERSION))
    assert (await conn.call(m.Texports(1))).kind is m.Rlerror


@pytest.fixture
def diod(tmp_path: Path) -> Iterator[Any]:
    from .guest.servers import start_diod

    try:
        server = start_diod(tmp_path, tmp_path.parent / "diod.log")
    except (OSError, RuntimeError) as e:
        pytest.skip(f"diod: {e}")
    yield server
    server.stop()


async def test_diod_has_no_listing(diod: Any) -> None:
    async with connect(f"tcp:127.0.0.1:{diod.port}") as client:
        with pytest.raises(NoListing, match="no listing"):
            await client.exports()


async def _drvfs_exports(server: str) -> tuple[int, str, str]:
    """`drvfs exports SERVER`: its exit status, stdout and stderr."""
    done = await trio.run_process([sys.executable, "-m", "drvfs", "exports", server],
                                  capture_stdout=True, capture_stderr=True, check=False,
                                  cwd=REPO)  # fmt: skip
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_drvfs_exports_prints_them(three: str, tmp_path: Path) -> None:
    code, out, err = await _drvfs_exports(three)
    assert (code, err) == (0, "")
    assert [line.split() for line in out.splitlines()] == [
        ["NAME", "ACCESS", "METADATA", "CASE", "ESCAPE"],
        ["C", "rw", "off", "insensitive", "on"],
        ["D", "ro", "off", "insensitive", "on"],
        ["E", "rw", "on", "sensitive", "off"],
    ]
    assert str(tmp_path) not in out


async def test_drvfs_exports_of_diod_is_one_line(diod: Any) -> None:
    code, out, err = await _drvfs_exports(f"tcp:127.0.0.1:{diod.port}")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "offers no listing of exports" in err, err


@given(
    st.text(min_size=1).filter(lambda s: ";" not in s),
    st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_an_export_reads_back_as_written(name: str, flags: list[bool]) -> None:
    info = ExportInfo(name, *flags)
    assert ExportInfo.parse(info.encode()) == info
    assert ExportInfo.parse(info.encode() + ";later=1;unknown") == info  # ignored
