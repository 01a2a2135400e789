"""drvfs as a user meets it: mounted with its command lines, the host export seen through it,
the server killed and restarted under it, and unmounted by signal, command, or umount(8)."""

from __future__ import annotations

import errno
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from drvfs.cli import HELPER, HELPERS, helper_script
from ninep.transport import DEFAULT_ADDRESS
from ninep.version import package_version
from volfs.names import STAGING_DIR

from . import posix_checks
from .children import capabilities
from .drvfs_harness import (
    NEEDS_FUSE,
    PYTHON,
    TIMEOUT,
    ServerProcess,
    drvfs_mount,
    in_mount_namespace,
    is_mounted,
    server_alone,
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
    with server_alone(tmp_path / "export") as server:
        yield server


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
        assert nowhere.returncode == 32
        assert (
            nowhere.stderr
            == f"drvfs: mount point {tmp_path / 'missing'}: No such file or directory\n"
        )
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


#: Mount the export twice through mount(8) with the helpers of directory $1 over /sbin (an
#: overlay: mount(8)'s own helpers stay), as -t drvfs and as -t fuse.drvfs; print each mount's
#: type and the file `seen`, and unmount.
_MOUNT_T = """
mount -t overlay overlay -o lowerdir="$1":/sbin /sbin
for type in drvfs fuse.drvfs; do
    mount -t "$type" C: "$2" -o "server=$3"
    awk -v m="$2" '$2 == m { print $3 }' /proc/self/mounts
    cat "$2/seen"; echo
    umount "$2"
done
"""


def test_mount_t_drvfs_through_the_installed_helpers(tmp_path: Path, server: ServerProcess) -> None:
    """`drvfs install-helper` links both helpers; mount(8) runs each by its type (sbin bound
    over /sbin in a namespace of the test's own: the machine's /sbin is never touched)."""
    if shutil.which("mount") is None or not helper_script().exists():
        pytest.skip("needs mount(8) and the installed mount.drvfs script")
    sbin, mnt = tmp_path / "sbin", tmp_path / "mnt"
    sbin.mkdir()
    mnt.mkdir()
    (server.export / "seen").write_text("through mount -t")
    install = [sys.executable, "-m", "drvfs", "install-helper", "--dir", str(sbin)]
    assert subprocess.run(install, capture_output=True, timeout=TIMEOUT).returncode == 0
    for name in HELPERS:
        assert (sbin / name).resolve() == helper_script().resolve()
    done = in_mount_namespace(_MOUNT_T, str(sbin), str(mnt), server.address)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["fuse.drvfs", "through", "mount", "-t"] * 2
    assert not is_mounted(mnt)
    assert subprocess.run([*install, "--remove"], timeout=TIMEOUT).returncode == 0
    assert list(sbin.iterdir()) == []


# ---- what a user gets wrong: one line, and mount(8)'s exit status (issue 29) ----


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)


def _mounts_on(path: Path) -> int:
    """How many mounts are stacked on `path` (from mountinfo: never touches it)."""
    with open("/proc/self/mountinfo") as f:
        return sum(line.split()[4] == str(path) for line in f)


def test_version_names_drvfs_pyfuse3_libfuse_and_the_kernels_fuse_protocol() -> None:
    for command, name in ((DRVFS, "drvfs"), (MOUNT_HELPER, HELPER)):
        done = _run(*command, "--version")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == f"{name} {package_version()} (ninep-volfs)"
        assert re.fullmatch(rf"pyfuse3 {re.escape(version('pyfuse3'))}, libfuse 3\.\d+\.\d+",
                            lines[1]), lines[1]  # fmt: skip
        assert re.fullmatch(r"kernel FUSE protocol 7\.\d+", lines[2]), lines[2]
    with open("/proc/self/mountinfo") as f:
        assert "drvfs-version" not in f.read()  # the probe mounted in a namespace of its own


def test_a_bad_address_or_option_value_exits_1_naming_it(
    tmp_path: Path, server: ServerProcess
) -> None:
    bad = _run(*DRVFS, "mount", "--server", "127.0.0.1:5640", "C:", str(tmp_path))
    assert bad.returncode == 1 and bad.stderr.splitlines()[-1] == (
        "drvfs: argument --server: address '127.0.0.1:5640': unknown scheme '127.0.0.1' "
        "(tcp, unix or fd)"
    )
    bad = _run(
        *DRVFS, "mount", "--server", server.address, "-o", "timeout=abc", "C:", str(tmp_path)
    )
    assert bad.returncode == 1
    assert bad.stderr == "drvfs: mount option 'timeout' expects seconds from 0, not 'abc'\n"
    bad = _run(*MOUNT_HELPER, "C:", str(tmp_path), "-o", "server=127.0.0.1:5640")
    assert bad.returncode == 1 and bad.stderr.startswith(f"{HELPER}: mount option 'server' ")
    assert not is_mounted(tmp_path)


def test_a_second_mount_on_the_same_mount_point_exits_32(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path) as (mnt, server, _):
        by_drvfs = [*DRVFS, "mount", "--server", server.address, "C:", str(mnt)]
        by_helper = [*MOUNT_HELPER, "C:", str(mnt), "-o", f"server={server.address}"]
        for command in (by_drvfs, by_helper):
            done = _run(*command)
            assert done.returncode == 32
            assert done.stderr == (
                f"drvfs: {mnt} is already mounted (C: fuse.drvfs): drvfs umount {mnt} first\n"
            )
        assert _mounts_on(mnt) == 1


def test_a_dead_mount_point_says_how_to_clear_it(tmp_path: Path) -> None:
    """drvfs killed: the mount answers ENOTCONN; `drvfs umount -l` clears it, then it mounts."""
    with drvfs_mount(tmp_path) as (mnt, server, mount):
        assert mount.proc is not None
        mount.proc.kill()
        mount.proc.wait(TIMEOUT)
        assert _errnos_in_child(f"os.stat({str(mnt)!r})") == [errno.ENOTCONN]
        again = [*DRVFS, "mount", "--server", server.address, "C:", str(mnt)]
        done = _run(*again)
        assert done.returncode == 32 and done.stderr == (
            f"drvfs: mount point {mnt}: Transport endpoint is not connected: a FUSE mount whose "
            f"process has ended, or a drvfs one whose server is away; drvfs umount -l {mnt} "
            "clears it\n"
        )
        assert _run(*DRVFS, "umount", "-l", str(mnt)).returncode == 0
        assert not is_mounted(mnt)
        try:
            assert _run(*again).returncode == 0
            assert os.listdir(mnt) == []
        finally:
            _unmount(mnt)


def test_unmounting_what_is_not_mounted_or_busy_says_so(tmp_path: Path) -> None:
    done = _run(*DRVFS, "umount", str(tmp_path))
    assert done.returncode == 32 and done.stderr == f"drvfs: {tmp_path} is not mounted\n"
    with drvfs_mount(tmp_path) as (mnt, _server, _mount):
        inside = subprocess.Popen(["cat"], cwd=mnt, stdin=subprocess.PIPE)  # works in mnt
        try:
            busy = _run(*DRVFS, "umount", str(mnt))
        finally:
            assert inside.stdin is not None
            inside.stdin.close()
            inside.wait(TIMEOUT)
        assert busy.returncode == 32 and busy.stderr == (
            f"drvfs: cannot unmount {mnt}: it is busy (a process has a file open there or works "
            f"in it: fuser -vm {mnt}); drvfs umount -l {mnt} detaches it now and ends it once "
            "unused\n"
        )
        assert is_mounted(mnt)


#: Run "$@" with a /dev whose log is the symlink in directory $1 (an overlay: the devices stay),
#: then unmount $MNT.
_WITH_DEV_LOG = """
mount -t overlay overlay -o lowerdir="$1":/dev /dev
shift
"$@"
umount "$MNT"
"""


def test_a_background_drvfs_logs_to_syslog_and_debug_is_its_own(
    tmp_path: Path, server: ServerProcess
) -> None:
    """No --log: the background drvfs logs to /dev/log (here a socket of the test's, in a
    namespace of its own); `-o debug` logs at debug level, and the server never sees it."""
    mnt, dev = tmp_path / "mnt", tmp_path / "dev"
    mnt.mkdir()
    dev.mkdir()
    records: list[str] = []

    def receive(syslog: socket.socket) -> None:  # as syslogd does: a full socket blocks drvfs
        while not any(f"unmounted {mnt}" in r for r in records):
            records.append(syslog.recv(65536).decode())

    with short_dir() as sockets, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslog:
        syslog.bind(str(sockets / "log"))
        syslog.settimeout(TIMEOUT)  # a hang guard
        (dev / "log").symlink_to(sockets / "log")
        receiver = threading.Thread(target=receive, args=(syslog,))
        receiver.start()
        mount = [*DRVFS, "mount", "--server", server.address, "-o", "debug", "C:", str(mnt)]
        env = {**os.environ, "MNT": str(mnt)}
        done = in_mount_namespace(_WITH_DEV_LOG, str(dev), *mount, env=env)
        receiver.join()
    assert done.returncode == 0, done.stderr
    assert any(f"mounted C: from {server.address} on {mnt}" in r for r in records), records
    daemon_debug = "<31>drvfs["  # facility daemon (3) * 8 + priority debug (7)
    assert any(r.startswith(daemon_debug) and "DEBUG -> Tattach" in r for r in records), records
    assert not any("unknown attach option" in line for line in server.log)
