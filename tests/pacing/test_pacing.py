"""Pacing through the Router: budgets per line, per pair, per new conversation.

``limits`` measures its windows on the wall clock, so these tests use per-second
rates and real time, kept short.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter

import pytest
from doubles import AsyncFakeRegistry, FakeRegistry, line, pool
from hypothesis import given, settings
from hypothesis import strategies as st

from linq_router import (
    AsyncRouter,
    BudgetExhaustedError,
    Outcome,
    Pacing,
    PhoneNumber,
    Router,
    Snapshot,
    Verdict,
)

ONLY_LINE = Pacing(per_line="5/second", per_pair=None)


def router(n: int = 3, pacing: Pacing | None = ONLY_LINE, policy: str = "round-robin") -> Router:
    return Router(FakeRegistry(pool(n)), policy, pacing=pacing)


def used(r: Router) -> dict[str, int]:
    return {b.line: b.used for b in r.budgets() if b.kind == "per_line"}


def test_a_line_never_goes_over_its_budget_in_any_window() -> None:
    """Sending as fast as picks allow for 1.5 s, no line has more than 5 in any 1 s."""
    r = router()
    sent: dict[str, list[float]] = {}
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        try:
            pick = r.pick()
        except BudgetExhaustedError as error:
            time.sleep(max(0.0, min(0.05, error.retry_at - r.clock())))
            continue
        r.report(pick)
        sent.setdefault(pick.phone_number, []).append(time.time())
    assert len(sent) == 3
    for stamps in sent.values():
        for i, start in enumerate(stamps):
            in_window = [t for t in stamps[i:] if t < start + 1.0]
            assert len(in_window) <= 5
    assert sum(len(s) for s in sent.values()) >= 15  # it did send, at the budgets' pace


def test_picks_that_are_never_reported_consume_nothing() -> None:
    """A thousand picks and no report: every budget is untouched."""
    r = router()
    for _ in range(1000):
        r.pick()
    assert set(used(r).values()) == {0}


def test_reports_count_success_and_pair_limited_only() -> None:
    """SUCCESS and PAIR_LIMITED count (Linq counted them); failures and opt-outs do not."""
    r = router(n=1, pacing=Pacing(per_line="100/minute", per_pair=None))
    pick = r.pick()
    r.report(pick)
    r.report(pick, Outcome(429, 1007, retry_after=1))
    for outcome in (Outcome(500, 3006), Outcome(403, 2024), 400, Outcome()):
        r.report(pick, outcome)
    assert used(r) == {pick.phone_number: 2}


def test_inbound_messages_count() -> None:
    """record_inbound consumes the line's per_line budget too."""
    r = router(n=2, pacing=Pacing(per_line="3/minute", per_pair=None))
    r.pick()
    for _ in range(3):
        r.record_inbound("+12025550000")
    r.record_inbound("+19995550000")  # not a line: ignored
    assert used(r)["+12025550000"] == 3
    assert {r.pick().phone_number for _ in range(6)} == {"+12025550001"}


def test_exhausted_names_the_earliest_reset_and_wait_waits_for_it() -> None:
    """retry_at is the soonest line's reset; pick(wait=...) returns once it has room."""
    r = router(n=2, pacing=Pacing(per_line="2/second", per_pair=None))
    for _ in range(2):
        r.report(r.pick())
    time.sleep(0.3)
    for _ in range(2):
        r.report(r.pick())
    with pytest.raises(BudgetExhaustedError) as caught:
        r.pick()
    error = caught.value
    resets = {b.line: b.resets_at for b in r.budgets()}
    assert error.retry_at == pytest.approx(min(resets.values()), abs=0.05)
    assert set(error.resets) == set(resets)
    assert "out of budget" in str(error)
    started = time.monotonic()
    pick = r.pick(wait=3.0)
    waited = time.monotonic() - started
    assert 0.3 < waited < 2.0
    assert pick.phone_number in resets


def test_wait_gives_up_at_its_bound() -> None:
    """A wait shorter than the reset raises BudgetExhaustedError after about that long."""
    r = router(n=1, pacing=Pacing(per_line="1/minute", per_pair=None))
    r.report(r.pick())
    started = time.monotonic()
    with pytest.raises(BudgetExhaustedError):
        r.pick(wait=0.2)
    assert 0.15 < time.monotonic() - started < 1.5


def test_explanations_name_lines_out_of_budget() -> None:
    """The first stage names the line out of budget and when it has room."""
    r = router(n=3, pacing=Pacing(per_line="1/minute", per_pair=None))
    spent = r.pick()
    r.report(spent)
    r.settle()
    text = str(r.pick().explanation)
    assert text.startswith("pacing: kept 2 of 3 (1 out of budget skipped")
    assert spent.phone_number in text


def test_new_conversations_apply_to_new_recipients_only() -> None:
    """A line out of new conversations still serves the recipients it already talks to."""
    pacing = Pacing(per_line=None, per_pair=None, new_conversations={"HEALTHY": "2/minute"})
    r = router(n=1, pacing=pacing)
    for to in ("+14155550001", "+14155550002"):
        r.report(r.pick(to), to=to)
    with pytest.raises(BudgetExhaustedError):
        r.pick("+14155550003")
    assert r.pick("+14155550001").phone_number == "+12025550000"
    assert r.pick("+14155550002").phone_number == "+12025550000"
    r.report(r.pick("+14155550001"), to="+14155550001")  # an old conversation: no cost
    budgets = [b for b in r.budgets() if b.kind == "new_conversations"]
    assert [(b.used, b.remaining) for b in budgets] == [(2, 0)]


def test_new_conversation_rates_follow_reputation() -> None:
    """An AT_RISK line gets the AT_RISK rate; a reputation not in the mapping has none."""
    pacing = Pacing(per_line=None, per_pair=None, new_conversations={"AT_RISK": "1/minute"})
    registry = FakeRegistry(Snapshot([line(0, "AT_RISK"), line(1)]))
    r = Router(registry, "reputation-weighted", pacing=pacing)
    r.pick()
    r.report("+12025550000", to="+14155550001")
    for i in range(2, 6):
        r.report("+12025550001", to=f"+1415555000{i}")
    for _ in range(20):
        assert r.pick("+14155550099").phone_number == "+12025550001"


def test_pair_limit_skips_the_line_for_that_recipient_only() -> None:
    """A pair at its limit sends that recipient to another line; others are unaffected."""
    r = router(n=2, pacing=Pacing(per_line=None, per_pair="2/minute"), policy="sticky")
    first = r.pick("+14155550100")
    for _ in range(2):
        r.report(first, to="+14155550100")
    moved = r.pick("+14155550100")
    assert moved.phone_number != first.phone_number
    assert r.pair_retry_after(first, "+14155550100") == pytest.approx(60.0, abs=1.0)
    assert r.pair_retry_after(moved, "+14155550100") is None


def test_a_429_pauses_the_pair_for_its_retry_after() -> None:
    """PAIR_LIMITED marks the pair until its retry_after, even below our own count."""
    r = router(n=1, pacing=Pacing(per_line=None, per_pair="30/minute"))
    pick = r.pick("+14155550100")
    assert r.report(pick, Outcome(429, 1007, retry_after=0.3), to="+14155550100") is (
        Verdict.PAIR_LIMITED
    )
    with pytest.raises(BudgetExhaustedError):
        r.pick("+14155550100")
    assert r.pick("+14155550101").phone_number == pick.phone_number
    time.sleep(0.35)
    assert r.pick("+14155550100").phone_number == pick.phone_number


def test_pacing_off() -> None:
    """pacing=None: nothing is counted or skipped."""
    r = router(n=1, pacing=None)
    for _ in range(50):
        r.report(r.pick(), to="+14155550100")
    assert r.budgets() == ()
    assert r.pair_retry_after("+12025550000", "+14155550100") is None


def test_default_pacing() -> None:
    """Routers pace by default: 7,000 a day per line, 30 a minute per pair."""
    r = Router(FakeRegistry(pool(1)))
    assert r.pacing == Pacing()
    r.report(r.pick(), to="+14155550100")
    (budget,) = r.budgets()
    assert (budget.limit, budget.used, budget.remaining) == ("7000 per 1 day", 1, 6999)


def test_bad_configuration() -> None:
    """Bad rates, storages, strategies and mappings are refused, naming the value."""
    with pytest.raises(ValueError, match="per_line='lots'"):
        Pacing(per_line="lots")
    with pytest.raises(ValueError, match="strategy='token-bucket'"):
        Pacing(strategy="token-bucket")
    with pytest.raises(ValueError, match="storage must be a limits storage URI"):
        Pacing(storage="memory")
    with pytest.raises(ValueError, match="expected one of HEALTHY"):
        Pacing(new_conversations={"GREAT": "5/day"})
    with pytest.raises(ValueError, match="Pacing\\(storage='bogus://x'\\) cannot be used"):
        Router(FakeRegistry(pool(1)), pacing=Pacing(storage="bogus://x"))
    # A Sentinel URI without its service name: limits refuses it before connecting.
    with pytest.raises(ValueError, match="service_name") as caught:
        Router(FakeRegistry(pool(1)), pacing=Pacing(storage="redis+sentinel://user:secret@h:26379"))
    assert "secret" not in str(caught.value)
    with pytest.raises(ValueError, match="unknown storage scheme") as caught:
        Router(FakeRegistry(pool(1)), pacing=Pacing(storage="bogus://user:secret@host"))
    assert "secret" not in str(caught.value)
    with pytest.raises(TypeError, match="pacing must be a Pacing"):
        Router(FakeRegistry(pool(1)), pacing="on")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="phone_number must be"):
        router().record_inbound(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window-counter", "fixed-window"])
def test_every_limits_strategy_works(strategy: str) -> None:
    """Each of limits' strategies counts and marks."""
    r = router(n=1, pacing=Pacing(per_line="3/minute", per_pair=None, strategy=strategy))
    for _ in range(3):
        r.report(r.pick())
    with pytest.raises(BudgetExhaustedError):
        r.pick()


def test_async_router_paces_and_waits() -> None:
    """AsyncRouter counts with limits.aio and waits with asyncio.sleep."""

    async def main() -> None:
        r = AsyncRouter(
            AsyncFakeRegistry(pool(1)), "round-robin", pacing=Pacing("2/second", per_pair=None)
        )
        for _ in range(2):
            await r.report(await r.pick())
        with pytest.raises(BudgetExhaustedError):
            await r.pick()
        ticks = 0

        async def other_task() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(other_task())
        pick = await r.pick(wait=3.0)
        task.cancel()
        assert pick.phone_number == "+12025550000"
        assert ticks > 5  # the loop went on while the pick waited
        await r.report(pick)
        (budget,) = await r.budgets()
        assert budget.used >= 1  # the window moved on: the new send is in it
        await r.record_inbound("+12025550000")
        assert await r.pair_retry_after("+12025550000", "+14155550100") is None

    asyncio.run(main())


@settings(max_examples=12, deadline=None)
@given(
    budget=st.integers(1, 30),
    lines=st.integers(1, 6),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    policy=st.sampled_from(["round-robin", "skip-critical | reputation-weighted", "sticky"]),
)
def test_overshoot_is_bounded_by_threads_and_used_counts_reports(
    budget: int, lines: int, share: float, seed: int, policy: str
) -> None:
    """8 threads picking and reporting at random: used equals reports, overshoot <= 8."""
    r = router(n=lines, policy=policy, pacing=Pacing(per_line=f"{budget}/hour", per_pair=None))
    reports: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        rng = random.Random(seed * 8 + worker)
        try:
            for _ in range(150):
                to = f"+1415555{rng.randrange(50):04d}" if policy == "sticky" else None
                try:
                    pick = r.pick(to)
                except BudgetExhaustedError:
                    return
                if rng.random() < share:
                    r.report(pick)
                    with lock:
                        reports[pick.phone_number] += 1
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    counted = used(r)
    assert {k: v for k, v in counted.items() if v} == dict(reports)
    assert max(counted.values()) - budget <= 8
    r.close()


def test_inbound_by_phone_number_object() -> None:
    """record_inbound takes a PhoneNumber as well as its number."""
    r = router(n=2)
    r.pick()
    r.record_inbound(PhoneNumber("id-0", "+12025550000"))
    assert used(r)["+12025550000"] == 1


def test_dead_pair_windows_are_swept_from_memory_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pairs whose windows emptied are cleared from limits' memory storage (once a minute)."""
    import linq_router.pacing._pacer as pacer_module

    monkeypatch.setattr(pacer_module, "_PRUNE_EVERY", 0.0)
    r = router(n=1, pacing=Pacing(per_line=None, per_pair="50/second"))
    pick = r.pick()
    for i in range(200):
        r.report(pick, to=f"+1415555{i:04d}")
    pacer = r._pacer
    assert pacer is not None
    assert len(pacer.storage.events) >= 200
    time.sleep(1.1)
    r.report(pick, to="+14155559999")  # a report sweeps what died meanwhile
    assert len(pacer.storage.events) <= 2
