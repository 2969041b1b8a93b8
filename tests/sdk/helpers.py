"""What the sdk tests share: the pool, a spying router, SDK clients, refused connects."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import httpx
import linq
from linq.types import MessageContentParam

from linq_router import Router
from linq_router.feedback import OutcomeLike, Verdict
from linq_router.testing import FakeLinqServer

LINES = [f"+1202555{i:04d}" for i in range(1, 13)]
"""Twelve healthy iMessage lines."""

CREATE = "POST /v3/chats"
THREADS, CHATS, SWITCH_AT = 8, 2_000, 500
"""The load test: threads, chats, and after how many chats two lines turn ineligible."""
MESSAGE: MessageContentParam = {"parts": [{"type": "text", "value": "hello"}]}


def recipient(n: int) -> str:
    """A distinct recipient per chat, so that no sender-recipient pair nears its limit."""
    return f"+1415{n:07d}"


class SpyRouter(Router):
    """A real Router that also keeps every report it was given: (line, outcome, to, verdict)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reports: list[tuple[str, OutcomeLike, Any, Verdict]] = []

    def report(self, pick: Any, outcome: OutcomeLike = None, *, to: Any = None) -> Verdict:
        verdict = super().report(pick, outcome, to=to)
        line = pick if isinstance(pick, str) else pick.phone_number
        self.reports.append((line, outcome, to, verdict))
        return verdict


def sdk_client(fake: FakeLinqServer, **kwargs: Any) -> linq.LinqAPIV3:
    """A strict SDK client pointed at the fake (its own retries left as the SDK has them)."""
    kwargs.setdefault("timeout", 10.0)
    return linq.LinqAPIV3(
        api_key=fake.api_key,
        base_url=fake.base_url,
        _strict_response_validation=True,
        **kwargs,
    )


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RefuseFirst(httpx.BaseTransport):
    """Sends the first ``refuse`` POSTs to a closed port (a real connect error), then on."""

    def __init__(self, refuse: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.left = refuse
        self.port = closed_port()
        self.raised: list[BaseException] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and self.left > 0:
            self.left -= 1
            request = httpx.Request(
                request.method,
                request.url.copy_with(port=self.port),
                headers=request.headers,
                content=request.content,
                extensions=request.extensions,
            )
            try:
                return self.inner.handle_request(request)
            except Exception as exc:
                self.raised.append(exc)
                raise
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def picks_of(router: SpyRouter, count: int = 36) -> set[str]:
    """The lines ``count`` picks land on."""
    return {router.pick(recipient(900_000 + i)).phone_number for i in range(count)}


def run_threads(count: int, work: Callable[[int], None], timeout: float = 60.0) -> None:
    """Run ``work(i)`` in ``count`` threads released together; re-raise the first error."""
    barrier = threading.Barrier(count, timeout=timeout)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "threads still running after the timeout"
    if errors:
        raise errors[0]
