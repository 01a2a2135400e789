"""Names Windows cannot hold: stored as U+F000 + c on the host, shown as c (docs/names.md)."""

from __future__ import annotations

import os
from pathlib import Path

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ninep.backend import File
from ninep.constants import OpenFlag
from ninep.escape import ESCAPE_BASE, WINDOWS_ILLEGAL, swap
from volfs.export import open_export
from volfs.names import STAGING_DIR

from .test_volfs import ROOT, make_file, qid_at, read_all, shown

RDWR = int(OpenFlag.RDWR)
IMAGES = "".join(chr(ESCAPE_BASE + ord(c)) for c in WINDOWS_ILLEGAL)
SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Any text, and text made mostly of the characters the escape touches.
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
touchy_text = st.text(
    st.one_of(
        st.sampled_from(WINDOWS_ILLEGAL + IMAGES + "\uf000\uf041\ue000aZ\u00e9"),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=30,
)
names = st.one_of(any_text, touchy_text)


def test_the_escaped_characters() -> None:
    assert '\\:*?"<>|' + "".join(map(chr, range(1, 32))) == WINDOWS_ILLEGAL
    assert swap('a\\b:c*d?e"f<g>h|i') == "a\uf05cb\uf03ac\uf02ad\uf03fe\uf022f\uf03cg\uf03eh\uf07ci"
    assert swap("tab\there\x01\x1f") == "tab\uf009here\uf001\uf01f"
    assert swap("plain name.txt") == "plain name.txt"
    assert swap("\uf03a") == ":"  # an image on the host is shown as its character...
    assert swap(":") == "\uf03a"  # ...and a raw character on the host as its image
    for untouched in ("\uf000", "\uf041", "\uf020", "\uf02f", "\ue000", "\uf8ff", "/", " ."):
        assert swap(untouched) == untouched


@given(names)
def test_swap_is_an_involution(name: str) -> None:
    """So host -> shown is a bijection: no two host names are ever shown alike."""
    assert swap(swap(name)) == name
    assert len(swap(name)) == len(name)


@given(names)
def test_only_the_escaped_characters_change(name: str) -> None:
    for a, b in zip(name, swap(name), strict=True):
        if a in WINDOWS_ILLEGAL:
            assert ord(b) == ESCAPE_BASE + ord(a)
        elif a in IMAGES:
            assert ord(a) == ESCAPE_BASE + ord(b)
        else:
            assert a == b


@given(st.lists(names, unique=True, max_size=20))
def test_distinct_host_names_are_shown_distinct(host_names: list[str]) -> None:
    assert len({swap(n) for n in host_names}) == len(host_names)


@SETTINGS
@given(name=touchy_text.filter(lambda n: n not in ("", ".", "..") and "/" not in n))
def test_names_round_trip_through_the_export(export_dir: Path, name: str) -> None:
    """A client's name is stored escaped, listed as given, and found again; case-folding too."""
    if "\0" in name or len(swap(name).encode()) > 255 or swap(name) == STAGING_DIR:
        return  # the staging directory's name is reserved at the root (test_volfs_metadata)

    async def round_trip() -> None:
        ex = open_export(str(export_dir))
        root = await ex.attach("", ROOT)
        f = await make_file(root, name, b"x")
        assert os.listdir(export_dir) == [swap(name)]
        assert await shown(root) == [name]
        assert await qid_at(root, name) == f.qid
        assert await qid_at(root, name.upper()) == f.qid
        await root.unlinkat(name.swapcase(), 0)
        await f.close()
        await root.close()
        ex.close()

    trio.run(round_trip)
    assert os.listdir(export_dir) == []


async def test_host_names_made_by_hand(root: File, export_dir: Path) -> None:
    """Images and raw characters made on the host are each shown one way, and reached."""
    made = {
        "image\uf03a": b"image",  # shown as "image:"
        "raw:": b"raw",  # shown as "raw\uf03a"
        "both\uf03a:": b"both",  # shown as "both:\uf03a"
        "private\uf041\ue000": b"private",  # not escape images: shown as they are
        "lone\uf000": b"lone",
    }
    for host, data in made.items():
        (export_dir / host).write_bytes(data)
    assert await shown(root) == sorted(
        ["image:", "raw\uf03a", "both:\uf03a", "private\uf041\ue000", "lone\uf000"]
    )
    for host, data in made.items():
        f = await root.walk(swap(host))
        assert await read_all(f) == data
        await f.close()
    await root.renameat("image:", root, "IMAGE:")  # a rename keeps the mapping
    await root.renameat("raw\uf03a", root, "moved:")
    assert sorted(os.listdir(export_dir)) == sorted(
        ["IMAGE\uf03a", "moved\uf03a", "both\uf03a:", "private\uf041\ue000", "lone\uf000"]
    )


async def test_escaping_off_stores_names_as_given(export_dir: Path) -> None:
    ex = open_export(str(export_dir), escape=False)
    root = await ex.attach("", ROOT)
    await (await make_file(root, 'a<b>"c"|d')).close()
    (export_dir / "img\uf03a").write_bytes(b"")
    assert await shown(root) == ['a<b>"c"|d', "img\uf03a"]
    assert sorted(os.listdir(export_dir)) == ['a<b>"c"|d', "img\uf03a"]
    await root.close()
    ex.close()
