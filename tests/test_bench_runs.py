"""ninep-bench runs of the new kinds, on real targets: --jobs (copies at once, each in its
own directory), a user's own workload (--workload; a failing one fails the run), and the
per-operation workload's requests counted by the server (drvfs) and by the kernel (its
FUSE tracepoint), and the floor of a pyfuse3 design."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from benchmarks.suite import cli
from benchmarks.suite.corpus import MIB, Corpus, make_corpus
from benchmarks.suite.fusetrace import EVENT, TRACEFS
from benchmarks.suite.opcost import cpu_seconds
from benchmarks.suite.results import Report
from benchmarks.suite.runner import Progress, Settings, run_suite
from benchmarks.suite.tables import jobs_table, latency_table
from benchmarks.suite.targets import Drvfs, Floor, Target
from benchmarks.suite.workloads import WORKLOADS, Workload, command

from .drvfs_harness import NEEDS_FUSE
from .test_bench import TINY


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(TINY, tmp_path_factory.mktemp("corpus"))


def run(targets: list[Target], workloads: list[Workload], corpus: Corpus, settings: Settings,
        work: Path) -> Report:  # fmt: skip
    return run_suite(targets, workloads, corpus, settings, work, Progress(1, io.StringIO()))


def test_jobs_run_at_once_in_directories_of_their_own(corpus: Corpus, tmp_path: Path) -> None:
    """Two copies of each workload: the run's time spans both, its work is theirs together,
    each job's time is kept; a failing copy fails the workload."""
    mine = command("where", "test ! -e ../job0 && pwd > ../where.txt")
    bad = command("bad", "exit 3")
    workloads = [WORKLOADS["seq-read"], WORKLOADS["create-unlink"], mine, bad]
    done = run([Target("native")], workloads, corpus, Settings(runs=2, jobs=2), tmp_path / "w")
    read = done.get("native", "seq-read")
    assert read is not None and read.ok and read.extra is not None
    assert read.work == pytest.approx(2 * TINY.seq_mib * MIB / 1e6)
    assert [len(read.seconds), len(read.extra["jobs"])] == [2, 2]
    assert max(read.extra["jobs"]) <= read.seconds[-1]  # one job's time within the run's
    backing = tmp_path / "w" / "native" / "backing"
    assert [(backing / f"job{i}" / "where.txt").read_text().strip() for i in (0, 1)] == [
        str(backing / f"job{i}" / "own-where") for i in (0, 1)
    ]  # each job in its own directory, none seeing the other's
    failed = done.get("native", "bad")
    assert failed is not None and failed.error is not None and "2 of 2 jobs failed" in failed.error
    assert jobs_table(done).splitlines()[0].startswith("| one job: median / slowest ms")


def test_a_failing_own_workload_fails_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--workload NAME='command': timed in the target's scratch directory beside the inputs,
    checked by its exit status; one that fails makes the run exit 1."""
    argv = ["-t", "native", "-w", "none", "-s", "small", "-r", "1", "--no-charts",
            "--workload", "count=ls ../tree | wc -l > /dev/null", "--workload", "bad=exit 3",
            "--out", str(tmp_path / "out"), "--workdir", str(tmp_path / "work")]  # fmt: skip
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "FAILED native / bad: WorkloadError: sh -c exit 3: exit 3" in out
    data = Report.load(tmp_path / "out" / "results.json")
    count = data.get("native", "count")
    assert count is not None and count.ok and len(count.seconds) == 1
    assert data.workloads["count"]["description"].startswith("sh -c 'ls ../tree")


@NEEDS_FUSE
def test_per_operation_costs_through_drvfs(corpus: Corpus, tmp_path: Path) -> None:
    """The ops workload on a fresh drvfs mount: a stat of an unseen name is one request
    (Twalkgetattr) by the server's statistics; CPU of drvfs and the server is counted; the
    latency table shows it. Nothing is left mounted. Hour-long kernel timeouts, so a slow
    step on a loaded machine cannot let a cached name expire into a second request (seen:
    7 requests for 6 stats at load 6)."""
    drvfs = Drvfs("drvfs", "attr_timeout=3600,entry_timeout=3600")
    done = run([drvfs], [WORKLOADS["ops"]], corpus, Settings(runs=1), tmp_path / "w")
    m = done.get("drvfs", "ops")
    assert m is not None and m.ok and m.extra is not None, m and m.error
    ops = m.extra["ops"]
    assert list(ops) == ["stat", "open-read-close", "create", "unlink", "mkdir", "rename",
                         "readdir-100"]  # fmt: skip
    assert ops["stat"]["requests"] == 1.0
    assert all(f["requests"] >= 1 for op, f in ops.items() if op != "readdir-100")
    assert {"bench", "drvfs", "ninep-server"} <= set(ops["create"]["cpu_us"])
    assert all(0 < f["p50_us"] <= f["p99_us"] for f in ops.values())
    assert "| stat " in latency_table(done) and "1.0 req" in latency_table(done)
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()
    assert not os.path.exists(tmp_path / "w" / "drvfs" / "stats.sock")


def test_the_processes_of_a_target_are_those_naming_its_directory_and_their_children(
    tmp_path: Path,
) -> None:
    """CPU per operation is read of these: a shell naming the directory and the sleep it
    started, never init or a daemon's other relatives (bindfs and sshfs run under init)."""
    import subprocess
    import time

    from benchmarks.suite.opcost import processes_of

    shell = subprocess.Popen(["sh", "-c", "sleep 60; :", str(tmp_path)])
    try:
        found = processes_of(tmp_path)
        deadline = time.monotonic() + 30  # until the shell has started its sleep
        while "sleep" not in found.values() and time.monotonic() < deadline:
            time.sleep(0.05)
            found = processes_of(tmp_path)
        assert found[shell.pid] == "sh" and sorted(found.values()) == ["sh", "sleep"]
    finally:
        subprocess.run(["pkill", "-P", str(shell.pid)], check=False)
        shell.kill()
        shell.wait()


@NEEDS_FUSE
def test_the_floor_answers_every_operation_from_memory(corpus: Corpus, tmp_path: Path) -> None:
    """The do-nothing pyfuse3 filesystem runs the ops workload (its result checked through
    the mount); where the kernel's FUSE tracepoint can be used, a stat of an unseen name is
    one LOOKUP and an unlink a GETATTR of the directory and the UNLINK."""
    done = run([Floor("floor")], [WORKLOADS["ops"]], corpus, Settings(runs=1), tmp_path / "w")
    m = done.get("floor", "ops")
    assert m is not None and m.ok and m.extra is not None, m and m.error
    ops = m.extra["ops"]
    assert {"bench", "benchmarks.floorfs"} <= set(ops["create"]["cpu_us"])
    assert all(f["requests"] is None for f in ops.values())  # no 9P server
    if os.access(TRACEFS / EVENT / "enable", os.W_OK):
        assert ops["stat"]["fuse_by_op"] == {"LOOKUP": 1.0}
        assert ops["unlink"]["fuse_by_op"] == {"GETATTR": 1.0, "UNLINK": 1.0}
        assert "1.0 FUSE)" in latency_table(done)
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()


def test_cpu_time_is_read_from_the_process_clock() -> None:
    """To the nanosecond, not in /proc's 10 ms ticks: this process's own figure lies
    between two readings of its CPU time taken around it."""
    before = time.process_time()
    mine = cpu_seconds([os.getpid()])[os.getpid()]
    assert before <= mine <= time.process_time()
    assert mine != round(mine, 2)  # not a count of ticks (one chance in 10**7 of failing)
