"""Command lines: `drvfs mount|umount|install-helper|exports|automount|path` and the helpers
of mount(8), `mount.drvfs` and `mount.fuse.drvfs`.

Exit codes follow mount(8): 0 success, 1 bad usage (an unknown option, a bad value or address),
32 mount failure (server unreachable, attach refused, mount point missing, already holding
drvfs or dead) or unmount failure (not mounted, busy); 1 also when the server refuses the
options sent to it. Each failure is one line on stderr.
"""

from __future__ import annotations

import argparse
import errno
import logging
import logging.handlers
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import trio

from ninep.transport import parse_address

from . import automount, exports, version, winpath
from .mount import MountError, mounted_at, serve
from .options import MountOptions, OptionError, export_name, parse_options

EXIT_USAGE = 1
EXIT_FAILURE = 32
HELPER = "mount.drvfs"
HELPERS = (HELPER, "mount.fuse.drvfs")  # mount -t drvfs, mount -t fuse.drvfs (the type shown)
FSTYPE = "fuse.drvfs"  # what /proc/mounts shows
#: The modules of the other subcommands: each has add_parser(sub), which sets args.run.
SUBCOMMANDS = (exports, automount, winpath)

log = logging.getLogger("drvfs")

EXAMPLES = """\
examples:
  drvfs mount --server unix:/run/ninep.sock -o metadata,uid=1000 C /mnt/c
  drvfs umount /mnt/c
  drvfs install-helper            (then: mount -t drvfs C: /mnt/c -o server=tcp:HOST:5640)
  fstab:  C:  /mnt/c  drvfs  metadata,server=tcp:127.0.0.1:5640,allow_other,_netdev,nofail  0 0
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


class _Version(argparse.Action):
    """--version: the report of `drvfs.version` (made only when asked: it probes the kernel)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the versions of drvfs, pyfuse3, libfuse and the kernel's "
                         "FUSE protocol")  # fmt: skip

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        print(version.report(parser.prog))
        parser.exit()


def _server_arg(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="drvfs",
        description="Mount a 9P2000.L export with FUSE, the way WSL mounts a Windows drive.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    m = sub.add_parser("mount", help="mount an export")
    m.add_argument("export", metavar="EXPORT", help="the export to mount: C or C:")
    m.add_argument("mountpoint", metavar="MOUNTPOINT")
    m.add_argument("--server", metavar="ADDR", type=_server_arg,
                   help="tcp:HOST:PORT or unix:PATH (-o server=)")  # fmt: skip
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
        help="comma-separated mount options (repeatable; drvfs(8) lists them)",
    )
    m.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    m.add_argument(
        "--ready-fd",
        type=int,
        metavar="FD",
        help="write 'ok' (or 'error: WHY') to FD once mounted, then close it",
    )
    m.add_argument("--log", metavar="FILE",
                   help="log to FILE once in the background (default: syslog)")  # fmt: skip
    m.add_argument("--syslog", action="store_true", help=argparse.SUPPRESS)  # set by _start
    m.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    u = sub.add_parser("umount", help="unmount a drvfs mount")
    u.add_argument("mountpoint", metavar="MOUNTPOINT")
    u.add_argument("-l", "--lazy", action="store_true", help="detach now, clean up when unused")
    h = sub.add_parser("install-helper", help=f"link {' and '.join(HELPERS)} into /sbin")
    h.add_argument("--dir", default="/sbin", help="where mount(8) looks for helpers")
    h.add_argument("--remove", action="store_true", help="remove the links instead")
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return p


def helper_parser(prog: str = HELPER) -> argparse.ArgumentParser:
    """The command line of `mount.drvfs` (and `mount.fuse.drvfs`), as mount(8) calls it."""
    p = _Parser(prog=prog, description="mount(8) helper for drvfs: mount -t drvfs SPEC DIR")
    p.add_argument("spec", metavar="SPEC", help="the export: C: names export C")
    p.add_argument("dir", metavar="DIR", help="the mount point")
    p.add_argument("-o", dest="options", metavar="OPTIONS", action="append", default=[],
                   help="comma-separated mount options (drvfs(8) lists them)")  # fmt: skip
    p.add_argument("-s", dest="sloppy", action="store_true", help="ignore unknown options")
    p.add_argument("-f", dest="fake", action="store_true", help="do everything but mount")
    p.add_argument("-n", dest="no_mtab", action="store_true", help="(no mtab to write)")
    p.add_argument("-v", dest="verbose", action="count", default=0, help="more logging")
    p.add_argument("-N", dest="namespace", metavar="NS", help="(not supported)")
    p.add_argument("-t", dest="type", metavar="TYPE", help="(ignored: always drvfs)")
    p.add_argument("-V", "--version", action=_Version)
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
    called = os.path.basename(sys.argv[0])
    p = helper_parser(called if called in HELPERS else HELPER)
    try:
        args = p.parse_args(argv)
        if args.namespace:
            raise UsageError("-N (mount namespaces) is not supported")
        export = export_name(args.spec)
        options = _options(args.options, None, sloppy=args.sloppy)
    except (UsageError, OptionError) as e:
        print(f"{p.prog}: {e}", file=sys.stderr)
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
        _setup_logging(2 if options.debug else args.verbose, args.syslog)
        return run_foreground(export, args.mountpoint, options, args.ready_fd)
    return _start(
        export, args.mountpoint, options, args.options, args.server, args.verbose, args.log,
        args.aname,
    )  # fmt: skip


def _setup_logging(verbose: int, syslog: bool = False) -> None:
    """Log to stderr, or to syslog (a background drvfs with no --log): stderr if none runs."""
    level = logging.WARNING - 10 * min(verbose, 2)
    if syslog:
        try:
            handler = logging.handlers.SysLogHandler(
                "/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON
            )
        except OSError:
            pass
        else:
            handler.setFormatter(logging.Formatter("drvfs[%(process)d]: %(levelname)s %(message)s"))
            logging.basicConfig(level=level, handlers=[handler])
            return
    logging.basicConfig(
        level=level,
        format="%(asctime)s drvfs[%(process)d] %(levelname)s %(message)s",
        stream=sys.stderr,
    )


def mountpoint_problem(mountpoint: str) -> str | None:
    """Why `mountpoint` cannot take a drvfs mount (None if it can): missing, not a directory,
    a dead mount, or drvfs already mounted there."""
    try:
        st = os.stat(mountpoint)
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            return (f"mount point {mountpoint}: {e.strerror}: a FUSE mount whose process has "
                    f"ended, or a drvfs one whose server is away; drvfs umount -l {mountpoint} "
                    "clears it")  # fmt: skip
        return f"mount point {mountpoint}: {e.strerror}"
    if not stat.S_ISDIR(st.st_mode):
        return f"mount point {mountpoint} is not a directory"
    mounted = mounted_at(os.path.realpath(mountpoint))
    if mounted is not None and mounted.fstype == FSTYPE:
        return (f"{mountpoint} is already mounted ({mounted.source} {FSTYPE}): "
                f"drvfs umount {mountpoint} first")  # fmt: skip
    return None


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

    error = mountpoint_problem(mountpoint)
    if error is not None:
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
    """Mount in a background process; return once it is mounted (0) or has failed (32).

    The background process logs to `log_file`, else to syslog."""
    error = mountpoint_problem(mountpoint)
    if error is not None:
        print(f"drvfs: {error}", file=sys.stderr)
        return EXIT_FAILURE
    read_fd, write_fd = os.pipe()
    # -P: this drvfs, not one the working directory holds (a clone, under mount -a)
    command = [sys.executable, "-P", "-m", "drvfs", "mount", "--foreground",
               "--ready-fd", str(write_fd)]  # fmt: skip
    command += ["-v"] * verbose + ["--syslog"] * (log_file is None)
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
    """Unmount with fusermount3 (or umount(8) if it is missing); the drvfs process then exits.

    One line and 32 if nothing is mounted there, or if it is busy (with the hint of -l)."""
    if mounted_at(os.path.realpath(mountpoint)) is None:
        print(f"drvfs: {mountpoint} is not mounted", file=sys.stderr)
        return EXIT_FAILURE
    fusermount = shutil.which("fusermount3") or shutil.which("fusermount")
    if fusermount:
        command = [fusermount, "-u", *(["-z"] if lazy else []), mountpoint]
    else:
        command = ["umount", *(["-l"] if lazy else []), mountpoint]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode == 0:
        return 0
    said = (done.stderr.strip().splitlines() or [f"{command[0]} failed"])[-1]
    if "busy" in said.lower():
        said = (f"cannot unmount {mountpoint}: it is busy (a process has a file open there or "
                f"works in it: fuser -vm {mountpoint}); drvfs umount -l {mountpoint} detaches it "
                "now and ends it once unused")  # fmt: skip
    print(f"drvfs: {said}", file=sys.stderr)
    return EXIT_FAILURE


def helper_script() -> Path:
    """The installed `mount.drvfs` console script (every name in HELPERS runs it)."""
    return Path(sysconfig.get_path("scripts")) / HELPER


def install_helper(directory: Path, remove: bool = False) -> int:
    """Link DIR/mount.drvfs and DIR/mount.fuse.drvfs to the console script, so that
    `mount -t drvfs` and `mount -t fuse.drvfs` find it."""
    links = [directory / name for name in HELPERS]
    if remove:
        for link in links:
            if link.is_symlink():
                link.unlink()
        return 0
    target = helper_script()
    if not target.exists():
        print(f"drvfs: {target} is not installed (pip install the package)", file=sys.stderr)
        return EXIT_FAILURE
    for link in links:
        if link.exists() and not link.is_symlink():
            print(f"drvfs: {link} exists and is not a link: not replacing it", file=sys.stderr)
            return EXIT_FAILURE
    for link in links:
        tmp = directory / f".{link.name}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)
        print(f"{link} -> {target}")
    return 0
