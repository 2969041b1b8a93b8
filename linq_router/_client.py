"""The Linq phone-number client: ``LinqClient`` (sync) and ``AsyncLinqClient``.

Everything that does no I/O (configuration, request building, the retry rules) lives
in ``_ClientCore``, and turning answers into values or errors in ``_answers``; the two
clients only send requests and sleep, each in its own way.

After ``os.fork()`` the child gives every live client (``_LIVE``) a connection pool of
its own: sockets inherited from the parent are shared with it, and two processes
writing requests to one connection read each other's answers.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
import os
import random
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import tenacity

from ._answers import is_retryable, json_body
from ._errors import LinqAPIError, LinqConnectionError
from ._models import PhoneNumber
from ._parsing import LineMemo, Warned, is_e164, parse_phone_number_list, parse_updated_number

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "AsyncLinqClient",
    "LinqClient",
]

logger = logging.getLogger("linq_router")

DEFAULT_BASE_URL = "https://api.linqapp.com/api/partner"
"""Linq's partner API; paths such as ``/v3/phone_numbers`` are relative to it."""
API_KEY_ENV = "LINQ_API_V3_API_KEY"
"""The environment variable the API key is read from (the official SDK's name)."""
BASE_URL_ENV = "LINQ_API_V3_BASE_URL"
"""The environment variable the base URL is read from (the official SDK's name)."""

_PHONE_NUMBERS = "/v3/phone_numbers"

_T = TypeVar("_T")


def _version() -> str:
    try:
        return importlib.metadata.version("linq-router")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0"


def _not_number(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, (int, float))


# Every client alive in this process, for the fork hook below.
_LIVE: weakref.WeakSet[_ClientCore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE):
        client._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _awaitable_sleep(
    sleep: Callable[[float], Awaitable[None] | None],
) -> Callable[[float], Awaitable[None]]:
    """Accept a plain function as the async client's sleep (a test recorder, say)."""

    async def wrapped(seconds: float) -> None:
        result = sleep(seconds)
        if inspect.isawaitable(result):
            await result

    return wrapped


class _ClientCore:
    """Configuration, request building and answer handling shared by both clients."""

    def __init__(
        self,
        api_key: str | None,
        *,
        base_url: str | None,
        timeout: float | httpx.Timeout | None,
        max_attempts: int,
        deadline: float,
        backoff_initial: float,
        backoff_max: float,
        retry_after_max: float,
        clock: Callable[[], float],
        rng: random.Random | None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not key:
            msg = f"no Linq API key: pass api_key=... or set the {API_KEY_ENV} environment variable"
            raise ValueError(msg)
        if max_attempts < 1:
            msg = f"max_attempts must be at least 1, got {max_attempts!r}"
            raise ValueError(msg)
        # httpx's own forms pass as they are; anything else must be seconds.
        seconds: list[tuple[str, object]] = [("deadline", deadline)]
        if not (timeout is None or isinstance(timeout, httpx.Timeout)):
            seconds.append(("timeout", timeout))
        for name, value in (
            *seconds,
            ("backoff_initial", backoff_initial),
            ("backoff_max", backoff_max),
            ("retry_after_max", retry_after_max),
        ):
            if _not_number(value) or not value >= 0:  # type: ignore[operator]  # NaN fails too
                msg = f"{name} must be a non-negative number of seconds, got {value!r}"
                raise ValueError(msg)
        url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        if not url.startswith(("http://", "https://")):
            msg = f"base_url must start with http:// or https://, got {url!r}"
            raise ValueError(msg)
        self.base_url = url.rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()  # jitter, not crypto
        self._headers = {
            "Authorization": f"Bearer {key}",
            "Accept": "application/json",
            "User-Agent": f"linq-router/{_version()}",
        }
        self._retries = 0
        self._retries_lock = threading.Lock()
        self._owns_http = True  # set by the subclass: False for a caller's httpx client
        self._warned = Warned()  # unknown values are logged once per client
        # The lines of the last list, by raw entry: an unchanged entry is not rebuilt.
        self._memo = LineMemo()
        # The parent's connection pools, after a fork: kept, never closed, so that no
        # finalizer in the child ever touches sockets the parent is still using.
        self._inherited: list[object] = []
        _LIVE.add(self)

    def _after_fork_in_child(self) -> None:
        # A parent thread may have held it at the fork: it would stay locked for ever.
        self._retries_lock = threading.Lock()

    @property
    def retries(self) -> int:
        """How many retries this client has made since it was built (all calls)."""
        return self._retries

    def __repr__(self) -> str:
        # The key is deliberately absent: reprs end up in logs and tracebacks.
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, api_key=<redacted>, "
            f"max_attempts={self.max_attempts}, deadline={self.deadline})"
        )

    # -- requests and answers (no I/O) --------------------------------------------------

    def _timeout(self, remaining: float | None = None) -> httpx.Timeout:
        """The request timeout: ``timeout`` seconds (connect at most 5).

        No more than ``remaining`` (of the call's deadline) when that is given.
        """
        if isinstance(self.timeout, httpx.Timeout):
            return self.timeout
        if self.timeout is None:
            return httpx.Timeout(None)
        seconds = float(self.timeout)
        if remaining is not None:
            seconds = min(seconds, max(remaining, 0.001))
        return httpx.Timeout(seconds, connect=min(seconds, 5.0))

    def _attempt_options(self, start: float) -> dict[str, Any]:
        # Bound each attempt by what is left of the deadline, so a hung request cannot
        # outlive it; a caller's own httpx client keeps the timeouts it was given.
        if not self._owns_http:
            return {}
        return {"timeout": self._timeout(self.deadline - (self._clock() - start))}

    def _request(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "method": method,
            "url": self.base_url + path,
            "headers": self._headers,
        }
        if body is not None:
            kwargs["json"] = body
        return kwargs

    def _listed(self, response: httpx.Response) -> list[PhoneNumber]:
        """The lines of a list answer; the same lines again for byte-identical answers.

        A refresh that changes nothing then costs no JSON parse (one call that holds
        the GIL for milliseconds at 10,000 lines) and no parsing pass. Warnings about
        dropped entries are therefore logged once per distinct answer.
        """
        if response.is_success:
            lines = self._memo.unchanged(response.content)
            if lines is not None:
                return lines
        lines = parse_phone_number_list(json_body(response), self._warned, self._memo)
        self._memo.remember(response.content, lines)
        return lines

    def _updated(self, response: httpx.Response) -> PhoneNumber:
        return parse_updated_number(json_body(response), self._warned)

    @staticmethod
    def _connection_error(exc: httpx.TransportError, method: str, path: str) -> LinqConnectionError:
        detail = str(exc) or type(exc).__name__
        return LinqConnectionError(f"{method} {path}: no answer ({type(exc).__name__}: {detail})")

    @staticmethod
    def _update_body(
        phone_number_id: str | uuid.UUID, forwarding_number: str | None
    ) -> tuple[str, object]:
        if isinstance(phone_number_id, uuid.UUID):
            phone_number_id = str(phone_number_id)
        if not isinstance(phone_number_id, str) or not phone_number_id.strip():
            msg = f"phone_number_id must be a non-empty string, got {phone_number_id!r}"
            raise ValueError(msg)
        if forwarding_number == "":
            forwarding_number = None
        if forwarding_number is not None and not is_e164(forwarding_number):
            msg = (
                f"forwarding_number must be an E.164 number like '+12025551234', or None/'' "
                f"to clear it; got {forwarding_number!r}"
            )
            raise ValueError(msg)
        path = f"{_PHONE_NUMBERS}/{quote(phone_number_id, safe='')}"
        return path, {"forwarding_number": forwarding_number}

    # -- retry rules --------------------------------------------------------------------

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, LinqAPIError) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry_after_max)
        # Exponential backoff with full jitter (AWS's "full jitter"): uniform over
        # [0, min(cap, base * 2^(n-1))], which spreads a fleet of workers apart.
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** (state.attempt_number - 1))
        return self._rng.uniform(0.0, ceiling)

    def _retry_kwargs(self, method: str, path: str, start: float) -> dict[str, Any]:
        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            # Stop when the next wait would carry the call past its overall deadline.
            return (self._clock() - start) + state.upcoming_sleep > self.deadline

        def before_sleep(state: tenacity.RetryCallState) -> None:
            with self._retries_lock:
                self._retries += 1
            exc = state.outcome.exception() if state.outcome is not None else None
            logger.warning(
                "%s %s failed (attempt %d of %d): %s; retrying in %.2fs",
                method,
                path,
                state.attempt_number,
                self.max_attempts,
                exc,
                state.upcoming_sleep,
            )

        return {
            "retry": tenacity.retry_if_exception(is_retryable),
            "stop": stop,
            "wait": self._wait,
            "before_sleep": before_sleep,
            "reraise": True,
        }


class LinqClient(_ClientCore):
    """Synchronous client for Linq's phone-number endpoints.

    ``api_key`` and ``base_url`` fall back to ``LINQ_API_V3_API_KEY`` and
    ``LINQ_API_V3_BASE_URL``, then to ``https://api.linqapp.com/api/partner``; a missing
    key raises ``ValueError`` naming the variable. Code 3006, every other 5xx, 408,
    429 and transport errors are retried with exponential backoff and full jitter, at
    most ``max_attempts`` tries within ``deadline`` seconds; ``Retry-After`` on 429 and
    503 is honoured up to ``retry_after_max`` seconds. 401/2004, 403, 404 and 422 are
    raised at once. ``retries`` counts the retries made.

    Pass ``http_client`` (an ``httpx.Client`` you own and close) to pool connections,
    or ``transport`` to hand httpx a transport. ``sleep``, ``clock`` and ``rng`` are
    there so tests drive time instead of waiting on it.

    A client built before ``os.fork()`` works in the child: the child's first request
    opens connections of its own (the parent's are left alone). An ``http_client`` or
    a pooling ``transport`` you passed is yours to rebuild in the child.

    >>> with LinqClient() as client:  # doctest: +SKIP
    ...     lines = client.list_phone_numbers()

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = 10.0,
        max_attempts: int = 3,
        deadline: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_max: float = 30.0,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_attempts=max_attempts,
            deadline=deadline,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
            clock=clock,
            rng=rng,
        )
        self._sleep = sleep
        self._owns_http = http_client is None
        self._transport = transport
        self._http = http_client or self._new_http()

    def _new_http(self) -> httpx.Client:
        return httpx.Client(transport=self._transport, timeout=self._timeout())

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        if self._owns_http:
            self._inherited.append(self._http)
            self._http = self._new_http()

    def _call(
        self,
        method: str,
        path: str,
        decode: Callable[[httpx.Response], _T],
        body: object = None,
    ) -> _T:
        request = self._request(method, path, body)
        start = self._clock()
        retrying = tenacity.Retrying(sleep=self._sleep, **self._retry_kwargs(method, path, start))
        for attempt in retrying:
            with attempt:
                try:
                    response = self._http.request(**request, **self._attempt_options(start))
                except httpx.TransportError as exc:
                    raise self._connection_error(exc, method, path) from exc
                return decode(response)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def list_phone_numbers(self) -> list[PhoneNumber]:
        """Every line assigned to the partner (``GET /v3/phone_numbers``).

        Bad entries are dropped with a warning; a body that is not the documented shape
        raises ``LinqResponseError``.
        """
        return self._call("GET", _PHONE_NUMBERS, self._listed)

    def update_phone_number(
        self, phone_number_id: str, *, forwarding_number: str | None
    ) -> PhoneNumber:
        """Set a line's forwarding number, or clear it with ``None`` or ``""``.

        Linq's answer carries only ``id``, ``phone_number`` and ``forwarding_number``,
        so the returned line's reputation is ``UNKNOWN``; ``Registry.update_phone_number``
        returns the full line instead.
        """
        path, body = self._update_body(phone_number_id, forwarding_number)
        return self._call("PUT", path, self._updated, body)

    def close(self) -> None:
        """Close the HTTP connection pool, unless it was passed in."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> LinqClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncLinqClient(_ClientCore):
    """Asynchronous twin of ``LinqClient``: the same arguments, awaitable methods.

    ``http_client`` is an ``httpx.AsyncClient`` and ``sleep`` an async callable
    (default ``asyncio.sleep``). Safe across ``os.fork()`` like ``LinqClient``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = 10.0,
        max_attempts: int = 3,
        deadline: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_max: float = 30.0,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None] | None] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_attempts=max_attempts,
            deadline=deadline,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
            clock=clock,
            rng=rng,
        )
        self._sleep = _awaitable_sleep(sleep)
        self._owns_http = http_client is None
        self._transport = transport
        self._http = http_client or self._new_http()

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._transport, timeout=self._timeout())

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        if self._owns_http:
            self._inherited.append(self._http)
            self._http = self._new_http()

    async def _call(
        self,
        method: str,
        path: str,
        decode: Callable[[httpx.Response], _T],
        body: object = None,
    ) -> _T:
        request = self._request(method, path, body)
        start = self._clock()
        retrying = tenacity.AsyncRetrying(
            sleep=self._sleep, **self._retry_kwargs(method, path, start)
        )
        async for attempt in retrying:
            with attempt:
                try:
                    response = await self._http.request(**request, **self._attempt_options(start))
                except httpx.TransportError as exc:
                    raise self._connection_error(exc, method, path) from exc
                return decode(response)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def list_phone_numbers(self) -> list[PhoneNumber]:
        """Every line assigned to the partner (``GET /v3/phone_numbers``)."""
        return await self._call("GET", _PHONE_NUMBERS, self._listed)

    async def update_phone_number(
        self, phone_number_id: str, *, forwarding_number: str | None
    ) -> PhoneNumber:
        """Set a line's forwarding number, or clear it with ``None`` or ``""``."""
        path, body = self._update_body(phone_number_id, forwarding_number)
        return await self._call("PUT", path, self._updated, body)

    async def aclose(self) -> None:
        """Close the HTTP connection pool, unless it was passed in."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncLinqClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
