"""Build the guest initramfs: a cached base archive plus a small per-run archive.

The kernel unpacks concatenated cpio archives in order, so each boot uses
``base + run``: the base holds busybox, the host tools and their libraries,
the modules and ``/init``; the run archive holds the workload and its settings.
Archives are written in cpio "newc" format by this module (no ``cpio`` tool needed).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shlex
import stat
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .kernel import Kernel, cache_dir, cache_lock, fetch_busybox, fetch_kernel

HERE = Path(__file__).resolve().parent

#: Host binaries copied into the guest (with the libraries ``ldd`` lists for them).
GUEST_TOOLS: tuple[str, ...] = (
    "/usr/bin/git",
    "/usr/bin/flock",
    "/usr/bin/getfattr",
    "/usr/bin/setfattr",
    "/usr/bin/sqlite3",
    "/usr/bin/tar",
    "/usr/bin/sha256sum",
)

#: Host data trees copied as they are (only those that exist).
GUEST_DATA: tuple[str, ...] = ("/usr/share/git-core/templates",)

#: The guest's users and groups (tests/test_guest_identity.py, workloads/identity.sh):
#: ``member`` (uid 1000) is also in ``guestonly`` (gid 3000), a group no host
#: knows; ``stranger`` has uid 65533, a uid no host knows (65534 is nobody);
#: ``grouped`` (uid 65532, unknown to the host too) is in the guest's group 65534.
GUEST_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "member:x:1000:1000:in a guest-only group:/tmp:/bin/sh\n"
    "stranger:x:65533:65533:a uid the host does not know:/tmp:/bin/sh\n"
    "grouped:x:65532:65532:unknown to the host, in group 65534:/tmp:/bin/sh\n"
)
GUEST_GROUP = ("root:x:0:\nmember:x:1000:\nguestonly:x:3000:member\nstranger:x:65533:\n"
               "grouped:x:65532:\nnogroup:x:65534:grouped\n")  # fmt: skip

#: Where /init finds the modules and their load order inside the guest.
MODULE_DIR = "/usr/lib/modules/guest"
MODULE_LIST = "/etc/guest/modules"
RUN_CONF = "/etc/guest/run.conf"
WORKLOAD = "/etc/guest/workload.sh"


@dataclass
class Entry:
    """One cpio member."""

    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


@dataclass
class Archive:
    """An in-memory cpio newc archive of absolute paths (parents added automatically)."""

    entries: dict[str, Entry] = field(default_factory=dict)

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        """Add a directory and its parents."""
        path = _clean(path)
        if path == "" or path in self.entries:
            return
        self.add_dir(os.path.dirname(path))
        self.entries[path] = Entry(stat.S_IFDIR | mode)

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file (replacing any earlier one)."""
        path = _clean(path)
        self.add_dir(os.path.dirname(path))
        self.entries[path] = Entry(stat.S_IFREG | (mode & 0o7777), data)

    def add_symlink(self, path: str, target: str) -> None:
        """Add a symbolic link."""
        path = _clean(path)
        self.add_dir(os.path.dirname(path))
        self.entries[path] = Entry(stat.S_IFLNK | 0o777, target.encode())

    def add_chardev(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        """Add a character device node."""
        path = _clean(path)
        self.add_dir(os.path.dirname(path))
        self.entries[path] = Entry(stat.S_IFCHR | mode, rdev=(major, minor))

    def __contains__(self, path: str) -> bool:
        return _clean(path) in self.entries

    # -- host files -------------------------------------------------------------

    def add_host_dir(self, path: str) -> str:
        """Mirror a host directory path (keeping symlinked components); return its real path."""
        if path in ("", "/"):
            return "/"
        parent = self.add_host_dir(os.path.dirname(path.rstrip("/")))
        full = os.path.join(parent, os.path.basename(path.rstrip("/")))
        if os.path.islink(full):
            target = os.readlink(full)
            self.add_symlink(full, target)
            return self.add_host_dir(os.path.normpath(os.path.join(parent, target)))
        self.add_dir(full, stat.S_IMODE(os.stat(full).st_mode))
        return full

    def add_host_path(self, path: str) -> None:
        """Copy a host file, symlink (and its target) or directory tree into the archive."""
        parent = self.add_host_dir(os.path.dirname(path))
        full = os.path.join(parent, os.path.basename(path))
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(full)
            self.add_symlink(full, target)
            self.add_host_path(os.path.normpath(os.path.join(parent, target)))
        elif stat.S_ISDIR(st.st_mode):
            self.add_dir(full, stat.S_IMODE(st.st_mode))
            for child in sorted(os.listdir(full)):
                self.add_host_path(os.path.join(full, child))
        elif stat.S_ISREG(st.st_mode):
            self.add_file(full, Path(full).read_bytes(), stat.S_IMODE(st.st_mode))

    def add_host_binary(self, path: str) -> None:
        """Copy a dynamically linked host binary with the libraries and loader it needs."""
        self.add_host_path(path)
        for lib in shared_libraries(path):
            self.add_host_path(lib)

    # -- output -------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialise as a cpio newc archive (parents before children)."""
        out = bytearray()
        for ino, name in enumerate(sorted(self.entries), start=1):
            entry = self.entries[name]
            _member(out, name, entry.mode, entry.data, ino, entry.rdev)
        _member(out, "TRAILER!!!", 0, b"", 0, (0, 0))
        return bytes(out)


def _clean(path: str) -> str:
    """Archive member name of an absolute path (no leading slash)."""
    return os.path.normpath("/" + path).lstrip("/")


def _member(
    out: bytearray, name: str, mode: int, data: bytes, ino: int, rdev: tuple[int, int]
) -> None:
    """Append one newc header, name and data (each padded to 4 bytes)."""
    encoded = name.encode() + b"\0"
    fields = (
        ino,
        mode,
        0,
        0,
        2 if stat.S_ISDIR(mode) else 1,
        0,
        len(data),
        0,
        0,
        rdev[0],
        rdev[1],
        len(encoded),
        0,
    )
    out += b"070701" + "".join(f"{v:08x}" for v in fields).encode()
    out += encoded
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)


def shared_libraries(binary: str) -> list[str]:
    """Return the shared libraries (and dynamic loader) that ``ldd`` lists for a binary."""
    proc = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if "not a dynamic executable" in proc.stdout + proc.stderr:
            return []
        raise RuntimeError(f"ldd {binary} failed: {proc.stderr}")
    libs = []
    for line in proc.stdout.splitlines():
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            libs.append(match.group(1))
    return libs


def _busybox_applets(busybox: Path) -> list[str]:
    """Return the install paths of all busybox applets (``busybox --list-full``)."""
    proc = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True)
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def build_base(kernel: Kernel, busybox: Path) -> Archive:
    """Assemble the base archive: busybox, host tools, modules, /init and config."""
    arc = Archive()
    arc.add_dir("/tmp", 0o1777)
    for top in ("/proc", "/sys", "/dev", "/mnt/c", "/root", "/run", "/var/tmp"):
        arc.add_dir(top)
    arc.add_chardev("/dev/console", 5, 1)
    # Host tools first, so busybox applets never shadow them.
    for tool in GUEST_TOOLS:
        arc.add_host_binary(tool)
    for tree in GUEST_DATA:
        if os.path.exists(tree):
            arc.add_host_path(tree)
    if os.path.exists("/usr/lib/git-core"):
        arc.add_host_dir("/usr/lib/git-core")
        arc.add_symlink("/usr/lib/git-core/git", "/usr/bin/git")
    # busybox, with a symlink per applet unless a host tool already sits there.
    bin_dir = arc.add_host_dir("/usr/bin")
    arc.add_file(os.path.join(bin_dir, "busybox"), busybox.read_bytes(), 0o755)
    tool_names = {os.path.basename(t) for t in GUEST_TOOLS}
    for applet in _busybox_applets(busybox):
        name = os.path.basename(applet)
        real = os.path.join(arc.add_host_dir("/" + os.path.dirname(applet)), name)
        if name in tool_names or real in arc:
            continue
        arc.add_symlink(real, "/usr/bin/busybox")
    # Modules, in load order.
    names = []
    for module, ko in kernel.modules:
        arc.add_file(f"{MODULE_DIR}/{module}.ko", ko)
        names.append(module)
    arc.add_file(MODULE_LIST, ("\n".join(names) + "\n").encode())
    arc.add_file("/etc/passwd", GUEST_PASSWD.encode())
    arc.add_file("/etc/group", GUEST_GROUP.encode())
    arc.add_file("/etc/hostname", b"guest\n")
    arc.add_file("/init", (HERE / "init.sh").read_bytes(), 0o755)
    arc.add_file("/etc/guest/lib.sh", (HERE / "workloads" / "lib.sh").read_bytes())
    return arc


@functools.cache
def base_initramfs() -> Path:
    """Return the path of the cached base archive (built once per content)."""
    kernel = fetch_kernel()
    data = build_base(kernel, fetch_busybox()).to_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    path = cache_dir() / "initramfs" / f"base-{kernel.version}-{digest}.cpio"
    with cache_lock():
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            for old in path.parent.glob("base-*.cpio"):
                old.unlink()
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.rename(path)
    return path


def run_conf_text(mount_options: str, env: Mapping[str, str] | None = None) -> str:
    """The guest's run.conf: shell assignments that /init sources (values quoted)."""
    conf = [f"MOUNT_OPTIONS={shlex.quote(mount_options)}"]
    for key, value in (env or {}).items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"bad environment variable name {key!r}")
        conf.append(f"export {key}={shlex.quote(value)}")
    return "\n".join(conf) + "\n"


def run_archive(
    workload: str,
    mount_options: str,
    env: Mapping[str, str] | None = None,
    files: Mapping[str, bytes] | None = None,
) -> bytes:
    """Build the per-run archive: the workload script and its settings."""
    arc = Archive()
    arc.add_file(RUN_CONF, run_conf_text(mount_options, env).encode())
    arc.add_file(WORKLOAD, workload.encode(), 0o755)
    for path, data in (files or {}).items():
        arc.add_file(path, data)
    return arc.to_bytes()


def write_initrd(dest: Path, parts: Iterable[bytes | Path]) -> Path:
    """Concatenate archives (bytes or files) into one initrd file."""
    with open(dest, "wb") as out:
        for part in parts:
            out.write(part.read_bytes() if isinstance(part, Path) else part)
    return dest
