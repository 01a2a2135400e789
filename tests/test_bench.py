"""ninep-bench's pieces on known inputs: the Markdown, JSON and CSV writers, compare, the
charts, the command line's targets, and the workloads' checks (a wrong result fails)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from benchmarks.suite import cli, compare, tables
from benchmarks.suite.charts import write_charts
from benchmarks.suite.corpus import Corpus, Size, make_corpus, seed
from benchmarks.suite.results import Measurement, Report
from benchmarks.suite.targets import Diod, Drvfs, NinepServer, Target, UserPath
from benchmarks.suite.workloads import WORKLOADS, Place, WorkloadError
from ninep.version import package_version

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
    assert tables.summary_table(report()) == (
        "| median ms ±CI (x native) | native   | drvfs           |\n"
        "|--------------------------|----------|-----------------|\n"
        "| find                     | 3.0 ±33% | 500 ±80% (167x) |\n"
        "| sequential read          | 100 ±0%  | FAIL            |"
    )


def test_throughput_and_details_tables() -> None:
    r = report()
    assert tables.throughput_table(r) == (
        "| throughput             | native   | drvfs |\n"
        "|------------------------|----------|-------|\n"
        "| sequential read (MB/s) | 1000 ±0% | FAIL  |"
    )
    details = [[c.strip() for c in line.split("|")[1:-1]] for line in
               tables.details_table(r).splitlines()]  # fmt: skip
    assert details[0][3:10] == ["median ms", "MAD ms", "interval ms", "conf", "min ms",
                                "max ms", "outliers ms"]  # fmt: skip
    assert details[2] == ["native", "find", "3", "3.0", "1.0", "2.0-4.0", "75%", "2.0", "4.0",
                          "", ""]  # fmt: skip
    assert details[5][:4] == ["drvfs", "seq-read", "0", "-"] and details[5][-1].startswith("Work")


def test_render_says_what_was_skipped_and_failed() -> None:
    text = tables.render(report())
    assert "size small, 3 run(s), cold; m" in text
    assert "3 runs give a 75% interval" in text
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
    """Each change with its range over both intervals and a verdict: drvfs twice as fast
    but from 3 runs whose intervals overlap is noise, and marked as few runs."""
    text = compare.compare_table(report(), report(slower=0.5))
    table, legend = text.split("\n\n")
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()]
    assert cells[0] == ["target", "workload", "before ms", "after ms", "change (range)",
                        "x native", "verdict"]  # fmt: skip
    assert cells[2] == ["native", "find", "3.0 ±33% n=3", "3.0 ±33% n=3", "+0% (-50%..+100%)",
                        "1.00x -> 1.00x", "noise (intervals overlap), few runs (<5)"]  # fmt: skip
    assert cells[3][2:6] == ["500 ±80% n=3", "250 ±80% n=3", "-50% (-83%..+50%)", "167x -> 83x"]
    assert cells[3][6].startswith("noise")
    assert len(cells) == 5  # the failed measurement has nothing to compare
    assert legend.startswith("0 faster, 0 slower, 3 noise, 0 unknown.")
    assert compare.compare_table(report(), Report()) == "(no measurement in common)"


def test_compare_of_single_runs_says_unknown() -> None:
    """A +65% from one run each (native stat in the issue) is never printed bare."""
    old, new = Report(), Report()
    old.measurements = [Measurement("native", "stat", [0.025])]
    new.measurements = [Measurement("native", "stat", [0.04125])]
    row = compare.compare_table(old, new).splitlines()[2]
    assert "| +65% " in row and "unknown: 1 run, few runs (<5)" in row


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
    assert "| find                     | 3.0 ±33% | 250 ±80% (83x) |" in out
    assert "change since" in out and "| drvfs  | find     | 500 ±80% n=3 | 250 ±80% n=3 |" in out
    assert (tmp_path / "out" / "results.md").read_text().startswith("ninep-bench: size small")
    assert (tmp_path / "out" / "ratio.png").exists()
    assert (tmp_path / "out" / "results.csv").exists()


def own_children() -> list[str]:
    """The processes whose parent is this one."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
            found.append(stat)
    return found


def test_report_and_compare_commands_only_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`compare OLD NEW` and `report RUN` set up no target: no mount, no child process, no
    work directory; they print what the saved runs hold."""
    report().save(tmp_path / "old.json")
    report(slower=0.5).save(tmp_path / "new.json")
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    work = set(Path("/var/tmp").glob("ninep-bench-*"))
    assert cli.main(["compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 0
    assert "| drvfs  | find     | 500 ±80% n=3 | 250 ±80% n=3 | -50%" in capsys.readouterr().out
    argv = ["report", str(tmp_path / "new.json"), "--out", str(tmp_path / "out"), "--no-charts"]
    assert cli.main(argv) == 1  # the run had a failed workload
    assert "| find                     | 3.0 ±33% | 250 ±80% (83x) |" in capsys.readouterr().out
    with open("/proc/self/mountinfo") as f:
        assert f.read() == mounts
    assert own_children() == [] and set(Path("/var/tmp").glob("ninep-bench-*")) == work
    assert cli.main(["compare", str(tmp_path / "old.json"), str(tmp_path / "none.json")]) == 2


@pytest.mark.parametrize(
    ("content", "said"),
    [(None, "No such file or directory"), ('{"a":', "not a results.json (Expecting value"),
     ("[1]", "not a results.json (not a results.json of format 1: 'list')"),
     ('{"format": 1, "settings": {}, "machine": {}, "targets": {}, "workloads": {}, '
      '"results": [1]}', "not a results.json ("),
     ('{"format": 1}', "not a results.json ('settings')")],
)  # fmt: skip
def test_a_missing_or_corrupt_results_file_is_one_line(
    content: str | None, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whichever command reads it: report, compare, --report, --compare."""
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    report().save(tmp_path / "good.json")
    good, out = str(tmp_path / "good.json"), str(tmp_path / "out")
    for argv in (["report", str(path)], ["compare", good, str(path)],
                 ["--report", str(path), "--out", out],
                 ["--compare", str(path), "-t", "native", "--out", out]):  # fmt: skip
        assert cli.main(argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith(f"ninep-bench: {path}: {said}")
        assert len(captured.err.splitlines()) == 1, captured.err
    assert not (tmp_path / "out").exists()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"ninep-bench {package_version()} (ninep-volfs)\n"


def test_csv_has_a_row_per_measurement(tmp_path: Path) -> None:
    from benchmarks.suite.csvout import write_csv

    write_csv(report(), tmp_path / "results.csv")
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["target"], r["workload"]) for r in rows] == [
        ("native", "find"), ("drvfs", "find"), ("native", "seq-read"), ("drvfs", "seq-read")
    ]  # fmt: skip
    drvfs = rows[1]
    assert (drvfs["median_s"], drvfs["ci_low_s"], drvfs["ci_high_s"]) == ("0.5", "0.3", "0.9")
    assert (drvfs["ci_confidence"], drvfs["runs"]) == ("0.75", "3")
    assert float(drvfs["ratio_to_native"]) == pytest.approx(0.5 / 0.003)
    assert rows[2]["throughput"] == "1000.0" and rows[2]["unit"] == "MB/s"
    assert rows[3]["error"].startswith("WorkloadError") and rows[3]["median_s"] == ""


def test_charts_are_png_with_one_colour_per_target(tmp_path: Path) -> None:
    """ratio.png, throughput.png (MB/s and IOPS on axes of their own) and latency.png (fio's
    percentiles, the ops workload's): each target has the same colour in each, read back
    from the colours its bars were drawn with (the PNG's text chunk)."""
    import matplotlib.image
    from PIL import PngImagePlugin

    from benchmarks.suite.charts import COLOURS_KEY

    r = report()
    r.workloads["rand-read"] = {"title": "random 4K read", "unit": "IOPS"}
    fio = {"clat_percentiles_ns": {"50.000000": 90_000, "99.000000": 400_000}}
    r.measurements[3] = Measurement("drvfs", "seq-read", [0.5, 0.6], work=100.0)
    r.measurements += [Measurement(t, "rand-read", [0.1, 0.2], work=256.0, extra=fio)
                       for t in ("native", "drvfs")]  # fmt: skip
    written = write_charts(r, tmp_path)
    assert [p.name for p in written] == ["ratio.png", "throughput.png", "latency.png"]
    drawn = []
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(path).shape[0] > 100
        png = PngImagePlugin.PngImageFile(path)
        drawn.append(json.loads(png.text[COLOURS_KEY]))
    assert drawn[0] == {"drvfs": "#ff7f0e"}  # the ratio chart has no native bars
    assert drawn[1] == drawn[2] == {"native": "#1f77b4", "drvfs": "#ff7f0e"}


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
                                         "floor", "ninep-server", "diod"]  # fmt: skip
    assert default[2].options == "metadata"
    with pytest.raises(cli.UsageError):
        cli.make_targets(cli.parser().parse_args(["-t", "nfs"]))
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["--target", "nopath"])


@pytest.mark.parametrize(
    "argv",
    [["--target", "mine=/nonexistent", "-t", "none"], ["-t", "none"],
     ["-t", "native", "--target", "mine=/nonexistent"], ["-w", "nosuch"],
     ["-t", "native", "-w", "none"], ["--workload", "find=true"]],
)  # fmt: skip
def test_impossible_runs_exit_2_with_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith("ninep-bench: ")
    assert not (tmp_path / "out").exists()


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
    total = len(targets) * len(workloads) * 3
    progress = Progress(total, log)
    done = run_suite(targets, workloads, corpus, warm, tmp_path / "work", progress)
    assert done.failures() == [] and done.ran() == ["native", "mine"]
    assert {len(m.seconds) for m in done.measurements} == {2}
    assert done.targets["mine"]["path"] == str(mine) and os.listdir(mine) == []
    assert log.getvalue().startswith(f"[0/{total}] native: find\n[3/{total}] native: stat\n")
