"""The statistics of a workload's run times: median, spread, a confidence interval of the
median, outliers; and what a change between two of them means.

The interval is distribution-free (order statistics: run times are skewed and have
outliers, which a Student t interval assumes away): the true median lies between the
k-th smallest and the k-th largest time with probability 1 - 2 P(B < k), B binomial
(n, 1/2). It reaches 95% from 6 runs; below, the interval is the range of the runs, at
its own confidence (3 runs: 75%, 5 runs: 94%), and 1 run has none.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95  # of the median's interval
MIN_RUNS = 5  # a comparison marks a figure from fewer runs
OUTLIER_MADS = 3.0  # a time further than this many scaled MADs from the median
MAD_SCALE = 1.4826  # MAD -> standard deviation of a normal distribution


def coverage(n: int, k: int) -> float:
    """The confidence that the median lies between the k-th smallest and the k-th largest
    of n samples (1 <= k <= (n + 1) / 2)."""
    below = sum(math.comb(n, i) for i in range(k)) / 2.0**n
    return max(0.0, 1 - 2 * below)


@dataclass(frozen=True)
class Summary:
    """The statistics of one set of run times (seconds)."""

    n: int
    median: float
    mad: float  # median absolute deviation from the median
    low: float  # the median's confidence interval
    high: float
    confidence: float  # of [low, high]: CONFIDENCE, or less with fewer than 6 runs
    outliers: tuple[float, ...]  # shown, never dropped

    @property
    def half_width(self) -> float:
        """The interval's wider side, relative to the median (0.1 for +-10%)."""
        if self.median <= 0:
            return math.inf
        return max(self.high - self.median, self.median - self.low) / self.median

    def stable(self, tolerance: float) -> bool:
        """Whether the interval is a full-confidence one within +-`tolerance` (0.05: 5%)."""
        return self.confidence >= CONFIDENCE and self.half_width <= tolerance


def summarize(times: Sequence[float]) -> Summary:
    """The statistics of `times` (at least one)."""
    xs = sorted(times)
    n = len(xs)
    median = statistics.median(xs)
    mad = statistics.median(abs(x - median) for x in xs)
    k = 1
    while k + 1 <= (n + 1) // 2 and coverage(n, k + 1) >= CONFIDENCE:
        k += 1
    limit = OUTLIER_MADS * MAD_SCALE * mad
    outliers = tuple(x for x in xs if mad > 0 and abs(x - median) > limit)
    return Summary(n, median, mad, xs[k - 1], xs[n - k], coverage(n, k), outliers)


@dataclass(frozen=True)
class Change:
    """The change of a median from `before` to `after`, with its uncertainty: the range of
    after/before - 1 over the two intervals. Within noise when the intervals overlap (the
    range holds 0), unknown when either side had a single run."""

    before: Summary
    after: Summary

    @property
    def low(self) -> float:
        return self.after.low / self.before.high - 1

    @property
    def high(self) -> float:
        return self.after.high / self.before.low - 1 if self.before.low > 0 else math.inf

    @property
    def verdict(self) -> str:
        """One of faster, slower, noise, or unknown (a single run: no interval)."""
        if min(self.before.n, self.after.n) < 2:
            return "unknown"
        if self.low > 0:
            return "slower"
        return "faster" if self.high < 0 else "noise"

    @property
    def few_runs(self) -> bool:
        return min(self.before.n, self.after.n) < MIN_RUNS
