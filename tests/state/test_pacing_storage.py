"""Budgets kept where a shared state is: ``pacing_storage`` forms, against limits and Redis.

``limits`` takes ``redis://`` and ``rediss://`` as redis-py's ``from_url`` does,
``redis+sentinel://host:port/service_name`` (the whole path is the service name) and
``redis+cluster://host:port[,host:port]`` (hosts with their ports). A state URI's
``/service_name/db`` becomes ``/service_name`` and ``db=``; budgets must land on the
Sentinel's master, in the state's database, and on the Cluster's nodes.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from linq_router import (
    AsyncLinqClient,
    AsyncRegistry,
    AsyncRouter,
    LinqClient,
    Pacing,
    Registry,
    Router,
)
from linq_router.pacing._shared_storage import pacing_storage
from linq_router.pacing._storage import storage as _storage
from linq_router.testing import FakeClock, FakeLinqServer, RedisServer

LINES = ["+12025550101", "+12025550102"]
RECIPIENTS = [f"+1415555{i:04d}" for i in range(6)]


def _namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


# -- the URIs ------------------------------------------------------------------------------


def test_a_sentinel_state_gives_limits_its_service_and_the_database_apart() -> None:
    uri = pacing_storage("redis+sentinel://:pw@s1:26380,s2/mymaster/3?namespace=eu&fallback=off")
    assert (
        uri
        == "redis+sentinel://:pw@s1:26380,s2:26379/mymaster?key_prefix=eu%3Apacing&db=3&socket_timeout=0.05&socket_connect_timeout=0.05"
    )
    assert (
        pacing_storage("redis+sentinel://[::1]/mymaster")
        == "redis+sentinel://[::1]:26379/mymaster?key_prefix=linq_router%3Apacing&socket_timeout=0.05&socket_connect_timeout=0.05"
    )
    storage = _storage(uri)  # nothing connects yet
    assert storage.service_name == "mymaster"  # limits alone would make it "mymaster3"
    assert storage.key_prefix == "eu:pacing"
    assert storage.sentinel.connection_kwargs["db"] == 3
    assert storage.use_replicas is False  # budgets are read where they are counted
    assert [(c.connection_pool.connection_kwargs["host"]) for c in storage.sentinel.sentinels] == [
        "s1",
        "s2",
    ]


def test_a_sentinel_storage_takes_the_state_form_and_refuses_what_it_cannot_use() -> None:
    storage = _storage("redis+sentinel://127.0.0.1:1/my%20master/2?use_replicas=true")
    assert storage.service_name == "my master"
    assert storage.sentinel.connection_kwargs["db"] == 2
    assert storage.use_replicas is True
    with pytest.raises(ValueError, match="given twice"):
        _storage("redis+sentinel://127.0.0.1:1/mymaster/2?db=3")
    with pytest.raises(ValueError, match="db must be a database number"):
        _storage("redis+sentinel://127.0.0.1:1/mymaster?db=x")
    with pytest.raises(ValueError, match="use_replicas must be true or false"):
        _storage("redis+sentinel://127.0.0.1:1/mymaster?use_replicas=maybe")
    with pytest.raises(ValueError, match="service_name"):
        _storage("redis+sentinel://127.0.0.1:1")


def test_a_cluster_state_gives_limits_its_hosts_with_ports() -> None:
    uri = pacing_storage("redis+cluster://n1,n2:7001/0?namespace=eu")
    assert (
        uri
        == "redis+cluster://n1:6379,n2:7001?key_prefix=eu%3Apacing&socket_timeout=0.05&socket_connect_timeout=0.05"
    )


def test_rediss_is_redis_over_tls_in_limits_too() -> None:
    uri = pacing_storage("rediss://user:pw@127.0.0.1:1/2?namespace=eu")
    assert (
        uri
        == "rediss://user:pw@127.0.0.1:1/2?key_prefix=eu%3Apacing&socket_timeout=0.05&socket_connect_timeout=0.05"
    )
    storage = _storage(uri)  # nothing connects yet
    pool = storage.storage.connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "pw"
    assert storage.key_prefix == "eu:pacing"


def test_a_refused_storage_never_shows_its_password() -> None:
    with pytest.raises(ValueError, match="unknown storage scheme") as raised:
        _storage("bogus://user:secret@h:1?key_prefix=x")
    assert "secret" not in str(raised.value)


# -- Sentinel, for real ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentinel() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A master and a Sentinel watching it as service "mymaster"."""
    with RedisServer() as master:
        config = f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
        with RedisServer(config=config, args=["--sentinel"]) as watcher:
            yield master, watcher


def _pacing_keys(port: int, db: int, namespace: str) -> list[bytes]:
    client = redis.Redis(port=port, db=db, socket_timeout=5)
    try:
        return list(client.scan_iter(match=f"{namespace}:pacing:*"))
    finally:
        client.close()


def test_budgets_on_a_sentinel_are_counted_on_its_master(
    sentinel: tuple[RedisServer, RedisServer],
) -> None:
    master, watcher = sentinel
    namespace = _namespace()
    state = f"redis+sentinel://127.0.0.1:{watcher.port}/mymaster/3?namespace={namespace}"
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as c:
        router = Router(Registry(c, ttl=3600), state=state, pacing=Pacing(per_line="5/day"))
        for to in RECIPIENTS[:3]:
            router.report(router.pick(to), to=to)
        used = sum(b.used for b in router.budgets() if b.kind == "per_line")
        router.close()
        # A router of its own on the same state reads the same budgets.
        other = Router(Registry(c, ttl=3600), state=state, pacing=Pacing(per_line="5/day"))
        assert sum(b.used for b in other.budgets() if b.kind == "per_line") == 3
        other.close()
    assert used == 3
    assert _pacing_keys(master.port, 3, namespace)  # on the master, in the state's database
    assert not _pacing_keys(master.port, 0, namespace)


def test_async_budgets_on_a_sentinel_are_counted_on_its_master(
    sentinel: tuple[RedisServer, RedisServer],
) -> None:
    master, watcher = sentinel
    namespace = _namespace()
    state = f"redis+sentinel://127.0.0.1:{watcher.port}/mymaster/4?namespace={namespace}"

    async def main(base_url: str, api_key: str) -> int:
        async with AsyncLinqClient(api_key, base_url=base_url) as client:
            router = AsyncRouter(
                AsyncRegistry(client, ttl=3600),
                state=state,
                pacing=Pacing(per_line="5/day"),
                clock=FakeClock(),
            )
            for to in RECIPIENTS[:2]:
                await router.report(await router.pick(to), to=to)
            used = sum(b.used for b in await router.budgets() if b.kind == "per_line")
            router.close()
            return used

    with FakeLinqServer(LINES) as fake:
        assert asyncio.run(main(fake.base_url, fake.api_key)) == 2
    assert _pacing_keys(master.port, 4, namespace)


# -- Cluster, for real -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisServer]:
    """A one-node Redis Cluster owning all 16384 slots (ready within 10 s)."""
    args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    with RedisServer(args=[*args, "--cluster-port", str(_free_port())]) as node:
        client = redis.Redis(port=node.port)
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while client.cluster("info")["cluster_state"] != "ok":
            assert time.monotonic() < deadline, "the cluster did not become ready"
            time.sleep(0.05)
        client.close()
        yield node


@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window-counter"])
def test_budgets_on_a_cluster_are_counted_on_its_nodes(cluster: RedisServer, strategy: str) -> None:
    namespace = _namespace()
    state = f"redis+cluster://127.0.0.1:{cluster.port}?namespace={namespace}"
    pacing = Pacing(per_line="5/day", strategy=strategy)
    with FakeLinqServer(LINES) as fake, LinqClient(fake.api_key, base_url=fake.base_url) as c:
        router = Router(Registry(c, ttl=3600), state=state, pacing=pacing, clock=FakeClock())
        for to in RECIPIENTS[:4]:
            router.report(router.pick(to), to=to)
        used = sum(b.used for b in router.budgets() if b.kind == "per_line")
        router.close()
    assert used == 4
    assert _pacing_keys(cluster.port, 0, namespace)
