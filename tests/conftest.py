"""Shared fixtures: a running fake Linq API and a fake clock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from linq_router.testing import FakeClock, FakeLinqServer

_T = TypeVar("_T")


@pytest.fixture
def server() -> Iterator[FakeLinqServer]:
    """A fake Linq API on 127.0.0.1 with its default pool, stopped after the test."""
    with FakeLinqServer() as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    """A clock tests move by hand; its sleep() advances it instead of waiting."""
    return FakeClock()


def _in_threads(fn: Callable[[], _T], count: int, *, timeout: float = 30.0) -> list[_T]:
    """Call ``fn`` once in each of ``count`` threads released together; their results.

    Every thread is joined within ``timeout``; the first exception a thread raised is
    raised here, so a failed assertion inside ``fn`` fails the test.
    """
    barrier = threading.Barrier(count, timeout=timeout)
    results: list[_T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait()
            value = fn()
        except BaseException as exc:  # handed to the test thread below
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "threads still running after the timeout"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def in_threads() -> Callable[..., list[Any]]:
    """Run a function in N threads started together and collect what each returned."""
    return _in_threads
