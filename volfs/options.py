"""Attach options: the part of the aname after the export name, parsed in one place.

The aname is `NAME;opt;opt=value;...`; the server hands over everything after the
first `;`. Each option is declared once in `_PARSERS`.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AttachOptions:
    """What an attach asked for."""

    read_only: bool = False


def _flag(field: str) -> Callable[[AttachOptions, str, str | None], AttachOptions]:
    """A parser for an option that takes no value and sets `field` to True."""

    def parse(opts: AttachOptions, key: str, value: str | None) -> AttachOptions:
        if value is not None:
            raise _invalid(f"attach option {key!r} takes no value")
        return replace(opts, **{field: True})

    return parse


_PARSERS: dict[str, Callable[[AttachOptions, str, str | None], AttachOptions]] = {
    "ro": _flag("read_only"),
}


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
        parser = _PARSERS.get(key)
        if parser is None:
            raise _invalid(f"unknown attach option {key!r}")
        opts = parser(opts, key, value if sep else None)
    return opts
