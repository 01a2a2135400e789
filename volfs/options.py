"""Attach options: the part of the aname after the export name, parsed in one place.

The aname is `NAME;opt;opt=value;...`; the server hands over everything after the
first `;`. Each option is declared once in `_PARSERS`.
"""

from __future__ import annotations

import enum
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

log = logging.getLogger(__name__)


class CaseOption(enum.Enum):
    """`case=`: which directories below the root are case-sensitive (WSL's meaning)."""

    OFF = "off"  # those whose flag is set; new directories inherit their parent's flag
    DIR = "dir"  # as OFF, and every directory a client creates gets the flag
    FORCE = "force"  # every one


@dataclass(frozen=True, slots=True)
class AttachOptions:
    """What an attach asked for."""

    read_only: bool = False
    case: CaseOption = CaseOption.OFF
    metadata: bool = False  # POSIX metadata in extended attributes (docs/metadata.md)
    client_groups: bool = False  # metadata on: the client decides group membership for
    # chgrp by the owner and setgid (a kernel client with access=client; docs/metadata.md)
    uid: int | None = None  # metadata off: the owner shown (None: the attaching uid)
    gid: int | None = None  # metadata off: the group shown (None: the attaching uid's)
    umask: int | None = None  # metadata off: permission bits taken from every object
    fmask: int | None = None  # ... from files
    dmask: int | None = None  # ... from directories


def _flag(field: str) -> Callable[[AttachOptions, str, str | None], AttachOptions]:
    """A parser for an option that takes no value and sets `field` to True."""

    def parse(opts: AttachOptions, key: str, value: str | None) -> AttachOptions:
        if value is not None:
            raise _invalid(f"attach option {key!r} takes no value")
        changes: dict[str, Any] = {field: True}
        return replace(opts, **changes)

    return parse


def _case(opts: AttachOptions, key: str, value: str | None) -> AttachOptions:
    try:
        return replace(opts, case=CaseOption(value))
    except ValueError:
        choices = "|".join(c.value for c in CaseOption)
        raise _invalid(f"attach option {key!r} takes {choices}, not {value!r}") from None


def _number(
    field: str, base: int, limit: int
) -> Callable[[AttachOptions, str, str | None], AttachOptions]:
    """A parser for an option taking an integer in `base` (at most `limit`) into `field`."""

    def parse(opts: AttachOptions, key: str, value: str | None) -> AttachOptions:
        try:
            number = int(value or "", base)
        except ValueError:
            number = -1
        if not 0 <= number <= limit:
            raise _invalid(f"attach option {key!r} takes a base-{base} number, not {value!r}")
        changes: dict[str, Any] = {field: number}
        return replace(opts, **changes)

    return parse


_ID_MAX = 0xFFFF_FFFE  # (uid_t)-1 is never an id

Parse = Callable[[AttachOptions, str, str | None], AttachOptions]


@dataclass(frozen=True, slots=True)
class _Option:
    parse: Parse
    value: str  # what the value is (the man page's `name=VALUE`); "": a flag
    help: str


_PARSERS: dict[str, _Option] = {
    "ro": _Option(_flag("read_only"), "", "read-only: every change is refused (EROFS)"),
    "case": _Option(_case, "off|dir|force", "which directories are case-sensitive: those "
                    "flagged (off, the default), also every directory made through this "
                    "attach (dir), or all (force)"),
    "metadata": _Option(_flag("metadata"), "", "POSIX modes, owners and special files kept in "
                        "extended attributes, and enforced"),
    "client_groups": _Option(_flag("client_groups"), "", "with metadata: the client's group "
                             "membership stands for chgrp by the owner and setgid"),
    "uid": _Option(_number("uid", 10, _ID_MAX), "UID", "without metadata: the owner shown "
                   "(default: the attaching user)"),
    "gid": _Option(_number("gid", 10, _ID_MAX), "GID", "without metadata: the group shown"),
    "umask": _Option(_number("umask", 8, 0o777), "OCTAL", "without metadata: permission bits "
                     "taken from every object"),
    "fmask": _Option(_number("fmask", 8, 0o777), "OCTAL", "the same, from files"),
    "dmask": _Option(_number("dmask", 8, 0o777), "OCTAL", "the same, from directories"),
}  # fmt: skip


def documented() -> list[tuple[str, str, str]]:
    """(name, value, help) of each attach option, for the man pages."""
    return [(name, option.value, option.help) for name, option in _PARSERS.items()]


def _invalid(message: str) -> OSError:
    log.warning("%s", message)
    return OSError(errno.EINVAL, message)


def parse_options(text: str) -> AttachOptions:
    """Parse `opt;opt=value;...`; empty items are skipped, an unknown option is EINVAL."""
    opts = AttachOptions()
    for item in text.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        option = _PARSERS.get(key)
        if option is None:
            raise _invalid(f"unknown attach option {key!r}")
        opts = option.parse(opts, key, value if sep else None)
    return opts
