"""Webhooks behind a load balancer: processes on one Redis, the fake Linq delivering.

Each "process" has its own ``LinqClient``, ``Registry``, ``Router`` (on the Redis
state URI: a Redis client of its own) and ``WebhookReceiver`` on a shared state,
served for real: A's WSGI app under wsgiref, B's ASGI app under uvicorn. In front of
them a balancer (wsgiref, forwarding over HTTP) sends each delivery of the fake to
the process the test names, and keeps every answer. One test runs the second process
for real, spawned.

Every wait is bounded; the only polling is for a notice to cross Redis.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import httpx
import pytest
import redis
from sdk.helpers import closed_port
from webhooks.conftest import SECRET, signed, status_event
from webhooks.servers import Uvicorn, wsgi_served

from linq_router import (
    AsyncLinqClient,
    AsyncRegistry,
    AsyncRouter,
    LinqClient,
    Registry,
    Reputation,
    Router,
)
from linq_router._fleet_registry import TOPIC, RegistryChange, follow, origin_of
from linq_router.state import MemoryState, RedisState, from_uri
from linq_router.state._board import LocalBoard
from linq_router.testing import FakeLinqServer
from linq_router.webhooks import WebhookReceiver

from .waiting import namespace_of, until

LINES = [f"+1202555{i:04d}" for i in range(1, 7)]
TO = "+14155550100"
LIST = "GET /v3/phone_numbers"
POLICY = "skip-critical | round-robin"


class FlakyRegistry(Registry):
    """A real registry whose next ``fail_amends`` amends raise (a bug while applying)."""

    fail_amends = 0
    amends = 0
    """How many times ``amend`` was called."""

    def amend(self, *args: Any, **kwargs: Any) -> Any:
        self.amends += 1
        if self.fail_amends > 0:
            self.fail_amends -= 1
            msg = "amend failed (the test's doing)"
            raise RuntimeError(msg)
        return super().amend(*args, **kwargs)


@attrs.frozen
class Answer:
    """One delivery as the balancer passed it on: to whom, and what came back."""

    target: str
    status: int
    applied: bool
    reason: str
    seconds: float


class Balancer:
    """The load balancer: forwards each POST over HTTP to the process the test chose."""

    def __init__(self) -> None:
        self.backends: dict[str, str] = {}
        self.default = "a"
        self.answers: list[Answer] = []
        self._plan: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=5.0)

    def send(self, *targets: str) -> None:
        """The next deliveries (retries included) go to these, in order; then ``default``."""
        with self._lock:
            self._plan.extend(targets)

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith(("HTTP_WEBHOOK_", "HTTP_X_WEBHOOK_"))
        }
        headers["content-type"] = environ.get("CONTENT_TYPE") or "application/json"
        with self._lock:
            target = self._plan.popleft() if self._plan else self.default
        began = time.monotonic()
        answer = self._http.post(self.backends[target], content=body, headers=headers)
        said, took = answer.json(), time.monotonic() - began
        with self._lock:
            self.answers.append(
                Answer(target, answer.status_code, said["applied"], said["reason"], took)
            )
        start_response(
            f"{answer.status_code} Answered",
            [("Content-Type", "application/json"), ("Content-Length", str(len(answer.content)))],
        )
        return [answer.content]

    def said(self) -> list[tuple[str, int, bool]]:
        """Each answer so far: (to whom, its status, applied)."""
        with self._lock:
            return [(a.target, a.status, a.applied) for a in self.answers]

    def close(self) -> None:
        self._http.close()


@attrs.define
class Process:
    """What one worker process of the fleet holds."""

    client: LinqClient
    registry: FlakyRegistry
    router: Router
    receiver: WebhookReceiver

    def line(self, number: str) -> Any:
        return self.registry.snapshot().get(number)

    def picks(self, count: int = 40) -> set[str]:
        return {self.router.pick(TO).phone_number for _ in range(count)}


@attrs.define
class Fleet:
    """Two processes behind the balancer, on one Redis namespace."""

    fake: FakeLinqServer
    balancer: Balancer
    a: Process
    b: Process
    urls: dict[str, str]
    state: str


def _process(fake: FakeLinqServer, state: str, receiver_state: str | None) -> Process:
    client = LinqClient(fake.api_key, base_url=fake.base_url)
    registry = FlakyRegistry(client, ttl=3600)
    router = Router(registry, POLICY, state=state, pacing=None)
    router.pick(TO)
    # A: the receiver on its router's state (one process, one state); B: a URI, so a
    # Redis client of the receiver's own.
    shared = router.state if receiver_state is None else receiver_state
    receiver = WebhookReceiver(registry, router=router, secret=SECRET, state=shared)  # type: ignore[arg-type]
    return Process(client, registry, router, receiver)


def _listening(client: redis.Redis, state: str, count: int) -> bool:
    """Whether ``count`` states listen on the namespace's channel (each subscribes apart)."""
    channel = "{" + namespace_of(state) + "}:notices"

    def enough() -> bool:
        (_, listening), *_ = client.pubsub_numsub(channel)
        return int(listening) >= count

    return until(enough)


@pytest.fixture
def fleet(redis_url: str, redis_client: redis.Redis) -> Iterator[Fleet]:
    balancer = Balancer()
    with contextlib.ExitStack() as stack:
        stack.callback(balancer.close)
        front, thread = stack.enter_context(wsgi_served(balancer.app))
        thread.start()
        fake = stack.enter_context(
            FakeLinqServer(LINES, webhook_url=front, webhook_secret=SECRET, webhook_delays=[0.01])
        )
        a = _process(fake, redis_url, None)
        b = _process(fake, redis_url, redis_url)
        for process in (a, b):
            stack.callback(process.client.close)
            stack.callback(process.registry.close)
            stack.callback(process.router.state.close)  # type: ignore[union-attr]
            stack.callback(process.router.close)
        stack.callback(b.receiver.state.close)  # type: ignore[attr-defined]
        url_a, served_a = stack.enter_context(wsgi_served(a.receiver.wsgi))
        served_a.start()
        uvicorn_b = Uvicorn(b.receiver.asgi)
        uvicorn_b.start()
        stack.callback(uvicorn_b.stop)
        balancer.backends = {"a": url_a, "b": uvicorn_b.url}
        assert _listening(redis_client, redis_url, 2)  # both routers hear the board
        yield Fleet(fake, balancer, a, b, dict(balancer.backends), redis_url)


# -- (a) one process applies each event --------------------------------------------------


def test_an_event_delivered_to_each_process_is_applied_by_the_first_only(fleet: Fleet) -> None:
    fake, balancer = fleet.fake, fleet.balancer
    balancer.send("a", "b")
    fake.set_reputation(LINES[0], "AT_RISK")
    assert fake.wait_for_webhooks(timeout=10)
    event_id = fake.webhooks[-1].event_id
    fake.redeliver(event_id)  # Linq delivers it again, and the balancer sends it to B
    assert fake.wait_for_webhooks(timeout=10)
    assert balancer.said() == [("a", 200, True), ("b", 200, False)], balancer.answers
    assert "another process" in balancer.answers[1].reason
    assert fake.webhook_deliveries(event_id) == 2
    assert all(w.delivered for w in fake.webhooks)


def test_the_same_event_posted_to_both_at_once_is_applied_by_exactly_one(
    fleet: Fleet,
) -> None:
    """Twenty events, each posted to both processes at the same moment."""
    winners: collections.Counter[str] = collections.Counter()
    for n in range(20):
        reputation = "AT_RISK" if n % 2 == 0 else "HEALTHY"
        body = status_event(LINES[n % 3], reputation, "ACTIVE", changed_at=float(n))
        headers = signed(body, timestamp=time.time())
        start = threading.Barrier(2, timeout=5)
        answers: dict[str, httpx.Response] = {}

        def post(
            target: str,
            body: bytes,
            headers: dict[str, str],
            start: threading.Barrier,
            answers: dict[str, httpx.Response],
        ) -> None:
            start.wait()
            answers[target] = httpx.post(
                fleet.urls[target], content=body, headers=headers, timeout=5
            )

        threads = [
            threading.Thread(target=post, args=(t, body, headers, start, answers))
            for t in ("a", "b")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert {t: r.status_code for t, r in answers.items()} == {"a": 200, "b": 200}
        applied = [t for t, r in answers.items() if r.json()["applied"]]
        assert len(applied) == 1, {t: r.json() for t, r in answers.items()}
        (loser,) = {"a", "b"} - set(applied)
        assert "another process" in answers[loser].json()["reason"]
        winners[applied[0]] += 1
    assert sum(winners.values()) == 20


# -- (b), (c) what one process applied, every process's registry has --------------------


def test_a_status_change_delivered_to_one_process_is_obeyed_by_the_others_next_picks(
    fleet: Fleet,
) -> None:
    fake, a, b = fleet.fake, fleet.a, fleet.b
    lists = fake.count(LIST)
    fake.set_reputation(LINES[1], "CRITICAL")
    fake.set_status(LINES[2], "FLAGGED")
    assert fake.wait_for_webhooks(timeout=10)
    said = [("a", 200, True), ("a", 200, True)]
    assert fleet.balancer.said() == said, (fleet.balancer.answers, fake.webhooks)
    assert until(
        lambda: (
            b.line(LINES[1]).reputation is Reputation.CRITICAL
            and b.line(LINES[2]).status == "FLAGGED"
        )
    )
    assert b.picks() == set(LINES) - {LINES[1], LINES[2]}
    assert a.picks() == set(LINES) - {LINES[1], LINES[2]}
    assert fake.count(LIST) == lists  # B never asked Linq for the list (nor did A)


def test_a_release_delivered_to_one_process_removes_the_line_from_the_others(
    fleet: Fleet,
) -> None:
    fake, b = fleet.fake, fleet.b
    lists = fake.count(LIST)
    fake.remove_number(LINES[3])
    assert fake.wait_for_webhooks(timeout=10)
    assert fleet.balancer.said() == [("a", 200, True)], (fleet.balancer.answers, fake.webhooks)
    assert until(lambda: b.line(LINES[3]) is None)
    assert LINES[3] not in b.picks()
    assert fake.count(LIST) == lists


def test_forwarding_and_assignment_reach_the_other_process(fleet: Fleet) -> None:
    fake, b = fleet.fake, fleet.b
    fake.set_forwarding_number(LINES[4], "+13105550177")
    assert fake.wait_for_webhooks(timeout=10)
    assert until(lambda: b.line(LINES[4]).forwarding_number == "+13105550177")
    lists = fake.count(LIST)
    fake.add_number("+13105550150")  # assigned: every process fetches the list again
    assert fake.wait_for_webhooks(timeout=10)
    assert until(lambda: b.line("+13105550150") is not None)
    assert until(lambda: fleet.a.line("+13105550150") is not None)
    assert fake.count(LIST) == lists + 2  # one list each, no more
    assert [x.target for x in fleet.balancer.answers] == ["a", "a"]


def test_an_async_router_follows_its_registry_too(fleet: Fleet, redis_client: redis.Redis) -> None:
    """An AsyncRegistry's amend and remove are plain methods: the board's thread calls them."""
    fake = fleet.fake

    async def main() -> None:
        async with AsyncLinqClient(fake.api_key, base_url=fake.base_url) as client:
            registry = AsyncRegistry(client, ttl=3600)
            router = AsyncRouter(registry, POLICY, state=fleet.state, pacing=None)
            try:
                await router.pick(TO)
                assert await asyncio.to_thread(_listening, redis_client, fleet.state, 3)
                lists = fake.count(LIST)
                fake.set_reputation(LINES[1], "CRITICAL")
                fake.remove_number(LINES[2])
                assert await asyncio.to_thread(fake.wait_for_webhooks, 10)

                async def changed() -> bool:
                    snapshot = await registry.snapshot()
                    line = snapshot.get(LINES[1])
                    return (
                        line is not None
                        and line.reputation is Reputation.CRITICAL
                        and (snapshot.get(LINES[2]) is None)
                    )

                deadline = time.monotonic() + 5
                while not await changed() and time.monotonic() < deadline:
                    await asyncio.sleep(0.002)
                assert await changed()
                picks = {(await router.pick(TO)).phone_number for _ in range(40)}
                assert picks == set(LINES) - {LINES[1], LINES[2]}
                assert fake.count(LIST) == lists
            finally:
                router.close()
                router.state.close()  # type: ignore[union-attr]

    asyncio.run(main())


# -- (d) a failure gives the claim back ---------------------------------------------------


def test_a_failure_while_applying_gives_the_claim_back_and_the_retry_applies_it(
    fleet: Fleet, redis_client: redis.Redis
) -> None:
    fake, a, b = fleet.fake, fleet.a, fleet.b
    a.registry.fail_amends = 1
    fleet.balancer.send("a", "b")  # the first attempt to A, Linq's retry to B
    fake.set_reputation(LINES[5], "CRITICAL")
    assert fake.wait_for_webhooks(timeout=10)
    (delivery,) = fake.webhooks
    assert delivery.delivered
    assert delivery.attempts == 2
    said = [("a", 500, False), ("b", 200, True)]
    assert fleet.balancer.said() == said, (fleet.balancer.answers, fake.webhooks)
    # B applied it and told the fleet: A's registry has it too, with no list.
    assert b.line(LINES[5]).reputation is Reputation.CRITICAL
    assert until(lambda: a.line(LINES[5]).reputation is Reputation.CRITICAL)
    key = "{" + namespace_of(fleet.state) + "}:claim:webhook:" + delivery.event_id
    assert 3_590_000 < redis_client.pttl(key) <= 3_600_000  # kept, by B, for the hour


def test_a_failure_while_applying_lets_a_redelivery_to_the_same_process_apply_it(
    fleet: Fleet,
) -> None:
    fake, a = fleet.fake, fleet.a
    a.registry.fail_amends = 1
    fake.set_status(LINES[0], "FLAGGED")
    assert fake.wait_for_webhooks(timeout=10)
    said = [("a", 500, False), ("a", 200, True)]
    assert fleet.balancer.said() == said, (fleet.balancer.answers, fake.webhooks)
    assert a.line(LINES[0]).status == "FLAGGED"
    assert until(lambda: fleet.b.line(LINES[0]).status == "FLAGGED")


# -- another process, for real ------------------------------------------------------------


def _other_process(
    base_url: str, api_key: str, state: str, commands: Any, answers: Any
) -> None:  # pragma: no cover - runs in the spawned process
    client = LinqClient(api_key, base_url=base_url)
    registry = Registry(client, ttl=3600)
    router = Router(registry, POLICY, state=state, pacing=None)
    router.pick(TO)
    answers.put("ready")
    try:
        while True:
            number = commands.get(timeout=30)
            if number is None:
                return
            deadline = time.monotonic() + 5
            line = registry.snapshot().get(number)
            while line is not None and line.reputation is not Reputation.CRITICAL:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.002)
                line = registry.snapshot().get(number)
            picks = sorted({router.pick(TO).phone_number for _ in range(40)})
            answers.put((registry.refreshes, picks))
    finally:
        router.close()
        router.state.close()  # type: ignore[union-attr]
        client.close()


def test_a_process_of_its_own_obeys_a_change_delivered_to_another(
    fleet: Fleet, redis_client: redis.Redis
) -> None:
    context = multiprocessing.get_context("spawn")
    commands, answers = context.Queue(), context.Queue()
    fake = fleet.fake
    child = context.Process(
        target=_other_process,
        args=(fake.base_url, fake.api_key, fleet.state, commands, answers),
        daemon=True,
    )
    child.start()
    try:
        assert answers.get(timeout=30) == "ready"
        assert _listening(redis_client, fleet.state, 3)
        lists = fake.count(LIST)
        fake.set_reputation(LINES[2], "CRITICAL")
        assert fake.wait_for_webhooks(timeout=10)
        commands.put(LINES[2])
        refreshes, picks = answers.get(timeout=10)
        assert refreshes == 1  # its first list only
        assert picks == sorted(set(LINES) - {LINES[2]})
        assert fake.count(LIST) == lists
    finally:
        commands.put(None)
        child.join(10)
        if child.is_alive():  # pragma: no cover - only if the child hung
            child.kill()
            child.join(5)
    assert child.exitcode == 0


# -- without a shared state, and while Redis is away --------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeLinqServer]:
    with FakeLinqServer(LINES) as server:
        yield server


@pytest.fixture
def registries(fake: FakeLinqServer) -> Iterator[list[FlakyRegistry]]:
    with LinqClient(fake.api_key, base_url=fake.base_url) as client:
        made = [FlakyRegistry(client, ttl=3600) for _ in range(2)]
        for registry in made:
            registry.snapshot()
        yield made


def test_a_state_without_a_board_is_refused_by_name(registries: list[FlakyRegistry]) -> None:
    with pytest.raises(TypeError, match=r"notice board.*RedisState.*got MemoryState"):
        WebhookReceiver(registries[0], secret=SECRET, state=MemoryState())
    with pytest.raises(TypeError, match="got int"):
        WebhookReceiver(registries[0], secret=SECRET, state=5)  # type: ignore[arg-type]
    own = WebhookReceiver(registries[0], secret=SECRET, state="memory://")
    assert isinstance(own.state, MemoryState)  # this process only, as without a state


def test_while_redis_is_away_each_process_dedups_on_its_own(
    registries: list[FlakyRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    """ResilientState falls back to a local claim: both apply, nothing raises."""
    uri = f"redis://127.0.0.1:{closed_port()}/0?namespace=away"
    states = [from_uri(uri), from_uri(uri)]
    receivers = [
        WebhookReceiver(r, secret=SECRET, state=s)  # type: ignore[arg-type]
        for r, s in zip(registries, states, strict=True)
    ]
    body = status_event(LINES[0], "CRITICAL", "FLAGGED", event_id="evt-away")
    with caplog.at_level(logging.WARNING, logger="linq_router"):
        results = [r.handle(signed(body, timestamp=time.time()), body) for r in receivers]
        again = receivers[0].handle(signed(body, timestamp=time.time()), body)
    assert [(r.status, r.applied) for r in results] == [(200, True), (200, True)]
    assert (again.status, again.applied) == (200, False)  # the process's own dedup
    assert "shared state unreachable" in caplog.text
    for state in states:
        state.close()  # type: ignore[attr-defined]


def test_a_bare_redis_state_that_fails_leaves_the_decision_to_the_process(
    registries: list[FlakyRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"redis://127.0.0.1:{closed_port()}/0?namespace=away&fallback=off"
    state = from_uri(uri)
    receiver = WebhookReceiver(registries[0], secret=SECRET, state=state)  # type: ignore[arg-type]
    body = status_event(LINES[1], "CRITICAL", "FLAGGED")
    with caplog.at_level(logging.WARNING, logger="linq_router"):
        result = receiver.handle(signed(body, timestamp=time.time()), body)
        again = receiver.handle(signed(body, timestamp=time.time()), body)
    assert (result.status, result.applied) == (200, True)
    assert (again.status, again.applied) == (200, False)
    warnings = [r for r in caplog.records if "could not claim" in r.getMessage()]
    assert len(warnings) == 1  # once; the next ones at DEBUG
    assert "own dedup decides" in warnings[0].getMessage()
    state.close()  # type: ignore[attr-defined]


# -- following a registry (a board of this process) ---------------------------------------


def test_a_change_reaches_the_other_registry_and_not_its_own_twice(
    registries: list[FlakyRegistry],
) -> None:
    """On one LocalBoard: the receiver's registry skips its own notice, the other applies it."""
    own, other = registries
    board = LocalBoard()
    seen: list[object] = []
    board.subscribe(lambda notice: seen.append(notice.record))
    stops = [follow(own, board), follow(other, board)]
    receiver = WebhookReceiver(own, secret=SECRET, state=board)
    body = status_event(LINES[2], "CRITICAL", "FLAGGED")
    assert receiver.handle(signed(body, timestamp=time.time()), body).applied
    (record,) = seen
    assert record["origin"] == origin_of(own)  # type: ignore[index]
    assert record["fields"] == {"reputation": "CRITICAL", "status": "FLAGGED"}  # type: ignore[index]
    line = other.snapshot().get(LINES[2])
    assert line is not None
    assert line.reputation is Reputation.CRITICAL
    assert (own.amends, other.amends) == (1, 1)  # the receiver's, and the notice's
    for stop in stops:
        assert stop is not None
        stop()


class CountingBoard(LocalBoard):
    """A local board that counts its live subscriptions."""

    live = 0

    def subscribe(self, listener: Any, joined: Any = None) -> Callable[[], None]:
        stop = super().subscribe(listener, joined)
        self.live += 1

        def unsubscribe() -> None:
            self.live -= 1
            stop()

        return unsubscribe


def test_one_subscription_per_registry_and_board(registries: list[FlakyRegistry]) -> None:
    board = CountingBoard()
    first, second = follow(registries[0], board), follow(registries[0], board)
    assert first is not None
    assert second is not None
    assert board.live == 1
    first()
    first()  # a second call does nothing
    assert board.live == 1
    second()
    assert board.live == 0
    third = follow(registries[1], board)  # another registry: a subscription of its own
    assert third is not None
    assert board.live == 1
    third()


def test_a_registry_that_cannot_be_amended_is_not_followed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Snapshots:
        def snapshot(self) -> object:
            return None

    with caplog.at_level(logging.DEBUG, logger="linq_router"):
        assert follow(Snapshots(), LocalBoard()) is None
    assert "has no amend(), remove(), refresh_soon()" in caplog.text


def test_a_change_round_trips_and_a_bad_record_is_none() -> None:
    when = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
    change = RegistryChange("amend", LINES[0], {"forwarding_number": None}, when)
    assert RegistryChange.of(change.record("x")) == change
    assert RegistryChange.of({"kind": "amend", "phone_number": LINES[0], "changed_at": "x"}) is None
    assert RegistryChange.of({"kind": "delete", "phone_number": LINES[0]}) is None
    assert RegistryChange.of({"kind": "amend", "phone_number": 5}) is None
    assert RegistryChange.of({"kind": "amend", "phone_number": "+1", "fields": {"id": "x"}}) is None
    naive = {"kind": "remove", "phone_number": LINES[0], "changed_at": "2026-12-01T12:00:00"}
    assert RegistryChange.of(naive) is None
    assert TOPIC == "registry"


class CountingRedisState(RedisState):
    """A Redis state that counts its live subscriptions."""

    live = 0

    def subscribe(self, listener: Any, joined: Any = None) -> Callable[[], None]:
        stop = super().subscribe(listener, joined)
        self.live += 1

        def unsubscribe() -> None:
            self.live -= 1
            stop()

        return unsubscribe


def test_routers_on_a_shared_state_share_one_subscription_per_registry(
    redis_client: redis.Redis, namespaces: Any, fake: FakeLinqServer
) -> None:
    """Two routers on one registry and one state: one follower; it ends with the last."""
    state = CountingRedisState(redis_client, namespace=namespaces())
    with LinqClient(fake.api_key, base_url=fake.base_url) as client:
        registry = Registry(client, ttl=3600)
        first = Router(registry, POLICY, state=state, pacing=None, ejection=None)
        second = Router(registry, POLICY, state=state, pacing=None, ejection=None)
        assert state.live == 1
        first.close()
        assert state.live == 1
        second.close()
        assert state.live == 0
        memory = Router(registry, POLICY, state=MemoryState(), pacing=None)
        assert memory._unfollow is None  # nothing to hear on a state of its own
        memory.close()
