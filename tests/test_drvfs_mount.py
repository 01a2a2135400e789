"""drvfs as a user meets it: mounted with its command lines, the host export seen through it,
the server killed and restarted under it, and unmounted by signal, command, or umount(8)."""

from __future__ import annotations

import errno
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drvfs.cli import helper_script
from ninep.transport import DEFAULT_ADDRESS
from volfs.names import STAGING_DIR

from . import posix_checks
from .children import capabilities
from .drvfs_harness import (
    NEEDS_FUSE,
    PYTHON,
    TIMEOUT,
    ServerProcess,
    drvfs_mount,
    is_mounted,
    short_dir,
)
from .posix_checks import RENAME_EXCHANGE, renameat2

pytestmark = NEEDS_FUSE

DRVFS = [PYTHON, "-m", "drvfs"]
MOUNT_HELPER = [PYTHON, "-c", "import sys; from drvfs.cli import mount_helper as m; sys.exit(m())"]


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[tuple[Path, ServerProcess]]:
    with drvfs_mount(tmp_path) as (mountpoint, server, _mount):
        yield mountpoint, server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server alone, for tests that mount by themselves."""
    (tmp_path / "export").mkdir()
    with short_dir() as sockets:
        server = ServerProcess(tmp_path / "export", sockets / "9p.sock")
        server.start()
        try:
            yield server
        finally:
            server.stop()


_ERRNO_OF = """
import os
def errno_of(fn):
    try:
        fn()
    except OSError as e:
        print(e.errno)
    else:
        print(0)
"""


def _errnos_in_child(*calls: str) -> list[int]:
    """The errno (0: success) of each Python expression `calls` evaluates, in a child process:
    a hang fails the test instead of blocking it."""
    code = _ERRNO_OF + "".join(f"errno_of(lambda: {call})\n" for call in calls)
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    return [int(n) for n in done.stdout.split()]


def _drvfs_pids(mountpoint: Path) -> list[int]:
    """Processes serving `mountpoint` (their command line names it)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"drvfs" in b" ".join(argv) and str(mountpoint).encode() in argv:
                pids.append(int(entry))
    return pids


def _wait_exit(pid: int) -> None:
    """Wait until process `pid` (not our child) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        assert select.select([fd], [], [], TIMEOUT)[0], f"process {pid} did not exit"
    finally:
        os.close(fd)


# ---- the export seen through the mount ----


def test_inode_numbers_are_the_servers_qid_paths(mounted: tuple[Path, ServerProcess]) -> None:
    mnt, server = mounted
    (mnt / "d").mkdir()
    (mnt / "d" / "f").write_text("x")
    os.symlink("f", mnt / "d" / "l")
    assert os.stat(mnt).st_ino == 1  # FUSE's root
    for rel in ("d", "d/f", "d/l"):
        assert os.lstat(mnt / rel).st_ino == os.lstat(server.export / rel).st_ino  # volfs: host ino


def test_host_and_mount_see_the_same_files(mounted: tuple[Path, ServerProcess]) -> None:
    mnt, server = mounted
    data = os.urandom(3 << 20)
    (mnt / "from-mount").write_bytes(data)
    assert (server.export / "from-mount").read_bytes() == data
    (server.export / "from-host").write_bytes(data[::-1])
    assert (mnt / "from-host").read_bytes() == data[::-1]
    os.chmod(mnt / "from-mount", 0o444)  # no metadata: only the host's write bits change
    os.utime(mnt / "from-mount", ns=(5, 6_000_000_007))
    st = os.stat(server.export / "from-mount")
    assert (st.st_mode & 0o222, st.st_mtime_ns) == (0, 6_000_000_007)
    assert os.stat(mnt / "from-mount").st_mode & 0o777 == 0o555
    assert sorted(os.listdir(mnt)) == sorted(os.listdir(server.export))


def test_open_finds_a_file_replaced_or_removed_meanwhile(
    mounted: tuple[Path, ServerProcess],
) -> None:
    mnt, server = mounted
    (server.export / "f").write_text("old")
    assert (mnt / "f").read_text() == "old"  # the kernel now caches the name (entry_timeout)
    (server.export / "f").unlink()
    (server.export / "f").write_text("new file")  # another inode under the same name
    assert (mnt / "f").read_text() == "new file"
    (server.export / "f").unlink()
    with open(mnt / "f", "a") as f:  # O_CREAT: made again, not written into the removed one
        f.write("made again")
    assert (server.export / "f").read_text() == "made again"


def _hide_a_write(host: Path) -> None:
    """Rewrite `host` with as many other bytes, then put its mtime back."""
    st = host.stat()
    host.write_bytes(b"B" * st.st_size)
    os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_page_cache_is_kept_while_mtime_and_size_do_not_change(tmp_path: Path) -> None:
    """Without change notification (`covered_timeout=0`), the mtime and size are all
    drvfs goes by (keep_cache)."""
    with drvfs_mount(tmp_path, "covered_timeout=0") as (mnt, server, _):
        host = server.export / "cached"
        host.write_bytes(b"A" * 8192)
        assert (mnt / "cached").read_bytes() == b"A" * 8192
        _hide_a_write(host)
        assert (mnt / "cached").read_bytes() == b"A" * 8192  # served from the page cache
        st = host.stat()
        os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        assert (mnt / "cached").read_bytes() == b"B" * 8192  # a new mtime: the cache is dropped


def test_a_host_write_is_seen_by_its_notification_whatever_the_mtime(
    mounted: tuple[Path, ServerProcess],
) -> None:
    """With change notification (the default), the host's write itself drops the pages."""
    mnt, server = mounted
    host = server.export / "cached"
    host.write_bytes(b"A" * 8192)
    assert (mnt / "cached").read_bytes() == b"A" * 8192
    _hide_a_write(host)
    end = time.monotonic() + TIMEOUT  # a hang guard
    while (mnt / "cached").read_bytes() != b"B" * 8192:
        assert time.monotonic() < end, f"the host's write was not seen within {TIMEOUT} s"
        time.sleep(0.005)


def test_rename_exchange_is_refused(mounted: tuple[Path, ServerProcess]) -> None:
    mnt, _ = mounted
    (mnt / "a").write_text("a")
    (mnt / "b").write_text("b")
    with posix_checks.raises_errno(errno.EINVAL):
        renameat2(mnt / "a", mnt / "b", RENAME_EXCHANGE)
    assert (mnt / "a").read_text() == "a" and (mnt / "b").read_text() == "b"


def test_server_errors_reach_the_application(mounted: tuple[Path, ServerProcess]) -> None:
    mnt, server = mounted
    (server.export / "dir").mkdir()
    (server.export / "dir" / "f").write_text("")
    with posix_checks.raises_errno(errno.ENOTEMPTY):
        os.rmdir(mnt / "dir")
    with posix_checks.raises_errno(errno.ENAMETOOLONG):
        os.mkdir(mnt / ("n" * 300))


WRITEBACK_CHECKS = ("write_read_and_offsets", "truncate", "open_flags", "mmap", "rename_open_file",
                    "unlink_while_open", "unlinked_file_through_its_descriptor",
                    "temporary_files", "renamed_and_replaced_while_open", "concurrent_io",
                    "tar_round_trip", "locks_between_processes", "sqlite_two_writers")  # fmt: skip
UNCACHED_CHECKS = ("write_read_and_offsets", "open_flags", "directories", "rename", "hard_links",
                   "symlinks", "unlink_while_open", "unlinked_file_through_its_descriptor",
                   "temporary_files", "renamed_and_replaced_while_open",
                   "removed_directory_still_open")  # fmt: skip


@pytest.mark.parametrize(
    ("options", "checks"),
    [
        ("writeback_cache,metadata", WRITEBACK_CHECKS),
        ("attr_timeout=0,entry_timeout=0", UNCACHED_CHECKS),
    ],
    ids=["writeback_cache", "no_attr_cache"],
)
def test_other_cache_settings(tmp_path: Path, options: str, checks: tuple[str, ...]) -> None:
    with drvfs_mount(tmp_path, options) as (mnt, server, _):
        for name in checks:
            (mnt / name).mkdir()
            posix_checks.CHECKS[name](mnt / name)
        made = set(os.listdir(server.export)) - {STAGING_DIR}  # the server's own, with metadata
        assert sorted(made) == sorted(checks)


# ---- faults ----


def test_server_killed_and_restarted_under_the_mount(mounted: tuple[Path, ServerProcess]) -> None:
    mnt, server = mounted
    data = os.urandom(4 << 20)
    (mnt / "kept.bin").write_bytes(data)
    (mnt / "dir").mkdir()
    (mnt / "dir" / "f").write_text("inside")
    with open(mnt / "kept.bin", "r+b", buffering=0) as f:
        assert f.read(4096) == data[:4096]

        server.kill()
        lost = _errnos_in_child(
            f"os.listdir({str(mnt)!r})",
            f"os.stat({str(mnt / 'never-seen')!r})",
            f"open({str(mnt / 'new')!r}, 'w')",
        )
        assert lost and all(e in (errno.ENOTCONN, errno.EIO) for e in lost), lost

        server.start()
        assert sorted(os.listdir(mnt)) == ["dir", "kept.bin"]
        f.seek(3 << 20)
        assert f.read(4096) == data[3 << 20 : (3 << 20) + 4096]  # open across the restart
        f.seek(100)
        f.write(b"after the restart")
    assert (server.export / "kept.bin").read_bytes()[100:117] == b"after the restart"
    assert (mnt / "dir" / "f").read_text() == "inside"
    (mnt / "new").write_text("created")
    assert (server.export / "new").read_text() == "created"


# ---- mounting and unmounting ----


def test_sigterm_unmounts_cleanly(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path) as (mnt, _server, mount):
        (mnt / "f").write_text("x")
        assert is_mounted(mnt)
        assert mount.stop() == 0
        assert not is_mounted(mnt)


def test_drvfs_umount_ends_the_mount_process(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path) as (mnt, _server, mount):
        done = subprocess.run([*DRVFS, "umount", str(mnt)], timeout=TIMEOUT)
        assert done.returncode == 0
        assert mount.proc is not None and mount.proc.wait(TIMEOUT) == 0
        assert not is_mounted(mnt)


def test_mount_helper_mounts_in_the_background(tmp_path: Path, server: ServerProcess) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (server.export / "hello").write_text("hi")
    command = [*MOUNT_HELPER, "C:", str(mnt), "-o", f"server={server.address},noatime"]
    try:
        assert subprocess.run(command, timeout=TIMEOUT).returncode == 0
        assert is_mounted(mnt)
        assert (mnt / "hello").read_text() == "hi"
        pids = _drvfs_pids(mnt)
        assert len(pids) == 1
        assert subprocess.run(["umount", str(mnt)], timeout=TIMEOUT).returncode == 0
        _wait_exit(pids[0])
        assert not is_mounted(mnt)
    finally:
        if is_mounted(mnt):
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_mount_helper_exit_codes(tmp_path: Path, server: ServerProcess) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()

    def helper(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MOUNT_HELPER, *args], capture_output=True, text=True,
                              timeout=TIMEOUT)  # fmt: skip

    try:
        bad = helper("C:", str(mnt), "-o", f"server={server.address},metadata,bogus")
        assert bad.returncode == 1, bad.stderr
        assert "refused the options 'metadata;bogus' of export 'C': Invalid argument" in bad.stderr
        away = helper("C:", str(mnt), "-o", f"server=unix:{tmp_path}/nobody-there")
        assert away.returncode == 32 and "cannot reach the 9P server" in away.stderr
        refused = helper("Z:", str(mnt), "-o", f"server={server.address}")  # no such export
        assert refused.returncode == 32 and "refused 'Z': No such file" in refused.stderr
        nowhere = helper("C:", str(tmp_path / "missing"), "-o", f"server={server.address}")
        assert nowhere.returncode == 32 and "not a directory" in nowhere.stderr
        fake = helper("C:", str(mnt), "-f", "-o", f"server={server.address}")
        assert fake.returncode == 0 and not is_mounted(mnt)
    finally:
        _unmount(mnt)


def _unmount(mnt: Path) -> None:
    """Nothing left of a mount a failed test made on `mnt`: unmounted, its drvfs ended."""
    if is_mounted(mnt):
        pids = _drvfs_pids(mnt)
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        for pid in pids:
            _wait_exit(pid)


SIOCSIFFLAGS, IFF_UP = 0x8914, 0x1  # <linux/sockios.h>, <net/if.h>
_LOOPBACK_UP = (  # then runs the command in its arguments
    "import fcntl, os, socket, struct, sys; "
    f"fcntl.ioctl(socket.socket(), {SIOCSIFFLAGS}, struct.pack('16sH22x', b'lo', {IFF_UP})); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)
CAP_SYS_ADMIN = 21
NEEDS_SYS_ADMIN = pytest.mark.skipif(
    not capabilities() >> CAP_SYS_ADMIN & 1, reason="unshare -n needs CAP_SYS_ADMIN"
)


@NEEDS_SYS_ADMIN
def test_the_mount_helpers_default_server_is_the_servers(tmp_path: Path) -> None:
    """Run in a network namespace of its own (util-linux's unshare), with its loopback up
    (else a connect fails ENETUNREACH), where nothing listens on the default address."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    command = ["unshare", "--net", "--", PYTHON, "-c", _LOOPBACK_UP, *MOUNT_HELPER, "C:", str(mnt)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 32, done.stderr
        assert f"cannot reach the 9P server at {DEFAULT_ADDRESS}: " in done.stderr
        assert not is_mounted(mnt)
    finally:
        _unmount(mnt)


def test_drvfs_mount_usage_errors_exit_1(tmp_path: Path, server: ServerProcess) -> None:
    done = subprocess.run([*DRVFS, "mount", "--server", server.address, "-o", "case=upper",
                           "C", str(tmp_path)], capture_output=True, text=True,
                          timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 1 and "refused the options 'case=upper'" in done.stderr
    assert not is_mounted(tmp_path)
    done = subprocess.run([*DRVFS, "frobnicate"], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 1


def test_mount_t_drvfs_through_the_installed_helper(tmp_path: Path, server: ServerProcess) -> None:
    link = Path("/sbin") / "mount.drvfs"
    if shutil.which("mount") is None or not helper_script().exists():
        pytest.skip("needs mount(8) and the installed mount.drvfs script")
    if link.exists() or link.is_symlink():
        pytest.skip(f"{link} already exists: not touching it")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (server.export / "seen").write_text("through mount -t drvfs")
    install = [sys.executable, "-m", "drvfs", "install-helper", "--dir", "/sbin"]
    try:
        assert subprocess.run(install, capture_output=True, timeout=TIMEOUT).returncode == 0
        assert link.resolve() == helper_script().resolve()
        command = ["mount", "-t", "drvfs", "C:", str(mnt), "-o", f"server={server.address}"]
        assert subprocess.run(command, timeout=TIMEOUT).returncode == 0
        assert (mnt / "seen").read_text() == "through mount -t drvfs"
        pids = _drvfs_pids(mnt)
        assert subprocess.run(["umount", str(mnt)], timeout=TIMEOUT).returncode == 0
        for pid in pids:
            _wait_exit(pid)
    finally:
        if is_mounted(mnt):
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        subprocess.run([*install, "--remove"], check=False)
    assert not link.exists() and not link.is_symlink()
