"""Mount options, parsed in one place: each option is declared once in `_OPTIONS`.

Options travel to one of three places:

- the server, in the attach name (`C;metadata;case=dir;uid=1000`), as WSL's
  DrvFs does: every option not named below (`metadata`, `case=`, `uid=`, ...)
  goes there as given, and the server alone validates it (`volfs/options.py`);
  one it refuses makes the mount fail with status 1. `ro` goes there too;
- the FUSE mount (`allow_other`, `default_permissions`, `nosuid`, `noatime`, ...;
  `ro` too);
- the client itself: `server=`, `msize=`, `timeout=`, `attr_timeout=`,
  `entry_timeout=`, `negative_timeout=`, `covered_timeout=`, `writeback_cache`,
  `debug`.

Options mount(8) hands to helpers but that mean nothing here (`defaults`,
`noauto`, `_netdev`, `x-*`, ...) are accepted and ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

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
    debug: bool = False  # drvfs's own log at debug level

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
    text = _required(value)
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 1e6:
        raise ValueError(f"expects seconds from 0, not {text!r}")
    return seconds


def _msize(value: str | None) -> int:
    text = _required(value)
    try:
        size = int(text, 0)
    except ValueError:
        raise ValueError(f"expects a number of bytes, not {text!r}") from None
    if size < MIN_MSIZE:
        raise ValueError(f"must be at least {MIN_MSIZE}")
    return size


@dataclass(frozen=True, slots=True)
class _MountOption:
    dest: Dest
    help: str  # for the man page; `{default}` is the MountOptions field's default
    parse: Parser = _flag
    attr: str = ""  # the MountOptions field a CLIENT option sets
    value: str = ""  # what the value is (the man page's `name=VALUE`); "": a flag


# Flags of mount(2) that FUSE takes as mount options.
_MOUNT_FLAGS = [
    *("suid", "nosuid", "dev", "nodev", "exec", "noexec", "async", "sync", "dirsync"),
    *("atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime"),
    *("strictatime", "nostrictatime", "lazytime", "nolazytime"),
]

# Options mount(8) and fstab use that concern nobody here.
_NOISE = ["defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group", "_netdev"]
_NOISE += ["nofail", "rw"]

_IGNORED = _MountOption(Dest.IGNORED, "for mount(8) and fstab; ignored by drvfs", lambda v: v)


def _client(parse: Parser, attr: str, value: str, help: str) -> _MountOption:
    return _MountOption(Dest.CLIENT, help, parse, attr, value)


_OPTIONS: dict[str, _MountOption] = {
    # ro: and FUSE's ro, and read_only: see parse_options
    "ro": _MountOption(Dest.SERVER, "read-only: the server refuses every change (EROFS)"),
    "allow_other": _MountOption(Dest.FUSE, "let other users than the one mounting use the mount"),
    "allow_root": _MountOption(Dest.FUSE, "let root use the mount too"),
    "default_permissions": _MountOption(
        Dest.FUSE, "the kernel checks permissions against the modes shown (always on)"
    ),
    **{name: _MountOption(Dest.FUSE, "a mount flag, as for any file system (mount(8))")
       for name in _MOUNT_FLAGS},
    "server": _client(_address, "server", "ADDR", "the 9P server: tcp:HOST:PORT or unix:PATH "
                      "(default {default})"),
    "msize": _client(_msize, "msize", "BYTES", "the largest 9P message asked for (default "
                     "{default}: a 1 MiB read or write in one message)"),
    "timeout": _client(_seconds, "timeout", "SECONDS", "how long the server may answer "
                       "nothing, probes included, before waiting operations fail with ENOTCONN "
                       "(default {default}; 0: wait forever)"),
    "attr_timeout": _client(_seconds, "attr_timeout", "SECONDS", "how long the kernel caches "
                            "attributes (default {default})"),
    "entry_timeout": _client(_seconds, "entry_timeout", "SECONDS", "how long the kernel "
                             "caches names (default {default})"),
    "negative_timeout": _client(_seconds, "negative_timeout", "SECONDS", "how long the kernel "
                                "caches a name found missing (default {default})"),
    "covered_timeout": _client(_seconds, "covered_timeout", "SECONDS", "names and attributes "
                               "in directories whose changes the server notifies (default "
                               "{default}; 0: no notification asked for)"),
    "writeback_cache": _client(_flag, "writeback_cache", "", "keep written pages in the "
                               "kernel until close, fsync or unlock"),
    "debug": _client(_flag, "debug", "", "drvfs logs what it does (as -vv), to its log or "
                     "syslog; not sent to the server"),
    **{name: _IGNORED for name in _NOISE},
}  # fmt: skip


def documented() -> list[tuple[list[str], str, str]]:
    """(names, value, help) of the options drvfs knows, those alike together (for the man
    page); every other option is the server's."""
    defaults = {f.name: f.default for f in fields(MountOptions)}
    rows: list[tuple[list[str], str, str]] = []
    for name, option in [*_OPTIONS.items(), ("x-*", _IGNORED), ("comment", _IGNORED)]:
        default = defaults.get(option.attr)
        text = option.help.format(default=f"{default:g}" if isinstance(default, float) else default)
        if rows and rows[-1][1:] == (option.value, text):
            rows[-1][0].append(name)
        else:
            rows.append(([name], option.value, text))
    return rows


_TO_SERVER = _MountOption(Dest.SERVER, "", lambda v: v)  # any other option: the server decides


def _lookup(key: str) -> _MountOption:
    if key.startswith("x-") or key == "comment":
        return _IGNORED
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
