"""The mount table (/proc/self/mountinfo), read without touching any mount point (a stat of
a FUSE mount would wait for its server)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

SUBTYPE = "drvfs"  # a drvfs mount's FUSE subtype: the kernel shows its type as fuse.drvfs
DRVFS_TYPE = f"fuse.{SUBTYPE}"
#: Read on a drvfs mount's root, answered by drvfs itself (never the server's, not listed):
#: "1" if the server escapes names Windows cannot hold in the export (its listing says), else
#: "0". `drvfs path` converts names with it.
ESCAPE_XATTR = "user.drvfs.escape"


def source(export: str) -> str:
    """What a drvfs mount of `export` shows as its source (`C:`, as WSL's `C:\\`)."""
    return f"{export}:"


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of mountinfo: what is mounted where."""

    device: str  # major:minor
    mountpoint: str
    fstype: str
    source: str  # a drvfs mount's is its export and a colon: "C:"

    @property
    def export(self) -> str | None:
        """The export a drvfs mount serves, or None for another mount."""
        return self.source.removesuffix(":") if self.fstype == DRVFS_TYPE else None


def unescape(field: str) -> str:
    """A mountinfo field with its octal escapes (`\\040` for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def table() -> list[Mount]:
    """Every mount this process sees, in mount order."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, after = left.split(), right.split()
            mounts.append(
                Mount(fields[2], unescape(fields[4]), unescape(after[0]), unescape(after[1]))
            )
    return mounts


def real(path: str) -> str:
    """`path` as mountinfo shows it: its parent resolved, the last name left alone (resolving
    it would look at a mount on it)."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    return os.path.join(os.path.realpath(parent), name) if name else path


def mounted_on(path: str) -> Mount | None:
    """The mount on `path` (the last, if several), or None."""
    target = real(path)
    found = [m for m in table() if m.mountpoint == target]
    return found[-1] if found else None
