"""Registry change notices: listeners may call back into the registry, in order, once."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from linq_router import AsyncLinqClient, AsyncRegistry, LinqClient, Registry, Snapshot
from linq_router.testing import FakeClock, FakeLinqServer

LIST = "GET /v3/phone_numbers"
TIMEOUT = 10.0


@pytest.fixture
def client(server: FakeLinqServer) -> Iterator[LinqClient]:
    retry_clock = FakeClock()  # backoff never waits, and never moves the cache's clock
    with LinqClient(
        server.api_key, base_url=server.base_url, sleep=retry_clock.sleep, clock=retry_clock
    ) as c:
        yield c


def finishes(fn: Callable[[], object], timeout: float = TIMEOUT) -> bool:
    """Run ``fn`` in a thread; True if it returned (or raised) within ``timeout``."""
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def toggle(server: FakeLinqServer) -> None:
    """Change the first line's reputation, so the next list has a new version."""
    first = server.numbers[0]
    current = first["reputation"]["status"]
    server.set_reputation(first["id"], "AT_RISK" if current == "HEALTHY" else "HEALTHY")


def test_a_listener_may_call_every_registry_method(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """refresh(), snapshot(), update, subscribe and invalidate from a listener: no deadlock."""
    registry = Registry(client, ttl=60, clock=clock)
    registry.snapshot()
    seen: list[tuple[str, str]] = []
    answers: list[str] = []

    def busy(snapshot: Snapshot) -> None:
        # (An assertion failing in here would only be logged: record, check outside.)
        seen.append(("busy", snapshot.version))
        if len(seen) > 1:
            return
        answers.append(registry.refresh().version)  # a second request, and its answer
        answers.append(registry.snapshot().version)
        target = snapshot.numbers[1]
        registry.update_phone_number(target.id, forwarding_number="+13125550000")
        registry.subscribe(lambda s: seen.append(("late", s.version)))()
        registry.invalidate()
        registry.close()

    registry.subscribe(busy)
    toggle(server)
    assert finishes(registry.refresh)
    changed = seen[0][1]
    assert answers == [changed, changed]
    assert server.count(LIST) == 3
    written = registry.snapshot()  # invalidated: starts a refresh behind it
    registry.close(timeout=TIMEOUT)
    assert server.count(LIST) == 4
    # The write-through made a second change, announced after the first one returned.
    assert [kind for kind, _ in seen] == ["busy", "busy"]
    assert seen[1][1] == written.version


def test_a_listener_in_a_background_refresh_may_refresh_and_close(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """A listener run by the refresh-ahead thread may refresh and close the registry."""
    registry = Registry(client, ttl=60, refresh_ahead=30, clock=clock)
    registry.snapshot()
    done = threading.Event()

    def listener(_: Snapshot) -> None:
        registry.refresh()
        registry.close()  # its own thread: not joined
        done.set()

    registry.subscribe(listener)
    toggle(server)
    clock.advance(31)
    registry.snapshot()
    assert done.wait(TIMEOUT)
    registry.close(timeout=TIMEOUT)
    assert server.count(LIST) == 3


def test_a_failing_listener_is_logged_and_the_others_still_hear(
    server: FakeLinqServer,
    client: LinqClient,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One listener raising is logged; those after it are still called, every time."""
    registry = Registry(client, ttl=60, clock=clock)
    registry.snapshot()
    heard: list[str] = []

    def boom(_: Snapshot) -> None:
        raise RuntimeError("listener bug")

    registry.subscribe(lambda s: heard.append("first"))
    registry.subscribe(boom)
    registry.subscribe(lambda s: heard.append("last"))
    with caplog.at_level(logging.ERROR, logger="linq_router"):
        for _ in range(2):
            toggle(server)
            registry.refresh()
    assert heard == ["first", "last", "first", "last"]
    assert sum("listener bug" in (r.exc_text or "") for r in caplog.records) == 2


def test_changes_a_listener_causes_are_announced_after_it_in_order(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """A refresh inside a listener is announced to everyone after the current notice."""
    registry = Registry(client, ttl=60, clock=clock)
    registry.snapshot()
    heard: list[tuple[str, str]] = []

    def a(snapshot: Snapshot) -> None:
        heard.append(("a", snapshot.version))
        if len(heard) == 1:
            toggle(server)
            registry.refresh()  # a second change, while "b" has not heard the first

    registry.subscribe(a)
    registry.subscribe(lambda s: heard.append(("b", s.version)))
    toggle(server)
    first = registry.refresh()
    second = registry.snapshot()
    assert first.version != second.version
    assert heard == [
        ("a", first.version),
        ("b", first.version),
        ("a", second.version),
        ("b", second.version),
    ]


def test_a_slow_listener_does_not_hold_up_another_threads_refresh(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """While one thread's listeners run, another refresh returns; its change comes next."""
    registry = Registry(client, ttl=60, clock=clock)
    registry.snapshot()
    entered, release = threading.Event(), threading.Event()
    heard: list[str] = []

    def slow(snapshot: Snapshot) -> None:
        heard.append(snapshot.version)
        if len(heard) == 1:
            entered.set()
            assert release.wait(TIMEOUT)

    registry.subscribe(slow)
    toggle(server)
    announcer = threading.Thread(target=registry.refresh, daemon=True)
    announcer.start()
    assert entered.wait(TIMEOUT)
    toggle(server)
    assert finishes(registry.refresh)  # does not wait for the slow listener
    assert len(heard) == 1
    release.set()
    announcer.join(TIMEOUT)
    assert not announcer.is_alive()
    assert heard[1] == registry.snapshot().version
    assert len(heard) == 2


def test_async_listeners_may_start_refreshes_and_one_may_fail(
    server: FakeLinqServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """AsyncRegistry: a listener schedules refresh() and reads the registry; a bad one is logged."""

    async def main() -> None:
        async with AsyncLinqClient(
            server.api_key, base_url=server.base_url, sleep=FakeClock().async_sleep
        ) as aclient:
            registry = AsyncRegistry(aclient, ttl=60, clock=clock)
            await registry.snapshot()
            tasks: list[asyncio.Task[Snapshot]] = []
            heard: list[str] = []

            def boom(_: Snapshot) -> None:
                raise RuntimeError("listener bug")

            def listener(snapshot: Snapshot) -> None:
                heard.append(snapshot.version)
                if len(heard) == 1:
                    registry.invalidate()
                    registry.subscribe(lambda s: None)()
                    tasks.append(asyncio.ensure_future(registry.refresh()))
                    tasks.append(asyncio.ensure_future(registry.snapshot()))

            registry.subscribe(boom)
            registry.subscribe(listener)
            toggle(server)
            first = await asyncio.wait_for(registry.refresh(), TIMEOUT)
            again, current = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
            assert again.version == first.version
            assert current.version == first.version
            assert heard == [first.version]
            await registry.aclose()

    with caplog.at_level(logging.ERROR, logger="linq_router"):
        asyncio.run(main())
    assert any("listener bug" in (r.exc_text or "") for r in caplog.records)
    assert server.count(LIST) >= 3
