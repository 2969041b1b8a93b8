"""Ejection through the Router: what ejects, for how long, the cap, trials, events."""

from __future__ import annotations

import asyncio
import logging

import pytest
from doubles import AsyncFakeRegistry, FakeRegistry, line, pool

from linq_router import (
    AsyncRouter,
    Ejected,
    Ejection,
    LineEvent,
    NoEligibleNumberError,
    Outcome,
    Router,
    Snapshot,
    Verdict,
)
from linq_router.testing import FakeClock

INELIGIBLE = Outcome(403, 2027)
FAILURE = Outcome(500, 3006)


def router(n: int = 4, policy: str = "round-robin", **kwargs: object) -> tuple[Router, FakeClock]:
    clock = FakeClock()
    made = Router(FakeRegistry(pool(n)), policy, clock=clock, **kwargs)  # type: ignore[arg-type]
    return made, clock


def numbers(r: Router, count: int = 40, to: str | None = None) -> set[str]:
    return {r.pick(to).phone_number for _ in range(count)}


def test_ineligible_ejects_at_once_and_returns_after_its_time() -> None:
    """A 2027 report takes the line out of the very next pick, for ineligible_time."""
    r, clock = router()
    victim = r.pick()
    assert r.report(victim, INELIGIBLE) is Verdict.LINE_INELIGIBLE
    assert victim.phone_number not in numbers(r)
    (ejected,) = r.ejections()
    assert ejected == Ejected(
        victim.phone_number,
        Verdict.LINE_INELIGIBLE,
        ejected.reason,
        1000.0,
        1300.0,
        1,
    )
    assert "2027" in ejected.reason
    clock.advance(299.9)
    assert victim.phone_number not in numbers(r)
    clock.advance(0.2)
    r.pick()
    assert r.settle()
    assert victim.phone_number in numbers(r)
    assert r.ejections() == ()


def test_ineligible_doubles_each_repeat_up_to_8x() -> None:
    """Each repeat of a 2027 doubles the ejection: 300, 600, 1200, 2400, 2400."""
    r, clock = router(ejection=Ejection(ineligible_time=300.0))
    victim = r.pick().phone_number
    durations = []
    for _ in range(5):
        r.report(victim, INELIGIBLE)
        (ejected,) = r.ejections()
        durations.append(ejected.until - ejected.since)
        clock.advance(ejected.until - clock())
        assert r.ejections() == ()
    assert durations == [300.0, 600.0, 1200.0, 2400.0, 2400.0]


def test_ineligible_ignores_the_cap_and_can_take_the_last_line() -> None:
    """2027 ejects even the last line; the pick then names what is ejected and when it returns."""
    r, _ = router(n=1)
    only = r.pick()
    r.report(only, INELIGIBLE)
    with pytest.raises(NoEligibleNumberError) as caught:
        r.pick()
    message = str(caught.value)
    assert only.phone_number in message
    assert "returns in 300.0 s" in message
    assert caught.value.ejected == r.ejections()


def test_failures_in_a_row_eject_and_a_success_resets() -> None:
    """Five LINE_FAILUREs in a row eject; a success in between starts the count again."""
    r, _ = router(n=10, ejection=Ejection(max_percent=10))
    victim = r.pick().phone_number
    for _ in range(4):
        assert r.report(victim, FAILURE) is Verdict.LINE_FAILURE
    assert r.report(victim, None) is Verdict.SUCCESS
    for _ in range(4):
        r.report(victim, FAILURE)
    assert r.ejections() == ()
    r.report(victim, 503)
    (ejected,) = r.ejections()
    assert ejected.verdict is Verdict.LINE_FAILURE
    assert ejected.until - ejected.since == 30.0
    assert "5 failures in a row" in ejected.reason
    assert victim not in numbers(r)


def test_success_by_pick_resets_the_streak() -> None:
    """The hot-path success (a Pick, no outcome) resets a streak too."""
    r, _ = router(n=10)
    victim = r.pick()
    for _ in range(4):
        r.report(victim, FAILURE)
    r.report(victim)
    for _ in range(4):
        r.report(victim, FAILURE)
    assert r.ejections() == ()


def test_not_the_line_and_pair_limited_never_eject() -> None:
    """Opt-outs, blocked handles, bad requests and 429s leave the line in the pool."""
    r, _ = router(n=2, ejection=Ejection(consecutive_failures=1))
    victim = r.pick().phone_number
    for outcome in (Outcome(403, 2024), Outcome(403, 2026), 400, 401, 404, 409, 422, 429):
        for _ in range(10):
            r.report(victim, outcome)
    assert r.ejections() == ()
    assert victim in numbers(r)


def test_envoy_multiplier_grows_and_decays() -> None:
    """base_time x n, capped at max_time; n drops by one per base_time of health."""
    ejection = Ejection(consecutive_failures=1, base_time=10.0, max_time=25.0)
    r, clock = router(n=10, ejection=ejection)
    victim = r.pick().phone_number
    seen = []
    for _ in range(3):
        r.report(victim, FAILURE)
        (ejected,) = r.ejections()
        seen.append((ejected.times, ejected.until - ejected.since))
        clock.advance(ejected.until - clock())
        r.ejections()  # returns it
        r.report(victim)  # a success ends its trial
    assert seen == [(1, 10.0), (2, 20.0), (3, 25.0)]
    clock.advance(25.0)  # healthy for two base_times: n 3 -> 1
    r.report(victim, FAILURE)
    (ejected,) = r.ejections()
    assert (ejected.times, ejected.until - ejected.since) == (2, 20.0)


def test_jitter_is_uniform_and_bounded() -> None:
    """Jitter adds between 0 and jitter seconds."""
    ejection = Ejection(consecutive_failures=1, base_time=10.0, jitter=5.0, max_percent=100)
    r, _ = router(n=50, ejection=ejection)
    extra = []
    for i in range(40):
        r.report(f"+1202555{i:04d}", FAILURE)
    for ejected in r.ejections():
        extra.append(ejected.until - ejected.since - 10.0)
    assert len(extra) == 40
    assert all(0.0 <= e <= 5.0 for e in extra)
    assert len(set(extra)) > 1


def test_a_returned_line_is_on_trial() -> None:
    """After its return, one failure before a success ejects it again at once."""
    r, clock = router(n=10, ejection=Ejection(consecutive_failures=3, base_time=10.0))
    victim = r.pick().phone_number
    for _ in range(3):
        r.report(victim, FAILURE)
    clock.advance(10.0)
    assert r.ejections() == ()
    r.report(victim, FAILURE)
    (ejected,) = r.ejections()
    assert ejected.times == 2
    assert "trial" in ejected.reason
    clock.advance(20.0)
    assert r.ejections() == ()
    r.report(victim)
    r.report(victim, FAILURE)
    assert r.ejections() == ()


def test_failure_cap_small_pool() -> None:
    """In a pool of 4 at 10%, one line at a time may be out for failures; never the last."""
    r, _ = router(n=4, ejection=Ejection(consecutive_failures=1))
    for i in range(4):
        r.report(f"+1202555{i:04d}", FAILURE)
    assert len(r.ejections()) == 1
    r2, _ = router(n=1, ejection=Ejection(consecutive_failures=1))
    r2.report("+12025550000", FAILURE)
    assert r2.ejections() == ()
    assert r2.pick().phone_number == "+12025550000"


def test_failure_cap_is_percent_of_eligible_lines() -> None:
    """30% of 10 lines: three failure ejections at once, then no more."""
    r, _ = router(n=10, ejection=Ejection(consecutive_failures=1, max_percent=30))
    for i in range(10):
        r.report(f"+1202555{i:04d}", FAILURE)
    assert len(r.ejections()) == 3


def test_never_the_last_eligible_line_even_at_100_percent() -> None:
    """At 100% every failing line but the last goes."""
    r, _ = router(n=3, ejection=Ejection(consecutive_failures=1, max_percent=100))
    for i in range(3):
        r.report(f"+1202555{i:04d}", FAILURE)
    assert len(r.ejections()) == 2
    assert len(numbers(r)) == 1


def test_events_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Ejections and returns go to on_event and to the log at INFO."""
    events: list[LineEvent] = []
    r, clock = router(on_event=events.append)
    victim = r.pick().phone_number
    with caplog.at_level(logging.INFO, logger="linq_router"):
        r.report(victim, INELIGIBLE)
        clock.advance(300.0)
        r.pick()
    assert [(e.kind, e.line, e.at) for e in events] == [
        ("ejected", victim, 1000.0),
        ("returned", victim, 1300.0),
    ]
    messages = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.INFO]
    assert any("ejected" in m and victim in m for m in messages)
    assert any("returned" in m and victim in m for m in messages)


def test_a_failing_listener_does_not_break_report(caplog: pytest.LogCaptureFixture) -> None:
    """An on_event that raises is logged, and the report still returns its verdict."""

    def broken(event: LineEvent) -> None:
        raise RuntimeError("metrics down")

    r, _ = router(on_event=broken)
    with caplog.at_level(logging.ERROR, logger="linq_router"):
        assert r.report(r.pick(), INELIGIBLE) is Verdict.LINE_INELIGIBLE
    assert "on_event listener failed" in caplog.text
    assert len(r.ejections()) == 1


def test_explanations_name_the_ejected_lines() -> None:
    """Before and after the recompile, explanations say which lines are ejected."""
    r, _ = router(policy="skip-critical | reputation-weighted")
    victim = r.pick().phone_number
    r.report(victim, INELIGIBLE)
    before = str(r.pick().explanation)
    r.settle()
    after = str(r.pick().explanation)
    for text in (before, after):
        assert text.startswith("ejection: kept 3 of 4 (1 ejected skipped")
        assert victim in text


def test_ejection_off() -> None:
    """ejection=None: reports are classified and nothing is ejected."""
    r, _ = router(ejection=None)
    victim = r.pick()
    assert r.report(victim, INELIGIBLE) is Verdict.LINE_INELIGIBLE
    assert r.ejections() == ()
    assert victim.phone_number in numbers(r)


def test_reports_by_number_and_unknown_numbers() -> None:
    """A report by from-number works; a number not in the pool is classified and ignored."""
    r, _ = router()
    r.pick()
    assert r.report("+12025550001", INELIGIBLE) is Verdict.LINE_INELIGIBLE
    assert [e.line for e in r.ejections()] == ["+12025550001"]
    assert r.report("+19995550000", INELIGIBLE) is Verdict.LINE_INELIGIBLE
    assert r.report("not a number", FAILURE) is Verdict.LINE_FAILURE
    assert len(r.ejections()) == 1


def test_report_before_any_pick() -> None:
    """A report by number works on a router that has not picked yet."""
    r, _ = router()
    r.report("+12025550002", INELIGIBLE)
    assert "+12025550002" not in numbers(r)


def test_bad_report_arguments() -> None:
    """A pick that is neither a Pick nor a str, or a bad to, is a clear error."""
    r, _ = router()
    with pytest.raises(TypeError, match="pick must be a Pick or the from number"):
        r.report(12, INELIGIBLE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="to="):
        r.report(r.pick(), None, to="nobody")


def test_bad_configuration() -> None:
    """Wrong values for Ejection and the router's feedback arguments name themselves."""
    with pytest.raises(ValueError, match="base_time"):
        Ejection(base_time=0)
    with pytest.raises(ValueError, match="max_percent"):
        Ejection(max_percent=101)
    with pytest.raises(TypeError, match="consecutive_failures"):
        Ejection(consecutive_failures=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="jitter"):
        Ejection(jitter=-1)
    registry = FakeRegistry(pool(2))
    with pytest.raises(TypeError, match="ejection must be an Ejection"):
        Router(registry, ejection="on")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_event must be"):
        Router(registry, on_event=3)  # type: ignore[arg-type]


def test_refresh_does_not_restore_an_ineligible_line_unless_it_turns_active() -> None:
    """A new list that still says ACTIVE keeps the ejection; FLAGGED -> ACTIVE ends it."""
    clock = FakeClock()
    registry = FakeRegistry(pool(3))
    r = Router(registry, "round-robin", clock=clock)
    r.pick()
    r.report("+12025550000", INELIGIBLE)
    registry.set(registry.current.derive([*registry.current.numbers, line(3)]))
    r.settle()
    assert "+12025550000" not in numbers(r)
    flagged = [line(0, status="FLAGGED"), *registry.current.numbers[1:]]
    registry.set(registry.current.derive(flagged))
    assert len(r.ejections()) == 1
    active = [line(0), *registry.current.numbers[1:]]
    registry.set(registry.current.derive(active))
    assert r.ejections() == ()
    r.settle()
    assert "+12025550000" in numbers(r)


def test_async_router_report() -> None:
    """AsyncRouter.report is a coroutine with the same effect."""

    async def main() -> None:
        clock = FakeClock()
        r = AsyncRouter(AsyncFakeRegistry(pool(3)), "round-robin", clock=clock)
        victim = await r.pick()
        assert await r.report(victim, INELIGIBLE) is Verdict.LINE_INELIGIBLE
        seen = {(await r.pick()).phone_number for _ in range(12)}
        assert victim.phone_number not in seen
        assert await r.report("+12025550009", None) is Verdict.SUCCESS
        clock.advance(300.0)
        await r.pick()
        assert await r.settle()
        seen = {(await r.pick()).phone_number for _ in range(12)}
        assert victim.phone_number in seen

    asyncio.run(main())


def test_sticky_conversations_move_off_an_ejected_line() -> None:
    """A sticky conversation on an ejected line is answered by another line at once."""
    clock = FakeClock()
    r = Router(FakeRegistry(pool(6)), "sticky", clock=clock)
    first = r.pick("+14155550100")
    r.report(first, INELIGIBLE)
    moved = r.pick("+14155550100")
    assert moved.phone_number != first.phone_number
    r.settle()
    assert r.pick("+14155550100").phone_number != first.phone_number


def test_ejected_lines_in_other_snapshots() -> None:
    """An ejected line that leaves the pool and comes back is still ejected."""
    clock = FakeClock()
    registry = FakeRegistry(pool(3))
    r = Router(registry, "round-robin", clock=clock)
    r.pick()
    r.report("+12025550001", INELIGIBLE)
    registry.set(Snapshot([line(0), line(2)]))
    r.settle()
    registry.set(Snapshot([line(0), line(1), line(2)]))
    r.settle()
    assert "+12025550001" not in numbers(r)


def test_a_line_is_picked_the_moment_it_returns() -> None:
    """With every line ejected, the first pick after the time is up gets a line, no settle."""
    r, clock = router(n=2)
    r.report("+12025550000", INELIGIBLE)
    r.report("+12025550001", INELIGIBLE)
    r.settle()
    with pytest.raises(NoEligibleNumberError):
        r.pick()
    clock.advance(300.0)
    assert r.pick().phone_number in {"+12025550000", "+12025550001"}


def test_async_pick_the_moment_a_line_returns() -> None:
    """The asyncio twin waits for the compile in a thread, then picks the returned line."""

    async def main() -> None:
        clock = FakeClock()
        r = AsyncRouter(AsyncFakeRegistry(pool(1)), "round-robin", clock=clock)
        await r.report("+12025550000", INELIGIBLE)
        await r.settle()
        with pytest.raises(NoEligibleNumberError, match=r"returns in 300\.0 s"):
            await r.pick()
        clock.advance(300.0)
        assert (await r.pick()).phone_number == "+12025550000"

    asyncio.run(main())
