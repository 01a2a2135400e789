"""`ninep-server`: export host directories over 9P2000.L."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import ipaddress
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

import trio

from . import config, options, systemd
from .admission import Admission, IPNetwork, host_address, is_loopback
from .backend import Backend, Export
from .config import ExportEntry
from .constants import MIN_MSIZE, SERVER_MSIZE
from .identity import Identity, become, lookup_group, lookup_user, root_refusal
from .limits import Limits, ServerLimits
from .server import Listening, Server
from .transport import DEFAULT_ADDRESS, Address, ListenError, parse_address
from .version import PROTOCOLS, version_line
from .watch import WATCH_SHARE, set_share

log = logging.getLogger("ninep.server")

EACH_EXPORT = "each export"  # the argument group of the options an export may set itself
DEFAULT_BACKEND = "volfs"

EXAMPLES = """\
examples:
  ninep-server --export C=/srv/c
      serve /srv/c as export "C" on tcp:127.0.0.1:5640, as the user running it
  sudo ninep-server --user alice --export C=/srv/c --listen unix:/run/ninep.sock
      bind as root, then serve as alice (and alice's groups)
  ninep-server --export C=/srv/c --listen tcp:0.0.0.0:564 --allow-net 192.168.122.0/24
      serve the hosts of one network (trusted as NFS trusts AUTH_SYS hosts)
  ninep-server --export C=/srv/c --listen fd:0,1      (one connection on stdin/stdout, for inetd)
  ninep-server --config /etc/ninep-server.toml
      exports, listeners and options from a file: its keys are the long options

who may connect (docs/security.md): root and the serving user, and the uids given
with --trust-uid (trusted: their claims are taken as said) or --allow-uid (bounded:
they attach only as themselves), found with SO_PEERCRED on unix sockets and from the
owner of the peer's socket on loopback TCP; other hosts only from --allow-net networks.

mount from a Linux guest:
  mount -t 9p -o trans=tcp,port=5640,version=9p2000.L,aname=C HOST /mnt/c
"""


def _export_arg(text: str) -> ExportEntry:
    name, sep, path = text.partition("=")
    if not sep or not name or not path or ";" in name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PATH, e.g. C=/srv/c")
    return ExportEntry(name, path)


def _msize_arg(text: str) -> int:
    value = int(text, 0)
    if value < MIN_MSIZE:
        raise argparse.ArgumentTypeError(f"msize must be at least {MIN_MSIZE}")
    return value


def _share_arg(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("a share is between 0 and 1")
    return value


def _network_arg(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _address_arg(text: str) -> Address:
    try:
        return parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# (option, field of ServerLimits or Limits, what it bounds): each limit declared once
_LIMITS = [
    ("--max-connections", "connections", "connections served at once"),
    ("--max-connections-per-peer", "connections_per_peer",
     "connections of one local uid, or of one /24 (/64) network of other hosts"),
    ("--max-fids", "fids", "fids held by all connections together"),
    ("--max-open-files", "open_files", "files open on all connections together "
     "(default: half the descriptor limit)"),
    ("--max-open-files-per-connection", "connection_open_files",
     "files open on one connection (default: an eighth of the descriptor limit)"),
]  # fmt: skip


def _positive_arg(text: str) -> int:
    value = int(text, 0)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _with_default(field: str, what: str) -> str:
    """`what`, with the default of the limit `field` where it is a number."""
    for f in (*dataclasses.fields(ServerLimits), *dataclasses.fields(Limits)):
        if f.name == field and isinstance(f.default, int):
            return f"{what} (default {f.default})"
    return what


def limits_of(args: argparse.Namespace) -> tuple[Limits, ServerLimits]:
    """The per-connection and server-wide limits of the command line (defaults elsewhere)."""
    given = {field: getattr(args, field) for _, field, _ in _LIMITS
             if getattr(args, field, None) is not None}  # fmt: skip
    per_connection = {}
    if "connection_open_files" in given:
        per_connection["open_files"] = given.pop("connection_open_files")
    return Limits(**per_connection), ServerLimits(**given)


def parser(backend_name: str = DEFAULT_BACKEND) -> argparse.ArgumentParser:
    """The command line, with the options of the exports of backend `backend_name`."""
    backend = load_backend(backend_name)
    p = argparse.ArgumentParser(
        prog="ninep-server",
        description="Export host directories over 9P2000.L.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="read exports and options from FILE (TOML, docs/boot.md); flags override it",
    )
    p.add_argument(
        "--export",
        metavar="NAME=PATH",
        type=_export_arg,
        action="append",
        help="export directory PATH as NAME (the attach name); repeatable",
    )
    p.add_argument(
        "--listen",
        metavar="ADDR",
        type=_address_arg,
        action="append",
        help=f"tcp:HOST:PORT, unix:PATH or fd:IN,OUT; repeatable (default {DEFAULT_ADDRESS})",
    )
    each = p.add_argument_group(
        EACH_EXPORT, "options of every export; an export of --config may set its own"
    )
    each.add_argument("--read-only", action="store_true", help="refuse every modification (EROFS)")
    for option in backend.options:
        if option.flag is not None:
            options.add_flag(each, option)
    p.add_argument(
        "--user",
        metavar="NAME",
        help="after binding the listeners, serve as this user and its groups (needs root)",
    )
    p.add_argument(
        "--allow-root",
        action="store_true",
        help="started as root without --user: serve as root on purpose",
    )
    p.add_argument(
        "--allow-uid",
        metavar="UID",
        action="append",
        default=[],
        help="also serve local connections of this uid or user name, bounded by it: they "
        "attach only as that uid (root and the serving user are always served, trusted); "
        "repeatable",
    )
    p.add_argument(
        "--trust-uid",
        metavar="UID",
        action="append",
        default=[],
        help="also serve local connections of this uid or user name and take its claims as "
        "said, any uid included (a VM's QEMU run as a third user); repeatable",
    )
    p.add_argument(
        "--allow-net",
        metavar="CIDR",
        type=_network_arg,
        action="append",
        default=[],
        help="serve connections from other hosts of this network; needed to --listen on an "
        "address that is not loopback; repeatable",
    )
    p.add_argument(
        "--socket-group",
        metavar="GROUP",
        help="unix sockets are made 0660 with this group (default: 0600)",
    )
    p.add_argument(
        "--msize",
        type=_msize_arg,
        default=SERVER_MSIZE,
        help=f"largest message size accepted (default {SERVER_MSIZE}: 1 MiB of data + headers)",
    )
    p.add_argument(
        "--stats",
        metavar="PATH",
        help="serve the server's figures as JSON on this unix socket (python -m ninep.stats PATH)",
    )
    limits = p.add_argument_group(
        "limits", "bounds on all connections together, and on each (docs/operations.md)"
    )
    for flag, field, what in _LIMITS:
        limits.add_argument(flag, metavar="N", type=_positive_arg, dest=field,
                            help=_with_default(field, what))  # fmt: skip
    p.add_argument(
        "--watch-share",
        metavar="FRACTION",
        type=_share_arg,
        default=WATCH_SHARE,
        help="the share of the serving user's inotify watches (fs.inotify.max_user_watches) "
        f"that all exports together may use for change notification (default {WATCH_SHARE}); "
        "past it, directories are served uncovered (short caching)",
    )
    p.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        help="export backend (entry point group ninep.backends)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    p.add_argument("--trace", action="store_true", help="log every message sent and received")
    p.add_argument(
        "--version",
        action="version",
        help="print the version and the protocols",
        version=f"{version_line('ninep-server')}\nprotocols: {', '.join(PROTOCOLS)}",
    )
    return p  # fmt: skip


def load_backend(name: str) -> Backend[..., Export]:
    """The backend registered under `name` in the `ninep.backends` entry points (a bare
    export factory is a backend without options)."""
    found = entry_points(group="ninep.backends", name=name)
    if not found:
        raise SystemExit(f"ninep-server: no backend named {name!r} is installed")
    loaded: Backend[..., Export] | Callable[..., Export] = next(iter(found)).load()
    return loaded if isinstance(loaded, Backend) else Backend(loaded)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, over the config file it names (SystemExit with one line if that
    cannot be used)."""
    argv = sys.argv[1:] if argv is None else argv
    name = _backend_named(argv)
    p = parser(name)
    args = p.parse_args(argv)
    if args.config is not None:
        try:
            settings = config.load(args.config, p, EACH_EXPORT)
        except config.ConfigError as e:
            raise SystemExit(f"ninep-server: {e}") from None
        config.apply(settings, args, config.given(lambda: parser(name), argv))
        if not args.export:
            raise SystemExit(f"ninep-server: {args.config}: no export: add an [export.NAME] table")
    elif not args.export:
        p.error("give --export NAME=PATH (or --config FILE)")
    return args


def _backend_named(argv: Sequence[str]) -> str:
    """The backend `argv` names, or its config file: its options are the parser's."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend")
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.backend is None and known.config is not None:
        known.backend = config.peek(known.config, "backend")
    return known.backend if isinstance(known.backend, str) else DEFAULT_BACKEND


def _own(args: argparse.Namespace, entry: ExportEntry) -> argparse.Namespace:
    """The options of export `entry`: its own, else the server's."""
    return argparse.Namespace(**{**vars(args), **entry.options})


@dataclass(frozen=True)
class Plan:
    """What to start, checked before anything is bound."""

    args: argparse.Namespace
    addresses: list[Address]
    user: Identity | None
    socket_group: int | None
    allow_uids: list[int]
    trust_uids: list[int]
    activated: tuple[socket.socket, ...] = ()  # passed by systemd


def _uid(name: str) -> int:
    return int(name) if name.isdigit() else lookup_user(name).uid


def plan(args: argparse.Namespace, activated: Sequence[socket.socket] = ()) -> Plan:
    """Check the command line as a whole; SystemExit with one line if it cannot start.

    Sockets `activated` by systemd are served instead of the --listen addresses.
    """
    addresses = args.listen or [parse_address(DEFAULT_ADDRESS)]
    if activated:
        if args.listen:
            log.info("socket activation: serving the sockets systemd passed, not --listen")
        addresses = []
    try:
        user = lookup_user(args.user) if args.user is not None else None
        group = lookup_group(args.socket_group) if args.socket_group is not None else None
        uids = [_uid(u) for u in args.allow_uid]
        trusted = [_uid(u) for u in args.trust_uid]
    except ValueError as e:
        raise SystemExit(f"ninep-server: {e}") from None
    refusal = root_refusal(user, args.allow_root)
    if refusal is not None:
        raise SystemExit(f"ninep-server: {refusal}")
    as_root = (user.uid if user is not None else os.geteuid()) == 0
    if uids and as_root:
        _check_confined(args)
    for a in addresses:
        _check_resolves(a)
        host = host_address(a.host) if a.scheme == "tcp" else None
        if a.scheme == "tcp" and not args.allow_net and (host is None or not is_loopback(host)):
            raise SystemExit(
                f"ninep-server: {a} is not a loopback address: give --allow-net CIDR for the"
                " hosts to serve there (docs/security.md)"
            )
    return Plan(args, addresses, user, group, uids, trusted, tuple(activated))


def _check_confined(args: argparse.Namespace) -> None:
    """SystemExit unless every export enforces each client's permissions (the backend's
    confining option), so that a bounded peer of a server run as root acts as itself."""
    confining = load_backend(args.backend).confining()
    if confining is not None and all(
        options.given(_own(args, e), [confining]) for e in args.export
    ):
        return
    needs, them = ("--user", "it") if confining is None else (f"--user or --{confining.flag}",
                                                              "them")  # fmt: skip
    raise SystemExit(
        f"ninep-server: --allow-uid on a server that serves as root needs {needs}: without "
        f"{them} every client acts as root on the host (docs/security.md)"
    )


def _check_resolves(a: Address) -> None:
    """SystemExit with one line if `a` is a tcp address whose host name does not resolve."""
    if a.scheme != "tcp" or host_address(a.host) is not None:
        return
    try:
        socket.getaddrinfo(a.host, a.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise SystemExit(f"ninep-server: cannot listen on {a}: {a.host}: {e.strerror}") from None


def open_exports(args: argparse.Namespace) -> dict[str, Export]:
    """The exports of the command line (or config file), opened as the serving identity."""
    backend = load_backend(args.backend)
    exports: dict[str, Export] = {}
    for entry in args.export:
        if entry.name in exports:
            raise SystemExit(f"ninep-server: export {entry.name!r} given twice")
        own = _own(args, entry)
        try:
            _check_readable_directory(entry.path)
            exports[entry.name] = backend(
                entry.path, read_only=own.read_only, **options.given(own, backend.options)
            )
        except OSError as e:
            raise SystemExit(f"ninep-server: cannot export {entry.path}: {e.strerror}") from None
    return exports


def _check_readable_directory(path: str) -> None:
    """OSError unless `path` is a directory this process may list and enter."""
    with os.scandir(path):
        pass
    if not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)


async def run(p: Plan) -> None:
    """Bind, become the serving user, open the exports, serve until SIGINT or SIGTERM."""
    others = [a for a in p.addresses if a.scheme != "fd"]
    if p.args.stats is not None:  # bound with the others, before the serving user has less
        others.append(Address("unix", path=p.args.stats))
    listening = await Listening.open(others, p.socket_group)
    listening.adopt(p.activated)
    stats = listening.split_off(p.args.stats)
    try:
        if p.user is not None:
            for part in (listening, stats):
                part.hand_over(p.user.uid)
            become(p.user)
        admission = Admission.serving(os.geteuid(), p.allow_uids, p.args.allow_net,
                                      p.trust_uids)  # fmt: skip
        set_share(p.args.watch_share)  # the serving user's watches, for every export
        limits, server_limits = limits_of(p.args)
        server = Server(open_exports(p.args), p.args.msize, admission, limits, server_limits)
        async with trio.open_nursery() as nursery:
            if stats.listeners:
                await nursery.start(server.serve_stats, stats)
            await _serve(server, listening, [a for a in p.addresses if a.scheme == "fd"])
            nursery.cancel_scope.cancel()
    finally:
        listening.close()
        stats.close()


async def _serve(server: Server, listening: Listening, fd_addresses: Sequence[Address]) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            if listening.listeners:
                await nursery.start(server.serve_listening, listening)
            for a in fd_addresses:
                nursery.start_soon(_serve_fds_then_stop, server, a, nursery.cancel_scope)
            systemd.notify("READY=1")  # listening, exports open: a Type=notify unit is up
            async for signum in signals:
                log.info("%s: shutting down", signal.Signals(signum).name)
                systemd.notify("STOPPING=1")
                nursery.cancel_scope.cancel()
                break


async def _serve_fds_then_stop(server: Server, address: Address, scope: trio.CancelScope) -> None:
    await server.serve_fds(address.fds)
    scope.cancel()


def raise_descriptor_limit() -> None:
    """Allow this process as many descriptors as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)  # fmt: skip
    if args.trace:
        logging.getLogger("ninep.trace").setLevel(logging.DEBUG)
        logging.getLogger().setLevel(min(level, logging.DEBUG))
    checked = plan(args, systemd.activated_sockets())
    raise_descriptor_limit()
    try:
        trio.run(run, checked)
    except BaseException as e:  # one line for the user; -vv shows the traceback
        inner = _unwrap(e)
        if isinstance(inner, SystemExit | KeyboardInterrupt):
            raise inner from None
        if args.verbose >= 2 and not isinstance(inner, ListenError):
            raise
        raise SystemExit(f"ninep-server: {_describe(inner)}") from None
    return 0


def _unwrap(e: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups of one, else `e`."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror}"
    return str(e) or type(e).__name__
