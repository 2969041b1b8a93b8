"""The seeded demo run shows the feedback loop's effect, and the report says so."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import pytest
from rich.console import Console

from linq_router import Reputation
from linq_router.simulate._engine import run_specs, run_workload
from linq_router.simulate._report import render_compare, render_run
from linq_router.simulate._results import EjectedPeriod, LineHistory, RunResult
from linq_router.simulate._timeline import timeline_cells
from linq_router.simulate._workload import LOOP_EJECTION, TICK_SECONDS, make_workload
from linq_router.testing import FakeClock, FakeLinqServer, sample_pool

SPEC = "skip-critical | reputation-weighted"
WORKERS = 4
SENDS = 1000


@pytest.fixture(scope="module")
def demo() -> RunResult:
    """The default demo run (seed 1) of the default spec, with its naive twin."""
    (result,) = run_specs([SPEC], make_workload(SENDS, 1), demo=True, workers=WORKERS)
    return result


def _windows(kind: str) -> dict[str, tuple[int, int]]:
    """Line -> (first tick, tick it ended) of each ``kind`` behaviour in seed 1's script."""
    starts: dict[str, int] = {}
    windows = {}
    for event in make_workload(SENDS, 1).events:
        if event.kind != "behaviour" or event.line is None:
            continue
        if event.value == kind:
            starts[event.line] = event.tick
        elif event.value == "ok" and event.line in starts:
            windows[event.line] = (starts.pop(event.line), event.tick)
    return windows


def test_with_the_loop_few_sends_hit_ineligible_lines(demo: RunResult) -> None:
    """At most one batch per 2027 ejection meets the line: far fewer hits than the naive worker."""
    loop, naive = demo.sending, demo.naive and demo.naive.sending
    assert loop is not None
    assert naive is not None
    ineligible = _windows("ineligible")
    assert len(ineligible) == 2
    ejections = [p for p in demo.ejections if p.cause == "2027"]
    assert {p.line for p in ejections} == set(ineligible)
    # Each ejection costs at most the sends in flight when it happened; a line ejected
    # twice (its return on trial met a 2027 again) is the most a 60 s ejection allows.
    assert len(ejections) <= 2 * len(ineligible)
    assert 0 < loop.ineligible <= WORKERS * len(ejections)
    assert loop.ineligible * 10 <= naive.ineligible
    assert loop.repicks == loop.ineligible  # each refused create went out again, once
    assert naive.repicks >= naive.ineligible - naive.lost


def test_with_the_loop_fewer_sends_hit_a_failing_line(demo: RunResult) -> None:
    """Five failures in a row eject the failing line; a 5xx is never resent, so it is lost."""
    loop, naive = demo.sending, demo.naive and demo.naive.sending
    assert loop is not None
    assert naive is not None
    failures = [p for p in demo.ejections if p.cause == "failures"]
    assert {p.line for p in failures} == set(_windows("failing"))
    assert LOOP_EJECTION.consecutive_failures <= loop.failing < naive.failing
    assert loop.lost == loop.failing
    assert naive.lost == naive.failing  # every 2027 found another line within two repicks


def test_ejections_run_on_simulated_time(demo: RunResult) -> None:
    """A 2027 ejects for 60 s and 120 s on a repeat; failures for 30 s, then 60 s on trial."""
    by_line: dict[str, list[EjectedPeriod]] = {}
    for period in demo.ejections:
        by_line.setdefault(period.line, []).append(period)
    for line, periods in by_line.items():
        first = periods[0]
        base = LOOP_EJECTION.ineligible_time if first.cause == "2027" else LOOP_EJECTION.base_time
        lengths = [
            (p.end - p.start) * TICK_SECONDS for p in periods if p.end is not None
        ]  # an ejection running past the run's end has no length yet
        expected = [base * 2**k for k in range(len(lengths))]
        assert lengths == expected, (line, periods)


def test_ejections_start_inside_the_behaviours_window(demo: RunResult) -> None:
    """The loop ejects a line only once it misbehaves, and only then."""
    windows = {**_windows("ineligible"), **_windows("failing")}
    for period in demo.ejections:
        start, end = windows[period.line]
        assert start <= period.start < end, period


def test_the_list_keeps_showing_the_misbehaving_lines_healthy(demo: RunResult) -> None:
    """Only the sends' answers reveal the behaviours: the registry's view never changes."""
    hidden = {**_windows("ineligible"), **_windows("failing")}
    for history in demo.lines:
        if history.phone_number in hidden:
            assert set(history.reputations) == {Reputation.HEALTHY}
            assert not any(history.flagged)


def test_the_naive_worker_never_ejects(demo: RunResult) -> None:
    """ejection=None: no ejections, and the ineligible lines keep taking their share."""
    naive = demo.naive
    assert naive is not None
    assert naive.ejection is None
    assert naive.ejections == ()
    assert naive.naive is None
    by_number = {h.phone_number: h.id for h in naive.lines}
    for line in _windows("ineligible"):
        assert naive.hits[by_number[line]] > 10
    assert demo.lines == naive.lines  # the same pool history: like compared with like


def test_a_2027_is_resent_from_another_line_and_the_fake_agrees() -> None:
    """On the wire: each 2027 is followed by an accepted create to the same recipient elsewhere."""
    clock = FakeClock(0.0)
    with FakeLinqServer(sample_pool(), clock=clock) as server:
        result = run_workload(
            SPEC,
            make_workload(600, 1),
            base_url=server.base_url,
            api_key=server.api_key,
            server=server,
            clock=clock,
            workers=WORKERS,
        )
        sends = server.sends
    sending = result.sending
    assert sending is not None
    assert len(sends) == sending.requests == 600 + sending.repicks
    refused = [k for k, s in enumerate(sends) if s.code == 2027]
    assert len(refused) == sending.ineligible > 0
    for k in refused:
        assert any(
            later.to == sends[k].to and later.accepted and later.from_ != sends[k].from_
            for later in sends[k + 1 :]
        ), sends[k]
    assert sum(s.code == 3006 for s in sends) == sending.failing


def _text(renderable: object, width: int = 160) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def _row(text: str, number: str) -> str:
    """The timeline cell of ``number``'s row in a printed per-line table."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0] == number:
            return cells[2]
    raise AssertionError(f"no row for {number}")


def test_the_report_marks_ejections_and_returns_and_compares(demo: RunResult) -> None:
    """The timeline shows '-' while ejected and '+' on return; the figures compare the runs."""
    text = _text(render_run(demo))
    naive = demo.naive
    assert naive is not None
    assert demo.sending is not None
    assert naive.sending is not None
    came_back = _row(text, "+12125550102")
    assert re.fullmatch(r"█+-+\+█+", came_back), came_back
    still_out = _row(text, "+17135550107")
    assert re.fullmatch(r"█+-+", still_out), still_out  # ejected again on trial, to the end
    assert set(_row(text, "+13105550103")) == {"█"}
    flat = " ".join(text.split())
    assert (
        f"with the loop: {demo.sending.ineligible} sends hit ineligible lines "
        f"(naive worker: {naive.sending.ineligible})"
    ) in flat
    assert "- ejected by the feedback loop + back from an ejection" in flat
    assert "feedback loop: +12125550102 out t=" in flat
    assert "a 2027 ejects a line for 60 s, doubling on repeats" in flat
    assert re.search(r"repicks \d+ resends on a new pick after a 2027 \(naive worker: \d+\)", flat)


def test_compare_marks_any_runs_ejections_and_names_each_spec(demo: RunResult) -> None:
    """--compare: one timeline per line marks every run's ejections, each spec's verdict shows."""
    text = _text(render_compare([demo, demo]))
    flat = " ".join(text.split())
    assert "- ejected by the feedback loop in any run" in flat
    assert flat.count(f"{SPEC!r} with the loop:") == 2
    assert "-" in _row(text, "+12125550102")


def _history(ticks: int) -> LineHistory:
    return LineHistory("L", "+1", None, (Reputation.HEALTHY,) * ticks, (False,) * ticks)


def _cells(periods: Sequence[EjectedPeriod]) -> str:
    marks = {"ejected": "-", "returned": "+", None: "#"}
    return "".join(marks[c.mark] for c in timeline_cells(_history(12), periods, width=6))


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([], "######"),
        ([(2, 6)], "#--+##"),
        ([(2, 6), (8, None)], "#--+--"),
        ([(2, 6), (6, 10)], "#----+"),  # back and out again in one cell: still out
        ([(2, 3)], "#+####"),  # out and back inside one cell: it ends the cell back
        ([(3, 4)], "#-+###"),
        ([(0, None)], "------"),
    ],
)
def test_timeline_cells_mark_ejections_and_returns(
    spans: list[tuple[int, int | None]], expected: str
) -> None:
    """A cell is '-' when the line was out in it, '+' when it came back in it and stayed."""
    periods = [EjectedPeriod("+1", start, end, "2027", "x") for start, end in spans]
    assert _cells(periods) == expected
