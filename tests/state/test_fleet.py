"""A fleet on one Redis: 8 processes x 4 threads pick as one router would.

Each worker process builds its own client, registry and router over the fake Linq
API, with ``Router(state=<redis URI>)``; the parent only counts. Processes are forked
(the fake and the redis-server live in the parent's threads and processes).
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from linq_router import LinqClient, Registry, Router
from linq_router.state import ResilientState, from_uri
from linq_router.testing import FakeClock, FakeLinqServer, RedisServer

from .waiting import PATIENT

PROCESSES, THREADS = 8, 4
LINES = [f"+1202555{i:04d}" for i in range(1, 7)]
TO = "+14155550100"
RECIPIENTS = [f"+1415555{i:04d}" for i in range(30)]
_fork = multiprocessing.get_context("fork")


def _worker(
    base_url: str,
    api_key: str,
    state: str,
    policy: str,
    picks: int,
    recipients: list[str],
    start: Any,
    results: Any,
) -> None:
    with LinqClient(api_key, base_url=base_url) as client:
        registry = Registry(client, ttl=3600)
        router = Router(registry, policy=policy, state=state, ejection=None, pacing=None)
        counts: collections.Counter[str] = collections.Counter()
        lines: dict[str, set[str]] = collections.defaultdict(set)
        counts[router.pick(TO).phone_number] += 1  # compiles: one turn too
        lock = threading.Lock()
        start.wait(30)

        def work() -> None:
            for n in range(picks):
                if recipients:
                    to = recipients[n % len(recipients)]
                    number = router.pick(to).phone_number
                    with lock:
                        lines[to].add(number)
                else:
                    number = router.pick(TO).phone_number
                    with lock:
                        counts[number] += 1

        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        router.close()
        results.put((dict(counts), {k: sorted(v) for k, v in lines.items()}))


def _fleet(
    fake: FakeLinqServer,
    state: str,
    policy: str,
    picks: int,
    recipients: tuple[str, ...] | list[str] = (),
) -> list[tuple[dict[str, int], dict[str, list[str]]]]:
    start = _fork.Barrier(PROCESSES)
    results = _fork.Queue()
    args = (fake.base_url, fake.api_key, state, policy, picks, list(recipients), start, results)
    procs = [_fork.Process(target=_worker, args=args) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return got


@pytest.fixture
def fleet_state(redis_server: RedisServer, namespaces: Any) -> str:
    return f"{redis_server.url}/0?namespace={namespaces()}{PATIENT}"


def test_rotate_is_one_counter_per_schedule(redis_url: str, redis_client: redis.Redis) -> None:
    state = from_uri(redis_url)
    assert [state.rotate("a") for _ in range(3)] == [1, 2, 3]  # type: ignore[attr-defined]
    assert state.rotate("b") == 1  # type: ignore[attr-defined]
    namespace = redis_url.split("namespace=")[1].split("&", maxsplit=1)[0]
    key = "{" + namespace + "}:rotation:a"
    assert redis_client.get(key) == b"3"
    assert 0 < redis_client.pttl(key) <= 24 * 3600 * 1000


def test_round_robin_over_the_fleet_gives_exact_shares(fleet_state: str) -> None:
    with FakeLinqServer(LINES) as fake:
        # 8 warm-up turns and 8 x 4 x 50 picks: 1,608 turns, 268 rounds of 6 lines.
        got = _fleet(fake, fleet_state, "round-robin", 50)
    total: collections.Counter[str] = collections.Counter()
    for counts, _ in got:
        total.update(counts)
    assert sum(total.values()) == 1608
    assert dict(total) == dict.fromkeys(LINES, 268)


def test_weighted_over_the_fleet_gives_the_shares_of_one(fleet_state: str) -> None:
    pool = [
        {"phone_number": n, "reputation": "AT_RISK" if i >= 4 else "HEALTHY"}
        for i, n in enumerate(LINES)
    ]
    with FakeLinqServer(pool) as fake:
        got = _fleet(fake, fleet_state, "reputation-weighted", 50)
    total: collections.Counter[str] = collections.Counter()
    for counts, _ in got:
        total.update(counts)
    turns = sum(total.values())
    assert turns == 1608
    # Weights 1 and 0.25: a cycle of 4 turns per healthy line and 1 per AT_RISK one.
    cycle = 4 * 4 + 2 * 1
    for i, number in enumerate(LINES):
        weight = 1 if i >= 4 else 4
        assert abs(total[number] - weight * turns / cycle) <= weight  # within one cycle


def test_one_sticky_line_per_recipient_and_pins_and_forgets_reach_everyone(
    fleet_state: str,
) -> None:
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as c:
        got = _fleet(fake, fleet_state, "sticky", 60, RECIPIENTS)
        seen: dict[str, set[str]] = collections.defaultdict(set)
        for _, lines in got:
            for to, numbers in lines.items():
                seen[to].update(numbers)
        assert set(seen) == set(RECIPIENTS)
        assert all(len(numbers) == 1 for numbers in seen.values())
        # Pin one conversation elsewhere from this process: every process follows.
        router = Router(Registry(c, ttl=3600), policy="sticky", state=fleet_state)
        first = RECIPIENTS[0]
        before = next(iter(seen[first]))
        other = next(n for n in LINES if n != before)
        router.pin(first, other)
        pinned = _fleet(fake, fleet_state, "sticky", 4, [first])
        assert {n for _, lines in pinned for n in lines[first]} == {other}
        assert router.forget(first)
        forgotten = _fleet(fake, fleet_state, "sticky", 4, [first])
        # Forgotten everywhere: the consistent hash gives the first line back.
        assert {n for _, lines in forgotten for n in lines[first]} == {before}
        router.close()


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill."""
    with RedisServer() as server:
        yield server


def test_picks_go_on_through_a_redis_outage_and_rejoin(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed mid-run: no pick fails, one WARNING; restarted: one INFO, shared again."""
    caplog.set_level(logging.INFO, logger="linq_router")
    clock = FakeClock()
    primary = from_uri(f"{own_server.url}/0?namespace=outage&fallback=off")
    state = ResilientState(primary, recheck=1.0, clock=clock)
    watcher = redis.Redis(port=own_server.port, socket_timeout=2)
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as c:
        router = Router(Registry(c, ttl=3600), "round-robin", state=state, pacing=None)
        sticky = Router(Registry(c, ttl=3600), "sticky", state=state, pacing=None)
        before = [router.pick(TO).phone_number for _ in range(12)]
        assert sorted(before) == sorted(LINES * 2)
        line = sticky.pick(RECIPIENTS[0]).phone_number
        own_server.kill()
        during = [router.pick(TO).phone_number for _ in range(12)]
        assert sorted(during) == sorted(LINES * 2)  # the rotation goes on, locally
        assert sticky.pick(RECIPIENTS[0]).phone_number == line  # remembered locally
        assert state.degraded
        own_server.start()
        clock.advance(1.0)
        router.pick(TO)  # the probe: rejoined
        assert not state.degraded
        after = [router.pick(TO).phone_number for _ in range(5)]
        assert len(set(after)) == 5
        key = next(k for k in watcher.scan_iter(match="{outage}:rotation:*"))
        assert int(watcher.get(key) or 0) == 6  # the shared counter again
        router.close()
        sticky.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO and "rejoined" in r.message]
    assert len(warnings) == 1
    assert "unreachable" in warnings[0].getMessage()
    assert len(infos) == 1
    watcher.close()
    state.close()


def _commands(client: redis.Redis) -> collections.Counter[str]:
    stats = client.info("commandstats")
    return collections.Counter(
        {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    )


# What each script runs inside Redis (commandstats counts those calls too).
_INSIDE = {
    "round-robin": {"incr": 1, "pexpire": 1},
    "reputation-weighted": {"incr": 1, "pexpire": 1},
    "sticky": {"get": 1, "pexpire": 1},  # a known conversation
    "sticky, new": {"get": 1, "set": 1},
}


@pytest.mark.parametrize("policy", ["round-robin", "reputation-weighted", "sticky"])
def test_a_warm_pick_is_one_round_trip(
    policy: str, redis_url: str, redis_client: redis.Redis
) -> None:
    """One EVALSHA a pick, known conversation or new: nothing else leaves the process."""
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as c:
        router = Router(Registry(c, ttl=3600), policy, state=redis_url, pacing=None)
        router.pick(RECIPIENTS[0])
        router.settle()
        for to, inside in ((RECIPIENTS[0], policy), (RECIPIENTS[1], f"{policy}, new")):
            before = _commands(redis_client)
            router.pick(to)
            delta = _commands(redis_client) - before
            delta.pop("info", None)
            assert delta == {"evalsha": 1, **_INSIDE.get(inside, _INSIDE[policy])}
        router.close()
