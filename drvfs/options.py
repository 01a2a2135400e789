"""Mount options, parsed in one place: each option is declared once in `_OPTIONS`.

Options travel to one of three places:

- the server, in the attach name (`C;metadata;case=dir;uid=1000`), as WSL's
  DrvFs does: `metadata`, `case=`, `uid=`, `gid=`, `umask=`, `fmask=`, `dmask=`, `ro`;
- the FUSE mount (`allow_other`, `default_permissions`, `nosuid`, `noatime`, ...;
  `ro` too);
- the client itself: `server=`, `msize=`, `timeout=`, `attr_timeout=`,
  `entry_timeout=`, `negative_timeout=`, `writeback_cache`.

Options mount(8) hands to helpers but that mean nothing here (`defaults`,
`noauto`, `_netdev`, `x-*`, ...) are accepted and ignored; anything else is an
`OptionError`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ninep.constants import IOHDRSZ, MIN_MSIZE
from ninep.transport import DEFAULT_ADDRESS, parse_address

FUSE_IO_SIZE = 1 << 20  # FUSE's largest read and write (256 pages)
DEFAULT_MSIZE = FUSE_IO_SIZE + IOHDRSZ  # one Tread/Twrite carries one whole FUSE I/O


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


def _id(value: str | None) -> str:
    text = _required(value)
    if not text.isdigit() or int(text) >= 1 << 32:
        raise ValueError("expects a number from 0 to 4294967295")
    return text


def _mask(value: str | None) -> str:
    text = _required(value)
    if not all(c in "01234567" for c in text) or int(text, 8) > 0o777:
        raise ValueError("expects an octal mask up to 777")
    return text


def _case(value: str | None) -> str:
    text = _required(value)
    if text not in ("off", "dir", "force"):
        raise ValueError("expects off, dir or force")
    return text


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
    "metadata": _Option(Dest.SERVER),
    "case": _Option(Dest.SERVER, _case),
    "uid": _Option(Dest.SERVER, _id),
    "gid": _Option(Dest.SERVER, _id),
    "umask": _Option(Dest.SERVER, _mask),
    "fmask": _Option(Dest.SERVER, _mask),
    "dmask": _Option(Dest.SERVER, _mask),
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
    "writeback_cache": _Option(Dest.CLIENT, _flag, "writeback_cache"),
    **{name: _Option(Dest.IGNORED, lambda v: v) for name in _NOISE},
}


def _lookup(key: str) -> _Option:
    if key.startswith("x-") or key == "comment":
        return _Option(Dest.IGNORED, lambda v: v)
    option = _OPTIONS.get(key)
    if option is None:
        raise OptionError(f"unknown mount option {key!r}")
    return option


def parse_options(
    text: str, base: MountOptions | None = None, *, sloppy: bool = False
) -> MountOptions:
    """Parse a comma-separated `-o` string on top of `base` (default: the defaults).

    `sloppy` (mount -s) ignores unknown options instead of refusing them.
    """
    opts = base or MountOptions()
    attach = list(opts.attach)
    fuse = set(opts.fuse)
    changes: dict[str, object] = {}
    for item in text.split(","):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        try:
            option = _lookup(key)
        except OptionError:
            if sloppy:
                continue
            raise
        try:
            value = option.parse(raw if sep else None)
        except ValueError as e:
            raise OptionError(f"mount option {key!r} {e}") from None
        if option.dest is Dest.SERVER:
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
