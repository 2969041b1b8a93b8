"""MemoryState: the bounded default StateBackend."""

from __future__ import annotations

import pytest

from linq_router.state import MemoryState, StateBackend, state_from_uri
from linq_router.testing import FakeClock


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
    """memory:// builds a MemoryState (the old name still works); unknown options are errors."""
    assert isinstance(state_from_uri("memory://"), MemoryState)
    state = state_from_uri("memory://?max_size=5&assignment_ttl=60")
    assert isinstance(state, MemoryState)
    assert (state.max_size, state.assignment_ttl) == (5, 60)
    with pytest.raises(ValueError, match="ttl"):
        state_from_uri("memory://?ttl=3")


def test_assign_gets_or_sets() -> None:
    """assign stores the candidate for an unknown key, else answers what is remembered."""
    state = MemoryState(max_size=2)
    assert state.assign("a", "line-1") == "line-1"
    assert state.assign("a", "line-2") == "line-1"
    state.set_assignment("b", "line-3")
    assert state.assign("c", "line-4") == "line-4"  # evicts a, the least recent
    assert state.get_assignment("a") is None
    assert state.assign("a", "line-5") == "line-5"


def test_assignments_expire_after_their_last_use(clock: FakeClock) -> None:
    """With assignment_ttl, a line unused for that long is forgotten; a use renews it."""
    state = MemoryState(assignment_ttl=10, clock=clock)
    state.set_assignment("used", "line-1")
    state.assign("unused", "line-2")
    clock.advance(6)
    assert state.get_assignment("used") == "line-1"
    clock.advance(6)
    assert state.get_assignment("used") == "line-1"
    assert state.get_assignment("unused") is None
    assert not state.delete_assignment("unused")
    assert state.assign("unused", "line-3") == "line-3"
    clock.advance(10)
    assert not state.delete_assignment("used")
    assert "assignment_ttl=10" in repr(state)
    with pytest.raises(ValueError, match="assignment_ttl"):
        MemoryState(assignment_ttl=0)


def test_the_default_bound_is_100_000_conversations() -> None:
    """MemoryState(), state_from_uri('memory://') and sticky() all keep 100,000."""
    from linq_router.policies import sticky

    assert MemoryState().max_size == 100_000
    assert state_from_uri("memory://").max_size == 100_000  # type: ignore[attr-defined]
    assert sticky().state.max_size == 100_000  # type: ignore[attr-defined]
