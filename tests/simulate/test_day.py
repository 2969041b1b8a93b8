"""A simulated day with budgets that bind: paced, no line over and no 429; unpaced, both."""

from __future__ import annotations

import importlib
import re
import time

import limits.storage.memory
import limits.strategies
import pytest
from click.testing import CliRunner

from linq_router.cli import main
from linq_router.pacing import _pacer
from linq_router.simulate._budgets import budget_figures, peak_in_window
from linq_router.simulate._day import (
    BURST_SIZE,
    BURSTS,
    DAY_TICK_SECONDS,
    DAY_TICKS,
    MIN_DAY_SENDS,
    day_pacing,
    make_day_workload,
)
from linq_router.simulate._limits_clock import SHIMMED_MODULES, limits_clock
from linq_router.simulate._results import Attempt
from linq_router.testing import FakeClock


def test_a_day_workload_spans_a_day_with_its_bursts() -> None:
    """86,400 simulated seconds; each burst is BURST_SIZE sends to one recipient in one tick."""
    workload = make_day_workload(MIN_DAY_SENDS, 3)
    assert workload.ticks * workload.tick_seconds == DAY_TICKS * DAY_TICK_SECONDS == 86_400
    assert len(workload.recipients) == MIN_DAY_SENDS
    covered = [i for t in range(workload.ticks) for i in range(*workload.bounds(t))]
    assert covered == list(range(MIN_DAY_SENDS))
    bursts = [
        t
        for t in range(workload.ticks)
        if len(set(workload.recipients[slice(*workload.bounds(t))])) < BURST_SIZE
        and workload.bounds(t)[1] - workload.bounds(t)[0] > BURST_SIZE
    ]
    assert len(bursts) == BURSTS
    assert make_day_workload(MIN_DAY_SENDS, 3) == workload
    with pytest.raises(ValueError, match="at least"):
        make_day_workload(MIN_DAY_SENDS - 1, 3)


def test_peak_in_window_counts_as_a_moving_window() -> None:
    """An entry at t counts until t + window, not at it."""
    assert peak_in_window([], 60) == 0
    assert peak_in_window([0, 0, 30, 59.9], 60) == 4
    assert peak_in_window([0, 60, 120], 60) == 1
    assert peak_in_window([0, 10, 60, 65], 60) == 3


def test_budget_figures_count_what_linq_counts() -> None:
    """Accepted sends and 429s count per line; only accepted ones per pair."""
    attempts = [
        *(Attempt(i, "a", None, False, "accepted", 0) for i in range(30)),
        Attempt(30, "a", None, False, "pair_limited", 0),
        Attempt(31, "b", None, False, "accepted", 1),
        Attempt(32, None, None, False, "no_budget", 1),
        Attempt(33, "b", None, False, "ineligible", 1),
    ]
    recipients = ["+12025550199"] * 34
    figures = budget_figures(attempts, recipients, 300.0, day_pacing(240), paced=False)
    assert figures.per_line is not None
    assert figures.per_line.amount == 30
    assert figures.line_peaks == {"a": 31, "b": 1}
    assert figures.lines_over == 1
    assert figures.peak == ("a", 31)
    assert (figures.pairs_reached, figures.pairs_over) == (1, 0)
    assert figures.pair_limited == 1
    assert figures.line_429s == {"a": 1}
    assert figures.out_of_budget == 1


def _real_times() -> list[object]:
    return [importlib.import_module(name).time for name in SHIMMED_MODULES]


def test_the_limits_clock_follows_the_fake_clock_and_is_restored() -> None:
    """Inside, limits' time() moves only with the FakeClock; after, every module has time."""
    clock = FakeClock(0.0)
    with limits_clock(clock) as now:
        start = limits.strategies.time.time()
        assert limits.storage.memory.time.time() == start == now()
        assert _pacer.time.time() == start
        assert abs(start - time.time()) < 5  # on the wall clock's epoch
        clock.advance(86_400)
        assert limits.strategies.time.time() == pytest.approx(start + 86_400)
        assert limits.strategies.time.monotonic is time.monotonic  # the rest is real
    assert all(module is time for module in _real_times())


def test_the_limits_clock_is_restored_after_an_error() -> None:
    """An exception inside the block still puts the real time module back everywhere."""
    clock = FakeClock(0.0)

    def run() -> None:
        with limits_clock(clock):
            clock.advance(10)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run()
    assert all(module is time for module in _real_times())


_RUN = re.compile(
    r"^(?P<who>with(?:out)? pacing)\s+(?P<over>no line|\d+ lines?) over budget"
    r".*?; (?P<refused>[\d,]+) 429/1007 from the fake",
    re.MULTILINE,
)


def test_simulate_day_paced_stays_in_budget_and_unpaced_does_not() -> None:
    """With pacing no line passes its budget and the fake answers no 429; without, both."""
    result = CliRunner().invoke(
        main, ["simulate", "--day", "--sends", str(MIN_DAY_SENDS)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    found = {m["who"]: m for m in _RUN.finditer(result.output)}
    assert set(found) == {"with pacing", "without pacing"}, result.output
    assert found["with pacing"]["over"] == "no line"
    assert found["with pacing"]["refused"] == "0"
    assert found["without pacing"]["over"] != "no line"
    assert int(found["without pacing"]["refused"].replace(",", "")) > 0
    budget = MIN_DAY_SENDS // 8
    assert f"per_line {budget}/day" in result.output
    assert "86,400 simulated seconds" in result.output
    assert all(module is time for module in _real_times())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sends", "10"], "at least"),
        (["--compare", "round-robin"], "--day runs one --policy"),
        (["--report", "out.html"], "--day runs one --policy"),
    ],
)
def test_simulate_day_usage_errors(args: list[str], needle: str) -> None:
    """A day too short, or --compare / --report with it, is a usage error before any run."""
    result = CliRunner().invoke(main, ["simulate", "--day", *args])
    assert result.exit_code == 2
    assert needle in result.output
