"""While a new snapshot compiles, picks are served at once and never from a bad line."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from doubles import AsyncFakeRegistry as AsyncSource
from doubles import FakeRegistry as Source

import linq_router._serving as serving
from linq_router._models import PhoneNumber, Reputation, Snapshot
from linq_router._router import AsyncRouter, Router
from linq_router.policies import compile_policy

SPECS = [
    "skip-critical | reputation-weighted",
    "round-robin",
    "skip-critical | sticky",
    "geomatch | sticky",
    "geomatch | round-robin",
]
RECIPIENTS = [f"+1{area}555{i:04d}" for area in ("202", "212", "415") for i in range(300)]


def _pool(n: int = 60) -> Snapshot:
    areas = ("202", "212", "415")
    return Snapshot([PhoneNumber(f"id-{i:03d}", f"+1{areas[i % 3]}555{i:04d}") for i in range(n)])


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Background recompiles wait at a gate: (entered, gate). Set the gate to let them go."""
    entered, gate = threading.Event(), threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("previous") is not None:
            entered.set()
            assert gate.wait(30), "the test never opened the gate"
        return compile_policy(*args, **kwargs)

    monkeypatch.setattr(serving, "compile_policy", slow)
    yield entered, gate
    gate.set()


def _in_thread(fn: Callable[[], object], timeout: float = 10.0) -> object:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the picks waited for the compile"
    return result[0]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("change", ["CRITICAL", "FLAGGED", "gone"])
def test_a_line_made_ineligible_is_never_picked_while_the_recompile_runs(
    spec: str, change: str, held: tuple[threading.Event, threading.Event]
) -> None:
    """From the moment the snapshot is published, picks avoid the line, without waiting."""
    entered, gate = held
    pool = _pool()
    source = Source(pool)
    router = Router(source, spec)
    before = {to: router.pick(to).number.id for to in RECIPIENTS}
    target = pool.get(before[RECIPIENTS[0]])
    assert target is not None
    if change == "gone":
        changed = pool.derive([n for n in pool if n.id != target.id])
    elif change == "CRITICAL":
        changed = pool.replace_number(attrs.evolve(target, reputation=Reputation.CRITICAL))
    else:
        changed = pool.replace_number(attrs.evolve(target, status="FLAGGED"))
    source.set(changed)
    assert entered.wait(10)  # the recompile is under way, and held
    during: dict[str, str] = _in_thread(  # type: ignore[assignment]
        lambda: {to: router.pick(to).number.id for to in RECIPIENTS}
    )
    assert target.id not in during.values()
    gate.set()
    assert router.settle(timeout=10)
    after = {to: router.pick(to).number.id for to in RECIPIENTS}
    if change == "gone" or "skip-critical" in spec:
        assert target.id not in after.values()
    if "sticky" in spec:
        # Conversations moved off the line while it compiled stay where they went, and
        # conversations on other lines never moved.
        assert after == during
        assert all(during[to] == line for to, line in before.items() if line != target.id)
    router.close()


def test_a_pick_that_sees_the_new_version_first_masks_it_too(
    held: tuple[threading.Event, threading.Event],
) -> None:
    """Without a notice (no subscribe), the version check masks and recompiles alike."""
    entered, gate = held
    pool = _pool()

    class Silent:
        current = pool

        def snapshot(self) -> Snapshot:
            return self.current

    source = Silent()
    router = Router(source, "skip-critical | reputation-weighted")
    first = router.pick().number
    source.current = pool.replace_number(attrs.evolve(first, reputation=Reputation.CRITICAL))
    picks = _in_thread(lambda: [router.pick().number.id for _ in range(500)])
    assert entered.wait(10)
    assert first.id not in picks  # type: ignore[operator]
    gate.set()
    assert router.settle(timeout=10)


def test_joining_lines_are_picked_once_the_compile_lands(
    held: tuple[threading.Event, threading.Event],
) -> None:
    """A line that joins is not picked by the interim, and is once the new compile is in."""
    entered, gate = held
    pool = _pool(6)
    source = Source(pool)
    router = Router(source, "round-robin")
    router.pick()
    newcomer = PhoneNumber("id-new", "+12025559999")
    source.set(pool.derive([*pool, newcomer]))
    assert entered.wait(10)
    assert "id-new" not in {router.pick().number.id for _ in range(50)}
    gate.set()
    assert router.settle(timeout=10)
    assert "id-new" in {router.pick().number.id for _ in range(7)}


def test_when_every_line_is_masked_the_pick_waits_for_the_compile() -> None:
    """A snapshot that leaves the interim nothing is compiled before the pick returns."""
    source = Source(_pool(3))
    router = Router(source, "round-robin")
    router.pick()
    fresh = Snapshot([PhoneNumber("id-x", "+12025550999")])
    source.set(fresh)
    assert router.pick().number.id == "id-x"
    assert router.settle(timeout=10)


def test_a_failing_background_compile_surfaces_on_the_next_pick(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An error while compiling in the background is logged, then raised to a picker."""
    source = Source(_pool())
    router = Router(source, "round-robin")
    router.pick()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("selector bug")

    monkeypatch.setattr(serving, "compile_policy", broken)
    source.set(_pool(10))
    assert router.settle(timeout=10)
    assert any("compiling the chat policy failed" in r.getMessage() for r in caplog.records)
    with pytest.raises(RuntimeError, match="selector bug"):
        router.pick()


def test_async_router_keeps_the_loop_running_through_a_compile(
    held: tuple[threading.Event, threading.Event],
) -> None:
    """Under asyncio the compile runs in a thread: other tasks keep running meanwhile."""
    entered, gate = held
    pool = _pool()
    source = AsyncSource(pool)

    async def main() -> tuple[int, set[str], str]:
        router = AsyncRouter(source, "skip-critical | sticky")
        target = (await router.pick(RECIPIENTS[0])).number
        source.set(pool.replace_number(attrs.evolve(target, status="FLAGGED")))
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while not gate.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        seen = {(await router.pick(to)).number.id for to in RECIPIENTS}
        await asyncio.sleep(0.01)
        gate.set()
        await task
        assert await router.settle(timeout=10)
        return ticks, seen, target.id

    ticks, seen, target = asyncio.run(main())
    assert entered.is_set()
    assert ticks > 0  # the loop ran the ticker while the compile was held
    assert target not in seen
    assert len(seen) > 10


@pytest.mark.parametrize("spec", ["round-robin", "reputation-weighted"])
def test_shares_stay_exact_across_a_recompile_that_picks_ran_through(
    spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Picks made while a change compiles leave every share exact over whole cycles."""
    from linq_router.policies import Rotation

    entered, gate = threading.Event(), threading.Event()
    original = Rotation.updated

    def slow(self: Rotation, *args: Any) -> Any:
        rotation = original(self, *args)  # the old rotation's position is read in here
        entered.set()
        assert gate.wait(30)
        return rotation

    monkeypatch.setattr(Rotation, "updated", slow)
    pool = _pool(10)
    source = Source(pool)
    router = Router(source, spec)
    picks = [router.pick().number.id for _ in range(13)]
    line = pool[4]
    source.set(pool.replace_number(attrs.evolve(line, forwarding_number="+13125550000")))
    assert entered.wait(10)
    picks += [router.pick().number.id for _ in range(6)]  # served by the interim
    gate.set()
    assert router.settle(timeout=10)
    picks += [router.pick().number.id for _ in range(81)]
    assert set(Counter(picks).values()) == {10}
    if spec == "round-robin":  # and no line ever got ahead of another by more than one
        for end in range(10, len(picks)):
            counts = Counter(picks[:end])
            assert max(counts.values()) - min(counts.get(n.id, 0) for n in pool) <= 1
