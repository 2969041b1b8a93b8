"""Router and AsyncRouter: purposes, bad input, compile-on-notice, logging, real registry."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

import attrs
import pytest

from linq_router._errors import NoEligibleNumberError
from linq_router._models import PhoneNumber, Reputation, Snapshot
from linq_router._pick import Explanation, Pick
from linq_router._router import AsyncRouter, Router
from linq_router.policies import PolicySpecError, round_robin


def _line(
    i: int, rep: str = "HEALTHY", line_type: str | None = "iMessage", status: str | None = "ACTIVE"
) -> PhoneNumber:
    return PhoneNumber(
        f"id-{i}", f"+1202555{i:04d}", Reputation[rep], line_type=line_type, status=status
    )  # type: ignore[arg-type]


class FakeRegistry:
    """A registry double: snapshot() and subscribe(), with set() to publish a new one."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        self.listeners: list[Callable[[Snapshot], None]] = []
        self.calls = 0

    def snapshot(self) -> Snapshot:
        self.calls += 1
        return self.current

    def subscribe(self, listener: Callable[[Snapshot], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        listener(self.current)
        return lambda: self.listeners.remove(listener)

    def set(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        for listener in list(self.listeners):
            listener(snapshot)


class AsyncFakeRegistry(FakeRegistry):
    async def snapshot(self) -> Snapshot:  # type: ignore[override]
        return super().snapshot()


POOL = Snapshot([_line(0), _line(1, "AT_RISK"), _line(2, "CRITICAL"), _line(3, line_type="RCS")])


def test_default_policy_and_pick_fields() -> None:
    """Router(registry) uses the default spec; a Pick carries number, policy, explanation."""
    router = Router(FakeRegistry(POOL))
    pick = router.pick("+14155550000")
    assert router.policy.name == "skip-critical | reputation-weighted"
    assert isinstance(pick, Pick)
    assert pick.phone_number == pick.number.phone_number
    assert pick.policy == "skip-critical | reputation-weighted"
    assert pick.number.reputation is not Reputation.CRITICAL
    assert str(pick.explanation).startswith(
        "skip-critical: kept 3 of 4 (1 CRITICAL skipped) → reputation-weighted: chose "
    )


@pytest.mark.parametrize(
    ("to", "purpose", "fragment"),
    [
        ("not-a-number", "chat", "'not-a-number'"),
        ("2025551234", "chat", "'2025551234'"),
        ([], "chat", "empty"),
        (["+12025550000", "nope"], "chat", "'nope'"),
        ("+12025550000", "sms", "'sms'"),
        (None, "fax", "'fax'"),
        (12025550123, "chat", "12025550123"),
        (b"+12025550123", "chat", "b'+12025550123'"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_value(
    to: object, purpose: str, fragment: str
) -> None:
    """Bad recipients, empty lists and unknown purposes are ValueErrors naming the value."""
    router = Router(FakeRegistry(POOL))
    with pytest.raises(ValueError) as info:  # noqa: PT011 - the message is checked below
        router.pick(to, purpose=purpose)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_bad_spec_fails_at_construction_listing_names() -> None:
    """An unknown policy name fails when the Router is built, listing known names."""
    with pytest.raises(PolicySpecError, match=r"known names: .*round-robin"):
        Router(FakeRegistry(POOL), "skip-critical | nope")
    with pytest.raises(ValueError, match="'sms'"):
        Router(FakeRegistry(POOL), policies={"sms": "round-robin"})


def test_empty_snapshot_raises_no_eligible() -> None:
    """Zero lines: NoEligibleNumberError, never IndexError or ZeroDivisionError."""
    for spec in [
        "round-robin",
        "reputation-weighted",
        "sticky",
        "skip-critical | geomatch | sticky",
    ]:
        router = Router(FakeRegistry(Snapshot(())), spec)
        with pytest.raises(NoEligibleNumberError, match="no lines"):
            router.pick("+12025550000")
        with pytest.raises(NoEligibleNumberError):
            router.pick(purpose="voice_memo")


def test_compiles_on_notice_not_per_pick() -> None:
    """The policy compiles once per new snapshot (in the background, on the notice)."""
    compiles = Counter[str]()
    selector = round_robin()
    original = selector.compile

    def counting(group, previous):  # type: ignore[no-untyped-def]
        compiles[group.path] += 1
        return original(group, previous)

    selector.compile = counting  # type: ignore[method-assign]
    registry = FakeRegistry(POOL)
    router = Router(registry, selector)
    assert router.settle(timeout=10)
    assert compiles["chat:"] == 1  # compiled when subscribing, off the caller's path
    for _ in range(100):
        router.pick()
    assert compiles["chat:"] == 1
    registry.set(Snapshot([_line(5), _line(6)]))
    assert router.settle(timeout=10)
    assert compiles["chat:"] == 2  # compiled on the notice
    assert {router.pick().number.id for _ in range(4)} == {"id-5", "id-6"}
    assert compiles["chat:"] == 2
    router.close()
    registry.set(Snapshot([_line(7)]))
    assert router.settle(timeout=10)
    assert compiles["chat:"] == 2  # no longer listening...
    assert router.pick().number.id == "id-7"  # ...but the version check still catches it
    assert compiles["chat:"] == 3


def test_explanation_is_logged_lazily(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With DEBUG off the explanation is never rendered; with it on, it is logged."""
    rendered = []
    original = Explanation.__str__

    def spy(self: Explanation) -> str:
        rendered.append(1)
        return original(self)

    monkeypatch.setattr(Explanation, "__str__", spy)
    router = Router(FakeRegistry(POOL))
    logging.getLogger("linq_router").setLevel(logging.INFO)
    try:
        router.pick()
        assert rendered == []
        with caplog.at_level(logging.DEBUG, logger="linq_router"):
            pick = router.pick()
        assert rendered
        assert any(str(pick.explanation) in r.getMessage() for r in caplog.records)
    finally:
        logging.getLogger("linq_router").setLevel(logging.NOTSET)


def test_voice_memo_prefers_imessage() -> None:
    """Voice memos avoid RCS lines while an iMessage-capable line is eligible."""
    router = Router(FakeRegistry(POOL), "skip-critical | round-robin")
    picked = {router.pick(purpose="voice_memo").number.id for _ in range(10)}
    assert picked == {"id-0", "id-1"}
    assert {router.pick().number.id for _ in range(10)} == {"id-0", "id-1", "id-3"}
    pick = router.pick(purpose="voice_memo")
    assert pick.purpose == "voice_memo"
    assert "prefer-imessage: kept 2 of 3 (1 RCS skipped)" in str(pick.explanation)


def test_voice_memo_falls_back_to_rcs_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """With only RCS lines eligible, a voice memo gets one, with explanation and warning."""
    pool = Snapshot([_line(0, "CRITICAL"), _line(3, line_type="RCS")])
    router = Router(FakeRegistry(pool))
    with caplog.at_level(logging.WARNING, logger="linq_router"):
        pick = router.pick("+12025550000", purpose="voice_memo")
    assert pick.number.id == "id-3"
    assert "no iMessage-capable line" in str(pick.explanation)
    assert any("RCS" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_voice_memo_strict_with_line_type() -> None:
    """policies={'voice_memo': 'line-type(iMessage) | ...'} refuses RCS lines outright."""
    pool = Snapshot([_line(3, line_type="RCS")])
    router = Router(
        FakeRegistry(pool), policies={"voice_memo": "line-type(iMessage) | round-robin"}
    )
    assert router.pick().number.id == "id-3"
    with pytest.raises(NoEligibleNumberError, match="1 RCS skipped"):
        router.pick(purpose="voice_memo")


def test_sticky_forget_and_pin_on_the_router() -> None:
    """Router.pin re-pins a recipient's line; Router.forget lets it hash afresh."""
    pool = Snapshot([_line(i) for i in range(8)])
    router = Router(FakeRegistry(pool), "skip-critical | sticky")
    other = Router(FakeRegistry(pool), "skip-critical | sticky")
    first = router.pick("+14155550000").number
    assert other.pick("+14155550000").number == first  # no shared state, same answer
    target = next(n for n in pool if n != first)
    assert router.pin("+14155550000", target.phone_number) == target.id
    assert router.pick("+14155550000").number == target
    assert router.forget("+14155550000")
    assert router.pick("+14155550000").number == first
    with pytest.raises(ValueError, match="no such line"):
        router.pin("+14155550000", "+19999999999")
    with pytest.raises(ValueError, match="no sticky policy"):
        Router(FakeRegistry(pool), "round-robin").pin("+14155550000", target.id)


def test_pin_to_a_line_the_policy_drops_is_refused() -> None:
    """Pinning to a CRITICAL line under skip-critical fails now, not silently later."""
    pool = Snapshot([_line(0), attrs.evolve(_line(1), reputation=Reputation.CRITICAL)])
    router = Router(FakeRegistry(pool), "skip-critical | sticky")
    with pytest.raises(ValueError, match="does not allow it") as info:
        router.pin("+14155550000", pool[1].id)
    assert "CRITICAL" in str(info.value)
    assert router.pick("+14155550000").number == pool[0]


def test_a_router_needs_a_registry() -> None:
    """Passing a Snapshot (or anything without snapshot()) fails at construction."""
    with pytest.raises(TypeError, match="Snapshot"):
        Router(Snapshot([_line(0)]))  # type: ignore[arg-type]


def test_async_router_shares_the_logic() -> None:
    """AsyncRouter picks like Router; only the snapshot read is awaited."""
    registry = AsyncFakeRegistry(POOL)

    async def main() -> list[Pick]:
        router = AsyncRouter(registry, "skip-critical | round-robin")
        return [await router.pick() for _ in range(6)]

    picks = asyncio.run(main())
    assert Counter(p.number.id for p in picks) == Counter({"id-0": 2, "id-1": 2, "id-3": 2})


def test_real_registry_and_fake_server() -> None:
    """Against the fake Linq API: one list request, picks skip the CRITICAL/FLAGGED lines."""
    from linq_router._client import LinqClient
    from linq_router._registry import Registry
    from linq_router.testing import FakeLinqServer, sample_pool

    with FakeLinqServer(sample_pool()) as server:
        registry = Registry(LinqClient(server.api_key, base_url=server.base_url))
        router = Router(registry)
        picks = [router.pick("+12025550123") for _ in range(50)]
        assert server.count("list") == 1
        assert all(p.number.reputation in (Reputation.HEALTHY, Reputation.AT_RISK) for p in picks)
        assert not any(p.number.is_flagged for p in picks)
        registry.close()


def test_async_router_1000_concurrent_tasks_one_list_request() -> None:
    """1,000 concurrent picks at a cold start share one list request."""
    from linq_router._client import AsyncLinqClient
    from linq_router._registry import AsyncRegistry
    from linq_router.testing import FakeLinqServer, sample_pool

    with FakeLinqServer(sample_pool()) as server:

        async def main() -> list[Pick]:
            registry = AsyncRegistry(AsyncLinqClient(server.api_key, base_url=server.base_url))
            router = AsyncRouter(registry, "skip-critical | sticky")
            picks = await asyncio.gather(*(router.pick(f"+1415555{i:04d}") for i in range(1000)))
            again = await router.pick("+14155550007")
            assert again.number == picks[7].number
            await registry.aclose()
            return list(picks)

        picks = asyncio.run(main())
        assert len(picks) == 1000
        assert server.count("list") == 1
        assert len({p.phone_number for p in picks}) > 3
