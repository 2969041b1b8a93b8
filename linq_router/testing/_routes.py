"""The fake API's routes: naming them, matching requests to them, and recording requests."""

from __future__ import annotations

from urllib.parse import unquote

import attrs

__all__ = ["LIST_ROUTE", "UPDATE_ROUTE", "RecordedRequest", "normalize_route"]

LIST_ROUTE = "GET /v3/phone_numbers"
UPDATE_ROUTE = "PUT /v3/phone_numbers/{id}"
API_PREFIX = "/api/partner"

_ROUTE_ALIASES = {"list": LIST_ROUTE, "update": UPDATE_ROUTE}


@attrs.frozen
class RecordedRequest:
    """One request the fake received, in arrival order.

    ``path`` is the path as requested (query string dropped); ``route`` the canonical
    route it hit (``"GET /v3/phone_numbers"``, ``"PUT /v3/phone_numbers/{id}"``, or
    ``"<METHOD> <path>"`` for an unknown one). ``time`` is the server clock's reading at
    arrival, ``authorized`` whether it carried the right bearer key, ``fault`` the kind
    of the fault it consumed, if any.

    .. versionadded:: 0.1
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
    """(canonical route, line id) for a request path relative to the API base.

    The route is ``None`` for anything the fake does not serve.
    """
    if method == "GET" and path == "/v3/phone_numbers":
        return LIST_ROUTE, None
    head, _, line_id = path.rpartition("/")
    if method == "PUT" and head == "/v3/phone_numbers" and line_id:
        return UPDATE_ROUTE, unquote(line_id)
    return None, None


def normalize_route(route: str) -> str:
    """``"list"``, ``"update"``, ``"get /api/partner/v3/phone_numbers"``... -> canonical.

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
