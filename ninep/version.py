"""The version every command's `--version` prints, declared once."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .constants import EXTENDED_VERSION, VERSION

DISTRIBUTION = "ninep-volfs"  # pyproject.toml's [project] name
PROTOCOLS = (VERSION, EXTENDED_VERSION)  # what the server speaks (Tversion)


def package_version() -> str:
    """The installed package's version (`unknown` when run from a tree not installed)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def version_line(command: str) -> str:
    """`COMMAND VERSION (ninep-volfs)`: the first line of every --version."""
    return f"{command} {package_version()} ({DISTRIBUTION})"
