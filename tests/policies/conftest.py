"""Helpers for policy tests: build lines and snapshots by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from linq_router._models import PhoneNumber, Reputation, Snapshot

LineFactory = Callable[..., PhoneNumber]


def make_line(
    i: int,
    reputation: Reputation | str = Reputation.HEALTHY,
    *,
    line_type: str | None = "iMessage",
    status: str | None = "ACTIVE",
    number: str | None = None,
    forwarding: str | None = None,
) -> PhoneNumber:
    rep = reputation if isinstance(reputation, Reputation) else Reputation[reputation]
    return PhoneNumber(
        id=f"line-{i:05d}",
        phone_number=number or f"+1202555{i:04d}",
        reputation=rep,
        line_type=line_type,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        forwarding_number=forwarding,
    )


def snap(lines: Iterable[PhoneNumber]) -> Snapshot:
    return Snapshot(tuple(lines))


@pytest.fixture
def line() -> LineFactory:
    return make_line
