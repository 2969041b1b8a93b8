"""Sender: the real SDK against the fake, picked, reported, and never a create sent twice."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import httpx
import linq
import pytest
from linq.types import ChatCreateResponse
from linq.types.chats import MessageSendResponse

from linq_router import NoEligibleNumberError, Registry
from linq_router.feedback import Outcome, Verdict
from linq_router.sdk import Sender, Sent
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


# -- create_chat ---------------------------------------------------------------------


def test_create_chat_returns_the_sdks_answer_and_the_pick(
    fake: FakeLinqServer, sender: Sender, router: SpyRouter
) -> None:
    """One create from the picked line; the SDK's own response object comes back unchanged."""
    sent = sender.create_chat(to=[recipient(1)], message=MESSAGE)
    assert isinstance(sent, Sent)
    assert type(sent.response) is ChatCreateResponse
    assert sent.attempts == ((sent.phone_number, Verdict.SUCCESS),)
    assert sent.pick.phone_number in LINES
    assert sent.chat_id == sent.response.chat.id
    [record] = fake.sends
    assert (record.kind, record.from_, list(record.to)) == (
        "chat",
        sent.phone_number,
        [recipient(1)],
    )
    assert record.chat_id == sent.chat_id
    assert fake.send_count() == 1
    # Reported once, with the send's recipients.
    assert [(r[0], r[3]) for r in router.reports] == [(sent.phone_number, Verdict.SUCCESS)]
    assert list(router.reports[0][2]) == [recipient(1)]
    assert "response" not in repr(sent)


def test_create_chat_takes_one_handle_and_passes_kwargs_through(
    fake: FakeLinqServer, sender: Sender
) -> None:
    """A bare handle is a one-recipient chat; other keywords reach chats.create as they are."""
    sent = sender.create_chat(to=recipient(2), message=MESSAGE, override_optout=True, timeout=5.0)
    assert list(fake.sends[-1].to) == [recipient(2)]
    assert sent.attempts[-1][1] is Verdict.SUCCESS
    with pytest.raises(TypeError, match="from_"):
        sender.create_chat(to=recipient(3), message=MESSAGE, from_=LINES[0])
    assert fake.send_count() == 1


def test_create_chat_to_a_2027_line_lands_on_another_line_in_one_call(
    fake: FakeLinqServer, registry: Registry, client: linq.LinqAPIV3
) -> None:
    """The pinned line answers 2027: reported, ejected, and the same call lands elsewhere."""
    with SpyRouter(registry, policy="sticky") as router:
        sender = Sender(router, client)
        bad = LINES[3]
        router.pin(recipient(4), bad)
        fake.set_line_behaviour(bad, "ineligible")
        sent = sender.create_chat(to=[recipient(4)], message=MESSAGE)
        assert sent.attempts[0] == (bad, Verdict.LINE_INELIGIBLE)
        assert sent.attempts[1] == (sent.phone_number, Verdict.SUCCESS)
        assert len(sent.attempts) == 2
        assert sent.phone_number != bad
        assert fake.rejected_count(bad, code=2027) == 1
        assert fake.send_count() == 1  # accepted creates
        assert bad not in picks_of(router)


def test_a_line_that_starts_answering_2027_gets_at_most_one_more_create_per_router(
    fake: FakeLinqServer, registry: Registry, client: linq.LinqAPIV3
) -> None:
    """Two routers over one registry: each sends the bad line one create, then never again."""
    bad = LINES[5]
    with (
        SpyRouter(registry, policy="round-robin") as first,
        SpyRouter(registry, policy="round-robin") as second,
    ):
        senders = [Sender(first, client), Sender(second, client)]
        for n in range(24):
            senders[n % 2].create_chat(to=[recipient(n)], message=MESSAGE)
        fake.set_line_behaviour(bad, "ineligible")
        for n in range(24, 24 + 96):
            sent = senders[n % 2].create_chat(to=[recipient(n)], message=MESSAGE)
            assert sent.phone_number != bad
        assert fake.rejected_count(bad, code=2027) == 2
        for router in (first, second):
            hits = [r for r in router.reports if r[0] == bad and r[3] is Verdict.LINE_INELIGIBLE]
            assert len(hits) == 1


def test_a_500_on_create_is_reported_and_raised_never_resent(
    fake: FakeLinqServer, sender: Sender, router: SpyRouter, client: linq.LinqAPIV3
) -> None:
    """The SDK would retry a 500 twice; through Sender the fake sees exactly one request."""
    fake.fail_next("3006", route=CREATE)
    with pytest.raises(linq.InternalServerError) as info:
        sender.create_chat(to=[recipient(5)], message=MESSAGE)
    assert info.value.status_code == 500
    assert info.value.code == 3006
    assert fake.count(CREATE) == 1
    assert client.max_retries == 2  # the caller's client is left as it was
    [(_, outcome, _, verdict)] = router.reports
    assert outcome is info.value
    assert verdict is Verdict.LINE_FAILURE


def test_a_read_timeout_is_raised_as_the_sdks_and_never_resent(
    fake: FakeLinqServer, sender: Sender, router: SpyRouter
) -> None:
    """The request arrived and the answer is late: the outcome is unknown, so no resend."""
    fake.fail_next("delay", route=CREATE, delay=30)
    with pytest.raises(linq.APITimeoutError) as info:
        sender.create_chat(to=[recipient(6)], message=MESSAGE, timeout=0.3)
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert fake.count(CREATE) == 1
    assert [r[3] for r in router.reports] == [Verdict.LINE_FAILURE]


def test_a_dropped_connection_is_raised_as_the_sdks_and_never_resent(
    fake: FakeLinqServer, sender: Sender
) -> None:
    """The server read the request and closed the connection: maybe created, so no resend."""
    fake.fail_next("drop", route=CREATE)
    with pytest.raises(linq.APIConnectionError) as info:
        sender.create_chat(to=[recipient(7)], message=MESSAGE)
    assert not isinstance(info.value.__cause__, httpx.ConnectError)
    assert fake.count(CREATE) == 1


def test_a_connect_error_is_reported_and_retried_on_another_line(
    fake: FakeLinqServer, router: SpyRouter
) -> None:
    """Refused at connect, the request never left: reported, then sent from a new pick."""
    refusing = RefuseFirst(1)
    with sdk_client(fake, http_client=httpx.Client(transport=refusing)) as client:
        sent = Sender(router, client).create_chat(to=[recipient(8)], message=MESSAGE)
    [(first, verdict), (second, success)] = sent.attempts
    assert verdict is Verdict.LINE_FAILURE
    assert success is Verdict.SUCCESS
    assert first != second == sent.phone_number
    assert isinstance(refusing.raised[0], httpx.ConnectError)
    assert fake.count(CREATE) == 1


def test_a_sticky_router_that_insists_gets_the_resend_on_its_line(
    fake: FakeLinqServer, registry: Registry
) -> None:
    """After a connect error a pinned conversation keeps its line: nothing had been sent."""
    refusing = RefuseFirst(1)
    with (
        SpyRouter(registry, policy="sticky") as router,
        sdk_client(fake, http_client=httpx.Client(transport=refusing)) as client,
    ):
        router.pin(recipient(15), LINES[6])
        sent = Sender(router, client).create_chat(to=[recipient(15)], message=MESSAGE)
    assert sent.attempts == ((LINES[6], Verdict.LINE_FAILURE), (LINES[6], Verdict.SUCCESS))
    assert fake.count(CREATE) == 1


def test_a_resend_picks_again_to_avoid_a_line_already_tried() -> None:
    """Up to three more picks look for an untried line; then the router's choice stands."""
    from linq_router._models import PhoneNumber, Reputation
    from linq_router._pick import Explanation, Pick
    from linq_router.sdk._common import CreateAttempts

    def pick(number: str) -> Pick:
        line = PhoneNumber(number, number, Reputation.HEALTHY)
        return Pick(number, line, "test", Explanation((), "test"))

    tries = CreateAttempts(max_repicks=2)
    assert tries.fresh(pick(LINES[0]))
    tries.record(pick(LINES[0]), Verdict.LINE_FAILURE)
    assert [tries.fresh(pick(LINES[0])) for _ in range(4)] == [False, False, False, True]
    tries.record(pick(LINES[0]), Verdict.LINE_FAILURE)
    assert not tries.fresh(pick(LINES[0]))
    assert tries.fresh(pick(LINES[1]))


def test_connect_errors_stop_after_max_repicks_with_the_sdks_error(
    fake: FakeLinqServer, router: SpyRouter
) -> None:
    """With max_repicks=1, two refused connects raise the SDK's APIConnectionError."""
    refusing = RefuseFirst(5)
    with sdk_client(fake, http_client=httpx.Client(transport=refusing)) as client:
        sender = Sender(router, client, max_repicks=1)
        with pytest.raises(linq.APIConnectionError) as info:
            sender.create_chat(to=[recipient(9)], message=MESSAGE)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert len(refusing.raised) == 2
    assert [r[3] for r in router.reports] == [Verdict.LINE_FAILURE] * 2
    assert fake.count(CREATE) == 0


def _raised_from(cause: BaseException, error: BaseException) -> BaseException:
    """``error`` as the SDK raises it: ``raise error from cause``, inside the handler."""
    try:
        try:
            raise cause
        except BaseException as exc:
            raise error from exc
    except BaseException as raised:
        return raised


def test_only_connect_errors_count_as_before_the_request_left() -> None:
    """ConnectError and ConnectTimeout were raised before sending; reads and drops after."""
    from linq_router.sdk._common import is_before_send

    request = httpx.Request("POST", "http://linq.test/v3/chats")
    before = [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")]
    after = [httpx.ReadTimeout("late"), httpx.RemoteProtocolError("gone"), httpx.PoolTimeout("x")]
    for cause in before:
        wrapped = linq.APIConnectionError(request=request)
        assert is_before_send(_raised_from(cause, wrapped))
    for cause in after:
        timeout = linq.APITimeoutError(request=request)
        assert not is_before_send(_raised_from(cause, timeout))
    assert not is_before_send(httpx.ConnectError("not the SDK's"))
    assert not is_before_send(linq.APIConnectionError(request=request))


@pytest.mark.parametrize(
    ("kind", "code", "error", "verdict"),
    [
        ("403", 2024, linq.PermissionDeniedError, Verdict.NOT_THE_LINE),
        ("429", None, linq.RateLimitError, Verdict.PAIR_LIMITED),
        ("409", None, linq.ConflictError, Verdict.NOT_THE_LINE),
        ("400", None, linq.BadRequestError, Verdict.NOT_THE_LINE),
        ("503", None, linq.InternalServerError, Verdict.LINE_FAILURE),
    ],
)
def test_other_errors_are_reported_and_raised_as_the_sdks_own(
    fake: FakeLinqServer,
    sender: Sender,
    router: SpyRouter,
    kind: str,
    code: int | None,
    error: type[linq.APIStatusError],
    verdict: Verdict,
) -> None:
    """Opted out, pair limited, 409 (which the SDK retries), 400, 503: one request, raised."""
    fake.fail_next(kind, route=CREATE, code=code, retry_after=0.01 if kind == "429" else None)
    with pytest.raises(error) as info:
        sender.create_chat(to=[recipient(10)], message=MESSAGE)
    assert type(info.value) is error
    assert fake.count(CREATE) == 1
    assert [r[3] for r in router.reports] == [verdict]


def test_ineligible_everywhere_stops_after_max_repicks(
    fake: FakeLinqServer, sender: Sender
) -> None:
    """Every line answers 2027: three creates (max_repicks=2), then the SDK's 2027 error."""
    for line in LINES:
        fake.set_line_behaviour(line, "ineligible")
    with pytest.raises(linq.PermissionDeniedError) as info:
        sender.create_chat(to=[recipient(11)], message=MESSAGE)
    assert info.value.code == 2027
    assert fake.count(CREATE) == 3


def test_no_line_left_to_resend_on_raises_the_last_sdk_error(
    registry: Registry, client: linq.LinqAPIV3, fake: FakeLinqServer
) -> None:
    """Both lines of a two-line pool answer 2027: the caller gets the SDK's error, not ours."""
    fake.set_numbers(LINES[:2])
    registry.refresh()
    for line in LINES[:2]:
        fake.set_line_behaviour(line, "ineligible")
    with SpyRouter(registry, policy="round-robin") as router:
        sender = Sender(router, client, max_repicks=5)
        with pytest.raises(linq.PermissionDeniedError) as info:
            sender.create_chat(to=[recipient(12)], message=MESSAGE)
        assert info.value.code == 2027
        assert fake.count(CREATE) == 2
        # Nothing was sent this time: the router's own error.
        with pytest.raises(NoEligibleNumberError):
            sender.create_chat(to=[recipient(13)], message=MESSAGE)
        assert fake.count(CREATE) == 2


def test_a_failing_report_never_costs_the_send(
    fake: FakeLinqServer,
    registry: Registry,
    client: linq.LinqAPIV3,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A router whose report raises: the chat is still created and returned, with a warning."""

    class Broken(SpyRouter):
        def report(self, pick: Any, outcome: Any = None, *, to: Any = None) -> Verdict:
            raise RuntimeError("report is broken")

    with Broken(registry, policy="round-robin") as router, caplog.at_level(logging.WARNING):
        sent = Sender(router, client).create_chat(to=[recipient(14)], message=MESSAGE)
    assert sent.attempts == ((sent.phone_number, Verdict.SUCCESS),)
    assert fake.count(CREATE) == 1
    assert "report is broken" in caplog.text


# -- messages and voice memos --------------------------------------------------------


def test_messages_and_voice_memos_report_against_the_chats_line(
    fake: FakeLinqServer, sender: Sender, router: SpyRouter
) -> None:
    """A chat's sends go out on its line and are reported against it, with its handles."""
    sent = sender.create_chat(to=[recipient(20)], message=MESSAGE)
    line = sent.phone_number
    reply = sender.send_message(sent.chat_id, message=MESSAGE)
    assert type(reply) is MessageSendResponse
    memo = sender.send_voice_memo(sent.chat_id, voice_memo_url=VOICE_MEMO_URL)
    assert memo.voice_memo.from_ == line
    assert [(s.kind, s.from_) for s in fake.sends] == [
        ("chat", line),
        ("message", line),
        ("voice_memo", line),
    ]
    assert [(r[0], tuple(r[2]), r[3]) for r in router.reports] == [
        (line, (recipient(20),), Verdict.SUCCESS)
    ] * 3
    # Every message this sender sent maps back to its line, for message.failed webhooks.
    assert sender.line_for_message(sent.response.chat.message.id) == line
    assert sender.line_for_message(reply.message.id) == line
    assert sender.line_for_message(memo.voice_memo.id) == line
    assert sender.line_for_message("no-such-message") is None
    assert sender.line_for_chat(sent.chat_id) == line


def test_a_2027_on_a_message_ejects_the_chats_line(
    fake: FakeLinqServer, sender: Sender, router: SpyRouter
) -> None:
    """The chat's line turns ineligible: the message raises the SDK's 2027 and picks avoid it."""
    sent = sender.create_chat(to=[recipient(21)], message=MESSAGE)
    fake.set_line_behaviour(sent.phone_number, "ineligible")
    with pytest.raises(linq.PermissionDeniedError) as info:
        sender.send_message(sent.chat_id, message=MESSAGE)
    assert info.value.code == 2027
    assert router.reports[-1][3] is Verdict.LINE_INELIGIBLE
    assert sent.phone_number not in picks_of(router)
    with pytest.raises(linq.PermissionDeniedError):
        sender.send_voice_memo(sent.chat_id, voice_memo_url=VOICE_MEMO_URL)
    assert router.reports[-1][0] == sent.phone_number


def test_a_500_on_a_message_or_voice_memo_is_never_resent(
    fake: FakeLinqServer, sender: Sender, router: SpyRouter, client: linq.LinqAPIV3
) -> None:
    """The SDK would resend a message after a 500; through Sender the fake sees one."""
    sent = sender.create_chat(to=[recipient(22)], message=MESSAGE)
    route = "POST /v3/chats/{id}/messages"
    fake.fail_next("3006", route=route)
    with pytest.raises(linq.InternalServerError):
        sender.send_message(sent.chat_id, message=MESSAGE)
    assert fake.count(route) == 1
    assert router.reports[-1][3] is Verdict.LINE_FAILURE
    memo = "POST /v3/chats/{id}/voicememo"
    fake.fail_next("503", route=memo)
    with pytest.raises(linq.InternalServerError):
        sender.send_voice_memo(sent.chat_id, voice_memo_url=VOICE_MEMO_URL)
    assert fake.count(memo) == 1
    assert client.max_retries == 2


def test_an_unknown_chat_is_sent_not_reported_until_remembered(
    fake: FakeLinqServer,
    sender: Sender,
    router: SpyRouter,
    client: linq.LinqAPIV3,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A chat created elsewhere: sent, not reported (DEBUG says so); remember() fixes that."""
    line = LINES[7]
    earlier = client.chats.create(from_=line, to=[recipient(22)], message=MESSAGE)
    chat_id = earlier.chat.id
    with caplog.at_level(logging.DEBUG, logger="linq_router"):
        sender.send_message(chat_id, message=MESSAGE)
    assert "not reported" in caplog.text
    assert router.reports == []
    assert sender.line_for_chat(chat_id) is None
    sender.remember(chat_id, line)
    sender.send_message(chat_id, message=MESSAGE)
    assert [(r[0], r[2], r[3]) for r in router.reports] == [(line, None, Verdict.SUCCESS)]
    sender.remember(chat_id, line, to=recipient(22))
    sender.send_voice_memo(chat_id, voice_memo_url=VOICE_MEMO_URL)
    assert tuple(router.reports[-1][2]) == (recipient(22),)
    with pytest.raises(TypeError, match="phone_number"):
        sender.remember(chat_id, None)  # type: ignore[arg-type]


def test_max_chats_bounds_what_a_sender_remembers(fake: FakeLinqServer, sender: Sender) -> None:
    """With max_chats=2 the oldest chat and message are forgotten; the newest are kept."""
    small = Sender(sender.router, sender.client, max_chats=2)
    sent = [small.create_chat(to=[recipient(30 + n)], message=MESSAGE) for n in range(3)]
    assert small.line_for_chat(sent[0].chat_id) is None
    assert small.line_for_message(sent[0].response.chat.message.id) is None
    for s in sent[1:]:
        assert small.line_for_chat(s.chat_id) == s.phone_number
        assert small.line_for_message(s.response.chat.message.id) == s.phone_number


def test_arguments_are_checked_at_construction(
    router: SpyRouter, client: linq.LinqAPIV3, fake: FakeLinqServer
) -> None:
    """Wrong twins, wrong kinds and bad bounds fail here, naming what was wrong."""
    with pytest.raises(TypeError, match="AsyncSender"):
        Sender(router, linq.AsyncLinqAPIV3(api_key="k", base_url=fake.base_url))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="client"):
        Sender(router, object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="router"):
        Sender(object(), client)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_repicks"):
        Sender(router, client, max_repicks=-1)
    with pytest.raises(TypeError, match="max_chats"):
        Sender(router, client, max_chats=True)
    with pytest.raises(ValueError, match="max_chats"):
        Sender(router, client, max_chats=0)
    assert Sender(router, client, max_repicks=0).max_repicks == 0


# -- many threads --------------------------------------------------------------------


def test_eight_threads_two_thousand_chats_two_lines_go_ineligible(
    fake: FakeLinqServer, sender: Sender
) -> None:
    """Two of twelve lines start answering 2027 part way: fewer than 8 x 2 creates hit them."""
    bad = LINES[2], LINES[9]
    lock = threading.Lock()
    done = Counter[str]()
    attempts: list[tuple[str, Verdict]] = []

    def work(i: int) -> None:
        for n in range(i, CHATS, THREADS):
            with lock:
                done["sent"] += 1
                switch = done["sent"] == SWITCH_AT
            if switch:
                for line in bad:
                    fake.set_line_behaviour(line, "ineligible")
            sent = sender.create_chat(to=[recipient(n)], message=MESSAGE)
            with lock:
                attempts.extend(sent.attempts)

    started = time.perf_counter()
    run_threads(THREADS, work)
    elapsed = time.perf_counter() - started
    hits = sum(fake.rejected_count(line, code=2027) for line in bad)
    print(
        f"\n8 threads x {CHATS} chats: {hits} creates hit the 2 ineligible lines, {elapsed:.2f} s"
    )
    assert hits < THREADS * len(bad)
    assert sum(1 for _, v in attempts if v is Verdict.SUCCESS) == CHATS
    assert sum(1 for _, v in attempts if v is Verdict.LINE_INELIGIBLE) == hits
    assert fake.count(CREATE) == CHATS + hits
    # After the switch, the good lines carried everything.
    assert {line for line, v in attempts if v is Verdict.SUCCESS} >= set(LINES) - set(bad)


def test_outcome_values_the_sender_reports_are_the_sdks_exceptions(
    fake: FakeLinqServer, sender: Sender, router: SpyRouter
) -> None:
    """What Router.report gets is the SDK's exception itself, not a copy or an Outcome."""
    fake.fail_next("403", route=CREATE, code=2024)
    with pytest.raises(linq.PermissionDeniedError) as info:
        sender.create_chat(to=[recipient(40)], message=MESSAGE)
    assert router.reports[-1][1] is info.value
    assert not isinstance(router.reports[-1][1], Outcome)
