"""Ejections, failure streaks and slow-start entries shared through Redis.

Two routers with their own Redis clients (as two processes would have) on one
namespace: what one learns from a report, the other obeys on its next pick, without
asking Redis on the pick path.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from linq_router import Ejection, LinqClient, Outcome, Registry, Router, SlowStart, Verdict
from linq_router.state import ResilientState, from_uri
from linq_router.testing import FakeClock, FakeLinqServer, RedisServer

from .waiting import PATIENT, namespace_of, until

LINES = [f"+1202555{i:04d}" for i in range(1, 5)]
TO = "+14155550100"


def _obeyed(router: Router) -> bool:
    """Whether ``router`` applied an ejection from the fleet (on its listening thread)."""
    fleet = router._fleet
    return fleet is not None and fleet.obeyed > 0


@pytest.fixture
def fake() -> Iterator[FakeLinqServer]:
    with FakeLinqServer(LINES) as server:
        yield server


class Fleet:
    """Routers with clients of their own on one Redis namespace; closed afterwards."""

    def __init__(self, fake: FakeLinqServer, state: str) -> None:
        self.fake, self.state = fake, state
        self.routers: list[Router] = []
        self.clients: list[LinqClient] = []

    def router(self, policy: str = "skip-critical | round-robin", **options: object) -> Router:
        client = LinqClient(self.fake.api_key, base_url=self.fake.base_url)
        self.clients.append(client)
        options.setdefault("pacing", None)
        router = Router(Registry(client, ttl=3600), policy, state=self.state, **options)  # type: ignore[arg-type]
        self.routers.append(router)
        return router

    def close(self) -> None:
        for router in self.routers:
            router.close()
            router.state.close()  # type: ignore[union-attr]
        for client in self.clients:
            client.close()


@pytest.fixture
def fleet(fake: FakeLinqServer, redis_url: str) -> Iterator[Fleet]:
    made = Fleet(fake, redis_url)
    yield made
    made.close()


@pytest.fixture
def pair(fleet: Fleet) -> tuple[Router, Router]:
    return fleet.router(), fleet.router()


def test_an_ejection_in_one_router_is_obeyed_by_the_other(pair: tuple[Router, Router]) -> None:
    a, b = pair
    first = a.pick(TO)
    b.pick(TO)
    assert a.report(first, Outcome(status=403, code=2027)) is Verdict.LINE_INELIGIBLE
    assert until(lambda: _obeyed(b))
    (ejected,) = b.ejections()
    assert ejected.line == first.phone_number
    assert ejected.verdict is Verdict.LINE_INELIGIBLE
    assert "2027" in ejected.reason
    assert abs(ejected.until - a.ejections()[0].until) < 0.5
    picked = {b.pick(TO).phone_number for _ in range(40)}
    assert picked == set(LINES) - {first.phone_number}


def _line(router: Router, number: str):  # type: ignore[no-untyped-def]
    return next(n for n in router.registry.snapshot().numbers if n.phone_number == number)  # type: ignore[attr-defined]


def test_failures_in_a_row_count_across_the_fleet(fleet: Fleet) -> None:
    """Two failures in one router and one in another are three in a row."""
    rule = Ejection(consecutive_failures=3, base_time=60)
    a, b = fleet.router(ejection=rule), fleet.router(ejection=rule)
    a.pick(TO), b.pick(TO)
    line = LINES[0]
    assert a.report(line, Outcome(status=503)) is Verdict.LINE_FAILURE
    a.report(line, Outcome(status=503))
    assert not a.ejections()
    assert not b.ejections()
    b.report(line, Outcome(status=503))
    assert [e.line for e in b.ejections()] == [line]
    assert "3 failures in a row" in b.ejections()[0].reason
    assert until(lambda: [e.line for e in a.ejections()] == [line])


def test_a_success_anywhere_ends_the_streak_everywhere(fleet: Fleet) -> None:
    rule = Ejection(consecutive_failures=3, base_time=60)
    a, b = fleet.router(ejection=rule), fleet.router(ejection=rule)
    a.pick(TO), b.pick(TO)
    line = LINES[1]
    a.report(line, Outcome(status=503))
    a.report(line, Outcome(status=503))
    assert until(lambda: b._tracker is not None and b._tracker.streaking(_line(b, line).id))
    b.report(line)  # a success: the streak is over, for a too
    assert until(lambda: a._tracker is not None and not a._tracker.streaking(_line(a, line).id))
    a.report(line, Outcome(status=503))
    a.report(line, Outcome(status=503))
    assert not a.ejections()
    assert not b.ejections()


def test_a_router_that_joins_later_obeys_the_ejections_in_force(fleet: Fleet) -> None:
    a = fleet.router()
    first = a.pick(TO)
    a.report(first, Outcome(status=403, code=2027))
    late = fleet.router()
    assert until(lambda: _obeyed(late))
    assert [e.line for e in late.ejections()] == [first.phone_number]
    assert first.phone_number not in {late.pick(TO).phone_number for _ in range(20)}


def test_the_shared_ejection_expires_with_the_ejection(
    fleet: Fleet, redis_client: redis.Redis, redis_url: str
) -> None:
    a = fleet.router(ejection=Ejection(ineligible_time=120))
    first = a.pick(TO)
    a.report(first, Outcome(status=403, code=2027))
    namespace = namespace_of(redis_url)
    key = "{" + namespace + "}:note:ejection:" + first.number.id
    left = redis_client.pttl(key)
    assert 119_000 < left <= 120_000


def test_obeying_the_fleet_costs_a_pick_no_round_trip(
    fleet: Fleet, redis_client: redis.Redis
) -> None:
    """With feedback on and a line ejected, a warm pick is still one EVALSHA (the turn)."""
    a, b = fleet.router(), fleet.router()
    first = a.pick(TO)
    b.pick(TO)
    a.report(first, Outcome(status=403, code=2027))
    assert until(lambda: bool(b.ejections()))
    b.pick(TO)
    b.settle()
    b.pick(TO)
    redis_client.config_resetstat()
    for _ in range(50):
        b.pick(TO)
    stats = redis_client.info("commandstats")
    calls = {name: v["calls"] for name, v in stats.items() if name != "cmdstat_config|resetstat"}
    # One script call a pick (the turn: INCR and PEXPIRE inside it), nothing else.
    assert calls.pop("cmdstat_evalsha") == 50
    assert set(calls) <= {"cmdstat_incr", "cmdstat_pexpire"}


def test_slow_start_entries_are_the_fleets(fleet: Fleet, redis_client: redis.Redis) -> None:
    """A line entering ramps from the time the first router saw it, in every router."""
    clock = FakeClock()  # an injected clock is the fleet's clock: the routers share it
    a = fleet.router("reputation-weighted", slow_start=SlowStart(window=600), clock=clock)
    b = fleet.router("reputation-weighted", slow_start=SlowStart(window=600), clock=clock)
    a.pick(TO), b.pick(TO)
    new = "+12025559999"
    fleet.fake.add_number(new)
    a.registry.refresh()  # type: ignore[attr-defined]
    a.pick(TO)
    a.settle()
    # a posts its entry time from a thread of its own: let it land before b looks.
    namespace = namespace_of(fleet.state)
    assert until(lambda: bool(redis_client.keys("{" + namespace + "}:note:entered:*")))
    clock.advance(300)  # b hears of the line 5 minutes later
    b.registry.refresh()  # type: ignore[attr-defined]
    b.pick(TO)

    def factor(router: Router) -> float:
        tracker = router._tracker
        assert tracker is not None
        return tracker.adjustments.factors.get(_line(router, new).id, 1.0)

    a.pick(TO)  # a time to step its ramp came: a pick notices
    assert factor(a) == pytest.approx(0.5)  # 300 s into a 600 s window
    # b ramps from a's entry time: 300 s in, as if it had seen it at once.
    assert until(lambda: factor(b) == pytest.approx(SlowStart(window=600).stepped(300)[0]))


# -- 8 processes x 4 threads ---------------------------------------------------------------

PROCESSES, THREADS = 8, 4
FLEET_LINES = [f"+1202556{i:04d}" for i in range(1, 7)]
_fork = multiprocessing.get_context("fork")


def _picker(
    base_url: str, api_key: str, state: str, index: int, start: Any, reported: Any, results: Any
) -> None:
    with LinqClient(api_key, base_url=base_url) as client:
        router = Router(
            Registry(client, ttl=3600), "skip-critical | round-robin", state=state, pacing=None
        )
        router.pick(TO)
        assert router.settle(30)  # compiled, and hearing the fleet
        start.wait(30)
        picks: dict[int, list[tuple[float, str]]] = {}
        failures: list[str] = []

        def work(thread: int) -> None:
            try:
                picking(thread)
            except Exception as error:  # reported to the parent, which fails the test
                failures.append(f"thread {thread}: {error!r}")

        def picking(thread: int) -> None:
            mine: list[tuple[float, str]] = []
            fleet = router._fleet
            assert fleet is not None
            deadline = time.monotonic() + 30
            n = after = 0
            # 60 picks, and on until 10 picks after this process obeyed the ejection.
            while (n < 60 or after < 10) and time.monotonic() < deadline:
                began = time.time()
                mine.append((began, router.pick(TO).phone_number))
                if index == 0 and thread == 0 and n == 20:
                    router.report(FLEET_LINES[0], Outcome(status=403, code=2027))
                    reported.value = time.time()
                n += 1
                after += 1 if (index == 0 and reported.value) or fleet.obeyed else 0
            picks[thread] = mine

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        fleet = router._fleet
        assert fleet is not None
        # The reporter applied its own ejection in report(); the others, from the notice.
        obeyed = reported.value if index == 0 else fleet.obeyed_at
        router.close()
        results.put((index, picks, obeyed, failures))


def test_an_ejection_in_one_process_is_obeyed_by_all_on_their_next_pick(
    redis_server: RedisServer, namespaces: Any
) -> None:
    """Every process obeys it from the pick after its notice arrived; the lag is printed."""
    # With the fallback (as deployed): 32 threads on two cores can outwait 50 ms.
    redis_url = f"{redis_server.url}/0?namespace={namespaces()}{PATIENT}"
    start = _fork.Barrier(PROCESSES)
    reported = _fork.Value("d", 0.0)
    results = _fork.Queue()
    with FakeLinqServer(FLEET_LINES) as fake:
        args = (fake.base_url, fake.api_key, redis_url)
        procs = [
            _fork.Process(target=_picker, args=(*args, i, start, reported, results))
            for i in range(PROCESSES)
        ]
        for p in procs:
            p.start()
        got = [results.get(timeout=120) for _ in range(PROCESSES)]
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
    when = reported.value
    assert when > 0
    lags = []
    assert [f for *_, failures in got for f in failures] == []
    for index, picks, obeyed, _ in got:
        assert obeyed is not None, f"process {index} never heard of the ejection"
        lags.append(obeyed - when)
        for thread, mine in picks.items():
            assert len(mine) >= 60
            after = [number for began, number in mine if began > obeyed]
            assert FLEET_LINES[0] not in after, (index, thread)
    # The line was in rotation before: the test could have seen it.
    assert any(n == FLEET_LINES[0] for _, picks, *_ in got for m in picks.values() for _, n in m)
    print(f"notice lag over {PROCESSES} processes: max {max(lags) * 1000:.1f} ms")


# -- Redis away ------------------------------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill."""
    with RedisServer() as server:
        yield server


def test_an_ejection_made_during_an_outage_is_written_back(
    own_server: RedisServer, fake: FakeLinqServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down: the ejection holds locally, no report raises; back: the fleet obeys it."""
    caplog.set_level(logging.INFO, logger="linq_router")
    clock = FakeClock()
    url = f"{own_server.url}/0?namespace=outage-feedback&fallback=off"
    states = [ResilientState(from_uri(url), recheck=1.0, clock=clock) for _ in range(2)]
    clients = [LinqClient(fake.api_key, base_url=fake.base_url) for _ in range(2)]
    a, b = (
        Router(Registry(c, ttl=3600), "skip-critical | round-robin", state=s, pacing=None)
        for c, s in zip(clients, states, strict=True)
    )
    try:
        a.pick(TO), b.pick(TO)
        assert a.settle(10)
        assert b.settle(10)
        own_server.kill()
        line = LINES[2]
        assert a.report(line, Outcome(status=403, code=2027)) is Verdict.LINE_INELIGIBLE
        assert [e.line for e in a.ejections()] == [line]  # obeyed here at once
        assert line not in {a.pick(TO).phone_number for _ in range(8)}
        assert not b.ejections()  # b cannot know yet
        own_server.start()
        clock.advance(1.0)
        a.pick(TO)  # a's probe: it rejoins and writes the ejection back
        assert not states[0].degraded
        assert until(lambda: _obeyed(b), timeout=10)
        assert [e.line for e in b.ejections()] == [line]
        assert line not in {b.pick(TO).phone_number for _ in range(8)}
    finally:
        for router in (a, b):
            router.close()
        for state in states:
            state.close()
        for client in clients:
            client.close()
    rejoined = [r.getMessage() for r in caplog.records if "rejoined" in r.getMessage()]
    assert len(rejoined) >= 1
    assert "1 local record(s)" in rejoined[0]
