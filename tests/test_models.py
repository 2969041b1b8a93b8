"""Snapshot and PhoneNumber values, and the error tree."""

from __future__ import annotations

import pickle

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from linq_router import (
    AuthenticationError,
    LinqAPIError,
    PhoneNumber,
    RateLimitError,
    RegistryUnavailableError,
    Reputation,
    ServerError,
    Snapshot,
)
from linq_router._errors import registry_unavailable

lines = st.builds(
    PhoneNumber,
    id=st.text(min_size=1, max_size=5),
    phone_number=st.from_regex(r"\+1[2-9][0-9]{9}", fullmatch=True),
    reputation=st.sampled_from(Reputation),
    forwarding_number=st.none() | st.just("+13125550000"),
    line_type=st.sampled_from([None, "iMessage", "RCS"]),
)


@given(st.lists(lines, max_size=6))
def test_version_depends_only_on_content(numbers: list[PhoneNumber]) -> None:
    """Same lines, same version, whatever the fetch time; iteration and len agree."""
    a = Snapshot(numbers, fetched_at=1.0)
    b = Snapshot(list(numbers), fetched_at=99.0)
    assert a.version == b.version
    assert len(a) == len(numbers)
    assert list(a) == numbers


@given(st.lists(lines, min_size=1, max_size=6), st.sampled_from(Reputation))
def test_version_changes_with_content(numbers: list[PhoneNumber], rep: Reputation) -> None:
    """Changing one line's reputation changes the version (when it changes the content)."""
    changed = [attrs.evolve(numbers[0], reputation=rep), *numbers[1:]]
    same = changed == numbers
    assert (Snapshot(numbers).version == Snapshot(changed).version) == same


def test_snapshot_is_immutable() -> None:
    """A snapshot cannot be changed in place."""
    snap = Snapshot([PhoneNumber("a", "+12025550001")])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        snap.numbers = ()  # type: ignore[misc]
    assert isinstance(snap.numbers, tuple)
    assert snap.get("a") is snap.get("+12025550001") is snap[0]


def test_error_str_and_pickle() -> None:
    """API errors keep their fields through str() and pickling (process pools)."""
    err = RateLimitError("slow down", status=429, code=1007, retry_after=3.0)
    assert str(err) == "[HTTP 429, code 1007] slow down"
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is RateLimitError
    assert (back.status, back.code, back.retry_after) == (429, 1007, 3.0)


def test_registry_unavailable_is_also_its_cause() -> None:
    """At a cold start the registry's error can be caught as its cause's class."""
    cause = AuthenticationError("Unauthorized", status=401, code=2004)
    err = registry_unavailable("no snapshot", cause)
    assert isinstance(err, RegistryUnavailableError)
    assert isinstance(err, AuthenticationError)
    assert not isinstance(err, ServerError)
    assert err.code == 2004
    assert isinstance(registry_unavailable("x", None), LinqAPIError)


def test_reputation_of_an_unknown_value_is_unknown() -> None:
    """Reputation("SUSPENDED") is UNKNOWN, not a ValueError: Linq may add values."""
    assert Reputation("SUSPENDED") is Reputation.UNKNOWN
    assert Reputation("HEALTHY") is Reputation.HEALTHY
    assert Reputation.parse(None) is Reputation.UNKNOWN


def test_the_library_logger_has_a_null_handler() -> None:
    """Importing linq_router adds a NullHandler, so warnings go where the app says."""
    import logging

    handlers = logging.getLogger("linq_router").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


@given(
    st.integers(1, 700),
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 10_000), st.sampled_from(Reputation)), max_size=8
    ),
)
def test_a_derived_version_is_the_version_of_the_content(
    size: int, steps: list[tuple[bool, int, Reputation]]
) -> None:
    """replace_number and remove_number update the version; it equals one built afresh."""
    snapshot = Snapshot(
        [PhoneNumber(f"id-{i}", f"+1202555{i:04d}", Reputation.HEALTHY) for i in range(size)]
    )
    first = snapshot
    for remove, where, rep in steps:
        if not snapshot.numbers:
            break
        target = snapshot[where % len(snapshot)]
        before = snapshot
        if remove:
            snapshot = snapshot.remove_number(target.id)
            assert snapshot.get(target.id) is None
        else:
            snapshot = snapshot.replace_number(attrs.evolve(target, reputation=rep))
        fresh = Snapshot(snapshot.numbers)
        assert snapshot.version == fresh.version
        assert snapshot.changes_since(before) == fresh.changes_since(before)
        # Through several changes too: the lineage holds what a full pass finds (and a
        # line changed and changed back, which a full pass does not report).
        assert fresh.changes_since(first) <= snapshot.changes_since(first)
        for n in snapshot:
            assert snapshot.get(n.id) is n
            assert snapshot.get(n.phone_number) is n
