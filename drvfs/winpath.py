"""`drvfs path`: wslpath's conversions between paths on drvfs mounts and Windows paths.

The mount of a one-letter export X is drive `X:` (`/mnt/c/Users/x` is
`C:\\Users\\x`); of another export NAME, the share `\\\\ninep\\NAME` (this
project's choice). On a mount whose server escapes names (`ESCAPE_XATTR`), a
name's characters Windows cannot hold are the private-use characters they are
stored as on the host (`a:b` is `a` U+F03A `b`: docs/names.md), and back, so a
round trip gives the same name. A path on no drvfs mount is refused (wslpath
would answer a `\\\\wsl.localhost\\` path there).
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

from ninep.escape import swap

from . import mounts

UNC_HOST = "ninep"  # \\ninep\NAME: an export whose name is not one letter
_DRIVE = re.compile(r"[A-Za-z]:")
_SEPARATORS = re.compile(r"[\\/]+")


class PathError(Exception):
    """A path that cannot be converted: one line."""


@dataclass(frozen=True)
class DrvMount:
    """A drvfs mount as the conversions see it."""

    export: str
    mountpoint: str

    @property
    def windows(self) -> str:
        """Its root as a Windows path, without the final separator: `C:`, `\\\\ninep\\NAME`."""
        if len(self.export) == 1 and self.export.isalpha():
            return f"{self.export.upper()}:"
        return f"\\\\{UNC_HOST}\\{self.export}"

    def escapes(self) -> bool:
        """Whether its server escapes names (drvfs answers this on the mount's root)."""
        try:
            return os.getxattr(self.mountpoint, mounts.ESCAPE_XATTR) == b"1"
        except OSError as e:
            if e.errno == errno.ENODATA:  # a drvfs from before the attribute: it escaped none
                return False
            raise PathError(f"{self.mountpoint}: {e.strerror}") from None

    def to_windows(self, names: list[str]) -> list[str]:
        """Linux names on this mount as Windows names."""
        if self.escapes():
            return [swap(n) for n in names]
        for n in names:
            if "\\" in n:
                raise PathError(f"{n!r} holds '\\' and {self.mountpoint} does not escape names")
        return names

    def to_linux(self, names: list[str]) -> list[str]:
        """Windows names on this mount as Linux names."""
        return [swap(n) for n in names] if self.escapes() else names


def drvfs_mounts() -> list[DrvMount]:
    """The drvfs mounts of exports that name a drive or a share, in mount order."""
    return [DrvMount(m.export, m.mountpoint) for m in mounts.table()
            if m.export and not _SEPARATORS.search(m.export)]  # fmt: skip


def _mount_of(path: str) -> tuple[DrvMount, list[str]]:
    """The drvfs mount absolute `path` lies on (the deepest) and the names below it."""
    full = os.path.normpath(path)
    found = [m for m in drvfs_mounts() if os.path.commonpath([full, m.mountpoint]) == m.mountpoint]
    if not found:
        raise PathError(f"{path}: not on a drvfs mount")
    mount = max(found, key=lambda m: len(m.mountpoint))
    return mount, [n for n in full[len(mount.mountpoint) :].split("/") if n]


def to_windows(path: str, absolute: bool = False) -> str:
    """Linux path `path` as a Windows one (`-w`); a relative path stays relative unless
    `absolute`, its names converted as on the mount it leads to."""
    mount, names = _mount_of(os.path.abspath(path))
    if absolute or os.path.isabs(path):
        return mount.windows + "\\" + "\\".join(mount.to_windows(names))
    return "\\".join(mount.to_windows([n for n in path.split("/") if n]))


def to_linux(path: str, absolute: bool = False) -> str:
    """Windows path `path` (`\\` or `/` between names) as a Linux one (`-u`)."""
    if path[:2] in ("\\\\", "//"):
        host, _, rest = _SEPARATORS.sub(r"\\", path[2:]).partition("\\")
        share, _, rest = rest.partition("\\")
        if host.lower() != UNC_HOST:
            raise PathError(f"{path}: not a drvfs share (\\\\{UNC_HOST}\\NAME)")
        mount = _find(lambda m: m.windows.lower() == f"\\\\{UNC_HOST}\\{share}".lower(), path)
    elif _DRIVE.match(path):
        drive, rest = path[:2].upper(), path[2:]
        mount = _find(lambda m: m.windows == drive, path)
    else:  # relative: names as on the mount of the current directory
        mount, _ = _mount_of(os.getcwd())
        relative = "/".join(mount.to_linux([n for n in _SEPARATORS.split(path) if n]))
        return os.path.join(os.getcwd(), relative) if absolute else relative
    names = mount.to_linux([n for n in _SEPARATORS.split(rest) if n])
    return "/".join([mount.mountpoint.rstrip("/"), *names]) if names else mount.mountpoint


def _find(match: Callable[[DrvMount], bool], path: str) -> DrvMount:
    """The first drvfs mount `match` accepts (in mount order: a drive mounted twice is the
    first mount's); PathError naming `path` if none."""
    for m in drvfs_mounts():
        if match(m):
            return m
    raise PathError(f"{path}: no drvfs mount of that drive or share")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `path` subcommand."""
    p = sub.add_parser("path", help="convert a path to or from Windows' form, as wslpath")
    way = p.add_mutually_exclusive_group()
    way.add_argument("-u", dest="way", action="store_const", const="u",
                     help="Windows to Linux (default): C:\\Users\\x is /mnt/c/Users/x")  # fmt: skip
    way.add_argument("-w", dest="way", action="store_const", const="w",
                     help="Linux to Windows: /mnt/c/Users/x is C:\\Users\\x")  # fmt: skip
    way.add_argument("-m", dest="way", action="store_const", const="m",
                     help="Linux to Windows with forward slashes: C:/Users/x")  # fmt: skip
    p.add_argument("-a", dest="absolute", action="store_true",
                   help="an absolute result for a relative path")  # fmt: skip
    p.add_argument("path", metavar="PATH")
    p.set_defaults(run=run, way="u")


def run(args: argparse.Namespace) -> int:
    """Print the converted path; 1 with one line if it cannot be converted."""
    try:
        if args.way == "u":
            print(to_linux(args.path, args.absolute))
        else:
            converted = to_windows(args.path, args.absolute)
            print(converted.replace("\\", "/") if args.way == "m" else converted)
    except PathError as e:
        print(f"drvfs path: {e}", file=sys.stderr)
        return 1
    return 0
