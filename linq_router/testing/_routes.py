"""The fake API's routes: naming them, matching requests to them, and recording requests."""

from __future__ import annotations

import threading
from urllib.parse import unquote

import attrs

__all__ = [
    "CREATE_CHAT_ROUTE",
    "LIST_ROUTE",
    "SEND_MESSAGE_ROUTE",
    "SEND_ROUTES",
    "UPDATE_ROUTE",
    "VOICE_MEMO_ROUTE",
    "RecordedRequest",
    "RequestLog",
    "normalize_route",
]

LIST_ROUTE = "GET /v3/phone_numbers"
UPDATE_ROUTE = "PUT /v3/phone_numbers/{id}"
CREATE_CHAT_ROUTE = "POST /v3/chats"
SEND_MESSAGE_ROUTE = "POST /v3/chats/{id}/messages"
VOICE_MEMO_ROUTE = "POST /v3/chats/{id}/voicememo"
SEND_ROUTES: frozenset[str] = frozenset({CREATE_CHAT_ROUTE, SEND_MESSAGE_ROUTE, VOICE_MEMO_ROUTE})
"""The routes that send from a line: each request to one is also a ``SentMessage``."""
API_PREFIX = "/api/partner"

# The send aliases are SentMessage.kind's values, so a test can name a route by its kind.
_ROUTE_ALIASES = {
    "list": LIST_ROUTE,
    "update": UPDATE_ROUTE,
    "chat": CREATE_CHAT_ROUTE,
    "message": SEND_MESSAGE_ROUTE,
    "voice_memo": VOICE_MEMO_ROUTE,
    "voicememo": VOICE_MEMO_ROUTE,
}
_CHAT_ACTIONS = {"messages": SEND_MESSAGE_ROUTE, "voicememo": VOICE_MEMO_ROUTE}


@attrs.frozen
class RecordedRequest:
    """One request the fake received, in arrival order.

    ``path`` is the path as requested (query string dropped); ``route`` the canonical
    route it hit (``"GET /v3/phone_numbers"``, ``"PUT /v3/phone_numbers/{id}"``,
    ``"POST /v3/chats"``, ``"POST /v3/chats/{id}/messages"``,
    ``"POST /v3/chats/{id}/voicememo"``, or ``"<METHOD> <path>"`` for an unknown one).
    ``time`` is the server clock's reading at arrival, ``authorized`` whether it
    carried the right bearer key, ``fault`` the kind of the fault it consumed, if any.

    .. versionadded:: 0.1
    .. versionchanged:: 0.3 the send routes.
    """

    method: str
    path: str
    route: str
    time: float
    authorized: bool
    fault: str | None = None
    body: bytes = attrs.field(default=b"", repr=False)


def api_path(path: str) -> str:
    """The path relative to the API base: ``/api/partner`` stripped, no trailing slash."""
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        path = path[len(API_PREFIX) :]
    if len(path) > 1:
        path = path.rstrip("/")
    return path


def resolve(method: str, path: str) -> tuple[str | None, str | None]:
    """(canonical route, line or chat id) for a request path relative to the API base.

    The route is ``None`` for anything the fake does not serve.
    """
    if method == "GET" and path == "/v3/phone_numbers":
        return LIST_ROUTE, None
    if method == "POST" and path == "/v3/chats":
        return CREATE_CHAT_ROUTE, None
    head, _, line_id = path.rpartition("/")
    if method == "PUT" and head == "/v3/phone_numbers" and line_id:
        return UPDATE_ROUTE, unquote(line_id)
    chats, _, chat_id = head.rpartition("/")
    if method == "POST" and chats == "/v3/chats" and chat_id and line_id in _CHAT_ACTIONS:
        return _CHAT_ACTIONS[line_id], unquote(chat_id)
    return None, None


def normalize_route(route: str) -> str:
    """``"list"``, ``"update"``, ``"get /api/partner/v3/phone_numbers"``... -> canonical.

    The aliases: ``"list"``, ``"update"``, and the send kinds ``"chat"``
    (``POST /v3/chats``), ``"message"`` and ``"voice_memo"`` (or ``"voicememo"``).

    A bare path (no method) becomes ``"* <path>"``: any method.
    """
    route = route.strip()
    alias = _ROUTE_ALIASES.get(route.lower())
    if alias is not None:
        return alias
    method, sep, path = route.partition(" ")
    if not sep:
        method, path = "*", route
    return f"{method.upper()} {api_path(path.strip())}"


def route_matches(spec: str, route: str, path: str) -> bool:
    """Whether a canonical ``spec`` names a request to ``route`` at API-relative ``path``.

    The spec's path may be the route's template or the concrete path.
    """
    want_method, _, want_path = spec.partition(" ")
    method, _, template = route.partition(" ")
    if want_method not in {"*", method}:
        return False
    return want_path in {template, path}


class RequestLog:
    """``FakeLinqServer``'s recorded requests: what it received, counted by route.

    A base class: the server appends to ``_requests`` under ``_cond`` and notifies it.
    """

    _cond: threading.Condition
    _requests: list[RecordedRequest]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since start (or ``reset_counts()``), oldest first."""
        with self._cond:
            return list(self._requests)

    def count(self, route: str | None = None) -> int:
        """How many requests hit ``route`` (every request when ``None``).

        ``route`` is ``"GET /v3/phone_numbers"``, ``"PUT /v3/phone_numbers/{id}"``,
        ``"POST /v3/chats"``, ``"POST /v3/chats/{id}/messages"``,
        ``"POST /v3/chats/{id}/voicememo"``, the aliases ``"list"`` / ``"update"`` /
        ``"chat"`` / ``"message"`` / ``"voice_memo"``, a concrete
        ``"PUT /v3/phone_numbers/<id>"`` (or chat path), or a bare path (any method).
        Faulted and refused requests count too.

        .. versionchanged:: 0.3 the send routes.
        """
        with self._cond:
            if route is None:
                return len(self._requests)
            spec = normalize_route(route)
            return sum(1 for r in self._requests if route_matches(spec, r.route, api_path(r.path)))

    def wait_for_requests(self, n: int, route: str | None = None, *, timeout: float = 5.0) -> bool:
        """Block until ``count(route) >= n``; False if ``timeout`` seconds pass first."""
        with self._cond:
            return self._cond.wait_for(lambda: self.count(route) >= n, timeout)
