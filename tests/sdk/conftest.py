"""The real SDK against the real fake over HTTP, a real registry and a real router."""

from __future__ import annotations

from collections.abc import Iterator

import linq
import pytest

from linq_router import LinqClient, Registry
from linq_router.sdk import Sender
from linq_router.testing import FakeLinqServer

from .helpers import LINES, SpyRouter, sdk_client


@pytest.fixture
def fake() -> Iterator[FakeLinqServer]:
    """The fake Linq API with twelve healthy lines, stopped after the test."""
    with FakeLinqServer(LINES) as server:
        yield server


@pytest.fixture
def registry(fake: FakeLinqServer) -> Iterator[Registry]:
    """A real registry over the fake."""
    with LinqClient(fake.api_key, base_url=fake.base_url) as client:
        registry = Registry(client)
        yield registry
        registry.close()


@pytest.fixture
def router(registry: Registry) -> Iterator[SpyRouter]:
    """A round-robin router (the order is the registry's) that records its reports."""
    r = SpyRouter(registry, policy="round-robin")
    yield r
    r.close()


@pytest.fixture
def client(fake: FakeLinqServer) -> Iterator[linq.LinqAPIV3]:
    """The strict SDK client, with the SDK's default retries."""
    with sdk_client(fake) as c:
        yield c


@pytest.fixture
def sender(router: SpyRouter, client: linq.LinqAPIV3) -> Sender:
    """A Sender over the router and the SDK client."""
    return Sender(router, client)
