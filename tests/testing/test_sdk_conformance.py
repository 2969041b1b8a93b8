"""The official SDK (linq-python) against FakeLinqServer: the fake speaks the real API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import linq
import pytest
from linq import AsyncLinqAPIV3, LinqAPIV3

from linq_router.testing import FakeClock, FakeLinqServer, sample_pool

LIST = "GET /v3/phone_numbers"
UPDATE = "PUT /v3/phone_numbers/{id}"


@pytest.fixture
def fake() -> Iterator[FakeLinqServer]:
    with FakeLinqServer(sample_pool()) as server:
        yield server


def sdk(
    server: FakeLinqServer, *, api_key: str | None = None, base_url: str | None = None
) -> LinqAPIV3:
    """A strict SDK client with no retries, pointed at the fake."""
    return LinqAPIV3(
        api_key=api_key or server.api_key,
        base_url=base_url or server.base_url,
        _strict_response_validation=True,
        max_retries=0,
        timeout=5.0,
    )


@pytest.mark.parametrize("suffix", ["", "/api/partner", "/api/partner/"])
def test_list_parses_every_field_strictly(fake: FakeLinqServer, suffix: str) -> None:
    """Strict validation accepts the newest shape and every field matches what was served."""
    with sdk(fake, base_url=fake.base_url + suffix) as client:
        response = client.phone_numbers.list()
    served = fake.numbers
    assert len(response.phone_numbers) == len(served) == 12
    for parsed, entry in zip(response.phone_numbers, served, strict=True):
        assert parsed.id == entry["id"]
        assert parsed.phone_number == entry["phone_number"]
        assert parsed.reputation.status == entry["reputation"]["status"]
        assert parsed.reputation.doc_url == entry["reputation"]["doc_url"]
        assert parsed.line_type == entry["line_type"]
        assert parsed.forwarding_number == entry["forwarding_number"]
        # `status` is not in the SDK's model; it survives as an extra field.
        assert (parsed.model_extra or {}).get("status") == entry.get("status")
    assert {p.reputation.status for p in response.phone_numbers} == {
        "HEALTHY",
        "AT_RISK",
        "CRITICAL",
    }
    assert {p.line_type for p in response.phone_numbers} == {"iMessage", "RCS"}
    assert any(p.forwarding_number for p in response.phone_numbers)
    assert fake.count(LIST) == 1
    assert fake.requests[-1].authorized


def test_list_parses_the_transitional_shape(fake: FakeLinqServer) -> None:
    """With both reputation and health_status, the SDK reads reputation and keeps the rest."""
    fake.shape = "both"
    with sdk(fake) as client:
        response = client.phone_numbers.list()
    first = response.phone_numbers[0]
    assert first.reputation.status == "HEALTHY"
    assert (first.model_extra or {})["health_status"]["status"] == "HEALTHY"


def test_strict_sdk_rejects_the_oldest_shape(fake: FakeLinqServer) -> None:
    """The SDK declares `reputation` required, so a health_status-only list fails strictly."""
    fake.shape = "health_status"
    with sdk(fake) as client, pytest.raises(linq.APIResponseValidationError):
        client.phone_numbers.list()


def test_run_time_changes_reach_the_sdk(fake: FakeLinqServer) -> None:
    """A reputation change and a removed line show in the SDK's next list."""
    fake.set_reputation("+12025550101", "CRITICAL")
    fake.set_line_type("+12025550101", None)
    fake.remove_number("+61491570112")
    with sdk(fake) as client:
        lines = {p.phone_number: p for p in client.phone_numbers.list().phone_numbers}
    assert lines["+12025550101"].reputation.status == "CRITICAL"
    assert lines["+12025550101"].reputation.doc_url.endswith("#critical")
    assert lines["+12025550101"].line_type is None
    assert "+61491570112" not in lines


def test_update_parses_and_clears(fake: FakeLinqServer) -> None:
    """update() parses as PhoneNumberUpdateResponse; None and "" both clear."""
    line = fake.numbers[0]
    with sdk(fake) as client:
        updated = client.phone_numbers.update(line["id"], forwarding_number="+13125550000")
        assert updated.id == line["id"]
        assert updated.phone_number == line["phone_number"]
        assert updated.forwarding_number == "+13125550000"
        assert fake.numbers[0]["forwarding_number"] == "+13125550000"
        for cleared in (None, ""):
            fake.set_forwarding_number(line["id"], "+13125550001")
            result = client.phone_numbers.update(line["id"], forwarding_number=cleared)
            assert result.forwarding_number is None
            assert fake.numbers[0]["forwarding_number"] is None
    assert fake.count(UPDATE) == 3


def test_wrong_key_raises_authentication_error(fake: FakeLinqServer) -> None:
    """A refused key surfaces as the SDK's AuthenticationError carrying the 2004 envelope."""
    with sdk(fake, api_key="wrong-key") as client, pytest.raises(linq.AuthenticationError) as info:
        client.phone_numbers.list()
    assert info.value.status_code == 401
    # The SDK unwraps the envelope: `body` is the inner `error` object.
    assert info.value.body == {
        "status": 401,
        "code": 2004,
        "message": "Unauthorized - missing or invalid authentication token",
        "doc_url": "https://docs.linqapp.com/error/codes/2xxx/2004/",
    }
    assert fake.count(LIST) == 1


def test_3006_raises_internal_server_error_without_retries(fake: FakeLinqServer) -> None:
    """A queued 3006 is the SDK's InternalServerError after exactly one request."""
    fake.fail_next("3006")
    with sdk(fake) as client, pytest.raises(linq.InternalServerError) as info:
        client.phone_numbers.list()
    assert info.value.status_code == 500
    assert info.value.body == {
        "status": 500,
        "code": 3006,
        "message": "Internal server error",
        "doc_url": "https://docs.linqapp.com/error/codes/3xxx/3006/",
    }
    assert fake.count(LIST) == 1


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("429", "RateLimitError"),
        ("403", "PermissionDeniedError"),
        ("503", "InternalServerError"),
    ],
)
def test_other_faults_map_to_sdk_errors(fake: FakeLinqServer, kind: str, error: str) -> None:
    """429, 403 and 503 faults surface as the SDK's matching status errors."""
    fake.fail_next(kind, retry_after=0)
    with sdk(fake) as client, pytest.raises(getattr(linq, error)):
        client.phone_numbers.list()


def test_update_unknown_id_raises_not_found(fake: FakeLinqServer) -> None:
    """PUT on an unknown id is the SDK's NotFoundError."""
    with sdk(fake) as client, pytest.raises(linq.NotFoundError):
        client.phone_numbers.update("no-such-line", forwarding_number=None)


def test_sdk_retries_a_3006_when_allowed(fake: FakeLinqServer) -> None:
    """With retries on, the SDK gets past one 3006, waiting the Retry-After it was given."""
    fake.fail_next("3006", retry_after=0.01)
    with LinqAPIV3(
        api_key=fake.api_key, base_url=fake.base_url, max_retries=1, timeout=5.0
    ) as client:
        assert len(client.phone_numbers.list().phone_numbers) == 12
    assert fake.count(LIST) == 2


def test_async_sdk_lists(fake: FakeLinqServer) -> None:
    """The async SDK client parses the list strictly too."""

    async def main() -> int:
        async with AsyncLinqAPIV3(
            api_key=fake.api_key,
            base_url=fake.base_url,
            _strict_response_validation=True,
            max_retries=0,
            timeout=5.0,
        ) as client:
            response = await client.phone_numbers.list()
        return len(response.phone_numbers)

    assert asyncio.run(main()) == 12


# -- sends ----------------------------------------------------------------------------

CREATE = "POST /v3/chats"
MESSAGE = "POST /v3/chats/{id}/messages"
VOICE_MEMO = "POST /v3/chats/{id}/voicememo"
LINE, OTHER_LINE, RCS_LINE = "+12025550101", "+12125550102", "+16175550106"
TEXT = {"parts": [{"type": "text", "value": "Hello! How can I help you today?"}]}


def test_chats_create_send_and_voicememo_parse_strictly(fake: FakeLinqServer) -> None:
    """create, messages.send and send_voicememo parse strictly; all go out on the line."""
    with sdk(fake) as client:
        created = client.chats.create(from_=LINE, to=["+13125550001"], message=TEXT)
        chat = created.chat
        assert chat.handles[0].handle == LINE
        assert chat.handles[0].is_me is True
        assert [h.handle for h in chat.handles[1:]] == ["+13125550001"]
        assert chat.is_group is False
        assert chat.service == "iMessage"
        assert chat.health_status.status == "HEALTHY"
        assert chat.message.delivery_status == "queued"
        assert chat.message.parts[0].type == "text"
        assert chat.message.from_handle is not None
        assert chat.message.from_handle.handle == LINE
        again = client.chats.create(from_=LINE, to=["+13125550001"], message=TEXT)
        assert again.chat.id == chat.id
        sent = client.chats.messages.send(chat.id, message=TEXT)
        assert sent.chat_id == chat.id
        memo = client.chats.send_voicememo(chat.id, voice_memo_url="https://x.test/v.mp3")
        assert memo.voice_memo.from_ == LINE
        assert memo.voice_memo.to == ["+13125550001"]
        assert memo.voice_memo.chat.id == chat.id
        assert memo.voice_memo.voice_memo.mime_type == "audio/mpeg"
    assert [(s.kind, s.from_, s.chat_id) for s in fake.sends] == [
        ("chat", LINE, chat.id),
        ("chat", LINE, chat.id),
        ("message", LINE, chat.id),
        ("voice_memo", LINE, chat.id),
    ]
    assert [s.message_id for s in fake.sends] == [
        chat.message.id,
        again.chat.message.id,
        sent.message.id,
        memo.voice_memo.id,
    ]
    assert fake.count(CREATE) == 2
    assert fake.count(MESSAGE) == fake.count(VOICE_MEMO) == 1


@pytest.mark.parametrize(
    "content",
    [
        {
            "parts": [
                {"type": "text", "value": "a"},
                {"type": "media", "url": "https://x.test/p.png"},
            ]
        },
        {"parts": [{"type": "media", "attachment_id": "att-9"}]},
        {"parts": [{"type": "link", "value": "https://example.com"}]},
        {"parts": [{"type": "app_clip", "value": "https://appclip.apple.com/id?p=x"}]},
        {
            "parts": [
                {
                    "type": "imessage_app",
                    "app": {"bundle_id": "com.x.app", "name": "X", "team_id": "ABCDE12345"},
                    "layout": {"caption": "Hi"},
                    "url": "https://x.test/card",
                }
            ]
        },
        {"experience": {"name": "agentcard", "action": "attach_card"}},
        {**TEXT, "preferred_service": "SMS", "effect": {"type": "bubble", "name": "slam"}},
    ],
)
def test_every_part_kind_parses_strictly(fake: FakeLinqServer, content: Any) -> None:
    """Each kind of message the SDK sends comes back in a shape strict validation takes."""
    with sdk(fake) as client:
        chat = client.chats.create(from_=LINE, to=["ann@example.com"], message=TEXT).chat
        sent = client.chats.messages.send(chat.id, message=content)
    expected = [p["type"] for p in content.get("parts", [])]
    assert [p.type for p in sent.message.parts] == expected
    assert fake.send_count(LINE) == 2


def test_a_group_on_an_rcs_line(fake: FakeLinqServer) -> None:
    """A group chat on an RCS line parses with is_group and the RCS service."""
    to = ["+13125550001", "bob@example.com", "+447700900123"]
    with sdk(fake) as client:
        chat = client.chats.create(from_=RCS_LINE, to=to, message=TEXT).chat
        memo = client.chats.send_voicememo(chat.id, attachment_id="att-1").voice_memo
    assert chat.is_group is True
    assert chat.service == "RCS"
    assert chat.handles[0].line_type == "RCS"
    assert memo.chat.is_group is True
    assert memo.to == to


@pytest.mark.parametrize(
    ("arrange", "error", "status", "code"),
    [
        (lambda f: f.set_line_behaviour(LINE, "ineligible"), "PermissionDeniedError", 403, 2027),
        (lambda f: f.set_line_behaviour(LINE, "failing"), "InternalServerError", 500, 3006),
        (lambda f: f.opt_out("+13125550001"), "PermissionDeniedError", 403, 2024),
        (lambda f: f.fail_next("3006", route="chat"), "InternalServerError", 500, 3006),
    ],
)
def test_refused_creates_raise_the_sdks_errors(
    fake: FakeLinqServer, arrange: Any, error: str, status: int, code: int
) -> None:
    """Each refusal is the SDK's status error with Linq's code, and creates no chat."""
    arrange(fake)
    with sdk(fake) as client, pytest.raises(getattr(linq, error)) as info:
        client.chats.create(from_=LINE, to=["+13125550001"], message=TEXT)
    assert info.value.status_code == status
    assert info.value.code == code
    assert fake.send_count() == 0
    assert fake.rejected_count(LINE, code) == 1


def test_bad_requests_raise_the_sdks_errors(fake: FakeLinqServer) -> None:
    """A handle that is not E.164, a from that is none of the lines, an unknown chat."""
    with sdk(fake) as client:
        with pytest.raises(linq.BadRequestError) as bad:
            client.chats.create(from_=LINE, to=["3125550001"], message=TEXT)
        with pytest.raises(linq.PermissionDeniedError) as foreign:
            client.chats.create(from_="+19995550000", to=["+13125550001"], message=TEXT)
        with pytest.raises(linq.NotFoundError) as unknown:
            client.chats.messages.send("no-such-chat", message=TEXT)
    assert (bad.value.code, foreign.value.code, unknown.value.code) == (1002, 2005, 2001)


def test_the_pair_limit_is_the_sdks_rate_limit_error() -> None:
    """The 31st send to a pair in 60 s raises RateLimitError with an integer retry_after."""
    clock = FakeClock()
    with FakeLinqServer(sample_pool(), clock=clock) as server, sdk(server) as client:
        chat = client.chats.create(from_=LINE, to=["+13125550001"], message=TEXT).chat
        clock.advance(15.25)
        for _ in range(29):
            client.chats.messages.send(chat.id, message=TEXT)
        with pytest.raises(linq.RateLimitError) as info:
            client.chats.send_voicememo(chat.id, voice_memo_url="https://x.test/v.m4a")
        assert info.value.code == 1007
        assert info.value.retry_after == 45  # 44.75 s, rounded up
        assert info.value.response.headers["retry-after"] == "45"
        clock.advance(44.75)
        assert client.chats.messages.send(chat.id, message=TEXT).chat_id == chat.id
        assert server.rejected_count(LINE, 1007) == 1


def test_sdk_retry_after_a_3006_create_makes_one_chat(fake: FakeLinqServer) -> None:
    """With retries on, a create the fault refused is retried and makes one chat."""
    fake.fail_next("3006", route="chat", retry_after=0.01)
    with LinqAPIV3(
        api_key=fake.api_key, base_url=fake.base_url, max_retries=1, timeout=5.0
    ) as client:
        chat = client.chats.create(from_=OTHER_LINE, to=["+13125550001"], message=TEXT).chat
    assert fake.count(CREATE) == 2
    assert [(s.status, s.chat_id) for s in fake.sends] == [(500, None), (201, chat.id)]


def test_async_sdk_sends(fake: FakeLinqServer) -> None:
    """The async SDK creates, sends and sends a voice memo, parsing each strictly."""

    async def main() -> tuple[str, str, str]:
        async with AsyncLinqAPIV3(
            api_key=fake.api_key,
            base_url=fake.base_url,
            _strict_response_validation=True,
            max_retries=0,
            timeout=5.0,
        ) as client:
            created = await client.chats.create(from_=OTHER_LINE, to=["+13125550001"], message=TEXT)
            sent = await client.chats.messages.send(created.chat.id, message=TEXT)
            memo = await client.chats.send_voicememo(
                created.chat.id, voice_memo_url="https://x.test/v.m4a"
            )
            with pytest.raises(linq.NotFoundError):
                await client.chats.messages.send("no-such-chat", message=TEXT)
        return created.chat.id, sent.chat_id, memo.voice_memo.from_

    chat_id, sent_to, memo_from = asyncio.run(main())
    assert sent_to == chat_id
    assert memo_from == OTHER_LINE
    assert fake.send_count(OTHER_LINE) == 3
    assert fake.rejected_count(code=2001) == 1
