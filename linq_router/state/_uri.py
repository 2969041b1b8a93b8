"""``from_uri``: a state backend from one line of configuration.

Parsing and checking are pure (``_parse``, no redis-py needed, so a bad URI is a
``ValueError`` even where redis-py is missing); ``_Connect`` then makes redis-py's
own client for the scheme, on first use. Credentials never leave the URI they came
in: every message and repr shows it as ``redis://user:***@host:6379/0``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from ._base import StateBackend
from ._checks import checked_namespace
from ._memory import MemoryState
from ._redis import DEFAULT_ASSIGNMENT_TTL, AsyncRedisState, RedisState
from ._resilient import ResilientState
from ._resilient_async import AsyncResilientState

if TYPE_CHECKING:
    from redis import Redis, RedisCluster
    from redis.asyncio import Redis as AsyncRedis
    from redis.asyncio import RedisCluster as AsyncRedisCluster

__all__ = ["from_uri", "from_uri_async", "masked_uri"]

DEFAULT_TIMEOUT_MS = 50.0
"""Socket and connect timeouts: a pick must never hang on Redis."""

_ASYNC_POOL = 100
"""Connections of a ``redis.asyncio`` pool when ``max_connections`` is not given."""
_ASYNC_POOL_WAIT = 1.0
"""Seconds a task waits for a free connection of a full ``redis.asyncio`` pool."""

_SCHEMES = ("memory", "redis", "rediss", "redis+sentinel", "redis+cluster")
_SUPPORTED = ", ".join(f"{scheme}://" for scheme in _SCHEMES)
_MEMORY_OPTIONS = ("assignment_ttl", "max_size", "namespace")
_REDIS_OPTIONS = (
    "assignment_ttl",
    "fallback",
    "max_connections",
    "namespace",
    "socket_connect_timeout_ms",
    "socket_timeout_ms",
)
_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "redis+sentinel": 26379, "redis+cluster": 6379}


def _garbled(uri: str) -> bool:
    """True if the URI's credentials may spill out of its host part (a bare ``/ ? #``)."""
    try:
        netloc = urlsplit(uri).netloc
    except ValueError:
        return True
    if "@" in netloc:
        return False
    rest = uri.partition("://")[2]
    if "@" in rest and "=" not in rest.partition("@")[0]:
        return True  # an @ after the host, not in an option's value: a password's end
    port = netloc.rpartition(":")[2] if ":" in netloc and not netloc.endswith("]") else ""
    return bool(port) and not port.isdigit()  # "user:pass" cut short by a bare "?"


def masked_uri(uri: str) -> str:
    """``uri`` without its query, and with any password shown as ``***``.

    ``redis://user:secret@host/0?x=1`` -> ``redis://user:***@host/0``; a user name
    alone (``redis://token@host``) is masked too, as some put a token there. Where a
    password holds a bare ``/``, ``?`` or ``#`` (which would end the host part early),
    all but the scheme is masked: ``redis://***``.
    """
    scheme = uri.partition("://")[0]
    if _garbled(uri):
        return f"{scheme}://***"
    parts = urlsplit(uri)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at:
        return f"{scheme}://{hosts}{parts.path}"
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user + ':***' if colon else '***'}@{hosts}{parts.path}"


@attrs.frozen
class _Spec:
    """A checked state URI. ``shown`` is the masked form, for messages and reprs."""

    scheme: str
    shown: str
    namespace: str
    assignment_ttl: float | None
    max_size: int = 100_000
    hosts: tuple[tuple[str, int], ...] = ()
    url: str = attrs.field(default="", repr=False)  # redis(s)://user:password@host:port/db
    username: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)
    db: int = 0
    service: str = ""
    socket_timeout: float = DEFAULT_TIMEOUT_MS / 1000
    socket_connect_timeout: float = DEFAULT_TIMEOUT_MS / 1000
    max_connections: int | None = None
    fallback: bool | None = None  # None: not given


def _fail(shown: str, problem: str) -> ValueError:
    return ValueError(f"state URI {shown!r}: {problem}")


def _number(
    shown: str, name: str, options: dict[str, str], convert: Callable[[str], float], kind: str
) -> float:
    raw = options[name]
    try:
        value = convert(raw)
    except ValueError:
        value = 0
    if not value > 0 or value != value or value == float("inf"):  # noqa: PLR0124 (NaN)
        raise _fail(shown, f"{name} must be {kind}, got {raw!r}")
    return value


def _hosts(shown: str, netloc: str, scheme: str) -> tuple[tuple[str, int], ...]:
    """``host[:port][,host:port...]`` (``[v6]:port`` too), default ports filled in."""
    found = []
    for item in netloc.split(","):
        match = re.fullmatch(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d*))?", item)
        port = match["port"] if match else None
        if match is None or (port is not None and not 0 < int(port or 0) < 65536):
            raise _fail(shown, f"{item!r} is not host or host:port")
        host = unquote(match["v6"] or match["host"])
        found.append((host, int(port) if port else _DEFAULT_PORTS[scheme]))
    return tuple(found)


def _db(shown: str, text: str) -> int:
    if not text:
        return 0
    if not text.isdigit():
        raise _fail(shown, f"the database must be a number (redis://host:port/0), got {text!r}")
    return int(text)


def _parse(uri: str, namespace: str) -> _Spec:
    if not isinstance(uri, str):
        msg = f"a state URI must be a str, got {type(uri).__name__}"
        raise TypeError(msg)
    shown = masked_uri(uri)
    if _garbled(uri):
        raise _fail(shown, "percent-encode any / ? # @ in the user name or password")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise _fail(shown, f"unsupported scheme {parts.scheme + '://'!r}; supported: {_SUPPORTED}")
    options = _options(shown, scheme, parts.query)
    spec: dict[str, Any] = {
        "scheme": scheme,
        "shown": shown,
        "namespace": options.get("namespace", namespace),
        "assignment_ttl": None if scheme == "memory" else DEFAULT_ASSIGNMENT_TTL,
    }
    try:
        checked_namespace(spec["namespace"])
    except ValueError as error:
        raise _fail(shown, str(error)) from None
    if "assignment_ttl" in options:
        seconds = "a positive number of seconds"
        spec["assignment_ttl"] = _number(shown, "assignment_ttl", options, float, seconds)
    if scheme == "memory":
        if parts.netloc or parts.path not in ("", "/"):
            raise _fail(
                shown, "memory:// takes no host or path, only options (memory://?max_size=N)"
            )
        if "max_size" in options:
            spec["max_size"] = int(_number(shown, "max_size", options, int, "a positive integer"))
        return _Spec(**spec)
    spec.update(_connection_options(shown, options))
    spec.update(_where(shown, scheme, parts.netloc, parts.path))
    spec["url"] = f"{scheme}://{parts.netloc}/{spec['db']}"
    return _Spec(**spec)


def _connection_options(shown: str, options: dict[str, str]) -> dict[str, Any]:
    """The options only Redis URIs take: timeouts, pool size, fallback."""
    found: dict[str, Any] = {}
    for name in ("socket_timeout_ms", "socket_connect_timeout_ms"):
        if name in options:
            ms = _number(shown, name, options, float, "a positive number of milliseconds")
            found[name.removesuffix("_ms")] = ms / 1000
    if "max_connections" in options:
        size = _number(shown, "max_connections", options, int, "a positive integer")
        found["max_connections"] = int(size)
    if "fallback" in options:
        if options["fallback"] not in ("on", "off"):
            raise _fail(shown, f"fallback must be 'on' or 'off', got {options['fallback']!r}")
        found["fallback"] = options["fallback"] == "on"
    return found


def _options(shown: str, scheme: str, query: str) -> dict[str, str]:
    accepted = _MEMORY_OPTIONS if scheme == "memory" else _REDIS_OPTIONS
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in accepted:
            also = " (redis:// schemes only)" if name in _REDIS_OPTIONS else ""
            accepts = ", ".join(accepted)
            raise _fail(shown, f"unknown option {name!r}{also}; {scheme}:// accepts {accepts}")
        if name in options:
            raise _fail(shown, f"option {name!r} is given twice")
        options[name] = value
    return options


def _where(shown: str, scheme: str, netloc: str, path: str) -> dict[str, Any]:
    """Credentials, hosts, database and service of a Redis URI."""
    found: dict[str, Any] = {}
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        found["username"] = unquote(user) or None
        found["password"] = unquote(password) if colon else None
    if not hosts:
        raise _fail(shown, "no host (redis://host:port/db)")
    found["hosts"] = _hosts(shown, hosts, scheme)
    steps = path.strip("/").split("/") if path.strip("/") else []
    if scheme == "redis+sentinel":
        if not steps or len(steps) > 2 or not steps[0]:
            raise _fail(shown, "the path is /service_name or /service_name/db")
        found["service"] = unquote(steps[0])
        found["db"] = _db(shown, steps[1] if len(steps) > 1 else "")
        return found
    if len(steps) > 1:
        raise _fail(shown, "the path is the database number alone (/0)")
    found["db"] = _db(shown, steps[0] if steps else "")
    if scheme == "redis+cluster" and found["db"]:
        raise _fail(shown, "a Redis Cluster has database 0 only")
    if scheme != "redis+cluster" and len(found["hosts"]) > 1:
        raise _fail(shown, f"{scheme}:// takes one host (redis+cluster:// takes several)")
    return found


def _require_redis() -> None:
    try:
        import redis  # noqa: F401, PLC0415 (redis-py is optional: checked when needed)
    except ImportError as exc:
        msg = "a redis state URI needs redis-py: pip install 'linq-router[redis]'"
        raise ImportError(msg) from exc


class _Connect:
    """Makes the redis-py client a ``_Spec`` describes; its repr is the masked URI."""

    def __init__(self, spec: _Spec) -> None:
        self.spec = spec

    def __repr__(self) -> str:
        return self.spec.shown

    def _common(self) -> dict[str, Any]:
        spec = self.spec
        settings: dict[str, Any] = {
            "username": spec.username,
            "password": spec.password,
            "socket_timeout": spec.socket_timeout,
            "socket_connect_timeout": spec.socket_connect_timeout,
        }
        if spec.max_connections is not None:
            settings["max_connections"] = spec.max_connections
        return settings

    @staticmethod
    def _without_credentials(settings: dict[str, Any]) -> dict[str, Any]:
        """For ``from_url``, which reads them from the URL itself (percent-decoded)."""
        return {k: v for k, v in settings.items() if k not in ("username", "password")}


class _SyncConnect(_Connect):
    def __call__(self) -> Redis | RedisCluster:
        from redis import Redis  # noqa: PLC0415 (optional)
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.cluster import ClusterNode, RedisCluster  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415
        from redis.sentinel import Sentinel  # noqa: PLC0415

        spec, settings = self.spec, self._common()
        # One immediate retry replaces a connection the server dropped (a restart, an
        # idle timeout) without failing the call; redis-py's default (10, backing off
        # up to a second) would hold a pick for seconds while Redis is down.
        settings["retry"] = Retry(NoBackoff(), 1)
        if spec.scheme == "redis+cluster":
            nodes = [ClusterNode(host, port) for host, port in spec.hosts]  # type: ignore[no-untyped-call]
            return RedisCluster(startup_nodes=nodes, **settings)
        if spec.scheme == "redis+sentinel":
            pool = settings.pop("max_connections", None)
            sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                list(spec.hosts),
                sentinel_kwargs={k: v for k, v in settings.items() if k != "retry"},
                **settings,
            )
            extra = {} if pool is None else {"max_connections": pool}
            master: Redis = sentinel.master_for(spec.service, db=spec.db, **extra)  # type: ignore[no-untyped-call]
            return master
        return Redis.from_url(spec.url, **self._without_credentials(settings))


class _AsyncConnect(_Connect):
    def __call__(self) -> AsyncRedis | AsyncRedisCluster:
        from redis.asyncio import BlockingConnectionPool, Redis  # noqa: PLC0415 (optional)
        from redis.asyncio.cluster import ClusterNode, RedisCluster  # noqa: PLC0415
        from redis.asyncio.retry import Retry  # noqa: PLC0415
        from redis.asyncio.sentinel import Sentinel  # noqa: PLC0415
        from redis.backoff import NoBackoff  # noqa: PLC0415

        spec, settings = self.spec, self._common()
        settings["retry"] = Retry(NoBackoff(), 1)  # as in _SyncConnect
        if spec.scheme == "redis+cluster":
            nodes = [ClusterNode(host, port) for host, port in spec.hosts]
            return RedisCluster(startup_nodes=nodes, **settings)
        if spec.scheme == "redis+sentinel":
            pool = settings.pop("max_connections", None)
            sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                list(spec.hosts),
                sentinel_kwargs={k: v for k, v in settings.items() if k != "retry"},
                **settings,
            )
            extra = {} if pool is None else {"max_connections": pool}
            master: AsyncRedis = sentinel.master_for(spec.service, db=spec.db, **extra)
            return master
        # Concurrent tasks each hold a connection while they await: beyond the pool's
        # size (redis-py's own pool raises MaxConnectionsError) a task waits for one.
        settings = self._without_credentials(settings)
        pool = BlockingConnectionPool.from_url(
            spec.url,
            max_connections=settings.pop("max_connections", _ASYNC_POOL),
            timeout=_ASYNC_POOL_WAIT,
            **settings,
        )
        client = Redis(connection_pool=pool)
        client.auto_close_connection_pool = True  # the pool is ours: aclose() closes it
        return client


def from_uri(uri: str, *, namespace: str = "linq_router") -> StateBackend:
    """A state backend from a URI: in memory, or on Redis shared by a fleet.

    ``memory://`` (options ``max_size``, ``assignment_ttl``; a ``namespace`` is
    accepted and changes nothing, the memory being per process) is a ``MemoryState``.
    The Redis schemes make a ``RedisState`` on redis-py's own client for each:

    * ``redis://[user:password@]host[:6379][/db]`` and ``rediss://`` (TLS):
      ``redis.Redis.from_url``;
    * ``redis+sentinel://[user:password@]host[:26379][,host2:port2]/service_name[/db]``:
      ``redis.sentinel.Sentinel(...).master_for(service_name)``, the password used for
      the sentinels and the master alike;
    * ``redis+cluster://[user:password@]host[:6379][,host2:port2]``:
      ``redis.cluster.RedisCluster`` with those startup nodes.

    Nothing connects until the first call. Options in the query string:
    ``namespace`` (wins over the argument: fleets sharing one Redis keep apart by it),
    ``socket_timeout_ms`` and ``socket_connect_timeout_ms`` (default 50 each: a pick
    must never hang on Redis), ``max_connections`` (the pool's size, default
    redis-py's), ``assignment_ttl`` (seconds a line is kept after its last use,
    default 30 days) and ``fallback`` (``on``, the default, wraps the state in a
    ``ResilientState`` so picks go on in memory while Redis is unreachable; ``off``
    returns the bare ``RedisState``).

    An unknown scheme or option or a bad value is a ``ValueError`` naming it and what
    is accepted, with the URI's password masked; a Redis URI without redis-py
    installed is an ``ImportError`` saying ``pip install 'linq-router[redis]'``.

    >>> from_uri("memory://?max_size=50000")
    MemoryState(max_size=50000, size=0)
    >>> from_uri("redis://:secret@cache.internal:6379/2?namespace=eu&fallback=off")
    RedisState(redis://:***@cache.internal:6379/2, namespace='eu', assignment_ttl=2592000)

    .. versionadded:: 0.1
    .. versionchanged:: 0.4 the Redis schemes, ``namespace`` and the options;
       ``state_from_uri`` is the old name of this function.
    """
    spec = _parse(uri, namespace)
    if spec.scheme == "memory":
        return MemoryState(spec.max_size, assignment_ttl=spec.assignment_ttl)
    _require_redis()
    state = RedisState(
        _SyncConnect(spec), namespace=spec.namespace, assignment_ttl=spec.assignment_ttl
    )
    return state if spec.fallback is False else ResilientState(state)


def from_uri_async(
    uri: str, *, namespace: str = "linq_router"
) -> AsyncResilientState | AsyncRedisState | MemoryState:
    """``from_uri`` for asyncio code: a state on redis-py's asyncio clients.

    The same schemes and options as ``from_uri``. A Redis URI gives an
    ``AsyncRedisState`` (``redis.asyncio``) wrapped in an ``AsyncResilientState``, so
    that calls go on in memory while Redis is unreachable; ``?fallback=off`` gives the
    bare ``AsyncRedisState``. Their methods are coroutines. ``memory://`` gives a
    ``MemoryState`` (its methods are plain functions: they never wait, so call them
    without ``await``). ``AsyncRouter(state="redis://...")`` builds its state with this.

    Concurrent tasks each hold a connection while they await one. For ``redis://``
    and ``rediss://`` the pool is therefore a ``redis.asyncio.BlockingConnectionPool``
    of ``max_connections`` (default 100): a task beyond it waits (up to a second) for
    a connection instead of failing.

    .. versionadded:: 0.4
    """
    spec = _parse(uri, namespace)
    if spec.scheme == "memory":
        return MemoryState(spec.max_size, assignment_ttl=spec.assignment_ttl)
    _require_redis()
    state = AsyncRedisState(
        _AsyncConnect(spec), namespace=spec.namespace, assignment_ttl=spec.assignment_ttl
    )
    return state if spec.fallback is False else AsyncResilientState(state)
