"""Where budgets are kept when a router's state is shared: ``pacing_storage``. No I/O."""

from __future__ import annotations

import urllib.parse

__all__ = ["pacing_storage"]

_SHARED_SCHEMES = ("redis", "rediss", "redis+sentinel", "redis+cluster")
_NAMESPACE = "linq_router"  # from_uri's default namespace
# A state URI may leave ports out (from_uri fills these in); limits requires them for
# a Sentinel's and a Cluster's hosts ("Missing host or port").
_DEFAULT_PORTS = {"redis+sentinel": 26379, "redis+cluster": 6379}
_STATE_TIMEOUT_MS = 50.0  # from_uri's default
_TIMEOUTS = ("socket_timeout", "socket_connect_timeout")


def _timeouts(query: dict[str, list[str]]) -> str:
    """The socket timeouts for the budgets' storage, as query options (seconds)."""
    found = []
    for name in _TIMEOUTS:
        given = query.get(name + "_ms", [])
        try:
            ms = float(given[-1]) if given else _STATE_TIMEOUT_MS
        except ValueError:  # from_uri refuses it first; here, the default
            ms = _STATE_TIMEOUT_MS
        found.append(f"&{name}={ms / 1000.0:g}")
    return "".join(found)


def _with_ports(netloc: str, port: int) -> str:
    """``netloc`` with ``port`` given to each of its hosts that names none."""
    userinfo, at, hosts = netloc.rpartition("@")
    filled = []
    for host in hosts.split(","):
        bare = host.rsplit("]", 1)[-1] if host.startswith("[") else host
        filled.append(host if ":" in bare else f"{host}:{port}")
    return f"{userinfo}{at}{','.join(filled)}"


def pacing_storage(state_uri: str) -> str | None:
    """The ``limits`` storage URI for budgets kept where a shared ``state_uri`` keeps state.

    The same server, without linq_router's own options, and a key prefix of the
    state's namespace; ``None`` for a state that is not shared (``memory://``).
    ``state_uri`` is one ``linq_router.state.from_uri`` accepted.

    The forms are ``limits``' own. A Sentinel's is
    ``redis+sentinel://host:port/service_name`` (limits reads the whole path as the
    service name), so the state's database goes in ``db=``, which ``Pacer`` passes on
    to the master's connections. A Cluster's has no path (database 0 only).

    The socket timeouts are the state's (``socket_timeout_ms``,
    ``socket_connect_timeout_ms``, 50 ms by default): a budget call, a pick's check of
    a marked line among them, waits no longer on a Redis that hangs than a sticky or
    rotation call does. A send a slow Redis did not count is not lost: the pacer
    counts it locally and writes it back (``_outage``).
    """
    parts = urllib.parse.urlsplit(state_uri)
    scheme = parts.scheme
    if scheme not in _SHARED_SCHEMES:
        return None
    query = urllib.parse.parse_qs(parts.query)
    namespace = query.get("namespace", [_NAMESPACE])[-1]
    prefix = urllib.parse.quote(f"{namespace}:pacing", safe="")
    netloc, path, extra = parts.netloc, parts.path, ""
    if scheme in _DEFAULT_PORTS:
        netloc = _with_ports(netloc, _DEFAULT_PORTS[scheme])
    if scheme == "redis+sentinel":
        service, _, db = path.strip("/").partition("/")
        path = f"/{service}"
        extra = f"&db={int(db)}" if db else ""
    elif scheme == "redis+cluster":
        path = ""
    return f"{scheme}://{netloc}{path}?key_prefix={prefix}{extra}{_timeouts(query)}"
