"""Router(state=...): where the policies' sticky selectors keep their assignments."""

from __future__ import annotations

import pytest
from doubles import FakeRegistry, pool

from linq_router import Router
from linq_router._pick import make_context
from linq_router.policies import sticky
from linq_router.state import MemoryState

TO = "+14155550100"


def test_sticky_assignments_go_to_the_routers_state() -> None:
    shared = MemoryState()
    router = Router(FakeRegistry(pool(20)), policy="skip-critical | sticky", state=shared)
    line = router.pick(TO).number.id
    assert shared.get_assignment(make_context(TO).key or "") == line
    router.close()


def test_two_routers_on_one_state_share_pins_and_forgets() -> None:
    """What two processes on one Redis see, here with one in-memory backend."""
    shared = MemoryState()
    registry = FakeRegistry(pool(20))
    a = Router(registry, policy="sticky", state=shared)
    b = Router(registry, policy="sticky", state=shared)
    target = pool(20)[7]
    a.pin(TO, target.phone_number)
    assert b.pick(TO).phone_number == target.phone_number
    assert a.forget(TO)
    assert not b.forget(TO)  # already forgotten, by the other router
    a.close()
    b.close()


def test_a_state_uri_is_resolved() -> None:
    router = Router(FakeRegistry(pool(5)), policy="sticky", state="memory://?max_size=10")
    assert isinstance(router.state, MemoryState)
    assert router.state.max_size == 10
    router.pick(TO)
    assert len(router.state) == 1
    router.close()


def test_a_sticky_selector_with_its_own_state_keeps_it() -> None:
    own = MemoryState()
    router = Router(FakeRegistry(pool(5)), policy=sticky(state=own), state=MemoryState())
    router.pick(TO)
    assert len(own) == 1
    router.close()


def test_a_policy_without_sticky_is_unchanged_and_bad_state_is_refused() -> None:
    router = Router(FakeRegistry(pool(5)), policy="round-robin", state=MemoryState())
    assert router.policy.name == "round-robin"
    router.close()
    with pytest.raises(TypeError, match="state must be a StateBackend or a state URI"):
        Router(FakeRegistry(pool(5)), state=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bogus"):
        Router(FakeRegistry(pool(5)), state="bogus://x")


def test_budgets_live_where_a_shared_state_lives() -> None:
    from linq_router.pacing._shared_storage import pacing_storage
    from linq_router.pacing._storage import storage as _storage

    assert pacing_storage("memory://") is None
    assert (
        pacing_storage("redis://:pw@127.0.0.1:6390/2?namespace=fleet-a&socket_timeout_ms=20")
        == "redis://:pw@127.0.0.1:6390/2?key_prefix=fleet-a%3Apacing"
        "&socket_timeout=0.02&socket_connect_timeout=0.05"  # the state's own
    )
    assert (
        pacing_storage("rediss://h:1/0?socket_timeout_ms=2000")
        == "rediss://h:1/0?key_prefix=linq_router%3Apacing"
        "&socket_timeout=2&socket_connect_timeout=0.05"
    )
    storage = _storage(
        "redis://127.0.0.1:6390/2?key_prefix=fleet-a%3Apacing&socket_timeout=0.5"
        "&socket_connect_timeout=0.25"
    )
    assert storage.key_prefix == "fleet-a:pacing"  # limits' own option, not a redis one
    kwargs = storage.storage.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.5  # a report on a hanging Redis waits this long
    assert kwargs["socket_connect_timeout"] == 0.25
    with pytest.raises(ValueError, match="socket_timeout must be seconds > 0, got 'x'"):
        _storage("redis://127.0.0.1:6390/2?socket_timeout=x")


def test_budgets_kept_with_the_state_leave_its_outage_to_the_state_to_tell() -> None:
    """One WARNING for an outage: the state's; pacing that follows it logs at DEBUG."""
    from linq_router import Pacing, Router

    class Lines:
        def snapshot(self) -> object:  # never read: no pick is made
            raise AssertionError

    uri = "redis://127.0.0.1:1/0?namespace=quiet"
    following = Router(Lines(), state=uri)  # type: ignore[arg-type]
    own = Router(Lines(), state=uri, pacing=Pacing(storage="redis://127.0.0.1:1/1"))  # type: ignore[arg-type]
    local = Router(Lines())  # type: ignore[arg-type]
    try:
        assert following._pacer is not None
        assert following._pacer.follows_state
        assert own._pacer is not None
        assert not own._pacer.follows_state
        assert local._pacer is not None
        assert not local._pacer.follows_state
    finally:
        for router in (following, own, local):
            router.close()
            close = getattr(router.state, "close", None)
            if callable(close):
                close()
