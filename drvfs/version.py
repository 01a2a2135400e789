"""`drvfs --version`: the package's version, pyfuse3's and libfuse's, and the kernel's FUSE
protocol, which only a mount tells: a throw-away one, made in a mount namespace of its own
(root, or an unprivileged user namespace), whose INIT request is read and never answered."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import struct
import tempfile
from importlib.metadata import PackageNotFoundError, version

from ninep.version import version_line

CLONE_NEWNS, CLONE_NEWUSER = 0x20000, 0x10000000  # <linux/sched.h>
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000  # <linux/mount.h>
FUSE_INIT = 26  # <linux/fuse.h>
_IN_HEADER = struct.Struct("=IIQQIIII")  # fuse_in_header: len, opcode, unique, nodeid, ...
_INIT_IN = struct.Struct("=II")  # fuse_init_in: major, minor, ...
PROBE_WAIT = 10.0  # seconds for the kernel's INIT to arrive: a hang guard, never reached


def report(command: str) -> str:
    """What `COMMAND --version` prints."""
    try:
        pyfuse3 = version("pyfuse3")
    except PackageNotFoundError:
        pyfuse3 = "not installed"
    kernel = kernel_fuse_protocol()
    return "\n".join([
        version_line(command),
        f"pyfuse3 {pyfuse3}, libfuse {libfuse_version() or 'unknown'}",
        f"kernel FUSE protocol {kernel or 'unknown (no FUSE mount can be made here to ask)'}",
    ])  # fmt: skip


def libfuse_version() -> str | None:
    """The version of the libfuse 3 pyfuse3 runs on (`fuse_pkgversion()`)."""
    name = ctypes.util.find_library("fuse3")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.fuse_pkgversion.restype = ctypes.c_char_p
    found: bytes = lib.fuse_pkgversion()
    return found.decode()


def kernel_fuse_protocol() -> str | None:
    """`MAJOR.MINOR` of the FUSE protocol this kernel speaks, or None if no mount can be made."""
    where = tempfile.mkdtemp(prefix="drvfs-version-")
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child leaves by os._exit)
            try:
                os.close(read_end)
                os.write(write_end, _probe(where).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            answer = pipe.read().decode()
        os.waitpid(pid, 0)
    finally:
        os.rmdir(where)
    return answer or None


def _probe(where: str) -> str:
    """In a child process: mount FUSE on `where` in a new mount namespace, read the INIT."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    user_namespace = os.geteuid() != 0
    if libc.unshare(CLONE_NEWNS | (CLONE_NEWUSER if user_namespace else 0)) != 0:
        return ""
    with contextlib.suppress(OSError):
        if user_namespace:  # be root in it, as the caller's uid outside
            for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"),
                               ("gid_map", f"0 {gid} 1")):  # fmt: skip
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            return ""
        fd = os.open("/dev/fuse", os.O_RDWR)
        options = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
        if libc.mount(b"drvfs-version", where.encode(), b"fuse", MS_NOSUID | MS_NODEV, options):
            return ""
        if select.select([fd], [], [], PROBE_WAIT)[0]:
            data = os.read(fd, 1 << 16)
            _, opcode, *_ = _IN_HEADER.unpack_from(data)
            if opcode == FUSE_INIT:
                major, minor = _INIT_IN.unpack_from(data, _IN_HEADER.size)
                return f"{major}.{minor}"
    return ""
