"""The fake API's webhook delivery: one thread POSTs signed events, retrying as Linq does.

``WebhookDelivery`` holds the queue, the thread and the counts, under a lock of its
own; the server's ``Webhooks`` base queues into it. Bodies and signatures come from
``_webhook_events``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import attrs
import httpx

from ._webhook_events import WebhookScheme, sign

__all__ = [
    "ATTEMPT_TIMEOUT",
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_DELAYS",
    "DeliveredWebhook",
    "WebhookDelivery",
    "check_delays",
    "check_url",
]

WEBHOOK_ATTEMPTS = 10
"""Attempts per delivery, the first included, before the fake gives up (Linq's number)."""
WEBHOOK_DELAYS: tuple[float, ...] = (5, 15, 30, 60, 120, 180, 300, 300, 480)
"""Seconds waited before attempts 2 to 10: 24 min 50 s in all (Linq: about 25 minutes)."""
ATTEMPT_TIMEOUT = 5.0
"""Seconds one attempt may take (connect, send, answer) before it counts as a network error."""


@attrs.frozen
class DeliveredWebhook:
    """One webhook delivery ``FakeLinqServer`` queued, as it stands now, in queued order.

    ``event_id`` and ``event_type`` are the event's; ``body`` the exact bytes POSTed on
    every attempt. ``attempts`` counts the POSTs made so far, ``status`` is the HTTP
    status of the last one (``None`` before the first, or when it failed at the network
    level: refused, reset, timed out) and ``delivered`` is True once one was answered
    2xx. ``server.redeliver(event_id)`` queues a second delivery of the same event, so
    an event id can appear more than once.

    .. versionadded:: 0.4
    """

    event_id: str
    event_type: str
    body: bytes = attrs.field(repr=False)
    attempts: int
    status: int | None
    delivered: bool


@attrs.define
class _Queued:
    event_id: str
    event_type: str
    body: bytes
    attempts: int = 0
    status: int | None = None
    delivered: bool = False

    def value(self) -> DeliveredWebhook:
        return DeliveredWebhook(
            self.event_id, self.event_type, self.body, self.attempts, self.status, self.delivered
        )


def _retried(status: int | None) -> bool:
    """Whether Linq tries again after this answer: a network error, a 429 or a 5xx."""
    return status is None or status == 429 or status >= 500


def check_delays(delays: Sequence[float]) -> tuple[float, ...]:
    """The retry delays as a tuple: at least one, each a finite number of seconds >= 0."""
    values = tuple(delays)
    if not values or not all(
        isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d) and d >= 0
        for d in values
    ):
        msg = f"webhook_delays must be one or more finite numbers >= 0, got {delays!r}"
        raise ValueError(msg)
    return values


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = httpx.URL()
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        msg = f"webhook_url must be an absolute http:// or https:// URL, got {url!r}"
        raise ValueError(msg)
    return url


class WebhookDelivery:
    """Queued events and the thread that delivers them, first in first out.

    Its own lock guards the queue (never the server's), so a setter that queues an
    event returns at once and the thread never waits on the server.
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        scheme: WebhookScheme,
        delays: Sequence[float],
        wall_clock: Callable[[], float],
        timeout: float = ATTEMPT_TIMEOUT,
    ) -> None:
        self.url = url
        self._secret = secret
        self._scheme = scheme
        self._delays = tuple(delays)
        self._wall_clock = wall_clock
        self._timeout = timeout
        self._cond = threading.Condition()
        self._queue: list[_Queued] = []
        self._next = 0  # index of the delivery under way (or the next to start)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # the secret stays out
        return f"<WebhookDelivery {self.url} scheme={self._scheme!r} queued={len(self._queue)}>"

    # -- queueing and counting -------------------------------------------------------

    def queue(self, event_type: str, body: bytes, event_id: str) -> None:
        """Queue one delivery of an event; the thread picks it up in order."""
        with self._cond:
            self._queue.append(_Queued(event_id, event_type, body))
            self._cond.notify_all()

    def redeliver(self, event_id: str) -> None:
        """Queue the event with this id once more, same id and body."""
        with self._cond:
            first = next((q for q in self._queue if q.event_id == event_id), None)
            if first is None:
                msg = f"no webhook with event_id {event_id!r} was queued"
                raise KeyError(msg)
            self._queue.append(_Queued(event_id, first.event_type, first.body))
            self._cond.notify_all()

    def records(self) -> list[DeliveredWebhook]:
        """Every delivery queued, oldest first, as it stands now."""
        with self._cond:
            return [q.value() for q in self._queue]

    def attempts(self, event_id: str | None, event_type: str | None) -> int:
        """Attempts made, for deliveries matching ``event_id`` and ``event_type`` if given."""
        with self._cond:
            return sum(
                q.attempts
                for q in self._queue
                if event_id in {None, q.event_id} and event_type in {None, q.event_type}
            )

    def wait(self, timeout: float) -> bool:
        """Block until every queued delivery succeeded or gave up; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._next >= len(self._queue), timeout)

    # -- the thread ------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery thread (again, after ``stop()``); queued events go out."""
        with self._cond:
            old = self._thread
            if old is not None and old.is_alive() and not self._stopping.is_set():
                return
        if old is not None:  # a stop() that timed out: let its attempt end first
            old.join(self._timeout + 1.0)
        with self._cond:
            self._stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._run,
                args=(self._stopping,),
                name="FakeLinqServer:webhooks",
                daemon=True,
            )
            self._thread.start()

    def stop(self, timeout: float) -> None:
        """Interrupt any backoff and join the thread (an attempt in flight finishes first).

        A delivery cut short stays queued, with its attempts so far, for a later start.
        """
        with self._cond:
            thread = self._thread
            self._stopping.set()
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)

    def _run(self, stopping: threading.Event) -> None:
        # trust_env=False: Linq does not use the test machine's proxy settings.
        with httpx.Client(timeout=self._timeout, trust_env=False) as client:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: stopping.is_set() or self._next < len(self._queue))
                    if stopping.is_set():
                        return
                    item = self._queue[self._next]
                if not self._deliver(client, item, stopping):
                    return
                with self._cond:
                    self._next += 1
                    self._cond.notify_all()

    def _deliver(self, client: httpx.Client, item: _Queued, stopping: threading.Event) -> bool:
        """Attempt until delivered or given up (True), or until stopped (False)."""
        while True:
            status = self._attempt(client, item)
            with self._cond:
                item.attempts += 1
                item.status = status
                item.delivered = status is not None and 200 <= status < 300
                if item.delivered or not _retried(status) or item.attempts >= WEBHOOK_ATTEMPTS:
                    return True
                delay = self._delays[min(item.attempts, len(self._delays)) - 1]
            if stopping.wait(delay):  # stop() wakes this at once
                return False

    def _attempt(self, client: httpx.Client, item: _Queued) -> int | None:
        """POST the event once, freshly signed; the status, or None for a network error."""
        timestamp = math.floor(self._wall_clock())
        headers = {
            "Content-Type": "application/json",
            **sign(self._scheme, self._secret, item.event_id, timestamp, item.body.decode()),
        }
        try:
            response = client.post(self.url, content=item.body, headers=headers)
        except httpx.HTTPError:  # refused, reset, timed out, a broken answer
            return None
        return response.status_code
