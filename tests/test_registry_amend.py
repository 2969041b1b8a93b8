"""Registry.amend / remove / refresh_soon: one line changed at once, no list request."""

from __future__ import annotations

import asyncio
import datetime
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linq_router import (
    AsyncLinqClient,
    AsyncRegistry,
    LinqClient,
    Registry,
    Reputation,
    Router,
)
from linq_router.testing import FakeLinqServer

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LIST = "GET /v3/phone_numbers"


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


@pytest.fixture
def registry(server: FakeLinqServer) -> Registry:
    client = LinqClient(server.api_key, base_url=server.base_url)
    reg = Registry(client, ttl=3600)
    reg.snapshot()
    return reg


def test_amend_replaces_one_line_with_a_new_version_and_no_list(
    registry: Registry, server: FakeLinqServer
) -> None:
    before = registry.snapshot()
    target = before[0]
    lists = server.count(LIST)
    line = registry.amend(target.phone_number, reputation="CRITICAL", status="FLAGGED")
    after = registry.snapshot()
    assert line is not None
    assert line.reputation is Reputation.CRITICAL
    assert line.reputation_raw == "CRITICAL"
    assert line.status == "FLAGGED"
    assert after.get(target.id) == line
    assert after.version != before.version
    assert after.changes_since(before) == {target.id}
    assert [n for n in after if n.id != target.id] == [n for n in before if n.id != target.id]
    assert server.count(LIST) == lists


def test_amend_by_id_and_forwarding(registry: Registry) -> None:
    target = registry.snapshot()[1]
    line = registry.amend(target.id, forwarding_number="+13125550000")
    assert line is not None
    assert line.forwarding_number == "+13125550000"
    assert line.reputation is target.reputation  # untouched fields stay
    cleared = registry.amend(target.id, forwarding_number="")
    assert cleared is not None
    assert cleared.forwarding_number is None


def test_amend_with_nothing_new_keeps_the_version(registry: Registry) -> None:
    before = registry.snapshot()
    target = before[0]
    line = registry.amend(target.phone_number, status=target.status)
    assert line == target
    assert registry.snapshot().version == before.version


def test_an_older_change_is_ignored_per_line_and_aspect(registry: Registry) -> None:
    a, b = registry.snapshot()[0], registry.snapshot()[1]
    assert registry.amend(a.phone_number, reputation="CRITICAL", changed_at=at(10)) is not None
    assert registry.amend(a.phone_number, reputation="HEALTHY", changed_at=at(5)) is None
    assert registry.snapshot().get(a.id).reputation is Reputation.CRITICAL  # type: ignore[union-attr]
    # Another line has its own order; another aspect of the same line too.
    assert registry.amend(b.phone_number, reputation="AT_RISK", changed_at=at(1)) is not None
    fwd = registry.amend(a.phone_number, forwarding_number="+13125550000", changed_at=at(1))
    assert fwd is not None
    # The same time again is no older: it applies.
    assert registry.amend(a.phone_number, reputation="AT_RISK", changed_at=at(10)) is not None


def test_a_list_fetched_before_the_amendment_does_not_undo_it(
    registry: Registry, server: FakeLinqServer
) -> None:
    target = registry.snapshot()[0]
    server.fail_next("delay", route="list", delay=0.5)
    started = threading.Event()

    def refresh() -> None:
        started.set()
        registry.refresh()

    thread = threading.Thread(target=refresh)
    thread.start()
    assert started.wait(5)
    # The list is in flight (delayed by the fake) and will say HEALTHY, ACTIVE.
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=5)
    while server.count(LIST) < 2 and datetime.datetime.now() < deadline:
        threading.Event().wait(0.005)
    registry.amend(target.phone_number, reputation="CRITICAL", status="FLAGGED")
    thread.join(10)
    assert not thread.is_alive()
    line = registry.snapshot().get(target.id)
    assert line is not None
    assert (line.reputation, line.status) == (Reputation.CRITICAL, "FLAGGED")
    # A list fetched after the change is the truth again.
    registry.refresh()
    assert registry.snapshot().get(target.id).reputation is Reputation.HEALTHY  # type: ignore[union-attr]


def test_remove_drops_the_line_and_a_list_in_flight_does_not_bring_it_back(
    registry: Registry, server: FakeLinqServer
) -> None:
    before = registry.snapshot()
    target = before[0]
    removed = registry.remove(target.phone_number, changed_at=at(5))
    assert removed == target
    after = registry.snapshot()
    assert after.get(target.id) is None
    assert after.get(target.phone_number) is None
    assert len(after) == len(before) - 1
    assert after.changes_since(before) == {target.id}
    assert registry.remove(target.phone_number) is None  # gone already
    # A change of that line older than the release is ignored, and starts no refresh.
    lists = server.count(LIST)
    assert registry.amend(target.phone_number, reputation="CRITICAL", changed_at=at(1)) is None
    assert server.count(LIST) == lists


def test_amend_of_an_unknown_line_refreshes_in_the_background(
    registry: Registry, server: FakeLinqServer
) -> None:
    lists = server.count(LIST)
    server.add_number("+13105550999")
    assert registry.amend("+13105550999", reputation="AT_RISK") is None
    registry.close(timeout=10)
    assert server.count(LIST) == lists + 1
    assert registry.snapshot().get("+13105550999") is not None


def test_refresh_soon_while_a_list_is_in_flight_fetches_again_after_it(
    registry: Registry, server: FakeLinqServer
) -> None:
    server.fail_next("delay", route="list", delay=0.3)
    thread = threading.Thread(target=registry.refresh)
    thread.start()
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=5)
    while server.count(LIST) < 2 and datetime.datetime.now() < deadline:
        threading.Event().wait(0.005)
    server.add_number("+13105550998")  # after the delayed list was answered... or not
    registry.refresh_soon()  # joins the one in flight, which may predate the change
    thread.join(10)
    registry.close(timeout=10)
    registry.snapshot()  # the first snapshot after it lands starts another
    registry.close(timeout=10)
    assert registry.snapshot().get("+13105550998") is not None


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"reputation": 3}, TypeError, "reputation must be a Reputation"),
        ({"status": "PAUSED"}, ValueError, "'PAUSED'"),
        ({"forwarding_number": "312"}, ValueError, "E.164"),
        ({"changed_at": "2026-12-01"}, TypeError, "changed_at"),
        ({"changed_at": datetime.datetime(2026, 12, 1)}, ValueError, "timezone-aware"),
    ],
)
def test_bad_arguments_are_named(
    registry: Registry, kwargs: dict[str, object], error: type[Exception], words: str
) -> None:
    before = registry.snapshot().version
    with pytest.raises(error, match=words):
        registry.amend(registry.snapshot()[0].phone_number, **kwargs)  # type: ignore[arg-type]
    assert registry.snapshot().version == before


def test_an_unknown_reputation_string_reads_unknown(registry: Registry) -> None:
    line = registry.amend(registry.snapshot()[0].phone_number, reputation="SUSPENDED")
    assert line is not None
    assert line.reputation is Reputation.UNKNOWN
    assert line.reputation_raw == "SUSPENDED"


def test_the_next_pick_after_amend_avoids_a_flagged_line(registry: Registry) -> None:
    router = Router(registry, policy="round-robin")
    try:
        numbers = [n.phone_number for n in registry.snapshot()]
        router.pick("+12025550100")
        for number in numbers[:-1]:
            registry.amend(number, status="FLAGGED")
        for _ in range(10):
            assert router.pick("+12025550100").phone_number == numbers[-1]
    finally:
        router.close()


def test_listeners_hear_each_amendment(registry: Registry) -> None:
    heard: list[str] = []
    registry.subscribe(lambda s: heard.append(s.version))
    registry.amend(registry.snapshot()[0].phone_number, reputation="AT_RISK")
    first = registry.snapshot().version
    registry.remove(registry.snapshot()[1].phone_number)
    assert heard == [first, registry.snapshot().version]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.sampled_from(["HEALTHY", "AT_RISK", "CRITICAL"])),
        min_size=1,
        max_size=12,
    )
)
def test_in_any_order_the_newest_change_wins(changes: list[tuple[int, str]]) -> None:
    """However status changes arrive, the line ends with the newest one's reputation."""
    with FakeLinqServer(["+12025550101"]) as fake:
        client = LinqClient(fake.api_key, base_url=fake.base_url)
        reg = Registry(client, ttl=3600)
        reg.snapshot()
        for when, rep in changes:
            reg.amend("+12025550101", reputation=rep, changed_at=at(when))
        newest = max(w for w, _ in changes)
        # Among changes at the newest time, the last one delivered wins (none is older).
        expected = [rep for w, rep in changes if w == newest][-1]
        assert reg.snapshot().get("+12025550101").reputation.value == expected  # type: ignore[union-attr]


def test_async_registry_amend_is_a_plain_method(server: FakeLinqServer) -> None:
    async def main() -> None:
        async with AsyncLinqClient(server.api_key, base_url=server.base_url) as client:
            reg = AsyncRegistry(client, ttl=3600)
            snap = await reg.snapshot()
            lists = server.count(LIST)
            line = reg.amend(snap[0].phone_number, status="FLAGGED", changed_at=at(1))
            assert line is not None
            assert line.status == "FLAGGED"
            assert (await reg.snapshot()).get(snap[0].id) == line
            assert reg.remove(snap[1].phone_number) is not None
            assert server.count(LIST) == lists
            server.add_number("+13105550997")
            reg.refresh_soon()  # a task on this loop
            await reg.aclose()
            assert (await reg.snapshot()).get("+13105550997") is not None

    asyncio.run(main())
