"""A smoke run of the whole ninep-bench suite: every default target, every workload, the
smallest size, one cold run. Real mounts (drvfs, sshfs with its own sshd, bindfs), real
servers (ninep-server, diod with its C clients). No timing is asserted: each workload
checks its own result (the untarred tree equals the source, the clone passes
`git fsck`, the checksum of what was read matches, ...) and a wrong one fails it.

In CI (CI=true) a target skipped for a missing tool fails the test: `make test`
installs them all (TEST_PACKAGES in the Makefile).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from benchmarks.suite.targets import DEFAULT_TARGETS
from benchmarks.suite.workloads import WORKLOADS

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or os.geteuid() != 0,
    reason="needs /dev/fuse and root (FUSE mounts, dropping the page cache)",
)

REPO = Path(__file__).resolve().parent.parent

#: The run (exit status, stdout), its results folder and its work directory.
Smoke = tuple[subprocess.CompletedProcess[str], Path, Path]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Smoke:
    """One run of `python -m benchmarks` (the run, its results folder, its work directory)."""
    base = tmp_path_factory.mktemp("bench")
    out, work = base / "results", base / "work"
    command = [sys.executable, "-m", "benchmarks", "--size", "small", "--runs", "1",
               "--workloads", "all", "--details", "--out", str(out), "--workdir", str(work),
               "--keep"]  # fmt: skip
    env = {**os.environ, "CI": ""}  # skips are judged below, with their reasons
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
    print(done.stdout, done.stderr, sep="\n")
    return done, out, work


def results(smoke: Smoke) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((smoke[1] / "results.json").read_text())
    return data


def test_every_default_target_ran(smoke: Smoke) -> None:
    targets = results(smoke)["targets"]
    assert list(targets) == list(DEFAULT_TARGETS)
    failed = {t: i["reason"] for t, i in targets.items() if i["status"] == "failed"}
    assert not failed, failed
    skipped = {t: i["reason"] for t, i in targets.items() if i["status"] == "skipped"}
    if skipped and os.environ.get("CI") == "true":
        pytest.fail(f"targets skipped in CI (make test installs their tools): {skipped}")
    if skipped:
        warnings.warn(f"ninep-bench skipped {skipped}", stacklevel=1)


def test_every_workload_ran_and_was_right(smoke: Smoke) -> None:
    data = results(smoke)
    assert list(data["workloads"]) == list(WORKLOADS)
    errors = {(r["target"], r["workload"]): r["error"] for r in data["results"] if r["error"]}
    assert not errors, errors
    ran = {t for t, i in data["targets"].items() if i["status"] == "ok"}
    for r in data["results"]:
        assert len(r["seconds"]) == 1 and r["median"] > 0, r
    for target in ran:
        runs = DEFAULT_TARGETS[target][0].supports  # the floor: the ops workload only
        expected = {w for w, wl in WORKLOADS.items() if runs(wl)}
        assert {r["workload"] for r in data["results"] if r["target"] == target} == expected
    assert smoke[0].returncode == 0, smoke[0].stderr[-3000:]


def test_mounts_and_processes_are_gone(smoke: Smoke) -> None:
    work = str(smoke[2])
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if work in line]
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if work in cmdline:
            left.append(cmdline)
    assert not left


def test_outputs_are_written_and_parse(smoke: Smoke) -> None:
    import matplotlib.image

    done, out, _ = smoke
    data = results(smoke)
    assert data["settings"]["size"] == "small" and data["machine"]["kernel"]
    for target in data["targets"].values():
        assert {"description", "options", "versions", "status"} <= set(target)
    table = (out / "results.md").read_text()
    assert table.splitlines()[2].startswith("| median ms ±CI (x native) | native ")
    assert table.strip() in done.stdout
    for chart in ("ratio.png", "throughput.png", "latency.png"):
        assert matplotlib.image.imread(out / chart).ndim == 3
