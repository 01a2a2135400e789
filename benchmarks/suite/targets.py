"""The targets: ways to reach the same files, each set up and torn down by the suite.

A target has a host directory (`backing`) that the suite fills before it mounts,
so that a cold run starts from a fresh mount of files already on disk. `mounted()`
gives a fresh mount (or server) each time it is entered.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from . import procs
from .corpus import Corpus
from .results import Measurement
from .workloads import Place, Workload


class Target:
    """The native directory; subclasses mount it some other way."""

    name: str
    kind: ClassVar[str] = "dir"  # "dir" or "9p" (a server for diod's clients)
    #: the backing directory is a host directory behind the mount (False: a user's path)
    has_backing: ClassVar[bool] = True
    description: ClassVar[str] = "the host directory itself"

    def __init__(self, name: str, options: str = "") -> None:
        self.name = name
        self.options = options
        self.workdir = Path()
        self.command: list[str] = []  # the mount or server command (recorded)

    def missing(self) -> str | None:
        """Why the target cannot run here (a missing tool), or None."""
        return None

    @classmethod
    def supports(cls, workload: Workload) -> bool:
        """Whether the target runs `workload` (a class's fact: the smoke test reads it)."""
        return cls.kind in workload.kinds

    def run_batch(
        self,
        workloads: list[Workload],
        corpus: Corpus,
        runs: int,
        cold: bool,
        say: Callable[[str], None],
    ) -> list[Measurement] | None:
        """The measurements of a target that runs every workload at once (a guest), after
        `session` and seeding; None for the others, which run one at a time."""
        return None

    @property
    def backing(self) -> Path:
        return self.workdir / "backing"

    @property
    def mountpoint(self) -> Path:
        return self.workdir / "mnt"

    @property
    def log(self) -> Path:
        return self.workdir / "log.txt"

    @contextlib.contextmanager
    def session(self, workdir: Path) -> Iterator[Path]:
        """Start what the whole target needs (an sshd); yields the backing directory."""
        self.workdir = workdir
        for d in (self.backing, self.mountpoint):
            d.mkdir(parents=True)
        yield self.backing

    @contextlib.contextmanager
    def mounted(self) -> Iterator[Place]:
        """A fresh mount (or server) of the backing directory."""
        yield Place(self.backing)

    def versions(self) -> dict[str, str]:
        return {}

    def info(self) -> dict[str, Any]:
        """What results.json records of the target."""
        return {
            "description": self.description,
            "kind": self.kind,
            "options": self.options,
            "command": shlex.join(self.command).replace(str(self.workdir), "$WORKDIR"),
            "versions": self.versions(),
            "fstype": fs_type(self.backing) if self.backing.exists() else "",
        }


def need(*tools: str) -> str | None:
    """None, or which of `tools` are not installed."""
    absent = [t for t in tools if not (shutil.which(t) or Path("/usr/sbin", t).exists())]
    return f"not installed: {', '.join(absent)}" if absent else None


def tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def fuse_missing() -> str | None:
    return None if os.access("/dev/fuse", os.R_OK | os.W_OK) else "no usable /dev/fuse"


class Drvfs(Target):
    """The project's FUSE client (fresh for each mount) of ninep-server on loopback TCP
    (one for the target, as a host's server outlives the guest's mounts)."""

    description = "drvfs (FUSE, pyfuse3) -> ninep-server, tcp loopback"

    def missing(self) -> str | None:
        return fuse_missing()

    @contextlib.contextmanager
    def session(self, workdir: Path) -> Iterator[Path]:
        stats = ("--stats", str(self.stats_socket(workdir)))
        with (
            super().session(workdir) as backing,
            procs.ninep_server(backing, self.log, *stats) as address,
        ):
            self.address = address
            yield backing

    @staticmethod
    def stats_socket(workdir: Path) -> Path:
        """The server's --stats socket: its requests, counted per operation."""
        return workdir / "stats.sock"

    @contextlib.contextmanager
    def mounted(self) -> Iterator[Place]:
        options = ["-o", self.options] if self.options else []
        self.command = ["drvfs", "mount", "--server", self.address, *options, "C:", "MOUNTPOINT"]
        with procs.drvfs_mount(self.address, self.mountpoint, self.options, self.log):
            yield Place(self.mountpoint, watched=self.workdir,
                        stats=self.stats_socket(self.workdir))  # fmt: skip

    def versions(self) -> dict[str, str]:
        return {"ninep-volfs": project_version(), "pyfuse3": package_version("pyfuse3")}


class Sshfs(Target):
    """sshfs to the suite's own sshd on 127.0.0.1 (a throwaway host and client key)."""

    description = "sshfs (FUSE, SFTP) -> the suite's own sshd on 127.0.0.1"

    def missing(self) -> str | None:
        return fuse_missing() or need("sshfs", "sshd", "ssh-keygen")

    @contextlib.contextmanager
    def session(self, workdir: Path) -> Iterator[Path]:
        with super().session(workdir) as backing:
            keys = workdir / "ssh"
            keys.mkdir(mode=0o700)
            for key in ("host", "client"):
                subprocess.run(
                    [
                        "ssh-keygen",
                        "-q",
                        "-t",
                        "ed25519",
                        "-N",
                        "",
                        "-C",
                        "ninep-bench",
                        "-f",
                        str(keys / key),
                    ],
                    check=True,
                )
            shutil.copyfile(keys / "client.pub", keys / "authorized_keys")
            sftp = "/usr/lib/openssh/sftp-server"
            self.port = procs.free_port()
            config = keys / "sshd_config"
            config.write_text(
                f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\n"
                f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPidFile {keys / 'sshd.pid'}\n"
                "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                "MaxStartups 100\nLogLevel ERROR\n"
                f"Subsystem sftp {sftp if Path(sftp).exists() else 'internal-sftp'}\n"
            )
            if os.geteuid() == 0:
                Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation
            command = [tool("sshd"), "-D", "-e", "-f", str(config)]
            with open(self.log, "ab") as out:
                sshd = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
                )
            try:
                procs.wait_listening(self.port, sshd, self.log)
                yield backing
            finally:
                procs.stop(sshd)

    @contextlib.contextmanager
    def mounted(self) -> Iterator[Place]:
        ssh = (
            f"port={self.port},IdentityFile={self.workdir / 'ssh' / 'client'},BatchMode=yes,"
            "StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,LogLevel=ERROR"
        )
        options = ["-o", self.options] if self.options else []
        remote = f"{getpass.getuser()}@127.0.0.1:{self.backing}"
        self.command = ["sshfs", "-o", ssh, *options, remote, str(self.mountpoint)]
        with procs.fuse_mount(self.command, self.mountpoint, self.log):
            yield Place(self.mountpoint, watched=self.workdir)

    def versions(self) -> dict[str, str]:
        return {
            "sshfs": procs.version_of(["sshfs", "--version"], r"SSHFS version (\S+)"),
            "openssh": procs.version_of([tool("sshd"), "-V"], r"OpenSSH_([^\s,]+)"),
        }


class Bindfs(Target):
    """bindfs: a C FUSE passthrough of the backing directory, the floor any FUSE file
    system pays."""

    description = "bindfs (FUSE passthrough in C)"

    def missing(self) -> str | None:
        return fuse_missing() or need("bindfs")

    @contextlib.contextmanager
    def mounted(self) -> Iterator[Place]:
        options = ["-o", self.options] if self.options else []
        self.command = ["bindfs", *options, str(self.backing), str(self.mountpoint)]
        with procs.fuse_mount(self.command, self.mountpoint, self.log):
            yield Place(self.mountpoint, watched=self.workdir)

    def versions(self) -> dict[str, str]:
        return {"bindfs": procs.version_of(["bindfs", "--version"])}


class Floor(Target):
    """A pyfuse3 filesystem that answers from a dict (`benchmarks.floorfs`): what FUSE and
    pyfuse3 cost a Python design before it does any work (the `ops` workload only)."""

    description = "do-nothing pyfuse3 filesystem (a dict in memory)"

    def missing(self) -> str | None:
        return fuse_missing()

    @classmethod
    def supports(cls, workload: Workload) -> bool:
        return workload.name == "ops"

    @contextlib.contextmanager
    def mounted(self) -> Iterator[Place]:
        self.command = [sys.executable, "-m", "benchmarks.floorfs", str(self.backing),
                        str(self.mountpoint)]  # fmt: skip
        with procs.floor_mount(self.backing, self.mountpoint, self.log):
            yield Place(self.mountpoint, watched=self.workdir)

    def versions(self) -> dict[str, str]:
        return {"pyfuse3": package_version("pyfuse3")}


class UserPath(Target):
    """A directory the user already has (`--target NAME=PATH`): their own /mnt/c, an NFS
    mount. The suite works in a scratch directory under it and removes it; it cannot
    remount it, so a cold run there only drops the kernel's caches."""

    has_backing = False
    description = "a path given on the command line"

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path

    def missing(self) -> str | None:
        return None if self.path.is_dir() else f"{self.path} is not a directory"

    @contextlib.contextmanager
    def session(self, workdir: Path) -> Iterator[Path]:
        self.workdir = workdir
        workdir.mkdir(parents=True)
        scratch = self.path / f".ninep-bench-{os.getpid()}"
        scratch.mkdir()
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    @contextlib.contextmanager
    def mounted(self) -> Iterator[Place]:
        yield Place(self.path / f".ninep-bench-{os.getpid()}")

    def info(self) -> dict[str, Any]:
        return {**super().info(), "path": str(self.path), "fstype": fs_type(self.path)}


class NinepServer(Target):
    """ninep-server itself, reached with diod's C clients (diodls, diodcat)."""

    kind = "9p"
    description = "ninep-server, through diod's C clients (diodls, diodcat)"

    def missing(self) -> str | None:
        return need("diodls", "diodcat")

    @contextlib.contextmanager
    def session(self, workdir: Path) -> Iterator[Path]:
        """The server runs for the whole target; each client tool connects afresh."""
        with super().session(workdir) as backing, self.serve(backing) as self.place:
            yield backing

    @contextlib.contextmanager
    def serve(self, backing: Path) -> Iterator[Place]:
        self.command = ["ninep-server", "--export", "C=BACKING", *shlex.split(self.options)]
        with procs.ninep_server(backing, self.log, *shlex.split(self.options)) as address:
            yield Place(address=address.removeprefix("tcp:"), aname="C")

    @contextlib.contextmanager
    def mounted(self) -> Iterator[Place]:
        yield self.place

    def versions(self) -> dict[str, str]:
        return {"ninep-volfs": project_version(), "diod": procs.debian_version("diod")}


class Diod(NinepServer):
    """Debian's diod, the C 9P2000.L server, through the same C clients."""

    description = "diod (C 9P server), through its own C clients (diodls, diodcat)"

    def missing(self) -> str | None:
        return need("diod", "diodls", "diodcat")

    @contextlib.contextmanager
    def serve(self, backing: Path) -> Iterator[Place]:
        self.command = ["diod", "-n", "-S", "-e", "BACKING", *shlex.split(self.options)]
        with procs.diod_server(backing, self.log, *shlex.split(self.options)) as address:
            yield Place(address=address, aname=str(backing))

    def versions(self) -> dict[str, str]:
        return {"diod": procs.debian_version("diod")}


def project_version() -> str:
    """The project's version and git commit (with "+changes" when the tree is dirty)."""
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        ["git", "-C", str(repo), "describe", "--always", "--dirty=+changes"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{package_version('ninep-volfs')} {out.stdout.strip()}".strip()


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def fs_type(path: Path) -> str:
    """The type of the file system `path` is on (from mountinfo: the longest mount point)."""
    real, best, kind = os.path.realpath(path), "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point, fstype = fields[4], fields[fields.index("-") + 1]
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fstype
    return kind


#: The default suite's targets: name -> (class, options).
DEFAULT_TARGETS: dict[str, tuple[type[Target], str]] = {
    "native": (Target, ""),
    "drvfs": (Drvfs, ""),
    "drvfs-metadata": (Drvfs, "metadata"),
    "sshfs": (Sshfs, ""),
    "bindfs": (Bindfs, ""),
    "floor": (Floor, ""),
    "ninep-server": (NinepServer, ""),
    "diod": (Diod, ""),
}

#: Names that stand for several targets.
GROUPS: dict[str, tuple[str, ...]] = {
    "default": tuple(DEFAULT_TARGETS),
    "server": ("ninep-server", "diod"),
    "9p-kernel": ("9p-kernel-ninep", "9p-kernel-diod"),
}
