"""Command lines: `drvfs mount|umount|install-helper|...` and `mount.drvfs`, mount(8)'s helper.

Exit codes follow mount(8): 0 success, 1 bad usage (an unknown option, say),
32 mount failure (server unreachable, attach refused, mount point unusable); 1 also when
the server refuses the options sent to it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import trio

from . import automount, exports, winpath
from .mount import MountError, serve
from .options import MountOptions, OptionError, export_name, parse_options

EXIT_USAGE = 1
EXIT_FAILURE = 32
HELPER = "mount.drvfs"
#: The modules of the other subcommands: each has add_parser(sub), which sets args.run.
SUBCOMMANDS = (exports, automount, winpath)

log = logging.getLogger("drvfs")

EXAMPLES = """\
examples:
  drvfs mount --server unix:/run/ninep.sock -o metadata,uid=1000 C /mnt/c
  drvfs umount /mnt/c
  drvfs install-helper            (then: mount -t drvfs C: /mnt/c -o server=tcp:HOST:5640)
  fstab:  C:  /mnt/c  drvfs  metadata,server=tcp:127.0.0.1:5640,allow_other  0 0
  drvfs exports tcp:127.0.0.1:5640          (the exports a server offers)
  drvfs automount --config /etc/drvfs.conf  (every export at /mnt/<name>, as WSL at boot)
  drvfs path -w /mnt/c/Users/x              (C:\\Users\\x; drvfs path 'C:\\Users\\x' and back)
"""


class UsageError(Exception):
    """Bad command line: exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="drvfs",
        description="Mount a 9P2000.L export with FUSE, the way WSL mounts a Windows drive.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    m = sub.add_parser("mount", help="mount an export")
    m.add_argument("export", metavar="EXPORT", help="the export to mount: C or C:")
    m.add_argument("mountpoint", metavar="MOUNTPOINT")
    m.add_argument("--server", metavar="ADDR", help="tcp:HOST:PORT or unix:PATH (-o server=)")
    m.add_argument(
        "--aname",
        action="store_true",
        help="EXPORT is the attach name, sent as is (another server's, e.g. diod's export path)",
    )
    m.add_argument(
        "-o",
        dest="options",
        metavar="OPTIONS",
        action="append",
        default=[],
        help="comma-separated mount options (repeatable)",
    )
    m.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    m.add_argument(
        "--ready-fd",
        type=int,
        metavar="FD",
        help="write 'ok' (or 'error: WHY') to FD once mounted, then close it",
    )
    m.add_argument("--log", metavar="FILE", help="log to FILE once in the background")
    m.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    u = sub.add_parser("umount", help="unmount a drvfs mount")
    u.add_argument("mountpoint", metavar="MOUNTPOINT")
    u.add_argument("-l", "--lazy", action="store_true", help="detach now, clean up when unused")
    h = sub.add_parser("install-helper", help=f"link {HELPER} into /sbin for mount -t drvfs")
    h.add_argument("--dir", default="/sbin", help="where mount(8) looks for helpers")
    h.add_argument("--remove", action="store_true", help="remove the link instead")
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """`drvfs`."""
    try:
        args = parser().parse_args(argv)
        if args.command == "mount":
            return _mount(args)
        if args.command == "umount":
            return umount(args.mountpoint, lazy=args.lazy)
        if args.command == "install-helper":
            return install_helper(Path(args.dir), remove=args.remove)
        return int(args.run(args))
    except (UsageError, OptionError) as e:
        print(f"drvfs: {e}", file=sys.stderr)
        return EXIT_USAGE


def mount_helper(argv: Sequence[str] | None = None) -> int:
    """`mount.drvfs SPEC DIR [-sfnv] [-o OPTIONS] [-N NS] [-t TYPE]`, as mount(8) calls it."""
    p = _Parser(prog=HELPER, description="mount(8) helper for drvfs")
    p.add_argument("spec", metavar="SPEC", help="the export: C: names export C")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("-o", dest="options", action="append", default=[])
    p.add_argument("-s", dest="sloppy", action="store_true", help="ignore unknown options")
    p.add_argument("-f", dest="fake", action="store_true", help="do everything but mount")
    p.add_argument("-n", dest="no_mtab", action="store_true", help="(no mtab to write)")
    p.add_argument("-v", dest="verbose", action="count", default=0)
    p.add_argument("-N", dest="namespace", help="(not supported)")
    p.add_argument("-t", dest="type", help="(ignored: always drvfs)")
    try:
        args = p.parse_args(argv)
        if args.namespace:
            raise UsageError("-N (mount namespaces) is not supported")
        export = export_name(args.spec)
        options = _options(args.options, None, sloppy=args.sloppy)
    except (UsageError, OptionError) as e:
        print(f"{HELPER}: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.fake:
        return 0
    return _start(export, args.dir, options, args.options, None, args.verbose, None)


def _options(texts: Sequence[str], server: str | None, sloppy: bool = False) -> MountOptions:
    opts = MountOptions()
    for text in texts:
        opts = parse_options(text, opts, sloppy=sloppy)
    return replace(opts, server=server) if server else opts


def _mount(args: argparse.Namespace) -> int:
    export = args.export if args.aname else export_name(args.export)
    options = _options(args.options, args.server)
    if args.foreground:
        _setup_logging(args.verbose)
        return run_foreground(export, args.mountpoint, options, args.ready_fd)
    return _start(
        export, args.mountpoint, options, args.options, args.server, args.verbose, args.log,
        args.aname,
    )  # fmt: skip


def _setup_logging(verbose: int) -> None:
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        format="%(asctime)s drvfs[%(process)d] %(levelname)s %(message)s",
        stream=sys.stderr,
    )


def run_foreground(
    export: str, mountpoint: str, options: MountOptions, ready_fd: int | None = None
) -> int:
    """Mount and serve in this process; tell `ready_fd` how the mount went."""

    def report(message: str) -> None:
        if ready_fd is not None:
            try:
                os.write(ready_fd, message.encode() + b"\n")
            finally:
                os.close(ready_fd)

    if not os.path.isdir(mountpoint):
        error = f"mount point {mountpoint} is not a directory"
        print(f"drvfs: {error}", file=sys.stderr)
        report(f"error: {error}")
        return EXIT_FAILURE
    try:
        trio.run(serve, export, mountpoint, options, lambda: report("ok"))
    except MountError as e:
        print(f"drvfs: {e}", file=sys.stderr)
        report(f"{'usage' if e.usage else 'error'}: {e}")
        return EXIT_USAGE if e.usage else EXIT_FAILURE
    return 0


def _start(
    export: str,
    mountpoint: str,
    options: MountOptions,
    texts: Sequence[str],
    server: str | None,
    verbose: int,
    log_file: str | None,
    raw_aname: bool = False,
) -> int:
    """Mount in a background process; return once it is mounted (0) or has failed (32)."""
    if not os.path.isdir(mountpoint):
        print(f"drvfs: mount point {mountpoint} is not a directory", file=sys.stderr)
        return EXIT_FAILURE
    read_fd, write_fd = os.pipe()
    command = [sys.executable, "-m", "drvfs", "mount", "--foreground", "--ready-fd", str(write_fd)]
    command += ["-v"] * verbose
    for text in texts:
        command += ["-o", text]
    if server:
        command += ["--server", server]
    if raw_aname:
        command += ["--aname"]
    command += ["--", export, os.path.abspath(mountpoint)]
    log_out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    try:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_out,
            pass_fds=(write_fd,),
            start_new_session=True,
        )
    finally:
        os.close(write_fd)
        if log_file:
            log_out.close()  # type: ignore[union-attr]
    with os.fdopen(read_fd, "rb") as pipe:
        answer = pipe.read().decode(errors="replace").strip()
    if answer == "ok":
        return 0
    child.wait()
    kind, _, why = answer.partition(": ")
    print(f"drvfs: {why or f'the mount process exited with {child.returncode}'}", file=sys.stderr)
    return EXIT_USAGE if kind == "usage" else EXIT_FAILURE


def umount(mountpoint: str, lazy: bool = False) -> int:
    """Unmount with fusermount3 (or umount(8) if it is missing); the drvfs process then exits."""
    fusermount = shutil.which("fusermount3") or shutil.which("fusermount")
    if fusermount:
        command = [fusermount, "-u", *(["-z"] if lazy else []), mountpoint]
    else:
        command = ["umount", *(["-l"] if lazy else []), mountpoint]
    done = subprocess.run(command, check=False)
    return 0 if done.returncode == 0 else EXIT_FAILURE


def helper_script() -> Path:
    """The installed `mount.drvfs` console script."""
    return Path(sysconfig.get_path("scripts")) / HELPER


def install_helper(directory: Path, remove: bool = False) -> int:
    """Link DIR/mount.drvfs to the console script, so that `mount -t drvfs` finds it."""
    link = directory / HELPER
    if remove:
        if link.is_symlink():
            link.unlink()
        return 0
    target = helper_script()
    if not target.exists():
        print(f"drvfs: {target} is not installed (pip install the package)", file=sys.stderr)
        return EXIT_FAILURE
    if link.exists() and not link.is_symlink():
        print(f"drvfs: {link} exists and is not a link: not replacing it", file=sys.stderr)
        return EXIT_FAILURE
    tmp = directory / f".{HELPER}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)
    print(f"{link} -> {target}")
    return 0
