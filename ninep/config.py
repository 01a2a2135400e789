"""The server's config file (`ninep-server --config FILE`): TOML whose keys are its options.

Every long option of the command line is a key of the same name without its
dashes (`max-connections = 64`, `listen = ["unix:/run/ninep/ninep.sock"]`),
read with the option's own type and checks: the keys are derived from the
argument parser, never listed twice. Exports are tables, `[export.NAME]` with
`path` and any option of the parser's per-export group (`read-only = true`),
which then holds for that export alone. A flag given on the command line
overrides the file (a repeatable one replaces the file's list; `--export`
replaces every export of the file). Any error names the file and the key.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

EXPORTS = "export"  # the key of the export tables, and the dest of --export


class ConfigError(Exception):
    """A config file that cannot be used: one line, naming the file and the key."""


@dataclass(frozen=True)
class ExportEntry:
    """An export as configured: its name, its host directory, and the per-export options
    it sets itself (by dest; the others are the server's)."""

    name: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """What a config file says: option values by dest, and the exports."""

    values: dict[str, Any]
    exports: list[ExportEntry]


def keys(actions: Sequence[argparse.Action]) -> dict[str, argparse.Action]:
    """The config keys of `actions` (long options without dashes; not --help, --version,
    --config, nor options without a long name)."""
    out = {}
    for action in actions:
        long = [o[2:] for o in action.option_strings if o.startswith("--")]
        if long and action.default is not argparse.SUPPRESS and action.dest != "config":
            out[long[0]] = action
    return out


def group_actions(parser: argparse.ArgumentParser, title: str) -> list[argparse.Action]:
    """The actions of `parser`'s argument group `title`."""
    return [a for g in parser._action_groups if g.title == title for a in g._group_actions]


def load(path: str, parser: argparse.ArgumentParser, export_group: str) -> Settings:
    """Read and check config file `path` against `parser` (its per-export options: those
    of the group `export_group`); ConfigError says what is wrong."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    known = keys(parser._actions)
    per_export = keys(group_actions(parser, export_group))
    values: dict[str, Any] = {}
    exports: list[ExportEntry] = []
    for key, value in data.items():
        if key == EXPORTS:
            exports = [_export(path, known[EXPORTS], per_export, name, table)
                       for name, table in _tables(path, key, value)]  # fmt: skip
        elif key in known:
            values[known[key].dest] = _checked(path, key, _value, known[key], value)
        else:
            raise ConfigError(f"{path}: unknown key {key!r}")
    return Settings(values, exports)


def peek(path: str, key: str) -> object:
    """The value of top-level `key` in config file `path`, before the parser that checks it
    is made; None if absent or unreadable (`load` then says why)."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f).get(key)
    except (OSError, tomllib.TOMLDecodeError):
        return None


def given(make_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str]) -> set[str]:
    """The dests a command line sets itself (parsed again with every default suppressed)."""
    p = make_parser()
    for action in p._actions:
        action.default, action.required = argparse.SUPPRESS, False
    return set(vars(p.parse_args(argv)))


def apply(settings: Settings, args: argparse.Namespace, on_command_line: set[str]) -> None:
    """Fill `args` with the file's settings, where the command line did not set them."""
    for dest, value in settings.values.items():
        if dest not in on_command_line:
            setattr(args, dest, value)
    if EXPORTS not in on_command_line:
        args.export = [
            replace(e, options={d: v for d, v in e.options.items() if d not in on_command_line})
            for e in settings.exports
        ]


def _tables(path: str, key: str, value: object) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(value, dict) or not all(isinstance(t, dict) for t in value.values()):
        raise ConfigError(f"{path}: key {key!r}: expected tables [{key}.NAME]")
    return list(value.items())


def _export(
    path: str,
    action: argparse.Action,
    per_export: dict[str, argparse.Action],
    name: str,
    table: dict[str, Any],
) -> ExportEntry:
    where = f"{EXPORTS}.{name}"
    host = table.get("path")
    if not isinstance(host, str) or not os.path.isabs(host):
        raise ConfigError(f"{path}: key '{where}.path': expected an absolute path")
    entry: ExportEntry = _checked(path, where, _scalar, action, f"{name}={host}")
    options = {}
    for key, value in table.items():
        if key == "path":
            continue
        if key not in per_export:
            raise ConfigError(f"{path}: unknown key '{where}.{key}'")
        action = per_export[key]
        options[action.dest] = _checked(path, f"{where}.{key}", _value, action, value)
    return replace(entry, options=options)


def _checked(
    path: str,
    key: str,
    read: Callable[[argparse.Action, object], Any],
    action: argparse.Action,
    value: object,
) -> Any:
    """`value` of `key` as the command line's `action` would take it; ConfigError if not."""
    try:
        return read(action, value)
    except ValueError as e:
        raise ConfigError(f"{path}: key {key!r}: {e}") from None


def _value(action: argparse.Action, value: object) -> Any:
    if isinstance(action, argparse._CountAction):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("expected a number from 0")
        return value
    if action.nargs == 0:  # a flag
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return action.const if value else action.default
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [_scalar(action, v) for v in items]
    return _scalar(action, value)


def _scalar(action: argparse.Action, value: object) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("expected a string or a number")
    try:
        result = action.type(str(value)) if callable(action.type) else str(value)
    except argparse.ArgumentTypeError as e:
        raise ValueError(str(e)) from None
    except (TypeError, ValueError):
        raise ValueError(f"invalid value {value!r}") from None
    if action.choices is not None and result not in action.choices:
        raise ValueError(f"{value!r} is not one of: {', '.join(map(str, action.choices))}")
    return result
