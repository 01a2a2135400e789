"""ninep-bench's statistics on synthetic timings with known answers: the median's
order-statistic interval and its confidence, MAD, outliers, the verdict of a change,
and when --until-stable has runs enough."""

from __future__ import annotations

import pytest

from benchmarks.suite.results import Measurement
from benchmarks.suite.runner import Settings
from benchmarks.suite.stats import Change, coverage, summarize


def test_coverage_of_the_range_and_of_inner_pairs() -> None:
    assert [coverage(n, 1) for n in (1, 2, 3, 5, 6)] == [0.0, 0.5, 0.75, 0.9375, 0.96875]
    assert coverage(10, 2) == pytest.approx(1 - 2 * 11 / 1024)
    assert coverage(10, 3) == pytest.approx(1 - 2 * 56 / 1024)


def test_summary_of_three_runs_is_their_range_at_75_percent() -> None:
    s = summarize([0.5, 0.3, 0.9])
    assert (s.n, s.median, s.low, s.high, s.confidence) == (3, 0.5, 0.3, 0.9, 0.75)
    assert s.mad == pytest.approx(0.2)
    assert s.half_width == pytest.approx(0.8)  # the wider side: 0.9 is 80% above 0.5
    assert s.outliers == ()


def test_summary_of_ten_runs_drops_one_from_each_end_and_shows_the_outlier() -> None:
    times = [1.0, 1.1, 0.9, 1.0, 1.2, 0.8, 1.0, 1.1, 0.9, 9.0]
    s = summarize(times)
    assert s.median == pytest.approx(1.0)
    assert (s.low, s.high) == (0.9, 1.2)  # the 2nd smallest and the 2nd largest
    assert s.confidence == pytest.approx(0.9785, abs=1e-4)
    assert s.mad == pytest.approx(0.1)
    assert s.outliers == (9.0,)  # shown, and kept in the median
    assert summarize([2.0]).confidence == 0.0


def test_change_verdicts() -> None:
    before = summarize([1.0, 1.1, 0.9, 1.0, 1.05, 0.95])
    assert Change(before, summarize([2.0, 2.1, 1.9, 2.0, 2.05, 1.95])).verdict == "slower"
    assert Change(before, summarize([0.5, 0.55, 0.45, 0.5, 0.52, 0.48])).verdict == "faster"
    overlap = Change(before, summarize([1.05, 1.2, 1.0, 1.1, 1.15, 0.98]))
    assert overlap.verdict == "noise" and overlap.low < 0 < overlap.high
    assert not overlap.few_runs
    single = Change(summarize([0.025]), summarize([0.041]))  # +65%, one run each
    assert single.verdict == "unknown" and single.few_runs
    apart = Change(summarize([1.0, 1.1, 1.2]), summarize([2.0, 2.2, 2.4]))
    assert apart.verdict == "slower" and apart.few_runs
    assert apart.low == pytest.approx(2.0 / 1.2 - 1) and apart.high == pytest.approx(2.4 - 1)


def test_until_stable_needs_a_95_percent_interval_within_the_tolerance() -> None:
    settings = Settings(runs=3, until_stable=5.0, max_runs=8)
    m = Measurement("native", "find", [1.0, 1.0, 1.0])
    assert not settings.enough(m)  # tight, but a 75% interval
    m.seconds += [1.0, 1.01, 0.99]
    assert settings.enough(m)  # 6 runs: 97% within +-1%
    wide = Measurement("native", "find", [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0])
    assert not settings.enough(wide)
    wide.seconds.append(2.0)
    assert settings.enough(wide)  # max_runs
    assert not Settings(runs=3).enough(Measurement("native", "find", [1.0, 1.0]))
    assert Settings(runs=3).enough(Measurement("native", "find", [1.0, 5.0, 1.0]))
