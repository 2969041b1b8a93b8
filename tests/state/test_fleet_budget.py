"""One daily budget across a fleet: 8 processes x 4 threads on one Redis.

Each worker process builds its own client, registry and router over the fake Linq
API with ``Router(state=<redis URI>)``, whose default ``Pacing`` storage follows the
state to ``limits``' Redis storage. Every thread picks and reports a success to a
recipient of its own until ``pick`` raises ``BudgetExhaustedError``. The parent then
reads what the budgets' storage holds and compares it with the sends reported.
Processes are forked (the fake and the redis-server live in the parent).
"""

from __future__ import annotations

import collections
import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from linq_router import BudgetExhaustedError, LinqClient, Pacing, Registry, Router
from linq_router.testing import FakeClock, FakeLinqServer, RedisServer

from .waiting import PATIENT

PROCESSES, THREADS = 8, 4
LINES = ["+12025550101", "+12025550102"]
DAILY = 50  # per line: the fleet's whole budget is 100 sends
MOST = 200  # picks a thread may make at most: the fleet stops long before, or fails
_fork = multiprocessing.get_context("fork")

PACINGS = {
    # The daily send budget of each line, on each of limits' strategies.
    "per_line": ("per_line", Pacing(per_line=f"{DAILY}/day")),
    "per_line, fixed-window": (
        "per_line",
        Pacing(per_line=f"{DAILY}/day", strategy="fixed-window"),
    ),
    "per_line, sliding-window-counter": (
        "per_line",
        Pacing(per_line=f"{DAILY}/day", strategy="sliding-window-counter"),
    ),
    # The daily new-conversation budget (every recipient here is new).
    "new_conversations": (
        "new_conversations",
        Pacing(per_line=None, new_conversations={"HEALTHY": f"{DAILY}/day"}),
    ),
}


def _recipient(process: int, thread: int, n: int) -> str:
    """A recipient of this thread's own: no two sends of the fleet go to the same one."""
    return f"+1415{process}{thread}{n:05d}"


def _worker(
    base_url: str, api_key: str, state: str, pacing: Pacing, index: int, start: Any, out: Any
) -> None:
    sent: collections.Counter[str] = collections.Counter()
    stops: list[str] = []  # how each thread ended: "budget", or the error it met
    lock = threading.Lock()
    with LinqClient(api_key, base_url=base_url) as client:
        router = Router(
            Registry(client, ttl=3600), state=state, pacing=pacing, ejection=None, clock=FakeClock()
        )
        router.budgets()  # reads the snapshot: the threads start on the same footing
        start.wait(30)

        def work(thread: int) -> None:
            for n in range(MOST):
                to = _recipient(index, thread, n)
                try:
                    pick = router.pick(to)
                except BudgetExhaustedError:
                    with lock:
                        stops.append("budget")
                    return
                except Exception as error:  # the test reports it
                    with lock:
                        stops.append(repr(error))
                    return
                try:
                    router.report(pick, to=to)
                except Exception as error:
                    with lock:
                        stops.append(f"report: {error!r}")
                    return
                with lock:
                    sent[pick.phone_number] += 1
            with lock:
                stops.append(f"no BudgetExhaustedError after {MOST} sends")

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        alive = sum(t.is_alive() for t in threads)
        router.close()
    out.put((index, dict(sent), stops + ["still running"] * alive))


def _fleet(fake: FakeLinqServer, state: str, pacing: Pacing) -> list[tuple[int, Any, Any]]:
    start = _fork.Barrier(PROCESSES)
    out = _fork.Queue()
    procs = [
        _fork.Process(
            target=_worker, args=(fake.base_url, fake.api_key, state, pacing, i, start, out)
        )
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    got = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return got


@pytest.fixture
def namespace(redis_client: redis.Redis) -> Iterator[str]:
    """A namespace of this test's own; its budgets' keys are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    for pattern in (f"{name}:pacing:*", "{" + name + "}:*"):
        keys = list(redis_client.scan_iter(match=pattern, count=1000))
        if keys:
            redis_client.delete(*keys)


@pytest.mark.parametrize("budget", sorted(PACINGS))
def test_one_daily_budget_across_the_fleet(
    budget: str, redis_server: RedisServer, redis_client: redis.Redis, namespace: str
) -> None:
    state = f"{redis_server.url}/0?namespace={namespace}{PATIENT}"
    kind, pacing = PACINGS[budget]
    with FakeLinqServer(LINES) as fake:
        got = _fleet(fake, state, pacing)
        with LinqClient(fake.api_key, base_url=fake.base_url) as client:
            fresh = Router(Registry(client, ttl=3600), state=state, pacing=pacing)
            budgets = [b for b in fresh.budgets() if b.kind == kind]
            fresh.close()
    sent: collections.Counter[str] = collections.Counter()
    for _, counts, _ in got:
        sent.update(counts)
    used = {b.line: b.used for b in budgets}
    # Every thread of every process stopped on the budget, and on nothing else.
    assert [stops for _, _, stops in got] == [["budget"] * THREADS] * PROCESSES
    # What the storage counted is what was reported, line by line: none lost, none twice.
    assert sorted(used) == LINES
    assert used == dict(sent)
    # Each line's daily budget is spent, and passed by at most the sends in flight when
    # it ran out: one per thread of the fleet. (The fleet's total may pass the lines'
    # sum by more: a thread can be in flight on each line as it runs out.)
    for line, n in used.items():
        assert DAILY <= n <= DAILY + PROCESSES * THREADS, (line, used)
    # The counts are limits' Redis storage's, under the state's namespace.
    assert list(redis_client.scan_iter(match=f"{namespace}:pacing:*"))
