"""Shared fixtures: a running fake Linq API and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from linq_router.testing import FakeClock, FakeLinqServer


@pytest.fixture
def server() -> Iterator[FakeLinqServer]:
    """A fake Linq API on 127.0.0.1 with its default pool, stopped after the test."""
    with FakeLinqServer() as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    """A clock tests move by hand; its sleep() advances it instead of waiting."""
    return FakeClock()
