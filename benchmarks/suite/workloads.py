"""The workloads: each a small declared unit that prepares (untimed), runs (timed), checks
its own result (untimed: a wrong answer fails the workload, whatever its speed) and
cleans up.

A workload runs on a `Place`: a directory (the native disk, a mount) or, for the
`server` targets, a 9P server reached with diod's C clients (`diodls`, `diodcat`);
`kinds` says which it supports.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .corpus import MIB, Corpus, Size, manifest
from .fusetrace import fuse_requests
from .opcost import measure_ops

ENV = {**os.environ, "LC_ALL": "C"}


class WorkloadError(RuntimeError):
    """A workload failed, or its result was wrong."""


@dataclass
class Place:
    """Where a workload runs: a directory, or a 9P server for diod's clients."""

    root: Path | None = None
    address: str = ""  # HOST:PORT
    aname: str = ""
    #: the target's work directory: the processes naming it are the target's (CPU per op)
    watched: Path | None = None
    #: the ninep-server's --stats socket (requests per operation), where it has one
    stats: Path | None = None

    @property
    def dir(self) -> Path:
        assert self.root is not None, "a directory workload on a server target"
        return self.root


@dataclass
class Outcome:
    """What a run produced: `value` for its check; `seconds` when the tool timed itself
    (fio), else the wall time is used; `work` done (MB or I/Os) for throughput."""

    value: Any = None
    seconds: float | None = None
    work: float | None = None
    extra: dict[str, Any] | None = None


def run(command: list[str], cwd: Path | None = None) -> str:
    """Run `command`; its standard output. A failure is a WorkloadError with its stderr."""
    done = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, check=False)
    if done.returncode != 0:
        raise WorkloadError(
            f"{' '.join(command)}: exit {done.returncode}: "
            f"{done.stderr.decode(errors='replace')[-2000:]}"
        )
    return done.stdout.decode(errors="replace")


def git_args(*args: str) -> list[str]:
    return ["git", "-c", "safe.directory=*", *args]


def expect(what: str, got: object, want: object) -> None:
    if got != want:
        raise WorkloadError(f"{what}: got {str(got)[:300]}, want {str(want)[:300]}")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def extract(corpus: Corpus, dest: Path) -> None:
    """Unpack the tree's tarball into `dest` (dest/tree/...)."""
    with tarfile.open(corpus.tarball) as tar:
        tar.extractall(dest, filter="tar")


class Workload:
    """One workload. Subclasses set the class attributes and override the steps."""

    name: ClassVar[str]
    title: ClassVar[str]
    #: throughput unit of an I/O workload ("MB/s" or "IOPS"), None for the others
    unit: ClassVar[str | None] = None
    #: "dir" (a directory) and/or "9p" (a server through diod's clients)
    kinds: ClassVar[frozenset[str]] = frozenset({"dir"})
    #: where it runs, under the target's directory
    scratch: ClassVar[str] = ""

    def enabled(self, size: Size) -> bool:
        """Whether the workload belongs to the suite at `size`."""
        return True

    def describe(self, corpus: Corpus) -> str:
        return self.title

    def prepare(self, corpus: Corpus, root: Path) -> None:
        """Untimed, before each run (on the target's host directory for a cold run)."""

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        raise NotImplementedError

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        """Untimed, through the target: raise WorkloadError if the result is wrong."""

    def cleanup(self, corpus: Corpus, root: Path) -> None:
        """Untimed, after each run."""
        if self.scratch:
            remove(root / self.scratch)


WORKLOADS: dict[str, Workload] = {}


def workload(cls: type[Workload]) -> type[Workload]:
    WORKLOADS[cls.name] = cls()
    return cls


def tree_paths(corpus: Corpus) -> set[str]:
    return set(corpus.files) | corpus.dirs


@workload
class Find(Workload):
    name, title = "find", "find"

    def describe(self, corpus: Corpus) -> str:
        return f"find over a tree of {len(corpus.files)} files and its .git"

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        return Outcome(run(["find", "tree"], cwd=place.dir).splitlines())

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        found = {os.path.relpath(p, "tree") for p in outcome.value} - {"."}
        work_tree = {p for p in found if p != ".git" and not p.startswith(".git/")}
        expect("paths found", work_tree, tree_paths(corpus))


@workload
class Stat(Workload):
    name, title = "stat", "stat every file"

    def describe(self, corpus: Corpus) -> str:
        return f"lstat of each of {len(tree_paths(corpus))} files and directories"

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        tree = place.dir / "tree"
        return Outcome({rel: os.lstat(tree / rel).st_size for rel in sorted(tree_paths(corpus))})

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        sizes = {rel: outcome.value[rel] for rel in corpus.files}
        expect("file sizes", sizes, {rel: size for rel, (size, _) in corpus.files.items()})


@workload
class ListLong(Workload):
    name, title = "ls-l", "ls -l"
    kinds = frozenset({"dir", "9p"})

    def describe(self, corpus: Corpus) -> str:
        return f"ls -l of a directory of {corpus.size.flat_files} files (diodls -l on a server)"

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        if place.root is None:
            tool = shutil.which("diodls") or "/usr/sbin/diodls"
            out = run([tool, "-l", "-s", place.address, "-a", place.aname, "-t", "60", "flat"])
        else:
            out = run(["ls", "-l", "flat"], cwd=place.root)
        return Outcome(out.splitlines())

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        names = {line.split()[-1] for line in outcome.value if not line.startswith("total")}
        want = {f"entry-{i:05d}.txt" for i in range(corpus.size.flat_files)}
        expect("names listed", names - {".", ".."}, want)


@workload
class GitStatus(Workload):
    name, title = "git-status", "git status"

    def describe(self, corpus: Corpus) -> str:
        return (
            "git status in the tree's repository (core.fileMode=false, as Git for Windows "
            "sets it: drvfs without metadata shows every file executable)"
        )

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        command = git_args("-c", "core.fileMode=false", "status", "--porcelain")
        return Outcome(run(command, cwd=place.dir / "tree"))

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        expect("git status --porcelain", outcome.value, "")


@workload
class GitClone(Workload):
    name, title, scratch = "git-clone", "git clone", "clone"

    def describe(self, corpus: Corpus) -> str:
        return "git clone file:// of the tree's repository (on the native disk) into the target"

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        run(git_args("clone", "-q", f"file://{corpus.tree}", "clone"), cwd=place.dir)
        return Outcome()

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        clone = place.dir / "clone"
        run(git_args("fsck", "--no-progress", "--strict"), cwd=clone)
        expect("checked-out files", manifest(clone)[0], corpus.files)


@workload
class Untar(Workload):
    name, title, scratch = "untar", "untar", "untar"

    def describe(self, corpus: Corpus) -> str:
        return f"tar -xf of the tree ({len(corpus.files)} files) from a tarball on the target"

    def prepare(self, corpus: Corpus, root: Path) -> None:
        (root / "untar").mkdir()

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        run(["tar", "-xf", "tree.tar", "-C", "untar"], cwd=place.dir)
        return Outcome()

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        files, dirs = manifest(place.dir / "untar" / "tree")
        expect("untarred directories", dirs, corpus.dirs)
        expect("untarred files (size, sha256)", files, corpus.files)


@workload
class RemoveTree(Workload):
    name, title, scratch = "rm-rf", "rm -rf", "rmtree"

    def describe(self, corpus: Corpus) -> str:
        return f"rm -rf of the untarred tree ({len(corpus.files)} files)"

    def prepare(self, corpus: Corpus, root: Path) -> None:
        extract(corpus, root / "rmtree")

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        run(["rm", "-rf", "rmtree"], cwd=place.dir)
        return Outcome()

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        expect("rmtree left behind", os.path.lexists(place.dir / "rmtree"), False)


@workload
class CreateUnlink(Workload):
    name, title, scratch = "create-unlink", "create/unlink storm", "storm"

    def describe(self, corpus: Corpus) -> str:
        return f"create {corpus.size.storm} files of 100 bytes, list them, unlink them"

    def prepare(self, corpus: Corpus, root: Path) -> None:
        (root / "storm").mkdir()

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        names = [str(place.dir / "storm" / f"f{i:05d}") for i in range(corpus.size.storm)]
        for name in names:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"x" * 100)
            os.close(fd)
        count = len(os.listdir(place.dir / "storm"))
        for name in names:
            os.unlink(name)
        return Outcome(count)

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        expect("files created", outcome.value, corpus.size.storm)
        expect("files left", os.listdir(place.dir / "storm"), [])


@workload
class RenameStorm(Workload):
    name, title, scratch = "rename", "rename storm", "rename"

    def describe(self, corpus: Corpus) -> str:
        return f"rename {corpus.size.storm} files, half of them into another directory"

    def prepare(self, corpus: Corpus, root: Path) -> None:
        for d in ("a", "b"):
            (root / "rename" / d).mkdir(parents=True)
        for i in range(corpus.size.storm):
            (root / "rename" / "a" / f"f{i:05d}").write_bytes(b"%d" % i)

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        base = place.dir / "rename"
        for i in range(corpus.size.storm):
            os.rename(base / "a" / f"f{i:05d}", base / "ab"[i % 2] / f"renamed-{i:05d}")
        return Outcome()

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        base = place.dir / "rename"
        for i in range(corpus.size.storm):
            expect(
                f"renamed-{i:05d}",
                (base / "ab"[i % 2] / f"renamed-{i:05d}").read_bytes(),
                b"%d" % i,
            )
        expect(
            "names left in a",
            sorted(os.listdir(base / "a")),
            [f"renamed-{i:05d}" for i in range(0, corpus.size.storm, 2)],
        )


#: The block the sequential write repeats (random, so no layer can compress it).
BLOCK = random.Random(13).randbytes(MIB)


@workload
class SeqWrite(Workload):
    name, title, unit, scratch = "seq-write", "sequential write", "MB/s", "written.bin"

    def describe(self, corpus: Corpus) -> str:
        return f"write {corpus.size.seq_mib} MiB in 1 MiB writes, then fsync"

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        with open(place.dir / "written.bin", "wb", buffering=0) as f:
            for _ in range(corpus.size.seq_mib):
                f.write(BLOCK)
            os.fsync(f.fileno())
        return Outcome(work=corpus.size.seq_mib * MIB / 1e6)

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        digest, want = hashlib.sha256(), hashlib.sha256(BLOCK * corpus.size.seq_mib)
        with open(place.dir / "written.bin", "rb") as f:
            while block := f.read(MIB):
                digest.update(block)
        expect("sha256 of the file written", digest.hexdigest(), want.hexdigest())


@workload
class SeqRead(Workload):
    name, title, unit = "seq-read", "sequential read", "MB/s"
    kinds = frozenset({"dir", "9p"})

    def describe(self, corpus: Corpus) -> str:
        return f"read a file of {corpus.size.seq_mib} MiB in 1 MiB reads (diodcat on a server)"

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        size = corpus.size.seq_mib * MIB
        if place.root is None:
            tool = shutil.which("diodcat") or "/usr/sbin/diodcat"
            # -m: diodcat's default msize is 64 KiB; ask for 1 MiB reads as the title says
            command = [tool, "-m", str(MIB), "-s", place.address, "-a", place.aname, "-t", "60",
                       "big.bin"]  # fmt: skip
            done = subprocess.run(command, capture_output=True, check=False)
            if done.returncode != 0:
                raise WorkloadError(f"diodcat: exit {done.returncode}: {done.stderr.decode()}")
            return Outcome(done.stdout, work=size / 1e6)
        data = bytearray(size)
        view, got = memoryview(data), 0
        with open(place.root / "big.bin", "rb", buffering=0) as f:
            while n := f.readinto(view[got : got + MIB]):
                got += n
        return Outcome(view[:got], work=size / 1e6)

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        expect(
            "sha256 of the file read", hashlib.sha256(outcome.value).hexdigest(), corpus.big_sha256
        )


class Random4K(Workload):
    """Random 4 KiB reads or writes of `rand.bin` with fio (its JSON kept), or with
    Python's pread/pwrite where fio is not installed."""

    unit = "IOPS"
    mode: ClassVar[str]  # fio's rw=

    def describe(self, corpus: Corpus) -> str:
        tool = "fio, psync" if shutil.which("fio") else "Python, fio not installed"
        return (
            f"{corpus.size.rand_ios} random 4 KiB {self.mode[4:]}s in a file of "
            f"{corpus.size.rand_mib} MiB ({tool})"
        )

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        size, ios = corpus.size.rand_mib * MIB, corpus.size.rand_ios
        if shutil.which("fio"):
            return self.fio(place.dir / "rand.bin", size, ios)
        return self.python(place.dir / "rand.bin", size, ios)

    def fio(self, path: Path, size: int, ios: int) -> Outcome:
        out = run(
            [
                "fio",
                f"--name={self.mode}",
                f"--filename={path}",
                f"--rw={self.mode}",
                "--bs=4k",
                f"--size={size}",
                f"--io_size={ios * 4096}",
                "--ioengine=psync",
                "--randrepeat=1",
                "--norandommap",
                "--end_fsync=1",
                "--output-format=json",
            ]
        )
        report = json.loads(out[out.index("{") :])
        job = report["jobs"][0]
        side = job["write" if "write" in self.mode else "read"]
        summary = {
            "engine": f"fio {report.get('fio version', '')}",
            "error": job["error"],
            "io_bytes": side["io_bytes"],
            "iops": side["iops"],
            "bw_bytes": side["bw_bytes"],
            "runtime_ms": side["runtime"],
            "clat_ns": {k: side["clat_ns"].get(k) for k in ("min", "max", "mean", "stddev")},
            "clat_percentiles_ns": side["clat_ns"].get("percentile", {}),
        }
        seconds = job["job_runtime"] / 1000 or None
        return Outcome(summary, seconds=seconds, work=side["total_ios"], extra=summary)

    def python(self, path: Path, size: int, ios: int) -> Outcome:
        offsets = [o * 4096 for o in random.Random(7).choices(range(size // 4096), k=ios)]
        fd = os.open(path, os.O_RDWR)
        try:
            for offset in offsets:
                if "write" in self.mode:
                    os.pwrite(fd, BLOCK[:4096], offset)
                else:
                    os.pread(fd, 4096, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        summary = {"engine": "python", "error": 0, "io_bytes": ios * 4096}
        return Outcome(summary, work=ios, extra=summary)

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        expect("errors", outcome.value["error"], 0)
        expect("bytes moved", outcome.value["io_bytes"], corpus.size.rand_ios * 4096)
        expect("file size", (place.dir / "rand.bin").stat().st_size, corpus.size.rand_mib * MIB)


@workload
class RandRead(Random4K):
    name, title, mode = "rand-read", "random 4K read", "randread"


@workload
class RandWrite(Random4K):
    name, title, mode = "rand-write", "random 4K write", "randwrite"


@workload
class SqliteInserts(Workload):
    name, title, scratch = "sqlite", "sqlite inserts", "bench.db"

    def describe(self, corpus: Corpus) -> str:
        return f"{corpus.size.sqlite_rows} sqlite inserts, 100 to a transaction (rollback journal)"

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        db = sqlite3.connect(place.dir / "bench.db", isolation_level=None)
        try:
            db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, value BLOB)")
            for start in range(0, corpus.size.sqlite_rows, 100):
                db.execute("BEGIN")
                rows = ((f"row {i}", BLOCK[i : i + 200]) for i in range(start, start + 100))
                db.executemany("INSERT INTO t (name, value) VALUES (?, ?)", rows)
                db.execute("COMMIT")
        finally:
            db.close()
        return Outcome()

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        db = sqlite3.connect(place.dir / "bench.db")
        try:
            expect("integrity_check", db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            rows = db.execute("SELECT count(*) FROM t").fetchone()[0]
        finally:
            db.close()
        expect("rows", rows, corpus.size.sqlite_rows // 100 * 100)


@workload
class Build(Workload):
    name, title, scratch = "build", "build mix", "build"

    def enabled(self, size: Size) -> bool:
        return size.name != "small"

    def describe(self, corpus: Corpus) -> str:
        return (
            f"compile {len(corpus.build_sources())} Python files of the tree to .pyc "
            "(python -m compileall: read, write, mkdir, rename)"
        )

    def prepare(self, corpus: Corpus, root: Path) -> None:
        for rel in corpus.build_sources():
            (root / "build" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(corpus.tree / rel, root / "build" / rel)

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        run([sys.executable, "-m", "compileall", "-q", "-j", "1", "build"], cwd=place.dir)
        return Outcome()

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        compiled = list((place.dir / "build").rglob("__pycache__/*.pyc"))
        expect("files compiled", len(compiled), len(corpus.build_sources()))


@workload
class PerOperation(Workload):
    """Single operations, each timed alone, `storm` of each kind: wall p50/p99, CPU per
    process, 9P and FUSE requests per operation (benchmarks/suite/opcost.py)."""

    name, title, scratch = "ops", "per-operation mix", "ops"

    def describe(self, corpus: Corpus) -> str:
        return (
            f"{corpus.size.storm} each of: stat of an unseen name, open + read 4 KiB + close, "
            "create + close, unlink, mkdir, rename, readdir of 100 entries; each timed alone"
        )

    def prepare(self, corpus: Corpus, root: Path) -> None:
        base = root / "ops"
        for d in ("seen", "new", "list"):
            (base / d).mkdir(parents=True)
        for i in range(corpus.size.storm):
            (base / "seen" / f"s{i:05d}").write_bytes(b"s" * 100)
            (base / "seen" / f"r{i:05d}").write_bytes(BLOCK[:4096])
        for i in range(100):
            (base / "list" / f"entry-{i:03d}").write_bytes(b"")

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        seen, new, listed = (str(place.dir / "ops" / d) for d in ("seen", "new", "list"))

        def open_read_close(i: int) -> None:
            fd = os.open(f"{seen}/r{i:05d}", os.O_RDONLY)
            os.read(fd, 4096)
            os.close(fd)

        def create(i: int) -> None:
            os.close(os.open(f"{new}/c{i:05d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))

        ops: dict[str, Callable[[int], object]] = {
            "stat": lambda i: os.lstat(f"{seen}/s{i:05d}"),
            "open-read-close": open_read_close,
            "create": create,
            "unlink": lambda i: os.unlink(f"{new}/c{i:05d}"),
            "mkdir": lambda i: os.mkdir(f"{new}/d{i:05d}"),
            "rename": lambda i: os.rename(f"{new}/d{i:05d}", f"{new}/e{i:05d}"),
            "readdir-100": lambda i: os.listdir(listed),
        }
        requests = None
        if place.stats is not None:
            from ninep.stats import read

            stats = str(place.stats)

            def requests() -> int:
                return sum(read(stats)["total"]["requests"].values())

        for d in (seen, new, listed):  # the directories looked up once, untimed
            os.lstat(d)
        with fuse_requests(place.dir) as fuse:
            figures = measure_ops(ops, corpus.size.storm, place.watched, requests, fuse)
        return Outcome(sorted(os.listdir(new)), extra={"ops": figures})

    def verify(self, corpus: Corpus, place: Place, outcome: Outcome) -> None:
        expect("names left", outcome.value, [f"e{i:05d}" for i in range(corpus.size.storm)])


class Command(Workload):
    """A user's own workload (`--workload NAME='shell command'`, made by `command`): the
    command run by sh in an empty directory on the target, beside the suite's inputs
    (../tree, ../tree.tar, ../big.bin, ../rand.bin, ../flat); checked by its exit status."""

    command: ClassVar[str]

    def describe(self, corpus: Corpus) -> str:
        return f"sh -c {self.command!r} (your own)"

    def prepare(self, corpus: Corpus, root: Path) -> None:
        (root / self.scratch).mkdir()

    def run(self, corpus: Corpus, place: Place) -> Outcome:
        run(["sh", "-c", self.command], cwd=place.dir / self.scratch)
        return Outcome()


def command(name: str, shell: str) -> Workload:
    """The workload NAME running `shell`, in directory own-NAME."""
    attrs = {"name": name, "title": name, "scratch": f"own-{name}", "command": shell}
    made: Workload = type(f"Command_{name}", (Command,), attrs)()
    return made
