"""PNG charts of a run (matplotlib, no display needed): the ratio to native of every
workload (ratio.png), the I/O workloads' MB/s and IOPS on axes of their own
(throughput.png), per-operation latency (latency.png). Grouped bars on a log scale, one
colour per target in every chart, error bars (the medians' intervals; p50 to p99 for
latency) and value labels. Each PNG records the colour it gave each target in its
"ninep-bench colours" text chunk (JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from .latency import figures
from .results import NATIVE, Report
from .tables import fmt_rate

PALETTE = [f"C{i}" for i in range(10)]  # matplotlib's default cycle (tab10)
COLOURS_KEY = "ninep-bench colours"

#: (value, (low, high) or None) of a target on a workload, or None
Value = Callable[[str, str], tuple[float, tuple[float, float] | None] | None]


def colours(report: Report) -> dict[str, str]:
    """One colour per target of the report (its order in results.json), in every chart."""
    return {t: to_hex(PALETTE[i % len(PALETTE)]) for i, t in enumerate(report.targets)}


def bars(ax: Axes, labels: list[str], targets: list[str], value: Value,
         colour: dict[str, str]) -> dict[str, str]:  # fmt: skip
    """Grouped bars of `value` with error bars and value labels on `ax`, log scale; the
    colour each drawn target was given (read back from its bars)."""
    width = 0.8 / max(1, len(targets))
    drawn = {}
    for i, target in enumerate(targets):
        got = [value(target, w) for w in labels]
        xs = [x + (i - (len(targets) - 1) / 2) * width for x in range(len(labels))]
        heights = [g[0] if g else 0.0 for g in got]
        errors = [[max(0.0, g[0] - g[1][0]) if g and g[1] else 0.0 for g in got],
                  [max(0.0, g[1][1] - g[0]) if g and g[1] else 0.0 for g in got]]  # fmt: skip
        container = ax.bar(xs, heights, width, yerr=errors, label=target, color=colour[target],
                           error_kw={"elinewidth": 0.7, "capsize": 1.5})  # fmt: skip
        ax.bar_label(container, labels=[fmt_rate(h) if h else "" for h in heights],
                     fontsize=5, rotation=90, padding=2)  # fmt: skip
        drawn[target] = to_hex(container.patches[0].get_facecolor())
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)))
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.margins(y=0.15)
    return drawn


def save(fig: Figure, path: Path, drawn: dict[str, str]) -> Path:
    fig.tight_layout()
    fig.savefig(path, metadata={COLOURS_KEY: json.dumps(drawn)})
    plt.close(fig)
    return path


def ratio_chart(report: Report, path: Path, what: str) -> Path | None:
    workloads = list(report.workloads)
    others = [t for t in report.ran() if t != NATIVE]

    def value(t: str, w: str) -> tuple[float, tuple[float, float] | None] | None:
        r = report.ratio(t, w)
        return (r, report.ratio_interval(t, w)) if r else None

    if not any(value(t, w) for t in others for w in workloads):
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(workloads) + 2), 4.5), dpi=80)
    drawn = bars(ax, workloads, others, value, colours(report))
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticklabels([report.workloads[w]["title"] for w in workloads], rotation=30,
                       ha="right", fontsize=8)  # fmt: skip
    ax.set_ylabel("time / native (log)")
    ax.set_title(f"Time relative to the native disk ({what})", fontsize=10)
    ax.legend(fontsize=7, ncol=min(4, len(others)))
    return save(fig, path, drawn)


def throughput_chart(report: Report, path: Path, what: str) -> Path | None:
    units = sorted({i["unit"] for i in report.workloads.values() if i.get("unit")})

    def value(t: str, w: str) -> tuple[float, tuple[float, float] | None] | None:
        m = report.get(t, w)
        v = m.throughput() if m is not None else None
        return (v, m.throughput_interval()) if v and m is not None else None

    targets = report.ran()
    if not any(value(t, w) for t in targets for w in report.workloads):
        return None
    fig, axes = plt.subplots(1, len(units), figsize=(4.0 + 3.0 * len(units), 4.5), dpi=80,
                             squeeze=False)  # fmt: skip
    drawn: dict[str, str] = {}
    for ax, unit in zip(axes[0], units, strict=True):
        workloads = [w for w, i in report.workloads.items() if i.get("unit") == unit]
        drawn |= bars(ax, workloads, targets, value, colours(report))
        ax.set_xticklabels([report.workloads[w]["title"] for w in workloads], rotation=30,
                           ha="right", fontsize=8)  # fmt: skip
        ax.set_ylabel(f"{unit} (log)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Throughput of the I/O workloads ({what})", fontsize=10)
    return save(fig, path, drawn)


def latency_chart(report: Report, path: Path, what: str) -> Path | None:
    ops = figures(report)
    if not ops:
        return None
    targets = [t for t in report.ran() if any(t in by for by in ops.values())]

    def value(t: str, op: str) -> tuple[float, tuple[float, float] | None] | None:
        f = ops[op].get(t)
        return (f.p50_us, (f.p50_us, f.p99_us)) if f else None

    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(ops) + 2), 4.5), dpi=80)
    drawn = bars(ax, list(ops), targets, value, colours(report))
    ax.set_xticklabels(list(ops), rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("µs per operation, p50 (bar) to p99 (log)")
    ax.set_title(f"Latency per operation ({what})", fontsize=10)
    ax.legend(fontsize=7, ncol=min(4, len(targets)))
    return save(fig, path, drawn)


def write_charts(report: Report, folder: Path) -> list[Path]:
    """ratio.png, throughput.png and latency.png in `folder` (those with something to
    draw); the files written."""
    s = report.settings
    what = f"size {s.get('size')}, {'cold' if s.get('cold') else 'warm'}, median of {s.get('runs')}"
    written = [
        ratio_chart(report, folder / "ratio.png", what),
        throughput_chart(report, folder / "throughput.png", what),
        latency_chart(report, folder / "latency.png", what),
    ]
    return [p for p in written if p is not None]
