"""WebhookReceiver: verification, statuses, dedup and what each event does."""

from __future__ import annotations

import asyncio
import logging

import pytest

from linq_router import AsyncLinqClient, AsyncRegistry, AsyncRouter, Registry, Reputation, Router
from linq_router.pacing import Pacing
from linq_router.testing import FakeLinqServer
from linq_router.webhooks import SECRET_VARIABLE, WebhookReceiver, WebhookResult

from .conftest import (
    LINES,
    LIST,
    NOW,
    OTHER_SECRET,
    SECRET,
    clock,
    event,
    iso,
    legacy_signed,
    signed,
    status_event,
)


@pytest.fixture
def receiver(registry: Registry, router: Router) -> WebhookReceiver:
    return WebhookReceiver(registry, router=router, secret=SECRET, clock=clock)


# -- construction ---------------------------------------------------------------------


def test_a_missing_secret_names_the_variable(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_VARIABLE, raising=False)
    with pytest.raises(ValueError, match="LINQ_WEBHOOK_SECRET"):
        WebhookReceiver(registry)


def test_the_secret_comes_from_the_environment(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, SECRET)
    receiver = WebhookReceiver(registry, clock=clock)
    body = status_event(LINES[0])
    assert receiver.handle(signed(body), body).status == 200


def test_the_secret_is_never_shown(registry: Registry) -> None:
    receiver = WebhookReceiver(registry, secret=SECRET, clock=clock)
    key = SECRET.removeprefix("whsec_")
    assert key not in repr(receiver)
    assert "whsec_" not in repr(receiver)
    with pytest.raises(ValueError, match="whsec_") as caught:
        WebhookReceiver(registry, secret="whsec_zqxjk")  # five base64 characters decode to nothing
    assert "zqxjk" not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"tolerance": 0}, ValueError, "tolerance"),
        ({"dedup_size": 0}, ValueError, "dedup_size"),
        ({"max_body": "big"}, TypeError, "max_body"),
        ({"clock": 5}, TypeError, "clock"),
        ({"router": object()}, TypeError, "router"),
        ({"sender": object()}, TypeError, "sender"),
    ],
)
def test_bad_arguments_are_named(
    registry: Registry, kwargs: dict[str, object], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        WebhookReceiver(registry, secret=SECRET, **kwargs)  # type: ignore[arg-type]


def test_a_registry_that_cannot_amend_is_refused() -> None:
    with pytest.raises(TypeError, match="registry must be a Registry"):
        WebhookReceiver(object(), secret=SECRET)


# -- statuses -------------------------------------------------------------------------


def test_status_updated_is_applied_and_the_next_pick_avoids_the_line(
    receiver: WebhookReceiver, registry: Registry, router: Router, fake: FakeLinqServer
) -> None:
    lists = fake.count(LIST)
    version = registry.snapshot().version
    body = status_event(LINES[0], "CRITICAL", "FLAGGED")
    result = receiver.handle(signed(body), body)
    assert result.status == 200
    assert result.applied
    assert result.event_type == "phone_number.status_updated"
    line = registry.snapshot().get(LINES[0])
    assert line is not None
    assert (line.reputation, line.status) == (Reputation.CRITICAL, "FLAGGED")
    assert registry.snapshot().version != version
    picks = {router.pick("+14155550100").phone_number for _ in range(30)}
    assert LINES[0] not in picks
    assert picks == set(LINES[1:])
    assert fake.count(LIST) == lists


def test_a_repeat_is_answered_200_and_not_applied(
    receiver: WebhookReceiver, registry: Registry
) -> None:
    body = status_event(LINES[0], "AT_RISK", "ACTIVE")
    first = receiver.handle(signed(body), body)
    version = registry.snapshot().version
    again = receiver.handle(signed(body), body)  # Linq's retry: same event, signed afresh
    assert first.applied
    assert (again.status, again.applied, again.event_id) == (200, False, first.event_id)
    assert registry.snapshot().version == version


def test_the_legacy_scheme_is_accepted(receiver: WebhookReceiver, registry: Registry) -> None:
    body = status_event(LINES[1], "CRITICAL", "ACTIVE")
    result = receiver.handle(legacy_signed(body), body)
    assert (result.status, result.applied) == (200, True)
    assert registry.snapshot().get(LINES[1]).reputation is Reputation.CRITICAL  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "forge",
    [
        lambda body: signed(body, secret=OTHER_SECRET),
        lambda body: legacy_signed(body, secret=OTHER_SECRET),
        lambda body: {**signed(body), "webhook-signature": "v1,AAAA"},
        lambda body: {
            **signed(body),
            "webhook-signature": "v2," + signed(body)["webhook-signature"][3:],
        },
        lambda body: {k: v for k, v in signed(body).items() if k != "webhook-signature"},
        lambda body: {k: v for k, v in signed(body).items() if k != "webhook-timestamp"},
        lambda body: {**signed(body), "webhook-timestamp": "soon"},
        lambda body: signed(body, timestamp=NOW - 301),
        lambda body: signed(body, timestamp=NOW + 301),
        lambda body: legacy_signed(body, timestamp=NOW - 3600),
        lambda body: {"content-type": "application/json"},
    ],
)
def test_forged_or_stale_requests_are_401_and_change_nothing(
    receiver: WebhookReceiver, registry: Registry, forge: object
) -> None:
    body = status_event(LINES[0])
    version = registry.snapshot().version
    result = receiver.handle(forge(body), body)  # type: ignore[operator]
    assert result.status == 401
    assert not result.applied
    assert registry.snapshot().version == version


def test_a_truncated_body_fails_its_signature(
    receiver: WebhookReceiver, registry: Registry
) -> None:
    body = status_event(LINES[0])
    version = registry.snapshot().version
    assert receiver.handle(signed(body), body[:-10]).status == 401
    assert registry.snapshot().version == version


def test_a_timestamp_within_tolerance_passes(registry: Registry) -> None:
    receiver = WebhookReceiver(registry, secret=SECRET, tolerance=10, clock=clock)
    body = status_event(LINES[0])
    assert receiver.handle(signed(body, timestamp=NOW - 10), body).status == 200
    body = status_event(LINES[1])
    assert receiver.handle(signed(body, timestamp=NOW - 11), body).status == 401


def test_an_oversized_body_is_413(registry: Registry) -> None:
    receiver = WebhookReceiver(registry, secret=SECRET, max_body=100, clock=clock)
    body = status_event(LINES[0])
    assert len(body) > 100
    assert receiver.handle(signed(body), body).status == 413


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"event_type": "phone_number.status_updated"}',
        event("phone_number.status_updated", {"phone_number": "+12025550001"}),
        event("phone_number.status_updated", {**{"phone_number": "12"}, "new_reputation": "X"}),
        event("phone_number.released", {"phone_number": LINES[0], "changed_at": "yesterday"}),
        event("message.failed", {"code": "2027", "failed_at": iso(0)}),
        event("phone_number.forwarding_updated", {"phone_number": LINES[0]}),
        event("message.received", {"chat": {"is_group": False}}),
        event("phone_number.assigned", []),  # type: ignore[arg-type]
    ],
)
def test_a_signed_body_that_is_no_linq_event_is_400(
    receiver: WebhookReceiver, registry: Registry, body: bytes
) -> None:
    version = registry.snapshot().version
    result = receiver.handle(signed(body), body)
    assert result.status == 400
    assert not result.applied
    assert registry.snapshot().version == version


def test_an_unknown_event_type_is_200_and_logged_at_debug(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    body = event("reaction.added", {"anything": 1})
    with caplog.at_level(logging.DEBUG, logger="linq_router"):
        result = receiver.handle(signed(body), body)
    assert (result.status, result.applied, result.event_type) == (200, False, "reaction.added")
    assert any(
        r.levelno == logging.DEBUG and "reaction.added" in r.getMessage() for r in caplog.records
    )


def test_an_older_status_event_is_ignored(receiver: WebhookReceiver, registry: Registry) -> None:
    newer = status_event(LINES[0], "CRITICAL", "FLAGGED", changed_at=60)
    older = status_event(LINES[0], "HEALTHY", "ACTIVE", changed_at=30)
    assert receiver.handle(signed(newer), newer).applied
    result = receiver.handle(signed(older), older)
    assert (result.status, result.applied) == (200, False)
    assert "older" in result.reason
    assert registry.snapshot().get(LINES[0]).status == "FLAGGED"  # type: ignore[union-attr]


def test_headers_as_pairs_of_bytes(receiver: WebhookReceiver) -> None:
    body = status_event(LINES[2])
    pairs = [(k.encode(), v.encode()) for k, v in signed(body).items()]
    assert receiver.handle(pairs, body).status == 200


# -- line membership and forwarding -----------------------------------------------------


def test_released_removes_the_line_at_once(
    receiver: WebhookReceiver, registry: Registry, router: Router, fake: FakeLinqServer
) -> None:
    lists = fake.count(LIST)
    body = event("phone_number.released", {"phone_number": LINES[0], "changed_at": iso(5)})
    result = receiver.handle(signed(body), body)
    assert result.applied
    assert registry.snapshot().get(LINES[0]) is None
    assert LINES[0] not in {router.pick("+14155550100").phone_number for _ in range(20)}
    assert fake.count(LIST) == lists
    # An assignment older than the release, arriving late, does not undo it.
    late = event("phone_number.assigned", {"phone_number": LINES[0], "changed_at": iso(1)})
    assert not receiver.handle(signed(late), late).applied


def test_assigned_refreshes_in_the_background(
    receiver: WebhookReceiver, registry: Registry, fake: FakeLinqServer
) -> None:
    lists = fake.count(LIST)
    fake.add_number("+13105550123")
    body = event("phone_number.assigned", {"phone_number": "+13105550123", "changed_at": iso(1)})
    result = receiver.handle(signed(body), body)
    assert result.applied
    registry.close(timeout=10)  # the background refresh has landed
    assert fake.count(LIST) == lists + 1
    assert registry.snapshot().get("+13105550123") is not None


def test_forwarding_updated_amends_the_forwarding_number(
    receiver: WebhookReceiver, registry: Registry
) -> None:
    data = {
        "summary": "Forwarding number updated",
        "occurred_at": iso(3),
        "actor": {"type": "api"},
        "origin": "api",
        "phone_number": LINES[3],
        "change": {"from": None, "to": "+13125550000"},
    }
    body = event("phone_number.forwarding_updated", data)
    assert receiver.handle(signed(body), body).applied
    assert registry.snapshot().get(LINES[3]).forwarding_number == "+13125550000"  # type: ignore[union-attr]
    cleared = event(
        "phone_number.forwarding_updated",
        {**data, "occurred_at": iso(4), "change": {"from": "+13125550000", "to": None}},
    )
    assert receiver.handle(signed(cleared), cleared).applied
    assert registry.snapshot().get(LINES[3]).forwarding_number is None  # type: ignore[union-attr]


def test_a_status_for_an_unknown_line_refreshes(
    receiver: WebhookReceiver, registry: Registry, fake: FakeLinqServer
) -> None:
    lists = fake.count(LIST)
    body = status_event("+13105550777")
    result = receiver.handle(signed(body), body)
    assert (result.status, result.applied) == (200, False)
    registry.close(timeout=10)
    assert fake.count(LIST) == lists + 1


# -- sends ----------------------------------------------------------------------------


def test_message_received_counts_in_the_daily_budget(
    registry: Registry, receiver: WebhookReceiver, router: Router
) -> None:
    def used() -> int:
        return sum(b.used for b in router.budgets() if b.line == LINES[4] and b.kind == "per_line")

    before = used()
    body = event(
        "message.received",
        {
            "id": "m-1",
            "direction": "inbound",
            "chat": {"id": "chat-1", "owner_handle": {"handle": LINES[4], "id": "h"}},
        },
    )
    result = receiver.handle(signed(body), body)
    assert result.applied
    assert used() == before + 1
    assert receiver.handle(signed(body), body).applied is False
    assert used() == before + 1


def test_message_received_without_a_router_is_not_applied(registry: Registry) -> None:
    receiver = WebhookReceiver(registry, secret=SECRET, clock=clock)
    body = event("message.received", {"chat": {"id": "c", "owner_handle": {"handle": LINES[0]}}})
    result = receiver.handle(signed(body), body)
    assert (result.status, result.applied) == (200, False)


def test_message_failed_without_a_sender_is_not_applied(receiver: WebhookReceiver) -> None:
    body = event("message.failed", {"code": 2027, "failed_at": iso(0), "message_id": "m"})
    result = receiver.handle(signed(body), body)
    assert (result.status, result.applied) == (200, False)
    assert "sender" in result.reason


class _BrokenSender:
    """A sender whose lookup fails once: applying the event fails, then works."""

    def __init__(self) -> None:
        self.calls = 0

    def line_for_message(self, message_id: str) -> str | None:
        self.calls += 1
        if self.calls == 1:
            msg = "the book is briefly unavailable"
            raise RuntimeError(msg)
        return LINES[0]

    def line_for_chat(self, chat_id: str) -> str | None:
        return None


def test_a_failure_while_applying_is_500_and_the_retry_applies_it(
    registry: Registry, router: Router, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = WebhookReceiver(
        registry, router=router, sender=_BrokenSender(), secret=SECRET, clock=clock
    )
    body = event("message.failed", {"code": 2027, "failed_at": iso(0), "message_id": "m-9"})
    with caplog.at_level(logging.ERROR, logger="linq_router"):
        first = receiver.handle(signed(body), body)
    assert (first.status, first.applied) == (500, False)
    assert any("applying it failed" in r.getMessage() for r in caplog.records)
    second = receiver.handle(signed(body), body)
    assert (second.status, second.applied) == (200, True)
    assert LINES[0] in {e.line for e in router.ejections()}


# -- asyncio ---------------------------------------------------------------------------


def test_ahandle_awaits_an_async_router(fake: FakeLinqServer) -> None:
    async def main() -> None:
        async with AsyncLinqClient(fake.api_key, base_url=fake.base_url) as client:
            registry = AsyncRegistry(client, ttl=3600)
            router = AsyncRouter(registry, policy="skip-critical | round-robin", pacing=Pacing())
            await router.pick("+14155550100")
            receiver = WebhookReceiver(registry, router=router, secret=SECRET, clock=clock)
            body = status_event(LINES[0])
            result = await receiver.ahandle(signed(body), body)
            assert result.applied
            picks = {(await router.pick("+14155550100")).phone_number for _ in range(20)}
            assert LINES[0] not in picks
            inbound = event(
                "message.received", {"chat": {"id": "c", "owner_handle": {"handle": LINES[1]}}}
            )
            assert (await receiver.ahandle(signed(inbound), inbound)).applied
            used = [
                b.used
                for b in await router.budgets()
                if b.line == LINES[1] and b.kind == "per_line"
            ]
            assert used == [1]
            # handle() from inside the loop schedules the router's part as a task.
            inbound2 = event(
                "message.received", {"chat": {"id": "c", "owner_handle": {"handle": LINES[1]}}}
            )
            assert receiver.handle(signed(inbound2), inbound2).applied
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while used == [1] and loop.time() < deadline:
                await asyncio.sleep(0.001)
                used = [
                    b.used
                    for b in await router.budgets()
                    if b.line == LINES[1] and b.kind == "per_line"
                ]
            assert used == [2]
            router.close()
            await registry.aclose()

    asyncio.run(main())


def test_result_as_json() -> None:
    result = WebhookResult(200, "e", "t", True, "why")
    assert result.as_json() == {
        "status": 200,
        "event_id": "e",
        "event_type": "t",
        "applied": True,
        "reason": "why",
    }


def test_dedup_is_bounded_and_forgets_after_an_hour(registry: Registry) -> None:
    now = [NOW]
    receiver = WebhookReceiver(
        registry, secret=SECRET, dedup_size=3, clock=lambda: now[0], tolerance=10**9
    )
    bodies = [event("reaction.added", {}, f"e{i}") for i in range(4)]
    for body in bodies:
        assert receiver.handle(signed(body), body).status == 200
    assert "a repeat" in receiver.handle(signed(bodies[3]), bodies[3]).reason
    assert "a repeat" not in receiver.handle(signed(bodies[0]), bodies[0]).reason  # evicted
    now[0] += 3601
    assert "a repeat" not in receiver.handle(signed(bodies[3]), bodies[3]).reason


def test_a_status_event_without_new_status_keeps_the_status(
    receiver: WebhookReceiver, registry: Registry
) -> None:
    registry.amend(LINES[0], status="FLAGGED")
    data = {"phone_number": LINES[0], "new_reputation": "AT_RISK", "changed_at": iso(1)}
    body = event("phone_number.status_updated", data)
    assert receiver.handle(signed(body), body).applied
    line = registry.snapshot().get(LINES[0])
    assert line is not None
    assert (line.reputation, line.status) == (Reputation.AT_RISK, "FLAGGED")


def test_an_unknown_status_pauses_the_line(
    receiver: WebhookReceiver, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    body = status_event(LINES[1], "HEALTHY", "SUSPENDED")
    with caplog.at_level(logging.WARNING, logger="linq_router"):
        assert receiver.handle(signed(body), body).applied
    assert registry.snapshot().get(LINES[1]).status == "FLAGGED"  # type: ignore[union-attr]


def test_the_wsgi_app_reads_a_body_without_length_when_the_server_ends_it(
    receiver: WebhookReceiver, registry: Registry
) -> None:
    import io

    body = status_event(LINES[2])
    environ = {
        "REQUEST_METHOD": "POST",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in signed(body).items()},
    }
    statuses: list[str] = []
    answer = b"".join(receiver.wsgi(environ, lambda status, headers: statuses.append(status)))
    assert statuses == ["200 OK"]
    assert b'"applied":true' in answer
    assert registry.snapshot().get(LINES[2]).status == "FLAGGED"  # type: ignore[union-attr]
