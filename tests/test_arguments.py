"""Bad arguments fail where they are passed, naming the argument, the value and the need."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest

from linq_router import (
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
) -> None:
    """Build ``target`` (a class name) with ``options``."""
    if target == "Registry":
        Registry(client, **options)
    elif target == "AsyncRegistry":
        AsyncRegistry(aclient, **options)
    elif target == "LinqClient":
        LinqClient("k", base_url=NOWHERE, **options).close()
    else:
        asyncio.run(AsyncLinqClient("k", base_url=NOWHERE, **options).aclose())


REGISTRIES = ["Registry", "AsyncRegistry"]

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
    ],
)
def test_sensible_numbers_are_accepted(
    client: LinqClient, aclient: AsyncLinqClient, target: str, options: dict[str, Any]
) -> None:
    """Ints, floats, other real numbers and the documented infinities all work."""
    build(target, options, client, aclient)


def test_numbers_are_stored_as_given(client: LinqClient) -> None:
    """A validated ttl keeps its value (an int stays an int in the repr)."""
    registry = Registry(client, ttl=60, stale_if_error=INF)
    assert "ttl=60," in repr(registry)
    assert registry.stale_if_error == INF


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
