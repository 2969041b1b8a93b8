"""Linq's webhooks, verified and applied once: ``WebhookReceiver`` and ``WebhookResult``.

One request goes through four steps, each able to end it:

1. size: a body over ``max_body`` is 413, before anything reads it;
2. signature and timestamp (``_verify``): 401;
3. the body as an event (``_events``): 400 when it is not one;
4. dedup by ``event_id`` (``_dedup``): a repeat is 200 with ``applied=False``. With a
   shared ``state``, an id new to this process is then claimed on the state's board
   too (``claim("webhook", event_id, ...)``): one process of a fleet applies it.

Then the event is applied (``_apply``): a line change goes to the registry at once
(``amend``/``remove``: a new snapshot, compiled incrementally, no list request), a
send's outcome to the router. With a shared state, a line change is then announced
on the board (topic ``registry``), and every router on that state makes it in its own
registry (``linq_router._fleet_registry``). ``handle`` never raises: an error while
applying is logged and answered 500, and the claims are given back, so that Linq
delivers the event again and that delivery applies it, wherever it lands.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from linq_router._arguments import check_callable, check_count, check_seconds
from linq_router._fleet_registry import TOPIC, origin_of
from linq_router.state import MemoryState, StateBackend, from_uri
from linq_router.state._board import Board

from ._apply import Applied, apply_event
from ._dedup import Seen
from ._events import BadEvent, Ignored, parse_event
from ._result import WebhookResult
from ._verify import Rejected, Verifier

__all__ = ["SECRET_VARIABLE", "WebhookReceiver"]

logger = logging.getLogger("linq_router")

SECRET_VARIABLE = "LINQ_WEBHOOK_SECRET"
"""The environment variable the secret is read from (the official SDK's name)."""

# How long an applied event id is remembered: twice Linq's retry horizon.
_DEDUP_HORIZON = 3600.0
# The board topic event ids are claimed under, on a shared state.
CLAIMS = "webhook"
# A rejected request is logged at WARNING at most this often (seconds), else at DEBUG.
_WARN_EVERY = 60.0

Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]
"""A request's headers: a mapping, or (name, value) pairs as ASGI and WSGI give them."""


class WebhookReceiver:
    """Verifies Linq's webhooks and applies each event once, within a millisecond.

    ``registry`` is the ``Registry`` or ``AsyncRegistry`` line changes go to; with a
    ``router`` (``Router`` or ``AsyncRouter``), inbound messages count in their line's
    daily budget (``record_inbound``); with a ``sender`` (``linq_router.sdk.Sender``
    or ``AsyncSender``), a ``message.failed`` is reported against the line that sent
    the message (``router.report``; the sender's router when ``router`` is not
    given). ``secret`` is the webhook subscription's signing secret (``whsec_...``),
    by default the ``LINQ_WEBHOOK_SECRET`` environment variable.

    ``tolerance`` is how far a request's timestamp may be from ``clock()`` (seconds,
    default 300); ``dedup_size`` how many event ids are remembered (each for an hour,
    twice Linq's retry horizon); ``max_body`` the largest body read, in bytes.

    ``state`` (a state with a notice board, such as ``RedisState``, or a URI for
    ``linq_router.state.from_uri`` such as ``"redis://host:6379/0"``) makes this
    receiver one of a fleet behind a load balancer: an event is applied by one
    process of those on that state, and the line changes it makes reach every
    router on it. ``None`` (or ``"memory://"``) keeps the ids in this process only.
    ``receiver.state`` is the state given (or resolved from the URI).

    ``handle(headers, body)`` answers one request with a ``WebhookResult`` and never
    raises. ``await ahandle(headers, body)`` is the same for asyncio, awaiting an
    ``AsyncRouter``; ``asgi`` and ``wsgi`` are ready-made apps for any framework::

        receiver = WebhookReceiver(registry, router=router, sender=sender)
        app = receiver.asgi            # uvicorn module:app, or mount it

    .. versionadded:: 0.4
    """

    def __init__(
        self,
        registry: Any,
        *,
        router: Any = None,
        sender: Any = None,
        secret: str | None = None,
        tolerance: float = 300.0,
        dedup_size: int = 100_000,
        max_body: int = 1_000_000,
        clock: Callable[[], float] = time.time,
        state: StateBackend | Board | str | None = None,
    ) -> None:
        _check_has("registry", registry, ("amend", "remove", "refresh_soon"), "a Registry")
        if router is not None:
            _check_has("router", router, ("report", "record_inbound"), "a Router or None")
        if sender is not None:
            _check_has("sender", sender, ("line_for_message", "line_for_chat"), "a Sender")
        self.registry = registry
        self.router = router if router is not None else getattr(sender, "router", None)
        self.sender = sender
        self.tolerance = check_seconds("tolerance", tolerance)
        self.max_body = check_count("max_body", max_body)
        check_callable("clock", clock, "a function returning the Unix time in seconds")
        self._verifier = Verifier(_secret(secret), self.tolerance, clock)
        self._seen = Seen(check_count("dedup_size", dedup_size), _DEDUP_HORIZON, clock)
        self.state, self._board = _shared(state)
        self._origin = origin_of(registry)
        self._clock = clock
        self._warned_at = -float("inf")
        self._board_warned_at = -float("inf")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the secret
        return (
            f"WebhookReceiver(tolerance={self.tolerance:g}, dedup_size={self._seen.size}, "
            f"max_body={self.max_body}, seen={len(self._seen)})"
        )

    @property
    def dedup_size(self) -> int:
        """How many event ids are remembered."""
        return self._seen.size

    # -- the adapters -------------------------------------------------------------------

    @property
    def asgi(self) -> Callable[..., Awaitable[None]]:
        """An ASGI 3 app answering ``POST`` at any path (``uvicorn``, Starlette, ...)."""
        from ._adapters import asgi_app  # noqa: PLC0415 (only those who serve it need it)

        return asgi_app(self)

    @property
    def wsgi(self) -> Callable[..., Iterable[bytes]]:
        """A WSGI app answering ``POST`` at any path (``wsgiref``, gunicorn, Flask mounts)."""
        from ._adapters import wsgi_app  # noqa: PLC0415

        return wsgi_app(self)

    # -- handling -----------------------------------------------------------------------

    def handle(self, headers: Headers, body: bytes) -> WebhookResult:
        """Verify, deduplicate and apply one request; the answer to give. Never raises.

        With an ``AsyncRouter``, its part (a report, an inbound count) is scheduled on
        the running event loop, or run to completion when no loop runs in this thread;
        prefer ``await ahandle(...)`` there.
        """
        step = self._apply(headers, body)
        if isinstance(step, WebhookResult):
            return step
        event, applied, result = step
        if inspect.isawaitable(result):
            try:
                self._run_awaitable(result)
            except Exception:
                return self._failed(event)
        return self._done(applied, event)

    async def ahandle(self, headers: Headers, body: bytes) -> WebhookResult:
        """``handle`` for asyncio: awaits an ``AsyncRouter``'s part. Never raises."""
        step = self._apply(headers, body)
        if isinstance(step, WebhookResult):
            return step
        event, applied, result = step
        if inspect.isawaitable(result):
            try:
                await result
            except Exception:
                return self._failed(event)
        return self._done(applied, event)

    def _apply(self, headers: Headers, body: object) -> WebhookResult | tuple[Any, Applied, object]:
        """Admit the request and apply its event, but for an ``AsyncRouter``'s awaiting.

        A final answer, or the event, what was done, and the router's part's result.
        """
        event = self._admit(headers, body)
        if isinstance(event, WebhookResult):
            return event
        try:
            applied = apply_event(self, event)
            result = None if applied.pending is None else applied.pending()
        except Exception:
            return self._failed(event)
        return event, applied, result

    def _admit(self, headers: Headers, body: object) -> Any:
        """Steps 1 to 4: a final answer (``WebhookResult``), or the event to apply (claimed)."""
        try:
            return self._admit_unguarded(headers, body)
        except Exception:
            logger.exception("webhook: unexpected error reading a request; answered 400")
            return WebhookResult(400, None, None, False, "the request could not be read")

    def _admit_unguarded(  # noqa: PLR0911 (one return per step that can end a request)
        self, headers: Headers, body: object
    ) -> Any:
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        elif isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, bytes):
            why = f"the body must be bytes, got {type(body).__name__}"
            return WebhookResult(400, None, None, False, why)
        if len(body) > self.max_body:
            why = f"the body is {len(body)} bytes, over max_body={self.max_body}"
            return self._rejected(413, why)
        lowered = _lower(headers)
        verdict = self._verifier.verify(lowered, body)
        if isinstance(verdict, Rejected):
            return self._rejected(401, verdict.reason)
        try:
            event = parse_event(body)
        except BadEvent as exc:
            return self._rejected(400, f"not a Linq event: {exc}")
        envelope = event.envelope
        if not self._seen.claim(envelope.event_id):
            return WebhookResult(
                200, envelope.event_id, envelope.event_type, False, "a repeat: applied before"
            )
        if isinstance(event, Ignored):
            self._seen.keep(envelope.event_id)
            logger.debug("webhook %s ignored: no action for this type", envelope.event_type)
            return WebhookResult(
                200, envelope.event_id, envelope.event_type, False, "an event type not acted on"
            )
        if not self._claim_shared(envelope.event_id):
            # Another process has it. Not kept here: if applying fails there, it gives
            # the claim back, and Linq's next delivery may come to this process.
            self._seen.release(envelope.event_id)
            return WebhookResult(
                200,
                envelope.event_id,
                envelope.event_type,
                False,
                "a repeat: applied (or being applied) by another process",
            )
        return event

    def _done(self, applied: Applied, event: Any) -> WebhookResult:
        event_id, event_type = event.envelope.event_id, event.envelope.event_type
        self._seen.keep(event_id)
        if applied.change is not None and self._board is not None:
            record = applied.change.record(self._origin)
            try:
                self._board.announce(TOPIC, record)
            except Exception as error:  # applied here; the others see it at their refresh
                self._board_failed(
                    "announce a registry change", error, "the others see it at their refresh"
                )
        logger.debug("webhook %s %s: %s", event_type, event_id, applied.reason)
        return WebhookResult(200, event_id, event_type, applied.applied, applied.reason)

    def _failed(self, event: Any) -> WebhookResult:
        event_id, event_type = event.envelope.event_id, event.envelope.event_type
        logger.exception("webhook %s %s: applying it failed; answered 500", event_type, event_id)
        self._seen.release(event_id)  # Linq delivers it again; that one applies it
        if self._board is not None:
            try:
                self._board.release(CLAIMS, event_id)
            except Exception as error:
                self._board_failed("give back a webhook claim", error, "it lasts its hour")
        return WebhookResult(500, event_id, event_type, False, "applying the event failed")

    def _claim_shared(self, event_id: str) -> bool:
        """Claim ``event_id`` for the fleet; True without a shared state, or if it fails."""
        board = self._board
        if board is None:
            return True
        try:
            return board.claim(CLAIMS, event_id, self._seen.horizon)
        except Exception as error:  # this process's own claim decides, as in an outage
            self._board_failed(
                "claim a webhook's event id", error, "this process's own dedup decides"
            )
            return True

    def _board_failed(self, what: str, error: Exception, meaning: str) -> None:
        now = self._clock()
        with self._lock:
            loud = now - self._board_warned_at >= _WARN_EVERY
            if loud:
                self._board_warned_at = now
        logger.log(
            logging.WARNING if loud else logging.DEBUG,
            "webhook: could not %s on the shared state (%r); %s",
            what,
            error,
            meaning,
        )

    def _rejected(self, status: int, reason: str) -> WebhookResult:
        now = self._clock()
        with self._lock:
            loud = now - self._warned_at >= _WARN_EVERY
            if loud:
                self._warned_at = now
        logger.log(
            logging.WARNING if loud else logging.DEBUG, "webhook refused (%d): %s", status, reason
        )
        return WebhookResult(status, None, None, False, reason)

    def _run_awaitable(self, result: Awaitable[object]) -> None:
        """Run an ``AsyncRouter``'s part from ``handle``: a task on this thread's loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(_awaited(result))
            return
        task = loop.create_task(_awaited(result))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook: the router's part failed", exc_info=task.exception())


async def _awaited(result: Awaitable[object]) -> None:
    await result


def _lower(headers: Headers) -> dict[str, str]:
    """The headers by lower-case name (str), from a mapping or (name, value) pairs."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    lowered: dict[str, str] = {}
    for name, value in pairs:
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        lowered[key.lower()] = text
    return lowered


def _secret(secret: str | None) -> str:
    if secret is None:
        secret = os.environ.get(SECRET_VARIABLE)
        if not secret:
            msg = (
                f"no webhook secret: pass secret= or set {SECRET_VARIABLE} to the signing "
                "secret of your Linq webhook subscription (whsec_...)"
            )
            raise ValueError(msg)
    if not isinstance(secret, str) or not secret:
        msg = (
            "secret must be the webhook signing secret as a non-empty string (whsec_...), "
            f"got {type(secret).__name__}"
        )
        raise TypeError(msg)
    return secret


def _shared(state: object) -> tuple[object, Board | None]:
    """``WebhookReceiver(state=...)``: the state, and its board if it is shared."""
    if state is None:
        return None, None
    if isinstance(state, str):
        state = from_uri(state)
        if isinstance(state, MemoryState):
            return state, None  # "memory://": this process only, as the default
    if isinstance(state, Board) and getattr(state, "shares_notices", True) is not False:
        return state, state
    msg = (
        "state must be a state with a notice board (claim, release, announce...): a "
        "RedisState, or what from_uri('redis://...') gives; got "
        f"{type(state).__name__}, which has none. Leave state out for this process's "
        "own dedup"
    )
    raise TypeError(msg)


def _check_has(name: str, value: object, methods: tuple[str, ...], what: str) -> None:
    missing = [m for m in methods if not callable(getattr(value, m, None))]
    if missing:
        msg = (
            f"{name} must be {what}, got {type(value).__name__}, "
            f"which has no {', '.join(missing)}()"
        )
        raise TypeError(msg)
