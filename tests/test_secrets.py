"""The API key never leaks: not in errors, their causes, pickles, logs or frame locals.

Every fault the fake can produce (``FAULT_KINDS``), plus an unreachable port and a
timeout, is driven through the registry and the client, sync and async, with keys as
they come out of secret files (a trailing newline, ``\\r\\n``). Keys no header can carry
(a NUL, a tab inside, nothing but spaces) are refused when the client is built.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import random
import socket
import traceback
from collections.abc import Awaitable, Callable, Iterator

import pytest

from linq_router import (
    API_KEY_ENV,
    AsyncLinqClient,
    AsyncRegistry,
    LinqClient,
    LinqRouterError,
    Registry,
)
from linq_router.testing import FAULT_KINDS, FakeClock, FakeLinqServer

SECRET = "sk_live_5EcReT0123456789abcdef"

# Keys read from a file or an environment as they are: the whitespace around is dropped.
ACCEPTED = {
    "newline": SECRET + "\n",
    "crlf": SECRET + "\r\n",
    "spaces-around": "  " + SECRET + " \t",
}
# Keys no header can carry (or that are no key at all): refused at construction.
REJECTED = {
    "nul-at-end": SECRET + "\x00",
    "nul-inside": SECRET[:8] + "\x00" + SECRET[8:],
    "tab-inside": SECRET[:8] + "\t" + SECRET[8:],
    "newline-inside": SECRET[:8] + "\n" + SECRET[8:],
    "delete-inside": SECRET[:8] + "\x7f" + SECRET[8:],
    "escape-inside": SECRET[:8] + "\x1b" + SECRET[8:],
}
BLANK = {"empty": "", "only-spaces": "   ", "only-newline": "\n"}

KINDS = [*sorted(FAULT_KINDS), "unreachable", "timeout"]


class Hidden:
    """Holds a test's key so that the test's own frames never show it."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Hidden(...)"


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception reachable through ``__cause__`` and ``__context__``."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return seen


def leaks(exc: BaseException) -> list[str]:
    """Where ``SECRET`` shows in ``exc``: text, causes, pickles and captured frame locals."""
    found = []
    for link in chain(exc):
        name = type(link).__name__
        if SECRET in str(link) or SECRET in repr(link):
            found.append(f"str/repr of {name}")
        try:
            pickled = pickle.dumps(link)
        except Exception:
            # The library's own errors must always pickle; others are checked if they do.
            if isinstance(link, LinqRouterError):
                found.append(f"{name} does not pickle")
        else:
            if SECRET.encode() in pickled:
                found.append(f"pickle of {name}")
    rendered = traceback.TracebackException.from_exception(exc, capture_locals=True)
    if SECRET in "".join(rendered.format()):
        found.append("traceback with frame locals")
    return found


def log_leaks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records (any logger, any level, with their tracebacks) that show ``SECRET``."""
    found = [
        f"{r.name} {r.levelname}: {r.getMessage()[:80]}"
        for r in caplog.records
        if SECRET in r.getMessage()
    ]
    if SECRET in caplog.text:
        found.append("formatted log output")
    return found


def raised(call: Callable[[], object]) -> BaseException:
    """The exception ``call()`` raises (the test fails if it raises none)."""
    try:
        call()
    except Exception as exc:
        return exc
    pytest.fail("expected an exception")


def araised(call: Callable[[], Awaitable[object]]) -> BaseException:
    """The exception awaiting ``call()`` raises, run in a fresh event loop."""

    async def main() -> BaseException | None:
        try:
            await call()
        except Exception as exc:
            return exc
        return None

    exc = asyncio.run(main())
    if exc is None:
        pytest.fail("expected an exception")
    return exc


@pytest.fixture
def fake() -> Iterator[FakeLinqServer]:
    """A fake Linq API that accepts only ``SECRET``, stopped after the test."""
    with FakeLinqServer(api_key=SECRET) as server:
        yield server


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def setup_fault(fake: FakeLinqServer, kind: str) -> tuple[str, float]:
    """Queue ``kind`` for every request; the base URL and the client timeout to use."""
    if kind == "unreachable":
        return f"http://127.0.0.1:{closed_port()}", 2.0
    if kind == "timeout":
        fake.fail_next("delay", times=None, delay=5.0)  # stop() cuts it short
        return fake.base_url, 0.1
    if kind == "delay":
        fake.fail_next("delay", times=None, delay=0.01)
        return fake.base_url, 2.0
    fake.fail_next(kind, times=None)
    return fake.base_url, 2.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", sorted(ACCEPTED))
def test_no_fault_leaks_the_key_sync(
    fake: FakeLinqServer, caplog: pytest.LogCaptureFixture, key: str, kind: str
) -> None:
    """Through Registry and LinqClient, no fault shows the key anywhere an error goes."""
    caplog.set_level(logging.DEBUG)
    base_url, timeout = setup_fault(fake, kind)
    line_id = fake.numbers[0]["id"]
    clock = FakeClock()
    hidden = Hidden(ACCEPTED[key])
    client = LinqClient(
        hidden.value,
        base_url=base_url,
        timeout=timeout,
        max_attempts=2,
        sleep=clock.sleep,
        clock=clock,
        rng=random.Random(1),
    )
    with client:
        registry = Registry(client, clock=clock)
        errors: list[BaseException] = []
        forward = "+13125550000"
        if kind == "delay":  # slow, not failing: the key must work after stripping
            assert registry.snapshot().numbers
            assert client.update_phone_number(line_id, forwarding_number=forward)
        else:
            errors.append(raised(registry.snapshot))
            errors.append(
                raised(lambda: client.update_phone_number(line_id, forwarding_number=forward))
            )
            errors.append(
                raised(lambda: registry.update_phone_number(line_id, forwarding_number=forward))
            )
    found = [f"{type(e).__name__}: {where}" for e in errors for where in leaks(e)]
    assert found == []
    assert log_leaks(caplog) == []
    assert repr(client).count("<redacted>") == 1
    # The fake saw the key without its whitespace, or the request never reached it.
    assert all(r.authorized for r in fake.requests)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", sorted(ACCEPTED))
def test_no_fault_leaks_the_key_async(
    fake: FakeLinqServer, caplog: pytest.LogCaptureFixture, key: str, kind: str
) -> None:
    """Through AsyncRegistry and AsyncLinqClient, no fault shows the key either."""
    caplog.set_level(logging.DEBUG)
    base_url, timeout = setup_fault(fake, kind)
    clock = FakeClock()
    hidden = Hidden(ACCEPTED[key])
    found: list[str] = []

    async def main() -> None:
        async with AsyncLinqClient(
            hidden.value,
            base_url=base_url,
            timeout=timeout,
            max_attempts=2,
            sleep=clock.async_sleep,
            clock=clock,
            rng=random.Random(1),
        ) as client:
            registry = AsyncRegistry(client, clock=clock)
            try:
                snapshot = await registry.snapshot()
            except Exception as exc:
                found.extend(leaks(exc))
                assert kind != "delay"
            else:
                assert kind == "delay"
                assert snapshot.numbers

    asyncio.run(main())
    assert found == []
    assert log_leaks(caplog) == []
    assert all(r.authorized for r in fake.requests)


@pytest.mark.parametrize("key", sorted(ACCEPTED))
def test_a_key_with_surrounding_whitespace_works(fake: FakeLinqServer, key: str) -> None:
    """A key read from a file with its newline lists lines at the first attempt."""
    clock = FakeClock()
    with LinqClient(
        ACCEPTED[key], base_url=fake.base_url, sleep=clock.sleep, clock=clock
    ) as client:
        assert client.list_phone_numbers()
        assert client.retries == 0
    assert fake.count() == 1
    assert fake.requests[0].authorized


def test_a_key_from_the_environment_is_stripped_too(
    fake: FakeLinqServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LINQ_API_V3_API_KEY with a trailing newline works like the argument."""
    monkeypatch.setenv(API_KEY_ENV, SECRET + "\n")
    with LinqClient(base_url=fake.base_url) as client:
        assert client.list_phone_numbers()
    assert [r.authorized for r in fake.requests] == [True]


@pytest.mark.parametrize("key", sorted(REJECTED))
@pytest.mark.parametrize("cls", [LinqClient, AsyncLinqClient])
def test_a_key_with_a_control_character_is_refused_without_showing_it(
    cls: type[LinqClient | AsyncLinqClient], key: str
) -> None:
    """A control character inside the key is a ValueError naming api_key, never the key."""
    hidden = Hidden(REJECTED[key])
    exc = raised(lambda: cls(hidden.value, base_url="http://127.0.0.1:9"))
    assert isinstance(exc, ValueError)
    assert "api_key" in str(exc)
    assert "control character" in str(exc)
    assert leaks(exc) == []
    # The offending character is named by its code, so the user knows what to look for.
    assert "U+" in str(exc)


# (An environment variable cannot hold a NUL.)
@pytest.mark.parametrize("key", sorted(k for k in REJECTED if "\x00" not in REJECTED[k]))
def test_a_bad_key_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """A control character in LINQ_API_V3_API_KEY is an error naming the variable."""
    monkeypatch.setenv(API_KEY_ENV, REJECTED[key])
    exc = raised(lambda: LinqClient(base_url="http://127.0.0.1:9"))
    assert isinstance(exc, ValueError)
    assert API_KEY_ENV in str(exc)
    assert leaks(exc) == []


@pytest.mark.parametrize("key", sorted(BLANK))
def test_a_blank_key_is_refused(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty or all-whitespace key is a ValueError naming api_key, at construction."""
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(ValueError, match="api_key") as info:
        LinqClient(BLANK[key], base_url="http://127.0.0.1:9")
    assert "empty" in str(info.value)
    monkeypatch.setenv(API_KEY_ENV, BLANK[key])
    with pytest.raises(ValueError, match=API_KEY_ENV):
        AsyncLinqClient(base_url="http://127.0.0.1:9")


def test_a_key_that_is_not_a_string_is_a_type_error() -> None:
    """api_key=b"..." is a TypeError naming the argument and the type, not the value."""
    with pytest.raises(TypeError, match="api_key") as info:
        LinqClient(SECRET.encode(), base_url="http://127.0.0.1:9")  # type: ignore[arg-type]
    assert "bytes" in str(info.value)
    assert SECRET not in str(info.value)


def test_another_bad_argument_does_not_show_the_key_in_frame_locals() -> None:
    """A constructor error about max_attempts leaves no frame local holding the key."""
    hidden = Hidden(SECRET)
    exc = raised(lambda: LinqClient(hidden.value, base_url="http://127.0.0.1:9", max_attempts=0))
    assert isinstance(exc, ValueError)
    assert "max_attempts" in str(exc)
    assert leaks(exc) == []


def test_no_local_of_a_call_holds_the_header(fake: FakeLinqServer) -> None:
    """The frames of a failed call (client and registry) show no Authorization header."""
    fake.fail_next("3006", times=None)
    clock = FakeClock()
    hidden = Hidden(SECRET)
    with LinqClient(hidden.value, base_url=fake.base_url, sleep=clock.sleep, clock=clock) as c:
        exc = raised(Registry(c, clock=clock).snapshot)
    text = "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    assert "_call" in text  # the client's frame is there, with its locals
    assert "Bearer sk_" not in text
    assert SECRET not in text
