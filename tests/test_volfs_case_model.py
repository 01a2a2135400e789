"""The volfs name rules against a small in-memory model of them (hypothesis stateful).

Random sequences of create, mkdir, rename, unlink, lookup, readdir, setting the
case flag, and changes made on the host behind the export's back, with names
drawn from case and normalisation variants of awkward Unicode (sharp s,
composed and decomposed accents, Greek sigmas, Turkish i, characters Windows
cannot hold, a private-use character), run against the export and against the
model; every result, errno, listing and host name must agree (docs/names.md).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ninep.backend import File, User
from ninep.constants import AT_REMOVEDIR, OpenFlag
from ninep.escape import swap
from volfs.caseflag import HOST_XATTR
from volfs.export import VolExport, open_export

from .test_volfs import host_names

T = TypeVar("T")
ROOT = User("root", 0)
FLAG = "user.wsl_case_sensitive"

BASES = [
    "straße", "STRASSE", "Strasse", "\u1e9e",  # sharp s, and its capital
    "\u00e9t\u00e9", "e\u0301te\u0301", "\u00c9T\u00c9",  # composed and decomposed
    "\u03c3\u03b1\u03c2", "\u03a3\u0391\u03a3", "\u03c3\u03b1\u03c3",  # the sigmas
    "i", "I", "\u0131", "\u0130",  # Turkish dotless i and dotted capital I
    "a:b", "A:B", "q?", "Q?", "<Tab\there>", "pipe|", "x<\u0338", "x\u226e",
    "\uf03a", "\uf03aZ",  # a private-use character: the image of ":"
    "Makefile", "makefile", "MAKEFILE",
]  # fmt: skip
TRANSFORMS: list[Callable[[str], str]] = [
    lambda s: s,
    str.upper,
    str.lower,
    str.swapcase,
    str.title,
    str.casefold,
    lambda s: unicodedata.normalize("NFD", s),
    lambda s: unicodedata.normalize("NFC", s),
]
names = st.builds(lambda base, f: f(base), st.sampled_from(BASES), st.sampled_from(TRANSFORMS))


def key(name: str) -> str:
    """The rule: full case folding of the NFC form, in NFC."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


@dataclass(eq=False)
class MFile:
    ino: int


@dataclass(eq=False)
class MDir:
    ino: int
    parent: MDir | None
    flag: bool = False  # the stored flag
    entries: dict[str, MFile | MDir] = field(default_factory=dict)

    def within(self, other: MDir) -> bool:
        """Whether this directory is `other` or below it."""
        d: MDir | None = self
        while d is not None:
            if d is other:
                return True
            d = d.parent
        return False


def run(fn: Callable[[], Awaitable[T]]) -> tuple[T | None, int]:
    """Run `fn` in trio: (its result, 0), or (None, the errno it failed with)."""
    try:
        return trio.run(fn), 0
    except OSError as e:
        assert e.errno is not None
        return None, e.errno


@asynccontextmanager
async def dirs_at(
    export: VolExport, case: str, *paths: tuple[str, ...]
) -> AsyncIterator[list[File]]:
    """The directories at `paths` (walked by stored names) of a fresh attach; closed after."""
    root = await export.attach(f"case={case}", ROOT)
    opened = [root]
    try:
        found = []
        for path in paths:
            d = root
            for name in path:
                d = await d.walk(name)
                opened.append(d)
            found.append(d)
        yield found
    finally:
        for f in reversed(opened):
            await f.close()


class CaseRules(RuleBasedStateMachine):
    """The export beside the model, with one `case=` option."""

    CASE = "off"

    def __init__(self) -> None:
        super().__init__()
        self.host = Path(tempfile.mkdtemp(prefix="volfs-model-"))
        self.export = open_export(str(self.host))
        self.root = MDir(os.lstat(self.host).st_ino, None)

    def teardown(self) -> None:
        self.export.close()
        shutil.rmtree(self.host)

    # ---- the model's rules ----

    def sensitive(self, d: MDir) -> bool:
        if d is self.root:
            return False
        return self.CASE == "force" or d.flag

    def find(self, d: MDir, name: str) -> str | None:
        """The stored name `name` names in `d`: exact first, then the least that folds alike."""
        if name in d.entries:
            return name
        if self.sensitive(d):
            return None
        alike = sorted(n for n in d.entries if key(n) == key(name))
        return alike[0] if alike else None

    def dirs(self) -> list[tuple[tuple[str, ...], MDir]]:
        out: list[tuple[tuple[str, ...], MDir]] = []

        def visit(path: tuple[str, ...], d: MDir) -> None:
            out.append((path, d))
            for name, obj in sorted(d.entries.items()):
                if isinstance(obj, MDir):
                    visit((*path, name), obj)

        visit((), self.root)
        return out

    def host_path(self, path: tuple[str, ...]) -> Path:
        return self.host.joinpath(*(swap(n) for n in path))

    # ---- calling the export ----

    def call(
        self, path: tuple[str, ...], op: Callable[[File], Awaitable[T]]
    ) -> tuple[T | None, int]:
        """`op` on the directory at `path` (walked by stored names) of a fresh attach."""

        async def go() -> T:
            async with dirs_at(self.export, self.CASE, path) as (d,):
                return await op(d)

        return run(go)

    def pick_dir(self, data: st.DataObject) -> tuple[tuple[str, ...], MDir]:
        return data.draw(st.sampled_from(self.dirs()), label="dir")

    @staticmethod
    def name_for(data: st.DataObject, d: MDir) -> str:
        """A name of the pool, or as often a variant of a name already in `d`."""
        if d.entries and data.draw(st.booleans(), label="a variant of one there") is True:
            there = data.draw(st.sampled_from(sorted(d.entries)), label="there")
            transform: Callable[[str], str] = data.draw(st.sampled_from(TRANSFORMS), label="how")
            return transform(there)
        name: str = data.draw(names, label="name")
        return name

    # ---- rules ----

    @rule(data=st.data(), excl=st.booleans())
    def create(self, data: st.DataObject, excl: bool) -> None:
        path, d = self.pick_dir(data)
        name = self.name_for(data, d)
        flags = int(OpenFlag.RDWR | (OpenFlag.EXCL if excl else 0))

        async def op(dirf: File) -> int:
            f, h = await dirf.create(name, flags, 0o644, 0)
            await h.close()
            await f.close()
            return f.qid.path

        ino, code = self.call(path, op)
        found = self.find(d, name)
        if found is None:
            assert code == 0, errno.errorcode[code]
            assert ino is not None
            d.entries[name] = MFile(ino)
        elif excl:
            assert code == errno.EEXIST
        elif isinstance(d.entries[found], MDir):
            assert code == errno.EISDIR
        else:
            assert (ino, code) == (d.entries[found].ino, 0)

    @rule(data=st.data())
    def mkdir(self, data: st.DataObject) -> None:
        path, d = self.pick_dir(data)
        name = self.name_for(data, d)
        if len(self.dirs()) >= 8:
            return

        async def op(dirf: File) -> int:
            return (await dirf.mkdir(name, 0o755, 0)).path

        ino, code = self.call(path, op)
        if self.find(d, name) is not None:
            assert code == errno.EEXIST
            return
        assert code == 0, errno.errorcode[code]
        assert ino is not None
        inherited = d is not self.root and d.flag
        d.entries[name] = MDir(ino, d, flag=self.CASE == "dir" or inherited)

    @rule(data=st.data(), rmdir=st.booleans())
    def unlink(self, data: st.DataObject, rmdir: bool) -> None:
        path, d = self.pick_dir(data)
        name = self.name_for(data, d)

        async def op(dirf: File) -> None:
            await dirf.unlinkat(name, AT_REMOVEDIR if rmdir else 0)

        _, code = self.call(path, op)
        found = self.find(d, name)
        if found is None:
            assert code == errno.ENOENT
            return
        obj = d.entries[found]
        if isinstance(obj, MDir) and not rmdir:
            assert code == errno.EISDIR
        elif isinstance(obj, MFile) and rmdir:
            assert code == errno.ENOTDIR
        elif isinstance(obj, MDir) and obj.entries:
            assert code == errno.ENOTEMPTY
        else:
            assert code == 0, errno.errorcode[code]
            del d.entries[found]

    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        src_path, src = self.pick_dir(data)
        old = self.name_for(data, src)
        dst_path, dst = self.pick_dir(data)
        new = self.name_for(data, dst)

        async def go() -> None:
            async with dirs_at(self.export, self.CASE, src_path, dst_path) as (s, t):
                await s.renameat(old, t, new)

        _, code = run(go)
        want = self.expect_rename(src, old, dst, new)
        assert code == want, f"{errno.errorcode.get(code)} instead of {errno.errorcode.get(want)}"

    def expect_rename(self, src: MDir, old: str, dst: MDir, new: str) -> int:
        """The errno the rules give for renaming `old` in `src` to `new` in `dst`; applied."""
        s = self.find(src, old)
        if s is None:
            return errno.ENOENT
        obj = src.entries[s]
        if isinstance(obj, MDir) and dst.within(obj):
            return errno.EINVAL
        t = self.find(dst, new)
        itself = src is dst and t == s
        if t is not None and not itself:
            target = dst.entries[t]
            if isinstance(target, MDir) and src.within(target):
                return errno.ENOTEMPTY
            if isinstance(obj, MDir) and isinstance(target, MFile):
                return errno.ENOTDIR
            if isinstance(obj, MFile) and isinstance(target, MDir):
                return errno.EISDIR
            if isinstance(target, MDir) and target.entries:
                return errno.ENOTEMPTY
            del dst.entries[t]
        del src.entries[s]
        dst.entries[new] = obj
        if isinstance(obj, MDir):
            obj.parent = dst
        return 0

    @rule(data=st.data())
    def lookup(self, data: st.DataObject) -> None:
        path, d = self.pick_dir(data)
        name = self.name_for(data, d)

        async def op(dirf: File) -> int:
            f = await dirf.walk(name)
            await f.close()
            return f.qid.path

        ino, code = self.call(path, op)
        found = self.find(d, name)
        if found is None:
            assert code == errno.ENOENT
        else:
            assert (ino, code) == (d.entries[found].ino, 0)

    @rule(data=st.data())
    def readdir(self, data: st.DataObject) -> None:
        path, d = self.pick_dir(data)

        async def op(dirf: File) -> list[str]:
            h = await dirf.open(int(OpenFlag.RDONLY))
            try:
                return [e.name for e in await h.readdir(0) if e.name not in (".", "..")]
            finally:
                await h.close()

        listed, code = self.call(path, op)
        assert code == 0
        assert listed is not None
        assert sorted(listed) == sorted(d.entries)

    @rule(data=st.data(), value=st.booleans())
    def set_flag(self, data: st.DataObject, value: bool) -> None:
        path, d = self.pick_dir(data)

        async def op(dirf: File) -> None:
            await dirf.setxattr(FLAG, b"1" if value else b"0", 0)

        _, code = self.call(path, op)
        if value == self.sensitive(d):
            assert code == 0
        elif d is self.root or self.CASE == "force":
            assert code == errno.EPERM
        elif d.entries:
            assert code == errno.ENOTEMPTY
        else:
            assert code == 0
            d.flag = value

    @rule(data=st.data())
    def host_creates(self, data: st.DataObject) -> None:
        """A file made on the host by hand: it may fold like one already there."""
        path, d = self.pick_dir(data)
        name = self.name_for(data, d)
        if name in d.entries:
            return
        where = self.host_path(path) / swap(name)
        where.write_bytes(b"")
        d.entries[name] = MFile(os.lstat(where).st_ino)

    @rule(data=st.data())
    def host_removes(self, data: st.DataObject) -> None:
        path, d = self.pick_dir(data)
        files = sorted(n for n, obj in d.entries.items() if isinstance(obj, MFile))
        if files:
            name = data.draw(st.sampled_from(files), label="host removes")
            os.unlink(self.host_path(path) / swap(name))
            del d.entries[name]

    @invariant()
    def host_holds_the_escaped_stored_names(self) -> None:
        for path, d in self.dirs():
            where = self.host_path(path)
            assert host_names(where) == sorted(swap(n) for n in d.entries)
            assert (HOST_XATTR in os.listxattr(where)) == (d is not self.root and d.flag)


SETTINGS = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class CaseOff(CaseRules):
    CASE = "off"


class CaseDir(CaseRules):
    CASE = "dir"


class CaseForce(CaseRules):
    CASE = "force"


TestCaseOff = CaseOff.TestCase
TestCaseOff.settings = SETTINGS
TestCaseDir = CaseDir.TestCase
TestCaseDir.settings = SETTINGS
TestCaseForce = CaseForce.TestCase
TestCaseForce.settings = SETTINGS
