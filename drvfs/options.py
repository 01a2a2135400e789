"""Mount options, parsed in one place: each option is declared once in `_OPTIONS`.

Options travel to one of three places:

- the server, in the attach name (`C;metadata;case=dir;uid=1000`), as WSL's
  DrvFs does: every option not named below (`metadata`, `case=`, `uid=`, ...)
  goes there as given, and the server alone validates it (`volfs/options.py`);
  one it refuses makes the mount fail with status 1. `ro` goes there too;
- the FUSE mount (`allow_other`, `default_permissions`, `nosuid`, `noatime`, ...;
  `ro` too);
- the client itself: `server=`, `msize=`, `timeout=`, `attr_timeout=`,
  `entry_timeout=`, `negative_timeout=`, `covered_timeout=`, `writeback_cache`.

Options mount(8) hands to helpers but that mean nothing here (`defaults`,
`noauto`, `_netdev`, `x-*`, ...) are accepted and ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ninep.constants import DEFAULT_MSIZE, IO_SIZE, MIN_MSIZE
from ninep.transport import DEFAULT_ADDRESS, parse_address

FUSE_IO_SIZE = IO_SIZE  # FUSE's largest read and write (256 pages): one Tread/Twrite


class OptionError(ValueError):
    """A mount option that is unknown or has a bad value."""


class Dest(enum.Enum):
    """Where an option goes."""

    SERVER = "server"  # into the attach name
    FUSE = "fuse"  # into the FUSE mount options
    CLIENT = "client"  # a field of MountOptions
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class MountOptions:
    """Everything `-o` can say, sorted by destination."""

    server: str = DEFAULT_ADDRESS
    attach: tuple[str, ...] = ()  # `name` or `name=value`, in the order given
    fuse: frozenset[str] = field(default_factory=lambda: frozenset({"default_permissions"}))
    read_only: bool = False
    msize: int = DEFAULT_MSIZE
    timeout: float = 60.0  # a server silent this long with requests waiting is lost; 0: never
    attr_timeout: float = 1.0
    entry_timeout: float = 1.0
    negative_timeout: float = 0.0  # 0: a name found missing is asked again next time
    # Entries and attributes in a directory whose changes the server notifies (drvfs.notified);
    # 0: no notification asked for, the timeouts above everywhere.
    covered_timeout: float = 3600.0
    writeback_cache: bool = False

    def aname(self, export: str) -> str:
        """The attach name: the export, then the server-side options, separated by `;`."""
        return ";".join((export, *self.attach))


Parser = Callable[[str | None], object]


def _flag(value: str | None) -> bool:
    if value is not None:
        raise ValueError("takes no value")
    return True


def _address(value: str | None) -> str:
    text = _required(value)
    parse_address(text)  # raises ValueError with a clear message
    return text


def _required(value: str | None) -> str:
    if not value:
        raise ValueError("needs a value")
    return value


def _seconds(value: str | None) -> float:
    seconds = float(_required(value))
    if not 0 <= seconds < 1e6:
        raise ValueError("expects seconds from 0")
    return seconds


def _msize(value: str | None) -> int:
    size = int(_required(value), 0)
    if size < MIN_MSIZE:
        raise ValueError(f"must be at least {MIN_MSIZE}")
    return size


@dataclass(frozen=True, slots=True)
class _Option:
    dest: Dest
    parse: Parser = _flag
    attr: str = ""  # the MountOptions field a CLIENT option sets


# Flags of mount(2) that FUSE takes as mount options.
_MOUNT_FLAGS = [
    *("suid", "nosuid", "dev", "nodev", "exec", "noexec", "async", "sync", "dirsync"),
    *("atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime"),
    *("strictatime", "nostrictatime", "lazytime", "nolazytime"),
]

# Options mount(8) and fstab use that concern nobody here.
_NOISE = ["defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group", "_netdev"]
_NOISE += ["nofail", "rw"]

_OPTIONS: dict[str, _Option] = {
    "ro": _Option(Dest.SERVER),  # and FUSE's ro, and read_only: see parse_options
    "allow_other": _Option(Dest.FUSE),
    "allow_root": _Option(Dest.FUSE),
    "default_permissions": _Option(Dest.FUSE),  # always on: the server sees one user
    **{name: _Option(Dest.FUSE) for name in _MOUNT_FLAGS},
    "server": _Option(Dest.CLIENT, _address, "server"),
    "msize": _Option(Dest.CLIENT, _msize, "msize"),
    "timeout": _Option(Dest.CLIENT, _seconds, "timeout"),
    "attr_timeout": _Option(Dest.CLIENT, _seconds, "attr_timeout"),
    "entry_timeout": _Option(Dest.CLIENT, _seconds, "entry_timeout"),
    "negative_timeout": _Option(Dest.CLIENT, _seconds, "negative_timeout"),
    "covered_timeout": _Option(Dest.CLIENT, _seconds, "covered_timeout"),
    "writeback_cache": _Option(Dest.CLIENT, _flag, "writeback_cache"),
    **{name: _Option(Dest.IGNORED, lambda v: v) for name in _NOISE},
}


_TO_SERVER = _Option(Dest.SERVER, lambda v: v)  # any other option: the server decides


def _lookup(key: str) -> _Option:
    if key.startswith("x-") or key == "comment":
        return _Option(Dest.IGNORED, lambda v: v)
    return _OPTIONS.get(key, _TO_SERVER)


def parse_options(
    text: str, base: MountOptions | None = None, *, sloppy: bool = False
) -> MountOptions:
    """Parse a comma-separated `-o` string on top of `base` (default: the defaults).

    `sloppy` (mount -s) drops options that cannot be sent instead of refusing them.
    """
    opts = base or MountOptions()
    attach = list(opts.attach)
    fuse = set(opts.fuse)
    changes: dict[str, object] = {}
    for item in text.split(","):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        option = _lookup(key)
        try:
            value = option.parse(raw if sep else None)
        except ValueError as e:
            raise OptionError(f"mount option {key!r} {e}") from None
        if option.dest is Dest.SERVER:
            if ";" in item or "\0" in item:
                if sloppy:
                    continue
                raise OptionError(f"mount option {item!r} cannot be sent to the server")
            attach = [a for a in attach if a.partition("=")[0] != key] + [item]
        elif option.dest is Dest.FUSE:
            fuse.add(item)
        elif option.dest is Dest.CLIENT:
            changes[option.attr] = value
        if key == "ro":
            fuse.add("ro")
            changes["read_only"] = True
    return replace(opts, attach=tuple(attach), fuse=frozenset(fuse), **changes)  # type: ignore[arg-type]


def export_name(spec: str) -> str:
    """The export a mount source names: `C:`, `C:\\` and `C` all name export `C`."""
    name = spec.rstrip("\\/")
    name = name.removesuffix(":")
    if not name or any(c in name for c in ";/\\\0"):
        raise OptionError(f"{spec!r} does not name an export (expected e.g. C: or C)")
    return name
