"""Fixtures for the simulator's tests: one real redis-server a session.

Without redis-server on PATH ``RedisServer`` raises a FileNotFoundError saying how to
install it (bash scripts/setup.sh --redis), so the fleet tests FAIL: nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from linq_router.testing import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server on a free port of 127.0.0.1 for the whole session (no persistence)."""
    with RedisServer() as server:
        yield server
