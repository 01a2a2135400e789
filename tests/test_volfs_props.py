"""Property tests of volfs names: what is refused, and what round-trips."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ninep.backend import User
from ninep.constants import OpenFlag
from volfs.export import open_export

ROOT = User("root", 0)
RDWR = int(OpenFlag.RDWR)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Names the protocol can carry: any text without surrogates (the wire is UTF-8).
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
bad_names = st.one_of(
    st.tuples(text, st.sampled_from(["/", "\0"]), text).map("".join),
    st.just(""),
)
good_names = text.filter(
    lambda n: n not in ("", ".", "..") and "/" not in n and "\0" not in n
).filter(lambda n: len(n.encode()) <= 255)


@SETTINGS
@given(name=bad_names)
def test_names_with_slash_or_nul_are_einval(export_dir: Path, name: str) -> None:
    async def attempt() -> list[int | None]:
        ex = open_export(str(export_dir))
        root = await ex.attach("", ROOT)
        codes = []
        for call in (
            lambda: root.walk(name),
            lambda: root.create(name, RDWR, 0o644, 0),
            lambda: root.mkdir(name, 0o755, 0),
            lambda: root.symlink(name, "t", 0),
            lambda: root.unlinkat(name, 0),
        ):
            try:
                await call()
            except OSError as e:
                codes.append(e.errno)
            else:
                codes.append(None)
        await root.close()
        ex.close()
        return codes

    assert trio.run(attempt) == [errno.EINVAL] * 5
    assert os.listdir(export_dir) == []


@SETTINGS
@given(name=good_names)
def test_valid_names_round_trip(export_dir: Path, name: str) -> None:
    async def round_trip() -> None:
        ex = open_export(str(export_dir))
        root = await ex.attach("", ROOT)
        f, h = await root.create(name, RDWR | int(OpenFlag.EXCL), 0o644, 0)
        await h.close()
        d = await root.open(0)
        listed = [e for e in await d.readdir(0) if e.name not in (".", "..")]
        await d.close()
        assert [(e.name, e.qid) for e in listed] == [(name, f.qid)]
        again = await root.walk(name)
        assert again.qid == f.qid
        await root.unlinkat(name, 0)
        for x in (again, f, root):
            await x.close()
        ex.close()

    trio.run(round_trip)
    assert os.listdir(export_dir) == []


def test_name_too_long_is_enametoolong(export_dir: Path) -> None:
    async def attempt() -> None:
        ex = open_export(str(export_dir))
        root = await ex.attach("", ROOT)
        with pytest.raises(OSError) as info:
            await root.create("x" * 256, RDWR, 0o644, 0)
        assert info.value.errno == errno.ENAMETOOLONG
        await root.close()
        ex.close()

    trio.run(attempt)
