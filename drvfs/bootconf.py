"""`/etc/drvfs.conf`: what `drvfs automount` mounts, in wsl.conf's format.

```ini
[automount]
enabled = true
root = /mnt/
options = "metadata,uid=1000,gid=1000,umask=022"
mountFsTab = true
server = tcp:127.0.0.1:5640

[export D]
options = "ro"
mountpoint = /srv/d
```

`[automount]` has wsl.conf's keys (case-insensitive, values quoted or not)
and `server`; each `[export NAME]` section may turn one export off, add
options after the common ones, or mount it elsewhere. Other sections (a
wsl.conf's `[network]`, `[interop]`...) are left alone. Each key is declared
once in `_AUTOMOUNT` or `_EXPORT`; an error names the key.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ninep.transport import DEFAULT_ADDRESS, parse_address

from .options import OptionError, parse_options

DEFAULT_PATH = "/etc/drvfs.conf"
EXPORT_SECTION = "export "  # `[export NAME]`


class BootConfError(Exception):
    """A drvfs.conf that cannot be used: one line, naming the file and the key."""


@dataclass(frozen=True)
class ExportConf:
    """What an `[export NAME]` section says."""

    enabled: bool = True
    options: str = ""  # after [automount]'s
    mountpoint: str = ""  # "": ROOT/name in lower case


@dataclass(frozen=True)
class BootConf:
    """What drvfs.conf says (the defaults: no file at all)."""

    enabled: bool = True
    root: str = "/mnt/"
    options: str = ""
    mount_fstab: bool = True
    server: str = DEFAULT_ADDRESS
    exports: dict[str, ExportConf] = field(default_factory=dict)

    def export(self, name: str) -> ExportConf:
        """The section of export `name`, or the defaults."""
        return self.exports.get(name, ExportConf())


def _bool(value: str) -> bool:
    if value.lower() not in configparser.ConfigParser.BOOLEAN_STATES:
        raise ValueError(f"expected true or false, not {value!r}")
    return configparser.ConfigParser.BOOLEAN_STATES[value.lower()]


def _absolute(value: str) -> str:
    if not os.path.isabs(value):
        raise ValueError(f"expected an absolute path, not {value!r}")
    return os.path.normpath(value)


def _options(value: str) -> str:
    try:
        parse_options(value)
    except OptionError as e:
        raise ValueError(str(e)) from None
    return value


def _address(value: str) -> str:
    parse_address(value)
    return value


# key as written (read case-insensitively) -> (field, how its value is read)
_AUTOMOUNT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "enabled": ("enabled", _bool),
    "root": ("root", _absolute),
    "options": ("options", _options),
    "mountFsTab": ("mount_fstab", _bool),
    "server": ("server", _address),
}
_EXPORT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "enabled": ("enabled", _bool),
    "options": ("options", _options),
    "mountpoint": ("mountpoint", _absolute),
}


def load(path: str, missing_ok: bool = False) -> BootConf:
    """Read drvfs.conf at `path` (the defaults if it is missing and `missing_ok`)."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",))
    try:
        with open(path) as f:
            parser.read_file(f)
    except FileNotFoundError:
        if missing_ok:
            return BootConf()
        raise BootConfError(f"{path}: No such file or directory") from None
    except OSError as e:
        raise BootConfError(f"{path}: {e.strerror}") from None
    except configparser.Error as e:
        raise BootConfError(f"{path}: {' '.join(str(e).split())}") from None
    common = _read(path, "automount", parser, _AUTOMOUNT) if parser.has_section("automount") else {}
    exports = {
        section.removeprefix(EXPORT_SECTION).strip(): ExportConf(
            **_read(path, section, parser, _EXPORT)
        )
        for section in parser.sections()
        if section.startswith(EXPORT_SECTION)
    }
    return BootConf(**common, exports=exports)


def _read(
    path: str,
    section: str,
    parser: configparser.ConfigParser,
    keys: dict[str, tuple[str, Callable[[str], Any]]],
) -> dict[str, Any]:
    """The fields section `section` sets, each read by its key's reader."""
    by_lower = {k.lower(): k for k in keys}
    out = {}
    for key, raw in parser.items(section):
        if key not in by_lower:
            raise BootConfError(f"{path}: [{section}]: unknown key {key!r}")
        name, read = keys[by_lower[key]]
        value = raw.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]  # wsl.conf's quotes
        try:
            out[name] = read(value)
        except ValueError as e:
            raise BootConfError(f"{path}: [{section}]: key {by_lower[key]!r}: {e}") from None
    return out
