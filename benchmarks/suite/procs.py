"""Child processes of a benchmark run: 9P servers, sshd, FUSE mounts; and the page cache.

Every process started here is stopped by the code that started it (a context
manager), and every mount is unmounted, lazily as a last resort.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

TIMEOUT = 60.0  # seconds for a process to start, mount or stop


class ChildError(RuntimeError):
    """A child process did not start, or a mount did not come up."""


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal `proc` and wait for it (SIGKILL if it outlives TIMEOUT)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(TIMEOUT)


@contextlib.contextmanager
def child(command: Sequence[str], log: Path, ready: str) -> Iterator[re.Match[str]]:
    """Run `command` (output to `log`) until its log matches the regex `ready`; yields the
    match; the process is stopped on exit."""
    with open(log, "ab") as out:
        offset = out.tell()  # the log of earlier processes is not this one's
        proc = subprocess.Popen(
            list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (found := re.search(ready, log.read_bytes()[offset:].decode(errors="replace"))):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ChildError(f"{command[0]} did not start:\n{log_tail(log)}")
            time.sleep(0.02)
        yield found
    finally:
        stop(proc)


@contextlib.contextmanager
def ninep_server(export: Path, log: Path, *options: str) -> Iterator[str]:
    """`ninep-server` exporting `export` as C on a free loopback port; yields its address
    (tcp:127.0.0.1:PORT). Started as root it serves as root (`--allow-root`)."""
    as_root = ["--allow-root"] if os.geteuid() == 0 and "--user" not in options else []
    command = [sys.executable, "-m", "ninep", *as_root, "--export", f"C={export}", "-v",
               "--listen", "tcp:127.0.0.1:0", *options]  # fmt: skip
    with child(command, log, r"listening on (tcp:\S+)") as found:
        yield found.group(1)


@contextlib.contextmanager
def diod_server(export: Path, log: Path, *options: str) -> Iterator[str]:
    """Debian's diod exporting `export` (its aname) on a free loopback port; yields
    HOST:PORT. No authentication; every user squashed to the one running it."""
    port = free_port()
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    command = [
        shutil.which("diod") or "/usr/sbin/diod",
        "-f",
        "-n",
        "-S",
        "-U",
        user,
        "-L",
        "stderr",
        "-c",
        "/dev/null",
        "-l",
        f"127.0.0.1:{port}",
        "-e",
        str(export),
        *options,
    ]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_listening(port, proc, log)
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until something listens on 127.0.0.1:`port` (read from /proc/net/tcp: connecting
    would be a client to the server)."""
    want = f"0100007F:{port:04X}"
    deadline = time.monotonic() + TIMEOUT
    while True:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
        if any(f[1] == want and f[3] == "0A" for f in (line.split() for line in table)):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise ChildError(f"{proc.args!r} did not listen on {port}:\n{log_tail(log)}")
        time.sleep(0.02)


@contextlib.contextmanager
def drvfs_mount(address: str, mountpoint: Path, options: str, log: Path) -> Iterator[None]:
    """`drvfs mount --foreground` of export C on `mountpoint`, unmounted on exit."""
    with ready_mount(
        lambda fd: [
            sys.executable,
            "-m",
            "drvfs",
            "mount",
            "--foreground",
            "--ready-fd",
            str(fd),
            "--server",
            address,
            *(["-o", options] if options else []),
            "C:",
            str(mountpoint),
        ],
        mountpoint,
        log,
    ):
        yield


@contextlib.contextmanager
def floor_mount(backing: Path, mountpoint: Path, log: Path) -> Iterator[None]:
    """The do-nothing pyfuse3 filesystem (`benchmarks.floorfs`) of a copy of `backing` in
    memory on `mountpoint`, unmounted on exit."""
    with ready_mount(
        lambda fd: [
            sys.executable,
            "-m",
            "benchmarks.floorfs",
            "--ready-fd",
            str(fd),
            str(backing),
            str(mountpoint),
        ],
        mountpoint,
        log,
    ):
        yield


@contextlib.contextmanager
def ready_mount(command: Callable[[int], list[str]], mountpoint: Path, log: Path) -> Iterator[None]:
    """Run the foreground FUSE daemon `command(fd)`, ready when it writes "ok" on `fd`;
    stopped (it unmounts on SIGTERM) and unmounted on exit."""
    read_fd, write_fd = os.pipe()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command(write_fd), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            pass_fds=(write_fd,),
        )  # fmt: skip
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            ok = select.select([pipe], [], [], TIMEOUT)[0] and pipe.readline().strip() == b"ok"
        if not ok:
            raise ChildError(f"{mountpoint} was not mounted:\n{log_tail(log)}")
        yield
    finally:
        stop(proc)
        unmount(mountpoint)


@contextlib.contextmanager
def fuse_mount(command: Sequence[str], mountpoint: Path, log: Path) -> Iterator[None]:
    """Run a FUSE file system's `command` that returns once `mountpoint` is mounted (sshfs,
    bindfs: they go to the background then); unmount on exit, which ends the daemon."""
    try:
        with open(log, "ab") as out:
            done = subprocess.run(list(command), stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=out, timeout=TIMEOUT, check=False)  # fmt: skip
        if done.returncode != 0 or not is_mounted(mountpoint):
            raise ChildError(f"{command[0]} did not mount (exit {done.returncode}):\n"
                             f"{log_tail(log)}")  # fmt: skip
        yield
    finally:  # also when interrupted while the file system was mounting
        unmount(mountpoint)


def unmount(mountpoint: Path) -> None:
    """Unmount `mountpoint` if mounted: fusermount3 -u (umount for the kernel's mounts),
    retried while busy, then lazily."""
    deadline = time.monotonic() + 10
    while is_mounted(mountpoint):
        tool = ["fusermount3", "-u"] if shutil.which("fusermount3") else ["umount"]
        if subprocess.run([*tool, str(mountpoint)], capture_output=True).returncode == 0:
            continue
        if time.monotonic() > deadline:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
            break
        time.sleep(0.1)


def is_mounted(path: Path) -> bool:
    """Whether something is mounted on `path` (read from mountinfo: never touches `path`)."""
    return os.path.realpath(path.parent) + "/" + path.name in mount_points()


def mount_points() -> list[str]:
    """Every mount point, from mountinfo (its octal escapes undone)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), p) for p in points]


def unmount_all_under(directory: Path) -> None:
    """Unmount whatever is still mounted under `directory` (before it is removed: removing
    a mounted tree would remove through the mount)."""
    prefix = os.path.realpath(directory) + "/"
    for point in reversed(mount_points()):
        if point.startswith(prefix):
            unmount(Path(point))


def drop_caches() -> str | None:
    """`sync; echo 3 > /proc/sys/vm/drop_caches`; None, or why the caches stay (not root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as exc:
        return f"caches not dropped: {exc.strerror} (needs root)"
    return None


def version_of(command: Sequence[str], pattern: str = r"\d+(?:\.\d+)+\S*") -> str:
    """The first version-looking word `command` prints, or "" if it does not run."""
    try:
        out = subprocess.run(list(command), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    found = re.search(pattern, out.stdout + out.stderr)
    return (found.group(found.re.groups and 1) or "") if found else ""


def debian_version(package: str) -> str:
    """The installed version of a Debian package, or ""."""
    command = ["dpkg-query", "-W", "-f=${Version}", package]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""
