"""End to end over HTTP: the fake delivers signed events to the receiver's apps.

The ASGI app runs under uvicorn and the WSGI app under ``wsgiref``, each on a free
port of 127.0.0.1; the fake Linq API posts to them as Linq would. Every server is
stopped by its fixture, and every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import httpx
import pytest
from sdk.helpers import MESSAGE, SpyRouter, sdk_client

from linq_router import LinqClient, Registry, Reputation
from linq_router.feedback import Verdict
from linq_router.sdk import Sender
from linq_router.testing import FakeLinqServer
from linq_router.webhooks import WebhookReceiver

from .conftest import LINES, LIST, SECRET
from .servers import Uvicorn, wsgi_served

RECIPIENT = "+14155550100"


class _LateApp:
    """The app a server was made with before the receiver existed; a gate holds requests."""

    def __init__(self) -> None:
        self.asgi: Any = None
        self.wsgi: Any = None
        self.gate = threading.Event()
        self.gate.set()

    async def asgi_app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.to_thread(self.gate.wait, 10)
        await self.asgi(scope, receive, send)

    def wsgi_app(self, environ: Any, start_response: Any) -> Any:
        self.gate.wait(10)
        return self.wsgi(environ, start_response)


@contextlib.contextmanager
def _asgi_server(app: _LateApp) -> Iterator[tuple[str, Callable[[], None]]]:
    server = Uvicorn(app.asgi_app)
    try:
        yield server.url, server.start
    finally:
        server.stop()


@contextlib.contextmanager
def _wsgi_server(app: _LateApp) -> Iterator[tuple[str, Callable[[], None]]]:
    with wsgi_served(app.wsgi_app) as (url, thread):
        yield url, thread.start


SERVERS = {"asgi-uvicorn": _asgi_server, "wsgi-wsgiref": _wsgi_server}


@attrs.frozen
class Served:
    """The fake delivering to a receiver served over HTTP, and what the receiver feeds."""

    fake: FakeLinqServer
    registry: Registry
    router: SpyRouter
    sender: Sender
    app: _LateApp
    url: str


@contextlib.contextmanager
def _serving(kind: str, delays: list[float], *, start: bool = True) -> Iterator[Served]:
    app = _LateApp()
    with (
        SERVERS[kind](app) as (url, begin),
        FakeLinqServer(
            LINES, webhook_url=url, webhook_secret=SECRET, webhook_delays=delays
        ) as fake,
        LinqClient(fake.api_key, base_url=fake.base_url) as client,
    ):
        registry = Registry(client, ttl=3600)
        router = SpyRouter(registry, policy="skip-critical | round-robin")
        router.pick(RECIPIENT)
        sender = Sender(router, sdk_client(fake))
        receiver = WebhookReceiver(registry, router=router, sender=sender, secret=SECRET)
        app.asgi, app.wsgi = receiver.asgi, receiver.wsgi
        if start:
            begin()
        else:
            app.start = begin  # type: ignore[attr-defined]
        try:
            yield Served(fake, registry, router, sender, app, url)
        finally:
            router.close()
            registry.close()


@pytest.fixture(params=sorted(SERVERS))
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """The receiver served over HTTP (each kind in turn), the fake delivering to it."""
    with _serving(request.param, [0.01]) as served:
        yield served


def test_a_line_flagged_at_linq_is_avoided_by_the_next_pick_with_no_list(
    served: Served,
) -> None:
    fake, registry, router = served.fake, served.registry, served.router
    lists = fake.count(LIST)
    fake.set_status(LINES[0], "FLAGGED")
    fake.set_reputation(LINES[1], "CRITICAL")
    assert fake.wait_for_webhooks(timeout=10)
    assert all(w.delivered for w in fake.webhooks)
    first, second = registry.snapshot().get(LINES[0]), registry.snapshot().get(LINES[1])
    assert first is not None
    assert first.status == "FLAGGED"
    assert second is not None
    assert second.reputation is Reputation.CRITICAL
    picks = {router.pick(RECIPIENT).phone_number for _ in range(40)}
    assert picks == set(LINES[2:])
    assert fake.count(LIST) == lists


def test_a_redelivered_event_is_answered_and_not_applied_again(
    served: Served,
) -> None:
    fake, registry = served.fake, served.registry
    fake.set_reputation(LINES[2], "AT_RISK")
    assert fake.wait_for_webhooks(timeout=10)
    version = registry.snapshot().version
    event_id = fake.webhooks[-1].event_id
    fake.redeliver(event_id)
    assert fake.wait_for_webhooks(timeout=10)
    assert fake.webhook_deliveries(event_id) == 2
    assert fake.webhooks[-1].status == 200
    assert registry.snapshot().version == version


def test_released_and_assigned_lines(
    served: Served,
) -> None:
    fake, registry, router = served.fake, served.registry, served.router
    fake.remove_number(LINES[3])
    assert fake.wait_for_webhooks(timeout=10)
    assert registry.snapshot().get(LINES[3]) is None
    assert LINES[3] not in {router.pick(RECIPIENT).phone_number for _ in range(30)}
    lists = fake.count(LIST)
    fake.add_number("+13105550150")
    assert fake.wait_for_webhooks(timeout=10)
    registry.close(timeout=10)  # the background refresh the assignment started
    assert fake.count(LIST) == lists + 1
    assert registry.snapshot().get("+13105550150") is not None


def test_a_forged_post_is_refused_over_http(
    served: Served,
) -> None:
    registry, url = served.registry, served.url
    version = registry.snapshot().version
    body = b'{"event_id": "x", "event_type": "phone_number.released", "data": {}}'
    answer = httpx.post(url, content=body, headers={"webhook-signature": "v1,AAAA"}, timeout=5)
    assert answer.status_code == 401
    assert answer.json()["applied"] is False
    assert httpx.get(url, timeout=5).status_code == 405
    assert registry.snapshot().version == version


def test_a_send_that_fails_later_is_reported_by_its_webhook(served: Served) -> None:
    fake, router, sender = served.fake, served.router, served.sender
    for number in LINES:  # whichever line the create takes, its send fails later
        fake.set_line_behaviour(number, "ineligible-async")
    served.app.gate.clear()  # Linq reports a failure after the send's answer, not before
    sent = sender.create_chat(to=[RECIPIENT], message=MESSAGE)
    assert sent.attempts[-1][1] is Verdict.SUCCESS  # accepted: the failure comes later
    served.app.gate.set()
    # The fake queues the failure once its answer is written, which may be a moment
    # after the SDK has read it: wait for it to be queued, then delivered.
    deadline = threading.Event()
    for _ in range(500):
        if any(w.event_type == "message.failed" for w in fake.webhooks):
            break
        deadline.wait(0.01)
    assert fake.wait_for_webhooks(timeout=10)
    failed = [w for w in fake.webhooks if w.event_type == "message.failed"]
    assert len(failed) == 1
    assert failed[0].status == 200
    reports = [(line, verdict) for line, _, _, verdict in router.reports]
    assert (sent.phone_number, Verdict.LINE_INELIGIBLE) in reports
    assert sent.phone_number in {e.line for e in router.ejections()}
    assert sent.phone_number not in {router.pick(RECIPIENT).phone_number for _ in range(20)}


def test_an_inbound_message_counts_in_the_line_budget(served: Served) -> None:
    fake, router = served.fake, served.router

    def used() -> int:
        return sum(b.used for b in router.budgets() if b.line == LINES[4] and b.kind == "per_line")

    before = used()
    fake.receive_message(LINES[4], "+14155550111", "hello")
    assert fake.wait_for_webhooks(timeout=10)
    assert used() == before + 1


def test_an_event_sent_while_the_receiver_is_down_arrives_on_a_retry() -> None:
    """The first attempts are refused (nothing listens yet); a retry delivers it."""
    with _serving("asgi-uvicorn", [0.2], start=False) as served:
        fake, registry = served.fake, served.registry
        fake.set_reputation(LINES[5], "CRITICAL")
        deadline = threading.Event()
        for _ in range(200):
            if fake.webhook_deliveries() >= 1:
                break
            deadline.wait(0.01)
        assert fake.webhook_deliveries() >= 1
        assert not fake.webhooks[0].delivered
        served.app.start()  # type: ignore[attr-defined]
        assert fake.wait_for_webhooks(timeout=10)
        record = fake.webhooks[0]
        assert record.delivered
        assert record.attempts >= 2
        line = registry.snapshot().get(LINES[5])
        assert line is not None
        assert line.reputation is Reputation.CRITICAL
