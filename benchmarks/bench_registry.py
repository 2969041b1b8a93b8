"""Warm snapshot() against a hand-written TTL check, and API calls saved by the cache.

Run: ``python benchmarks/bench_registry.py [--quick] [--no-write]``.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

from _report import machine, median, per_call_ns, verdict, write_section

from linq_router import AsyncLinqClient, AsyncRegistry, LinqClient, Registry
from linq_router.testing import FakeClock, FakeLinqServer

TARGET = 2.0  # warm sync snapshot() at most 2x the baseline's median


class Baseline:
    """The least a TTL cache can do: compare the clock with an expiry, return the object."""

    def __init__(self, obj: object, ttl: float) -> None:
        self.obj = obj
        self.expiry = time.monotonic() + ttl

    def get(self) -> object:
        if time.monotonic() < self.expiry:
            return self.obj
        raise RuntimeError("expired")


async def time_async(fn: object, *, number: int, repeat: int) -> list[float]:
    """Nanoseconds per ``await fn()`` over ``number`` calls, ``repeat`` times."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            await fn()  # type: ignore[operator]
        runs.append((time.perf_counter_ns() - start) / number)
    return runs


def api_calls(server: FakeLinqServer, sends: int, per_second: float, ttl: float) -> int:
    """List requests made for ``sends`` sends at ``per_second``, read through a registry."""
    clock = FakeClock()
    server.reset_counts()
    with LinqClient(server.api_key, base_url=server.base_url) as client:
        registry = Registry(client, ttl=ttl, clock=clock)
        for _ in range(sends):
            registry.snapshot()
            clock.advance(1 / per_second)
    return server.count("GET /v3/phone_numbers")


def stampede(server: FakeLinqServer, callers: int) -> tuple[int, int]:
    """``callers`` threads hit an expired registry at once: (callers served, requests sent)."""
    clock = FakeClock()
    with LinqClient(server.api_key, base_url=server.base_url) as client:
        registry = Registry(client, ttl=60, clock=clock)
        registry.snapshot()
        clock.advance(61)
        server.reset_counts()
        server.fail_next("delay", times=1, delay=0.2)  # keep the request open while they pile up
        barrier = threading.Barrier(callers, timeout=30)
        served: list[object] = []

        def call() -> None:
            barrier.wait()
            served.append(registry.snapshot())

        threads = [threading.Thread(target=call) for _ in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    return len(served), server.count("GET /v3/phone_numbers")


async def async_stampede(server: FakeLinqServer, callers: int) -> tuple[int, int]:
    """``callers`` asyncio tasks hit a cold AsyncRegistry at once."""
    server.reset_counts()
    server.fail_next("delay", times=1, delay=0.2)
    async with AsyncLinqClient(server.api_key, base_url=server.base_url) as aclient:
        registry = AsyncRegistry(aclient, ttl=60)
        served = await asyncio.gather(*(registry.snapshot() for _ in range(callers)))
    return len(served), server.count("GET /v3/phone_numbers")


def run(*, quick: bool) -> str:
    """Run every registry benchmark; the markdown section for docs/benchmarks.md."""
    number, repeat = (20_000, 5) if quick else (200_000, 15)

    with FakeLinqServer() as server:
        with LinqClient(server.api_key, base_url=server.base_url) as client:
            registry = Registry(client, ttl=3600)
            snap = registry.snapshot()
            baseline = Baseline(snap, 3600)
            base_ns = median(per_call_ns(baseline.get, number=number, repeat=repeat))
            sync_ns = median(per_call_ns(registry.snapshot, number=number, repeat=repeat))

        async def async_setup() -> tuple[float, float]:
            async with AsyncLinqClient(server.api_key, base_url=server.base_url) as aclient:
                aregistry = AsyncRegistry(aclient, ttl=3600)
                await aregistry.snapshot()

            async def abaseline() -> object:
                return baseline.get()

            return (
                median(await time_async(abaseline, number=number, repeat=repeat)),
                median(await time_async(aregistry.snapshot, number=number, repeat=repeat)),
            )

        abase_ns, async_ns = asyncio.run(async_setup())
        sends = 100_000
        calls = api_calls(server, sends, per_second=1_000, ttl=60)
        rows = [("threads, expired registry", n, *stampede(server, n)) for n in (8, 50, 200)]
        rows += [
            ("asyncio tasks, cold registry", n, *asyncio.run(async_stampede(server, n)))
            for n in (100, 1000)
        ]

    ratio = sync_ns / base_ns
    aratio = async_ns / abase_ns
    met = verdict(ratio, TARGET)
    table = "\n".join(f"| {what} | {n} | {served} | {sent} |" for what, n, served, sent in rows)
    return f"""## Registry: warm `snapshot()`

Machine: {machine()}. {number:,} calls x {repeat} runs; medians.

| what | ns per call | ratio to its baseline | target | verdict |
| --- | ---: | ---: | ---: | --- |
| baseline: `if time.monotonic() < expiry: return obj` | {base_ns:.0f} | 1.00x | | |
| `Registry.snapshot()` (warm) | {sync_ns:.0f} | {ratio:.2f}x | <= {TARGET:.1f}x | {met} |
| baseline wrapped in `async def`, awaited | {abase_ns:.0f} | 1.00x | | |
| `await AsyncRegistry.snapshot()` (warm) | {async_ns:.0f} | {aratio:.2f}x | (none set) | |

## Registry: API calls for {sends:,} sends

{sends:,} sends at 1,000 a second (100 s of simulated time on a fake clock), TTL 60 s:
**{calls} list requests** through the registry, against **{sends:,}** when listing
before each send ({sends // max(calls, 1):,}x fewer).

## Registry: refresh under concurrency

Callers arriving together while the one list request is held open for 0.2 s.

| callers | how many | served | list requests sent |
| --- | ---: | ---: | ---: |
{table}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (CI)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    body = run(quick=args.quick)
    print(body)
    if not args.no_write:
        write_section("registry", body)


if __name__ == "__main__":
    main()
