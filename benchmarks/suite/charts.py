"""PNG charts of a run (matplotlib, no display needed): the ratio to native of every
workload on every target (grouped bars, log scale), and the I/O workloads' throughput."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from .results import NATIVE, Report


def grouped_bars(
    report: Report,
    path: Path,
    workloads: list[str],
    targets: list[str],
    value: Callable[[str, str], float | None],
    ylabel: str,
    title: str,
    baseline: float | None = None,
    units: bool = False,
) -> Path | None:
    """Bars of `value(target, workload)`, grouped by workload, one colour per target, on a
    log scale; None (nothing written) if there is no value to draw."""
    if not any(value(t, w) for t in targets for w in workloads):
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(workloads) + 2), 4.2), dpi=80)
    width = 0.8 / max(1, len(targets))
    for i, target in enumerate(targets):
        heights = [value(target, w) or 0.0 for w in workloads]
        xs = [x + (i - (len(targets) - 1) / 2) * width for x in range(len(workloads))]
        ax.bar(xs, heights, width, label=target)
    if baseline is not None:
        ax.axhline(baseline, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(workloads)))
    labels = [
        report.workloads[w]["title"] + (f" ({report.workloads[w]['unit']})" if units else "")
        for w in workloads
    ]
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(4, len(targets)))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_charts(report: Report, folder: Path) -> list[Path]:
    """ratio.png and throughput.png in `folder`; the files written."""
    s = report.settings
    what = f"size {s.get('size')}, {'cold' if s.get('cold') else 'warm'}, median of {s.get('runs')}"
    workloads = list(report.workloads)
    others = [t for t in report.ran() if t != NATIVE]
    written = [
        grouped_bars(
            report,
            folder / "ratio.png",
            workloads,
            others,
            report.ratio,
            "time / native (log)",
            f"Time relative to the native disk ({what})",
            1.0,
        ),
        grouped_bars(
            report,
            folder / "throughput.png",
            [w for w, info in report.workloads.items() if info.get("unit")],
            report.ran(),
            lambda t, w: throughput(report, t, w),
            "MB/s or IOPS (log)",
            f"Throughput of the I/O workloads ({what})",
            units=True,
        ),
    ]
    return [p for p in written if p is not None]


def throughput(report: Report, target: str, workload: str) -> float | None:
    m = report.get(target, workload)
    return m.throughput() if m is not None else None
