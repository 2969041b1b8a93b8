"""Slow start through the Router: who ramps, what explanations say, and the shares."""

from __future__ import annotations

from collections import Counter

import pytest
from doubles import FakeRegistry, line, pool

from linq_router import Outcome, Router, SlowStart
from linq_router.testing import FakeClock


def _joined(policy: str, **kwargs: object) -> tuple[Router, FakeClock, FakeRegistry]:
    clock = FakeClock()
    registry = FakeRegistry(pool(3))
    r = Router(registry, policy, clock=clock, slow_start=SlowStart(window=100.0), **kwargs)  # type: ignore[arg-type]
    r.pick()
    registry.set(registry.current.derive([*registry.current.numbers, line(3)]))
    r.settle()
    return r, clock, registry


@pytest.mark.parametrize(
    ("policy", "to", "text"),
    [
        ("reputation-weighted", None, "weight 1 x slow start 0.10"),
        ("round-robin", None, "slow start: 0.10 of its turns"),
        ("sticky", "+14155550100", "x slow start 0.10"),
    ],
)
def test_explanations_show_the_factor(policy: str, to: str | None, text: str) -> None:
    """A line that joined after the first snapshot says its slow-start factor."""
    r, _, _ = _joined(policy)
    seen = []
    for i in range(400):
        recipient = None if to is None else f"+1415555{i:04d}"
        pick = r.pick(recipient)
        if pick.phone_number == "+12025550003":
            seen.append(str(pick.explanation))
    assert seen, "the new line was never picked"
    assert all(text in explanation for explanation in seen)


def test_first_snapshot_lines_start_at_full_weight() -> None:
    """Lines of the router's first snapshot are not ramped."""
    r = Router(FakeRegistry(pool(3)), "round-robin", slow_start=SlowStart(window=100.0))
    counts = Counter(r.pick().phone_number for _ in range(300))
    assert set(counts.values()) == {100}


def test_shares_follow_the_factor_and_reach_full_weight() -> None:
    """Round-robin gives the new line its factor's share of turns, then all of them."""
    r, clock, _ = _joined("round-robin")
    at_start = Counter(r.pick().phone_number for _ in range(3100))["+12025550003"]
    assert at_start == 100  # 0.1 of its turns: 0.1 / 3.1 of 3,100 picks
    clock.advance(50.0)
    r.pick()
    r.settle()
    half = Counter(r.pick().phone_number for _ in range(3500))["+12025550003"]
    assert half == 500  # 0.5 / 3.5
    clock.advance(60.0)
    r.pick()
    r.settle()
    full = Counter(r.pick().phone_number for _ in range(400))["+12025550003"]
    assert full == 100


def test_a_line_back_from_ejection_ramps_up() -> None:
    """Returning from an ejection is entering the pool again: it starts at min_weight."""
    clock = FakeClock()
    r = Router(
        FakeRegistry(pool(3)), "round-robin", clock=clock, slow_start=SlowStart(window=100.0)
    )
    r.pick()
    r.report("+12025550000", Outcome(403, 2027))
    clock.advance(300.0)
    r.pick()
    r.settle()
    counts = Counter(r.pick().phone_number for _ in range(2100))
    assert counts["+12025550000"] == 100  # 0.1 / 2.1 of 2,100


def test_bad_slow_start() -> None:
    """Bad windows and weights are refused, naming the argument."""
    with pytest.raises(ValueError, match="window"):
        SlowStart(window=0)
    with pytest.raises(ValueError, match="min_weight"):
        SlowStart(min_weight=0)
    with pytest.raises(TypeError, match="slow_start must be a SlowStart"):
        Router(FakeRegistry(pool(1)), slow_start=0.5)  # type: ignore[arg-type]
