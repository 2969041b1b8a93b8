"""LinqClient and AsyncLinqClient against the fake Linq API over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import random

import httpx
import pytest

from linq_router import (
    API_KEY_ENV,
    BASE_URL_ENV,
    AsyncLinqClient,
    AuthenticationError,
    LinqAPIError,
    LinqClient,
    LinqConnectionError,
    LinqResponseError,
    RateLimitError,
    Reputation,
    ServerError,
)
from linq_router.testing import FakeClock, FakeLinqServer

LIST = "GET /v3/phone_numbers"


def make(server: FakeLinqServer, clock: FakeClock, **kwargs: object) -> LinqClient:
    options: dict[str, object] = {
        "base_url": server.base_url,
        "sleep": clock.sleep,
        "clock": clock,
        "rng": random.Random(7),
    }
    options.update(kwargs)
    return LinqClient(server.api_key, **options)  # type: ignore[arg-type]


def test_lists_the_pool(server: FakeLinqServer, clock: FakeClock) -> None:
    """A plain list returns every line of the fake's pool as PhoneNumber values."""
    with make(server, clock) as client:
        lines = client.list_phone_numbers()
    assert {line.phone_number for line in lines} == {n["phone_number"] for n in server.numbers}
    assert all(isinstance(line.reputation, Reputation) for line in lines)
    assert server.count(LIST) == 1


def test_two_3006_then_success_takes_three_requests(
    server: FakeLinqServer, clock: FakeClock
) -> None:
    """Code 3006 is retried with backoff; two failures then success is 3 requests."""
    server.fail_next("3006", times=2)
    with make(server, clock) as client:
        lines = client.list_phone_numbers()
        assert client.retries == 2
    assert lines
    assert server.count(LIST) == 3
    assert len(clock.sleeps) == 2
    # Full jitter: each wait lies in [0, min(cap, 0.5 * 2^(n-1))].
    assert 0 <= clock.sleeps[0] <= 0.5
    assert 0 <= clock.sleeps[1] <= 1.0


def test_2004_is_raised_after_one_request(server: FakeLinqServer, clock: FakeClock) -> None:
    """A refused key raises AuthenticationError at once, never retried."""
    with LinqClient("wrong-key", base_url=server.base_url, sleep=clock.sleep) as client:
        with pytest.raises(AuthenticationError) as info:
            client.list_phone_numbers()
        assert client.retries == 0
    assert info.value.status == 401
    assert info.value.code == 2004
    assert info.value.doc_url is not None
    assert server.count(LIST) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("kind", ["429", "503"])
def test_retry_after_is_honoured(server: FakeLinqServer, clock: FakeClock, kind: str) -> None:
    """429 and 503 with Retry-After wait exactly what the API asked for."""
    server.fail_next(kind, times=1, retry_after=7)
    with make(server, clock) as client:
        assert client.list_phone_numbers()
    assert clock.sleeps == [7.0]
    assert server.count(LIST) == 2


def test_retry_after_is_capped(server: FakeLinqServer, clock: FakeClock) -> None:
    """A huge Retry-After is capped at retry_after_max."""
    server.fail_next("429", times=1, retry_after=3600)
    with make(server, clock, retry_after_max=12.0, deadline=60.0) as client:
        client.list_phone_numbers()
    assert clock.sleeps == [12.0]


def test_rate_limit_gives_up_with_retry_after(server: FakeLinqServer, clock: FakeClock) -> None:
    """When 429s outlast the attempts, RateLimitError carries the Retry-After it got."""
    server.fail_next("429", times=5, retry_after=2)
    with make(server, clock, max_attempts=3) as client, pytest.raises(RateLimitError) as info:
        client.list_phone_numbers()
    assert info.value.retry_after == 2.0
    assert server.count(LIST) == 3


def test_deadline_bounds_the_retries(server: FakeLinqServer, clock: FakeClock) -> None:
    """A wait that would pass the overall deadline is not taken: the error is raised."""
    server.fail_next("503", times=5, retry_after=20)
    client = make(server, clock, max_attempts=10, deadline=15.0)
    with client, pytest.raises(ServerError) as info:
        client.list_phone_numbers()
    assert info.value.status == 503
    assert clock.sleeps == []
    assert server.count(LIST) == 1


def test_attempts_bound_the_retries(server: FakeLinqServer, clock: FakeClock) -> None:
    """max_attempts=4 against endless 3006 makes 4 requests, then raises ServerError."""
    server.fail_next("3006", times=10)
    with make(server, clock, max_attempts=4) as client, pytest.raises(ServerError) as info:
        client.list_phone_numbers()
    assert info.value.code == 3006
    assert server.count(LIST) == 4


@pytest.mark.parametrize("kind", ["403"])
def test_403_is_not_retried(server: FakeLinqServer, clock: FakeClock, kind: str) -> None:
    """A 403 (line ineligible, opted out) is raised at once."""
    server.fail_next(kind, times=3)
    with make(server, clock) as client, pytest.raises(LinqAPIError) as info:
        client.list_phone_numbers()
    assert info.value.status == 403
    assert server.count(LIST) == 1


def test_unknown_line_update_is_a_404_not_retried(server: FakeLinqServer, clock: FakeClock) -> None:
    """PUT on an id the partner does not own raises at once with status 404."""
    with make(server, clock) as client, pytest.raises(LinqAPIError) as info:
        client.update_phone_number("no-such-line", forwarding_number="+13125550000")
    assert info.value.status == 404
    assert clock.sleeps == []


def test_dropped_connection_is_retried(server: FakeLinqServer, clock: FakeClock) -> None:
    """A connection closed without an answer is retried like a 5xx."""
    server.fail_next("drop", times=1)
    with make(server, clock) as client:
        assert client.list_phone_numbers()
        assert client.retries == 1


def test_truncated_body_is_retried(server: FakeLinqServer, clock: FakeClock) -> None:
    """A body cut short (fewer bytes than Content-Length) is a transport error, retried."""
    server.fail_next("truncated", times=1)
    with make(server, clock) as client:
        assert client.list_phone_numbers()
        assert client.retries == 1


def test_connection_errors_give_up_as_linq_connection_error(
    server: FakeLinqServer, clock: FakeClock
) -> None:
    """Connection drops that outlast the attempts raise LinqConnectionError."""
    server.fail_next("drop", times=5)
    with make(server, clock, max_attempts=2) as client, pytest.raises(LinqConnectionError):
        client.list_phone_numbers()


def test_timeout_is_retried(server: FakeLinqServer, clock: FakeClock) -> None:
    """A read timeout is retried; the next answer is used."""
    server.fail_next("delay", times=1, delay=2.0)
    with make(server, clock, timeout=0.2) as client:
        assert client.list_phone_numbers()
        assert client.retries == 1


def test_malformed_body_raises_response_error(server: FakeLinqServer, clock: FakeClock) -> None:
    """A 200 that is not JSON raises LinqResponseError and is not retried."""
    server.fail_next("malformed", times=1)
    with make(server, clock) as client, pytest.raises(LinqResponseError):
        client.list_phone_numbers()
    assert server.count(LIST) == 1


def test_wrong_shape_raises_response_error(server: FakeLinqServer, clock: FakeClock) -> None:
    """A 200 JSON body of the wrong shape raises LinqResponseError."""
    server.fail_next("wrong-shape", times=1)
    with make(server, clock) as client, pytest.raises(LinqResponseError):
        client.list_phone_numbers()


def test_update_sets_and_clears_forwarding(server: FakeLinqServer, clock: FakeClock) -> None:
    """PUT sets a forwarding number, and None or "" clears it."""
    line_id = server.numbers[0]["id"]
    with make(server, clock) as client:
        updated = client.update_phone_number(line_id, forwarding_number="+13125550000")
        assert updated.forwarding_number == "+13125550000"
        assert server.numbers[0]["forwarding_number"] == "+13125550000"
        assert client.update_phone_number(line_id, forwarding_number="").forwarding_number is None
        client.update_phone_number(line_id, forwarding_number="+13125550000")
        assert client.update_phone_number(line_id, forwarding_number=None).forwarding_number is None
    assert server.numbers[0]["forwarding_number"] is None


def test_update_is_retried_on_3006(server: FakeLinqServer, clock: FakeClock) -> None:
    """PUT is idempotent, so a 3006 on it is retried too."""
    line_id = server.numbers[0]["id"]
    server.fail_next("3006", times=1)
    with make(server, clock) as client:
        assert client.update_phone_number(line_id, forwarding_number="+13125550000")
        assert client.retries == 1


@pytest.mark.parametrize("bad", ["3125550000", "+0123", "call me", "+1 202 555 0000"])
def test_update_rejects_non_e164(server: FakeLinqServer, clock: FakeClock, bad: str) -> None:
    """A forwarding number that is not E.164 is a ValueError naming it; nothing is sent."""
    with make(server, clock) as client, pytest.raises(ValueError, match=r"E\.164") as info:
        client.update_phone_number("x", forwarding_number=bad)
    assert repr(bad) in str(info.value)
    assert server.count("PUT /v3/phone_numbers/{id}") == 0


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key anywhere is a ValueError at construction naming LINQ_API_V3_API_KEY."""
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(ValueError, match=API_KEY_ENV):
        LinqClient()
    with pytest.raises(ValueError, match=API_KEY_ENV):
        AsyncLinqClient()


def test_environment_supplies_key_and_base_url(
    server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LINQ_API_V3_API_KEY and LINQ_API_V3_BASE_URL are used when no argument is given."""
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    with LinqClient() as client:
        assert client.base_url == server.base_url
        assert client.list_phone_numbers()


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without argument or variable, the documented base URL is used."""
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    with LinqClient("k") as client:
        assert client.base_url == "https://api.linqapp.com/api/partner"


def test_key_never_leaks(
    server: FakeLinqServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The key is absent from reprs, log lines (httpx's included) and exceptions."""
    secret = "sk-live-SECRET-0123456789"
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        client = LinqClient(secret, base_url=server.base_url, sleep=clock.sleep)
        try:
            client.list_phone_numbers()
        except AuthenticationError as exc:
            errors.append(exc)
        good = make(server, clock)
        server.fail_next("3006", times=5)
        try:
            good.list_phone_numbers()
        except ServerError as exc:
            errors.append(exc)
    texts = [repr(client), str(client), *map(str, errors), *map(repr, errors)]
    texts += [record.getMessage() for record in caplog.records]
    assert errors
    assert any("retrying" in t for t in texts)
    assert not [t for t in texts if secret in t or server.api_key in t]


def test_injected_http_client_is_used_and_not_closed(
    server: FakeLinqServer, clock: FakeClock
) -> None:
    """A caller's httpx.Client is used for requests and left open for its owner."""
    seen: list[str] = []
    with httpx.Client(event_hooks={"request": [lambda r: seen.append(str(r.url))]}) as http:
        with make(server, clock, http_client=http) as client:
            client.list_phone_numbers()
        assert not http.is_closed
    assert seen == [f"{server.base_url}/v3/phone_numbers"]


def test_injected_transport(server: FakeLinqServer, clock: FakeClock) -> None:
    """A transport handed in is the one httpx sends through."""
    transport = httpx.HTTPTransport(retries=0)
    with make(server, clock, transport=transport) as client:
        assert client.list_phone_numbers()


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_attempts", 0), ("timeout", -1.0), ("deadline", float("nan")), ("base_url", "ftp://x")],
)
def test_bad_options_are_clear_errors(option: str, value: object) -> None:
    """Bad constructor arguments raise ValueError naming the argument and the value."""
    with pytest.raises(ValueError, match=option) as info:
        LinqClient("k", **{option: value})  # type: ignore[arg-type]
    assert repr(value) in str(info.value)


# -- async ------------------------------------------------------------------------------


def amake(server: FakeLinqServer, clock: FakeClock, **kwargs: object) -> AsyncLinqClient:
    options: dict[str, object] = {
        "base_url": server.base_url,
        "sleep": clock.async_sleep,
        "clock": clock,
        "rng": random.Random(7),
    }
    options.update(kwargs)
    return AsyncLinqClient(server.api_key, **options)  # type: ignore[arg-type]


def test_async_retries_then_lists(server: FakeLinqServer, clock: FakeClock) -> None:
    """The async client follows the same retry rules: 2 x 3006 then success."""
    server.fail_next("3006", times=2)

    async def main() -> int:
        async with amake(server, clock) as client:
            lines = await client.list_phone_numbers()
            assert client.retries == 2
            return len(lines)

    assert asyncio.run(main()) == len(server.numbers)
    assert server.count(LIST) == 3


def test_async_auth_error_and_update(server: FakeLinqServer, clock: FakeClock) -> None:
    """The async client raises 2004 at once and updates forwarding numbers."""
    line_id = server.numbers[0]["id"]

    async def main() -> None:
        async with AsyncLinqClient("bad", base_url=server.base_url) as bad:
            with pytest.raises(AuthenticationError):
                await bad.list_phone_numbers()
        async with amake(server, clock) as client:
            line = await client.update_phone_number(line_id, forwarding_number="+13125550000")
            assert line.forwarding_number == "+13125550000"

    asyncio.run(main())
    assert server.count(LIST) == 1


def test_sync_and_async_clients_have_the_same_methods() -> None:
    """Twins stay twins: the async client has every public method of the sync one."""

    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    renamed = {"close": "aclose"}
    assert {renamed.get(n, n) for n in public(LinqClient)} == public(AsyncLinqClient)


# -- odd answers and arguments, through httpx's own MockTransport seam ----------------


def _mock(handler: object, **kwargs: object) -> LinqClient:
    options: dict[str, object] = {
        "base_url": "http://linq.test",
        "transport": httpx.MockTransport(handler),  # type: ignore[arg-type]
        "sleep": lambda _: None,
    }
    options.update(kwargs)
    return LinqClient("k", **options)  # type: ignore[arg-type]


OK_BODY = {"phone_numbers": [{"id": "a", "phone_number": "+12025550001"}]}


@pytest.mark.parametrize("header", ["soon", "Mon, 99 Foo 2026", "inf", "nan"])
def test_unreadable_retry_after_falls_back_to_backoff(header: str) -> None:
    """A Retry-After that is not a number or a date is ignored, and the 429 retried."""
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": header}), httpx.Response(200, json=OK_BODY)]
    )
    slept: list[float] = []
    client = _mock(lambda request: next(answers), sleep=slept.append)
    assert client.list_phone_numbers()[0].id == "a"
    assert len(slept) == 1
    assert 0 <= slept[0] <= 0.5


def test_huge_retry_after_in_the_body_is_ignored() -> None:
    """A retry_after too large for a float does not crash the client."""
    answers = iter(
        [
            httpx.Response(429, json={"error": {"status": 429, "retry_after": 10**400}}),
            httpx.Response(200, json=OK_BODY),
        ]
    )
    assert _mock(lambda request: next(answers)).list_phone_numbers()


def test_absurdly_nested_json_is_a_response_error() -> None:
    """JSON nested too deep to parse is a LinqResponseError, not a RecursionError."""
    body = b'{"phone_numbers": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    client = _mock(lambda request: httpx.Response(200, content=body))
    with pytest.raises(LinqResponseError):
        client.list_phone_numbers()


@pytest.mark.parametrize(
    "body",
    [
        b'{"phone_numbers": [], "score": NaN}',  # JSON the standard library reads
        b'{"phone_numbers": [], "n": %d}' % 2**70,  # an integer past 64 bits
        '{"phone_numbers": []}'.encode("utf-16"),  # UTF-16, with its byte-order mark
    ],
)
def test_json_the_fast_parser_refuses_still_parses(
    server: FakeLinqServer, clock: FakeClock, body: bytes
) -> None:
    """Bodies orjson refuses but json accepts read as before, through the standard library."""
    server.fail_next("malformed", body=body)  # a 200 with exactly these bytes
    with make(server, clock) as client:
        assert client.list_phone_numbers() == []


def test_an_unchanged_list_reuses_the_lines_it_built(
    server: FakeLinqServer, clock: FakeClock
) -> None:
    """Listing twice returns the same line objects for lines that did not change."""
    with make(server, clock) as client:
        first = client.list_phone_numbers()
        server.set_reputation(server.numbers[0]["id"], "CRITICAL")
        second = client.list_phone_numbers()
    assert second[0] is not first[0]
    assert second[0].reputation is Reputation.CRITICAL
    assert all(a is b for a, b in zip(first[1:], second[1:], strict=True))


def test_a_byte_identical_list_is_not_parsed_again(
    server: FakeLinqServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The same answer twice gives the same lines, parsed (and warned about) once."""
    body = (
        b'{"phone_numbers": [{"id": "a", "phone_number": "+12025550101"},'
        b' {"id": "b", "phone_number": "not a number"}]}'
    )
    server.fail_next("malformed", times=2, body=body)
    with make(server, clock) as client, caplog.at_level(logging.WARNING, logger="linq_router"):
        first = client.list_phone_numbers()
        second = client.list_phone_numbers()
        third = client.list_phone_numbers()  # the fake's own, different answer
    assert second == first
    assert second is not first
    assert second[0] is first[0]
    assert len(third) == len(server.numbers)
    dropped = [r for r in caplog.records if "dropping phone_numbers[1]" in r.getMessage()]
    assert len(dropped) == 1


def test_code_3006_is_retried_whatever_its_status() -> None:
    """Linq's 3006 ("internal error") is retried even if it came with a 4xx status."""
    answers = iter(
        [
            httpx.Response(400, json={"error": {"status": 400, "code": 3006, "message": "x"}}),
            httpx.Response(200, json=OK_BODY),
        ]
    )
    client = _mock(lambda request: next(answers))
    assert client.list_phone_numbers()
    assert client.retries == 1


@pytest.mark.parametrize("timeout", [httpx.Timeout(5.0), None, 2])
def test_timeout_takes_seconds_an_httpx_timeout_or_none(timeout: object) -> None:
    """timeout= accepts what httpx users pass: seconds, httpx.Timeout, or None."""
    assert _mock(lambda request: httpx.Response(200, json=OK_BODY), timeout=timeout)


def test_each_attempt_is_bounded_by_the_deadline(server: FakeLinqServer) -> None:
    """A hung request cannot outlive the deadline: the attempt times out at its end."""
    server.fail_next("delay", times=5, delay=3.0)
    client = LinqClient(
        server.api_key, base_url=server.base_url, timeout=10.0, deadline=0.3, max_attempts=5
    )
    with client, pytest.raises(LinqConnectionError):
        client.list_phone_numbers()


def test_update_accepts_a_uuid(server: FakeLinqServer, clock: FakeClock) -> None:
    """A uuid.UUID id works like its string form."""
    import uuid

    line_id = uuid.UUID(server.numbers[0]["id"])
    with make(server, clock) as client:
        line = client.update_phone_number(line_id, forwarding_number="+13125550000")  # type: ignore[arg-type]
    assert line.id == str(line_id)


def test_async_client_takes_a_plain_sleep_function(server: FakeLinqServer) -> None:
    """AsyncLinqClient(sleep=...) may be a plain function (a recorder in a test)."""
    server.fail_next("3006", times=1)
    slept: list[float] = []

    async def main() -> None:
        async with AsyncLinqClient(
            server.api_key, base_url=server.base_url, sleep=slept.append
        ) as client:
            assert await client.list_phone_numbers()

    asyncio.run(main())
    assert len(slept) == 1


def test_unknown_values_are_warned_once_per_client(
    server: FakeLinqServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Each client warns once about a new reputation, however often it lists."""
    server.set_reputation(server.numbers[0]["id"], raw_reputation="PROBATION_PER_CLIENT")
    with caplog.at_level(logging.WARNING, logger="linq_router"):
        for _ in range(2):
            with make(server, clock) as client:
                client.list_phone_numbers()
                client.list_phone_numbers()
    warned = [r for r in caplog.records if "PROBATION_PER_CLIENT" in r.getMessage()]
    assert len(warned) == 2


def test_a_local_protocol_error_is_not_retried_and_shows_no_key() -> None:
    """httpx refusing to send (a header it cannot encode) fails at once, key scrubbed."""
    secret = "sk_live_NOT_IN_ANY_MESSAGE_42"
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.LocalProtocolError(f"Illegal header value b'Bearer {secret}\\n'")

    client = LinqClient(secret, base_url="http://linq.test", transport=httpx.MockTransport(handler))
    with client, pytest.raises(LinqConnectionError) as info:
        client.list_phone_numbers()
    assert len(calls) == 1
    assert client.retries == 0
    assert isinstance(info.value.__cause__, httpx.LocalProtocolError)
    assert "Bearer <redacted>" in str(info.value)
    assert secret not in str(info.value)
    assert secret not in str(info.value.__cause__)


def test_an_undecodable_body_is_a_response_error() -> None:
    """A body httpx cannot decode (bad gzip) is LinqResponseError, not a raw httpx error."""
    client = _mock(
        lambda request: httpx.Response(
            200, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip")
        )
    )
    with pytest.raises(LinqResponseError, match="DecodingError") as info:
        client.list_phone_numbers()
    assert isinstance(info.value.__cause__, httpx.DecodingError)
    assert info.value.__cause__.__traceback__ is None
    assert client.retries == 0


def test_retry_warnings_cut_a_huge_line_id(
    server: FakeLinqServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A 5,000-character id is cut in the retry warnings and the final error."""
    server.fail_next("3006", times=None)
    with (
        make(server, clock, max_attempts=2) as client,
        caplog.at_level(logging.WARNING, logger="linq_router"),
        pytest.raises(ServerError),
    ):
        client.update_phone_number("x" * 5_000, forwarding_number=None)
    warnings = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(warnings) == 1
    assert "…(5018 characters)" in warnings[0]
    assert len(warnings[0]) < 300


def test_values_linq_sends_are_cut_in_warnings(
    server: FakeLinqServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A 10,000-character phone_number or reputation is quoted cut short in the log."""
    body = {
        "phone_numbers": [
            {"id": "a", "phone_number": "+" + "9" * 10_000},
            {"id": "b", "phone_number": "+12025550101", "reputation": {"status": "Z" * 10_000}},
        ]
    }
    server.fail_next("malformed", body=body)
    with make(server, clock) as client, caplog.at_level(logging.WARNING, logger="linq_router"):
        lines = client.list_phone_numbers()
    assert [line.id for line in lines] == ["b"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("dropping phone_numbers[0]" in m for m in messages)
    assert any("unknown reputation" in m for m in messages)
    assert all(len(m) < 300 for m in messages)


def test_credentials_in_the_base_url_stay_out_of_the_repr() -> None:
    """A proxy password inside base_url is masked in the client's repr."""
    with LinqClient("k", base_url="https://user:hunter2@linq.test") as client:
        assert "hunter2" not in repr(client)
        assert "linq.test" in repr(client)
