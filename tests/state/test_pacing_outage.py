"""Budgets through a Redis outage: counted in the process meanwhile, written back after.

A router on ``state=<redis URI>`` keeps its budgets in that Redis (``limits``' Redis
storage). Its own redis-server is killed mid-run: reports go on and count in a local
memory storage, from what the shared windows held when last read, so a line still runs
out. The server comes back empty; once the recheck is due (one second on the router's
clock), the next report writes the outage's counts back, and a fresh router on the
same state reads them from Redis.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Iterator

import pytest

from linq_router import (
    AsyncLinqClient,
    AsyncRegistry,
    AsyncRouter,
    BudgetExhaustedError,
    LinqClient,
    Pacing,
    Registry,
    Router,
)
from linq_router.testing import FakeClock, FakeLinqServer, RedisServer

LINES = ["+12025550101", "+12025550102"]
PACING = Pacing(per_line="3/day", per_pair=None)


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill."""
    with RedisServer() as server:
        yield server


def _state(server: RedisServer) -> str:
    return f"{server.url}/0?namespace=t{uuid.uuid4().hex[:10]}"


def _used(router: Router) -> dict[str, int]:
    return {b.line: b.used for b in router.budgets() if b.kind == "per_line"}


def _shared_use(fake: FakeLinqServer, state: str) -> dict[str, int]:
    """What the budgets' Redis holds, read by a router of its own on the same state."""
    with LinqClient(fake.api_key, base_url=fake.base_url) as client:
        fresh = Router(Registry(client, ttl=3600), state=state, pacing=PACING)
        try:
            return _used(fresh)
        finally:
            fresh.close()


def _pacing_logs(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == level and r.getMessage().startswith("pacing:")
    ]


def _told_once(caplog: pytest.LogCaptureFixture) -> None:
    """The outage is the router's state's to tell (one WARNING); the budgets' at DEBUG."""
    debug = _pacing_logs(caplog, logging.DEBUG)
    assert any("go on counting in this process" in m for m in debug)
    rejoined = [m for m in debug if "rejoined the shared storage" in m]
    assert len(rejoined) == 1
    assert "wrote back 5 counts to 2 windows" in rejoined[0]
    assert _pacing_logs(caplog, logging.WARNING) == []
    assert _pacing_logs(caplog, logging.INFO) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "shared state unreachable" in warnings[0]


def test_budgets_count_locally_through_an_outage_and_are_written_back(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="linq_router")
    state = _state(own_server)
    clock = FakeClock()
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as c:
        router = Router(
            Registry(c, ttl=3600), "round-robin", state=state, pacing=PACING, clock=clock
        )
        for _ in LINES:
            router.report(router.pick())  # one send a line, counted in Redis
        assert _shared_use(fake, state) == dict.fromkeys(LINES, 1)

        own_server.kill()
        for _ in range(4):  # two more a line: nothing raises, and the lines run out
            router.report(router.pick())
        with pytest.raises(BudgetExhaustedError):
            router.pick()
        assert _used(router) == dict.fromkeys(LINES, 3)  # the last known use, and more

        own_server.start()  # back, and empty
        router.report(LINES[0])  # the recheck is not due yet: counted locally
        assert _shared_use(fake, state) == dict.fromkeys(LINES, 0)
        clock.advance(1.0)
        router.report(LINES[0])  # probes, writes the outage's counts back, counts in Redis
        assert _shared_use(fake, state) == {LINES[0]: 4, LINES[1]: 2}
        assert _used(router) == {LINES[0]: 4, LINES[1]: 2}  # read from Redis again
        router.close()

    _told_once(caplog)


def test_async_budgets_count_locally_through_an_outage_and_are_written_back(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="linq_router")
    state = _state(own_server)
    clock = FakeClock()

    async def used(router: AsyncRouter) -> dict[str, int]:
        return {b.line: b.used for b in await router.budgets() if b.kind == "per_line"}

    async def main(fake: FakeLinqServer) -> None:
        async with AsyncLinqClient(fake.api_key, base_url=fake.base_url) as client:
            router = AsyncRouter(
                AsyncRegistry(client, ttl=3600),
                "round-robin",
                state=state,
                pacing=PACING,
                clock=clock,
            )
            for _ in LINES:
                await router.report(await router.pick())
            assert await asyncio.to_thread(_shared_use, fake, state) == dict.fromkeys(LINES, 1)

            own_server.kill()
            for _ in range(4):
                await router.report(await router.pick())
            with pytest.raises(BudgetExhaustedError):
                await router.pick()
            assert await used(router) == dict.fromkeys(LINES, 3)

            own_server.start()
            await router.report(LINES[0])
            assert await asyncio.to_thread(_shared_use, fake, state) == dict.fromkeys(LINES, 0)
            clock.advance(1.0)
            await router.report(LINES[0])
            shared = await asyncio.to_thread(_shared_use, fake, state)
            assert shared == {LINES[0]: 4, LINES[1]: 2}
            assert await used(router) == shared
            router.close()

    with FakeLinqServer(LINES) as fake:
        asyncio.run(asyncio.wait_for(main(fake), timeout=60))

    _told_once(caplog)


def test_budgets_on_a_redis_down_from_the_start_count_in_the_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pacing = Pacing(per_line="2/day", per_pair=None, storage=f"redis://127.0.0.1:{port}")
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as c:
        router = Router(Registry(c, ttl=3600), "round-robin", pacing=pacing, clock=FakeClock())
        for _ in range(4):
            router.report(router.pick())
        with pytest.raises(BudgetExhaustedError):
            router.pick()
        assert _used(router) == dict.fromkeys(LINES, 2)
        router.close()
    assert len(_pacing_logs(caplog, logging.WARNING)) == 1
