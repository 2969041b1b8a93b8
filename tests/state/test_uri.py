"""from_uri: every scheme, every option, and errors that never show a password."""

from __future__ import annotations

import asyncio
import sys

import pytest
import redis
import redis.asyncio
from redis.sentinel import SentinelConnectionPool

from linq_router.state import (
    AsyncRedisState,
    AsyncResilientState,
    MemoryState,
    RedisState,
    ResilientState,
    from_uri,
    from_uri_async,
    state_from_uri,
)
from linq_router.state._uri import _parse, masked_uri


def bare(uri: str, **options: str) -> RedisState:
    state = from_uri(uri, **options)
    assert isinstance(state, RedisState)
    return state


def settings(state: RedisState) -> dict[str, object]:
    """The connection settings of the client the state makes (nothing connects)."""
    client = state.client
    assert isinstance(client, redis.Redis)
    return dict(client.connection_pool.connection_kwargs)


def test_memory() -> None:
    """memory:// is a MemoryState; max_size and assignment_ttl are its options."""
    assert isinstance(from_uri("memory://"), MemoryState)
    state = from_uri("memory://?max_size=7&assignment_ttl=1.5&namespace=ignored")
    assert isinstance(state, MemoryState)
    assert (state.max_size, state.assignment_ttl) == (7, 1.5)
    assert state_from_uri is from_uri


def test_redis_defaults() -> None:
    """redis://host: db 0, 50 ms timeouts, a 30-day TTL, wrapped in a ResilientState."""
    state = from_uri("redis://cache.internal")
    assert isinstance(state, ResilientState)
    primary = state.primary
    assert isinstance(primary, RedisState)
    assert (primary.namespace, primary.assignment_ttl) == ("linq_router", 30 * 24 * 3600)
    got = settings(primary)
    assert (got["host"], got.get("port", 6379), got["db"]) == ("cache.internal", 6379, 0)
    assert (got["socket_timeout"], got["socket_connect_timeout"]) == (0.05, 0.05)
    assert got["retry"].get_retries() == 1  # type: ignore[attr-defined]


def test_redis_options() -> None:
    """Credentials, db, timeouts in ms, pool size, TTL and namespace all reach the client."""
    uri = (
        "redis://app:p%40ss@10.0.0.5:6380/4?socket_timeout_ms=20&socket_connect_timeout_ms=250"
        "&max_connections=8&assignment_ttl=3600&namespace=eu&fallback=off"
    )
    state = bare(uri, namespace="overridden")
    got = settings(state)
    assert (got["host"], got["port"], got["db"]) == ("10.0.0.5", 6380, 4)
    assert (got["username"], got["password"]) == ("app", "p@ss")
    assert (got["socket_timeout"], got["socket_connect_timeout"]) == (0.02, 0.25)
    assert state.client.connection_pool.max_connections == 8  # type: ignore[union-attr]
    assert (state.namespace, state.assignment_ttl) == ("eu", 3600)
    assert (
        repr(state)
        == "RedisState(redis://app:***@10.0.0.5:6380/4, namespace='eu', assignment_ttl=3600)"
    )


def test_the_argument_names_the_namespace_unless_the_query_does() -> None:
    """from_uri(namespace=...) applies when the URI has no namespace option."""
    assert bare("redis://h?fallback=off", namespace="fleet-a").namespace == "fleet-a"
    assert bare("redis://h?fallback=off&namespace=b", namespace="fleet-a").namespace == "b"


def test_rediss_is_tls() -> None:
    """rediss:// makes an SSL connection."""
    client = bare("rediss://h:6390?fallback=off").client
    assert isinstance(client, redis.Redis)
    assert client.connection_pool.connection_class is redis.SSLConnection


def test_sentinel() -> None:
    """redis+sentinel://h1,h2:port/service/db: a Sentinel's master_for(service), db and auth."""
    state = bare("redis+sentinel://:pw@s1,s2:26380/mymaster/2?fallback=off&max_connections=3")
    client = state.client
    assert isinstance(client, redis.Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.max_connections == 3
    sentinels = pool.sentinel_manager.sentinels
    hosts = [s.connection_pool.connection_kwargs["host"] for s in sentinels]
    ports = [s.connection_pool.connection_kwargs["port"] for s in sentinels]
    assert (hosts, ports) == (["s1", "s2"], [26379, 26380])
    assert sentinels[0].connection_pool.connection_kwargs["password"] == "pw"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "pw"
    assert repr(state).startswith("RedisState(redis+sentinel://:***@s1,s2:26380/mymaster/2,")


def test_cluster_hosts() -> None:
    """redis+cluster://h1:p1,[v6]:p2: the startup nodes (the client connects on first use)."""
    spec = _parse("redis+cluster://u:pw@a:7000,[::1]:7001,b", "ns")
    assert spec.hosts == (("a", 7000), ("::1", 7001), ("b", 6379))
    assert (spec.username, spec.password) == ("u", "pw")
    assert "pw" not in repr(spec)


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("mongodb://u:secret@h", "unsupported scheme 'mongodb://'; supported: memory://, redis://"),
        ("redis://u:secret@h?password=secret", "unknown option 'password'; redis:// accepts"),
        ("redis://u:secret@h?ssl_cert_reqs=none", "unknown option 'ssl_cert_reqs'"),
        ("memory://?socket_timeout_ms=5", r"'socket_timeout_ms' \(redis:// schemes only\)"),
        ("redis://u:secret@h?socket_timeout_ms=abc", "socket_timeout_ms must be a positive number"),
        ("redis://u:secret@h?socket_connect_timeout_ms=0", "socket_connect_timeout_ms must be"),
        ("redis://u:secret@h?max_connections=1.5", "max_connections must be a positive integer"),
        ("redis://u:secret@h?assignment_ttl=-3", "assignment_ttl must be a positive number"),
        ("redis://u:secret@h?assignment_ttl=nan", "assignment_ttl must be"),
        ("redis://u:secret@h?fallback=maybe", "fallback must be 'on' or 'off'"),
        ("redis://u:secret@h?namespace=a{b}", "namespace must be non-empty text without"),
        ("redis://u:secret@h?namespace=", "namespace must be"),
        ("redis://u:secret@h?max_connections=1&max_connections=2", "given twice"),
        ("memory://?max_size=0", "max_size must be a positive integer"),
        ("memory://host", "memory:// takes no host or path"),
        ("redis://u:secret@h/x", "the database must be a number"),
        ("redis://u:secret@h/0/1", "the database number alone"),
        ("redis://u:secret@h:99999", "'h:99999' is not host or host:port"),
        ("redis://u:secret@", "no host"),
        ("redis://u:secret@a,b", "takes one host"),
        ("redis+sentinel://u:secret@h", "the path is /service_name or /service_name/db"),
        ("redis+cluster://u:secret@h/1", "database 0 only"),
        ("redis://u:sec/ret@h", "percent-encode"),
        ("redis://u:sec?ret@h", "percent-encode"),
    ],
)
def test_bad_uris_are_refused_without_the_password(uri: str, match: str) -> None:
    """Each mistake is a ValueError naming it and what is accepted; the password is masked."""
    with pytest.raises(ValueError, match=match) as caught:
        from_uri(uri)
    assert "secret" not in str(caught.value)
    assert "sec" not in str(caught.value).replace("seconds", "")
    if "u:" in uri:
        assert "***" in str(caught.value)


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("redis://user:secret@host:6379/0?namespace=x", "redis://user:***@host:6379/0"),
        ("redis://:secret@host", "redis://:***@host"),
        ("redis://token@host", "redis://***@host"),
        ("redis://host/0?namespace=a@b", "redis://host/0"),
        ("redis://u:p%2Fw@host/0?namespace=a@b", "redis://u:***@host/0"),
        ("redis://u:pa/ss@host", "redis://***"),
        ("redis://u:pa?ss@host", "redis://***"),
        ("redis://u:p?a=b@host", "redis://***"),
        ("redis+sentinel://u:pw@s1,s2/m", "redis+sentinel://u:***@s1,s2/m"),
    ],
)
def test_masked_uri(uri: str, shown: str) -> None:
    """Everything that may be a password is masked, even when it is not percent-encoded."""
    assert masked_uri(uri) == shown


def test_without_redis_py_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Redis URI without redis-py: ImportError naming the extra; memory:// still works."""
    for name in [n for n in sys.modules if n == "redis" or n.startswith("redis.")]:
        monkeypatch.setitem(sys.modules, name, None)  # import redis... now fails
    with pytest.raises(ImportError, match=r"pip install 'linq-router\[redis\]'"):
        from_uri("redis://localhost")
    with pytest.raises(ImportError, match=r"linq-router\[redis\]"):
        from_uri_async("redis://localhost?fallback=off")
    with pytest.raises(ValueError, match="unknown option"):
        from_uri("redis://localhost?bogus=1")  # checked before anything is imported
    assert isinstance(from_uri("memory://"), MemoryState)
    assert ResilientState(MemoryState()).errors == (OSError,)


def test_from_uri_async() -> None:
    """from_uri_async: AsyncRedisState on redis.asyncio (in an AsyncResilientState)."""
    wrapped = from_uri_async("redis://:pw@h:6390/1?namespace=a&socket_timeout_ms=10")
    assert isinstance(wrapped, AsyncResilientState)
    state = wrapped.primary
    assert isinstance(state, AsyncRedisState)
    assert state.namespace == "a"
    assert "pw" not in repr(state)

    async def made() -> object:
        return state.client

    client = asyncio.run(made())
    assert isinstance(client, redis.asyncio.Redis)
    got = client.connection_pool.connection_kwargs
    assert (got["host"], got["port"], got["db"], got["socket_timeout"]) == ("h", 6390, 1, 0.01)
    # Tasks beyond the pool's size wait for a connection rather than fail.
    assert isinstance(client.connection_pool, redis.asyncio.BlockingConnectionPool)
    assert client.connection_pool.max_connections == 100
    assert isinstance(from_uri_async("redis+sentinel://s/m?fallback=off"), AsyncRedisState)
    assert isinstance(from_uri_async("redis+cluster://a,b?fallback=off"), AsyncRedisState)
    assert isinstance(from_uri_async("redis+cluster://a,b"), AsyncResilientState)
    assert isinstance(from_uri_async("memory://?max_size=3"), MemoryState)
    assert isinstance(from_uri_async("redis://h?fallback=on"), AsyncResilientState)
    sized = from_uri_async("redis://h?fallback=off&max_connections=7")
    assert isinstance(sized, AsyncRedisState)

    async def pool() -> object:
        return getattr(sized.client, "connection_pool", None)

    assert getattr(asyncio.run(pool()), "max_connections", None) == 7
