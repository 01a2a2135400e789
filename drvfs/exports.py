"""`drvfs exports [SERVER]`: the exports a server offers (Texports), as a table."""

from __future__ import annotations

import argparse
import errno
import sys

import trio

from ninep.client import connect
from ninep.listing import ExportInfo, NoListing
from ninep.transport import DEFAULT_ADDRESS

CONNECT_TIMEOUT = 10.0  # seconds to connect and be answered: a silent host is unreachable


async def fetch(server: str) -> list[ExportInfo]:
    """The listing of `server`; NoListing if it has none, OSError if it cannot be reached
    (ValueError: not an address)."""
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            async with connect(server, timeout=CONNECT_TIMEOUT) as client:
                return await client.exports()
    except trio.TooSlowError:
        raise OSError(errno.ETIMEDOUT, f"no answer in {CONNECT_TIMEOUT:g} s") from None


def table(exports: list[ExportInfo]) -> str:
    """The listing as lines of aligned columns, a header first."""
    rows = [("NAME", "ACCESS", "METADATA", "CASE", "ESCAPE")]
    for e in exports:
        case = "sensitive" if e.case_sensitive else "insensitive"
        rows.append((e.name, "ro" if e.read_only else "rw", _on(e.metadata), case, _on(e.escape)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `exports` subcommand."""
    p = sub.add_parser("exports", help="list the exports a server offers")
    p.add_argument("server", metavar="SERVER", nargs="?", default=DEFAULT_ADDRESS,
                   help=f"tcp:HOST:PORT or unix:PATH (default {DEFAULT_ADDRESS})")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the listing; 1 with one line if there is none or the server is unreachable."""
    try:
        listed = trio.run(fetch, args.server)
    except NoListing as e:
        print(f"drvfs: {args.server}: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        print(f"drvfs: cannot list the exports of {args.server}: {why}", file=sys.stderr)
        return 1
    print(table(listed))
    return 0
