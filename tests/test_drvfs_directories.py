"""drvfs's knowledge of covered directories (`drvfs.directories`), its rules one by one:
what a listing, a miss and the attributes after a change are worth when changes of this
mount and notified ones of others cross. The real classes, as drvfs wires them."""

from __future__ import annotations

import pytest

from drvfs.directories import MAX_MISSES, Directories
from drvfs.inodes import Inode
from drvfs.notified import Coverage
from ninep.constants import NOTIFY_COVERED, ChangeKind
from ninep.messages import Attr, Qid

DIR = 0o40755


def _attr(path: int, valid: int = 0x7FF) -> Attr:
    return Attr(valid, Qid(0x80, 0, path), DIR, 0, 0, 2, 0, 0, 4096, 0, 0, 0, 0, 0, 0, 0)


@pytest.fixture
def coverage() -> Coverage:
    covered = Coverage(3600)
    covered.start()
    return covered


def _directory(coverage: Coverage, ino: int = 7, covered: bool = True) -> Inode:
    node = Inode(ino, None, "d", None)
    if covered:
        coverage.note(ino, _attr(ino, 0x7FF | NOTIFY_COVERED))
    return node


async def test_a_complete_listing_answers_misses_by_folded_name(coverage: Coverage) -> None:
    dirs, d = Directories(coverage, 1.0, 3600), _directory(coverage)
    dirs.listed(d, ["Straße", "é"], d.changes)
    assert dirs.missing(d, "other") and dirs.missing(d, "strasse.txt")
    assert not dirs.missing(d, "STRASSE")  # folds like a listed name: asked, found there
    assert not dirs.missing(d, "e\u0301")  # decomposed: the same key
    uncovered = _directory(coverage, 8, covered=False)
    dirs.listed(uncovered, [], uncovered.changes)
    assert not dirs.missing(uncovered, "anything")


async def test_a_listing_a_change_crossed_is_not_kept(coverage: Coverage) -> None:
    dirs, d = Directories(coverage, 1.0, 3600), _directory(coverage)
    since = d.changes
    dirs.notified(d, ChangeKind.CREATED, "new")
    dirs.listed(d, ["old"], since)
    assert not dirs.missing(d, "new") and not dirs.missing(d, "whatever")


async def test_a_miss_goes_when_a_name_that_folds_like_it_is_made(coverage: Coverage) -> None:
    dirs, d = Directories(coverage, 1.0, 3600), _directory(coverage)
    dirs.missed(d, "foo", d.changes)
    assert dirs.missing(d, "foo") and not dirs.missing(d, "FOO")  # another name: asked
    change = dirs.change(d, added="FOO")  # by this mount, before it is answered
    assert not dirs.missing(d, "foo")
    change.done(None)
    dirs.missed(d, "bar", d.changes)
    dirs.notified(d, ChangeKind.RENAMED_TO, "Bar")  # by another client
    assert not dirs.missing(d, "bar")
    since = d.changes
    dirs.notified(d, ChangeKind.CREATED, "baz")  # while the server was asked
    dirs.missed(d, "baz", since)
    assert not dirs.missing(d, "baz")
    dirs.change(d, removed="index.lock").done(None)  # removed by this mount: missing now
    assert dirs.missing(d, "index.lock")
    change = dirs.change(d, removed="other.lock")
    dirs.notified(d, ChangeKind.CREATED, "OTHER.LOCK")  # crossed: not known missing
    change.done(None)
    assert not dirs.missing(d, "other.lock")


async def test_misses_are_bounded(coverage: Coverage) -> None:
    dirs, d = Directories(coverage, 1.0, 3600), _directory(coverage)
    for i in range(MAX_MISSES + 1):
        dirs.missed(d, f"m{i}", d.changes)
    assert not dirs.missing(d, "m0") and dirs.missing(d, f"m{MAX_MISSES}")
    dirs.forget(d.ino)
    assert not dirs.missing(d, f"m{MAX_MISSES}")


async def test_a_listing_errs_only_towards_names_that_are_gone(coverage: Coverage) -> None:
    """A notified removal may be older than this mount's remaking of the name; this mount's
    removal may cross another's remaking: neither removes the name, which is then asked."""
    dirs, d = Directories(coverage, 1.0, 3600), _directory(coverage)
    dirs.listed(d, ["a", "b"], d.changes)
    dirs.change(d, added="new").done(None)
    dirs.notified(d, ChangeKind.REMOVED, "new")
    assert not dirs.missing(d, "new")
    dirs.notified(d, ChangeKind.REMOVED, "a")  # another's removal of another's name
    assert dirs.missing(d, "a")
    change = dirs.change(d, removed="b")
    dirs.notified(d, ChangeKind.CREATED, "b")  # crossed: which came last is not known
    change.done(None)
    assert not dirs.missing(d, "b")
    dirs.change(d, removed="NEW").done(None)  # the one name that folds so, quietly
    assert dirs.missing(d, "new")
    dirs.change(d, added="c", removed="b")  # failed (never done): as if made, not removed
    assert not dirs.missing(d, "c") and not dirs.missing(d, "b")


async def test_the_attributes_after_a_change_answer_once_unless_crossed(
    coverage: Coverage,
) -> None:
    dirs, d = Directories(coverage, 1.0, 3600), _directory(coverage)
    dirs.change(d, added="x").done(_attr(d.ino))
    assert dirs.attributes(d) == _attr(d.ino)
    assert dirs.attributes(d) is None  # once: the kernel keeps them from then on
    change = dirs.change(d, added="y")
    dirs.notified(d, ChangeKind.ATTRIB, "")
    change.done(_attr(d.ino))
    assert dirs.attributes(d) is None
    dirs.change(d, removed="y").done(_attr(d.ino))
    dirs.touched(d)  # a setattr of it, say
    assert dirs.attributes(d) is None
