"""Registry and AsyncRegistry: TTL, single flight, refresh-ahead, stale-while-revalidate,
stale-if-error, write-through."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from linq_router import (
    AsyncLinqClient,
    AsyncRegistry,
    AuthenticationError,
    LinqClient,
    LinqResponseError,
    Registry,
    RegistryUnavailableError,
    Reputation,
    ServerError,
    Snapshot,
)
from linq_router.testing import FakeClock, FakeLinqServer

LIST = "GET /v3/phone_numbers"


@pytest.fixture
def client(server: FakeLinqServer, clock: FakeClock) -> Iterator[LinqClient]:
    # Retries sleep on their own fake clock so that backoff never moves the cache's.
    retry_clock = FakeClock()
    with LinqClient(
        server.api_key, base_url=server.base_url, sleep=retry_clock.sleep, clock=retry_clock
    ) as c:
        yield c


def test_serves_from_memory_until_ttl(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """Within the TTL no request goes out; once it expires, exactly one does, behind."""
    registry = Registry(client, ttl=30, clock=clock)
    first = registry.snapshot()
    clock.advance(29.9)
    assert registry.snapshot() is first
    assert server.count(LIST) == 1
    clock.advance(0.1)
    assert registry.snapshot() is first  # stale, served while the refresh runs
    registry.close()
    assert server.count(LIST) == 2
    second = registry.snapshot()
    assert second.version == first.version
    assert second.fetched_at == clock()


def test_version_changes_only_with_content(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """A refresh with the same lines keeps the version; a reputation change moves it."""
    registry = Registry(client, ttl=10, clock=clock)
    v1 = registry.snapshot().version
    assert registry.refresh().version == v1
    server.set_reputation(server.numbers[0]["id"], "CRITICAL")
    snap = registry.refresh()
    assert snap.version != v1
    assert snap.numbers[0].reputation is Reputation.CRITICAL


def test_a_refresh_keeps_unchanged_lines_and_names_the_changed_one(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """After a one-line change, the other lines are the same objects; changes_since knows."""
    registry = Registry(client, ttl=10, clock=clock)
    old = registry.snapshot()
    target = server.numbers[0]["id"]
    server.set_reputation(target, "CRITICAL")
    new = registry.refresh()
    assert new.changes_since(old) == {target}
    assert all(a is b for a, b in zip(old.numbers[1:], new.numbers[1:], strict=True))
    assert registry.refresh().changes_since(new) == frozenset()


def test_fifty_threads_on_a_cold_registry_send_one_request(
    server: FakeLinqServer,
    client: LinqClient,
    clock: FakeClock,
    in_threads: Callable[..., list[Snapshot]],
) -> None:
    """50 threads racing an empty registry share one list request and its result."""
    registry = Registry(client, ttl=60, clock=clock)
    server.fail_next("delay", times=1, delay=0.3)
    results = in_threads(registry.snapshot, 50)
    assert len(results) == 50
    assert len({id(s) for s in results}) == 1
    assert server.count(LIST) == 1


def test_fifty_threads_on_an_expired_registry_send_one_request(
    server: FakeLinqServer,
    client: LinqClient,
    clock: FakeClock,
    in_threads: Callable[..., list[Snapshot]],
) -> None:
    """Once the snapshot expires, 50 racing threads get it at once and cause one request."""
    registry = Registry(client, ttl=60, clock=clock)
    old = registry.snapshot()
    clock.advance(61)
    server.fail_next("delay", times=1, delay=0.3)
    results = in_threads(registry.snapshot, 50)
    assert len(results) == 50
    assert all(s is old for s in results)
    registry.close()
    assert server.count(LIST) == 2
    assert registry.snapshot().fetched_at == clock()


def test_with_no_stale_window_expired_callers_wait_for_one_request(
    server: FakeLinqServer,
    client: LinqClient,
    clock: FakeClock,
    in_threads: Callable[..., list[Snapshot]],
) -> None:
    """With stale_if_error=0, 50 threads past the TTL wait for one shared request."""
    registry = Registry(client, ttl=60, stale_if_error=0, clock=clock)
    old = registry.snapshot()
    clock.advance(61)
    server.fail_next("delay", times=1, delay=0.3)
    results = in_threads(registry.snapshot, 50)
    assert len(results) == 50
    assert all(s is not old and s.fetched_at == clock() for s in results)
    assert server.count(LIST) == 2


def test_five_hundred_tasks_on_a_cold_async_registry_send_one_request(
    server: FakeLinqServer, clock: FakeClock
) -> None:
    """500 asyncio tasks racing an empty AsyncRegistry share one list request."""
    server.fail_next("delay", times=1, delay=0.2)

    async def main() -> set[int]:
        async with AsyncLinqClient(server.api_key, base_url=server.base_url) as aclient:
            registry = AsyncRegistry(aclient, ttl=60, clock=clock)
            snaps = await asyncio.wait_for(
                asyncio.gather(*(registry.snapshot() for _ in range(500))), timeout=10
            )
            clock.advance(61)
            server.fail_next("delay", times=1, delay=0.2)
            again = await asyncio.wait_for(
                asyncio.gather(*(registry.snapshot() for _ in range(500))), timeout=10
            )
            await registry.aclose()  # the one refresh behind them
            return {id(s) for s in snaps} | {id(s) for s in again}

    assert len(asyncio.run(main())) == 1  # expired, the snapshot was served while refreshing
    assert server.count(LIST) == 2


def test_refresh_ahead_keeps_warm_callers_off_the_network(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """Past refresh_ahead, snapshot() returns the cached one and refreshes behind."""
    registry = Registry(client, ttl=60, refresh_ahead=45, clock=clock)
    old = registry.snapshot()
    changed = threading.Event()
    registry.subscribe(lambda s: changed.set() if s.version != old.version else None)
    server.set_reputation(server.numbers[0]["id"], "AT_RISK")
    server.fail_next("delay", times=1, delay=0.5)
    clock.advance(46)
    assert registry.snapshot() is old  # returned without waiting for the slow answer
    assert not changed.is_set()
    assert changed.wait(timeout=10)
    registry.close()
    new = registry.snapshot()
    assert new.version != old.version
    assert new.numbers[0].reputation is Reputation.AT_RISK
    assert server.count(LIST) == 2


def test_async_refresh_ahead(server: FakeLinqServer, clock: FakeClock) -> None:
    """The async registry refreshes ahead in a background task, warm callers don't wait."""

    async def main() -> None:
        async with AsyncLinqClient(server.api_key, base_url=server.base_url) as aclient:
            registry = AsyncRegistry(aclient, ttl=60, refresh_ahead=30, clock=clock)
            old = await registry.snapshot()
            server.set_reputation(server.numbers[0]["id"], "CRITICAL")
            clock.advance(31)
            assert await registry.snapshot() is old
            await registry.aclose()
            assert (await registry.snapshot()).numbers[0].reputation is Reputation.CRITICAL

    asyncio.run(main())
    assert server.count(LIST) == 2


def test_a_hanging_refresh_past_the_ttl_stalls_nobody(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """While a refresh hangs past the TTL, every caller gets the stale snapshot at once."""
    registry = Registry(client, ttl=60, refresh_ahead=45, clock=clock)
    old = registry.snapshot()
    server.fail_next("delay", times=1, delay=30)  # an API that answers after 30 s
    clock.advance(46)
    assert registry.snapshot() is old  # starts the background refresh
    assert server.wait_for_requests(2, LIST, timeout=5)
    clock.advance(15)  # 61 s old: expired, and the refresh still hangs
    assert all(registry.snapshot() is old for _ in range(100))
    assert registry.refreshes == 1  # nobody waited for the answer
    server.stop()  # the hanging request fails; the snapshot stays in service
    registry.close(timeout=10)
    assert registry.failures == 1
    assert registry.snapshot() is old


def test_past_the_stale_window_callers_join_the_refresh_in_flight(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """Older than ttl + stale_if_error, a caller waits, for the refresh already running."""
    registry = Registry(client, ttl=10, stale_if_error=5, refresh_ahead=5, clock=clock)
    old = registry.snapshot()
    server.set_reputation(server.numbers[0]["id"], "AT_RISK")
    server.fail_next("delay", times=1, delay=0.3)
    clock.advance(6)
    assert registry.snapshot() is old
    assert server.wait_for_requests(2, LIST, timeout=5)
    clock.advance(10)  # 16 s old: nothing left that may be served
    new = registry.snapshot()
    assert new.numbers[0].reputation is Reputation.AT_RISK
    assert server.count(LIST) == 2
    registry.close()


def test_async_hanging_refresh_past_the_ttl_stalls_nobody(
    server: FakeLinqServer, clock: FakeClock
) -> None:
    """AsyncRegistry: tasks past the TTL get the stale snapshot while the refresh hangs."""

    async def main() -> None:
        async with AsyncLinqClient(
            server.api_key, base_url=server.base_url, sleep=FakeClock().async_sleep
        ) as aclient:
            registry = AsyncRegistry(aclient, ttl=60, refresh_ahead=45, clock=clock)
            old = await registry.snapshot()
            server.fail_next("delay", times=1, delay=30)
            clock.advance(46)
            assert await registry.snapshot() is old
            assert await asyncio.to_thread(server.wait_for_requests, 2, LIST, timeout=5)
            clock.advance(15)
            snaps = await asyncio.wait_for(
                asyncio.gather(*(registry.snapshot() for _ in range(100))), timeout=5
            )
            assert all(s is old for s in snaps)
            assert registry.refreshes == 1
            server.stop()
            await registry.aclose()
            assert registry.failures == 1
            assert await registry.snapshot() is old

    asyncio.run(main())


def test_a_failed_refresh_is_retried_within_the_ttl(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """With ttl=0.2, a refresh that failed (three 3006) is tried again within 0.2 s."""
    registry = Registry(client, ttl=0.2, clock=clock)  # error_retry_interval is 5 s
    good = registry.snapshot()
    server.fail_next("3006", times=3)  # every attempt of the client's one call
    clock.advance(0.2)
    assert registry.snapshot() is good
    registry.close()
    assert (registry.failures, server.count(LIST)) == (1, 4)
    assert registry.snapshot() is good  # right after the failure: no retry yet
    registry.close()
    assert server.count(LIST) == 4
    clock.advance(0.2)
    registry.snapshot()
    registry.close()
    assert (registry.refreshes, server.count(LIST)) == (2, 5)


def test_stale_if_error_serves_then_raises(
    server: FakeLinqServer,
    client: LinqClient,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing refresh serves the last snapshot within stale_if_error, then raises."""
    registry = Registry(client, ttl=60, stale_if_error=120, error_retry_interval=5, clock=clock)
    good = registry.snapshot()
    server.fail_next("3006", times=1000)
    clock.advance(61)
    with caplog.at_level(logging.WARNING, logger="linq_router"):
        assert registry.snapshot() is good
        registry.close()  # the refresh ran, and failed, behind it
    assert any("serving the last good snapshot" in r.getMessage() for r in caplog.records)
    clock.advance(100)  # 161s old: expired 101s ago, inside the 120s window
    assert registry.snapshot() is good
    registry.close()
    clock.advance(21)  # 182s old: past ttl + stale_if_error
    with pytest.raises(RegistryUnavailableError) as info:
        registry.snapshot()
    assert isinstance(info.value, ServerError)
    assert info.value.code == 3006


def test_malformed_answer_never_replaces_a_good_snapshot(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """After expiry, a malformed body leaves the last good snapshot in service."""
    registry = Registry(client, ttl=60, clock=clock)
    good = registry.snapshot()
    for kind in ("malformed", "wrong-shape"):
        server.fail_next(kind, times=1)
        with pytest.raises(LinqResponseError):
            registry.refresh()
        assert registry.snapshot() is good
    clock.advance(61)
    server.fail_next("malformed", times=1)
    assert registry.snapshot() is good
    registry.close()  # the refresh after a failure runs in the background
    assert registry.failures == 3
    assert registry.snapshot() is good


def test_cold_start_auth_failure(server: FakeLinqServer, clock: FakeClock) -> None:
    """A refused key at a cold start raises AuthenticationError after one request."""
    with LinqClient("nope", base_url=server.base_url, sleep=clock.sleep) as bad:
        registry = Registry(bad, clock=clock)
        with pytest.raises(AuthenticationError) as info:
            registry.snapshot()
    assert isinstance(info.value, RegistryUnavailableError)
    assert "nope" not in str(info.value)
    assert server.count(LIST) == 1


def test_a_failed_cold_start_is_tried_again_by_the_next_caller(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """With nothing to serve, each caller tries: the API's recovery is seen at once."""
    registry = Registry(client, error_retry_interval=5, clock=clock)
    server.fail_next("3006", times=3)  # the client's 3 attempts
    with pytest.raises(RegistryUnavailableError):
        registry.snapshot()
    assert server.count(LIST) == 3
    assert len(registry.snapshot()) == len(server.numbers)  # no clock advance needed
    assert server.count(LIST) == 4


def test_racing_threads_never_send_a_second_request(
    server: FakeLinqServer,
    client: LinqClient,
    clock: FakeClock,
    in_threads: Callable[..., list[Snapshot]],
) -> None:
    """Threads that decide to wait just as the refresh ends take its result, not a new one."""
    import sys

    # No stale window: every thread past the TTL waits, which is where the race is.
    registry = Registry(client, ttl=10, stale_if_error=0, clock=clock)
    registry.snapshot()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to hit the race
    try:
        for _ in range(15):
            clock.advance(11)
            server.reset_counts()
            retries = client.retries
            in_threads(registry.snapshot, 30)
            # (A retry of the one request, after a dropped keep-alive connection, is not
            # a second refresh.)
            assert server.count(LIST) - (client.retries - retries) == 1
    finally:
        sys.setswitchinterval(interval)


def test_write_through_without_a_second_list(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """An update through the registry shows in the snapshot at once, with no new GET."""
    registry = Registry(client, ttl=60, clock=clock)
    before = registry.snapshot()
    seen: list[Snapshot] = []
    registry.subscribe(seen.append)
    target = before.numbers[1]
    line = registry.update_phone_number(target.id, forwarding_number="+13125550000")
    assert line.forwarding_number == "+13125550000"
    assert line.reputation is target.reputation  # the full line, not the PUT's partial one
    after = registry.snapshot()
    assert after.get(target.id) == line
    assert after.version != before.version
    assert seen[-1] is after
    assert server.count(LIST) == 1
    registry.update_phone_number(target.id, forwarding_number=None)
    assert registry.snapshot().get(target.id).forwarding_number is None  # type: ignore[union-attr]


def test_subscribers_hear_changes_only(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """Listeners get each new version once; unsubscribed ones hear nothing more."""
    registry = Registry(client, ttl=10, clock=clock)
    heard: list[str] = []
    unsubscribe = registry.subscribe(lambda s: heard.append(s.version))
    registry.snapshot()
    registry.refresh()
    assert len(heard) == 1
    server.set_reputation(server.numbers[0]["id"], "CRITICAL")
    registry.refresh()
    assert len(heard) == 2
    unsubscribe()
    server.set_reputation(server.numbers[0]["id"], "HEALTHY")
    registry.refresh()
    assert len(heard) == 2


def test_failing_listener_does_not_break_the_registry(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """A listener that raises is logged; the snapshot is still served."""
    registry = Registry(client, clock=clock)

    def boom(_: Snapshot) -> None:
        raise RuntimeError("listener bug")

    registry.subscribe(boom)
    assert len(registry.snapshot()) == len(server.numbers)


def test_invalidate_forces_a_refetch(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """invalidate() makes the next snapshot() fetch (behind it), even inside the TTL."""
    registry = Registry(client, ttl=60, clock=clock)
    first = registry.snapshot()
    registry.invalidate()
    assert registry.snapshot() is first
    registry.close()
    assert server.count(LIST) == 2
    assert registry.snapshot() is not first


def test_repr_has_no_key(server: FakeLinqServer, client: LinqClient, clock: FakeClock) -> None:
    """The registry's repr names its settings, never the key."""
    registry = Registry(client, clock=clock)
    registry.snapshot()
    assert server.api_key not in repr(registry)
    assert "ttl=60" in repr(registry)


@pytest.mark.parametrize(
    "options",
    [{"ttl": 0}, {"ttl": -1}, {"stale_if_error": -1}, {"refresh_ahead": 60}, {"refresh_ahead": 0}],
)
def test_bad_options(client: LinqClient, options: dict[str, float]) -> None:
    """Nonsense settings are ValueErrors that name the setting."""
    with pytest.raises(ValueError, match=next(iter(options))):
        Registry(client, **options)  # type: ignore[arg-type]


def test_async_write_through_and_stale(server: FakeLinqServer, clock: FakeClock) -> None:
    """AsyncRegistry writes through and serves stale on errors, like Registry."""

    async def main() -> None:
        async with AsyncLinqClient(
            server.api_key, base_url=server.base_url, sleep=FakeClock().async_sleep
        ) as aclient:
            registry = AsyncRegistry(aclient, ttl=60, stale_if_error=60, clock=clock)
            good = await registry.snapshot()
            target = good.numbers[0]
            await registry.update_phone_number(target.id, forwarding_number="+13125550000")
            current = await registry.snapshot()
            assert current.get(target.id).forwarding_number == "+13125550000"  # type: ignore[union-attr]
            server.fail_next("3006", times=100)
            clock.advance(61)
            assert await registry.snapshot() is current
            await registry.aclose()
            clock.advance(60)
            with pytest.raises(RegistryUnavailableError):
                await registry.snapshot()

    asyncio.run(main())
    assert server.count(LIST) >= 2


def test_sync_and_async_registries_have_the_same_methods() -> None:
    """Twins stay twins: every public method of Registry exists on AsyncRegistry."""

    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    renamed = {"close": "aclose"}
    assert {renamed.get(n, n) for n in public(Registry)} == public(AsyncRegistry)


def test_a_list_fetched_before_an_update_does_not_undo_it(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """A refresh answered with pre-update data keeps the forwarding number just written."""
    registry = Registry(client, ttl=60, refresh_ahead=30, clock=clock)
    target = registry.snapshot().numbers[0]
    server.fail_next("delay", times=1, delay=0.5, route="GET /v3/phone_numbers")
    clock.advance(31)
    registry.snapshot()  # starts the background refresh; its answer is already rendered
    assert server.wait_for_requests(2, "GET /v3/phone_numbers", timeout=5)
    registry.update_phone_number(target.id, forwarding_number="+13125550000")
    registry.close()
    assert registry.refreshes == 2
    assert registry.snapshot().get(target.id).forwarding_number == "+13125550000"  # type: ignore[union-attr]
    clock.advance(31)
    registry.snapshot()
    registry.close()  # a list fetched after the write carries it on its own
    assert registry.snapshot().get(target.id).forwarding_number == "+13125550000"  # type: ignore[union-attr]
    assert not registry._overrides  # the next list reflects the write: nothing left to re-apply


def test_subscribing_late_hears_only_later_changes(
    server: FakeLinqServer, client: LinqClient, clock: FakeClock
) -> None:
    """A listener added after the first fetch is called on the next change, not before."""
    registry = Registry(client, ttl=10, clock=clock)
    registry.snapshot()
    heard: list[Snapshot] = []
    registry.subscribe(heard.append)
    registry.refresh()
    assert heard == []
    server.set_reputation(server.numbers[0]["id"], "AT_RISK")
    registry.refresh()
    assert [s.numbers[0].reputation for s in heard] == [Reputation.AT_RISK]
