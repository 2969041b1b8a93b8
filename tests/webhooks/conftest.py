"""What the webhook tests share: a secret, signed requests, events, a real registry."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import standardwebhooks

from linq_router import LinqClient, Registry, Router
from linq_router.testing import FakeLinqServer

SECRET = "whsec_" + base64.b64encode(b"linq-router webhook test secret!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody else's webhook secret!!").decode()
LINES = [f"+1202555{i:04d}" for i in range(1, 7)]
LIST = "GET /v3/phone_numbers"
NOW = 1_800_000_000.0
"""The receiver's clock in these tests (a Unix time in 2027)."""


def iso(seconds: float) -> str:
    """An RFC 3339 UTC time ``seconds`` after 2026-12-01 12:00."""
    base = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
    return (base + datetime.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def event(event_type: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    """A Linq event body."""
    return json.dumps(
        {
            "api_version": "v3",
            "created_at": iso(0),
            "event_id": event_id or str(uuid.uuid4()),
            "event_type": event_type,
            "partner_id": "partner-test",
            "trace_id": uuid.uuid4().hex,
            "webhook_version": "2026-02-03",
            "data": data,
        }
    ).encode()


def status_event(
    number: str,
    reputation: str = "CRITICAL",
    status: str = "FLAGGED",
    changed_at: float = 0.0,
    event_id: str | None = None,
) -> bytes:
    """A ``phone_number.status_updated`` body."""
    data = {
        "phone_number": number,
        "previous_reputation": "HEALTHY",
        "new_reputation": reputation,
        "previous_status": "ACTIVE",
        "new_status": status,
        "changed_at": iso(changed_at),
    }
    return event("phone_number.status_updated", data, event_id)


def signed(
    body: bytes,
    *,
    secret: str = SECRET,
    timestamp: float = NOW,
    msg_id: str | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed by the package itself."""
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    when = datetime.datetime.fromtimestamp(int(timestamp), tz=datetime.timezone.utc)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def legacy_signed(body: bytes, *, secret: str = SECRET, timestamp: float = NOW) -> dict[str, str]:
    """The older scheme's headers: hex HMAC-SHA256 of "{timestamp}.{body}", keyed as UTF-8."""
    stamp = str(int(timestamp))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Webhook-Timestamp": stamp, "X-Webhook-Signature": digest}


@pytest.fixture
def fake() -> Iterator[FakeLinqServer]:
    """The fake Linq API with six healthy lines."""
    with FakeLinqServer(LINES) as server:
        yield server


@pytest.fixture
def registry(fake: FakeLinqServer) -> Iterator[Registry]:
    """A real registry over the fake, its first list fetched."""
    with LinqClient(fake.api_key, base_url=fake.base_url) as client:
        reg = Registry(client, ttl=3600)
        reg.snapshot()
        yield reg
        reg.close()


@pytest.fixture
def router(registry: Registry) -> Iterator[Router]:
    """A skip-critical, round-robin router over the registry, warmed by one pick."""
    r = Router(registry, policy="skip-critical | round-robin")
    r.pick("+14155550100")
    yield r
    r.close()


def clock() -> float:
    """The receiver's clock: fixed at ``NOW``."""
    return NOW


def wall() -> float:
    """The real wall clock, for tests that sign with it."""
    return time.time()
