"""The results of a run: results.json (written and read back), the Markdown tables, and
`--compare` against an earlier results.json."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1  # results.json's format version
NATIVE = "native"


@dataclass
class Measurement:
    """The runs of one workload on one target."""

    target: str
    workload: str
    seconds: list[float] = field(default_factory=list)
    #: work done by one run, in the workload's unit times seconds (MB, I/Os), or None
    work: float | None = None
    error: str | None = None
    extra: dict[str, Any] | None = None  # fio's figures of the last run

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def max(self) -> float:
        return max(self.seconds)

    def throughput(self) -> float | None:
        """Work per second at the median time (MB/s, IOPS), for an I/O workload."""
        if self.work is None or not self.ok or self.median <= 0:
            return None
        return self.work / self.median


@dataclass
class Report:
    """One run of the suite."""

    settings: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    #: name -> info, with "status" ("ok", "skipped", "failed") and "reason"
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: name -> {"title", "description", "unit"}
    workloads: dict[str, dict[str, Any]] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)

    def get(self, target: str, workload: str) -> Measurement | None:
        for m in self.measurements:
            if m.target == target and m.workload == workload:
                return m
        return None

    def ratio(self, target: str, workload: str) -> float | None:
        """Median time on `target` / median time on native, in this run."""
        m, native = self.get(target, workload), self.get(NATIVE, workload)
        if m is None or native is None or not m.ok or not native.ok or native.median <= 0:
            return None
        return m.median / native.median

    def ran(self) -> list[str]:
        """Targets that ran (in order)."""
        return [t for t, info in self.targets.items() if info.get("status") == "ok"]

    def skipped(self) -> dict[str, str]:
        return {
            t: info.get("reason", "")
            for t, info in self.targets.items()
            if info.get("status") != "ok"
        }

    def failures(self) -> list[Measurement]:
        return [m for m in self.measurements if m.error is not None]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "settings": self.settings,
            "machine": self.machine,
            "targets": self.targets,
            "workloads": self.workloads,
            "results": [],
        }
        for m in self.measurements:
            row = asdict(m)
            if m.ok:
                row.update(
                    min=m.min,
                    median=m.median,
                    max=m.max,
                    throughput=m.throughput(),
                    ratio_to_native=self.ratio(m.target, m.workload),
                )
            out["results"].append(row)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a results.json of format {FORMAT}: {data.get('format')!r}")
        fields = ("target", "workload", "seconds", "work", "error", "extra")
        return cls(
            settings=data["settings"],
            machine=data["machine"],
            targets=data["targets"],
            workloads=data["workloads"],
            measurements=[Measurement(**{k: r.get(k) for k in fields}) for r in data["results"]],
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Report:
        return cls.from_json(json.loads(path.read_text()))


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.1f}" if ms < 10 else f"{ms:.0f}"


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x"


def fmt_rate(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


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
    """Median ms, and x native for the other targets; "FAIL" or "-"."""
    m = report.get(target, workload)
    if m is None:
        return "-"
    if not m.ok:
        return "FAIL"
    ratio = report.ratio(target, workload)
    return fmt_ms(m.median) + (f" ({fmt_ratio(ratio)})" if ratio and target != NATIVE else "")


def summary_table(report: Report) -> str:
    """Workloads down, targets across: median time (ms) and its ratio to native."""
    targets = report.ran()
    rows = [
        [info["title"], *(cell(report, t, w) for t in targets)]
        for w, info in report.workloads.items()
    ]
    return markdown(["median ms (x native)", *targets], rows)


def throughput_table(report: Report) -> str:
    """The I/O workloads' throughput (MB/s, IOPS) at their median time."""
    targets = report.ran()
    rows = []
    for w, info in report.workloads.items():
        if info.get("unit") is None:
            continue
        values = [report.get(t, w) for t in targets]
        cells = [
            fmt_rate(v)
            if (m is not None and (v := m.throughput()) is not None)
            else ("FAIL" if m is not None else "-")
            for m in values
        ]
        rows.append([f"{info['title']} ({info['unit']})", *cells])
    return markdown(["throughput", *targets], rows) if rows else ""


def details_table(report: Report) -> str:
    """Every measurement: runs, min, median, max (ms), or its error."""
    rows = []
    for m in report.measurements:
        times = [fmt_ms(m.min), fmt_ms(m.median), fmt_ms(m.max)] if m.ok else ["-"] * 3
        rows.append([m.target, m.workload, str(len(m.seconds)), *times, (m.error or "")[:60]])
    return markdown(["target", "workload", "runs", "min ms", "median ms", "max ms", "error"], rows)


def compare_table(old: Report, new: Report) -> str:
    """The change of each median since `old` (same target and workload), and of the ratio
    to native."""
    rows = []
    for m in new.measurements:
        before = old.get(m.target, m.workload)
        if before is None or not before.ok or not m.ok:
            continue
        change = (m.median / before.median - 1) * 100 if before.median > 0 else float("nan")
        ratios = [r.ratio(m.target, m.workload) for r in (old, new)]
        rows.append(
            [
                m.target,
                m.workload,
                fmt_ms(before.median),
                fmt_ms(m.median),
                f"{change:+.0f}%",
                *(fmt_ratio(r) if r else "-" for r in ratios),
            ]
        )
    header = [
        "target",
        "workload",
        "before ms",
        "after ms",
        "change",
        "before x native",
        "after x native",
    ]
    return markdown(header, rows) if rows else "(no measurement in common)"


def render(report: Report, details: bool = False) -> str:
    """The Markdown that a run prints: the tables, what was skipped, what failed."""
    s = report.settings
    parts = [
        f"ninep-bench: size {s.get('size')}, {s.get('runs')} run(s), "
        f"{'cold' if s.get('cold') else 'warm'}; {report.machine.get('summary', '')}",
        summary_table(report),
    ]
    if throughput := throughput_table(report):
        parts.append(throughput)
    if details:
        parts.append(details_table(report))
    parts += [f"skipped {t}: {reason}" for t, reason in report.skipped().items()]
    parts += [f"FAILED {m.target} / {m.workload}: {m.error}" for m in report.failures()]
    parts += [f"note: {note}" for note in s.get("notes", [])]
    parts += [f"note: {t}: {info['note']}" for t, info in report.targets.items()
              if info.get("note") and info.get("status") == "ok"]  # fmt: skip
    return "\n\n".join(parts)
