"""Shared fixtures: a temporary export served by an in-process server over tcp and unix sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from hypothesis import settings

from ninep.backend import Export, File, User
from ninep.server import Server
from ninep.transport import Address
from volfs.export import VolExport, open_export

from .guest.fixtures import guest_runner, p9_server_factory  # noqa: F401

# No timed tests: an example is never failed for its duration (speed is measured in benchmarks/).
settings.register_profile("untimed", deadline=None)
settings.load_profile("untimed")


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    """An empty host directory, exported as "C" by `server_address`."""
    path = tmp_path / "export"
    path.mkdir()
    return path


@pytest.fixture
async def export(export_dir: Path) -> AsyncIterator[VolExport]:
    """`export_dir` as a volfs export, for tests of the backend itself."""
    ex = open_export(str(export_dir))
    yield ex
    ex.close()


@pytest.fixture
async def root(export: VolExport) -> AsyncIterator[File]:
    """The root of `export`, attached as uid 0."""
    node = await export.attach("", User("root", 0))
    yield node
    await node.close()


@asynccontextmanager
async def serving(export: Export, transport: str, tmp_path: Path) -> AsyncIterator[str]:
    """An in-process server of `export` as "C" on `transport` (tcp or unix); its address."""
    if transport == "tcp":
        address = Address("tcp", host="127.0.0.1", port=0)
    else:
        address = Address("unix", path=str(tmp_path / "9p.sock"))
    server = Server({"C": export})
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve, [address])
        yield str(bound[0])
        nursery.cancel_scope.cancel()


@pytest.fixture(params=["tcp", "unix"])
async def server_address(
    request: pytest.FixtureRequest, export_dir: Path, tmp_path: Path
) -> AsyncIterator[str]:
    """The address of a running server exporting `export_dir` as "C"."""
    async with serving(open_export(str(export_dir)), request.param, tmp_path) as address:
        yield address
