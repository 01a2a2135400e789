"""ninep-bench: file-system workloads over several targets side by side in one run.

Prints a Markdown table (median time and ratio to the native disk), writes
results.json, results.md and PNG charts to the results folder. Exit status 1 if
a workload failed or its result was wrong (or, with --strict or CI=true, if a
target was skipped), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import procs
from .charts import write_charts
from .corpus import SIZES, make_corpus
from .results import Report, compare_table, render
from .runner import Settings, run_suite
from .targets import DEFAULT_TARGETS, GROUPS, Drvfs, Target, UserPath
from .workloads import WORKLOADS


def pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ninep-bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "-t",
        "--targets",
        default="default",
        metavar="LIST",
        help="comma-separated targets or groups: default (native, drvfs, drvfs-metadata, "
        "sshfs, bindfs, ninep-server, diod), server (ninep-server, diod), 9p-kernel "
        "(opt-in: boots a QEMU guest); 'none' for only --target/--drvfs ones",
    )
    repeatable = [
        ("--target", "NAME=PATH", "also run on a directory you already have mounted"),
        ("--drvfs", "NAME=OPTS", "also run drvfs mounted with -o OPTS, as target NAME"),
        ("--target-options", "NAME=OPTS", "options for a target: its mount's -o options "
         "(drvfs, sshfs, bindfs) or extra server arguments (ninep-server, diod)"),
    ]  # fmt: skip
    for flag, metavar, text in repeatable:
        p.add_argument(flag, action="append", type=pair, default=[], metavar=metavar,
                       help=f"{text} (repeatable)")  # fmt: skip
    p.add_argument(
        "-w",
        "--workloads",
        default="default",
        metavar="LIST",
        help="comma-separated workloads; default: those of the size; all: every one",
    )
    p.add_argument("-s", "--size", choices=list(SIZES), default="medium")
    p.add_argument("-r", "--runs", type=int, default=3, help="timed runs of each (default 3)")
    p.add_argument(
        "--warm",
        action="store_true",
        help="warm runs on one mount (after --warmup untimed runs) instead of cold ones",
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before warm ones")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="results folder (default ./bench-results)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the targets' files go (default a new directory in /var/tmp)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument(
        "--compare",
        type=Path,
        metavar="OLD.json",
        help="print the change of each figure since an earlier results.json",
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS.json",
        help="print the tables (and draw the charts) of an earlier run; run nothing",
    )
    p.add_argument("--details", action="store_true", help="print min/median/max of each")
    p.add_argument("--no-charts", action="store_true")
    p.add_argument(
        "--strict",
        action="store_true",
        default=os.environ.get("CI") == "true",
        help="a skipped target fails the run (the default when CI=true)",
    )
    p.add_argument("--list", action="store_true", help="list targets and workloads, and exit")
    return p


def make_targets(args: argparse.Namespace) -> list[Target]:
    names: list[str] = []
    for word in filter(None, args.targets.split(",")):
        for name in GROUPS.get(word, (word,)) if word != "none" else ():
            if name not in names:
                names.append(name)
    options = dict(args.target_options)
    targets: list[Target] = []
    for name in names:
        if name.startswith("9p-kernel-"):
            from .guest import GuestTarget

            targets.append(GuestTarget(name, options.get(name, "")))
        elif name in DEFAULT_TARGETS:
            cls, default = DEFAULT_TARGETS[name]
            targets.append(cls(name, options.get(name, default)))
        else:
            raise SystemExit(f"ninep-bench: unknown target {name!r} (see --list)")
    targets += [Drvfs(name, opts) for name, opts in args.drvfs]
    targets += [UserPath(name, Path(path)) for name, path in args.target]
    if not targets:
        raise SystemExit("ninep-bench: no target")
    if len({t.name for t in targets}) != len(targets):
        raise SystemExit("ninep-bench: two targets have the same name")
    return targets


def listing() -> str:
    lines = ["targets:"]
    for name, (cls, options) in DEFAULT_TARGETS.items():
        lines.append(f"  {name:16} {cls.description}{f' (-o {options})' if options else ''}")
    lines += [
        "  9p-kernel-ninep  the Linux kernel's 9p client in a QEMU guest -> ninep-server",
        "  9p-kernel-diod   the same -> diod",
        "workloads:",
    ]
    for name, w in WORKLOADS.items():
        gated = "" if w.enabled(SIZES["small"]) else " (medium and large)"
        lines.append(f"  {name:16} {w.title}{gated}")
    return "\n".join(lines)


def interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list:
        print(listing())
        return 0
    if args.report:
        return show(Report.load(args.report), args)
    if args.runs < 1:
        raise SystemExit("ninep-bench: --runs must be at least 1")
    size = SIZES[args.size]
    if args.workloads in ("default", "all"):
        workloads = [w for w in WORKLOADS.values() if args.workloads == "all" or w.enabled(size)]
    else:
        unknown = [w for w in args.workloads.split(",") if w not in WORKLOADS]
        if unknown:
            raise SystemExit(f"ninep-bench: unknown workload(s) {', '.join(unknown)} (see --list)")
        workloads = [WORKLOADS[w] for w in args.workloads.split(",")]
    targets = make_targets(args)
    old = Report.load(args.compare) if args.compare else None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ninep-bench-", dir="/var/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(size=args.size, runs=args.runs, cold=not args.warm, warmup=args.warmup)
    started = time.monotonic()
    for sig in (signal.SIGTERM, signal.SIGHUP):  # unmount and stop everything, as for ^C
        signal.signal(sig, interrupted)
    try:
        corpus = make_corpus(size, workdir / "src")
        report = run_suite(targets, workloads, corpus, settings, workdir)
    except KeyboardInterrupt as exc:
        print(f"ninep-bench: interrupted{f' ({exc})' if str(exc) else ''}", file=sys.stderr)
        return 130
    finally:
        procs.unmount_all_under(workdir)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report.settings["seconds"] = round(time.monotonic() - started, 1)
    report.settings["workloads"] = [w.name for w in workloads]
    args.out.mkdir(parents=True, exist_ok=True)
    report.save(args.out / "results.json")
    return show(report, args, old)


def show(report: Report, args: argparse.Namespace, old: Report | None = None) -> int:
    """Print the tables, write results.md and the charts; the exit status."""
    args.out.mkdir(parents=True, exist_ok=True)
    text = render(report, details=args.details)
    (args.out / "results.md").write_text(text + "\n")
    print(text)
    if not args.no_charts:
        charts = write_charts(report, args.out)
        print(f"\nresults: {args.out}, charts: {', '.join(map(str, charts))}")
    if args.compare:
        old = old or Report.load(args.compare)
        print(f"\nchange since {args.compare}:\n\n{compare_table(old, report)}")
    failed = bool(report.failures()) or any(
        info.get("status") == "failed" for info in report.targets.values()
    )
    return 1 if failed or (args.strict and report.skipped()) else 0


if __name__ == "__main__":
    sys.exit(main())
