"""Rules that hold for every request: rejections change nothing, events apply once."""

from __future__ import annotations

import collections
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linq_router import LinqClient, Registry
from linq_router._fleet_registry import follow
from linq_router.state._board import LocalBoard
from linq_router.testing import FakeLinqServer
from linq_router.webhooks import WebhookReceiver

from .conftest import LINES, NOW, SECRET, clock, event, legacy_signed, signed, status_event

_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def pool() -> Iterator[Registry]:
    """One registry over the fake for the whole module: these tests never change it."""
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as client:
        reg = Registry(client, ttl=3600)
        reg.snapshot()
        yield reg


header_names = st.sampled_from(
    [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-webhook-signature",
        "x-webhook-timestamp",
        "content-type",
        "Webhook-Signature",
    ]
)


@_SETTINGS
@given(
    headers=st.dictionaries(st.one_of(header_names, st.text(max_size=20)), st.text(max_size=80)),
    body=st.one_of(st.binary(max_size=300), st.just(status_event(LINES[0]))),
)
def test_any_unsigned_request_is_rejected_and_changes_nothing(
    pool: Registry, headers: dict[str, str], body: bytes
) -> None:
    receiver = WebhookReceiver(pool, secret=SECRET, max_body=250, clock=clock)
    version = pool.snapshot().version
    result = receiver.handle(headers, body)
    assert result.status in (401, 413)
    assert not result.applied
    assert pool.snapshot().version == version


def _mutations() -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            "flip-body",
            "truncate-body",
            "extend-body",
            "stale",
            "future",
            "flip-signature",
            "other-id",
            "drop-header",
            "legacy-flip",
            "legacy-stale",
        ]
    )


@_SETTINGS
@given(mutation=_mutations(), where=st.integers(0, 10_000), line=st.sampled_from(LINES))
def test_a_tampered_request_is_401_and_changes_nothing(
    pool: Registry, mutation: str, where: int, line: str
) -> None:
    receiver = WebhookReceiver(pool, secret=SECRET, clock=clock)
    body = status_event(line)
    headers = legacy_signed(body) if mutation.startswith("legacy") else signed(body)
    i = where % len(body)
    if mutation in ("flip-body", "legacy-flip"):
        body = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
    elif mutation == "truncate-body":
        body = body[:i]
    elif mutation == "extend-body":
        body = body + b" "
    elif mutation == "stale":
        headers = signed(body, timestamp=NOW - 301 - where)
    elif mutation == "future":
        headers = signed(body, timestamp=NOW + 301 + where)
    elif mutation == "legacy-stale":
        headers = legacy_signed(body, timestamp=NOW - 301 - where)
    elif mutation == "flip-signature":
        sig = headers["webhook-signature"]
        # Inside the base64, before its last character: that one carries 2 bits and 4
        # unused ones, so some swaps there decode to the same bytes (the same signature).
        j = 3 + where % (len(sig) - 5)
        swapped = "A" if sig[j] != "A" else "B"
        headers = {**headers, "webhook-signature": sig[:j] + swapped + sig[j + 1 :]}
    elif mutation == "other-id":
        headers = {**headers, "webhook-id": headers["webhook-id"] + "x"}
    elif mutation == "drop-header":
        name = sorted(headers)[where % len(headers)]
        if name == "content-type":
            name = "webhook-signature"
        headers = {k: v for k, v in headers.items() if k != name}
    version = pool.snapshot().version
    result = receiver.handle(headers, body)
    assert result.status == 401, result
    assert pool.snapshot().version == version


@_SETTINGS
@given(body=st.binary(min_size=1, max_size=400))
def test_a_signed_body_that_is_not_an_event_is_400_and_changes_nothing(
    pool: Registry, body: bytes
) -> None:
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return  # not UTF-8: no signature can match it (covered by the 401 tests)
    receiver = WebhookReceiver(pool, secret=SECRET, clock=clock)
    version = pool.snapshot().version
    result = receiver.handle(signed(text.encode()), text.encode())
    # Almost any text is no event; the rare one that is a JSON object with a string
    # event_id and event_type of a kind not acted on is answered 200, unapplied.
    assert result.status in (200, 400)
    assert not result.applied
    assert pool.snapshot().version == version


@settings(max_examples=60, deadline=None)
@given(
    changes=st.lists(
        st.tuples(
            st.sampled_from(LINES[:3]),
            st.sampled_from(["HEALTHY", "AT_RISK", "CRITICAL"]),
            st.sampled_from(["ACTIVE", "FLAGGED"]),
        ),
        min_size=1,
        max_size=8,
    ),
    deliveries=st.lists(st.integers(0, 7), min_size=1, max_size=30),
    legacy=st.booleans(),
)
def test_every_event_is_applied_at_most_once_whatever_the_duplicates(
    changes: list[tuple[str, str, str]], deliveries: list[int], legacy: bool
) -> None:
    """Events (each at its own time) delivered with repeats, in any order."""
    bodies = [
        status_event(number, rep, status, changed_at=float(i), event_id=f"evt-{i}")
        for i, (number, rep, status) in enumerate(changes)
    ]
    order = [d % len(bodies) for d in deliveries]
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as client:
        registry = Registry(client, ttl=3600)
        registry.snapshot()
        lists = fake.count("GET /v3/phone_numbers")
        receiver = WebhookReceiver(registry, secret=SECRET, clock=clock)
        applied: collections.Counter[str] = collections.Counter()
        newest: dict[str, int] = {}
        for k in order:
            body = bodies[k]
            headers = legacy_signed(body) if legacy else signed(body)
            result = receiver.handle(headers, body)
            assert result.status == 200
            if result.applied:
                applied[result.event_id or ""] += 1
                number = changes[k][0]
                # Applied only when no newer change of that line was applied before it.
                assert k >= newest.get(number, -1)
                newest[number] = k
        assert all(count == 1 for count in applied.values())
        for number, k in newest.items():
            line = registry.snapshot().get(number)
            assert line is not None
            assert (line.reputation.value, line.status) == changes[k][1:]
        assert fake.count("GET /v3/phone_numbers") == lists


def test_an_ignored_type_is_remembered_too() -> None:
    """A repeat of an event type not acted on is still a repeat."""
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as client:
        registry = Registry(client, ttl=3600)
        registry.snapshot()
        receiver = WebhookReceiver(registry, secret=SECRET, clock=clock)
        body = event("message.delivered", {"id": "m"}, "evt-x")
        assert receiver.handle(signed(body), body).reason != "a repeat: applied before"
        assert receiver.handle(signed(body), body).reason == "a repeat: applied before"


@settings(max_examples=40, deadline=None)
@given(
    changes=st.lists(
        st.tuples(
            st.sampled_from(LINES[:3]),
            st.sampled_from(["HEALTHY", "AT_RISK", "CRITICAL"]),
            st.sampled_from(["ACTIVE", "FLAGGED"]),
        ),
        min_size=1,
        max_size=8,
    ),
    deliveries=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 1)), min_size=1, max_size=30),
)
def test_a_fleet_on_one_board_applies_each_event_once_and_its_registries_agree(
    changes: list[tuple[str, str, str]], deliveries: list[tuple[int, int]]
) -> None:
    """Two processes' receivers and registries on one board: repeats to either, any order."""
    bodies = [
        status_event(number, rep, status, changed_at=float(i), event_id=f"evt-{i}")
        for i, (number, rep, status) in enumerate(changes)
    ]
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as client:
        registries = [Registry(client, ttl=3600) for _ in range(2)]
        for registry in registries:
            registry.snapshot()
        lists = fake.count("GET /v3/phone_numbers")
        board = LocalBoard()
        stops = [follow(registry, board) for registry in registries]
        receivers = [
            WebhookReceiver(r, secret=SECRET, clock=clock, state=board) for r in registries
        ]
        applied: collections.Counter[str] = collections.Counter()
        newest: dict[str, int] = {}
        for at, to in deliveries:
            k = at % len(bodies)
            result = receivers[to].handle(signed(bodies[k]), bodies[k])
            assert result.status == 200
            if result.applied:
                applied[result.event_id or ""] += 1
            number = changes[k][0]
            newest[number] = max(newest.get(number, -1), k)
        assert all(count == 1 for count in applied.values())
        for number, k in newest.items():
            for registry in registries:  # each has the newest change delivered, wherever
                line = registry.snapshot().get(number)
                assert line is not None
                assert (line.reputation.value, line.status) == changes[k][1:]
        assert fake.count("GET /v3/phone_numbers") == lists
        for stop in stops:
            assert stop is not None
            stop()
