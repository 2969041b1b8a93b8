"""The Linq phone-number client: ``LinqClient`` (sync) and ``AsyncLinqClient``.

Everything that does no I/O (configuration, request building, the retry rules) lives
in ``_ClientCore``, and turning answers into values or errors in ``_answers``; the two
clients only send requests and sleep, each in its own way.

After ``os.fork()`` the child gives every live client a connection pool of
its own: sockets inherited from the parent are shared with it, and two processes
writing requests to one connection read each other's answers.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import tenacity

from ._answers import is_retryable, json_body
from ._arguments import check_callable, check_count, check_seconds, cut, shown
from ._config import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    BearerAuth,
    Secret,
    base_url_setting,
    bearer_auth,
    masked_url,
)
from ._errors import LinqAPIError, LinqConnectionError, LinqResponseError
from ._fork import renew_after_fork
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


_PHONE_NUMBERS = "/v3/phone_numbers"

_T = TypeVar("_T")


def _version() -> str:
    try:
        return importlib.metadata.version("linq-router")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0"


def _check_http_client(http_client: object, expected: type, other: str) -> None:
    if http_client is not None and not isinstance(http_client, expected):
        msg = (
            f"http_client must be an httpx.{expected.__name__} ({other}), "
            f"got {type(http_client).__name__} {shown(http_client)}"
        )
        raise TypeError(msg)


def _check_transport(transport: object, method: str, expected: str) -> None:
    if transport is not None and not callable(getattr(transport, method, None)):
        msg = (
            f"transport must be an httpx.{expected} (with {method}()), "
            f"got {type(transport).__name__} {shown(transport)}"
        )
        raise TypeError(msg)


# Every client alive in this process, for the fork hook below.


def _awaitable_sleep(
    sleep: Callable[[float], Awaitable[None] | None],
) -> Callable[[float], Awaitable[None]]:
    """Accept a plain function as the async client's sleep (a test recorder, say)."""

    async def wrapped(seconds: float) -> None:
        result = sleep(seconds)
        if inspect.isawaitable(result):
            await result

    return wrapped


_H = TypeVar("_H", httpx.Client, httpx.AsyncClient)


class _ClientCore(Generic[_H]):
    """Configuration, request building and answer handling shared by both clients."""

    def __init__(
        self,
        key: Secret,
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
        # Every argument is checked here, once, in the order of the signature.
        self._auth: BearerAuth = bearer_auth(key)
        self.base_url = base_url_setting(base_url)
        # httpx's own forms pass as they are; anything else must be seconds.
        if not (timeout is None or isinstance(timeout, httpx.Timeout)):
            timeout = check_seconds("timeout", timeout)
        self.timeout = timeout
        self.max_attempts = check_count("max_attempts", max_attempts)
        # math.inf: no overall deadline, only max_attempts bounds a call.
        self.deadline = check_seconds("deadline", deadline, infinite=True)
        self.backoff_initial = check_seconds("backoff_initial", backoff_initial, positive=False)
        self.backoff_max = check_seconds("backoff_max", backoff_max, positive=False)
        self.retry_after_max = check_seconds("retry_after_max", retry_after_max, positive=False)
        check_callable("clock", clock, "a function returning the time in seconds (a float)")
        self._clock = clock
        if rng is not None and not callable(getattr(rng, "uniform", None)):
            msg = (
                "rng must be a random.Random (anything with .uniform(a, b)) or None, "
                f"got {type(rng).__name__} {shown(rng)}"
            )
            raise TypeError(msg)
        self._rng = rng if rng is not None else random.Random()  # jitter, not crypto
        # No Authorization here: BearerAuth adds it to each request (see _auth).
        self._headers = {
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
        renew_after_fork(self)

    _http: _H

    def _new_http(self) -> _H:
        """A connection pool of this client's own (each twin builds its kind)."""
        raise NotImplementedError  # pragma: no cover  # both twins override it

    def _after_fork_in_child(self) -> None:
        # A parent thread may have held it at the fork: it would stay locked for ever.
        self._retries_lock = threading.Lock()
        if self._owns_http:
            # The child opens its own connections; the parent's pool is kept, unclosed.
            self._inherited.append(self._http)
            self._http = self._new_http()

    @property
    def retries(self) -> int:
        """How many retries this client has made since it was built (all calls)."""
        return self._retries

    def __repr__(self) -> str:
        # The key is deliberately absent: reprs end up in logs and tracebacks.
        # getattr: a traceback printed with its locals may repr a half-built client.
        url = getattr(self, "base_url", None)
        return (
            f"{type(self).__name__}(base_url={masked_url(url) if url else url!r}, "
            f"api_key=<redacted>, max_attempts={getattr(self, 'max_attempts', None)}, "
            f"deadline={getattr(self, 'deadline', None)})"
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
            "auth": self._auth,
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

    def _no_answer(
        self, exc: httpx.RequestError, method: str, path: str
    ) -> tuple[LinqAPIError, httpx.RequestError]:
        """The error to raise for ``exc``, and a bare copy of ``exc`` to chain as its cause.

        The copy has ``exc``'s class and (scrubbed) message, and nothing else: no
        request (whose headers hold the key, and pickle with it), no traceback (whose
        frames in httpcore and h11 hold the serialized header as locals), no chain.
        A transport error is ``LinqConnectionError``; anything else httpx raises about a
        request (an undecodable body, too many redirects) is ``LinqResponseError``.
        """
        name = type(exc).__name__
        detail = self._auth.scrub(str(exc)) or name
        try:
            cause = type(exc)(detail)
        except Exception:  # a subclass with another signature: keep the family
            cause = (
                httpx.TransportError(detail)
                if isinstance(exc, httpx.TransportError)
                else httpx.RequestError(detail)
            )
        where = f"{method} {cut(path)}"
        if isinstance(exc, httpx.TransportError):
            return LinqConnectionError(f"{where}: no answer ({name}: {detail})"), cause
        return LinqResponseError(f"{where}: unusable answer ({name}: {detail})"), cause

    @staticmethod
    def _update_body(
        phone_number_id: str | uuid.UUID, forwarding_number: str | None
    ) -> tuple[str, object]:
        if isinstance(phone_number_id, uuid.UUID):
            phone_number_id = str(phone_number_id)
        need = "phone_number_id must be a line's id (a non-empty str or uuid.UUID)"
        if not isinstance(phone_number_id, str):
            msg = f"{need}, got {type(phone_number_id).__name__} {shown(phone_number_id)}"
            raise TypeError(msg)
        if not phone_number_id.strip():
            msg = f"{need}, got {shown(phone_number_id)}"
            raise ValueError(msg)
        if any(ord(c) < 32 or ord(c) == 127 for c in phone_number_id):
            msg = f"{need} without control characters, got {shown(phone_number_id)}"
            raise ValueError(msg)
        need = "forwarding_number must be an E.164 number like '+12025551234' (None or '' clear it)"
        if forwarding_number == "":
            forwarding_number = None
        if forwarding_number is not None and not isinstance(forwarding_number, str):
            msg = f"{need}; got {type(forwarding_number).__name__} {shown(forwarding_number)}"
            raise TypeError(msg)
        if forwarding_number is not None and not is_e164(forwarding_number):
            msg = f"{need}; got {shown(forwarding_number)}"
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
                cut(path),
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


class LinqClient(_ClientCore[httpx.Client]):
    """Synchronous client for Linq's phone-number endpoints.

    ``api_key`` and ``base_url`` fall back to ``LINQ_API_V3_API_KEY`` and
    ``LINQ_API_V3_BASE_URL``, then to ``https://api.linqapp.com/api/partner``; a missing
    key raises ``ValueError`` naming the variable. Whitespace around the key (the
    newline of a secret file read as it is, CR LF included) is stripped; a key that is empty
    or has a control character (or anything outside printable ASCII) inside is refused
    here with an error naming ``api_key`` or the variable, never showing the key. The
    key is held only by an ``httpx.Auth`` whose repr masks it: no repr, log line,
    exception, pickle or traceback local of the library shows it. The same whitespace
    is stripped around the base URL; an empty ``base_url`` is an error, while an empty
    ``LINQ_API_V3_BASE_URL`` counts as unset.

    Every argument is checked here: wrong types raise ``TypeError``, bad values
    ``ValueError``, naming the argument and the value (cut to 60 characters).
    ``timeout`` is seconds (more than 0), an ``httpx.Timeout`` or ``None`` (no
    timeout); ``deadline`` is more than 0 (``math.inf``: only ``max_attempts`` bounds a
    call); ``backoff_*`` and ``retry_after_max`` are finite and may be 0; ``bool`` is
    never a number.

    Code 3006, every other 5xx, 408, 429 and transport errors are retried with
    exponential backoff and full jitter, at most ``max_attempts`` tries within
    ``deadline`` seconds; ``Retry-After`` on 429 and 503 is honoured up to
    ``retry_after_max`` seconds. 401/2004, 403, 404 and 422 are raised at once, and so
    is a request httpx refuses to send. ``retries`` counts the retries made. A
    ``LinqConnectionError``'s ``__cause__`` is a bare copy of httpx's error (its class
    and message: no request, traceback or chain, which would hold the key).

    Pass ``http_client`` (an ``httpx.Client`` you own and close) to pool connections,
    or ``transport`` to hand httpx a transport. ``sleep``, ``clock`` and ``rng`` are
    there so tests drive time instead of waiting on it.

    A client built before ``os.fork()`` works in the child: the child's first request
    opens connections of its own (the parent's are left alone). An ``http_client`` or
    a pooling ``transport`` you passed is yours to rebuild in the child.

    >>> with LinqClient() as client:  # doctest: +SKIP
    ...     lines = client.list_phone_numbers()

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       The key and base URL are stripped; bad keys, empty base URLs, ``timeout=0``,
       ``deadline=0`` and non-numbers are refused when the client is built.
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
        # From here on the key is held only by objects whose repr masks it: a traceback
        # printed with its frames' locals (rich's show_locals) must not show it.
        key = Secret(api_key)
        del api_key
        super().__init__(
            key,
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
        check_callable("sleep", sleep, "a function that waits for a number of seconds")
        _check_http_client(http_client, httpx.Client, "AsyncLinqClient takes an AsyncClient")
        _check_transport(transport, "handle_request", "BaseTransport")
        self._sleep = sleep
        self._owns_http = http_client is None
        self._transport = transport
        self._http = http_client or self._new_http()

    def _new_http(self) -> httpx.Client:
        return httpx.Client(transport=self._transport, timeout=self._timeout())

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
                except httpx.RequestError as exc:
                    error, cause = self._no_answer(exc, method, path)
                else:
                    return decode(response)
                # Raised outside the except block, so httpx's own error (see _no_answer)
                # is not kept as the __context__ either.
                raise error from cause
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


class AsyncLinqClient(_ClientCore[httpx.AsyncClient]):
    """Asynchronous twin of ``LinqClient``: the same arguments, awaitable methods.

    ``http_client`` is an ``httpx.AsyncClient`` and ``sleep`` an async callable
    (default ``asyncio.sleep``). Keys, URLs and every other argument are checked as
    ``LinqClient`` checks them. Safe across ``os.fork()`` like ``LinqClient``.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Arguments are checked as ``LinqClient``'s are.
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
        # From here on the key is held only by objects whose repr masks it: a traceback
        # printed with its frames' locals (rich's show_locals) must not show it.
        key = Secret(api_key)
        del api_key
        super().__init__(
            key,
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
        check_callable("sleep", sleep, "an async function that waits for a number of seconds")
        _check_http_client(http_client, httpx.AsyncClient, "LinqClient takes a Client")
        _check_transport(transport, "handle_async_request", "AsyncBaseTransport")
        self._sleep = _awaitable_sleep(sleep)
        self._owns_http = http_client is None
        self._transport = transport
        self._http = http_client or self._new_http()

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._transport, timeout=self._timeout())

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
                except httpx.RequestError as exc:
                    error, cause = self._no_answer(exc, method, path)
                else:
                    return decode(response)
                raise error from cause  # outside the except block: see LinqClient._call
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
