"""The options of a backend's exports, each declared once by the backend.

An `ExportOption` says what value an option takes, its help, and where it is
spelled: as the server's long option and config key (`flag`: the server's
value for every export, which an export of the config file may set for
itself), as an attach option (`attach`: the aname's `NAME;opt;opt=value`, one
attach's), or both (the server's then holds for every attach). `ninep.cli`
offers the flags (`add_flag`) and gives the backend's factory those given
(`given`); the backend parses its attach options with `parse_attach`: neither
names an option.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flag:
    """An option given alone (`--metadata`, `;metadata`): it sets its field to `value`."""

    value: Any = True
    metavar = ""

    def parse(self, text: str | None) -> Any:
        """The field's value for `NAME` (`text` None) or `NAME=text`; ValueError says why not."""
        if text is not None:
            raise ValueError("takes no value")
        return self.value


@dataclass(frozen=True)
class Choice:
    """An option taking one of some words (`case=dir`), each standing for a value."""

    values: Mapping[str, Any]

    @property
    def metavar(self) -> str:
        return "|".join(self.values)

    def parse(self, text: str | None) -> Any:
        """The value `text` stands for; ValueError says why not."""
        if text is None or text not in self.values:
            raise ValueError(f"takes {self.metavar}, not {text!r}")
        return self.values[text]


@dataclass(frozen=True)
class Number:
    """An option taking a whole number in `base`, from 0 to `limit` (`umask=022`)."""

    metavar: str  # what it is, as help shows it: UID, OCTAL
    base: int
    limit: int

    def parse(self, text: str | None) -> int:
        """The number `text` writes; ValueError says why not."""
        try:
            number = int(text or "", self.base)
        except ValueError:
            number = -1
        if not 0 <= number <= self.limit:
            raise ValueError(f"takes a base-{self.base} number, not {text!r}")
        return number


Value = Flag | Choice | Number


@dataclass(frozen=True)
class ExportOption:
    """One option of a backend's exports: the field it sets, its value, its help, and its
    spellings (at least one)."""

    field: str  # the keyword of the backend's factory (`flag`), the field of an attach's (`attach`)
    value: Value
    help: str
    flag: str | None = None  # the server's long option without its dashes, and config key
    attach: str | None = None  # the attach option's name
    confines: bool = False  # a flag under which the export enforces each client's permissions,
    # so that a bounded peer (--allow-uid) of a server run as root acts as itself, not as root

    @property
    def server_help(self) -> str:
        """Its help on the server's command line (an attach option too: for every attach)."""
        return self.help if self.attach is None else f"{self.help}, for every attach"


def parse_attach(options: Iterable[ExportOption], text: str) -> dict[str, Any]:
    """The fields set by attach options `opt;opt=value;...` (empty items skipped); ValueError
    names an unknown or a bad one."""
    spelled = {o.attach: o for o in options if o.attach is not None}
    fields = {}
    for item in text.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        option = spelled.get(key)
        if option is None:
            raise ValueError(f"unknown attach option {key!r}")
        try:
            fields[option.field] = option.value.parse(value if sep else None)
        except ValueError as e:
            raise ValueError(f"attach option {key!r} {e}") from None
    return fields


def documented(options: Iterable[ExportOption]) -> list[tuple[str, str, str]]:
    """(name, value, help) of each attach option, for the man pages."""
    return [(o.attach, o.value.metavar, o.help) for o in options if o.attach is not None]


def add_flag(group: argparse._ActionsContainer, option: ExportOption) -> None:
    """Offer `option` in `group` as `--FLAG`: given, argparse keeps True (a `Flag`) or its
    text (checked); not given, False or None."""
    value = option.value
    kind: dict[str, Any] = {"metavar": value.metavar, "type": _checked(value)}
    if isinstance(value, Flag):
        kind = {"action": "store_true"}
    elif isinstance(value, Choice):
        kind = {"choices": list(value.values)}
    group.add_argument(f"--{option.flag}", dest=_dest(option), help=option.server_help, **kind)


def given(args: argparse.Namespace, options: Iterable[ExportOption]) -> dict[str, Any]:
    """The flags of `options` given in `args` (see `add_flag`), as keyword arguments of the
    backend's factory."""
    fields = {}
    for option in options:
        value = getattr(args, _dest(option)) if option.flag is not None else None
        if value is not None and value is not False:
            fields[option.field] = option.value.parse(None if value is True else value)
    return fields


def _dest(option: ExportOption) -> str:
    """Where argparse keeps `option` (its flag's name, as argparse would make it)."""
    assert option.flag is not None
    return option.flag.replace("-", "_")


def _checked(value: Value) -> Callable[[str], str]:
    """An argparse type: the text given, once `value` takes it."""

    def checked(text: str) -> str:
        try:
            value.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    return checked
