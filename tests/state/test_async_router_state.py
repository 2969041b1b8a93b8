"""AsyncRouter on Redis: shared picks await redis.asyncio, one round trip each.

Against a real redis-server and the fake Linq API: an AsyncRouter and a Router on
one namespace take turns on one counter and agree on one sticky line per
recipient; a warm async pick is one EVALSHA; concurrent picks are in flight together
while the loop goes on; a Redis killed under picks fails none of them (one WARNING,
one INFO after the restart). ``AsyncResilientState`` passes the async contract.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis

from linq_router import (
    AsyncLinqClient,
    AsyncRegistry,
    AsyncRouter,
    LinqClient,
    Outcome,
    Pacing,
    Registry,
    Router,
)
from linq_router._awaited_state import AwaitedState
from linq_router.state import (
    AsyncRedisState,
    AsyncResilientState,
    MemoryState,
    ResilientState,
    from_uri_async,
)
from linq_router.testing import FakeClock, FakeLinqServer, RedisServer, check_async_state

from .conftest import Namespaces

LINES = [f"+1202555{i:04d}" for i in range(1, 7)]
TO = "+14155550100"
RECIPIENTS = [f"+1415555{i:04d}" for i in range(30)]

_T = TypeVar("_T")


def _run(fake: FakeLinqServer, main: Callable[[AsyncRegistry], Awaitable[_T]]) -> _T:
    """``main(registry)`` on a fresh loop, with an AsyncRegistry over the fake API."""

    async def run() -> _T:
        async with AsyncLinqClient(fake.api_key, base_url=fake.base_url) as client:
            registry = AsyncRegistry(client, ttl=3600)
            try:
                return await main(registry)
            finally:
                await registry.aclose()

    return asyncio.run(run())


async def _closed(*routers: AsyncRouter) -> None:
    for router in routers:
        router.close()
        state = router.state
        if isinstance(state, AwaitedState):
            await state.aclose()


def _commands(client: redis.Redis) -> collections.Counter[str]:
    stats = client.info("commandstats")
    return collections.Counter(
        {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    )


def _namespace(url: str) -> str:
    return url.split("namespace=")[1].split("&", maxsplit=1)[0]


# -- what a URI gives ---------------------------------------------------------------------


def test_a_redis_uri_is_awaited_and_a_sync_state_is_called_as_before(redis_url: str) -> None:
    """A Redis URI: an AwaitedState over AsyncResilientState (fallback on) or the bare one."""
    with FakeLinqServer(LINES) as fake:

        async def main(registry: AsyncRegistry) -> None:
            on = AsyncRouter(registry, state=redis_url.replace("&fallback=off", ""))
            off = AsyncRouter(registry, state=redis_url)
            memory = AsyncRouter(registry, state="memory://?max_size=10")
            given = MemoryState(5)
            plain = AsyncRouter(registry, "sticky", state=given)
            try:
                assert isinstance(on.state, AwaitedState)
                assert isinstance(on.state.backend, AsyncResilientState)
                assert isinstance(on.state.board, ResilientState)  # the fleet feedback's
                assert isinstance(off.state, AwaitedState)
                assert isinstance(off.state.backend, AsyncRedisState)
                assert isinstance(memory.state, MemoryState)
                assert plain.state is given
                await plain.pick(TO)
                assert given.get_assignment(TO) is not None  # called plainly, as before
            finally:
                await _closed(on, off, memory, plain)

        _run(fake, main)


# -- (a) one counter for both routers -----------------------------------------------------


def test_an_async_and_a_sync_router_take_turns_on_one_counter(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Round-robin over 6 lines: 120 picks, half of them sync in a thread, give 20 each."""
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as c:
        sync = Router(Registry(c, ttl=3600), "round-robin", state=redis_url, pacing=None)

        async def main(registry: AsyncRegistry) -> collections.Counter[str]:
            router = AsyncRouter(registry, "round-robin", state=redis_url, pacing=None)
            try:

                def sync_picks() -> list[str]:
                    return [sync.pick(TO).phone_number for _ in range(60)]

                async def async_picks() -> list[str]:
                    return [(await router.pick(TO)).phone_number for _ in range(60)]

                theirs, ours = await asyncio.gather(asyncio.to_thread(sync_picks), async_picks())
                return collections.Counter(theirs + ours)
            finally:
                await _closed(router)

        total = _run(fake, main)
        sync.close()
        sync.state.close()  # type: ignore[union-attr]
    assert dict(total) == dict.fromkeys(LINES, 20)
    (key,) = redis_client.scan_iter(match="{" + _namespace(redis_url) + "}:rotation:*")
    assert int(redis_client.get(key) or 0) == 120  # one counter, stepped by both


# -- (b) a warm pick is one round trip ----------------------------------------------------

# What each script runs inside Redis (commandstats counts those calls too).
_INSIDE = {
    "round-robin": {"incr": 1, "pexpire": 1},
    "reputation-weighted": {"incr": 1, "pexpire": 1},
    "sticky": {"get": 1, "pexpire": 1},  # a known conversation
    "sticky, new": {"get": 1, "set": 1},
}


@pytest.mark.parametrize("policy", ["round-robin", "reputation-weighted", "sticky"])
def test_a_warm_async_pick_is_one_evalsha(
    policy: str, redis_url: str, redis_client: redis.Redis
) -> None:
    """One EVALSHA a pick, known conversation or new: nothing else leaves the process."""
    with FakeLinqServer(LINES) as fake:

        async def main(registry: AsyncRegistry) -> None:
            router = AsyncRouter(registry, policy, state=redis_url, pacing=None)
            try:
                await router.pick(RECIPIENTS[0])
                await router.settle()
                for to, inside in ((RECIPIENTS[0], policy), (RECIPIENTS[1], f"{policy}, new")):
                    before = _commands(redis_client)
                    await router.pick(to)
                    delta = _commands(redis_client) - before
                    delta.pop("info", None)
                    assert delta == {"evalsha": 1, **_INSIDE.get(inside, _INSIDE[policy])}
            finally:
                await _closed(router)

        _run(fake, main)


# -- (c) sticky across both, forget and pin -----------------------------------------------


def test_one_sticky_line_per_recipient_across_an_async_and_a_sync_router(redis_url: str) -> None:
    """Concurrent async picks and sync ones in a thread: one line per recipient; pin, forget."""
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as c:
        sync = Router(Registry(c, ttl=3600), "sticky", state=redis_url, pacing=None)

        async def main(registry: AsyncRegistry) -> None:
            router = AsyncRouter(registry, "sticky", state=redis_url, pacing=None)
            seen: dict[str, set[str]] = collections.defaultdict(set)
            try:

                def sync_picks() -> list[tuple[str, str]]:
                    return [(to, sync.pick(to).phone_number) for to in RECIPIENTS * 3]

                async def one(to: str) -> tuple[str, str]:
                    return to, (await router.pick(to)).phone_number

                theirs, ours = await asyncio.gather(
                    asyncio.to_thread(sync_picks),
                    asyncio.gather(*(one(to) for to in RECIPIENTS * 3)),
                )
                for to, number in [*theirs, *ours]:
                    seen[to].add(number)
                assert set(seen) == set(RECIPIENTS)
                assert all(len(numbers) == 1 for numbers in seen.values())

                first = RECIPIENTS[0]
                (before,) = seen[first]
                other = next(n for n in LINES if n != before)
                # A pin from the async router is what the sync one sees next.
                assert await router.pin(first, other)
                assert (await asyncio.to_thread(sync.pick, first)).phone_number == other
                # A forget (a plain method) is sent before this router's next pick...
                assert router.forget(first)
                assert (await router.pick(first)).phone_number == before  # hashed afresh
                # ...and a pin and forget from the sync router reach the async one.
                sync.pin(first, other)
                assert (await router.pick(first)).phone_number == other
                assert sync.forget(first)
                assert (await router.pick(first)).phone_number == before
                # A forget nobody picks after: settle() waits for it.
                await router.pin(first, other)
                router.forget(first)
                await router.settle()
                assert (await asyncio.to_thread(sync.pick, first)).phone_number == before
            finally:
                await _closed(router)

        _run(fake, main)
        sync.close()
        sync.state.close()  # type: ignore[union-attr]


# -- (d) the loop is not blocked ----------------------------------------------------------


@pytest.mark.parametrize("policy", ["round-robin", "sticky"])
def test_concurrent_picks_are_in_flight_together_and_the_loop_goes_on(
    policy: str, redis_url: str
) -> None:
    """200 gathered picks: all in flight at once (each awaits Redis), and a ticker ticks."""
    # The loop's own delay counts against a socket timeout: redis_url's are 2 s (PATIENT)
    # since 50 ms is tight for 200 tasks on a busy test machine.
    url = redis_url
    with FakeLinqServer(LINES) as fake:

        async def main(registry: AsyncRegistry) -> None:
            router = AsyncRouter(registry, policy, state=url, pacing=None)
            await router.pick(TO)  # compiled, warm
            flying = most = ticks = 0
            done = False

            async def ticker() -> None:
                nonlocal ticks
                while not done:
                    ticks += 1
                    await asyncio.sleep(0)

            async def one(to: str) -> str:
                nonlocal flying, most
                flying += 1
                most = max(most, flying)
                try:
                    return (await router.pick(to)).phone_number
                finally:
                    flying -= 1

            ticking = asyncio.create_task(ticker())
            try:
                await asyncio.sleep(0)
                picks = await asyncio.gather(*(one(f"+1415556{i:04d}") for i in range(200)))
                done = True
                await ticking
                assert len(picks) == 200
                assert set(picks) <= set(LINES)
                # A blocking state would run each pick to its end before the next began.
                assert most == 200
                assert ticks >= 2  # the ticker ran while the picks awaited Redis
                if policy == "round-robin":  # 200 turns in a row of the shared counter
                    shares = collections.Counter(picks).values()
                    assert len(shares) == len(LINES)
                    assert max(shares) - min(shares) <= 1
            finally:
                done = True
                await _closed(router)

        _run(fake, main)


def test_a_masked_line_is_avoided_over_several_awaited_turns(redis_url: str) -> None:
    """An ejected line is masked until the compile: the rotation is asked for more turns."""
    with FakeLinqServer(LINES) as fake:

        async def main(registry: AsyncRegistry) -> None:
            router = AsyncRouter(registry, "round-robin", state=redis_url, pacing=None)
            try:
                await router.pick(TO)
                await router.settle()
                ejected = await router.pick(TO)
                await router.report(ejected, Outcome(403, 2027))  # ejected at once
                picks = [(await router.pick(TO)).phone_number for _ in range(30)]
                assert ejected.phone_number not in picks
                assert set(picks) == set(LINES) - {ejected.phone_number}
            finally:
                await _closed(router)

        _run(fake, main)


def test_a_remembered_line_the_policy_may_not_use_is_replaced_in_one_pick(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Pinned to an RCS line, a voice memo takes the ring's line: assign, then set, awaited."""
    pool: list[str | dict[str, str]] = [{"phone_number": LINES[0], "line_type": "RCS"}, *LINES[1:]]
    with FakeLinqServer(pool) as fake:

        async def main(registry: AsyncRegistry) -> None:
            router = AsyncRouter(registry, "sticky", state=redis_url, pacing=None)
            try:
                await router.pin(TO, LINES[0])
                assert (await router.pick(TO)).phone_number == LINES[0]
                await router.settle()  # hearing the fleet: its first read (a SCAN) is done
                before = _commands(redis_client)
                picked = await router.pick(TO, purpose="voice_memo")
                delta = _commands(redis_client) - before
                memo = picked.phone_number
                assert memo != LINES[0]
                delta.pop("info", None)
                # Two round trips: the assign script (a known key: GET, PEXPIRE), then SET.
                assert delta == {"evalsha": 1, "get": 1, "pexpire": 1, "set": 1}
                key = "{" + _namespace(redis_url) + "}:sticky:" + TO
                assert redis_client.get(key) == picked.number.id.encode()
                assert (await router.pick(TO)).phone_number == memo  # the chat follows it
            finally:
                await _closed(router)

        _run(fake, main)


def test_a_line_out_of_budget_is_passed_over_on_the_shared_counter(redis_url: str) -> None:
    """Pacing on the URI's Redis: the paced path asks for more awaited turns past a full line."""
    with FakeLinqServer(LINES) as fake:

        async def main(registry: AsyncRegistry) -> None:
            pacing = Pacing(per_line="2/minute", per_pair=None)
            router = AsyncRouter(registry, "round-robin", state=redis_url, pacing=pacing)
            try:
                first = await router.pick(TO)
                await router.report(first)
                while (pick := await router.pick(TO)).phone_number != first.phone_number:
                    pass
                await router.report(pick)  # its second send: out of budget for a minute
                picks = [(await router.pick(TO)).phone_number for _ in range(15)]
                assert first.phone_number not in picks
                assert set(picks) == set(LINES) - {first.phone_number}
            finally:
                await _closed(router)

        _run(fake, main)


# -- (e) Redis killed under picks ---------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill."""
    with RedisServer() as server:
        yield server


def test_async_picks_go_on_through_a_redis_outage_and_rejoin(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed mid-run: no pick fails, one WARNING; restarted: one INFO, shared again."""
    caplog.set_level(logging.INFO, logger="linq_router")
    clock = FakeClock()
    watcher = redis.Redis(port=own_server.port, socket_timeout=2)
    with FakeLinqServer(LINES) as fake:

        async def main(registry: AsyncRegistry) -> None:
            primary = from_uri_async(f"{own_server.url}/0?namespace=outage&fallback=off")
            state = AsyncResilientState(primary, recheck=1.0, clock=clock)
            router = AsyncRouter(registry, "round-robin", state=state, pacing=None)
            sticky = AsyncRouter(registry, "sticky", state=state, pacing=None)
            try:
                before = [(await router.pick(TO)).phone_number for _ in range(12)]
                assert sorted(before) == sorted(LINES * 2)
                line = (await sticky.pick(RECIPIENTS[0])).phone_number
                own_server.kill()
                during = await asyncio.gather(*(router.pick(TO) for _ in range(12)))
                assert sorted(p.phone_number for p in during) == sorted(LINES * 2)  # locally
                assert (await sticky.pick(RECIPIENTS[0])).phone_number == line  # remembered
                new = (await sticky.pick(RECIPIENTS[1])).phone_number  # decided locally
                assert state.degraded
                assert state.outages == 1
                clock.advance(0.5)
                await router.pick(TO)  # before recheck: no probe, still local
                assert state.degraded
                await asyncio.to_thread(own_server.start)
                clock.advance(1.0)
                await router.pick(TO)  # the probe: rejoined
                assert not state.degraded
                after = [(await router.pick(TO)).phone_number for _ in range(5)]
                assert len(set(after)) == 5
                key = next(k for k in watcher.scan_iter(match="{outage}:rotation:*"))
                assert int(watcher.get(key) or 0) == 6  # the shared counter again
                assert watcher.get("{outage}:sticky:" + RECIPIENTS[1]) is not None  # written back
                assert (await sticky.pick(RECIPIENTS[1])).phone_number == new
            finally:
                await _closed(router, sticky)
                await state.close()

        _run(fake, main)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO and "rejoined" in r.message]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "unreachable" in warnings[0].getMessage()
    assert len(infos) == 1
    assert "wrote back 1 local assignment" in infos[0].getMessage()
    watcher.close()


# -- the contract -------------------------------------------------------------------------


def test_async_resilient_state_passes_the_contract_while_up_and_while_down(
    redis_server: RedisServer, namespaces: Namespaces, own_server: RedisServer
) -> None:
    """Up, an AsyncResilientState is its AsyncRedisState; down from the start, its fallback."""
    up = f"{redis_server.url}/0?namespace="
    own_server.kill()
    down = f"{own_server.url}/0?fallback=off&namespace=down"

    async def main() -> None:
        made: list[Any] = []

        def on() -> AsyncResilientState:
            state = from_uri_async(up + namespaces())
            assert isinstance(state, AsyncResilientState)
            made.append(state)
            return state

        def off() -> AsyncResilientState:
            state = AsyncResilientState(from_uri_async(down), recheck=3600)
            made.append(state)
            return state

        try:
            await check_async_state(on, other=on)
            await check_async_state(off)
        finally:
            for state in made:
                await state.close()
        assert not any(s.degraded for s in made if s.primary.namespace != "down")
        assert all(s.degraded for s in made if s.primary.namespace == "down")

    asyncio.run(main())


def test_changes_made_locally_while_rejoining_are_all_written_back(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Two tasks assign new keys without pause through an outage and the rejoin: none lost."""
    caplog.set_level(logging.INFO, logger="linq_router")
    clock = FakeClock()
    watcher = redis.Redis(port=own_server.port, socket_timeout=2)

    async def main() -> int:
        primary = from_uri_async(f"{own_server.url}/0?namespace=rejoin&fallback=off")
        state = AsyncResilientState(primary, recheck=1.0, clock=clock)
        made = 0
        stop = False

        async def produce(name: str) -> None:
            nonlocal made
            n = 0
            while not stop:
                assert await state.assign(f"{name}{n}", f"line-{name}{n}") == f"line-{name}{n}"
                n += 1
                made += 1
                await asyncio.sleep(0)

        try:
            await state.assign("before", "line-before")
            own_server.kill()
            tasks = [asyncio.create_task(produce(name)) for name in "ab"]
            while made < 50:
                await asyncio.sleep(0)
            assert state.degraded
            await asyncio.to_thread(own_server.start)
            clock.advance(1.0)  # the next call probes, and writes back while the other goes on
            while state.degraded:
                await asyncio.sleep(0)
            while made < 400:  # on the primary again
                await asyncio.sleep(0)
            stop = True
            await asyncio.gather(*tasks)
            return made
        finally:
            stop = True
            await state.close()

    made = asyncio.run(main())
    names = [k.decode() for k in watcher.scan_iter(match="{rejoin}:sticky:*", count=1000)]
    keys = {name.removeprefix("{rejoin}:sticky:") for name in names}
    assert len(keys) == made  # every assignment, local or not (Redis came back empty)
    assert all(watcher.get("{rejoin}:sticky:" + k) == f"line-{k}".encode() for k in keys)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO and "rejoined" in r.message]
    assert len(warnings) == 1
    assert len(infos) == 1
    watcher.close()
