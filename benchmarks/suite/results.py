"""The results of a run: its measurements and their statistics, results.json (written and
read back)."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .stats import Summary, summarize

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
    #: the last run's own figures: fio's ("clat_percentiles_ns"), per operation ("ops"),
    #: each job's time with --jobs ("jobs")
    extra: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def summary(self) -> Summary:
        return summarize(self.seconds)

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

    def throughput_interval(self) -> tuple[float, float] | None:
        """The throughput at the ends of the median's interval (low, high)."""
        if self.throughput() is None or self.work is None:
            return None
        s = self.summary
        return self.work / s.high, self.work / s.low


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

    def ratio_interval(self, target: str, workload: str) -> tuple[float, float] | None:
        """The ratio's range over both medians' intervals (low, high)."""
        m, native = self.get(target, workload), self.get(NATIVE, workload)
        if self.ratio(target, workload) is None or m is None or native is None:
            return None
        mine, theirs = m.summary, native.summary
        return mine.low / theirs.high, mine.high / theirs.low

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
                stats = m.summary
                row.update(
                    min=m.min,
                    median=m.median,
                    max=m.max,
                    mad=stats.mad,
                    ci_low=stats.low,
                    ci_high=stats.high,
                    ci_confidence=stats.confidence,
                    outliers=list(stats.outliers),
                    throughput=m.throughput(),
                    ratio_to_native=self.ratio(m.target, m.workload),
                )
            out["results"].append(row)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not a results.json of format {FORMAT}: {found!r}")
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
