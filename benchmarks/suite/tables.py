"""The Markdown a run prints: median times with their intervals and ratios to native,
throughput, per-operation latency, every measurement's statistics (`--details`)."""

from __future__ import annotations

from collections.abc import Iterable

from .latency import OpFigures, figures
from .results import NATIVE, Measurement, Report
from .stats import Summary


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.1f}" if ms < 10 else f"{ms:.0f}"


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x"


def fmt_rate(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def fmt_pct(fraction: float) -> str:
    return f"{fraction * 100:.0f}%"


def fmt_spread(s: Summary) -> str:
    """The interval's wider side relative to the median (" ±12%"); "" for a single run."""
    return f" ±{fmt_pct(s.half_width)}" if s.n > 1 else ""


def markdown(header: list[str], rows: Iterable[list[str]]) -> str:
    """A Markdown table, columns padded to their widest cell."""
    rows = [header, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def cell(report: Report, target: str, workload: str) -> str:
    """Median ms +-interval, and x native for the other targets; "FAIL" or "-"."""
    m = report.get(target, workload)
    if m is None:
        return "-"
    if not m.ok:
        return "FAIL"
    ratio = report.ratio(target, workload)
    suffix = f" ({fmt_ratio(ratio)})" if ratio and target != NATIVE else ""
    return fmt_ms(m.median) + fmt_spread(m.summary) + suffix


def summary_table(report: Report) -> str:
    """Workloads down, targets across: median time (ms), its interval and ratio to native."""
    targets = report.ran()
    rows = [
        [info["title"], *(cell(report, t, w) for t in targets)]
        for w, info in report.workloads.items()
    ]
    return markdown(["median ms ±CI (x native)", *targets], rows)


def rate_cell(m: Measurement | None) -> str:
    if m is None:
        return "-"
    value = m.throughput()
    return "FAIL" if value is None else fmt_rate(value) + fmt_spread(m.summary)


def throughput_table(report: Report) -> str:
    """The I/O workloads' throughput (MB/s, IOPS) at their median time, +-interval."""
    targets = report.ran()
    rows = [
        [f"{info['title']} ({info['unit']})", *(rate_cell(report.get(t, w)) for t in targets)]
        for w, info in report.workloads.items()
        if info.get("unit") is not None
    ]
    return markdown(["throughput", *targets], rows) if rows else ""


def op_cell(f: OpFigures | None) -> str:
    """ "p50 / p99", then (CPU us of all processes, 9P requests, FUSE requests) where
    measured."""
    if f is None:
        return "-"
    more = [f"CPU {fmt_rate(sum(f.cpu_us.values()))}"] if f.cpu_us else []
    more += [f"{fmt_rate(f.requests)} req"] if f.requests is not None else []
    more += [f"{fmt_rate(f.fuse)} FUSE"] if f.fuse is not None else []
    return f"{fmt_rate(f.p50_us)} / {fmt_rate(f.p99_us)}" + (
        f" ({', '.join(more)})" if more else ""
    )


def latency_table(report: Report) -> str:
    """Per operation: wall p50 / p99 (us), CPU us of every process involved, 9P and FUSE
    requests."""
    targets = report.ran()
    rows = [[op, *(op_cell(by.get(t)) for t in targets)] for op, by in figures(report).items()]
    header = "per operation: p50 / p99 µs (CPU µs, 9P requests, FUSE requests)"
    return markdown([header, *targets], rows) if rows else ""


def jobs_table(report: Report) -> str:
    """With --jobs: each workload's per-job time, the median job and the slowest (ms)."""
    targets, rows = report.ran(), []
    for w, info in report.workloads.items():
        ms = [report.get(t, w) for t in targets]
        each = [sorted((m.extra or {}).get("jobs") or []) if m and m.ok else [] for m in ms]
        if any(each):
            rows.append([info["title"], *(f"{fmt_ms(e[(len(e) - 1) // 2])} / {fmt_ms(e[-1])}"
                                          if e else "-" for e in each)])  # fmt: skip
    return markdown(["one job: median / slowest ms", *targets], rows) if rows else ""


def cpu_lines(report: Report) -> list[str]:
    """CPU per operation of each process, where the `ops` workload measured it."""
    lines = []
    for op, by_target in figures(report).items():
        for target, f in by_target.items():
            if f.cpu_us:
                parts = " + ".join(f"{p} {fmt_rate(us)}" for p, us in f.cpu_us.items())
                lines.append(f"CPU µs per {op} on {target}: {parts}")
    return lines


def details_table(report: Report) -> str:
    """Every measurement: runs, median, MAD, the median's interval and its confidence, min,
    max (ms), the outliers, or its error."""
    rows = []
    for m in report.measurements:
        if m.ok:
            s = m.summary
            stats = [fmt_ms(s.median), fmt_ms(s.mad), f"{fmt_ms(s.low)}-{fmt_ms(s.high)}",
                     fmt_pct(s.confidence), fmt_ms(m.min), fmt_ms(m.max),
                     " ".join(map(fmt_ms, s.outliers))]  # fmt: skip
        else:
            stats = ["-"] * 7
        rows.append([m.target, m.workload, str(len(m.seconds)), *stats, (m.error or "")[:60]])
    header = ["target", "workload", "runs", "median ms", "MAD ms", "interval ms", "conf",
              "min ms", "max ms", "outliers ms", "error"]  # fmt: skip
    return markdown(header, rows)


def render(report: Report, details: bool = False) -> str:
    """The Markdown that a run prints: the tables, what was skipped, what failed."""
    s = report.settings
    runs = s.get("runs")
    if s.get("until_stable"):
        runs = f"{runs} to {s.get('max_runs')} (until ±{s['until_stable']}%)"
    jobs = f", {s['jobs']} jobs at once" if s.get("jobs", 1) > 1 else ""
    parts = [
        f"ninep-bench: size {s.get('size')}, {runs} run(s), "
        f"{'cold' if s.get('cold') else 'warm'}{jobs}; {report.machine.get('summary', '')}",
        summary_table(report),
        "±: the median's confidence interval, its wider side (see the README: 3 runs give "
        "a 75% interval, 6 or more a 95% one)",
    ]
    parts += [throughput_table(report), jobs_table(report), latency_table(report)]
    if details:
        parts.append(details_table(report))
        parts.append("\n".join(cpu_lines(report)))
    parts += [f"skipped {t}: {reason}" for t, reason in report.skipped().items()]
    parts += [f"FAILED {m.target} / {m.workload}: {m.error}" for m in report.failures()]
    parts += [f"note: {note}" for note in s.get("notes", [])]
    parts += [f"note: {t}: {info['note']}" for t, info in report.targets.items()
              if info.get("note") and info.get("status") == "ok"]  # fmt: skip
    return "\n\n".join(p for p in parts if p)
