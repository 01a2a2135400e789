"""The sizes of a run, and its inputs: a real source tree (a copy of the running Python's
standard library) as a git repository, its tarball, and files of random bytes.

Made once per run in the work directory; each target gets a copy (`seed`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sysconfig
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1 << 20

#: Fixed author, committer and dates: the repository is the same in every run.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "ninep-bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "ninep-bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_AUTHOR_DATE": "2001-09-09T01:46:40Z",
    "GIT_COMMITTER_DATE": "2001-09-09T01:46:40Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "LC_ALL": "C",
}

#: Top-level entries of the standard library never copied (not source, or not ours).
SKIPPED = {"site-packages", "dist-packages", "__pycache__", "lib-dynload"}


@dataclass(frozen=True)
class Size:
    """How much each workload does at one `--size`."""

    name: str
    tree_files: int  # files of the standard library in the tree
    flat_files: int  # entries of the directory `ls -l` lists
    storm: int  # files of the create/unlink and rename storms
    seq_mib: int  # sequential read and write
    rand_mib: int  # the file of the random 4 KiB reads and writes
    rand_ios: int  # random 4 KiB operations, each way
    sqlite_rows: int  # inserted 100 to a transaction
    build_files: int  # Python files compiled by the build mix (in the suite from medium up)


SIZES: dict[str, Size] = {
    "small": Size("small", 100, 100, 100, 8, 8, 256, 300, 30),
    "medium": Size("medium", 1000, 1000, 1000, 256, 64, 4096, 5000, 300),
    "large": Size("large", 4000, 5000, 5000, 1024, 256, 16384, 20000, 1000),
}


@dataclass
class Corpus:
    """The inputs of one run, under `root`."""

    size: Size
    root: Path
    #: relative path -> (size, sha256) of every file of the work tree (outside .git)
    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    big_sha256: str = ""

    @property
    def tree(self) -> Path:
        """The git work tree (with its .git)."""
        return self.root / "tree"

    @property
    def tarball(self) -> Path:
        return self.root / "tree.tar"

    @property
    def big(self) -> Path:
        """`seq_mib` MiB of random bytes (sequential read)."""
        return self.root / "big.bin"

    @property
    def rand(self) -> Path:
        """`rand_mib` MiB of random bytes (random 4 KiB reads and writes)."""
        return self.root / "rand.bin"

    @property
    def source_dir(self) -> str:
        """The standard library the tree was copied from."""
        return sysconfig.get_paths()["stdlib"]

    def build_sources(self) -> list[str]:
        """The Python files the build mix compiles (relative paths in the tree)."""
        sources = (
            p
            for p in self.files
            if p.endswith(".py") and not {"test", "tests", "data"} & set(Path(p).parts)
        )
        return sorted(sources)[: self.size.build_files]

    def seeds(self) -> dict[str, Path]:
        """Name in a target -> input to copy there."""
        return {
            "tree": self.tree,
            "tree.tar": self.tarball,
            "big.bin": self.big,
            "rand.bin": self.rand,
        }


def stdlib_files(limit: int) -> list[Path]:
    """Files of the standard library, whole top-level entries in name order, up to `limit`
    (`test` last, and only for the large size; files over 1 MiB left out)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    tops = [
        p for p in stdlib.iterdir() if p.name not in SKIPPED and not p.name.startswith("config-")
    ]
    tops.sort(key=lambda p: (p.name == "test", p.name))
    chosen: list[Path] = []
    for top in tops:
        files = [top] if top.is_file() else sorted(top.rglob("*"))
        files = [f for f in files if _wanted(f)]
        if chosen and len(chosen) + len(files) > limit:
            continue
        chosen += files
        if len(chosen) >= limit:
            break
    return chosen[:limit]


def _wanted(path: Path) -> bool:
    return (
        path.is_file()
        and not path.is_symlink()
        and "__pycache__" not in path.parts
        and path.stat().st_size <= MIB
    )


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git in `cwd` with the run's fixed identity (any owner's repository is safe)."""
    return subprocess.run(
        ["git", "-c", "safe.directory=*", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=check,
    )


def random_file(path: Path, mib: int) -> str:
    """Write `mib` MiB of random bytes to `path`; their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mib):
            block = os.urandom(MIB)
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def make_corpus(size: Size, root: Path) -> Corpus:
    """Copy the standard library into `root/tree`, commit it, pack it, write the big files."""
    corpus = Corpus(size, root)
    stdlib = Path(corpus.source_dir)
    root.mkdir(parents=True, exist_ok=True)
    for src in stdlib_files(size.tree_files):
        rel = src.relative_to(stdlib)
        dest = corpus.tree / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    corpus.files, corpus.dirs = manifest(corpus.tree)
    git(corpus.tree, "init", "-q")
    git(corpus.tree, "add", "-A")
    git(corpus.tree, "commit", "-q", "-m", f"Python {size.name} tree")
    with tarfile.open(corpus.tarball, "w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(corpus.dirs | set(corpus.files)):
            tar.add(corpus.tree / name, arcname=f"tree/{name}", recursive=False)
    corpus.big_sha256 = random_file(corpus.big, size.seq_mib)
    random_file(corpus.rand, size.rand_mib)
    return corpus


def seed(corpus: Corpus, dest: Path) -> None:
    """Copy the run's inputs into a target's directory `dest` (on its host side when it
    has one, so that a cold mount finds them on disk)."""
    for name, src in corpus.seeds().items():
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True)
        else:
            shutil.copyfile(src, dest / name)
    flat = dest / "flat"
    flat.mkdir()
    for i in range(corpus.size.flat_files):
        (flat / f"entry-{i:05d}.txt").write_bytes(b"x" * (i % 200))


def manifest(root: Path) -> tuple[dict[str, tuple[int, str]], set[str]]:
    """(files: relative path -> (size, sha256), directories) of a tree, outside .git."""
    files: dict[str, tuple[int, str]] = {}
    dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        rel = os.path.relpath(dirpath, root)
        dirs.update(os.path.normpath(os.path.join(rel, d)) for d in dirnames)
        for name in filenames:
            data = Path(dirpath, name).read_bytes()
            files[os.path.normpath(os.path.join(rel, name))] = (
                len(data),
                hashlib.sha256(data).hexdigest(),
            )
    return files, dirs
