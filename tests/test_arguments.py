"""Bad arguments fail where they are passed, naming the argument, the value and the need."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import httpx
import pytest

from linq_router import (
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    AsyncLinqClient,
    AsyncRegistry,
    LinqClient,
    Registry,
)
from linq_router._pick import make_context

NAN = math.nan
INF = math.inf
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def client() -> Iterator[LinqClient]:
    """A client nothing is sent through: registries only need one to be built."""
    with LinqClient("k", base_url=NOWHERE) as c:
        yield c


@pytest.fixture(scope="module")
def aclient() -> Iterator[AsyncLinqClient]:
    """An async client nothing is sent through."""
    c = AsyncLinqClient("k", base_url=NOWHERE)
    yield c
    asyncio.run(c.aclose())


def build(
    target: str, options: dict[str, Any], client: LinqClient, aclient: AsyncLinqClient
) -> object:
    """Build ``target`` (a class name) with ``options``; clients are closed again."""
    if target == "Registry":
        return Registry(client, **options)
    if target == "AsyncRegistry":
        return AsyncRegistry(aclient, **options)
    if target == "LinqClient":
        built = LinqClient("k", base_url=NOWHERE, **options)
        built.close()
        return built
    abuilt = AsyncLinqClient("k", base_url=NOWHERE, **options)
    asyncio.run(abuilt.aclose())
    return abuilt


REGISTRIES = ["Registry", "AsyncRegistry"]
CLIENTS = ["LinqClient", "AsyncLinqClient"]

# (argument, bad value, exception): every numeric argument, with what it must refuse.
NUMERIC_BAD: list[tuple[list[str], str, object, type[Exception]]] = [
    *(
        (REGISTRIES, name, value, TypeError)
        for name in ("ttl", "stale_if_error", "error_retry_interval")
        for value in ("60", None, True, [60])
    ),
    (REGISTRIES, "refresh_ahead", "30", TypeError),
    (REGISTRIES, "refresh_ahead", False, TypeError),
    *((REGISTRIES, "ttl", v, ValueError) for v in (0, -1, NAN, INF, 10**400)),
    *((REGISTRIES, "stale_if_error", v, ValueError) for v in (-1, -INF, NAN)),
    *((REGISTRIES, "refresh_ahead", v, ValueError) for v in (0, 60, 61, NAN, INF, -1)),
    *((REGISTRIES, "error_retry_interval", v, ValueError) for v in (0, -1, NAN, INF)),
    *((CLIENTS, "max_attempts", v, TypeError) for v in ("3", None, True, 3.0, INF)),
    *((CLIENTS, "max_attempts", v, ValueError) for v in (0, -1)),
    *((CLIENTS, "timeout", v, TypeError) for v in ("10", True, [1])),
    *((CLIENTS, "timeout", v, ValueError) for v in (0, 0.0, -1, NAN, INF)),
    *((CLIENTS, "deadline", v, TypeError) for v in ("30", None, False)),
    *((CLIENTS, "deadline", v, ValueError) for v in (0, -1, NAN)),
    *(
        (CLIENTS, name, value, TypeError)
        for name in ("backoff_initial", "backoff_max", "retry_after_max")
        for value in ("1", None, True)
    ),
    *(
        (CLIENTS, name, value, ValueError)
        for name in ("backoff_initial", "backoff_max", "retry_after_max")
        for value in (-1, NAN, INF)
    ),
]
NUMERIC_CASES = [
    pytest.param(target, name, value, error, id=f"{target}-{name}={value!r}")
    for targets, name, value, error in NUMERIC_BAD
    for target in targets
]


@pytest.mark.parametrize(("target", "name", "value", "error"), NUMERIC_CASES)
def test_bad_numbers_are_refused_naming_argument_and_value(
    client: LinqClient,
    aclient: AsyncLinqClient,
    target: str,
    name: str,
    value: object,
    error: type[Exception],
) -> None:
    """Wrong types are TypeErrors, wrong values ValueErrors; both say name, value, need."""
    with pytest.raises(error) as info:
        build(target, {name: value}, client, aclient)
    text = str(info.value)
    assert type(info.value) is error
    assert text.startswith(f"{name} must be ")
    shown = repr(value) if not isinstance(value, int) or abs(value) < 10**20 else "characters)"
    assert shown in text
    assert len(text) < 300


@pytest.mark.parametrize(
    ("target", "options"),
    [
        ("Registry", {"ttl": 60, "stale_if_error": INF, "error_retry_interval": 0.5}),
        ("Registry", {"ttl": Fraction(1, 2), "refresh_ahead": 0.25, "stale_if_error": 0}),
        ("AsyncRegistry", {"ttl": 1e-3, "stale_if_error": 10**6}),
        ("LinqClient", {"timeout": None, "deadline": INF, "backoff_initial": 0, "backoff_max": 0}),
        ("LinqClient", {"timeout": 0.001, "max_attempts": 1, "rng": random.Random(3)}),
        ("LinqClient", {"retry_after_max": 0, "clock": lambda: 0.0, "sleep": print}),
        ("AsyncLinqClient", {"timeout": httpx.Timeout(1.0), "max_attempts": 10}),
    ],
)
def test_sensible_numbers_are_accepted(
    client: LinqClient, aclient: AsyncLinqClient, target: str, options: dict[str, Any]
) -> None:
    """Ints, floats, other real numbers and the documented infinities all work."""
    built = build(target, options, client, aclient)
    stored = {name: getattr(built, name) for name in options if hasattr(built, name)}
    assert stored == {name: options[name] for name in stored}
    assert stored  # every case sets at least one public setting


def test_numbers_are_stored_as_given(client: LinqClient) -> None:
    """A validated ttl keeps its value (an int stays an int in the repr)."""
    registry = Registry(client, ttl=60, stale_if_error=INF)
    assert "ttl=60," in repr(registry)
    assert registry.stale_if_error == INF


@pytest.mark.parametrize("cls", [LinqClient, AsyncLinqClient])
@pytest.mark.parametrize("url", ["", "   ", "\n", "\t \r\n"])
def test_an_empty_base_url_is_an_error(cls: type[LinqClient], url: str) -> None:
    """base_url="" no longer silently means production: it is a ValueError."""
    with pytest.raises(ValueError, match=r"^base_url must be ") as info:
        cls("k", base_url=url)
    assert repr(url) in str(info.value)


@pytest.mark.parametrize("value", ["", "  ", "\n"])
def test_an_empty_base_url_variable_means_unset(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """An empty (or all-whitespace) LINQ_API_V3_BASE_URL is the same as an unset one."""
    monkeypatch.setenv(BASE_URL_ENV, value)
    with LinqClient("k") as c:
        assert c.base_url == DEFAULT_BASE_URL


def test_a_base_url_with_whitespace_around_is_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL read from a file with its newline works, as an argument or a variable."""
    with LinqClient("k", base_url=" http://127.0.0.1:9/api/\n") as c:
        assert c.base_url == "http://127.0.0.1:9/api"
    monkeypatch.setenv(BASE_URL_ENV, "http://127.0.0.1:9\n")
    with LinqClient("k") as c:
        assert c.base_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://x", "http:// or https://"),
        ("http://", "host"),
        ("https:///v3", "host"),
        ("http://exa mple.com", "whitespace"),
        ("http://example.com/\x00", "control character"),
        ("api.linqapp.com", "http:// or https://"),
    ],
)
def test_a_bad_base_url_says_what_is_wrong(url: str, fragment: str) -> None:
    """Bad URLs are ValueErrors naming base_url, the URL and what is wrong with it."""
    with pytest.raises(ValueError, match=r"^base_url must be ") as info:
        LinqClient("k", base_url=url)
    assert fragment in str(info.value)


def test_a_bad_base_url_variable_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad LINQ_API_V3_BASE_URL is an error naming the variable, not base_url."""
    monkeypatch.setenv(BASE_URL_ENV, "ftp://x")
    with pytest.raises(ValueError, match=BASE_URL_ENV) as info:
        LinqClient("k")
    assert "'ftp://x'" in str(info.value)


def test_a_base_url_that_is_not_a_string_is_a_type_error() -> None:
    """base_url=b"..." is a TypeError naming the argument and the type."""
    with pytest.raises(TypeError, match=r"^base_url must be a str.*bytes"):
        LinqClient("k", base_url=b"http://x")  # type: ignore[arg-type]


def test_credentials_in_a_bad_base_url_are_not_echoed() -> None:
    """A password inside a refused URL is masked in the error."""
    with pytest.raises(ValueError, match="base_url") as info:
        LinqClient("k", base_url="ftp://user:hunter2@example.com")
    assert "hunter2" not in str(info.value)
    assert "example.com" in str(info.value)


def test_a_huge_base_url_is_cut_in_the_error() -> None:
    """A 10,000-character URL is echoed as its first characters and its length."""
    url = "ftp://" + "a" * 10_000
    with pytest.raises(ValueError, match="base_url") as info:
        LinqClient("k", base_url=url)
    assert len(str(info.value)) < 300
    assert "…(10006 characters)" in str(info.value)


@pytest.mark.parametrize(
    ("name", "make", "cls"),
    [
        ("clock", lambda: 5, LinqClient),
        ("clock", lambda: None, AsyncLinqClient),
        ("sleep", lambda: None, LinqClient),
        ("sleep", lambda: "later", AsyncLinqClient),
        ("rng", lambda: "seed", LinqClient),
        ("rng", lambda: 7, AsyncLinqClient),
        ("http_client", httpx.AsyncClient, LinqClient),
        ("http_client", httpx.Client, AsyncLinqClient),
        ("transport", httpx.AsyncHTTPTransport, LinqClient),
        ("transport", httpx.HTTPTransport, AsyncLinqClient),
    ],
)
def test_wrong_collaborators_are_type_errors(
    name: str, make: Callable[[], object], cls: type[LinqClient]
) -> None:
    """A clock that is no callable, an async httpx client for the sync client, and so on."""
    value = make()
    try:
        with pytest.raises(TypeError, match=rf"^{name} must be ") as info:
            cls("k", base_url=NOWHERE, **{name: value})  # type: ignore[arg-type]
        assert ("None" if value is None else type(value).__name__) in str(info.value)
    finally:
        if isinstance(value, (httpx.Client, httpx.HTTPTransport)):
            value.close()
        elif isinstance(value, (httpx.AsyncClient, httpx.AsyncHTTPTransport)):
            asyncio.run(value.aclose())


def test_a_registry_refuses_a_client_of_the_other_kind(
    client: LinqClient, aclient: AsyncLinqClient
) -> None:
    """Registry(AsyncLinqClient) and AsyncRegistry(LinqClient) fail at construction."""
    with pytest.raises(TypeError, match=r"^client must be .*AsyncRegistry"):
        Registry(aclient)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^client must be .*Registry"):
        AsyncRegistry(client)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^client must be .*list_phone_numbers.*object"):
        Registry(object())  # type: ignore[arg-type]


def test_a_registry_clock_must_be_callable(client: LinqClient) -> None:
    """Registry(clock=...) that cannot be called is a TypeError naming clock."""
    with pytest.raises(TypeError, match=r"^clock must be .*float"):
        Registry(client, clock=1000.0)  # type: ignore[arg-type]


def test_close_takes_a_number_of_seconds(client: LinqClient) -> None:
    """Registry.close(timeout=...) checks its argument like the constructor's."""
    registry = Registry(client)
    with pytest.raises(TypeError, match=r"^timeout must be .*'1'"):
        registry.close("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^timeout must be .*-1"):
        registry.close(-1)
    registry.close(0)


# -- update_phone_number ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"phone_number_id": 5, "forwarding_number": None}, TypeError, "phone_number_id must be"),
        ({"phone_number_id": "  ", "forwarding_number": None}, ValueError, "phone_number_id"),
        ({"phone_number_id": "x", "forwarding_number": 13125550000}, TypeError, "int"),
        ({"phone_number_id": "x", "forwarding_number": "+1" * 5000}, ValueError, "characters)"),
        ({"phone_number_id": "x" * 10_000, "forwarding_number": 5}, TypeError, "forwarding"),
    ],
)
def test_update_arguments_are_checked_before_sending(
    client: LinqClient, kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    """update_phone_number names a bad id or number, cut short, before any request."""
    with pytest.raises(error, match=r"must be") as info:
        client.update_phone_number(**kwargs)
    assert fragment in str(info.value)
    assert len(str(info.value)) < 300


def test_a_huge_id_is_cut_in_the_error(client: LinqClient) -> None:
    """A 10,000-character id with a control character is echoed cut short."""
    with pytest.raises(ValueError, match="phone_number_id") as info:
        client.update_phone_number("\x00" + "x" * 9_999, forwarding_number=None)
    assert "…(10000 characters)" in str(info.value)
    assert len(str(info.value)) < 300


# -- recipients -------------------------------------------------------------------------


def handles(n: int) -> list[str]:
    """``n`` distinct E.164 numbers."""
    return [f"+1415555{i:04d}" for i in range(n)]


def test_a_group_of_31_handles_is_accepted() -> None:
    """Linq takes up to 31 handles in one chat: 31 is fine."""
    ctx = make_context(handles(31))
    assert len(ctx.recipients) == 31


@pytest.mark.parametrize(
    "to",
    [
        handles(32),
        tuple(handles(100)),
        (h for h in handles(40)),
        (f"+1415{i:07d}" for i in itertools.count()),  # endless: must not hang
    ],
    ids=["list-32", "tuple-100", "generator-40", "endless"],
)
def test_more_than_31_handles_is_a_value_error(to: object) -> None:
    """A group larger than Linq accepts in one chat fails at make_context."""
    with pytest.raises(ValueError, match=r"^to has more than 31|^to has \d+ handles") as info:
        make_context(to)  # type: ignore[arg-type]
    assert "31" in str(info.value)
    assert len(str(info.value)) < 300


def test_the_count_is_given_when_it_is_known() -> None:
    """A list of 32 handles says 32."""
    with pytest.raises(ValueError, match=r"^to has 32 handles"):
        make_context(handles(32))


@pytest.mark.parametrize(
    "to",
    [
        "x" * 10_000,
        ["+14155550000", "x" * 10_000],
        b"y" * 10_000,
        ["z" * 10_000],
    ],
    ids=["str", "in-a-list", "bytes", "only-one"],
)
def test_a_huge_handle_is_cut_in_the_error(to: object) -> None:
    """A 10,000-character handle is echoed as 60 characters and its length."""
    with pytest.raises(ValueError, match="to") as info:
        make_context(to)  # type: ignore[arg-type]
    text = str(info.value)
    assert len(text) < 300
    assert "(10000 characters)" in text or "(10003 characters)" in text


def test_an_item_of_a_group_is_named_by_its_position() -> None:
    """A bad handle in a list is named as to[i]."""
    with pytest.raises(ValueError, match=r"to\[1\]='nobody'"):
        make_context(["+14155550000", "nobody"])


def test_a_huge_purpose_is_cut_in_the_error() -> None:
    """An unknown purpose is echoed cut short, with the known purposes."""
    with pytest.raises(ValueError, match="purpose") as info:
        make_context(None, "p" * 10_000)
    assert len(str(info.value)) < 300
    assert "chat" in str(info.value)
