"""FakeLinqServer's sends over real HTTP: chats, messages, voice memos, refusals, counts."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import pytest

from linq_router.testing import FakeClock, FakeLinqServer, SentMessage

A, B, RCS = "+12025551234", "+12025559876", "+13105550100"  # the default pool's lines
A_ID = "550e8400-e29b-41d4-a716-446655440000"
X, Y, Z = "+13125550001", "+13125550002", "+13125550003"
CREATE = "POST /v3/chats"
MESSAGE = "POST /v3/chats/{id}/messages"
VOICE_MEMO = "POST /v3/chats/{id}/voicememo"
HI = {"parts": [{"type": "text", "value": "hi"}]}


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeLinqServer]:
    with FakeLinqServer(clock=clock) as server:
        yield server


@pytest.fixture
def client(fake: FakeLinqServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    with httpx.Client(base_url=fake.base_url, headers=headers, timeout=5.0, verify=False) as c:
        yield c


def create(client: httpx.Client, sender: str, to: list[str], **extra: Any) -> httpx.Response:
    """POST /v3/chats with a one-part text message unless ``message=`` says otherwise."""
    return client.post("/v3/chats", json={"from": sender, "to": to, "message": HI, **extra})


def chat_of(client: httpx.Client, sender: str, to: list[str]) -> str:
    """A chat's id, creating (or reusing) it."""
    response = create(client, sender, to)
    assert response.status_code in {200, 201}, response.text
    chat_id: str = response.json()["chat"]["id"]
    return chat_id


def message(client: httpx.Client, chat_id: str, **body: Any) -> httpx.Response:
    """POST /v3/chats/{id}/messages with a text message unless the body says otherwise."""
    return client.post(f"/v3/chats/{chat_id}/messages", json=body or {"message": HI})


def memo(client: httpx.Client, chat_id: str, **body: Any) -> httpx.Response:
    """POST /v3/chats/{id}/voicememo from a public URL unless the body says otherwise."""
    body = body or {"voice_memo_url": "https://cdn.example.com/hello.m4a"}
    return client.post(f"/v3/chats/{chat_id}/voicememo", json=body)


def error_of(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """The error object of an envelope answer with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "success"}
    assert body["success"] is False
    error: dict[str, Any] = body["error"]
    assert error["status"] == status
    assert error["code"] == code
    assert error["doc_url"] == f"https://docs.linqapp.com/error/codes/{code // 1000}xxx/{code}/"
    return error


# -- creating and reusing chats -------------------------------------------------------


def test_create_answers_a_new_chat_on_the_line(
    fake: FakeLinqServer, client: httpx.Client, clock: FakeClock
) -> None:
    """A create answers 201 with the chat, its handles and the message, and is recorded."""
    response = create(client, A, [X])
    assert response.status_code == 201
    chat = response.json()["chat"]
    assert [(h["handle"], h["is_me"]) for h in chat["handles"]] == [(A, True), (X, False)]
    assert chat["is_group"] is False
    assert chat["service"] == "iMessage"
    assert chat["display_name"] == X
    assert chat["message"]["parts"] == [{"type": "text", "value": "hi"}]
    assert chat["message"]["from_handle"]["handle"] == A
    assert fake.sends == [
        SentMessage("chat", A, (X,), chat["id"], chat["message"]["id"], 201, None, clock())
    ]


def test_the_same_line_and_to_set_reuse_the_chat(client: httpx.Client) -> None:
    """Same line and the same set of handles (any order, emails in any case): same chat."""
    first = create(client, A, [X, Y, "Ann@Example.com"])
    again = create(client, A, ["ann@example.com", Y, X])
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["chat"]["id"] == first.json()["chat"]["id"]
    assert again.json()["chat"]["is_group"] is True
    others = {chat_of(client, B, [X, Y, "ann@example.com"]), chat_of(client, A, [X, Y])}
    assert first.json()["chat"]["id"] not in others
    assert len(others) == 2


def test_duplicate_handles_in_to_are_one_recipient(client: httpx.Client) -> None:
    """A handle listed twice is one participant, so the chat is the direct one."""
    direct = chat_of(client, A, [X])
    response = create(client, A, [X, X])
    assert response.status_code == 200
    assert response.json()["chat"]["id"] == direct
    assert len(response.json()["chat"]["handles"]) == 2


def test_an_rcs_line_makes_rcs_chats(client: httpx.Client) -> None:
    """A chat on an RCS line has the RCS service and the line's handle says so."""
    chat = create(client, RCS, [X]).json()["chat"]
    assert chat["service"] == "RCS"
    assert chat["handles"][0]["line_type"] == "RCS"


def test_the_api_prefix_works_for_sends(fake: FakeLinqServer, client: httpx.Client) -> None:
    """The real base URL's /api/partner prefix reaches the same routes."""
    response = client.post("/api/partner/v3/chats", json={"from": A, "to": [X], "message": HI})
    chat_id = response.json()["chat"]["id"]
    assert client.post(f"/api/partner/v3/chats/{chat_id}/messages", json={"message": HI}).is_success
    assert fake.count(CREATE) == fake.count(MESSAGE) == 1


# -- messages and voice memos ---------------------------------------------------------


def test_messages_and_voice_memos_go_out_on_the_chats_line(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """Neither names a line: both are recorded, and answered, with the chat's line."""
    chat_id = chat_of(client, B, [X])
    sent = message(client, chat_id)
    assert sent.status_code == 202
    assert sent.json()["chat_id"] == chat_id
    assert sent.json()["message"]["from_handle"]["handle"] == B
    voice = memo(client, chat_id)
    assert voice.status_code == 202
    body = voice.json()["voice_memo"]
    assert (body["from"], body["to"], body["chat"]["id"]) == (B, [X], chat_id)
    assert body["voice_memo"]["filename"] == "hello.m4a"
    assert body["voice_memo"]["mime_type"] == "audio/x-m4a"
    records = fake.sends
    assert [(s.kind, s.from_, s.to, s.chat_id, s.status) for s in records] == [
        ("chat", B, (X,), chat_id, 201),
        ("message", B, (X,), chat_id, 202),
        ("voice_memo", B, (X,), chat_id, 202),
    ]
    assert records[1].message_id == sent.json()["message"]["id"]
    assert records[2].message_id == body["id"]
    assert fake.send_count(B) == 3
    assert fake.send_count(A) == 0


def test_a_voice_memo_from_an_attachment(client: httpx.Client) -> None:
    """attachment_id works instead of a URL, and names the memo's file."""
    chat_id = chat_of(client, A, [X])
    body = memo(client, chat_id, attachment_id="att-1").json()["voice_memo"]
    assert body["voice_memo"]["id"] == "att-1"
    assert body["voice_memo"]["url"].startswith("https://cdn.linqapp.com/attachments/att-1/")


def test_an_unknown_chat_is_a_404(fake: FakeLinqServer, client: httpx.Client) -> None:
    """Messages and voice memos on a chat the fake never made answer 404 / 2001."""
    error_of(message(client, "no-such-chat"), 404, 2001)
    error_of(memo(client, "no-such-chat"), 404, 2001)
    assert [(s.kind, s.chat_id, s.from_, s.status) for s in fake.sends] == [
        ("message", "no-such-chat", "", 404),
        ("voice_memo", "no-such-chat", "", 404),
    ]
    assert fake.rejected_count(code=2001) == 2


def test_a_chat_whose_line_is_gone_refuses_sends(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """Once its line leaves the pool, a chat's messages answer 403 / 2005."""
    chat_id = chat_of(client, B, [X])
    fake.remove_number(B)
    error_of(message(client, chat_id), 403, 2005)
    assert fake.rejected_count(B, 2005) == 1


def test_links_are_refused_only_in_a_new_chats_first_message(client: httpx.Client) -> None:
    """A link, an effect or a reply_to opening a new chat is 400 / 1005; later, they pass."""
    link = {"parts": [{"type": "link", "value": "https://example.com"}]}
    url_text = {"parts": [{"type": "text", "value": "see https://example.com"}]}
    effect = {**HI, "effect": {"type": "screen", "name": "confetti"}}
    for content in (link, url_text, effect):
        error_of(create(client, A, [X], message=content), 400, 1005)
    chat_id = chat_of(client, A, [X])
    assert message(client, chat_id, message=link).status_code == 202
    assert create(client, A, [X], message=url_text).status_code == 200


# -- bad bodies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, 1003),
        (b"[1, 2]", 400, 1003),
        (b"\xff\xfe", 400, 1003),
        (b"[" * 100_000, 400, 1003),
        ({"to": [X], "message": HI}, 400, 1001),
        ({"from": A, "message": HI}, 400, 1001),
        ({"from": A, "to": [X]}, 400, 1001),
        ({"from": 12025551234, "to": [X], "message": HI}, 400, 1005),
        ({"from": "2025551234", "to": [X], "message": HI}, 400, 1002),
        ({"from": "+19995550000", "to": [X], "message": HI}, 403, 2005),
        ({"from": A, "to": [], "message": HI}, 400, 1005),
        ({"from": A, "to": X, "message": HI}, 400, 1005),
        ({"from": A, "to": [f"+1312555{n:04}" for n in range(32)], "message": HI}, 400, 1005),
        ({"from": A, "to": ["13125550001"], "message": HI}, 400, 1002),
        ({"from": A, "to": ["ann@example"], "message": HI}, 400, 1005),
        ({"from": A, "to": [7], "message": HI}, 400, 1005),
        ({"from": A, "to": [X], "message": {}}, 400, 1004),
        ({"from": A, "to": [X], "message": "hi"}, 400, 1004),
        ({"from": A, "to": [X], "message": {"parts": [{"type": "gif"}]}}, 400, 1004),
        ({"from": A, "to": [X], "message": {"parts": [{"type": "text"}]}}, 400, 1004),
        ({"from": A, "to": [X], "message": {"parts": [{"type": "media"}]}}, 400, 1004),
        ({"from": A, "to": [X], "message": {"parts": HI["parts"] * 2}}, 400, 1004),
        ({"from": A, "to": [X], "message": {**HI, "experience": {}}}, 400, 1004),
        ({"from": A, "to": [X], "message": HI, "override_optout": "yes"}, 400, 1005),
    ],
)
def test_bad_create_bodies_are_refused_in_the_envelope(
    fake: FakeLinqServer, client: httpx.Client, body: Any, status: int, code: int
) -> None:
    """Each bad create gets its 4xx envelope, creates nothing and is recorded as refused."""
    if isinstance(body, bytes):
        response = client.post("/v3/chats", content=body)
    else:
        response = client.post("/v3/chats", json=body)
    error_of(response, status, code)
    assert fake.send_count() == 0
    assert [(s.kind, s.status, s.code, s.chat_id) for s in fake.sends] == [
        ("chat", status, code, None)
    ]


def test_a_link_part_must_be_alone(client: httpx.Client) -> None:
    """A link part with any other part is 400 / 1004 even on an existing chat."""
    chat_id = chat_of(client, A, [X])
    parts = [{"type": "link", "value": "https://example.com"}, {"type": "text", "value": "x"}]
    error_of(message(client, chat_id, message={"parts": parts}), 400, 1004)


@pytest.mark.parametrize(
    ("route", "body", "code"),
    [
        ("messages", {}, 1001),
        ("messages", {"message": {"parts": []}}, 1004),
        ("voicememo", {"override_optout": False}, 1001),
        ("voicememo", {"voice_memo_url": "https://x.test/a.mp3", "attachment_id": "a"}, 1005),
        ("voicememo", {"voice_memo_url": "http://x.test/a.mp3"}, 1005),
        ("voicememo", {"attachment_id": ""}, 1005),
    ],
)
def test_bad_message_and_voice_memo_bodies(
    fake: FakeLinqServer, client: httpx.Client, route: str, body: dict[str, Any], code: int
) -> None:
    """A bad follow-up body is a 400 with its code, recorded against the chat's line."""
    chat_id = chat_of(client, A, [X])
    error_of(client.post(f"/v3/chats/{chat_id}/{route}", json=body), 400, code)
    assert fake.send_count() == 1
    assert fake.rejected_count(A, code) == 1


# -- line behaviours ------------------------------------------------------------------


def test_an_ineligible_line_refuses_every_send_before_creating(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """403 / 2027 for creates, messages and voice memos on its chats; nothing is created."""
    chat_id = chat_of(client, A, [X])
    fake.set_line_behaviour(A, "ineligible")
    error_of(create(client, A, [Y]), 403, 2027)
    error_of(create(client, A, [X]), 403, 2027)
    error_of(message(client, chat_id), 403, 2027)
    error_of(memo(client, chat_id), 403, 2027)
    assert create(client, B, [Y]).status_code == 201  # the other lines send
    assert client.get("/v3/phone_numbers").status_code == 200  # reads still work
    assert fake.rejected_count(A, 2027) == 4
    fake.set_line_behaviour(A_ID, "ok")  # by id works too
    assert create(client, A, [Y]).status_code == 201  # a new chat: the 403 made none
    assert message(client, chat_id).status_code == 202
    assert fake.send_count(A) == 3


def test_a_failing_line_answers_3006_and_creates_nothing(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """500 / 3006 for every send from the line, and no chat comes of it."""
    fake.set_line_behaviour(B, "failing")
    error_of(create(client, B, [X]), 500, 3006)
    chat_on_a = chat_of(client, A, [X])
    assert message(client, chat_on_a).status_code == 202
    fake.set_line_behaviour(B, "ok")
    assert create(client, B, [X]).status_code == 201
    assert fake.rejected_count(B, 3006) == 1
    assert fake.rejected_count(A) == 0


def test_set_line_behaviour_refuses_what_it_does_not_know(fake: FakeLinqServer) -> None:
    """An unknown behaviour or line is a ValueError naming it and the accepted values."""
    accepted = r"'ok', 'ineligible', 'failing', 'ineligible-async', got 'broken'"
    with pytest.raises(ValueError, match=accepted):
        fake.set_line_behaviour(A, "broken")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'\+12025551234'.*got '\+19995550000'"):
        fake.set_line_behaviour("+19995550000", "ineligible")


# -- opt-outs -------------------------------------------------------------------------


def test_an_opted_out_recipient_is_refused_on_every_line(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """403 / 2024 for creates and messages to any chat with the handle, until opt_in."""
    group = chat_of(client, A, [X, Y])
    fake.opt_out(Y)
    error_of(create(client, A, [Y]), 403, 2024)
    error_of(create(client, B, [Y]), 403, 2024)
    error_of(message(client, group), 403, 2024)
    error_of(memo(client, group), 403, 2024)
    assert create(client, A, [X]).status_code == 201
    assert fake.rejected_count(code=2024) == 4
    fake.opt_in(Y)
    assert message(client, group).status_code == 202


def test_override_optout_sends_this_once(fake: FakeLinqServer, client: httpx.Client) -> None:
    """override_optout lets one request through; the next without it is refused again."""
    fake.opt_out("Bob@Example.com")
    assert create(client, A, ["bob@example.com"], override_optout=True).status_code == 201
    error_of(create(client, A, ["bob@example.com"]), 403, 2024)


def test_opt_out_refuses_what_is_not_a_handle(fake: FakeLinqServer) -> None:
    """A value that is neither E.164 nor an email is refused at once."""
    with pytest.raises(ValueError, match=r"E\.164 number"):
        fake.opt_out("2025550101")
    with pytest.raises(TypeError):
        fake.opt_in(None)  # type: ignore[arg-type]


# -- the pair limit -------------------------------------------------------------------


def test_the_31st_message_in_60s_is_a_429_with_retry_after(
    fake: FakeLinqServer, client: httpx.Client, clock: FakeClock
) -> None:
    """30 a pair per moving 60 s; past it 429 / 1007 says, in whole seconds, when to retry."""
    chat_id = chat_of(client, A, [X])  # t=0
    clock.advance(10)
    assert all(message(client, chat_id).status_code == 202 for _ in range(29))  # t=10
    clock.advance(10)
    refused = message(client, chat_id)  # t=20: the send at t=0 leaves the window at t=60
    assert error_of(refused, 429, 1007)["retry_after"] == 40
    assert refused.headers["Retry-After"] == "40"
    clock.advance(39.5)
    late = memo(client, chat_id)
    assert error_of(late, 429, 1007)["retry_after"] == 1  # 0.5 s, rounded up
    assert late.headers["Retry-After"] == "1"
    clock.advance(0.5)
    assert message(client, chat_id).status_code == 202  # t=60: one slot free
    assert error_of(message(client, chat_id), 429, 1007)["retry_after"] == 10
    assert fake.rejected_count(A, 1007) == 3
    assert fake.send_count(A) == 31


def test_refused_sends_do_not_use_up_the_pair_limit(client: httpx.Client, clock: FakeClock) -> None:
    """Only accepted sends count: 429s while waiting do not push the window on."""
    chat_id = chat_of(client, A, [X])
    for _ in range(29):
        message(client, chat_id)
    for _ in range(5):
        clock.advance(1)
        assert message(client, chat_id).status_code == 429
    clock.advance(55)
    assert message(client, chat_id).status_code == 202


def test_the_pair_limit_is_per_sender_and_recipient(client: httpx.Client, clock: FakeClock) -> None:
    """A full pair refuses any chat including it; other lines and recipients still send."""
    chat_id = chat_of(client, A, [X])
    for _ in range(29):
        message(client, chat_id)
    error_of(create(client, A, [X, Y]), 429, 1007)  # a group with the full pair
    assert create(client, A, [Y]).status_code == 201
    assert create(client, B, [X]).status_code == 201
    clock.advance(1)
    group = chat_of(client, A, [Y, Z])  # Y's second send from A, Z's first
    for _ in range(28):
        assert message(client, group).status_code == 202
    error_of(message(client, group), 429, 1007)  # Y is at 30 now
    assert create(client, A, [Z]).status_code == 201  # Z is at 29


# -- faults and refused keys on the send routes ----------------------------------------


@pytest.mark.parametrize("route", [CREATE, "chat", "/v3/chats", "POST /api/partner/v3/chats"])
def test_a_3006_fault_on_create_creates_nothing(
    fake: FakeLinqServer, client: httpx.Client, route: str
) -> None:
    """A queued 3006 answers 500 before anything is made: the next create is a new chat."""
    fake.fail_next("3006", route=route)
    error_of(create(client, A, [X]), 500, 3006)
    assert fake.send_count() == 0
    assert [(s.kind, s.from_, s.to, s.status, s.code) for s in fake.sends] == [
        ("chat", A, (X,), 500, 3006)
    ]
    assert create(client, A, [X]).status_code == 201


def test_faults_can_target_each_send_route(fake: FakeLinqServer, client: httpx.Client) -> None:
    """Route names and concrete chat paths limit a fault to one send route or chat."""
    chat_id = chat_of(client, A, [X])
    other = chat_of(client, A, [Y])
    fake.fail_next("429", route="message", retry_after=2)
    fake.fail_next("403", route=VOICE_MEMO, code=2024)
    fake.fail_next("503", route=f"POST /v3/chats/{other}/messages")
    assert memo(client, chat_id).status_code == 403
    refused = message(client, chat_id)
    assert error_of(refused, 429, 1007)["retry_after"] == 2
    assert message(client, chat_id).status_code == 202
    assert message(client, other).status_code == 503
    assert create(client, A, [Z]).status_code == 201
    assert [(s.kind, s.status, s.code) for s in fake.sends if not s.accepted] == [
        ("voice_memo", 403, 2024),
        ("message", 429, 1007),
        ("message", 503, 3006),
    ]


def test_a_dropped_send_leaves_no_record_but_a_request(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """A drop answers nothing and creates nothing: in requests, not in sends."""
    fake.fail_next("drop", route="chat")
    with pytest.raises(httpx.RemoteProtocolError):
        create(client, A, [X])
    assert fake.sends == []
    assert fake.count(CREATE) == 1
    assert fake.requests[0].fault == "drop"


def test_a_truncated_answer_still_sent(fake: FakeLinqServer, client: httpx.Client) -> None:
    """A send whose answer is cut short was carried out: a chat exists, as in Linq."""
    fake.fail_next("truncated", route="chat")
    with pytest.raises(httpx.RemoteProtocolError):
        create(client, A, [X])
    assert fake.send_count(A) == 1
    assert create(client, A, [X]).status_code == 200  # reused: the first made it


def test_a_wrong_key_refuses_the_send_and_records_it(fake: FakeLinqServer) -> None:
    """401 / 2004 with nothing created; the attempt is logged with what the body named."""
    headers = {"Authorization": "Bearer wrong"}
    with httpx.Client(base_url=fake.base_url, headers=headers, timeout=5.0) as bad:
        error_of(create(bad, A, [X]), 401, 2004)
        error_of(message(bad, "some-chat"), 401, 2004)
    assert [(s.kind, s.from_, s.to, s.status) for s in fake.sends] == [
        ("chat", A, (X,), 401),
        ("message", "", (), 401),
    ]
    assert fake.rejected_count(A, 2004) == 1
    assert fake.send_count() == 0


# -- counting -------------------------------------------------------------------------


def test_counts_by_line_and_code(fake: FakeLinqServer, client: httpx.Client) -> None:
    """send_count and rejected_count filter by line (number or id) and by code."""
    chat_of(client, A, [X])
    chat_of(client, B, [X])
    fake.set_line_behaviour(B, "ineligible")
    create(client, B, [Y])
    create(client, "+19995550000", [Y])
    assert fake.send_count() == 2
    assert fake.send_count(A) == fake.send_count(A_ID) == 1
    assert fake.rejected_count() == 2
    assert fake.rejected_count(B) == fake.rejected_count(B, 2027) == 1
    assert fake.rejected_count(code=2005) == fake.rejected_count("+19995550000") == 1
    assert fake.rejected_count(A) == fake.rejected_count(B, 2024) == 0
    with pytest.raises(ValueError, match=r"E\.164 number or the id of a line"):
        fake.send_count("2025551234")


def test_requests_and_count_name_the_send_routes(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """Each send route has its canonical name, its alias and its concrete paths."""
    chat_id = chat_of(client, A, [X])
    message(client, chat_id)
    memo(client, chat_id)
    assert [r.route for r in fake.requests] == [CREATE, MESSAGE, VOICE_MEMO]
    assert fake.count(CREATE) == fake.count("chat") == 1
    assert fake.count(MESSAGE) == fake.count("message") == 1
    assert fake.count(f"POST /v3/chats/{chat_id}/messages") == 1
    assert fake.count("POST /v3/chats/other/messages") == 0
    assert fake.count(VOICE_MEMO) == fake.count("voice_memo") == fake.count("voicememo") == 1
    assert fake.wait_for_requests(3, timeout=1.0)


def test_reset_counts_forgets_sends_but_not_chats_or_limits(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """After reset_counts the chat is still reused and the full pair still refused."""
    chat_id = chat_of(client, A, [X])
    for _ in range(29):
        message(client, chat_id)
    fake.reset_counts()
    assert fake.sends == []
    assert fake.send_count() == 0
    assert fake.count() == 0
    error_of(create(client, A, [X]), 429, 1007)
    assert fake.sends[0].chat_id == chat_id


def test_sends_are_stamped_by_the_server_clock(
    fake: FakeLinqServer, client: httpx.Client, clock: FakeClock
) -> None:
    """Each send's at is the clock's reading, the same as its request's time."""
    chat_id = chat_of(client, A, [X])
    clock.advance(2.5)
    message(client, chat_id)
    assert [s.at for s in fake.sends] == [1000.0, 1002.5]
    assert [r.time for r in fake.requests] == [1000.0, 1002.5]


def test_sent_message_is_a_frozen_value() -> None:
    """SentMessage cannot be changed after the fact, and accepted reads its status."""
    sent = SentMessage("chat", A, (X,), "c", "m", 201, None, 1.0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        sent.status = 500  # type: ignore[misc]
    assert sent.accepted
    assert not attrs.evolve(sent, status=429, code=1007).accepted


def test_concurrent_creates_make_exactly_one_chat(fake: FakeLinqServer) -> None:
    """Sixteen threads creating the same chat get one 201, fifteen 200s, one chat id."""
    barrier = threading.Barrier(16, timeout=5.0)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {fake.api_key}"}

    def go() -> None:
        with httpx.Client(base_url=fake.base_url, headers=headers, timeout=5.0) as c:
            barrier.wait()
            response = create(c, A, [X, Y])
        with lock:
            answers.append((response.status_code, response.json()["chat"]["id"]))

    threads = [threading.Thread(target=go) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10.0)
    assert not any(t.is_alive() for t in threads)
    assert Counter(status for status, _ in answers) == {201: 1, 200: 15}
    assert len({chat_id for _, chat_id in answers}) == 1
    assert fake.send_count(A) == 16
