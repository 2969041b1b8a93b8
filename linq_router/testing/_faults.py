"""Faults the fake API can inject, Linq's error envelope, and route names."""

from __future__ import annotations

import json
import re
import threading
from http import HTTPStatus
from typing import Any

import attrs

from ._routes import normalize_route, route_matches

__all__ = ["FAULT_KINDS", "Fault", "FaultControls", "FaultQueue", "error_envelope"]

FAULT_KINDS: frozenset[str] = frozenset(
    {
        "3006",
        "400",
        "401",
        "403",
        "404",
        "409",
        "422",
        "429",
        "500",
        "502",
        "503",
        "504",
        "delay",
        "drop",
        "malformed",
        "truncated",
        "wrong-shape",
    }
)
"""The fault kinds ``FakeLinqServer.fail_next`` knows by name.

Any other three-digit HTTP error status (``"418"``) works as well, answered with the
error envelope. ``_`` and ``-`` are interchangeable (``"wrong_shape"``).
"""

# status -> (code, message). 401, 403/2027, 429/1007 and 500/3006 are Linq's documented
# values; the rest follow Linq's code ranges (1xxx request, 2xxx resource, 3xxx server).
_STATUS_DEFAULTS: dict[int, tuple[int, str]] = {
    400: (1003, "Invalid request body"),
    401: (2004, "Unauthorized - missing or invalid authentication token"),
    403: (2027, "The phone number is temporarily ineligible to send messages"),
    404: (2000, "Not found"),
    409: (1006, "Conflict"),
    422: (1005, "Invalid parameter value"),
    429: (1007, "Rate limit exceeded"),
    500: (3006, "Internal server error"),
}
_CODE_MESSAGES: dict[int, str] = {
    1001: "Missing required field",
    1002: "Phone number must be in E.164 format",
    1003: "Invalid request body",
    1004: "Invalid message content",
    1005: "Invalid parameter value",
    1007: "Rate limit exceeded",
    2001: "Chat not found",
    2004: "Unauthorized - missing or invalid authentication token",
    2005: "Access denied - insufficient permissions for this resource",
    2024: "The recipient has opted out of messages from this number",
    2027: "The phone number is temporarily ineligible to send messages",
    3006: "Internal server error",
}

_STATUS_KIND = re.compile(r"[45][0-9]{2}")


def error_envelope(
    status: int,
    code: int | None = None,
    message: str | None = None,
    *,
    retry_after: float | None = None,
) -> dict[str, Any]:
    """Linq's error body: ``{"error": {status, code, message, doc_url}, "success": false}``.

    ``code`` and ``message`` default from the status (401 -> 2004, 429 -> 1007, 5xx ->
    3006, ...). ``retry_after`` is added inside ``error``, as Linq does on 429s.

    .. versionadded:: 0.1
    """
    default_code, default_message = _STATUS_DEFAULTS.get(
        status, (3006 if status >= 500 else 1005, HTTPStatus(status).phrase)
    )
    if code is None:
        code = default_code
    if message is None:
        message = default_message if code == default_code else _CODE_MESSAGES.get(code, "")
        if not message:
            message = HTTPStatus(status).phrase
    error: dict[str, Any] = {
        "status": status,
        "code": code,
        "message": message,
        "doc_url": f"https://docs.linqapp.com/error/codes/{code // 1000}xxx/{code}/",
    }
    if retry_after is not None:
        error["retry_after"] = int(retry_after) if retry_after == int(retry_after) else retry_after
    return {"error": error, "success": False}


def normalize_kind(kind: str) -> str:
    """The canonical name of a fault kind; ``ValueError`` for an unknown one."""
    name = str(kind).strip().lower().replace("_", "-")
    if name in {"wrongshape", "shape"}:
        name = "wrong-shape"
    if name in FAULT_KINDS or _STATUS_KIND.fullmatch(name):
        return name
    msg = f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)} or an HTTP status"
    raise ValueError(msg)


def _optional_route(route: str | None) -> str | None:
    return None if route is None else normalize_route(route)


@attrs.frozen
class Fault:
    """One queued misbehaviour, as ``FakeLinqServer.fail_next`` builds it.

    ``kind`` is a name from ``FAULT_KINDS`` (or an HTTP error status):

    * ``"3006"`` / ``"500"``: 500 with the code 3006 envelope; ``"503"``, ``"502"``, ...
      likewise; any HTTP error status works (``"403"`` is code 2027, pass
      ``code=2024`` for an opted-out recipient; ``"401"`` is code 2004).
    * ``"429"``: code 1007, ``Retry-After`` header and ``error.retry_after`` (1 s unless
      ``retry_after=`` says otherwise). ``retry_after=`` adds the header to any status.
    * ``"delay"``: wait ``delay`` seconds (default 1), then answer normally; ``stop()``
      cuts the wait short. ``delay=`` also delays any other kind's answer.
    * ``"malformed"``: 200 with a body that is not JSON (or ``body=``).
    * ``"wrong-shape"``: 200 with ``{"numbers": []}``, or ``body=`` (JSON-encoded, or
      sent as is when ``bytes``/``str``): the raw override for parser tests.
    * ``"truncated"``: the normal answer, cut short: ``Content-Length`` promises more
      than is sent before the connection closes.
    * ``"drop"``: the connection closes without any answer.

    A fault that replaces the answer (every kind but ``"delay"`` and ``"truncated"``)
    means the request was not carried out: a send it hits creates nothing and is not
    accepted. ``route`` limits it to one route (``"GET /v3/phone_numbers"``,
    ``"list"``, ``"update"``, ``"PUT /v3/phone_numbers/{id}"``, ``"POST /v3/chats"``,
    ``"chat"``, ``"message"``, ``"voice_memo"``, the other send routes, or a concrete
    path); ``None`` matches every known route. ``delay`` waits that many seconds before
    the fault's answer (for ``"delay"`` itself, before the normal answer). ``body``
    replaces the body of ``"malformed"`` / ``"wrong-shape"`` answers: ``bytes`` or
    ``str`` are sent as they are, anything else as JSON. ``code`` / ``message``
    override the error envelope's.

    .. versionadded:: 0.1
    .. versionchanged:: 0.3 the send routes.
    """

    kind: str = attrs.field(converter=normalize_kind)
    route: str | None = attrs.field(default=None, converter=_optional_route)
    retry_after: float | None = None
    delay: float | None = None
    body: Any = None
    code: int | None = None
    message: str | None = None

    @property
    def status(self) -> int | None:
        """The HTTP status this fault answers with; ``None`` for drop/delay/200 bodies."""
        if self.kind == "3006":
            return 500
        if _STATUS_KIND.fullmatch(self.kind):
            return int(self.kind)
        return None

    @property
    def error_code(self) -> int | None:
        """The Linq error code this fault answers with; ``None`` without an error status."""
        status = self.status
        if status is None:
            return None
        code: int = error_envelope(status, self.code)["error"]["code"]
        return code

    def error_body(self) -> bytes:
        """The error envelope this fault sends (status kinds only)."""
        status = self.status
        if status is None:  # pragma: no cover - callers check first
            msg = f"{self.kind!r} has no error status"
            raise ValueError(msg)
        retry_after = self.retry_after
        if status == 429 and retry_after is None:
            retry_after = 1
        envelope = error_envelope(
            status,
            self.code,
            self.message,
            retry_after=retry_after if status == 429 else None,
        )
        return json.dumps(envelope).encode()

    def headers(self) -> list[tuple[str, str]]:
        """Extra headers: ``Retry-After`` on a 429 (1 s unless given) or when asked for."""
        retry_after = self.retry_after
        if retry_after is None and self.status == 429:
            retry_after = 1
        if retry_after is None:
            return []
        return [("Retry-After", f"{retry_after:g}")]

    def replacement_body(self) -> bytes:
        """The 200 body of a ``"malformed"`` or ``"wrong-shape"`` fault."""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        if self.body is None:
            if self.kind == "malformed":
                return b'{"phone_numbers": [{"id": "0b6f1c2e", "phone_number": '
            return b'{"numbers": []}'
        return json.dumps(self.body).encode()


_DEFAULT_DELAY = 1.0


@attrs.define
class _Queued:
    fault: Fault
    remaining: int | None  # None: until cleared


class FaultQueue:
    """The faults a ``FakeLinqServer`` has queued, consumed first in, first out.

    Not locked: the server calls it under its own lock.
    """

    def __init__(self) -> None:
        self._queue: list[_Queued] = []

    def push(self, fault: Fault, times: int | None) -> Fault:
        """Queue ``fault`` for ``times`` matching requests (``None``: until cleared)."""
        if times is not None and times < 1:
            msg = f"times must be at least 1 (or None for always), got {times}"
            raise ValueError(msg)
        if fault.kind == "delay" and fault.delay is None:
            fault = attrs.evolve(fault, delay=_DEFAULT_DELAY)
        self._queue.append(_Queued(fault, times))
        return fault

    def pending(self) -> list[tuple[Fault, int | None]]:
        """The queued faults with how many requests each still applies to."""
        return [(q.fault, q.remaining) for q in self._queue]

    def clear(self) -> None:
        """Drop every queued fault."""
        self._queue.clear()

    def take(self, route: str, path: str) -> Fault | None:
        """The first fault matching a request to ``route`` at ``path``, counted as used."""
        for queued in self._queue:
            spec = queued.fault.route
            if spec is None or route_matches(spec, route, path):
                if queued.remaining is not None:
                    queued.remaining -= 1
                    if queued.remaining <= 0:
                        self._queue.remove(queued)
                return queued.fault
        return None


class FaultControls:
    """``FakeLinqServer``'s fault methods: queue, list and clear faults.

    A base class: the server holds the ``FaultQueue`` in ``_faults`` under ``_cond``.
    """

    _cond: threading.Condition
    _faults: FaultQueue

    def fail_next(
        self,
        kind: str,
        times: int | None = 1,
        *,
        route: str | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
        body: Any = None,
        code: int | None = None,
        message: str | None = None,
    ) -> Fault:
        """Queue a fault for the next ``times`` matching requests (see ``Fault``).

        ``route`` is ``"GET /v3/phone_numbers"`` (or ``"list"``),
        ``"PUT /v3/phone_numbers/{id}"`` (or ``"update"``), ``"POST /v3/chats"`` (or
        ``"chat"``), ``"POST /v3/chats/{id}/messages"`` (or ``"message"``),
        ``"POST /v3/chats/{id}/voicememo"`` (or ``"voice_memo"``), a concrete path, or
        ``None`` for any known route.

        .. versionchanged:: 0.3 the send routes.
        """
        fault = Fault(kind, route, retry_after, delay, body, code, message)
        with self._cond:
            return self._faults.push(fault, times)

    @property
    def pending_faults(self) -> list[tuple[Fault, int | None]]:
        """The queued faults with how many requests each still applies to."""
        with self._cond:
            return self._faults.pending()

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._cond:
            self._faults.clear()
