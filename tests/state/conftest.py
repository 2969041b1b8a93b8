"""Fixtures for the state tests: one real redis-server a session, a namespace a test.

Without redis-server on PATH the fixtures raise RedisServer's FileNotFoundError, so
every Redis test FAILS saying how to install it (bash scripts/setup.sh --redis):
nothing is skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from linq_router.testing import RedisServer

from .waiting import PATIENT


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server on a free port of 127.0.0.1 for the whole session (no persistence)."""
    with RedisServer() as server:
        yield server


class Namespaces:
    """Makes namespaces unique to one test, and deletes their keys afterwards."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.made: list[str] = []

    def __call__(self) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.made.append(name)
        return name

    def flush(self) -> None:
        """Delete every key of the namespaces made (only those: SCAN, never FLUSHDB)."""
        for name in self.made:
            keys = list(self.client.scan_iter(match="{" + name + "}:*", count=1000))
            if keys:
                self.client.delete(*keys)


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client of the session's server, db 0, closed after the test."""
    client = redis.Redis.from_url(redis_server.url + "/0", socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def namespaces(redis_client: redis.Redis) -> Iterator[Namespaces]:
    """``namespaces()`` is a fresh namespace; their keys are deleted after the test."""
    made = Namespaces(redis_client)
    yield made
    made.flush()


@pytest.fixture
def redis_url(redis_server: RedisServer, namespaces: Namespaces) -> str:
    """A state URI of the session's server in a namespace of this test's own, no fallback."""
    return f"{redis_server.url}/0?namespace={namespaces()}&fallback=off{PATIENT}"
