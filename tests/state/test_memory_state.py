"""MemoryState: the bounded default StateBackend."""

from __future__ import annotations

import pytest

from linq_router.state import MemoryState, StateBackend, state_from_uri


def test_round_trip_and_forget() -> None:
    """set, get, delete and clear behave like a small mapping."""
    state = MemoryState()
    assert isinstance(state, StateBackend)
    assert state.get_assignment("a") is None
    state.set_assignment("a", "line-1")
    state.set_assignment("a", "line-2")
    assert state.get_assignment("a") == "line-2"
    assert state.delete_assignment("a")
    assert not state.delete_assignment("a")
    state.set_assignment("b", "line-1")
    state.clear()
    assert len(state) == 0


def test_least_recently_used_is_evicted() -> None:
    """At max_size, the entry read least recently goes first."""
    state = MemoryState(max_size=2)
    state.set_assignment("a", "1")
    state.set_assignment("b", "2")
    assert state.get_assignment("a") == "1"  # a is now the most recent
    state.set_assignment("c", "3")
    assert state.get_assignment("b") is None
    assert state.get_assignment("a") == "1"
    assert len(state) == 2


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_bad_sizes_are_rejected(size: object) -> None:
    """max_size must be a positive integer."""
    with pytest.raises(ValueError, match="max_size"):
        MemoryState(size)  # type: ignore[arg-type]


def test_state_from_uri() -> None:
    """memory:// builds a MemoryState; anything else is a clear error."""
    assert isinstance(state_from_uri("memory://"), MemoryState)
    state = state_from_uri("memory://?max_size=5")
    assert isinstance(state, MemoryState)
    assert state.max_size == 5
    with pytest.raises(ValueError, match="redis"):
        state_from_uri("redis://localhost")
    with pytest.raises(ValueError, match="ttl"):
        state_from_uri("memory://?ttl=3")


def test_the_default_bound_is_100_000_conversations() -> None:
    """MemoryState(), state_from_uri('memory://') and sticky() all keep 100,000."""
    from linq_router.policies import sticky

    assert MemoryState().max_size == 100_000
    assert state_from_uri("memory://").max_size == 100_000  # type: ignore[attr-defined]
    assert sticky().state.max_size == 100_000  # type: ignore[attr-defined]
