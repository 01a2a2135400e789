"""`ninep-server`: export host directories over 9P2000.L."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

import trio

from .backend import Export
from .constants import MIN_MSIZE, SERVER_MSIZE
from .server import Server
from .transport import DEFAULT_ADDRESS, Address, parse_address

log = logging.getLogger("ninep.server")

EXAMPLES = """\
examples:
  ninep-server --export C=/srv/c
      serve /srv/c as export "C" on tcp:127.0.0.1:5640
  ninep-server --export C=/srv/c --export D=/srv/d \\
      --listen tcp:0.0.0.0:564 --listen unix:/run/ninep.sock
  ninep-server --export C=/srv/c --listen fd:0,1      (one connection on stdin/stdout, for inetd)

mount from a Linux guest:
  mount -t 9p -o trans=tcp,port=5640,version=9p2000.L,aname=C HOST /mnt/c
"""


def _export_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path or ";" in name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PATH, e.g. C=/srv/c")
    return name, path


def _msize_arg(text: str) -> int:
    value = int(text, 0)
    if value < MIN_MSIZE:
        raise argparse.ArgumentTypeError(f"msize must be at least {MIN_MSIZE}")
    return value


def _address_arg(text: str) -> Address:
    try:
        return parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ninep-server",
        description="Export host directories over 9P2000.L.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--export",
        metavar="NAME=PATH",
        type=_export_arg,
        action="append",
        required=True,
        help="export directory PATH as NAME (the attach name); repeatable",
    )
    p.add_argument(
        "--listen",
        metavar="ADDR",
        type=_address_arg,
        action="append",
        help=f"tcp:HOST:PORT, unix:PATH or fd:IN,OUT; repeatable (default {DEFAULT_ADDRESS})",
    )
    p.add_argument("--read-only", action="store_true", help="refuse every modification (EROFS)")
    p.add_argument(
        "--case",
        choices=["insensitive", "sensitive"],
        help="insensitive (default): case-preserving, case-insensitive directories, as a "
        "Windows drive under WSL; sensitive: a plain POSIX tree, no folding, no escaping",
    )
    p.add_argument(
        "--no-escape",
        action="store_true",
        help="store names as given, without escaping the characters Windows cannot hold",
    )
    p.add_argument(
        "--metadata",
        action="store_true",
        help="keep POSIX modes, owners and special files in extended attributes, and enforce "
        "them (docs/metadata.md), for every attach",
    )
    p.add_argument(
        "--squash-root",
        action="store_true",
        help="with metadata: uid 0 acts as nobody (65534), not as root",
    )
    p.add_argument(
        "--msize",
        type=_msize_arg,
        default=SERVER_MSIZE,
        help=f"largest message size accepted (default {SERVER_MSIZE}: 1 MiB of data + headers)",
    )
    p.add_argument(
        "--backend", default="volfs", help="export backend (entry point group ninep.backends)"
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    p.add_argument("--trace", action="store_true", help="log every message sent and received")
    return p  # fmt: skip


def load_backend(name: str) -> Callable[..., Export]:
    """The export factory registered under `name` in the `ninep.backends` entry points."""
    found = entry_points(group="ninep.backends", name=name)
    if not found:
        raise SystemExit(f"ninep-server: no backend named {name!r} is installed")
    factory: Callable[..., Export] = next(iter(found)).load()
    return factory


def backend_options(args: argparse.Namespace) -> dict[str, bool]:
    """The name and metadata options given, as keyword arguments of the backend's factory."""
    options = {}
    if args.case is not None:
        options["case_sensitive"] = args.case == "sensitive"
    if args.no_escape:
        options["escape"] = False
    if args.metadata:
        options["metadata"] = True
    if args.squash_root:
        options["squash_root"] = True
    return options


async def run(server: Server, addresses: Sequence[Address]) -> None:
    """Serve until SIGINT or SIGTERM."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            fd_addresses = [a for a in addresses if a.scheme == "fd"]
            others = [a for a in addresses if a.scheme != "fd"]
            if others:
                await nursery.start(server.serve, others)
            for a in fd_addresses:
                nursery.start_soon(_serve_fds_then_stop, server, a, nursery.cancel_scope)
            async for signum in signals:
                log.info("%s: shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


async def _serve_fds_then_stop(server: Server, address: Address, scope: trio.CancelScope) -> None:
    await server.serve_fds(address.fds)
    scope.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)  # fmt: skip
    if args.trace:
        logging.getLogger("ninep.trace").setLevel(logging.DEBUG)
        logging.getLogger().setLevel(min(level, logging.DEBUG))
    factory = load_backend(args.backend)
    exports: dict[str, Export] = {}
    for name, path in args.export:
        if name in exports:
            raise SystemExit(f"ninep-server: export {name!r} given twice")
        try:
            exports[name] = factory(path, read_only=args.read_only, **backend_options(args))
        except OSError as e:
            raise SystemExit(f"ninep-server: cannot export {path}: {e.strerror}") from None
    server = Server(exports, max_msize=args.msize)
    try:
        trio.run(run, server, args.listen or [parse_address(DEFAULT_ADDRESS)])
    except OSError as e:
        raise SystemExit(f"ninep-server: {e}") from None
    return 0
