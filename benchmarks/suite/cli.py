"""ninep-bench: file-system workloads over several targets side by side in one run.

Prints Markdown tables (median time, its confidence interval and its ratio to the
native disk; throughput; latency per operation), writes results.json, results.csv,
results.md and PNG charts to the results folder. `ninep-bench report RUN.json` and
`ninep-bench compare OLD.json NEW.json` only read results. Exit status 1 if a workload
failed or its result was wrong (or, with --strict or CI=true, if a target was skipped),
2 on a usage error (an unknown or impossible target, none at all, ...).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from ninep.version import version_line

from . import procs
from .charts import write_charts
from .compare import compare_table
from .corpus import SIZES, make_corpus
from .csvout import write_csv
from .results import Report
from .runner import Settings, run_suite
from .tables import render
from .targets import DEFAULT_TARGETS, GROUPS, Drvfs, Target, UserPath
from .workloads import WORKLOADS, Workload, command

#: The commands that only read results.
READERS = ("report", "compare")
DETAILS = "print every measurement's statistics (MAD, interval, outliers)"


class UsageError(Exception):
    """A command line that cannot run: one line on stderr, exit status 2."""


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
        "sshfs, bindfs, floor, ninep-server, diod), server (ninep-server, diod), 9p-kernel "
        "(opt-in: boots a QEMU guest); 'none' for only --target/--drvfs ones",
    )
    repeatable = [
        ("--target", "NAME=PATH", "also run on a directory you already have mounted"),
        ("--drvfs", "NAME=OPTS", "also run drvfs mounted with -o OPTS, as target NAME"),
        ("--target-options", "NAME=OPTS", "options for a target: its mount's -o options "
         "(drvfs, sshfs, bindfs) or extra server arguments (ninep-server, diod)"),
        ("--workload", "NAME=COMMAND", "also time your own shell command, run in an empty "
         "directory on each target beside the suite's inputs (../tree ...); exit status "
         "0 or it fails"),
    ]  # fmt: skip
    for flag, metavar, text in repeatable:
        p.add_argument(flag, action="append", type=pair, default=[], metavar=metavar,
                       help=f"{text} (repeatable)")  # fmt: skip
    p.add_argument(
        "-w",
        "--workloads",
        default="default",
        metavar="LIST",
        help="comma-separated workloads; default: those of the size; all: every one; "
        "none: only --workload ones",
    )
    p.add_argument("-s", "--size", choices=list(SIZES), default="medium")
    p.add_argument(
        "-r",
        "--runs",
        type=int,
        default=3,
        help="timed runs of each, at least (default 3; 6 give a 95%% interval)",
    )
    p.add_argument(
        "--until-stable",
        type=float,
        metavar="PCT",
        help="run more until the median's 95%% interval is within +-PCT%% "
        "(at least 6 runs), up to --max-runs",
    )
    p.add_argument(
        "--max-runs",
        type=int,
        default=20,
        help="at most this many runs with --until-stable (default 20)",
    )
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        help="run N copies of each workload at once, each in its own directory "
        "(directory targets; default 1)",
    )
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
        help="run, then print the change of each figure since an earlier results.json "
        "(to compare two saved runs: ninep-bench compare OLD NEW)",
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS.json",
        help="print the tables (and draw the charts) of an earlier run; run nothing "
        "(also: ninep-bench report RUN)",
    )
    p.add_argument("--details", action="store_true", help=DETAILS)
    p.add_argument("--no-charts", action="store_true")
    p.add_argument(
        "--strict",
        action="store_true",
        default=os.environ.get("CI") == "true",
        help="a skipped target fails the run (the default when CI=true)",
    )
    p.add_argument("--list", action="store_true", help="list targets and workloads, and exit")
    p.add_argument("--version", action="version", version=version_line("ninep-bench"))
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
            raise UsageError(f"unknown target {name!r} (see --list)")
    targets += [Drvfs(name, opts) for name, opts in args.drvfs]
    targets += [UserPath(name, Path(path)) for name, path in args.target]
    if not targets:
        raise UsageError("no target (-t none needs --target or --drvfs)")
    if len({t.name for t in targets}) != len(targets):
        raise UsageError("two targets have the same name")
    for t in targets:
        if isinstance(t, UserPath) and (reason := t.missing()):
            raise UsageError(f"target {t.name}: {reason}")
    if all(reasons := [t.missing() for t in targets]):
        said = "; ".join(f"{t.name}: {r}" for t, r in zip(targets, reasons, strict=True))
        raise UsageError(f"no target can run here ({said})")
    return targets


def make_workloads(args: argparse.Namespace) -> list[Workload]:
    """The built-in workloads chosen, then the user's own."""
    size = SIZES[args.size]
    if args.workloads in ("default", "all", "none"):
        every = args.workloads == "all"
        chosen = [w for w in WORKLOADS.values()
                  if every or (args.workloads == "default" and w.enabled(size))]  # fmt: skip
    else:
        names = args.workloads.split(",")
        if unknown := [w for w in names if w not in WORKLOADS]:
            raise UsageError(f"unknown workload(s) {', '.join(unknown)} (see --list)")
        chosen = [WORKLOADS[w] for w in names]
    for name, shell in args.workload:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name in WORKLOADS:
            raise UsageError(f"--workload {name!r}: a new name of letters, digits, _ . -")
        chosen.append(command(name, shell))
    if not chosen:
        raise UsageError("no workload")
    return chosen


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
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in READERS:
            return read_only(argv)
        return run(parser().parse_args(argv))
    except UsageError as exc:
        print(f"ninep-bench: {exc}", file=sys.stderr)
        return 2


def reader_parser(command: str) -> argparse.ArgumentParser:
    """The command line of `ninep-bench report` or `ninep-bench compare` (READERS)."""
    p = argparse.ArgumentParser(prog=f"ninep-bench {command}")
    if command == "compare":
        p.description = "Print the change of each figure between two saved runs; run nothing."
        p.add_argument("old", type=Path, metavar="OLD.json", help="the earlier results.json")
        p.add_argument("new", type=Path, metavar="NEW.json", help="the later results.json")
        return p
    p.description = "Print the tables (and draw the charts) of a saved run; run nothing."
    p.add_argument("run", type=Path, metavar="RUN.json", help="a results.json")
    p.add_argument("-o", "--out", type=Path, default=Path("bench-results"),
                   help="results folder (default ./bench-results)")  # fmt: skip
    p.add_argument("--details", action="store_true", help=DETAILS)
    p.add_argument("--no-charts", action="store_true", help="draw no charts")
    return p


def read_only(argv: list[str]) -> int:
    """`report RUN.json` and `compare OLD.json NEW.json`: read results, run nothing."""
    args = reader_parser(argv[0]).parse_args(argv[1:])
    if argv[0] == "compare":
        print(compare_table(load(args.old), load(args.new)))
        return 0
    args.compare, args.strict = None, False
    return show(load(args.run), args)


def load(path: Path) -> Report:
    """A saved run; UsageError (one line) if `path` cannot be read or holds none."""
    try:
        return Report.load(path)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: not a results.json ({exc})") from None


def run(args: argparse.Namespace) -> int:
    """Run the suite (or, with --report, show a saved run); the exit status."""
    if args.list:
        print(listing())
        return 0
    if args.report:
        return show(load(args.report), args)
    if args.runs < 1 or args.jobs < 1:
        raise UsageError("--runs and --jobs must be at least 1")
    if args.until_stable is not None and (args.until_stable <= 0 or args.max_runs < args.runs):
        raise UsageError("--until-stable needs a PCT above 0 and --max-runs >= --runs")
    workloads = make_workloads(args)
    targets = make_targets(args)
    old = load(args.compare) if args.compare else None
    if old is not None:
        print(f"ninep-bench: running the suite first, then comparing with {args.compare} "
              "(ninep-bench compare OLD NEW compares two saved runs)", file=sys.stderr)  # fmt: skip
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ninep-bench-", dir="/var/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(size=args.size, runs=args.runs, cold=not args.warm, warmup=args.warmup,
                        until_stable=args.until_stable, max_runs=args.max_runs,
                        jobs=args.jobs)  # fmt: skip
    started = time.monotonic()
    for sig in (signal.SIGTERM, signal.SIGHUP):  # unmount and stop everything, as for ^C
        signal.signal(sig, interrupted)
    try:
        corpus = make_corpus(SIZES[args.size], workdir / "src")
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
    """Print the tables, write results.md, results.csv and the charts; the exit status."""
    args.out.mkdir(parents=True, exist_ok=True)
    text = render(report, details=args.details)
    (args.out / "results.md").write_text(text + "\n")
    write_csv(report, args.out / "results.csv")
    print(text)
    if not args.no_charts:
        charts = write_charts(report, args.out)
        print(f"\nresults: {args.out}, charts: {', '.join(map(str, charts))}")
    if args.compare:
        old = old or load(args.compare)
        print(f"\nchange since {args.compare}:\n\n{compare_table(old, report)}")
    failed = bool(report.failures()) or any(
        info.get("status") == "failed" for info in report.targets.values()
    )
    return 1 if failed or (args.strict and report.skipped()) else 0


if __name__ == "__main__":
    sys.exit(main())
