"""Linq's HTTP answers as values or errors, and which failures are worth a retry.

Pure functions of an ``httpx.Response`` or an exception: the sync and async clients
share them, and they do no I/O.
"""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any

import httpx
import orjson

from ._errors import (
    AuthenticationError,
    LinqAPIError,
    LinqConnectionError,
    LinqResponseError,
    RateLimitError,
    ServerError,
)

__all__ = ["error_from_response", "is_retryable", "json_body"]

# 408 and 429 are worth another try; so is every 5xx (3006 is Linq's "internal error").
_RETRYABLE_STATUSES = frozenset({408, 429})


def _parse_retry_after(response: httpx.Response, body: object) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or a body ``retry_after``."""
    header = response.headers.get("retry-after", "").strip()
    if header:
        try:
            return _seconds(float(header))
        except ValueError:
            pass
        try:
            parsed = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError, OverflowError):
            parsed = None  # unreadable: fall back to the body, then to backoff
        if parsed is not None:
            return _seconds(parsed.timestamp() - time.time())
    if isinstance(body, dict):
        for holder in (body, body.get("error")):
            if isinstance(holder, dict):
                value = holder.get("retry_after")
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    try:
                        return _seconds(float(value))
                    except OverflowError:
                        return None
    return None


def _seconds(value: float) -> float | None:
    """A usable wait: non-negative and finite, else None."""
    if math.isnan(value) or math.isinf(value):
        return None
    return max(0.0, value)


def error_from_response(response: httpx.Response) -> LinqAPIError:
    """Turn a non-2xx answer into the matching ``LinqAPIError`` subclass."""
    try:
        body: object = response.json()
    except (ValueError, RecursionError):
        body = None
    envelope = body.get("error") if isinstance(body, dict) else None
    fields: dict[str, Any] = envelope if isinstance(envelope, dict) else {}
    status = response.status_code
    code = fields.get("code") if isinstance(fields.get("code"), int) else None
    message = fields.get("message")
    if not isinstance(message, str) or not message:
        message = response.reason_phrase or "error"
    doc_url = fields.get("doc_url") if isinstance(fields.get("doc_url"), str) else None
    retry_after = _parse_retry_after(response, body) if status in (429, 503) else None
    cls: type[LinqAPIError] = LinqAPIError
    if status == 401 or code == 2004:
        cls = AuthenticationError
    elif status == 429:
        cls = RateLimitError
    elif status >= 500:
        cls = ServerError
    return cls(message, status=status, code=code, doc_url=doc_url, retry_after=retry_after)


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt may succeed where ``exc`` failed.

    A request that got no answer may; one httpx refused to send (a local protocol
    error, an unsupported scheme) fails the same way every time, so it is not retried.
    """
    if isinstance(exc, LinqConnectionError):
        return not isinstance(exc.__cause__, (httpx.LocalProtocolError, httpx.UnsupportedProtocol))
    if isinstance(exc, (AuthenticationError, LinqResponseError)):
        return False
    if isinstance(exc, LinqAPIError):
        if exc.code == 3006:  # Linq's "internal error", whatever status carries it
            return True
        if exc.status is not None:
            return exc.status >= 500 or exc.status in _RETRYABLE_STATUSES
    return False


def json_body(response: httpx.Response) -> object:
    """The JSON of a 2xx answer; any other answer raised as the matching error."""
    if not response.is_success:
        raise error_from_response(response)
    # orjson parses a 10,000-line list in half the time, and that time is one call that
    # holds the GIL (every picking thread waits for it). What it refuses and the
    # standard library takes (NaN, integers past 64 bits, UTF-16) goes to the latter.
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        pass
    try:
        return response.json()
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        msg = f"the {response.request.method} answer is not valid JSON"
        raise LinqResponseError(msg, status=response.status_code) from exc
