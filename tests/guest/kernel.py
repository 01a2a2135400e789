"""Fetch and cache a Debian kernel, its 9p/virtio modules and a static busybox.

Everything lands under ``$NINEP_GUEST_CACHE`` (default ``~/.cache/ninep-guest``);
only the first run downloads (``apt-get download``) and unpacks (``dpkg -x``).
"""

from __future__ import annotations

import fcntl
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: Modules the guest needs for virtio-net networking and a 9p mount over TCP, in load order.
GUEST_MODULES: tuple[str, ...] = (
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    "netfs",
    "fscache",
    "9pnet",
    "9pnet_fd",
    "9p",
)

#: Host commands the harness needs, with the Debian package providing each.
HOST_COMMANDS: dict[str, str] = {
    "qemu-system-x86_64": "qemu-system-x86",
    "git": "git",
    "getfattr": "attr",
    "setfattr": "attr",
    "sqlite3": "sqlite3",
    "flock": "util-linux",
    "tar": "tar",
    "sha256sum": "coreutils",
    "diod": "diod",
}


def cache_dir() -> Path:
    """Return the cache root (``$NINEP_GUEST_CACHE`` or ``~/.cache/ninep-guest``)."""
    env = os.environ.get("NINEP_GUEST_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "ninep-guest"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def cache_lock(name: str = "lock") -> Iterator[None]:
    """Hold an exclusive lock on the cache so parallel test workers do not race."""
    with open(cache_dir() / f".{name}", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: Sequence[str], cwd: Path | None = None) -> str:
    """Run a command, returning stdout; raise with its stderr on failure."""
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def _apt_updated() -> bool:
    """Tell whether apt has package lists at all."""
    lists = Path("/var/lib/apt/lists")
    return lists.is_dir() and any(
        p.name.endswith("_Packages") or "_Packages." in p.name for p in lists.iterdir()
    )


def apt_update_if_needed(force: bool = False) -> None:
    """Run ``apt-get update`` when the package lists are missing (or when forced)."""
    if force or not _apt_updated():
        _run(["apt-get", "update", "-q"])


def ensure_host_packages(commands: Sequence[str] = tuple(HOST_COMMANDS)) -> None:
    """Install the Debian packages for missing host commands (root only).

    Set ``NINEP_GUEST_NO_INSTALL=1`` to forbid installing; then a missing
    command raises instead.
    """
    missing = sorted({HOST_COMMANDS[c] for c in commands if shutil.which(c) is None})
    if not missing:
        return
    if os.environ.get("NINEP_GUEST_NO_INSTALL") == "1" or os.geteuid() != 0:
        raise RuntimeError(f"missing host packages: {' '.join(missing)}")
    with cache_lock("apt"):
        apt_update_if_needed()
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


def resolve_kernel_package() -> str:
    """Return the versioned kernel package that ``linux-image-amd64`` depends on.

    Without apt lists (and with ``apt-get update`` failing), fall back to the
    newest kernel already unpacked in the cache.
    """
    detail = ""
    for attempt in range(2):
        proc = subprocess.run(
            ["apt-cache", "depends", "linux-image-amd64"],
            capture_output=True,
            text=True,
            check=False,
        )
        found = re.findall(r"Depends:\s*(linux-image-\S+)", proc.stdout)
        if found:
            return str(found[0])
        detail = f"{proc.stdout}\n{proc.stderr}"
        if attempt == 0:
            try:
                apt_update_if_needed(force=True)
            except RuntimeError as exc:
                detail += f"\n{exc}"
                break
    cached = sorted(p.parent.name for p in (cache_dir() / "pkg").glob("linux-image-*/.complete"))
    if cached:
        return cached[-1]
    raise RuntimeError(f"cannot resolve linux-image-amd64:\n{detail}")


def _download(package: str, debs: Path) -> Path:
    """``apt-get download`` a package into ``debs`` (updating stale lists once)."""
    for attempt in range(2):
        if attempt == 0:
            apt_update_if_needed()
        else:
            apt_update_if_needed(force=True)
        proc = subprocess.run(
            ["apt-get", "download", "-q", package],
            cwd=debs,
            capture_output=True,
            text=True,
            check=False,
        )
        candidates = sorted(debs.glob(f"{package}_*.deb"))
        if proc.returncode == 0 and candidates:
            return candidates[-1]
    raise RuntimeError(f"apt-get download {package} failed:\n{proc.stdout}\n{proc.stderr}")


def _fetch_package(package: str) -> Path:
    """Download and unpack a Debian package once; return the unpack dir.

    The unpacked tree is kept in the cache; the ``.deb`` is removed once unpacked.
    """
    root = cache_dir()
    dest = root / "pkg" / package
    if (dest / ".complete").exists():
        return dest
    debs = root / "debs"
    debs.mkdir(exist_ok=True)
    deb = _download(package, debs)
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{package}.", dir=dest.parent))
    _run(["dpkg", "-x", str(deb), str(tmp)])
    tmp.rename(dest)
    (dest / ".complete").touch()
    deb.unlink()
    return dest


def read_modinfo(ko: bytes) -> dict[str, str]:
    """Parse the ``.modinfo`` section of an ELF64 kernel module (like ``modinfo``)."""
    if ko[:4] != b"\x7fELF" or ko[4] != 2:
        raise ValueError("not an ELF64 object")
    (shoff,) = struct.unpack_from("<Q", ko, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ko, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, off, size = struct.unpack_from(
            "<IIQQQQ", ko, shoff + i * shentsize
        )
        return name, off, size

    _, stroff, _ = section(shstrndx)
    info: dict[str, str] = {}
    for i in range(shnum):
        name_off, off, size = section(i)
        name = ko[stroff + name_off : ko.index(b"\0", stroff + name_off)]
        if name != b".modinfo":
            continue
        for entry in ko[off : off + size].split(b"\0"):
            key, sep, value = entry.decode(errors="replace").partition("=")
            if sep:
                info.setdefault(key, value)
    return info


def _read_ko(path: Path) -> bytes:
    """Return a module's bytes, decompressing ``.ko.xz`` (``.ko.zst`` via the zstd tool)."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    if path.name.endswith(".gz"):
        import gzip

        return gzip.decompress(data)
    return data


def _norm(name: str) -> str:
    """Normalise a module name the way the kernel does (``-`` equals ``_``)."""
    return name.replace("-", "_")


@dataclass(frozen=True)
class Kernel:
    """A kernel image plus the loadable modules the guest needs, in load order."""

    version: str
    vmlinuz: Path
    modules: tuple[tuple[str, bytes], ...]  # (name, decompressed .ko contents)
    builtin: frozenset[str]


def _module_files(moddir: Path) -> dict[str, Path]:
    """Map every module name under ``moddir/kernel`` to its file."""
    found: dict[str, Path] = {}
    for path in (moddir / "kernel").rglob("*.ko*"):
        name = path.name.split(".ko")[0]
        found[_norm(name)] = path
    return found


def _builtin(moddir: Path) -> frozenset[str]:
    """Names of modules compiled into the kernel (``modules.builtin``)."""
    listing = moddir / "modules.builtin"
    if not listing.exists():
        return frozenset()
    return frozenset(
        _norm(Path(line.strip()).name.split(".ko")[0])
        for line in listing.read_text().splitlines()
        if line.strip()
    )


def resolve_modules(moddir: Path, wanted: Sequence[str]) -> list[tuple[str, bytes]]:
    """Return ``wanted`` plus their dependencies, dependencies first.

    Built-in modules are dropped; a wanted module that is neither built in nor
    present as a file raises.
    """
    files = _module_files(moddir)
    builtin = _builtin(moddir)
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(name: str, stack: tuple[str, ...]) -> None:
        name = _norm(name)
        if name in seen or name in builtin:
            return
        if name in stack:
            raise RuntimeError(f"module dependency cycle: {' -> '.join((*stack, name))}")
        path = files.get(name)
        if path is None:
            raise RuntimeError(f"module {name} is neither built in nor in {moddir}")
        data = _read_ko(path)
        deps = [d for d in read_modinfo(data).get("depends", "").split(",") if d]
        for dep in deps:
            visit(dep, (*stack, name))
        seen.add(name)
        order.append((name, data))

    for module in wanted:
        visit(module, ())
    return order


def fetch_kernel(wanted: Sequence[str] = GUEST_MODULES) -> Kernel:
    """Return the cached Debian kernel and modules, downloading on first use."""
    with cache_lock():
        package = resolve_kernel_package()
        root = _fetch_package(package)
    images = sorted((root / "boot").glob("vmlinuz-*"))
    if not images:
        raise RuntimeError(f"no vmlinuz in {root / 'boot'}")
    version = images[-1].name.removeprefix("vmlinuz-")
    moddir = root / "lib" / "modules" / version
    if not moddir.is_dir():
        moddir = root / "usr" / "lib" / "modules" / version
    return Kernel(
        version=version,
        vmlinuz=images[-1],
        modules=tuple(resolve_modules(moddir, wanted)),
        builtin=_builtin(moddir),
    )


def fetch_busybox() -> Path:
    """Return the path of the cached static busybox binary."""
    with cache_lock():
        root = _fetch_package("busybox-static")
    for candidate in (root / "bin" / "busybox", root / "usr" / "bin" / "busybox"):
        if candidate.exists():
            return candidate
    raise RuntimeError(f"busybox binary not found under {root}")
