"""Host system calls per Twalk and per Tgetattr of a real `ninep-server`, under strace.

    .venv/bin/python scripts/syscalls_per_request.py [--files N] [--metadata]
                                                     [--sensitive] [--variant]

Exports a fresh directory holding a directory `dir` of N files (with their
mode, uid and gid attributes under --metadata, as files made through the
server have), runs the server under `strace -f`, and from one client walks
from `dir` to each file (by a case variant of its name with --variant), then
getattrs each, then clunks each; then lists `dir` with attributes (Treaddirattr,
a few chunks: its figures are per listed file, the Tlopen and Tclunk of the
listing's fid included); then clones `dir` N times and makes N files
(Tlcreate on the clones), N directories, N symlinks and N regular files by
Tmknod in it. A Tstatfs (one `fstatfs` on the host) marks the boundaries of
the phases in the trace. Prints the system calls per request of each phase:
all of them, and those on the host's files (the calls of the connection's
socket and of the event loop, `LOOP_CALLS`, left out), with the most
frequent ones.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import trio

from ninep.client.connection import connect
from ninep.constants import OpenFlag

DIR = "dir"
PHASES = (
    "walk", "getattr", "clunk", "readdirattr", "walk (clone)", "lcreate", "mkdir", "symlink",
    "mknod",
)  # fmt: skip
LOOP_CALLS = frozenset(
    {"socket", "recvfrom", "sendto", "recvmsg", "sendmsg", "epoll_wait", "epoll_ctl",
     "epoll_pwait", "poll", "ppoll", "select", "futex", "getpid", "clock_gettime"}
)  # fmt: skip
_CALL = re.compile(r"^\d+\s+(\w+)\((\d*)")
_IO_CALLS = frozenset({"read", "write", "readv", "writev"})


def _populate(root: Path, files: int, metadata: bool) -> list[str]:
    names = [f"file{i:05d}.txt" for i in range(files)]
    (root / DIR).mkdir()
    for name in names:
        path = root / DIR / name
        path.write_bytes(b"x")
        if metadata:
            for field, value in (("mode", 0o100644), ("uid", 1000), ("gid", 1000)):
                os.setxattr(path, f"user.virtfs.{field}", value.to_bytes(4, "little"))
    return names


async def _drive(sock: str, names: list[str]) -> None:
    async with connect(f"unix:{sock}") as client:
        root = await client.attach("C")
        top = await root.walk(DIR)
        await root.statfs()
        fids = [await top.walk(name) for name in names]
        await root.statfs()
        for fid in fids:
            await fid.getattr()
        await root.statfs()
        for fid in fids:
            await fid.clunk()
        await root.statfs()
        async with await top.walk() as listing:
            await listing.open(OpenFlag.RDONLY | OpenFlag.DIRECTORY)
            listed = await listing.readdir_attrs()
        await root.statfs()
        assert client.extended and len(listed) == len(names) + 2, len(listed)
        clones = [await top.walk() for _ in names]
        await root.statfs()
        for i, fid in enumerate(clones):
            await fid.create(f"new{i}", os.O_RDWR, 0o644)
        await root.statfs()
        for i in range(len(names)):
            await top.mkdir(f"dir{i}", 0o755)
        await root.statfs()
        for i in range(len(names)):
            await top.symlink(f"sym{i}", "target")
        await root.statfs()
        for i in range(len(names)):
            await top.mknod(f"nod{i}", stat.S_IFREG | 0o644)
        await root.statfs()


def _phases(trace: str) -> list[Counter[str]]:
    """The system calls between consecutive `fstatfs` markers (each counted once: the end
    of an interrupted call, `<... resumed>`, is not counted again). Reads and writes on
    sockets are counted as `socket`."""
    phases: list[Counter[str]] = []
    sockets: set[str] = set()
    for line in trace.splitlines():
        match = _CALL.match(line)
        if match is None:
            continue
        call, fd = match.groups()
        if call in ("accept4", "accept", "socket"):
            sockets.add(line.rpartition("= ")[2].split()[0])
        if call in ("fstatfs", "statfs"):
            phases.append(Counter())
        elif phases:
            phases[-1]["socket" if fd in sockets and call in _IO_CALLS else call] += 1
    return phases


def _wait_listening(sock: str) -> None:
    while True:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(sock)
                return
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.05)


def _stop(strace: subprocess.Popen[bytes]) -> None:
    """Stop the traced server (strace itself ignores SIGTERM while it traces a program)."""
    children = Path(f"/proc/{strace.pid}/task/{strace.pid}/children").read_text().split()
    for pid in children:
        os.kill(int(pid), signal.SIGTERM)
    strace.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--metadata", action="store_true", help="ninep-server --metadata")
    p.add_argument("--sensitive", action="store_true", help="ninep-server --case sensitive")
    p.add_argument("--variant", action="store_true", help="walk to case variants of the names")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        export, sock, trace = Path(tmp, "export"), f"{tmp}/sock", f"{tmp}/trace"
        export.mkdir()
        names = _populate(export, args.files, args.metadata)
        time.sleep(0.05)  # the files' ctimes settled, as in any export not just written
        server = [sys.executable, "-m", "ninep", "--allow-root", "--export", f"C={export}",
                  "--listen", f"unix:{sock}"]  # fmt: skip
        server += ["--metadata"] * args.metadata + ["--case", "sensitive"] * args.sensitive
        proc = subprocess.Popen(["strace", "-f", "-qq", "-o", trace, *server])
        try:
            _wait_listening(sock)
            walked = [name.upper() for name in names] if args.variant else names
            trio.run(_drive, sock, walked)
        finally:
            _stop(proc)
        phases = _phases(Path(trace).read_text())
    kind = "metadata" if args.metadata else "plain"
    kind += ", case-sensitive" if args.sensitive else ", case-insensitive"
    kind += ", case variants" if args.variant else ""
    print(f"{kind}: system calls per request ({args.files} requests each)")
    for name, calls in zip(PHASES, phases, strict=False):
        host = Counter({c: n for c, n in calls.items() if c not in LOOP_CALLS})
        total, on_host = calls.total() / args.files, host.total() / args.files
        common = ", ".join(f"{c} {n / args.files:.2f}" for c, n in host.most_common(8))
        name += " (per listed file)" if name == "readdirattr" else ""
        print(f"  T{name}: {total:.2f} in all, {on_host:.2f} on the host ({common})")


if __name__ == "__main__":
    main()
