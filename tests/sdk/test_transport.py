"""ReportingTransport: the SDK called directly, every send attempt reported, nothing changed."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import linq
import pytest

from linq_router import Registry
from linq_router.feedback import Outcome, Verdict
from linq_router.sdk import ReportingTransport
from linq_router.testing import FakeLinqServer

from .helpers import (
    CHATS,
    CREATE,
    LINES,
    MESSAGE,
    SWITCH_AT,
    THREADS,
    RefuseFirst,
    SpyRouter,
    picks_of,
    recipient,
    run_threads,
    sdk_client,
)

VOICE_MEMO_URL = "https://example.com/memo.m4a"


@pytest.fixture
def transport(router: SpyRouter) -> ReportingTransport:
    """A reporting transport over httpx's own."""
    return ReportingTransport(router)


@pytest.fixture
def reported(fake: FakeLinqServer, transport: ReportingTransport) -> Iterator[linq.LinqAPIV3]:
    """The strict SDK client (default retries) whose HTTP goes through the transport."""
    with sdk_client(fake, http_client=httpx.Client(transport=transport)) as client:
        yield client


def test_a_create_is_reported_with_its_from_and_to(
    fake: FakeLinqServer, reported: linq.LinqAPIV3, router: SpyRouter
) -> None:
    """POST /v3/chats: reported against the body's from, with its to; the SDK parses as usual."""
    line = router.pick(recipient(1)).phone_number
    response = reported.chats.create(from_=line, to=[recipient(1)], message=MESSAGE)
    assert response.chat.id == fake.sends[-1].chat_id
    [(reported_line, outcome, to, verdict)] = router.reports
    assert (reported_line, outcome, to, verdict) == (line, None, (recipient(1),), Verdict.SUCCESS)


def test_a_line_that_starts_answering_2027_gets_at_most_one_more_create_per_router(
    fake: FakeLinqServer, registry: Registry
) -> None:
    """Code that picks and sends itself: after one 2027 per router, the line is never picked."""
    bad = LINES[4]
    fake.set_line_behaviour(bad, "ineligible")
    routers = [SpyRouter(registry, policy="round-robin") for _ in range(2)]
    clients = [
        sdk_client(fake, http_client=httpx.Client(transport=ReportingTransport(r))) for r in routers
    ]
    try:
        for n in range(96):
            router, client = routers[n % 2], clients[n % 2]
            line = router.pick(recipient(n)).phone_number
            if line == bad:
                with pytest.raises(linq.PermissionDeniedError, match="2027"):
                    client.chats.create(from_=line, to=[recipient(n)], message=MESSAGE)
            else:
                client.chats.create(from_=line, to=[recipient(n)], message=MESSAGE)
        assert fake.rejected_count(bad, code=2027) == 2
        for router in routers:
            assert bad not in picks_of(router)
    finally:
        for client in clients:
            client.close()
        for router in routers:
            router.close()


def test_every_attempt_of_the_sdks_own_retries_is_reported(
    fake: FakeLinqServer, reported: linq.LinqAPIV3, router: SpyRouter
) -> None:
    """The SDK resends a 500'd create by itself (so a chat may be made twice): each is seen."""
    fake.fail_next("3006", times=2, route=CREATE, retry_after=0.01)
    line = LINES[0]
    reported.chats.create(from_=line, to=[recipient(2)], message=MESSAGE)
    assert fake.count(CREATE) == 3
    assert [r[3] for r in router.reports] == [
        Verdict.LINE_FAILURE,
        Verdict.LINE_FAILURE,
        Verdict.SUCCESS,
    ]
    first = router.reports[0][1]
    assert isinstance(first, Outcome)
    assert (first.status, first.code) == (500, 3006)


def test_error_answers_reach_the_sdk_unchanged(
    fake: FakeLinqServer, client: linq.LinqAPIV3, reported: linq.LinqAPIV3, router: SpyRouter
) -> None:
    """The SDK raises the same error, body, code and retry_after with the transport as without."""

    def error_of(c: linq.LinqAPIV3) -> linq.APIStatusError:
        fake.fail_next("429", route=CREATE, retry_after=7)
        with pytest.raises(linq.RateLimitError) as info:
            c.with_options(max_retries=0).chats.create(
                from_=LINES[1], to=[recipient(3)], message=MESSAGE
            )
        return info.value

    plain, seen = error_of(client), error_of(reported)
    assert (seen.status_code, seen.body, seen.code, seen.retry_after) == (
        plain.status_code,
        plain.body,
        plain.code,
        plain.retry_after,
    )
    drop = {"date"}
    assert {k: v for k, v in seen.response.headers.items() if k not in drop} == {
        k: v for k, v in plain.response.headers.items() if k not in drop
    }
    assert seen.response.content == plain.response.content
    outcome = router.reports[-1][1]
    assert outcome == Outcome(429, 1007, 7.0)
    assert router.reports[-1][3] is Verdict.PAIR_LIMITED


def _gzip_answer(request: httpx.Request) -> httpx.Response:
    body = gzip.compress(json.dumps({"error": {"status": 403, "code": 2027}}).encode())
    return httpx.Response(
        403,
        headers={"content-encoding": "gzip", "x-custom": "1", "transfer-encoding": "chunked"},
        stream=httpx.ByteStream(body),
        extensions={"reason_phrase": b"Forbidden", "http_version": b"HTTP/1.1"},
    )


def test_the_answer_is_handed_on_byte_for_byte(router: SpyRouter) -> None:
    """Status, headers (gzip, chunked: no Content-Length added), raw bytes, extensions: as sent."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _gzip_answer(request)

    body = {"from": LINES[2], "to": [recipient(4)], "message": MESSAGE}
    transport = ReportingTransport(router, httpx.MockTransport(answer))
    with (
        httpx.Client(transport=transport) as c,
        c.stream("POST", "http://linq.test/api/partner/v3/chats", json=body) as response,
    ):
        raw = b"".join(response.iter_raw())
    expected = _gzip_answer(seen[0])
    assert response.status_code == 403
    assert list(response.headers.multi_items()) == list(expected.headers.multi_items())
    assert raw == b"".join(expected.iter_raw())
    assert response.extensions["reason_phrase"] == b"Forbidden"
    assert json.loads(gzip.decompress(raw)) == {"error": {"status": 403, "code": 2027}}
    assert json.loads(seen[0].content) == body  # the request went on as it came
    assert router.reports[-1][0] == LINES[2]
    assert router.reports[-1][3] is Verdict.LINE_INELIGIBLE  # read through the gzip


def test_messages_and_voice_memos_on_a_chat_it_saw_created_are_reported(
    fake: FakeLinqServer, reported: linq.LinqAPIV3, router: SpyRouter, transport: ReportingTransport
) -> None:
    """The create's answer names the chat: its messages and voice memos are reported too."""
    line = LINES[5]
    chat = reported.chats.create(from_=line, to=[recipient(5)], message=MESSAGE).chat
    assert transport.line_for_chat(chat.id) == line
    reported.chats.messages.send(chat.id, message=MESSAGE)
    reported.chats.send_voicememo(chat.id, voice_memo_url=VOICE_MEMO_URL)
    assert [(r[0], r[2], r[3]) for r in router.reports] == [
        (line, (recipient(5),), Verdict.SUCCESS)
    ] * 3
    fake.set_line_behaviour(line, "ineligible")
    with pytest.raises(linq.PermissionDeniedError):
        reported.chats.messages.send(chat.id, message=MESSAGE)
    assert router.reports[-1][3] is Verdict.LINE_INELIGIBLE
    assert line not in picks_of(router)


def test_a_chat_it_never_saw_is_not_reported_until_remembered(
    fake: FakeLinqServer,
    client: linq.LinqAPIV3,
    reported: linq.LinqAPIV3,
    router: SpyRouter,
    transport: ReportingTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A message on an unknown chat goes out unreported (DEBUG); remember() maps it."""
    line = LINES[6]
    chat = client.chats.create(from_=line, to=[recipient(6)], message=MESSAGE).chat
    with caplog.at_level(logging.DEBUG, logger="linq_router"):
        reported.chats.messages.send(chat.id, message=MESSAGE)
    assert "not reported" in caplog.text
    assert router.reports == []
    transport.remember(chat.id, line)
    reported.chats.messages.send(chat.id, message=MESSAGE)
    assert [(r[0], r[3]) for r in router.reports] == [(line, Verdict.SUCCESS)]


def test_reads_and_other_routes_pass_through_unreported(
    fake: FakeLinqServer, reported: linq.LinqAPIV3, router: SpyRouter
) -> None:
    """GET /v3/phone_numbers (and anything not a send) is not reported."""
    assert len(reported.phone_numbers.list().phone_numbers) == len(LINES)
    assert router.reports == []


def test_a_line_not_in_the_snapshot_never_raises_into_the_sdk(
    fake: FakeLinqServer, reported: linq.LinqAPIV3, router: SpyRouter
) -> None:
    """A from the router does not know: whatever the fake answers reaches the SDK as it is."""
    stranger = "+13125550199"
    fake.add_number(stranger)  # served by the fake, not yet in the router's snapshot
    response = reported.chats.create(from_=stranger, to=[recipient(7)], message=MESSAGE)
    assert response.chat.id
    fake.set_line_behaviour(stranger, "ineligible")
    with pytest.raises(linq.PermissionDeniedError):
        reported.chats.create(from_=stranger, to=[recipient(8)], message=MESSAGE)
    assert [r[3] for r in router.reports] == [Verdict.SUCCESS, Verdict.LINE_INELIGIBLE]


def test_a_failing_report_never_raises_into_the_sdk(
    fake: FakeLinqServer, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    """A router whose report raises: the SDK's call works (or fails) exactly as without."""

    class Broken(SpyRouter):
        def report(self, pick: Any, outcome: Any = None, *, to: Any = None) -> Verdict:
            raise RuntimeError("report is broken")

    with (
        Broken(registry) as router,
        sdk_client(fake, http_client=httpx.Client(transport=ReportingTransport(router))) as c,
        caplog.at_level(logging.WARNING, logger="linq_router"),
    ):
        assert c.chats.create(from_=LINES[0], to=[recipient(9)], message=MESSAGE).chat.id
        fake.fail_next("403", route=CREATE)
        with pytest.raises(linq.PermissionDeniedError) as info:
            c.chats.create(from_=LINES[0], to=[recipient(10)], message=MESSAGE)
    assert info.value.code == 2027
    assert "report is broken" in caplog.text


def test_an_inner_transport_error_is_reported_and_raised_unchanged(
    fake: FakeLinqServer, router: SpyRouter
) -> None:
    """A connect error from the inner transport is reported, then is the SDK's cause as it was."""
    refusing = RefuseFirst(1)
    transport = ReportingTransport(router, refusing)
    with sdk_client(fake, http_client=httpx.Client(transport=transport), max_retries=0) as c:
        with pytest.raises(linq.APIConnectionError) as info:
            c.chats.create(from_=LINES[3], to=[recipient(11)], message=MESSAGE)
        assert info.value.__cause__ is refusing.raised[0]
        [(line, outcome, _, verdict)] = router.reports
        assert (line, outcome, verdict) == (LINES[3], refusing.raised[0], Verdict.LINE_FAILURE)
        # The next attempt goes through normally.
        assert c.chats.create(from_=LINES[3], to=[recipient(11)], message=MESSAGE).chat.id
    assert fake.count(CREATE) == 1


def test_a_dropped_connection_is_reported_once_per_attempt(
    fake: FakeLinqServer, router: SpyRouter
) -> None:
    """The server drops the connection: the SDK's error as without, one report per attempt."""
    fake.fail_next("drop", route=CREATE)
    transport = ReportingTransport(router)
    with (
        sdk_client(fake, http_client=httpx.Client(transport=transport), max_retries=0) as c,
        pytest.raises(linq.APIConnectionError),
    ):
        c.chats.create(from_=LINES[3], to=[recipient(12)], message=MESSAGE)
    assert [r[3] for r in router.reports] == [Verdict.LINE_FAILURE]


def test_eight_threads_two_thousand_chats_two_lines_go_ineligible(
    fake: FakeLinqServer, router: SpyRouter, reported: linq.LinqAPIV3
) -> None:
    """Code that picks and sends itself, through the transport: fewer than 8 x 2 hit the lines."""
    bad = LINES[1], LINES[10]
    lock = threading.Lock()
    tally = Counter[str]()

    def work(i: int) -> None:
        for n in range(i, CHATS, THREADS):
            with lock:
                tally["started"] += 1
                switch = tally["started"] == SWITCH_AT
            if switch:
                for line in bad:
                    fake.set_line_behaviour(line, "ineligible")
            for _ in range(3):
                line = router.pick(recipient(n)).phone_number
                try:
                    reported.chats.create(from_=line, to=[recipient(n)], message=MESSAGE)
                except linq.PermissionDeniedError:
                    continue
                with lock:
                    tally["created"] += 1
                break

    started = time.perf_counter()
    run_threads(THREADS, work)
    elapsed = time.perf_counter() - started
    hits = sum(fake.rejected_count(line, code=2027) for line in bad)
    print(
        f"\ntransport, 8 threads x {CHATS} chats: {hits} creates hit the 2 lines, {elapsed:.2f} s"
    )
    assert hits < THREADS * len(bad)
    assert tally["created"] == CHATS


def test_arguments_are_checked(router: SpyRouter) -> None:
    """An async router, a non-transport or a bad bound fail at construction."""
    with pytest.raises(TypeError, match="transport"):
        ReportingTransport(router, object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="router"):
        ReportingTransport(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_chats"):
        ReportingTransport(router, max_chats=0)
    with ReportingTransport(router) as transport:
        assert isinstance(transport.transport, httpx.HTTPTransport)
