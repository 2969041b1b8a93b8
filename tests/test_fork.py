"""Objects built before os.fork() keep working in the child: picks, refreshes, sticky memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from linq_router import AsyncLinqClient, AsyncRegistry, LinqClient, Pacing, Registry, Router
from linq_router.state import MemoryState
from linq_router.testing import FakeLinqServer

pytestmark = [
    pytest.mark.skipif(
        not hasattr(os, "fork"), reason="os.fork() does not exist on this platform (Windows)"
    ),
    # Python 3.12+ warns that forking a multi-threaded process may deadlock the child:
    # exactly what these tests check does not happen.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

LIST = "GET /v3/phone_numbers"
CHILD_TIMEOUT = 10.0  # a hung child is one that has not picked and refreshed by then
RECIPIENTS = [f"+1415555{i:04d}" for i in range(50)]

Report = dict[str, Any]


def run_forked(child: Callable[[], Report], timeout: float = CHILD_TIMEOUT) -> Report:
    """Fork; the child runs ``child`` and sends its report up a pipe, then ``os._exit``.

    Returns the report; ``{"hung": True}`` if the child did not report within
    ``timeout`` seconds (it is killed), ``{"error": ...}`` if it raised.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            os.close(read_end)
            try:
                report = child()
            except BaseException as exc:  # reported to the parent, which fails the test
                report = {"error": repr(exc)}
            os.write(write_end, json.dumps(report).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        while True:
            remaining = deadline - time.monotonic()
            ready = select.select([read_end], [], [], max(remaining, 0))[0] if remaining > 0 else []
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"hung": True}
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    os.waitpid(pid, 0)  # the pipe closed: the child is exiting
    return json.loads(b"".join(chunks) or b'{"error": "no report"}')  # type: ignore[no-any-return]


def quietly(fn: Callable[[], object]) -> Callable[[], None]:
    """``fn`` as a thread target whose failure (the test stopped the server) is expected."""

    def run() -> None:
        with contextlib.suppress(Exception):
            fn()

    return run


def toggle(server: FakeLinqServer) -> None:
    """Move the first line between HEALTHY and AT_RISK: a new version, same eligibility."""
    first = server.numbers[0]
    current = first["reputation"]["status"]
    server.set_reputation(first["id"], "AT_RISK" if current == "HEALTHY" else "HEALTHY")


@pytest.fixture
def client(server: FakeLinqServer) -> Iterator[LinqClient]:
    with LinqClient(server.api_key, base_url=server.base_url, timeout=5) as c:
        yield c


def test_children_forked_while_threads_pick_and_refresh_keep_working(
    server: FakeLinqServer, client: LinqClient
) -> None:
    """20 children forked amid picking and refreshing threads each pick and refresh in 2 s."""
    registry = Registry(client, ttl=0.05)
    sticky = Router(registry, "sticky")
    default = Router(registry)
    stop = threading.Event()
    failures: list[BaseException] = []

    def forever(step: Callable[[int], object]) -> Callable[[], None]:
        def run() -> None:
            i = 0
            try:
                while not stop.is_set():
                    step(i)
                    i += 1
            except BaseException as exc:  # handed to the test below
                failures.append(exc)

        return run

    def change_and_refresh(_: int) -> None:
        toggle(server)
        registry.refresh()

    workers = [
        threading.Thread(target=forever(lambda i: sticky.pick(RECIPIENTS[i % 50]))),
        threading.Thread(target=forever(lambda i: sticky.pick(RECIPIENTS[-1 - i % 50]))),
        threading.Thread(target=forever(lambda i: default.pick(RECIPIENTS[i % 50]))),
        threading.Thread(target=forever(change_and_refresh)),
    ]
    for worker in workers:
        worker.start()

    def child() -> Report:
        before = [sticky.pick(r).phone_number for r in RECIPIENTS]
        default.pick(RECIPIENTS[0])
        snapshot = registry.refresh()
        after = [sticky.pick(r).phone_number for r in RECIPIENTS]
        return {
            "lines": len(snapshot),
            "sticky_kept": before == after,
            "own_pool": client._http is not parent_pool,
        }

    parent_pool = client._http
    try:
        reports = [run_forked(child) for _ in range(20)]
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
    assert not any(worker.is_alive() for worker in workers)
    assert not failures, failures[0]
    assert all(r.get("hung") is None for r in reports), reports
    assert all("error" not in r for r in reports), reports
    assert all(r["lines"] == len(server.numbers) for r in reports), reports
    assert all(r["sticky_kept"] and r["own_pool"] for r in reports), reports
    assert client._http is parent_pool  # the parent's pool is untouched


def test_a_child_forked_during_a_refresh_refreshes_on_its_own(
    server: FakeLinqServer, client: LinqClient
) -> None:
    """The parent's refresh in flight is not the child's: it sends its own and gets it."""
    registry = Registry(client, ttl=60)
    registry.snapshot()
    server.fail_next("delay", times=1, delay=30, route="list")  # the parent's hangs
    parent = threading.Thread(target=quietly(registry.refresh), daemon=True)
    parent.start()
    assert server.wait_for_requests(2, LIST, timeout=5)

    def child() -> Report:
        return {"lines": len(registry.refresh()), "served": len(registry.snapshot())}

    report = run_forked(child)
    server.stop()  # ends the parent's hanging request
    parent.join(10)
    assert report == {"lines": len(server.numbers), "served": len(server.numbers)}
    assert server.count(LIST) == 3


def test_a_child_forked_while_locks_are_held_does_not_wait_for_them(
    server: FakeLinqServer, client: LinqClient
) -> None:
    """Locks a parent thread holds at the fork are free in the child."""
    registry = Registry(client, ttl=60)
    state = MemoryState()
    state.set_assignment("+14155550000", "line-a")
    registry.snapshot()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with state._lock, registry._state_lock, client._retries_lock, client._warned._lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)

    def child() -> Report:
        state.set_assignment("+14155550001", "line-b")
        registry.invalidate()
        return {
            "remembered": state.get_assignment("+14155550000"),
            "lines": len(registry.refresh()),
        }

    try:
        report = run_forked(child)
    finally:
        release.set()
        holder.join(10)
    assert report == {"remembered": "line-a", "lines": len(server.numbers)}
    assert state.get_assignment("+14155550001") is None  # the child's memory is its own


def test_a_router_forked_while_its_budget_storage_is_locked_keeps_pacing(
    server: FakeLinqServer, client: LinqClient
) -> None:
    """A lock of limits' storage held at the fork is free in the child; counts carry over."""
    registry = Registry(client, ttl=60)
    router = Router(registry, "round-robin", pacing=Pacing(per_line="100/hour", per_pair=None))
    pick = router.pick()
    router.report(pick)
    pacer = router._pacer
    assert pacer is not None
    storage = pacer.storage
    key = next(iter(storage.events))  # the line's window
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with storage.locks[key], pacer._lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)

    def child() -> Report:
        router.report(pick)
        used = {b.line: b.used for b in router.budgets()}
        return {"used": used[pick.phone_number]}

    try:
        report = run_forked(child)
    finally:
        release.set()
        holder.join(10)
        router.close()
    assert report == {"used": 2}


def test_an_async_registry_forked_mid_refresh_works_in_the_child(
    server: FakeLinqServer,
) -> None:
    """An AsyncRegistry whose refresh task runs in the parent's loop refreshes in the child."""
    aclient = AsyncLinqClient(server.api_key, base_url=server.base_url, timeout=5)
    registry = AsyncRegistry(aclient, ttl=60)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def parent_side() -> None:
        await registry.snapshot()
        server.fail_next("delay", times=1, delay=30, route="list")
        task = asyncio.ensure_future(registry.refresh())
        await asyncio.to_thread(server.wait_for_requests, 2, LIST, timeout=5)
        started.set()
        await asyncio.gather(task, return_exceptions=True)

    runner = threading.Thread(target=loop.run_until_complete, args=(parent_side(),), daemon=True)
    runner.start()
    assert started.wait(10)

    def child() -> Report:
        async def main() -> Report:
            snapshot = await registry.refresh()
            return {"lines": len(snapshot), "served": len(await registry.snapshot())}

        return asyncio.run(main())

    try:
        report = run_forked(child)
    finally:
        server.stop()  # ends the parent's hanging request
        runner.join(10)
        loop.run_until_complete(aclient.aclose())
        loop.close()
    assert report == {"lines": len(server.numbers), "served": len(server.numbers)}
