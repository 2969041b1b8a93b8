"""FakeLinqServer over real HTTP: routes, auth, shapes, run-time changes, faults, counts, stop."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from linq_router import LinqClient
from linq_router._models import LineStatus, LineType, PhoneNumber, Reputation
from linq_router._parsing import parse_phone_number_list
from linq_router.testing import (
    FAULT_KINDS,
    FakeLinqServer,
    Fault,
    default_pool,
    error_envelope,
    sample_pool,
)

LIST = "GET /v3/phone_numbers"
UPDATE = "PUT /v3/phone_numbers/{id}"

ENVELOPE_2004 = {
    "error": {
        "status": 401,
        "code": 2004,
        "message": "Unauthorized - missing or invalid authentication token",
        "doc_url": "https://docs.linqapp.com/error/codes/2xxx/2004/",
    },
    "success": False,
}
ENVELOPE_3006 = {
    "error": {
        "status": 500,
        "code": 3006,
        "message": "Internal server error",
        "doc_url": "https://docs.linqapp.com/error/codes/3xxx/3006/",
    },
    "success": False,
}


# verify=False: these are plain-HTTP calls, and skipping the CA bundle load saves ~35 ms
# per client.
PLAIN = httpx.Client(verify=False, timeout=5.0)


@pytest.fixture
def fake() -> Iterator[FakeLinqServer]:
    with FakeLinqServer() as server:
        yield server


@pytest.fixture
def client(fake: FakeLinqServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    with httpx.Client(base_url=fake.base_url, headers=headers, timeout=5.0, verify=False) as c:
        yield c


def assert_envelope(response: httpx.Response, status: int, code: int | None = None) -> None:
    """The answer is Linq's error envelope for ``status`` (and ``code``)."""
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "success"}
    assert body["success"] is False
    error = body["error"]
    assert {"status", "code", "message", "doc_url"} <= set(error)
    assert error["status"] == status
    assert isinstance(error["code"], int)
    assert error["doc_url"] == (
        f"https://docs.linqapp.com/error/codes/{error['code'] // 1000}xxx/{error['code']}/"
    )
    if code is not None:
        assert error["code"] == code


def raw_exchange(server: FakeLinqServer, path: str = "/v3/phone_numbers") -> bytes:
    """Send one GET over a bare socket and read until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as sock:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {server.api_key}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# -- lifecycle and addresses ---------------------------------------------------------


def test_base_url_is_loopback_with_ephemeral_port(fake: FakeLinqServer) -> None:
    """base_url is http://127.0.0.1:<port> with a real, non-zero port and the default key."""
    assert fake.port > 0
    assert fake.base_url == f"http://127.0.0.1:{fake.port}"
    assert fake.api_key == "test-key"
    assert fake.running


def test_start_and_stop_without_context_manager() -> None:
    """start() serves, stop() closes the port; both are idempotent."""
    server = FakeLinqServer()
    server.stop()  # before start: a no-op
    assert server.start() is server
    assert server.start() is server
    url = f"{server.base_url}/v3/phone_numbers"
    assert PLAIN.get(url, headers={"Authorization": "Bearer test-key"}).status_code == 200
    server.stop()
    server.stop()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        PLAIN.get(url, timeout=1.0)


def test_base_url_before_start_raises() -> None:
    """Asking for the address of a server that never started is an error, not a guess."""
    with pytest.raises(RuntimeError, match="not been started"):
        _ = FakeLinqServer().base_url


def test_repr_does_not_leak_the_key() -> None:
    """The repr names the address and pool size but never the API key."""
    with FakeLinqServer(api_key="sekrit-key") as server:
        text = repr(server)
    assert "sekrit" not in text
    assert str(server.port) in text


def test_stop_returns_quickly_with_a_delayed_request_in_flight() -> None:
    """stop() cuts a 30 s delay short, joins its threads, and the client gets an error."""
    server = FakeLinqServer().start()
    server.fail_next("delay", delay=30)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(
                PLAIN.get(
                    f"{server.base_url}/v3/phone_numbers",
                    headers={"Authorization": "Bearer test-key"},
                    timeout=10.0,
                )
            )
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert server.wait_for_requests(1, LIST, timeout=5.0)
    started = time.monotonic()
    server.stop(timeout=5.0)
    assert time.monotonic() - started < 2.0
    caller.join(timeout=5.0)
    assert not caller.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx.HTTPError)
    assert not [t for t in threading.enumerate() if t.name.startswith("FakeLinqServer")]


def test_stop_closes_idle_keep_alive_connections(fake: FakeLinqServer) -> None:
    """A pooled client's idle connection does not keep stop() waiting."""
    with httpx.Client(headers={"Authorization": "Bearer test-key"}, verify=False) as c:
        assert c.get(f"{fake.base_url}/v3/phone_numbers").status_code == 200
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 2.0


def test_async_context_manager_and_async_clients() -> None:
    """`async with` works and concurrent AsyncClient requests are all answered and counted."""

    async def main() -> list[int]:
        async with FakeLinqServer(api_key="k") as server:
            headers = {"Authorization": "Bearer k"}
            async with httpx.AsyncClient(
                base_url=server.base_url, headers=headers, verify=False
            ) as c:
                responses = await asyncio.gather(*(c.get("/v3/phone_numbers") for _ in range(10)))
            assert server.count(LIST) == 10
            return [r.status_code for r in responses]

    assert asyncio.run(main()) == [200] * 10


# -- routes ----------------------------------------------------------------------------


def test_list_serves_the_default_pool_in_the_newest_shape(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """GET /v3/phone_numbers returns every line with reputation, line_type, forwarding."""
    response = client.get("/v3/phone_numbers")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == {"phone_numbers": fake.numbers}
    assert body["phone_numbers"] == default_pool()
    first = body["phone_numbers"][0]
    assert first["id"] == "550e8400-e29b-41d4-a716-446655440000"
    assert first["phone_number"] == "+12025551234"
    assert first["reputation"] == {
        "status": "HEALTHY",
        "doc_url": "https://docs.linqapp.com/guides/phone-numbers/phone-reputation#healthy",
    }
    assert first["forwarding_number"] is None
    assert first["line_type"] == "iMessage"
    assert "health_status" not in first
    assert body["phone_numbers"][1]["reputation"]["doc_url"].endswith("#at-risk")


@pytest.mark.parametrize(
    "path",
    [
        "/api/partner/v3/phone_numbers",
        "/v3/phone_numbers/",
        "/v3/phone_numbers?limit=10",
    ],
)
def test_list_path_variants(client: httpx.Client, path: str) -> None:
    """The real base URL's /api/partner prefix, a trailing slash and a query all work."""
    response = client.get(path)
    assert response.status_code == 200
    assert len(response.json()["phone_numbers"]) == 3


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "test-key"},
        {"Authorization": "Basic test-key"},
        {"Authorization": "Bearer"},
        {"Authorization": "bearer wrong-key"},
    ],
)
def test_missing_or_wrong_key_is_401_with_the_exact_envelope(
    fake: FakeLinqServer, headers: dict[str, str]
) -> None:
    """Anything but `Bearer <api_key>` gets 401 with Linq's exact 2004 envelope."""
    response = PLAIN.get(f"{fake.base_url}/v3/phone_numbers", headers=headers)
    assert response.status_code == 401
    assert response.json() == ENVELOPE_2004
    assert fake.requests[-1].authorized is False


def test_custom_api_key() -> None:
    """A server built with api_key= accepts that key and refuses the default one."""
    with FakeLinqServer(api_key="live-abc") as server:
        url = f"{server.base_url}/v3/phone_numbers"
        assert server.api_key == "live-abc"
        assert PLAIN.get(url, headers={"Authorization": "Bearer live-abc"}).status_code == 200
        assert PLAIN.get(url, headers={"Authorization": "Bearer test-key"}).status_code == 401


def test_update_sets_and_clears_the_forwarding_number(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """PUT answers exactly {id, phone_number, forwarding_number}; null and "" clear it."""
    line = fake.numbers[1]
    response = client.put(
        f"/v3/phone_numbers/{line['id']}", json={"forwarding_number": "+13125550000"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "id": line["id"],
        "phone_number": line["phone_number"],
        "forwarding_number": "+13125550000",
    }
    listed = client.get("/v3/phone_numbers").json()["phone_numbers"]
    assert listed[1]["forwarding_number"] == "+13125550000"
    for cleared in (None, ""):
        fake.set_forwarding_number(line["id"], "+13125550001")
        response = client.put(
            f"/api/partner/v3/phone_numbers/{line['id']}", json={"forwarding_number": cleared}
        )
        assert response.json()["forwarding_number"] is None
        assert fake.numbers[1]["forwarding_number"] is None


def test_update_unknown_id_is_a_404_envelope(fake: FakeLinqServer, client: httpx.Client) -> None:
    """PUT on an id the partner does not own answers 404 and changes nothing."""
    before = fake.numbers
    response = client.put("/v3/phone_numbers/no-such-line", json={"forwarding_number": None})
    assert_envelope(response, 404)
    assert fake.numbers == before


def test_update_without_the_key_is_refused(fake: FakeLinqServer) -> None:
    """An unauthorized PUT is a 401 and does not touch the line."""
    line_id = fake.numbers[0]["id"]
    response = PLAIN.put(
        f"{fake.base_url}/v3/phone_numbers/{line_id}", json={"forwarding_number": "+15555550100"}
    )
    assert response.json() == ENVELOPE_2004
    assert fake.numbers[0]["forwarding_number"] is None


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{not json", 400, 1003),
        (b"[]", 400, 1003),
        (b"{}", 400, 1001),
        (b'{"forwarding_number": "5551234"}', 400, 1002),
        (b'{"forwarding_number": 15551234}', 422, 1005),
    ],
)
def test_update_bad_body_is_a_4xx_envelope(
    fake: FakeLinqServer, client: httpx.Client, content: bytes, status: int, code: int
) -> None:
    """Bad JSON, a missing field, a non-E.164 or non-string number each get an envelope."""
    fake.set_forwarding_number(fake.numbers[0]["id"], "+12025550199")
    response = client.put(
        f"/v3/phone_numbers/{fake.numbers[0]['id']}",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert_envelope(response, status, code)
    assert fake.numbers[0]["forwarding_number"] == "+12025550199"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v3/chats"),
        ("POST", "/v3/phone_numbers"),
        ("GET", "/v3/phone_numbers/550e8400-e29b-41d4-a716-446655440000"),
        ("DELETE", "/v3/phone_numbers/550e8400-e29b-41d4-a716-446655440000"),
        ("PUT", "/v3/phone_numbers"),
        ("POST", "/v3/messages"),
        ("POST", "/v3/chats/some-chat"),
        ("POST", "/v3/chats/some-chat/typing"),
        ("POST", "/v3/chats//messages"),
        ("GET", "/v3/chats/some-chat/messages"),
        ("PUT", "/v3/chats/some-chat/voicememo"),
    ],
)
def test_unknown_route_is_a_404_envelope(
    fake: FakeLinqServer, client: httpx.Client, method: str, path: str
) -> None:
    """Anything but the five served routes answers 404 in the envelope, and is no send."""
    assert_envelope(client.request(method, path), 404)
    assert fake.sends == []


def test_unknown_routes_do_not_consume_faults(fake: FakeLinqServer, client: httpx.Client) -> None:
    """A queued fault waits for a known route; a 404 request leaves it queued."""
    fake.fail_next("3006")
    assert client.get("/v3/nope").status_code == 404
    assert client.get("/v3/phone_numbers").json() == ENVELOPE_3006


def test_refused_requests_do_not_consume_faults(fake: FakeLinqServer) -> None:
    """A wrong key gets its 401 first; the fault stays for the next authorized request."""
    fake.fail_next("3006")
    url = f"{fake.base_url}/v3/phone_numbers"
    assert PLAIN.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert PLAIN.get(url, headers={"Authorization": "Bearer test-key"}).status_code == 500


def test_bad_request_line_gets_the_envelope_not_html(fake: FakeLinqServer) -> None:
    """Even a request the stdlib parser rejects is answered with JSON."""
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5.0) as sock:
        sock.sendall(b"GET /v3/phone_numbers extra HTTP/1.1\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["success"] is False


# -- shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "has_reputation", "has_health", "has_line_type"),
    [
        ("reputation", True, False, True),
        ("health_status", False, True, False),
        ("both", True, True, True),
    ],
)
def test_shapes(shape: Any, has_reputation: bool, has_health: bool, has_line_type: bool) -> None:
    """Each shape carries exactly its reputation fields; the oldest has no line_type."""
    with FakeLinqServer(shape=shape) as server:
        body = PLAIN.get(
            f"{server.base_url}/v3/phone_numbers", headers={"Authorization": "Bearer test-key"}
        ).json()
    for entry in body["phone_numbers"]:
        assert ("reputation" in entry) is has_reputation
        assert ("health_status" in entry) is has_health
        assert ("line_type" in entry) is has_line_type
        for key in ("reputation", "health_status"):
            if key in entry:
                assert set(entry[key]) == {"status", "doc_url"}
                assert entry[key]["doc_url"].startswith("https://docs.linqapp.com/guides/")
    if has_reputation and has_health:
        assert all(e["reputation"] == e["health_status"] for e in body["phone_numbers"])


def test_shape_changes_at_run_time(fake: FakeLinqServer, client: httpx.Client) -> None:
    """Setting .shape changes the very next response; a bad shape is refused."""
    assert "reputation" in client.get("/v3/phone_numbers").json()["phone_numbers"][0]
    fake.shape = "health_status"
    entry = client.get("/v3/phone_numbers").json()["phone_numbers"][0]
    assert "reputation" not in entry
    assert entry["health_status"]["status"] == "HEALTHY"
    assert entry["health_status"]["doc_url"].endswith("phone-health#healthy")
    assert fake.shape == "health_status"
    with pytest.raises(ValueError, match="shape"):
        fake.shape = "v2"  # type: ignore[assignment]
    fake.set_shape("both")
    entry = client.get("/v3/phone_numbers").json()["phone_numbers"][0]
    assert entry["reputation"]["status"] == entry["health_status"]["status"] == "HEALTHY"


# -- the pool at run time --------------------------------------------------------------


def served(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """The served lines keyed by phone number."""
    entries = client.get("/v3/phone_numbers").json()["phone_numbers"]
    return {e["phone_number"]: e for e in entries}


def test_add_and_remove_numbers(fake: FakeLinqServer, client: httpx.Client) -> None:
    """add_number returns the id it serves; remove_number takes an id or a number."""
    new_id = fake.add_number("+14155550123", reputation="AT_RISK", line_type="RCS")
    entry = served(client)["+14155550123"]
    assert entry["id"] == new_id
    assert entry["reputation"]["status"] == "AT_RISK"
    assert entry["line_type"] == "RCS"
    assert "status" not in entry
    explicit = fake.add_number(
        "+14155550124", id="id-124", status="FLAGGED", forwarding_number="+14155550999"
    )
    assert explicit == "id-124"
    assert served(client)["+14155550124"]["status"] == "FLAGGED"
    assert served(client)["+14155550124"]["forwarding_number"] == "+14155550999"
    with pytest.raises(ValueError, match="already exists"):
        fake.add_number("+14155550125", id="id-124")
    fake.remove_number(new_id)
    fake.remove_number("+14155550124")
    assert set(served(client)) == {"+12025551234", "+12025559876", "+13105550100"}
    with pytest.raises(KeyError):
        fake.remove_number("+19999999999")


def test_set_reputation_status_and_line_type(fake: FakeLinqServer, client: httpx.Client) -> None:
    """Each setter shows in the next response; None omits status and line_type."""
    fake.set_reputation("+12025551234", "CRITICAL")
    fake.set_status("+12025551234", "FLAGGED")
    fake.set_line_type("+12025551234", "RCS")
    entry = served(client)["+12025551234"]
    assert entry["reputation"] == {
        "status": "CRITICAL",
        "doc_url": "https://docs.linqapp.com/guides/phone-numbers/phone-reputation#critical",
    }
    assert entry["status"] == "FLAGGED"
    assert entry["line_type"] == "RCS"
    line_id = entry["id"]
    fake.set_reputation(line_id, raw_reputation="SUSPENDED")  # newer than the library
    fake.set_status(line_id, None)
    fake.set_line_type(line_id, None)
    entry = served(client)["+12025551234"]
    assert entry["reputation"]["status"] == "SUSPENDED"
    assert "status" not in entry
    assert "line_type" not in entry
    with pytest.raises(KeyError):
        fake.set_reputation("nope", "HEALTHY")


def test_set_numbers_accepts_strings_mappings_and_models(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """E.164 strings, flat or API-shaped dicts and PhoneNumber objects all become lines."""
    fake.set_numbers(
        [
            "+12025550001",
            {"phone_number": "+12025550002", "reputation": "AT_RISK", "line_type": None},
            {
                "id": "api-shaped",
                "phone_number": "+12025550003",
                "health_status": {"status": "CRITICAL", "doc_url": "https://example.test/x"},
            },
            PhoneNumber(
                id="model",
                phone_number="+447700900004",
                reputation=Reputation.AT_RISK,
                line_type="RCS",
                status="ACTIVE",
                forwarding_number="+447700900999",
            ),
        ]
    )
    lines = served(client)
    assert list(lines) == ["+12025550001", "+12025550002", "+12025550003", "+447700900004"]
    assert lines["+12025550001"]["reputation"]["status"] == "HEALTHY"
    assert lines["+12025550001"]["line_type"] == "iMessage"
    assert "line_type" not in lines["+12025550002"]
    assert lines["+12025550003"]["id"] == "api-shaped"
    assert lines["+12025550003"]["reputation"] == {
        "status": "CRITICAL",
        "doc_url": "https://example.test/x",
    }
    assert lines["+447700900004"] == {
        "id": "model",
        "phone_number": "+447700900004",
        "reputation": {
            "status": "AT_RISK",
            "doc_url": "https://docs.linqapp.com/guides/phone-numbers/phone-reputation#at-risk",
        },
        "forwarding_number": "+447700900999",
        "line_type": "RCS",
        "status": "ACTIVE",
    }
    fake.set_numbers([])
    assert client.get("/v3/phone_numbers").json() == {"phone_numbers": []}
    with pytest.raises(ValueError, match="duplicate"):
        fake.set_numbers(
            [
                {"id": "a", "phone_number": "+12025550001"},
                {"id": "a", "phone_number": "+12025550002"},
            ]
        )
    with pytest.raises(TypeError):
        fake.set_numbers([42])  # type: ignore[list-item]


A_LINE = "+12025551234"  # in the default pool


@pytest.mark.parametrize(
    ("call", "needles"),
    [
        (
            lambda f: f.set_reputation(A_LINE, "critical"),
            ["reputation", "'critical'", "'CRITICAL'"],
        ),
        (
            lambda f: f.set_reputation(A_LINE, "BAD"),
            ["reputation", "'BAD'", "'AT_RISK'", "raw_reputation"],
        ),
        (
            lambda f: f.set_reputation(A_LINE, Reputation.UNKNOWN),
            ["reputation", "UNKNOWN", "raw_reputation"],
        ),
        (
            lambda f: f.set_status(A_LINE, "flagged"),
            ["status", "'flagged'", "'FLAGGED'", "'ACTIVE'"],
        ),
        (lambda f: f.set_status(A_LINE, "PAUSED"), ["status", "'PAUSED'", "raw_status"]),
        (lambda f: f.set_line_type(A_LINE, "imessage"), ["line_type", "'imessage'", "'iMessage'"]),
        (
            lambda f: f.set_line_type(A_LINE, "SMS"),
            ["line_type", "'SMS'", "'RCS'", "raw_line_type"],
        ),
        (
            lambda f: f.set_forwarding_number(A_LINE, "2025550199"),
            ["forwarding_number", "'2025550199'", "E.164"],
        ),
        (lambda f: f.add_number("2025550199"), ["phone_number", "'2025550199'", "E.164"]),
        (
            lambda f: f.add_number("+12025550199", reputation="Healthy"),
            ["reputation", "'Healthy'", "'HEALTHY'"],
        ),
        (
            lambda f: f.add_number("+12025550199", status="active"),
            ["status", "'active'", "'ACTIVE'"],
        ),
        (lambda f: f.add_number("+12025550199", line_type="rcs"), ["line_type", "'rcs'", "'RCS'"]),
        (
            lambda f: f.add_number("+12025550199", forwarding_number="555"),
            ["forwarding_number", "'555'"],
        ),
        (lambda f: f.add_number("+12025550199", id=""), ["id", "''"]),
        (
            lambda f: f.set_numbers([{"phone_number": "+12025550199", "reputation": "GOOD"}]),
            ["numbers[0]", "reputation", "'GOOD'", "'HEALTHY'"],
        ),
        (
            lambda f: f.set_numbers(
                ["+12025550198", {"phone_number": "+12025550199", "reputation": {"status": "bad"}}]
            ),
            ["numbers[1]", "reputation", "'bad'", "'CRITICAL'"],
        ),
        (
            lambda f: f.set_numbers(
                [{"phone_number": "+12025550199", "health_status": {"status": "ok"}}]
            ),
            ["numbers[0]", "health_status", "'ok'"],
        ),
        (
            lambda f: f.set_numbers([{"phone_number": "+12025550199", "reputaton": "CRITICAL"}]),
            ["numbers[0]", "'reputaton'", "reputation"],
        ),
        (lambda f: f.set_numbers(["12025550199"]), ["numbers[0]", "'12025550199'", "E.164"]),
        (
            lambda f: f.set_numbers([PhoneNumber(id="x", phone_number="555-0100")]),
            ["numbers[0]", "'555-0100'", "E.164"],
        ),
    ],
)
def test_setters_refuse_values_linq_never_sends(
    fake: FakeLinqServer, client: httpx.Client, call: Any, needles: list[str]
) -> None:
    """A value Linq never sends is a ValueError naming the argument, the value and the choices."""
    before = client.get("/v3/phone_numbers").json()
    with pytest.raises(ValueError) as info:  # noqa: PT011 - the message is checked below
        call(fake)
    for needle in needles:
        assert needle in str(info.value)
    assert client.get("/v3/phone_numbers").json() == before  # nothing half-applied


def test_a_typo_in_a_reputation_no_longer_reads_as_unknown(fake: FakeLinqServer) -> None:
    """set_reputation(n, "critical") used to serve a status the client reads as UNKNOWN."""
    with pytest.raises(ValueError, match="did you mean 'CRITICAL'"):
        fake.set_reputation(A_LINE, "critical")
    fake.set_reputation(A_LINE, "CRITICAL")
    fake.set_reputation(A_LINE, Reputation.AT_RISK)
    with LinqClient(fake.api_key, base_url=fake.base_url) as linq:
        line = next(n for n in linq.list_phone_numbers() if n.phone_number == A_LINE)
    assert line.reputation is Reputation.AT_RISK
    assert line.reputation_raw == "AT_RISK"


def test_raw_values_serve_what_linq_may_send_later(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """raw_reputation / raw_status / raw_line_type serve any string; the client reads UNKNOWN."""
    fake.set_numbers(
        [*fake.numbers, {"phone_number": "+12025550179", "raw_reputation": "NEW_VALUE"}]
    )
    fake.set_reputation(A_LINE, raw_reputation="SUSPENDED")
    fake.set_status(A_LINE, raw_status="PAUSED")
    fake.set_line_type(A_LINE, raw_line_type="SMS")
    added = fake.add_number(
        "+12025550177", raw_reputation="PROBATION", raw_status="LIMITED", raw_line_type="WhatsApp"
    )
    lines = served(client)
    assert lines[A_LINE]["reputation"] == {
        "status": "SUSPENDED",
        "doc_url": "https://docs.linqapp.com/guides/phone-numbers/phone-reputation#suspended",
    }
    assert (lines[A_LINE]["status"], lines[A_LINE]["line_type"]) == ("PAUSED", "SMS")
    assert lines["+12025550177"]["id"] == added
    assert lines["+12025550177"]["reputation"]["status"] == "PROBATION"
    assert (lines["+12025550177"]["status"], lines["+12025550177"]["line_type"]) == (
        "LIMITED",
        "WhatsApp",
    )
    assert lines["+12025550179"]["reputation"]["status"] == "NEW_VALUE"
    with LinqClient(fake.api_key, base_url=fake.base_url) as linq:
        parsed = {n.phone_number: n for n in linq.list_phone_numbers()}
    assert parsed[A_LINE].reputation is Reputation.UNKNOWN
    assert parsed[A_LINE].reputation_raw == "SUSPENDED"
    assert parsed["+12025550179"].reputation_raw == "NEW_VALUE"


@pytest.mark.parametrize(
    "call",
    [
        lambda f: f.set_reputation(A_LINE, "CRITICAL", raw_reputation="SUSPENDED"),
        lambda f: f.set_reputation(A_LINE),
        lambda f: f.set_status(A_LINE, "FLAGGED", raw_status="PAUSED"),
        lambda f: f.set_line_type(A_LINE, "RCS", raw_line_type="SMS"),
        lambda f: f.add_number("+12025550177", reputation="AT_RISK", raw_reputation="X"),
        lambda f: f.set_numbers(
            [{"phone_number": "+12025550177", "reputation": "AT_RISK", "raw_reputation": "X"}]
        ),
    ],
)
def test_a_value_and_its_raw_twin_together_are_refused(fake: FakeLinqServer, call: Any) -> None:
    """Giving both (or, for set_reputation, neither) of a value and its raw_ twin is an error."""
    with pytest.raises(ValueError, match="raw_"):
        call(fake)


def test_raw_values_must_be_strings(fake: FakeLinqServer) -> None:
    """A raw value that is not a string is a TypeError naming the argument."""
    with pytest.raises(TypeError, match="raw_reputation"):
        fake.set_reputation(A_LINE, raw_reputation=3)  # type: ignore[arg-type]


def test_phone_numbers_round_trip_through_the_parser() -> None:
    """PhoneNumber objects served by the fake parse back to equal objects."""
    variants: list[tuple[Reputation, LineType | None, LineStatus | None, str | None]] = [
        (Reputation.HEALTHY, "iMessage", "ACTIVE", None),
        (Reputation.AT_RISK, "RCS", None, "+12025550199"),
        (Reputation.CRITICAL, None, "FLAGGED", None),
    ]
    originals = [
        PhoneNumber(
            id=f"id-{i}",
            phone_number=f"+1202555010{i}",
            reputation=rep,
            line_type=line_type,
            doc_url=f"https://docs.linqapp.com/guides/phone-numbers/phone-reputation#{i}",
            status=status,
            forwarding_number=fwd,
            reputation_raw=rep.value,
        )
        for i, (rep, line_type, status, fwd) in enumerate(variants)
    ]
    with FakeLinqServer(originals) as server:
        body = PLAIN.get(
            f"{server.base_url}/v3/phone_numbers", headers={"Authorization": "Bearer test-key"}
        ).json()
    assert parse_phone_number_list(body) == originals


def test_sample_pool_is_realistic_and_deterministic() -> None:
    """About a dozen lines: mostly HEALTHY iMessage, some AT_RISK/CRITICAL/RCS, one FLAGGED."""
    pool = sample_pool()
    assert pool == sample_pool()
    assert pool is not sample_pool()
    assert 10 <= len(pool) <= 14
    reps = Counter(e["reputation"]["status"] for e in pool)
    assert reps["HEALTHY"] > len(pool) / 2
    assert reps["AT_RISK"] >= 1
    assert 1 <= reps["CRITICAL"] <= 2
    assert sum(e.get("status") == "FLAGGED" for e in pool) == 1
    types = Counter(e["line_type"] for e in pool)
    assert types["iMessage"] > types["RCS"] >= 2
    assert sum(e["forwarding_number"] is not None for e in pool) >= 2
    assert len({e["phone_number"][:5] for e in pool if e["phone_number"].startswith("+1")}) >= 5
    assert any(e["phone_number"].startswith(("+44", "+61")) for e in pool)
    assert len({e["id"] for e in pool}) == len(pool)
    assert len(parse_phone_number_list({"phone_numbers": pool})) == len(pool)
    pool[0]["phone_number"] = "+10000000000"
    assert sample_pool()[0]["phone_number"] != "+10000000000"


def test_sample_pool_is_served_as_given() -> None:
    """A server built from sample_pool() serves exactly those entries."""
    with FakeLinqServer(sample_pool()) as server:
        body = PLAIN.get(
            f"{server.base_url}/v3/phone_numbers", headers={"Authorization": "Bearer test-key"}
        ).json()
    assert body == {"phone_numbers": sample_pool()}


# -- faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["3006", "500"])
def test_3006_fault_is_the_exact_envelope(
    fake: FakeLinqServer, client: httpx.Client, kind: str
) -> None:
    """3006/500 answers 500 with Linq's exact 3006 envelope, then the list again."""
    fake.fail_next(kind, times=2)
    for _ in range(2):
        response = client.get("/v3/phone_numbers")
        assert response.status_code == 500
        assert response.json() == ENVELOPE_3006
    assert client.get("/v3/phone_numbers").status_code == 200
    assert [r.fault for r in fake.requests] == [kind, kind, None]


def test_503_with_and_without_retry_after(fake: FakeLinqServer, client: httpx.Client) -> None:
    """503 carries Retry-After only when asked to."""
    fake.fail_next("503")
    fake.fail_next("503", retry_after=2)
    first = client.get("/v3/phone_numbers")
    assert_envelope(first, 503)
    assert "retry-after" not in first.headers
    second = client.get("/v3/phone_numbers")
    assert_envelope(second, 503)
    assert second.headers["retry-after"] == "2"


@pytest.mark.parametrize(("retry_after", "header"), [(None, "1"), (7, "7"), (0.25, "0.25")])
def test_429_has_retry_after_header_and_body(
    fake: FakeLinqServer, client: httpx.Client, retry_after: float | None, header: str
) -> None:
    """429 is code 1007 with Retry-After and error.retry_after agreeing."""
    fake.fail_next("429", retry_after=retry_after)
    response = client.get("/v3/phone_numbers")
    assert_envelope(response, 429, 1007)
    assert response.headers["retry-after"] == header
    assert response.json()["error"]["retry_after"] == float(header)


def test_401_fault_with_the_right_key(fake: FakeLinqServer, client: httpx.Client) -> None:
    """A queued 401 refuses even the right key, with the exact 2004 envelope."""
    fake.fail_next("401")
    response = client.get("/v3/phone_numbers")
    assert response.status_code == 401
    assert response.json() == ENVELOPE_2004
    assert fake.requests[-1].authorized is True


def test_403_fault_is_2027_and_code_overrides(fake: FakeLinqServer, client: httpx.Client) -> None:
    """403 defaults to code 2027 (line ineligible); code=2024 gives the opt-out error."""
    fake.fail_next("403")
    fake.fail_next("403", code=2024)
    assert_envelope(client.get("/v3/phone_numbers"), 403, 2027)
    assert_envelope(client.get("/v3/phone_numbers"), 403, 2024)


def test_any_http_error_status_is_a_fault_kind(fake: FakeLinqServer, client: httpx.Client) -> None:
    """Statuses without a named default (409, 418) still answer in the envelope."""
    fake.fail_next("409")
    fake.fail_next("418", message="teapot")
    assert_envelope(client.get("/v3/phone_numbers"), 409)
    response = client.get("/v3/phone_numbers")
    assert_envelope(response, 418)
    assert response.json()["error"]["message"] == "teapot"


def test_malformed_body(fake: FakeLinqServer, client: httpx.Client) -> None:
    """'malformed' is a 200 whose body is not JSON; body= replaces it."""
    fake.fail_next("malformed")
    fake.fail_next("malformed", body=b"<html>")
    response = client.get("/v3/phone_numbers")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert client.get("/v3/phone_numbers").content == b"<html>"
    assert client.get("/v3/phone_numbers").json() == {"phone_numbers": fake.numbers}


def test_wrong_shape_and_raw_overrides(fake: FakeLinqServer, client: httpx.Client) -> None:
    """'wrong-shape' serves {"numbers": []} or any JSON/bytes the test supplies."""
    fake.fail_next("wrong-shape")
    fake.fail_next("wrong_shape", body={"phone_numbers": [{"id": 1}]})
    fake.fail_next("wrong-shape", body=b'{"phone_numbers": null}')
    fake.fail_next("wrong-shape", body=[1, 2])
    assert client.get("/v3/phone_numbers").json() == {"numbers": []}
    assert client.get("/v3/phone_numbers").json() == {"phone_numbers": [{"id": 1}]}
    assert client.get("/v3/phone_numbers").json() == {"phone_numbers": None}
    assert client.get("/v3/phone_numbers").json() == [1, 2]
    assert len(client.get("/v3/phone_numbers").json()["phone_numbers"]) == 3


def test_truncated_body_promises_more_than_it_sends(fake: FakeLinqServer) -> None:
    """'truncated' sends a Content-Length larger than the bytes before the close."""
    fake.fail_next("truncated")
    head, _, body = raw_exchange(fake).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    lengths = [
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    assert len(lengths) == 1
    assert 0 < len(body) < lengths[0]


def test_truncated_body_is_a_protocol_error_for_httpx(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """httpx reports the cut body; the next request is answered in full."""
    fake.fail_next("truncated")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v3/phone_numbers")
    assert client.get("/v3/phone_numbers").status_code == 200


def test_drop_closes_without_an_answer(fake: FakeLinqServer, client: httpx.Client) -> None:
    """'drop' closes the connection with no bytes at all."""
    fake.fail_next("drop", times=2)
    assert raw_exchange(fake) == b""
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v3/phone_numbers")
    assert client.get("/v3/phone_numbers").status_code == 200
    assert fake.count(LIST) == 3


def test_delay_then_normal_answer(fake: FakeLinqServer, client: httpx.Client) -> None:
    """'delay' holds the answer D seconds, then answers normally."""
    fake.fail_next("delay", delay=0.3)
    started = time.monotonic()
    response = client.get("/v3/phone_numbers")
    assert time.monotonic() - started >= 0.3
    assert response.json() == {"phone_numbers": fake.numbers}


def test_delay_makes_a_short_timeout_fire(fake: FakeLinqServer, client: httpx.Client) -> None:
    """A client timeout shorter than the delay raises ReadTimeout; the next call is fine."""
    fake.fail_next("delay", delay=2.0)
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v3/phone_numbers", timeout=0.2)
    assert client.get("/v3/phone_numbers").status_code == 200


def test_delay_combines_with_an_error(fake: FakeLinqServer, client: httpx.Client) -> None:
    """delay= on an error kind delays that error."""
    fake.fail_next("3006", delay=0.2)
    started = time.monotonic()
    assert client.get("/v3/phone_numbers").json() == ENVELOPE_3006
    assert time.monotonic() - started >= 0.2


def test_delay_default_is_one_second() -> None:
    """A 'delay' fault without delay= waits one second."""
    with FakeLinqServer() as server:
        assert server.fail_next("delay").delay == 1.0


def test_faults_on_the_update_route(fake: FakeLinqServer, client: httpx.Client) -> None:
    """Faults apply to PUT too, and a route-limited fault skips the other route."""
    fake.fail_next("3006", route=UPDATE)
    line_id = fake.numbers[0]["id"]
    assert client.get("/v3/phone_numbers").status_code == 200
    put = client.put(f"/v3/phone_numbers/{line_id}", json={"forwarding_number": "+12025550100"})
    assert put.json() == ENVELOPE_3006
    assert fake.numbers[0]["forwarding_number"] is None
    fake.fail_next("truncated", route="update")
    with pytest.raises(httpx.RemoteProtocolError):
        client.put(f"/v3/phone_numbers/{line_id}", json={"forwarding_number": "+12025550100"})


@pytest.mark.parametrize(
    "route", [LIST, "list", "GET /api/partner/v3/phone_numbers", "/v3/phone_numbers"]
)
def test_route_spellings_for_faults(client: httpx.Client, fake: FakeLinqServer, route: str) -> None:
    """Canonical names, aliases, the prefixed path and a bare path all name the list route."""
    fake.fail_next("503", route=route)
    line_id = fake.numbers[0]["id"]
    assert client.put(f"/v3/phone_numbers/{line_id}", json={"forwarding_number": None}).is_success
    assert client.get("/v3/phone_numbers").status_code == 503


def test_fault_for_one_concrete_line(fake: FakeLinqServer, client: httpx.Client) -> None:
    """A concrete PUT path limits a fault to one line."""
    first, second = fake.numbers[0]["id"], fake.numbers[1]["id"]
    fake.fail_next("403", route=f"PUT /v3/phone_numbers/{second}")
    assert client.put(f"/v3/phone_numbers/{first}", json={"forwarding_number": None}).is_success
    assert_envelope(
        client.put(f"/v3/phone_numbers/{second}", json={"forwarding_number": None}), 403, 2027
    )


def test_faults_are_first_in_first_out(fake: FakeLinqServer, client: httpx.Client) -> None:
    """Queued faults are consumed in order, each for its number of requests."""
    fake.fail_next("503", times=2)
    fake.fail_next("429")
    statuses = [client.get("/v3/phone_numbers").status_code for _ in range(4)]
    assert statuses == [503, 503, 429, 200]
    assert fake.pending_faults == []


def test_persistent_fault_until_cleared(fake: FakeLinqServer, client: httpx.Client) -> None:
    """times=None keeps failing until clear_faults()."""
    fault = fake.fail_next("3006", times=None)
    assert all(client.get("/v3/phone_numbers").status_code == 500 for _ in range(5))
    assert fake.pending_faults == [(fault, None)]
    fake.clear_faults()
    assert client.get("/v3/phone_numbers").status_code == 200


def test_bad_fault_arguments_are_refused(fake: FakeLinqServer) -> None:
    """Unknown kinds and non-positive counts fail at once, not mid-test."""
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.fail_next("explode")
    with pytest.raises(ValueError, match="times"):
        fake.fail_next("3006", times=0)
    assert fake.pending_faults == []


def test_fault_kinds_and_fault_objects() -> None:
    """FAULT_KINDS lists the documented kinds; Fault normalizes its kind and route."""
    assert {"3006", "503", "429", "401", "403", "delay", "malformed"} <= FAULT_KINDS
    assert {"wrong-shape", "truncated", "drop"} <= FAULT_KINDS
    fault = Fault("WRONG_SHAPE", route="list")
    assert fault.kind == "wrong-shape"
    assert fault.route == LIST
    assert Fault("3006").status == 500
    assert Fault("drop").status is None


def test_error_envelope_helper() -> None:
    """error_envelope builds the documented envelopes from a status."""
    assert error_envelope(401) == ENVELOPE_2004
    assert error_envelope(500) == ENVELOPE_3006
    assert error_envelope(429, retry_after=3)["error"]["retry_after"] == 3


# -- counting --------------------------------------------------------------------------


def test_requests_record_method_path_key_and_fault(
    fake: FakeLinqServer, client: httpx.Client
) -> None:
    """Each request is recorded with its route, whether the key was right and its fault."""
    fake.fail_next("503")
    client.get("/v3/phone_numbers")
    client.get("/api/partner/v3/phone_numbers?x=1")
    line_id = fake.numbers[0]["id"]
    client.put(f"/v3/phone_numbers/{line_id}", json={"forwarding_number": None})
    PLAIN.get(f"{fake.base_url}/v3/phone_numbers")
    client.get("/v3/other")
    records = fake.requests
    assert [(r.method, r.path, r.route, r.authorized, r.fault) for r in records] == [
        ("GET", "/v3/phone_numbers", LIST, True, "503"),
        ("GET", "/api/partner/v3/phone_numbers", LIST, True, None),
        ("PUT", f"/v3/phone_numbers/{line_id}", UPDATE, True, None),
        ("GET", "/v3/phone_numbers", LIST, False, None),
        ("GET", "/v3/other", "GET /v3/other", True, None),
    ]
    assert json.loads(records[2].body) == {"forwarding_number": None}
    assert [r.time for r in records] == sorted(r.time for r in records)
    assert fake.count() == 5
    assert fake.count(LIST) == 3
    assert fake.count("list") == 3
    assert fake.count(UPDATE) == fake.count("update") == 1
    assert fake.count(f"PUT /v3/phone_numbers/{line_id}") == 1
    assert fake.count("PUT /v3/phone_numbers/other-id") == 0
    assert fake.count("GET /v3/other") == 1
    fake.reset_counts()
    assert fake.count() == 0
    assert fake.requests == []


def test_injected_clock_stamps_requests() -> None:
    """The clock passed to the constructor stamps each recorded request."""
    ticks = iter(range(100, 200))
    with FakeLinqServer(clock=lambda: float(next(ticks))) as server:
        for _ in range(3):
            PLAIN.get(f"{server.base_url}/v3/phone_numbers")
        assert [r.time for r in server.requests] == [100.0, 101.0, 102.0]


def test_counts_are_exact_under_concurrency(fake: FakeLinqServer) -> None:
    """200 concurrent GETs and 40 PUTs from 8 threads are all answered and all counted."""
    line_id = fake.numbers[0]["id"]
    headers = {"Authorization": "Bearer test-key"}
    failures: list[BaseException] = []
    barrier = threading.Barrier(8, timeout=5.0)

    def hammer() -> None:
        try:
            with httpx.Client(
                base_url=fake.base_url, headers=headers, timeout=5.0, verify=False
            ) as c:
                barrier.wait()
                for i in range(25):
                    assert c.get("/v3/phone_numbers").status_code == 200
                    if i % 5 == 0:
                        put = c.put(
                            f"/v3/phone_numbers/{line_id}", json={"forwarding_number": None}
                        )
                        assert put.status_code == 200
        except BaseException as exc:  # surfaced to the test thread below
            failures.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10.0)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert fake.count(LIST) == 200
    assert fake.count(UPDATE) == 40
    assert len(fake.requests) == 240


def test_faults_are_consumed_exactly_once_under_concurrency(fake: FakeLinqServer) -> None:
    """Five queued 503s fail exactly five of 40 concurrent requests."""
    fake.fail_next("503", times=5)
    statuses: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        with httpx.Client(
            headers={"Authorization": "Bearer test-key"}, timeout=5.0, verify=False
        ) as c:
            for _ in range(5):
                status = c.get(f"{fake.base_url}/v3/phone_numbers").status_code
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10.0)
    assert Counter(statuses) == {503: 5, 200: 35}


def test_wait_for_requests_times_out(fake: FakeLinqServer) -> None:
    """wait_for_requests returns False when the count is not reached in time."""
    started = time.monotonic()
    assert fake.wait_for_requests(1, timeout=0.05) is False
    assert time.monotonic() - started < 1.0


def test_quiet(
    fake: FakeLinqServer, client: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    """Nothing is written to stdout or stderr, even for errors and drops."""
    client.get("/v3/phone_numbers")
    client.get("/v3/nope")
    PLAIN.get(f"{fake.base_url}/v3/phone_numbers")
    fake.fail_next("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v3/phone_numbers")
    fake.stop()
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""
