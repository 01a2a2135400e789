"""The loop of a run: every workload on every target, `runs` times, cold or warm.

Cold (the default): each run prepares its inputs on the target's host directory,
mounts afresh (a new server and client, or a new sshfs/bindfs), drops the kernel's
caches (as root), runs the workload timed, checks its result through the mount,
unmounts and cleans up on the host. Warm: one mount per workload, an untimed
warm-up run, then the timed runs, each prepared and cleaned up through the mount.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from . import procs
from .corpus import Corpus, git, seed
from .jobs import run_jobs
from .results import Measurement, Report
from .targets import Target
from .workloads import Place, Workload, WorkloadError

#: What fails a workload (or a target, while it starts) without stopping the run.
FAILURES = (WorkloadError, procs.ChildError, OSError, subprocess.SubprocessError)


@dataclass
class Settings:
    size: str = "medium"
    runs: int = 3  # at least
    cold: bool = True
    warmup: int = 1  # untimed runs before the timed ones, warm mode only
    #: with until_stable: more runs until the median's 95% interval is within +-this %
    until_stable: float | None = None
    max_runs: int = 3  # at most, with until_stable
    jobs: int = 1  # copies of each workload at once, each in its own directory
    notes: list[str] = field(default_factory=list)

    def enough(self, m: Measurement) -> bool:
        """Whether `m` has runs enough: `runs`, and with until_stable a tight interval or
        `max_runs`."""
        n = len(m.seconds)
        if n < self.runs:
            return False
        if self.until_stable is None or n >= self.max_runs:
            return True
        return m.summary.stable(self.until_stable / 100)


class Progress:
    """A progress bar on a terminal (tqdm: target, workload, runs left); one line per
    workload elsewhere (a log)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.bar = tqdm(
            total=total, file=stream, unit="run", dynamic_ncols=True, disable=not stream.isatty()
        )
        self.done, self.total = 0, total
        self.last = ("", "")

    def at(self, target: str, workload: str, run: str) -> None:
        if self.bar.disable:
            if (target, workload) != self.last:
                print(f"[{self.done}/{self.total}] {target}: {workload}", file=self.stream)
            self.last = (target, workload)
        else:
            self.bar.set_description(f"{target}: {workload} {run}")

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.bar.update(n)

    def say(self, text: str) -> None:
        if self.bar.disable:
            print(text, file=self.stream)
        else:
            self.bar.write(text)

    def close(self) -> None:
        self.bar.close()


def applicable(target: Target, workloads: list[Workload]) -> list[Workload]:
    return [w for w in workloads if target.supports(w)]


def run_suite(
    targets: list[Target],
    workloads: list[Workload],
    corpus: Corpus,
    settings: Settings,
    workdir: Path,
    progress: Progress | None = None,
) -> Report:
    """Run everything; the report (a failed workload or target is recorded, not raised)."""
    report = Report(settings=vars(settings).copy(), machine=machine_info())
    report.workloads = {
        w.name: {"title": w.title, "description": w.describe(corpus), "unit": w.unit}
        for w in workloads
    }
    most = settings.max_runs if settings.until_stable else settings.runs
    per_workload = most + (0 if settings.cold else settings.warmup)
    steps = {t.name: len(applicable(t, workloads)) * per_workload for t in targets}
    progress = progress or Progress(sum(steps.values()))
    caches = procs.drop_caches() if settings.cold else None
    if caches:
        report.settings["notes"] = [*settings.notes, caches]
    for target in targets:
        start = progress.done
        if reason := target.missing():
            report.targets[target.name] = {**target.info(), "status": "skipped", "reason": reason}
            progress.say(f"skipped {target.name}: {reason}")
        else:
            run_target(
                target,
                applicable(target, workloads),
                corpus,
                settings,
                workdir / target.name,
                report,
                progress,
            )
        progress.advance(start + steps[target.name] - progress.done)
    report.machine["load_after"] = os.getloadavg()
    return report


def run_target(
    target: Target,
    workloads: list[Workload],
    corpus: Corpus,
    settings: Settings,
    workdir: Path,
    report: Report,
    progress: Progress,
) -> None:
    started = time.monotonic()
    try:
        with target.session(workdir) as backing:
            for root in job_roots(backing, settings.jobs):
                seed(corpus, root)
                git(root / "tree", "status", "--porcelain")  # its index matches this copy
            batch = target.run_batch(workloads, corpus, settings.runs, settings.cold, progress.say)
            for m in batch or ():
                report.measurements.append(m)
                if m.error:
                    progress.say(f"FAILED {target.name} / {m.workload}: {m.error}")
            for workload in workloads if batch is None else ():
                m = Measurement(target.name, workload.name)
                report.measurements.append(m)
                try:
                    measure(target, workload, corpus, settings, backing, m, progress)
                except FAILURES as exc:
                    m.error = f"{type(exc).__name__}: {exc}"
                    progress.say(f"FAILED {target.name} / {workload.name}: {m.error}")
                    quiet_cleanup(workload, corpus, backing)
        status: dict[str, Any] = {"status": "ok"}
    except FAILURES as exc:
        status = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        progress.say(f"FAILED {target.name}: {status['reason']}")
    status["seconds"] = round(time.monotonic() - started, 1)
    report.targets[target.name] = {**target.info(), **status}


def quiet_cleanup(workload: Workload, corpus: Corpus, root: Path) -> None:
    """Clean up after a failure: best effort."""
    with contextlib.suppress(OSError):
        workload.cleanup(corpus, root)


def job_roots(root: Path, jobs: int) -> list[Path]:
    """The directories of `jobs` copies: `root` itself for one, else root/job0, job1, ..."""
    if jobs == 1:
        return [root]
    roots = [root / f"job{i}" for i in range(jobs)]
    for r in roots:
        r.mkdir(exist_ok=True)
    return roots


def measure(
    target: Target,
    workload: Workload,
    corpus: Corpus,
    settings: Settings,
    backing: Path,
    m: Measurement,
    progress: Progress,
) -> None:
    """The runs of one workload on one target, into `m`: `runs` of them, more with
    --until-stable."""
    jobs = settings.jobs if target.kind == "dir" else 1
    if settings.cold:
        while not settings.enough(m):
            progress.at(target.name, workload.name, f"{len(m.seconds) + 1}/{settings.runs}")
            for root in job_roots(backing, jobs):
                workload.prepare(corpus, root)
            with target.mounted() as place:
                procs.drop_caches()
                once(workload, corpus, place, m, jobs)
            for root in job_roots(backing, jobs):
                workload.cleanup(corpus, root)
            progress.advance()
        return
    with target.mounted() as place:
        roots = job_roots(place.root or backing, jobs)
        for _ in range(settings.warmup):
            progress.at(target.name, workload.name, "warm-up")
            warm_once(workload, corpus, place, roots, None, jobs)
            progress.advance()
        while not settings.enough(m):
            progress.at(target.name, workload.name, f"{len(m.seconds) + 1}/{settings.runs}")
            warm_once(workload, corpus, place, roots, m, jobs)
            progress.advance()


def warm_once(workload: Workload, corpus: Corpus, place: Place, roots: list[Path],
              m: Measurement | None, jobs: int) -> None:  # fmt: skip
    """One warm run: prepared and cleaned up through the mount."""
    for root in roots:
        workload.prepare(corpus, root)
    once(workload, corpus, place, m, jobs)
    for root in roots:
        workload.cleanup(corpus, root)


def once(
    workload: Workload, corpus: Corpus, place: Place, m: Measurement | None, jobs: int = 1
) -> None:
    """One timed run and its check (or `jobs` at once); recorded in `m` unless it is a
    warm-up."""
    if jobs > 1:
        wall, each, work = run_jobs(workload, corpus, place, jobs)
        if m is not None:
            m.seconds.append(wall)
            m.work, m.extra = work, {"jobs": each}
        return
    start = time.perf_counter()
    outcome = workload.run(corpus, place)
    elapsed = time.perf_counter() - start
    workload.verify(corpus, place, outcome)
    if m is not None:
        m.seconds.append(outcome.seconds or elapsed)
        m.work, m.extra = outcome.work, outcome.extra


def machine_info() -> dict[str, Any]:
    """The machine, kernel, Python, the workloads' tools and the load, for results.json."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in read_lines("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        (
            int(line.split()[1]) // 1024
            for line in read_lines("/proc/meminfo")
            if line.startswith("MemTotal")
        ),
        0,
    )
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_mib": mem,
        "python": platform.python_version(),
        "os": os_release(),
        "load_before": os.getloadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "virtualization": virtualization(),
        "tools": {
            "git": procs.version_of(["git", "--version"]),
            "sqlite": sqlite3.sqlite_version,
            "fio": procs.version_of(["fio", "--version"]),
            "tar": procs.version_of(["tar", "--version"]),
            "find": procs.version_of(["find", "--version"]),
        },
    }
    info["summary"] = (
        f"{info['cpus']} CPUs, {mem // 1024} GiB, {info['os']}, Linux "
        f"{info['kernel']}, Python {info['python']}"
    )
    return info


def read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def os_release() -> str:
    fields = dict(line.split("=", 1) for line in read_lines("/etc/os-release") if "=" in line)
    return fields.get("PRETTY_NAME", platform.system()).strip('"')


def virtualization() -> str:
    flags = next((line for line in read_lines("/proc/cpuinfo") if line.startswith("flags")), "")
    return "virtual machine" if " hypervisor" in flags else "bare metal or unknown"
