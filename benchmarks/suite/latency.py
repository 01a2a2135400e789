"""Per-operation figures of a report, read from its measurements' own figures: fio's
completion-latency percentiles (the random I/O workloads) and the `ops` workload's
wall p50/p99, CPU per process and 9P and FUSE requests per operation."""

from __future__ import annotations

from dataclasses import dataclass, field

from .results import Report


@dataclass
class OpFigures:
    """One operation's figures on one target (microseconds; requests per operation)."""

    p50_us: float
    p99_us: float
    cpu_us: dict[str, float] = field(default_factory=dict)  # by process
    requests: float | None = None  # 9P requests per operation, where the server counts them
    fuse: float | None = None  # FUSE requests per operation, where the kernel's are traced


def fio_percentile(percentiles: dict[str, float], p: float) -> float | None:
    """fio's `clat_percentiles_ns` entry for `p` (keys like "99.000000"), in ns."""
    for key, value in percentiles.items():
        if abs(float(key) - p) < 1e-6:
            return value
    return None


def figures(report: Report) -> dict[str, dict[str, OpFigures]]:
    """Operation label -> target -> its figures, in the report's workload order."""
    out: dict[str, dict[str, OpFigures]] = {}
    for workload, info in report.workloads.items():
        for target in report.ran():
            m = report.get(target, workload)
            if m is None or not m.ok or not m.extra:
                continue
            percentiles = m.extra.get("clat_percentiles_ns") or {}
            p50, p99 = fio_percentile(percentiles, 50), fio_percentile(percentiles, 99)
            if p50 is not None and p99 is not None:
                out.setdefault(info["title"], {})[target] = OpFigures(p50 / 1e3, p99 / 1e3)
            for op, f in (m.extra.get("ops") or {}).items():
                out.setdefault(op, {})[target] = OpFigures(
                    f["p50_us"],
                    f["p99_us"],
                    f.get("cpu_us") or {},
                    f.get("requests"),
                    f.get("fuse"),
                )
    return out
