"""The change of every figure between two runs, with its uncertainty, and whether it is a
real difference or within noise (benchmarks/suite/stats.py: `Change`)."""

from __future__ import annotations

from collections import Counter

from .results import Report
from .stats import MIN_RUNS, Change
from .tables import fmt_ms, fmt_ratio, fmt_spread, markdown


def fmt_change(fraction: float) -> str:
    return f"{fraction * 100:+.0f}%"


def changes(old: Report, new: Report) -> list[tuple[str, str, Change]]:
    """(target, workload, change) of every measurement that succeeded in both."""
    out = []
    for m in new.measurements:
        before = old.get(m.target, m.workload)
        if before is not None and before.ok and m.ok and before.median > 0:
            out.append((m.target, m.workload, Change(before.summary, m.summary)))
    return out


def verdict(change: Change) -> str:
    words = {"unknown": "unknown: 1 run", "noise": "noise (intervals overlap)"}
    text = words.get(change.verdict, change.verdict)
    return text + (f", few runs (<{MIN_RUNS})" if change.few_runs else "")


def compare_table(old: Report, new: Report) -> str:
    """The change of each median since `old`, its range over both intervals, the ratio to
    native before and after, and the verdict; a count of each verdict below."""
    rows, tally = [], Counter[str]()
    for target, workload, c in changes(old, new):
        ratios = [r.ratio(target, workload) for r in (old, new)]
        moved = fmt_change(c.after.median / c.before.median - 1)
        if c.verdict != "unknown":
            moved += f" ({fmt_change(c.low)}..{fmt_change(c.high)})"
        rows.append([
            target, workload,
            *(f"{fmt_ms(s.median)}{fmt_spread(s)} n={s.n}" for s in (c.before, c.after)),
            moved, " -> ".join(fmt_ratio(r) if r else "-" for r in ratios), verdict(c),
        ])  # fmt: skip
        tally[c.verdict] += 1
    if not rows:
        return "(no measurement in common)"
    header = ["target", "workload", "before ms", "after ms", "change (range)", "x native",
              "verdict"]  # fmt: skip
    counts = ", ".join(f"{tally[v]} {v}" for v in ("faster", "slower", "noise", "unknown"))
    legend = (
        f"{counts}. A difference is real when the medians' intervals do not overlap (the "
        "range excludes 0); a single run has no interval."
    )
    return markdown(header, rows) + "\n\n" + legend
