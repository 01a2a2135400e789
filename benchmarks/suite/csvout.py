"""results.csv: one row per measurement (target, workload), for spreadsheets and plots."""

from __future__ import annotations

import csv
from pathlib import Path

from .latency import fio_percentile
from .results import Report

COLUMNS = ["target", "workload", "runs", "median_s", "mad_s", "ci_low_s", "ci_high_s",
           "ci_confidence", "min_s", "max_s", "outliers", "throughput", "unit",
           "ratio_to_native", "p50_us", "p99_us", "error"]  # fmt: skip


def rows(report: Report) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for m in report.measurements:
        row: dict[str, object] = {"target": m.target, "workload": m.workload,
                                  "runs": len(m.seconds), "error": m.error or ""}  # fmt: skip
        if m.ok:
            s = m.summary
            percentiles = (m.extra or {}).get("clat_percentiles_ns") or {}
            p50, p99 = fio_percentile(percentiles, 50), fio_percentile(percentiles, 99)
            row.update(
                median_s=s.median, mad_s=s.mad, ci_low_s=s.low, ci_high_s=s.high,
                ci_confidence=round(s.confidence, 4), min_s=m.min, max_s=m.max,
                outliers=" ".join(map(str, s.outliers)), throughput=m.throughput(),
                unit=report.workloads.get(m.workload, {}).get("unit") or "",
                ratio_to_native=report.ratio(m.target, m.workload),
                p50_us=p50 / 1e3 if p50 is not None else None,
                p99_us=p99 / 1e3 if p99 is not None else None,
            )  # fmt: skip
        out.append(row)
    return out


def write_csv(report: Report, path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows(report))
