"""FakeLinqServer's webhooks over real HTTP: events, signatures, retries, duplicates, counts."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import httpx
import pytest
import standardwebhooks
from linq import types as sdk
from pydantic import BaseModel

from linq_router.testing import DeliveredWebhook, FakeLinqServer
from linq_router.testing._webhook_delivery import WEBHOOK_ATTEMPTS, WEBHOOK_DELAYS
from linq_router.testing._webhook_events import PARTNER_ID

A, B = "+12025551234", "+12025559876"  # the default pool's HEALTHY and AT_RISK lines
A_ID = "550e8400-e29b-41d4-a716-446655440000"
X = "+13125550001"
FAST = [0.01]  # every retry waits 10 ms
ENVELOPE = {
    "api_version",
    "created_at",
    "event_id",
    "event_type",
    "partner_id",
    "trace_id",
    "webhook_version",
    "data",
}


@attrs.frozen
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records requests and answers scripted statuses."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._script: deque[int] = deque()
        self._cond = threading.Condition()
        self.release = threading.Event()
        self.release.set()  # hold() clears it: answers wait until it is set again
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.release.wait(5.0)
                with receiver._cond:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    status = receiver._script.popleft() if receiver._script else 200
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # A short poll keeps shutdown() fast (it waits out one poll).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/linq/webhooks"

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, then 200."""
        with self._cond:
            self._script.extend(statuses)

    def wait_for(self, n: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.received) >= n, timeout)

    def close(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5.0)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def fake(receiver: Receiver) -> Iterator[FakeLinqServer]:
    with FakeLinqServer(webhook_url=receiver.url, webhook_delays=FAST) as server:
        yield server


@pytest.fixture
def client(fake: FakeLinqServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    with httpx.Client(base_url=fake.base_url, headers=headers, timeout=5.0) as c:
        yield c


def verified(fake: FakeLinqServer, request: Received) -> dict[str, Any]:
    """The payload of a request whose Standard Webhooks signature verifies."""
    payload: dict[str, Any] = standardwebhooks.Webhook(fake.webhook_secret).verify(
        request.body, request.headers
    )
    return payload


def strict(model: type[BaseModel], body: bytes) -> Any:
    """The SDK model parsed from ``body``, with no field it does not declare anywhere."""
    event = model.model_validate(json.loads(body))
    _no_extras(event)
    return event


def _no_extras(value: object) -> None:
    if isinstance(value, list):
        for item in value:
            _no_extras(item)
    if isinstance(value, BaseModel):
        assert not value.model_extra, f"{type(value).__name__}: {value.model_extra}"
        for name in type(value).model_fields:
            _no_extras(getattr(value, name))


def delivered(fake: FakeLinqServer, receiver: Receiver, n: int) -> list[Received]:
    """Wait for the fake to finish its deliveries; the receiver's requests (``n`` of them).

    A send's ``message.failed`` is queued only once its answer is written, which may be
    after the client read it: wait (bounded) for the count, then for the queue to drain.
    """
    deadline = time.monotonic() + 5.0
    while len(receiver.received) < n and time.monotonic() < deadline:
        time.sleep(0.005)
    assert fake.wait_for_webhooks(timeout=5.0)
    assert len(receiver.received) == n, receiver.received
    return receiver.received


def free_port() -> int:
    """A port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- events about lines ---------------------------------------------------------------


def test_a_reputation_change_delivers_a_signed_status_updated(
    fake: FakeLinqServer, receiver: Receiver
) -> None:
    """set_reputation POSTs a Standard Webhooks-signed status_updated the SDK parses."""
    fake.set_reputation(A, "CRITICAL")
    (request,) = delivered(fake, receiver, 1)
    payload = verified(fake, request)
    assert set(payload) == ENVELOPE
    assert request.path == "/linq/webhooks"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["webhook-id"] == payload["event_id"]
    assert payload["api_version"] == "v3"
    assert payload["webhook_version"] == "2026-02-03"
    assert payload["partner_id"] == PARTNER_ID
    assert payload["created_at"].endswith("Z")
    assert len(payload["trace_id"]) == 32
    event = strict(sdk.PhoneNumberStatusUpdatedWebhookEvent, request.body)
    assert event.event_type == "phone_number.status_updated"
    data = payload["data"]
    assert set(data) == {
        "phone_number",
        "previous_reputation",
        "new_reputation",
        "previous_status",
        "new_status",
        "changed_at",
    }
    assert (data["phone_number"], data["previous_reputation"], data["new_reputation"]) == (
        A,
        "HEALTHY",
        "CRITICAL",
    )
    assert (data["previous_status"], data["new_status"]) == ("ACTIVE", "ACTIVE")


def test_status_changes_count_an_omitted_status_as_active(
    fake: FakeLinqServer, receiver: Receiver
) -> None:
    """FLAGGED and back: an omitted status reads ACTIVE; successive changed_at order."""
    fake.set_status(B, "FLAGGED")
    fake.set_status(B, None)
    first, second = (r.json()["data"] for r in delivered(fake, receiver, 2))
    assert (first["previous_status"], first["new_status"]) == ("ACTIVE", "FLAGGED")
    assert (second["previous_status"], second["new_status"]) == ("FLAGGED", "ACTIVE")
    assert first["previous_reputation"] == first["new_reputation"] == "AT_RISK"
    assert first["changed_at"] < second["changed_at"]
    for request in receiver.received:
        strict(sdk.PhoneNumberStatusUpdatedWebhookEvent, request.body)


def test_a_setter_that_changes_nothing_sends_no_event(
    fake: FakeLinqServer, receiver: Receiver
) -> None:
    """The same reputation, ACTIVE for an omitted status, the same forwarding: no event."""
    fake.set_reputation(A, "HEALTHY")
    fake.set_status(A, "ACTIVE")  # omitted already reads ACTIVE
    fake.set_forwarding_number(A, None)
    fake.set_forwarding_number(A, "")
    last = fake.deliver_event("test.marker", {})  # everything before it went first
    (request,) = delivered(fake, receiver, 1)
    assert request.json()["event_id"] == last
    assert [w.event_type for w in fake.webhooks] == ["test.marker"]


def test_add_and_remove_deliver_assigned_and_released(
    fake: FakeLinqServer, receiver: Receiver
) -> None:
    """add_number and remove_number deliver phone_number.assigned and .released."""
    fake.add_number("+12025550199")
    fake.remove_number("+12025550199")
    assigned, released = delivered(fake, receiver, 2)
    cases: list[tuple[Received, type[BaseModel], str]] = [
        (assigned, sdk.PhoneNumberAssignedWebhookEvent, "phone_number.assigned"),
        (released, sdk.PhoneNumberReleasedWebhookEvent, "phone_number.released"),
    ]
    for request, model, kind in cases:
        payload = verified(fake, request)
        assert payload["event_type"] == kind
        assert set(payload["data"]) == {"phone_number", "changed_at"}
        assert payload["data"]["phone_number"] == "+12025550199"
        strict(model, request.body)


def test_forwarding_changes_deliver_forwarding_updated(
    fake: FakeLinqServer, receiver: Receiver, client: httpx.Client
) -> None:
    """set_forwarding_number and a PUT that changes it deliver the change, from and to."""
    fake.set_forwarding_number(A, "+14155550100")
    response = client.put(f"/v3/phone_numbers/{A_ID}", json={"forwarding_number": None})
    assert response.status_code == 200
    again = client.put(f"/v3/phone_numbers/{A_ID}", json={"forwarding_number": ""})
    assert again.status_code == 200  # cleared already: no event
    first, second = delivered(fake, receiver, 2)
    data = first.json()["data"]
    assert data == {
        "summary": "Forwarding number updated",
        "occurred_at": data["occurred_at"],
        "actor": {"type": "api"},
        "origin": "api",
        "phone_number": A,
        "change": {"from": None, "to": "+14155550100"},
    }
    assert second.json()["data"]["change"] == {"from": "+14155550100", "to": None}
    for request in (first, second):
        assert verified(fake, request)["event_type"] == "phone_number.forwarding_updated"
        strict(sdk.PhoneNumberForwardingUpdatedWebhookEvent, request.body)


# -- events about messages ------------------------------------------------------------


@pytest.mark.parametrize(("failed_code", "expected"), [(None, 2027), (4005, 4005)])
def test_an_ineligible_async_line_accepts_then_fails_the_send(
    fake: FakeLinqServer,
    receiver: Receiver,
    client: httpx.Client,
    failed_code: int | None,
    expected: int,
) -> None:
    """The send is accepted as usual; a message.failed naming its chat and message follows."""
    fake.set_line_behaviour(A, "ineligible-async", failed_code=failed_code)
    body = {"from": A, "to": [X], "message": {"parts": [{"type": "text", "value": "hi"}]}}
    response = client.post("/v3/chats", json=body)
    assert response.status_code == 201
    chat = response.json()["chat"]
    follow_up = client.post(
        f"/v3/chats/{chat['id']}/messages",
        json={"message": {"parts": [{"type": "text", "value": "again"}]}},
    )
    assert follow_up.status_code == 202
    assert fake.send_count(A) == 2
    first, second = delivered(fake, receiver, 2)
    data = verified(fake, first)["data"]
    assert data == {
        "code": expected,
        "failed_at": data["failed_at"],
        "chat_id": chat["id"],
        "message_id": chat["message"]["id"],
        "reason": data["reason"],
        "service": "iMessage",
    }
    assert second.json()["data"]["message_id"] == follow_up.json()["message"]["id"]
    event = strict(sdk.MessageFailedWebhookEvent, first.body)
    assert event.event_type == "message.failed"


def test_failed_code_goes_with_ineligible_async_only(fake: FakeLinqServer) -> None:
    """A failed_code with another behaviour is refused; "ok" ends the async failures."""
    with pytest.raises(ValueError, match="failed_code"):
        fake.set_line_behaviour(A, "ineligible", failed_code=4005)
    fake.set_line_behaviour(A, "ineligible-async")
    fake.set_line_behaviour(A, "ok")
    with httpx.Client(base_url=fake.base_url, timeout=5.0) as http:
        body = {"from": A, "to": [X], "message": {"parts": [{"type": "text", "value": "hi"}]}}
        headers = {"Authorization": f"Bearer {fake.api_key}"}
        assert http.post("/v3/chats", json=body, headers=headers).status_code == 201
    assert fake.wait_for_webhooks(timeout=5.0)
    assert fake.webhooks == []


def test_receive_message_delivers_message_received_on_the_chat(
    fake: FakeLinqServer, receiver: Receiver, client: httpx.Client
) -> None:
    """An inbound message in the 2026-02-03 format, on the direct chat a send created."""
    body = {"from": A, "to": [X], "message": {"parts": [{"type": "text", "value": "hi"}]}}
    chat_id = client.post("/v3/chats", json=body).json()["chat"]["id"]
    event_id = fake.receive_message(A, X, "hello back")
    other = fake.receive_message(A_ID, "+13125550002", chat_id="chat-7")
    first, second = delivered(fake, receiver, 2)
    payload = verified(fake, first)
    assert payload["event_id"] == event_id
    assert payload["event_type"] == "message.received"
    data = payload["data"]
    assert data["direction"] == "inbound"
    assert data["parts"] == [{"type": "text", "value": "hello back"}]
    assert data["sender_handle"]["handle"] == X
    assert data["service"] == "iMessage"
    assert data["chat"]["id"] == chat_id
    assert data["chat"]["is_group"] is False
    assert data["chat"]["health_status"]["status"] == "HEALTHY"
    assert data["chat"]["owner_handle"]["handle"] == A
    assert data["chat"]["owner_handle"]["is_me"] is True
    event = strict(sdk.MessageReceivedWebhookEvent, first.body)
    assert event.data.chat.owner_handle is not None
    assert second.json()["event_id"] == other
    assert second.json()["data"]["chat"]["id"] == "chat-7"
    assert second.json()["data"]["parts"] == [{"type": "text", "value": "hi"}]


def test_receive_message_refuses_an_unknown_line_or_handle(fake: FakeLinqServer) -> None:
    """The line must be one of the fake's; the sender an E.164 number or an email."""
    with pytest.raises(KeyError):
        fake.receive_message("+19995550000", X)
    with pytest.raises(ValueError, match="handle"):
        fake.receive_message(A, "not a handle")
    assert fake.webhooks == []


def test_deliver_event_sends_any_event_in_the_envelope(
    fake: FakeLinqServer, receiver: Receiver
) -> None:
    """deliver_event wraps any data in the envelope and returns the event id."""
    event_id = fake.deliver_event("chat.typing_indicator_started", {"chat_id": "c1"})
    (request,) = delivered(fake, receiver, 1)
    payload = verified(fake, request)
    assert payload["event_id"] == event_id
    assert payload["event_type"] == "chat.typing_indicator_started"
    assert payload["data"] == {"chat_id": "c1"}


def test_events_go_out_in_order_from_the_delivery_thread(
    fake: FakeLinqServer, receiver: Receiver
) -> None:
    """Setters return while the receiver holds an answer; events then arrive in order."""
    receiver.release.clear()
    ids = [fake.deliver_event("test.n", {"n": n}) for n in range(3)]
    fake.set_reputation(A, "AT_RISK")  # returns though the first POST is still held
    assert not fake.wait_for_webhooks(timeout=0.05)
    receiver.release.set()
    requests = delivered(fake, receiver, 4)
    assert [r.json()["event_id"] for r in requests[:3]] == ids
    assert requests[3].json()["event_type"] == "phone_number.status_updated"


# -- signing --------------------------------------------------------------------------


def test_the_legacy_scheme_signs_timestamp_dot_body_in_hex(receiver: Receiver) -> None:
    """Legacy: X-Webhook-Timestamp and a hex HMAC-SHA256 keyed with the secret string."""
    secret = "legacy-secret"
    with FakeLinqServer(
        webhook_url=receiver.url, webhook_secret=secret, webhook_scheme="legacy"
    ) as fake:
        fake.set_reputation(A, "CRITICAL")
        (request,) = delivered(fake, receiver, 1)
    timestamp = request.headers["X-Webhook-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(
        secret.encode(), f"{timestamp}.{request.body.decode()}".encode(), hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(request.headers["X-Webhook-Signature"], expected)
    assert "webhook-signature" not in {k.lower() for k in request.headers}
    strict(sdk.PhoneNumberStatusUpdatedWebhookEvent, request.body)


def test_timestamps_come_from_the_wall_clock(receiver: Receiver) -> None:
    """The signed timestamp (whole seconds) and the event's times read wall_clock."""
    at = 1_800_000_000.25
    with FakeLinqServer(webhook_url=receiver.url, wall_clock=lambda: at) as fake:
        fake.set_reputation(A, "CRITICAL")
        (request,) = delivered(fake, receiver, 1)
        secret = fake.webhook_secret
    assert request.headers["webhook-timestamp"] == "1800000000"
    moment = datetime.fromtimestamp(1_800_000_000, tz=timezone.utc)
    signature = standardwebhooks.Webhook(secret).sign(
        request.headers["webhook-id"], moment, request.body.decode()
    )
    assert request.headers["webhook-signature"] == signature
    payload = request.json()
    assert payload["created_at"] == payload["data"]["changed_at"] == "2027-01-15T08:00:00.250000Z"


def test_a_given_secret_signs_and_a_bad_one_is_refused_without_showing_it(
    receiver: Receiver,
) -> None:
    """webhook_secret is used as given; an unusable one is a ValueError that hides it."""
    secret = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHM="
    with FakeLinqServer(webhook_url=receiver.url, webhook_secret=secret) as fake:
        assert fake.webhook_secret == secret
        fake.deliver_event("test.ping", {})
        (request,) = delivered(fake, receiver, 1)
        verified(fake, request)
        assert secret not in repr(fake)
        assert "c2VjcmV0" not in repr(fake.webhooks)
    for bad in ["", "whsec_"]:
        with pytest.raises(ValueError, match="webhook_secret") as error:
            FakeLinqServer(webhook_url=receiver.url, webhook_secret=bad)
        assert "whsec_" not in str(error.value).replace("'whsec_'", "")


def test_the_default_secret_is_a_fixed_whsec_key() -> None:
    """Every fake signs with the same whsec_ test key unless given another."""
    first, second = FakeLinqServer(), FakeLinqServer()
    assert first.webhook_secret == second.webhook_secret
    assert first.webhook_secret.startswith("whsec_")
    standardwebhooks.Webhook(first.webhook_secret)  # a valid key


# -- retries --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_5xx_or_429_is_retried_with_the_same_event(
    fake: FakeLinqServer, receiver: Receiver, status: int
) -> None:
    """Two failed answers, then 200: three attempts, one event id and body, each signed."""
    receiver.answer(status, status)
    event_id = fake.deliver_event("test.retried", {"n": 1})
    requests = delivered(fake, receiver, 3)
    assert {r.headers["webhook-id"] for r in requests} == {event_id}
    assert len({r.body for r in requests}) == 1
    for request in requests:
        verified(fake, request)
    (record,) = fake.webhooks
    assert record == DeliveredWebhook(event_id, "test.retried", requests[0].body, 3, 200, True)
    assert fake.webhook_deliveries(event_id) == 3


def test_a_failing_endpoint_is_given_up_on_after_10_attempts(
    fake: FakeLinqServer, receiver: Receiver
) -> None:
    """500 every time: 10 attempts, then the next event goes out."""
    receiver.answer(*[500] * WEBHOOK_ATTEMPTS)
    failing = fake.deliver_event("test.failing", {})
    after = fake.deliver_event("test.after", {})
    delivered(fake, receiver, WEBHOOK_ATTEMPTS + 1)
    given_up, ok = fake.webhooks
    assert (given_up.attempts, given_up.status, given_up.delivered) == (10, 500, False)
    assert (ok.event_id, ok.attempts, ok.delivered) == (after, 1, True)
    assert fake.webhook_deliveries(failing) == 10
    assert fake.webhook_deliveries() == 11


def test_a_refused_connection_is_retried_then_given_up(receiver: Receiver) -> None:
    """Nothing listening: 10 attempts with no status, delivered False."""
    url = f"http://127.0.0.1:{free_port()}/hooks"
    with FakeLinqServer(webhook_url=url, webhook_delays=[0]) as fake:
        event_id = fake.deliver_event("test.refused", {})
        assert fake.wait_for_webhooks(timeout=5.0)
        (record,) = fake.webhooks
    assert (record.event_id, record.attempts, record.status) == (event_id, 10, None)
    assert record.delivered is False


def test_a_4xx_other_than_429_is_not_retried(fake: FakeLinqServer, receiver: Receiver) -> None:
    """A 400 ends the delivery at once; the next event still goes out."""
    receiver.answer(400)
    rejected = fake.deliver_event("test.rejected", {})
    fake.deliver_event("test.next", {})
    delivered(fake, receiver, 2)
    first, second = fake.webhooks
    assert (first.event_id, first.attempts, first.status, first.delivered) == (
        rejected,
        1,
        400,
        False,
    )
    assert second.delivered


def test_each_delay_is_the_wait_before_the_next_attempt_and_the_last_repeats(
    receiver: Receiver,
) -> None:
    """delays [0, 60]: attempt 2 at once, attempt 3 only after 60 s (stop cuts that short)."""
    receiver.answer(*[500] * WEBHOOK_ATTEMPTS)
    with FakeLinqServer(webhook_url=receiver.url, webhook_delays=[0, 60]) as fake:
        fake.deliver_event("test.slow", {})
        assert receiver.wait_for(2)
        assert not fake.wait_for_webhooks(timeout=0.1)
        assert len(receiver.received) == 2
        assert fake.webhook_deliveries() == 2


def test_stop_during_a_long_backoff_returns_at_once(receiver: Receiver) -> None:
    """stop() interrupts a 10-minute wait between attempts."""
    receiver.answer(500)
    fake = FakeLinqServer(webhook_url=receiver.url, webhook_delays=[600]).start()
    fake.deliver_event("test.backoff", {})
    assert receiver.wait_for(1)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1.0
    (record,) = fake.webhooks
    assert (record.attempts, record.status, record.delivered) == (1, 500, False)


def test_a_delivery_cut_short_by_stop_resumes_on_start(receiver: Receiver) -> None:
    """After stop() in a backoff, start() tries the same event again at once."""
    receiver.answer(500)
    fake = FakeLinqServer(webhook_url=receiver.url, webhook_delays=[600]).start()
    try:
        event_id = fake.deliver_event("test.resumed", {})
        assert receiver.wait_for(1)
        fake.stop()
        fake.start()
        second = delivered(fake, receiver, 2)[1]
    finally:
        fake.stop()
    assert second.headers["webhook-id"] == event_id
    (record,) = fake.webhooks
    assert (record.attempts, record.status, record.delivered) == (2, 200, True)


def test_the_default_delays_span_about_25_minutes() -> None:
    """Linq-like defaults: nine waits between ten attempts, about 25 minutes in all."""
    assert len(WEBHOOK_DELAYS) == WEBHOOK_ATTEMPTS - 1
    assert list(WEBHOOK_DELAYS) == sorted(WEBHOOK_DELAYS)
    assert 23 * 60 <= sum(WEBHOOK_DELAYS) <= 27 * 60


# -- duplicates, counts, lifecycle ----------------------------------------------------


def test_redeliver_sends_the_same_event_again(fake: FakeLinqServer, receiver: Receiver) -> None:
    """A redelivery has the event's id and body, and is a delivery of its own."""
    fake.set_reputation(A, "CRITICAL")
    assert fake.wait_for_webhooks(timeout=5.0)
    (original,) = fake.webhooks
    fake.redeliver(original.event_id)
    first, again = delivered(fake, receiver, 2)
    assert first.body == again.body
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == original.event_id
    verified(fake, again)
    assert [w.event_id for w in fake.webhooks] == [original.event_id] * 2
    assert fake.webhook_deliveries(original.event_id) == 2
    with pytest.raises(KeyError):
        fake.redeliver("no-such-event")


def test_counts_by_event_id_and_type(fake: FakeLinqServer, receiver: Receiver) -> None:
    """webhook_deliveries counts attempts, all of them or by event id or type."""
    receiver.answer(500)
    fake.set_reputation(A, "CRITICAL")
    fake.add_number("+12025550199")
    ping = fake.deliver_event("test.ping", {})
    delivered(fake, receiver, 4)
    assert fake.webhook_deliveries() == 4
    assert fake.webhook_deliveries(event_type="phone_number.status_updated") == 2
    assert fake.webhook_deliveries(event_type="phone_number.assigned") == 1
    assert fake.webhook_deliveries(ping) == 1
    assert fake.webhook_deliveries(ping, event_type="test.other") == 0
    assert "body" not in repr(fake.webhooks[0])
    assert all(isinstance(w, DeliveredWebhook) for w in fake.webhooks)


def test_events_queued_before_start_go_out_after_it(receiver: Receiver) -> None:
    """A change made before start() is delivered once the fake runs."""
    fake = FakeLinqServer(webhook_url=receiver.url)
    fake.set_reputation(A, "CRITICAL")
    assert not fake.wait_for_webhooks(timeout=0.01)
    with fake:
        delivered(fake, receiver, 1)


def test_without_a_webhook_url_nothing_is_delivered() -> None:
    """No webhook_url: setters work, nothing is queued, deliver_event says why it cannot."""
    with FakeLinqServer() as fake:
        fake.set_reputation(A, "CRITICAL")
        assert fake.webhook_url is None
        assert fake.webhooks == []
        assert fake.wait_for_webhooks(timeout=0.01)
        assert fake.webhook_deliveries() == 0
        with pytest.raises(RuntimeError, match="webhook_url"):
            fake.deliver_event("test.ping", {})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"webhook_url": "ftp://example.com/hooks"}, "webhook_url"),
        ({"webhook_url": "/relative"}, "webhook_url"),
        ({"webhook_url": "http://x", "webhook_delays": []}, "webhook_delays"),
        ({"webhook_url": "http://x", "webhook_delays": [-1]}, "webhook_delays"),
        ({"webhook_url": "http://x", "webhook_delays": [float("inf")]}, "webhook_delays"),
        ({"webhook_url": "http://x", "webhook_scheme": "svix"}, "webhook_scheme"),
    ],
)
def test_bad_webhook_arguments_are_refused(kwargs: dict[str, Any], match: str) -> None:
    """A URL that is not absolute http(s), bad delays or an unknown scheme: ValueError."""
    with pytest.raises(ValueError, match=match):
        FakeLinqServer(**kwargs)
