"""Properties of the feedback loop for any pool, policy and run of reports (hypothesis).

A fake clock drives time; every step checks the rules of the issue: no pick goes to
an ejected line, ejected lines return when their time is up, NOT_THE_LINE and
PAIR_LIMITED never eject, failure ejections stay under the cap and never take the
last eligible line, and slow-start factors follow the formula.
"""

from __future__ import annotations

import math

from doubles import FakeRegistry, line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linq_router import (
    Ejection,
    NoEligibleNumberError,
    Outcome,
    Router,
    SlowStart,
    Snapshot,
    Verdict,
)
from linq_router.feedback import eligible
from linq_router.testing import FakeClock

OUTCOMES = {
    "ineligible": Outcome(403, 2027),
    "failure": Outcome(500, 3006),
    "timeout": Outcome(),
    "success": None,
    "opted-out": Outcome(403, 2024),
    "pair-limited": Outcome(429, 1007),
    "bad-request": 400,
}
POLICIES = [
    "round-robin",
    "skip-critical | round-robin",
    "skip-critical | reputation-weighted",
    "sticky",
    "skip-critical | prefer-imessage | round-robin",
]

pools = st.lists(
    st.tuples(
        st.sampled_from(["HEALTHY", "HEALTHY", "AT_RISK", "CRITICAL"]),
        st.sampled_from(["ACTIVE", "ACTIVE", "ACTIVE", "FLAGGED"]),
        st.sampled_from(["iMessage", "RCS"]),
    ),
    min_size=1,
    max_size=12,
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("report"), st.integers(0, 11), st.sampled_from(sorted(OUTCOMES))),
        st.tuples(st.just("advance"), st.floats(0.0, 400.0), st.just("")),
        st.tuples(st.just("pick"), st.integers(0, 3), st.just("")),
        st.tuples(st.just("flip"), st.integers(0, 11), st.sampled_from(["HEALTHY", "CRITICAL"])),
    ),
    max_size=60,
)
ejections = st.builds(
    Ejection,
    consecutive_failures=st.integers(1, 4),
    base_time=st.floats(1.0, 100.0),
    max_time=st.floats(1.0, 300.0),
    jitter=st.sampled_from([0.0, 5.0]),
    max_percent=st.sampled_from([0.0, 10.0, 34.0, 50.0, 100.0]),
    ineligible_time=st.floats(1.0, 300.0),
)


def _snapshot(spec: list[tuple[str, str, str]]) -> Snapshot:
    return Snapshot([line(i, rep, status, kind) for i, (rep, status, kind) in enumerate(spec)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools, steps, ejections, st.sampled_from(POLICIES), st.booleans())
def test_the_rules_hold_at_every_step(
    spec: list[tuple[str, str, str]],
    program: list[tuple[str, object, str]],
    ejection: Ejection,
    policy: str,
    slow: bool,
) -> None:
    """Whatever is reported, picked or changed, the ejection rules hold after each step."""
    clock = FakeClock()
    registry = FakeRegistry(_snapshot(spec))
    slow_start = SlowStart(window=120.0) if slow else None
    router = Router(registry, policy, clock=clock, ejection=ejection, slow_start=slow_start)
    for op, arg, extra in program:
        before = {e.line: e for e in router.ejections()}
        snapshot = registry.current
        if op == "report":
            index = int(arg) % len(snapshot.numbers)  # type: ignore[call-overload]
            target = snapshot.numbers[index]
            verdict = router.report(target.phone_number, OUTCOMES[extra])
            after = {e.line: e for e in router.ejections()}
            if verdict not in (Verdict.LINE_INELIGIBLE, Verdict.LINE_FAILURE):
                assert set(after) <= set(before)  # only returns, never a new ejection
            new = set(after) - set(before)
            assert new <= {target.phone_number}
            if new and verdict is Verdict.LINE_FAILURE:
                pool = sum(1 for n in snapshot.numbers if eligible(n))
                cap = max(1, math.floor(ejection.max_percent / 100.0 * pool))
                failing = [e for e in after.values() if e.verdict is Verdict.LINE_FAILURE]
                assert len(failing) <= cap
                fallback = [n for n in snapshot.numbers if eligible(n)] or list(snapshot.numbers)
                left = [n for n in fallback if n.phone_number not in after]
                assert left, "a failure ejection took the last eligible line"
        elif op == "advance":
            clock.advance(float(arg))  # type: ignore[arg-type]
        elif op == "flip":
            index = int(arg) % len(snapshot.numbers)  # type: ignore[call-overload]
            numbers = list(snapshot.numbers)
            old = numbers[index]
            numbers[index] = line(index, extra, old.status or "ACTIVE", old.line_type or "RCS")
            registry.set(snapshot.derive(numbers))
        now = clock()
        current = router.ejections()
        for e in current:
            assert e.until > now, "an ejection outlived its time"
            assert e.since <= now
        ejected = {e.line for e in current}
        to = None if op != "pick" else f"+1415555{int(arg):04d}"  # type: ignore[call-overload]
        try:
            pick = router.pick(to)
        except NoEligibleNumberError as error:
            named = error.ejected
            assert not ejected or named == router.ejections()
            continue
        assert pick.phone_number not in ejected, "a pick went to an ejected line"
    router.close()


@settings(max_examples=100, deadline=None)
@given(
    st.floats(1.0, 1e6),
    st.floats(0.01, 1.0),
    st.floats(0.1, 10.0),
    st.lists(st.floats(0.0, 2.0), min_size=1, max_size=30),
)
def test_slow_start_follows_the_formula(
    window: float, min_weight: float, aggression: float, jumps: list[float]
) -> None:
    """The factor applied to a ramping line is the formula at the start of its step."""
    slow = SlowStart(window=window, min_weight=min_weight, aggression=aggression)
    clock = FakeClock()
    registry = FakeRegistry(_snapshot([("HEALTHY", "ACTIVE", "iMessage")] * 2))
    router = Router(registry, "reputation-weighted", clock=clock, slow_start=slow)
    router.pick()
    registry.set(registry.current.derive([*registry.current.numbers, line(2)]))
    entered = clock()
    step = window / 20
    for jump in jumps:
        clock.advance(jump * step)
        router.pick()  # the pick notices the step
        elapsed = clock() - entered
        factors = router._tracker.adjustments.factors  # type: ignore[union-attr]
        index = math.floor(elapsed / step + 1e-9)
        if index >= 20:
            assert "id-2" not in factors
            continue
        expected = max(min_weight, (index * step / window) ** (1 / aggression))
        applied = factors.get("id-2", 1.0)  # a factor of 1.0 is no entry at all
        assert math.isclose(applied, expected, rel_tol=1e-6, abs_tol=1e-9) or (
            # Exactly on a step boundary float rounding may land on either side.
            math.isclose(elapsed % step, 0.0, abs_tol=1e-6 * step)
            or math.isclose(elapsed % step, step, abs_tol=1e-6 * step)
        )
        true = slow.weight(elapsed)
        assert applied <= true + 1e-9  # never ahead of the formula
        assert applied >= min_weight
    router.close()


@given(st.floats(0.0, 1e7), st.floats(1.0, 1e6), st.floats(0.01, 1.0), st.floats(0.1, 10.0))
def test_the_formula(elapsed: float, window: float, min_weight: float, aggression: float) -> None:
    """SlowStart.weight is Envoy's max(min_weight, (t / window) ** (1 / aggression))."""
    slow = SlowStart(window=window, min_weight=min_weight, aggression=aggression)
    expected = 1.0 if elapsed >= window else max(min_weight, (elapsed / window) ** (1 / aggression))
    assert math.isclose(slow.weight(elapsed), expected)
    factor, wait = slow.stepped(elapsed)
    assert factor <= slow.weight(elapsed) + 1e-12
    assert wait > 0
