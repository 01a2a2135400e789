"""ninep-bench's pieces on known inputs: the Markdown and JSON writers, --compare, the
charts, the command line's targets, and the workloads' checks (a wrong result fails)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from benchmarks.suite import cli, results
from benchmarks.suite.charts import write_charts
from benchmarks.suite.corpus import Corpus, Size, make_corpus, seed
from benchmarks.suite.results import Measurement, Report
from benchmarks.suite.targets import Diod, Drvfs, NinepServer, Target, UserPath
from benchmarks.suite.workloads import WORKLOADS, Place, WorkloadError

TINY = Size("tiny", tree_files=12, flat_files=5, storm=6, seq_mib=1, rand_mib=1, rand_ios=8,
            sqlite_rows=200, build_files=3)  # fmt: skip


def report(slower: float = 1.0) -> Report:
    """Two targets, two workloads (one of them I/O), known times; `slower` scales drvfs."""
    r = Report(settings={"size": "small", "runs": 3, "cold": True}, machine={"summary": "m"})
    r.targets = {"native": {"status": "ok"}, "drvfs": {"status": "ok"},
                 "sshfs": {"status": "skipped", "reason": "not installed: sshfs"}}  # fmt: skip
    r.workloads = {"find": {"title": "find", "unit": None},
                   "seq-read": {"title": "sequential read", "unit": "MB/s"}}  # fmt: skip
    r.measurements = [
        Measurement("native", "find", [0.002, 0.004, 0.003]),
        Measurement("drvfs", "find", [0.5 * slower, 0.3 * slower, 0.9 * slower]),
        Measurement("native", "seq-read", [0.1, 0.1, 0.1], work=100.0),
        Measurement("drvfs", "seq-read", [], work=100.0, error="WorkloadError: sha256 differs"),
    ]
    return r


def test_measurement_statistics_and_ratio() -> None:
    r = report()
    m = r.get("drvfs", "find")
    assert m is not None and (m.min, m.median, m.max) == (0.3, 0.5, 0.9)
    assert r.ratio("drvfs", "find") == pytest.approx(0.5 / 0.003)
    assert r.ratio("drvfs", "seq-read") is None  # failed
    assert r.get("native", "seq-read").throughput() == pytest.approx(1000.0)  # type: ignore[union-attr]


def test_summary_table() -> None:
    assert results.summary_table(report()) == (
        "| median ms (x native) | native | drvfs      |\n"
        "|----------------------|--------|------------|\n"
        "| find                 | 3.0    | 500 (167x) |\n"
        "| sequential read      | 100    | FAIL       |"
    )


def test_throughput_and_details_tables() -> None:
    r = report()
    assert results.throughput_table(r) == (
        "| throughput             | native | drvfs |\n"
        "|------------------------|--------|-------|\n"
        "| sequential read (MB/s) | 1000   | FAIL  |"
    )
    details = results.details_table(r).splitlines()
    assert details[2].startswith("| native | find     | 3    | 2.0    | 3.0       | 4.0    |    ")
    assert details[5].startswith("| drvfs  | seq-read | 0    | -      | -         | -      | Work")


def test_render_says_what_was_skipped_and_failed() -> None:
    text = results.render(report())
    assert "size small, 3 run(s), cold; m" in text
    assert "skipped sshfs: not installed: sshfs" in text
    assert "FAILED drvfs / seq-read: WorkloadError: sha256 differs" in text


def test_json_round_trip(tmp_path: Path) -> None:
    r = report()
    r.save(tmp_path / "results.json")
    data = json.loads((tmp_path / "results.json").read_text())
    row = next(x for x in data["results"] if x["target"] == "drvfs" and x["workload"] == "find")
    assert (row["min"], row["median"], row["max"]) == (0.3, 0.5, 0.9)
    assert row["ratio_to_native"] == pytest.approx(166.67, rel=1e-3)
    back = Report.load(tmp_path / "results.json")
    assert back.measurements == r.measurements
    assert (back.targets, back.workloads, back.settings) == (r.targets, r.workloads, r.settings)
    with pytest.raises(ValueError):
        Report.from_json({**data, "format": 99})


def test_compare() -> None:
    table = results.compare_table(report(), report(slower=0.5)).splitlines()
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in table]
    assert cells[0] == ["target", "workload", "before ms", "after ms", "change",
                        "before x native", "after x native"]  # fmt: skip
    assert cells[2] == ["native", "find", "3.0", "3.0", "+0%", "1.00x", "1.00x"]
    assert cells[3] == ["drvfs", "find", "500", "250", "-50%", "167x", "83x"]
    assert len(table) == 5  # the failed measurement has nothing to compare
    assert results.compare_table(report(), Report()) == "(no measurement in common)"


def test_report_and_compare_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--report prints an earlier run's tables and draws its charts; --compare adds the change
    since another results.json. The earlier run had a failure: exit status 1."""
    report().save(tmp_path / "old.json")
    report(slower=0.5).save(tmp_path / "new.json")
    argv = ["--report", str(tmp_path / "new.json"), "--compare", str(tmp_path / "old.json"),
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "| find                 | 3.0    | 250 (83x) |" in out
    assert "change since" in out and "| drvfs  | find     | 500       | 250      | -50%" in out
    assert (tmp_path / "out" / "results.md").read_text().startswith("ninep-bench: size small")
    assert (tmp_path / "out" / "ratio.png").exists()


def test_charts_are_png(tmp_path: Path) -> None:
    import matplotlib.image

    r = report()
    r.measurements[3] = Measurement("drvfs", "seq-read", [0.5], work=100.0)
    written = write_charts(r, tmp_path)
    assert [p.name for p in written] == ["ratio.png", "throughput.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(path).shape[0] > 100


def test_targets_from_the_command_line() -> None:
    args = cli.parser().parse_args(
        ["-t", "native,server", "--drvfs", "wb=writeback_cache", "--target", "mine=/mnt",
         "--target-options", "diod=-t 4"]
    )  # fmt: skip
    targets = cli.make_targets(args)
    assert [(t.name, type(t), t.options) for t in targets] == [
        ("native", Target, ""), ("ninep-server", NinepServer, ""), ("diod", Diod, "-t 4"),
        ("wb", Drvfs, "writeback_cache"), ("mine", UserPath, ""),
    ]  # fmt: skip
    default = cli.make_targets(cli.parser().parse_args([]))
    assert [t.name for t in default] == ["native", "drvfs", "drvfs-metadata", "sshfs", "bindfs",
                                         "ninep-server", "diod"]  # fmt: skip
    assert default[2].options == "metadata"
    with pytest.raises(SystemExit):
        cli.make_targets(cli.parser().parse_args(["-t", "nfs"]))
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["--target", "nopath"])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(TINY, tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def place(corpus: Corpus, tmp_path: Path) -> Place:
    seed(corpus, tmp_path)
    return Place(tmp_path)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_each_workload_runs_and_checks_on_a_directory(
    name: str, corpus: Corpus, place: Place
) -> None:
    workload = WORKLOADS[name]
    workload.prepare(corpus, place.dir)
    outcome = workload.run(corpus, place)
    workload.verify(corpus, place, outcome)
    workload.cleanup(corpus, place.dir)
    assert sorted(os.listdir(place.dir)) == ["big.bin", "flat", "rand.bin", "tree", "tree.tar"]


def test_checks_catch_wrong_results(corpus: Corpus, place: Place) -> None:
    untar, clone, read = WORKLOADS["untar"], WORKLOADS["git-clone"], WORKLOADS["seq-read"]
    untar.prepare(corpus, place.dir)
    outcome = untar.run(corpus, place)
    victim = next(p for p in sorted((place.dir / "untar").rglob("*")) if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"#")
    with pytest.raises(WorkloadError, match="untarred files"):
        untar.verify(corpus, place, outcome)

    outcome = clone.run(corpus, place)
    pack = next((place.dir / "clone" / ".git" / "objects" / "pack").glob("*.pack"))
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    with pytest.raises(WorkloadError, match="fsck"):
        clone.verify(corpus, place, outcome)

    outcome = read.run(corpus, place)
    outcome.value = bytes(outcome.value[:-1]) + bytes([outcome.value[-1] ^ 0xFF])  # always differs
    with pytest.raises(WorkloadError, match="sha256"):
        read.verify(corpus, place, outcome)


def test_guest_script_is_shell(corpus: Corpus, tmp_path: Path) -> None:
    """The 9p-kernel targets' guest script (no boot here): a timed check and a check of its
    result for each run of each workload the guest has tools for; valid sh."""
    from benchmarks.suite import guest

    names = list(guest.SCRIPTS)
    text = guest.script(names, corpus, runs=2, cold=True)
    for name in names:
        fn = name.replace("-", "_")
        assert f"check {name}.r2 t_{fn}\ncheck {name}.r2.verify v_{fn}\n" in text
    assert text.count("remount\n") == 2 * len(names)
    (tmp_path / "script.sh").write_text(text)
    assert subprocess.run(["sh", "-n", str(tmp_path / "script.sh")]).returncode == 0
    files = guest.guest_files(corpus)
    assert files["/etc/guest/inserts.sql"].count(b"INSERT") == TINY.sqlite_rows
    assert len(files["/etc/guest/tree.sha256"].splitlines()) == len(corpus.files)


def test_warm_runs_on_native_and_a_user_path(corpus: Corpus, tmp_path: Path) -> None:
    """Warm runs (a warm-up, then the timed runs, prepared and cleaned up through the
    target) on the native target and on a directory given as --target NAME=PATH, which is
    left as it was."""
    import io

    from benchmarks.suite.runner import Progress, Settings, run_suite

    mine = tmp_path / "mine"
    mine.mkdir()
    targets = [Target("native"), UserPath("mine", mine)]
    workloads = [w for w in WORKLOADS.values() if "dir" in w.kinds]
    log = io.StringIO()
    warm = Settings(size="tiny", runs=2, cold=False)
    progress = Progress(len(targets) * len(workloads) * 3, log)
    done = run_suite(targets, workloads, corpus, warm, tmp_path / "work", progress)
    assert done.failures() == [] and done.ran() == ["native", "mine"]
    assert {len(m.seconds) for m in done.measurements} == {2}
    assert done.targets["mine"]["path"] == str(mine) and os.listdir(mine) == []
    assert log.getvalue().startswith("[0/90] native: find\n[3/90] native: stat\n")
