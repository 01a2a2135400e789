"""`drvfs automount`: every export a server lists, mounted at ROOT/<name>, as WSL at boot.

It reads drvfs.conf (`drvfs.bootconf`), asks the server for its listing
(waiting for it with `--wait`, one line per attempt), mounts each export not
mounted yet with `drvfs mount` (export C at ROOT/c), then, with `mountFsTab`,
runs `mount -a` as WSL does. Export names come from the server and automount
runs as root: a name that is not one directory name is refused. `--unmount`
unmounts the drvfs mounts it would make; `--dry-run` prints the commands.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import trio

from ninep.listing import ExportInfo, NoListing

from . import bootconf, exports, mounts
from .options import OptionError, export_name

RETRY = 2.0  # seconds between attempts to reach the server
EXIT_USAGE, EXIT_FAILURE = 1, 32  # as drvfs mount's


@dataclass(frozen=True)
class Planned:
    """One export to mount."""

    export: str
    mountpoint: str
    options: str  # for -o; "" for none


def say(line: str) -> None:
    """One line of the log (stderr: the journal, under systemd)."""
    print(f"drvfs automount: {line}", file=sys.stderr, flush=True)


def refusal(name: str) -> str | None:
    """Why export `name` cannot be mounted at ROOT/<name>, or None."""
    if name in (".", "..") or "\0" in name or "/" in name:
        return "not one directory name"
    try:
        export_name(name)
    except OptionError as e:
        return str(e)
    return None


def plan(conf: bootconf.BootConf, listed: list[ExportInfo]) -> list[Planned]:
    """The mounts to make of the exports `listed` (refusals and sections of no listed
    export said, one line each)."""
    out = []
    for info in listed:
        why = refusal(info.name)
        if why is not None:
            say(f"refusing export {info.name!r}: {why}")
            continue
        own = conf.export(info.name)
        if own.enabled:
            where = own.mountpoint or os.path.join(conf.root, info.name.lower())
            options = ",".join(o for o in (conf.options, own.options) if o)
            out.append(Planned(info.name, where, options))
    for name in sorted(set(conf.exports) - {info.name for info in listed}):
        say(f"[export {name}]: the server lists no export {name!r}")
    return out


def mine(conf: bootconf.BootConf) -> list[mounts.Mount]:
    """The drvfs mounts automount makes: those directly under root, or on a mountpoint of
    a section."""
    places = {mounts.real(e.mountpoint) for e in conf.exports.values() if e.mountpoint}
    root = mounts.real(conf.root)
    return [m for m in mounts.table() if m.export is not None
            and (os.path.dirname(m.mountpoint) == root or m.mountpoint in places)]  # fmt: skip


def _listing(server: str, wait: float) -> list[ExportInfo] | None:
    """The server's listing, trying again every RETRY seconds for up to `wait` seconds while
    it cannot be reached; None (said) if there is none."""
    deadline, attempt = time.monotonic() + wait, 1
    while True:
        try:
            return trio.run(exports.fetch, server)
        except NoListing as e:
            say(f"{server}: {e}")
            return None
        except OSError as e:
            left = deadline - time.monotonic()
            if left <= 0:
                say(f"{server}: cannot list the exports ({e.strerror}); gave up at attempt "
                    f"{attempt}")  # fmt: skip
                return None
            say(f"{server}: not reachable yet ({e.strerror}); attempt {attempt}, again in "
                f"{min(RETRY, left):g} s")  # fmt: skip
            time.sleep(min(RETRY, left))
            attempt += 1


def _run(command: list[str], dry_run: bool) -> bool:
    """Run `command` (print it with `dry_run`); whether it succeeded."""
    if dry_run:
        print(" ".join(command))
        return True
    return subprocess.run(command, stdin=subprocess.DEVNULL, check=False).returncode == 0


def _drvfs(*args: str) -> list[str]:
    return [sys.executable, "-m", "drvfs", *args]


def mount_exports(conf: bootconf.BootConf, wait: float, dry_run: bool) -> int:
    """Mount what the listing and drvfs.conf say; the exit status."""
    listed = _listing(conf.server, wait)
    if listed is None:
        return EXIT_USAGE
    status = 0
    for p in plan(conf, listed):
        on = mounts.mounted_on(p.mountpoint)
        if on is not None:
            say(f"{p.mountpoint}: already mounted ({on.source} {on.fstype}): left alone")
            continue
        if not dry_run:
            os.makedirs(p.mountpoint, exist_ok=True)
        options = ["-o", p.options] if p.options else []
        command = _drvfs("mount", "--server", conf.server, *options, "--", p.export, p.mountpoint)
        if not _run(command, dry_run):
            say(f"{p.export}: not mounted on {p.mountpoint}")
            status = EXIT_FAILURE
    return status


def unmount(conf: bootconf.BootConf, dry_run: bool) -> int:
    """Unmount what automount mounts; the exit status."""
    status = 0
    for m in reversed(mine(conf)):
        if not _run(_drvfs("umount", m.mountpoint), dry_run):
            status = EXIT_FAILURE
    return status


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `automount` subcommand."""
    p = sub.add_parser("automount", help="mount every export of a server, as WSL at boot")
    p.add_argument("--config", metavar="FILE",
                   help=f"drvfs.conf, in wsl.conf's format (default {bootconf.DEFAULT_PATH}; "
                   "missing: the defaults)")  # fmt: skip
    p.add_argument("--fstab", metavar="FILE", default="/etc/fstab",
                   help="the fstab of mountFsTab (mount -a -T FILE)")  # fmt: skip
    p.add_argument("--wait", metavar="SECONDS", type=float, default=0.0,
                   help=f"while the server cannot be reached, try again every {RETRY:g} s "
                   "for this long (default 0: once)")  # fmt: skip
    p.add_argument("-n", "--dry-run", action="store_true", help="print what it would do")
    p.add_argument("--unmount", action="store_true", help="unmount what it mounts")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """`drvfs automount`: 0, 1 (drvfs.conf or the listing), 32 (a mount failed)."""
    try:
        conf = bootconf.load(args.config or bootconf.DEFAULT_PATH, missing_ok=not args.config)
    except bootconf.BootConfError as e:
        print(f"drvfs: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.unmount:
        return unmount(conf, args.dry_run)
    status = mount_exports(conf, args.wait, args.dry_run) if conf.enabled else 0
    if conf.mount_fstab and not _run(["mount", "-a", "-T", args.fstab], args.dry_run):
        status = status or EXIT_FAILURE
    return status
