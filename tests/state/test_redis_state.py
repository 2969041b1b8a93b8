"""RedisState and AsyncRedisState on a real redis-server: the contract, keys, round trips."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from linq_router import PhoneNumber, Reputation, Snapshot
from linq_router._pick import make_context
from linq_router.policies import as_policy, compile_policy, sticky
from linq_router.state import (
    AsyncRedisState,
    MemoryState,
    RedisState,
    from_uri,
    from_uri_async,
)
from linq_router.testing import (
    FakeClock,
    RedisServer,
    check_async_state,
    check_state,
)

from .conftest import Namespaces

THIRTY_DAYS = 30 * 24 * 3600


def bare(url: str) -> RedisState:
    """from_uri(url) as the RedisState it must be (the fixtures' URLs say fallback=off)."""
    state = from_uri(url)
    assert isinstance(state, RedisState)
    return state


def counted(client: Any) -> list[str]:
    """Record the name of every command ``client`` sends from now on (one a round trip)."""
    sent: list[str] = []
    send = client.execute_command

    def execute(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]).upper())
        return send(*args, **options)

    client.execute_command = execute
    return sent


# -- the contract -----------------------------------------------------------------------


def test_memory_state_passes_the_contract() -> None:
    """MemoryState passes check_state, with and without a TTL (on a fake clock)."""
    check_state(MemoryState, other=MemoryState)
    clock = FakeClock()
    check_state(lambda: MemoryState(assignment_ttl=30.0, clock=clock))


def test_redis_state_passes_the_contract(redis_client: redis.Redis, namespaces: Namespaces) -> None:
    """RedisState passes check_state: 30-day TTL, no TTL, and a 1 s TTL really waited for."""

    def on(ttl: float | None) -> Callable[[], RedisState]:
        return lambda: RedisState(redis_client, namespace=namespaces(), assignment_ttl=ttl)

    check_state(on(THIRTY_DAYS), other=on(THIRTY_DAYS))
    check_state(on(None))
    check_state(on(1.0))


def test_from_uri_states_pass_the_contract(
    redis_server: RedisServer, namespaces: Namespaces
) -> None:
    """What from_uri builds, wrapped in a ResilientState or bare, passes too."""

    def url(fallback: str) -> Callable[[], Any]:
        return lambda: from_uri(
            f"{redis_server.url}/0?namespace={namespaces()}&fallback={fallback}"
        )

    check_state(url("on"), other=url("on"))
    check_state(url("off"))


def test_async_redis_state_passes_the_contract(
    redis_server: RedisServer, namespaces: Namespaces
) -> None:
    """AsyncRedisState passes check_async_state, with its 30-day TTL and with a 1 s one."""

    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_server.url + "/0")

        def on(ttl: float | None) -> Callable[[], AsyncRedisState]:
            return lambda: AsyncRedisState(client, namespace=namespaces(), assignment_ttl=ttl)

        try:
            await check_async_state(on(THIRTY_DAYS), other=on(THIRTY_DAYS))
            await check_async_state(on(1.0))
            url = f"{redis_server.url}/0?fallback=off&namespace="
            await check_async_state(lambda: from_uri_async(url + namespaces()))
        finally:
            await client.aclose()

    asyncio.run(main())


def test_the_twins_have_the_same_methods() -> None:
    """AsyncRedisState has RedisState's public methods, each a coroutine function."""

    def public(cls: type) -> dict[str, object]:
        return {
            name: member
            for name, member in vars(cls).items()
            if not name.startswith("_")
            and (inspect.isfunction(member) or isinstance(member, property))
        }

    sync, twin = public(RedisState), public(AsyncRedisState)
    assert sorted(sync) == sorted(twin)
    assert {"assign", "assign_many", "clear", "close", "ping", "get_assignment"} <= set(sync)
    for name, member in twin.items():
        if inspect.isfunction(member):
            assert inspect.iscoroutinefunction(member), name


# -- keys, TTLs, namespaces --------------------------------------------------------------


def test_key_layout_and_ttl(redis_client: redis.Redis, redis_url: str) -> None:
    """A line is the string {namespace}:sticky:<key>, kept 30 days after its last use."""
    state = bare(redis_url)
    namespace = state.namespace
    state.set_assignment("+14155550100", "line-1")
    key = "{" + namespace + "}:sticky:+14155550100"
    assert redis_client.get(key) == b"line-1"
    assert THIRTY_DAYS * 1000 - 5000 < redis_client.pttl(key) <= THIRTY_DAYS * 1000
    redis_client.pexpire(key, 60_000)
    assert state.get_assignment("+14155550100") == "line-1"  # GETEX: the time starts again
    assert redis_client.pttl(key) > 60_000
    redis_client.pexpire(key, 60_000)
    assert state.assign("+14155550100", "other") == "line-1"
    assert redis_client.pttl(key) > 60_000
    assert state.key("x") == "{" + namespace + "}:sticky:x"


def test_no_ttl_keeps_lines_until_deleted(redis_client: redis.Redis, redis_url: str) -> None:
    """assignment_ttl=None sets no expiry, by set or by assign."""
    state = RedisState(redis_client, namespace=bare(redis_url).namespace, assignment_ttl=None)
    state.set_assignment("a", "line-1")
    state.assign("b", "line-2")
    assert redis_client.pttl(state.key("a")) == -1
    assert redis_client.pttl(state.key("b")) == -1


def test_assign_renews_the_time_to_live(redis_client: redis.Redis, redis_url: str) -> None:
    """assign starts the time again for a known conversation and sets it for a new one;
    with no TTL it sets none and leaves a line without expiry without one."""
    namespace = bare(redis_url).namespace
    state = RedisState(redis_client, namespace=namespace, assignment_ttl=600)
    state.set_assignment("known", "line-1")
    redis_client.pexpire(state.key("known"), 5_000)
    assert state.assign("known", "other") == "line-1"
    assert 595_000 < redis_client.pttl(state.key("known")) <= 600_000
    assert state.assign("new", "line-2") == "line-2"
    assert 595_000 < redis_client.pttl(state.key("new")) <= 600_000
    redis_client.pexpire(state.key("new"), 5_000)
    assert state.assign_many({"new": "x"}) == {"new": "line-2"}  # the batch script too
    assert redis_client.pttl(state.key("new")) > 595_000
    forever = RedisState(redis_client, namespace=namespace, assignment_ttl=None)
    assert forever.assign("new", "x") == "line-2"
    assert redis_client.pttl(state.key("new")) > 595_000  # not made endless either
    assert forever.assign("endless", "line-3") == "line-3"
    assert state.assign("endless", "x") == "line-3"  # a TTL'd state gives it one
    assert redis_client.pttl(state.key("endless")) > 595_000
    redis_client.persist(state.key("endless"))
    assert forever.assign("endless", "x") == "line-3"
    assert redis_client.pttl(state.key("endless")) == -1


def test_racing_assigns_of_a_new_conversation_agree(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Eight clients assigning the same new conversations at once, each its own line: all
    get the one line Redis kept (get-or-set is one script, atomic)."""
    namespace = bare(redis_url).namespace
    states = [
        RedisState(redis.Redis.from_url(redis_server.url + "/0"), namespace=namespace)
        for _ in range(8)
    ]
    start = threading.Barrier(len(states))
    answers: list[list[str]] = [[] for _ in states]

    def worker(at: int) -> None:
        start.wait()
        for key in range(200):
            answers[at].append(states[at].assign(f"new-{key}", f"line-{at}"))

    threads = [threading.Thread(target=worker, args=(at,)) for at in range(len(states))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = [states[0].get_assignment(f"new-{key}") for key in range(200)]
    assert all(answer == kept for answer in answers)
    for state in states:
        state.client.close()


def test_namespaces_do_not_see_each_other(
    redis_server: RedisServer, namespaces: Namespaces
) -> None:
    """Two namespaces on one Redis: separate lines, separate clears; the query's wins."""
    one, two = namespaces(), namespaces()
    first = from_uri(f"{redis_server.url}/0?namespace={one}&fallback=off", namespace="ignored")
    second = from_uri(f"{redis_server.url}/0?fallback=off", namespace=two)
    assert (first.namespace, second.namespace) == (one, two)  # type: ignore[attr-defined]
    first.set_assignment("k", "line-1")
    second.set_assignment("k", "line-2")
    assert (first.get_assignment("k"), second.get_assignment("k")) == ("line-1", "line-2")
    first.clear()
    assert (first.get_assignment("k"), second.get_assignment("k")) == (None, "line-2")


def test_clear_scans_its_own_keys_only(redis_client: redis.Redis, redis_url: str) -> None:
    """clear() SCANs and DELs this namespace's sticky keys; nothing else, never KEYS/FLUSHDB."""
    state = bare(redis_url)
    state.assign_many({f"k{at}": "line-1" for at in range(1500)})
    state.set_assignment("glob*[x]?", "line-2")
    neighbours = {
        "{" + state.namespace + "}:rotation": b"7",  # same namespace, not sticky
        "{" + state.namespace + "x}:sticky:k1": b"8",  # a namespace that extends this one
        "unrelated:sticky:k1": b"9",
    }
    for key, value in neighbours.items():
        redis_client.set(key, value)
    sent = counted(state.client)
    state.clear()
    assert set(sent) == {"SCAN", "DEL"}
    assert sent.count("DEL") == 4  # 1501 keys, 500 a DEL
    assert list(redis_client.scan_iter(match="{" + state.namespace + "}:sticky:*")) == []
    assert {key: redis_client.get(key) for key in neighbours} == neighbours
    redis_client.delete(*neighbours)


def test_namespaces_with_braces_are_refused(redis_client: redis.Redis) -> None:
    """A brace would end the cluster hash tag early: refused, as is an empty namespace."""
    for bad in ("", "a{b", "a}b"):
        with pytest.raises(ValueError, match="namespace"):
            RedisState(redis_client, namespace=bad)
    with pytest.raises(ValueError, match="assignment_ttl"):
        RedisState(redis_client, assignment_ttl=0)
    with pytest.raises(TypeError, match="redis-py client"):
        RedisState("redis://localhost")  # type: ignore[arg-type]


# -- round trips ----------------------------------------------------------------------------


def test_assign_is_one_round_trip(redis_url: str) -> None:
    """Once the script is loaded, assign sends one EVALSHA, found or stored; get one GETEX."""
    state = bare(redis_url)
    state.client.script_flush()
    sent = counted(state.client)
    assert state.assign("k", "line-1") == "line-1"
    assert sent == ["EVALSHA", "SCRIPT LOAD", "EVALSHA"]  # NOSCRIPT: loaded once
    sent.clear()
    assert state.assign("k", "line-2") == "line-1"
    assert state.assign("new", "line-3") == "line-3"
    assert state.get_assignment("k") == "line-1"
    assert sent == ["EVALSHA", "EVALSHA", "GETEX"]
    sent.clear()
    many = state.assign_many({"k": "line-4", **{f"n{at}": "line-4" for at in range(1199)}})
    assert (many["k"], many["n0"], len(many)) == ("line-1", "line-4", 1200)
    # A script of its own (a batch, answering an array), loaded once; 500 keys a call.
    assert sent == ["EVALSHA", "SCRIPT LOAD", "EVALSHA", "EVALSHA", "EVALSHA"]


def test_a_script_flush_costs_one_load_then_one_call_again(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """After SCRIPT FLUSH (a restarted server has no scripts either) each script is loaded
    again on its first NOSCRIPT, and every call after that is one EVALSHA again."""
    state = bare(redis_url)
    assert state.assign("k", "line-1") == "line-1"
    assert state.assign_many({"k": "line-2", "m": "line-2"}) == {"k": "line-1", "m": "line-2"}
    redis_client.script_flush()
    sent = counted(state.client)
    assert state.assign("k", "line-3") == "line-1"
    assert state.assign("new", "line-3") == "line-3"
    assert sent == ["EVALSHA", "SCRIPT LOAD", "EVALSHA", "EVALSHA"]
    sent.clear()
    assert state.assign_many({"k": "x", "n": "line-4"}) == {"k": "line-1", "n": "line-4"}
    assert state.assign_many({"n": "x"}) == {"n": "line-4"}
    assert sent == ["EVALSHA", "SCRIPT LOAD", "EVALSHA", "EVALSHA"]


def test_async_assign_after_a_script_flush(
    redis_server: RedisServer, redis_client: redis.Redis, redis_url: str
) -> None:
    """AsyncRedisState: the same keys and scripts as RedisState, the same NOSCRIPT path."""
    sync = bare(redis_url)
    assert sync.assign("k", "line-1") == "line-1"
    redis_client.script_flush()

    async def main() -> tuple[list[str], list[str]]:
        client = redis.asyncio.Redis.from_url(redis_server.url + "/0")
        twin = AsyncRedisState(client, namespace=sync.namespace)
        sent = counted(client)
        try:
            lines = [
                await twin.assign("k", "line-2"),  # the sync twin's line
                await twin.assign("new", "line-3"),
                *(await twin.assign_many({"new": "x", "more": "line-4"})).values(),
            ]
        finally:
            await client.aclose()
        return lines, sent

    lines, sent = asyncio.run(main())
    assert lines == ["line-1", "line-3", "line-3", "line-4"]
    # assign: NOSCRIPT, loaded, called; then one call. assign_many: its own script, alike.
    reloaded = ["EVALSHA", "SCRIPT LOAD", "EVALSHA"]
    assert sent == [*reloaded, "EVALSHA", *reloaded]
    assert sync.assign("more", "y") == "line-4"  # and the sync twin sees the async one's


def test_timing_of_one_assign(redis_url: str) -> None:
    """A thousand assigns on local Redis cost about what a thousand bare INCRs do."""
    state = bare(redis_url)
    client = state.client
    state.assign("warm", "line-1")
    counter = "{" + state.namespace + "}:counter"

    def per_call(call: Callable[[int], object], n: int = 1000) -> float:
        started = time.perf_counter()
        for at in range(n):
            call(at)
        return (time.perf_counter() - started) / n

    incr = per_call(lambda _: client.incr(counter))
    found = per_call(lambda _: state.assign("warm", "other"))
    stored = per_call(lambda at: state.assign(f"new-{at}", "line-1"))
    # Generous: one round trip each, so within a few times an INCR (~50 us here).
    assert found < 5 * incr + 0.001
    assert stored < 5 * incr + 0.001


# -- clients and credentials ---------------------------------------------------------------


@pytest.fixture(scope="module")
def protected() -> Iterator[RedisServer]:
    """A redis-server that wants the password s3cret-pw."""
    with RedisServer() as server:
        redis.Redis(port=server.port).config_set("requirepass", "s3cret-pw")
        yield server


def test_passwords_work_and_never_show(protected: RedisServer) -> None:
    """The URI's password authenticates; no repr, error or log line shows it."""
    url = f"redis://:s3cret-pw@127.0.0.1:{protected.port}/0?namespace=p&fallback=off"
    state = bare(url)
    assert state.assign("k", "line-1") == "line-1"
    assert "s3cret-pw" not in repr(state)
    assert "s3cret-pw" not in repr(from_uri(url.replace("&fallback=off", "")))
    assert "***" in repr(state)
    wrong = bare(url.replace("s3cret-pw", "wr0ng-pw"))
    with pytest.raises(redis.exceptions.AuthenticationError) as caught:
        wrong.get_assignment("k")
    assert "wr0ng-pw" not in str(caught.value)
    state.clear()
    state.close()


def test_a_client_passed_in_is_described_and_kept_open(redis_client: redis.Redis) -> None:
    """RedisState(client): its repr says where, close() leaves the client to its owner."""
    state = RedisState(redis_client, namespace="kept")
    assert repr(state).startswith("RedisState(127.0.0.1:")
    state.close()
    assert redis_client.ping()


def test_nothing_connects_before_the_first_call() -> None:
    """from_uri never waits on the network: a client is made on first use."""
    state = from_uri("redis://127.0.0.1:1/0?fallback=off")
    assert isinstance(state, RedisState)
    assert state._client is None
    started = time.perf_counter()
    from_uri("redis+cluster://127.0.0.1:1,127.0.0.1:2")
    from_uri("redis+sentinel://127.0.0.1:1/mymaster")
    assert time.perf_counter() - started < 0.5


# -- fork ------------------------------------------------------------------------------------


def run_forked(child: Callable[[], dict[str, Any]], timeout: float = 10.0) -> dict[str, Any]:
    """Fork; the child's report (a JSON object) comes up a pipe; a hung child is killed."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(read_end)
            try:
                report = child()
            except BaseException as exc:  # reported to the parent, which fails the test
                report = {"error": repr(exc)}
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        if not select.select([read_end], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
            return {"hung": True}
        data = os.read(read_end, 65536)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    return json.loads(data or b'{"error": "no report"}')  # type: ignore[no-any-return]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork() on this platform")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("made", ["by from_uri", "passed in"])
def test_a_forked_child_gets_connections_of_its_own(
    redis_server: RedisServer, redis_url: str, made: str
) -> None:
    """After os.fork() the child talks to Redis on new connections; the parent goes on."""
    if made == "by from_uri":
        state = bare(redis_url)
    else:
        client = redis.Redis.from_url(redis_server.url + "/0")
        state = RedisState(client, namespace=bare(redis_url).namespace)
    state.set_assignment("k", "line-1")
    parent_id = state.client.client_id()

    def child() -> dict[str, Any]:
        return {"line": state.assign("k", "other"), "id": state.client.client_id()}

    report = run_forked(child)
    assert report.get("line") == "line-1", report
    assert report["id"] != parent_id
    assert state.client.client_id() == parent_id  # the parent's connection is untouched
    assert state.get_assignment("k") == "line-1"


# -- sticky on shared state ------------------------------------------------------------------


def test_two_workers_share_sticky_assignments(redis_server: RedisServer, redis_url: str) -> None:
    """Two sticky policies on two RedisStates of one namespace: a pin in one moves both."""
    lines = [PhoneNumber(f"id-{at}", f"+1202555{at:04d}", Reputation.HEALTHY) for at in range(5)]
    snapshot = Snapshot(lines)
    selectors = [sticky(state=from_uri(redis_url)), sticky(state=from_uri(redis_url))]
    compiled = [compile_policy(as_policy(s), snapshot) for s in selectors]
    ctx = make_context("+14155550123")
    first = compiled[0].pick(ctx).number.id
    assert compiled[1].pick(ctx).number.id == first
    other = next(line.id for line in lines if line.id != first)
    selectors[0].pin(ctx.key or "", other)
    assert compiled[1].pick(ctx).number.id == other


# -- Sentinel and Cluster, for real --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def sentinel() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A master and a Sentinel watching it as service "mymaster"."""
    with RedisServer() as master:
        config = f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
        with RedisServer(config=config, args=["--sentinel"]) as watcher:
            yield master, watcher


def test_redis_sentinel_finds_the_master(sentinel: tuple[RedisServer, RedisServer]) -> None:
    """redis+sentinel://host:port/service/db asks the Sentinel for the master, then uses it."""
    master, watcher = sentinel
    url = f"redis+sentinel://127.0.0.1:{watcher.port}/mymaster/3?namespace=s&fallback=off"
    state = bare(url)
    check_state(lambda: state)
    state.assign("k", "line-1")
    assert redis.Redis(port=master.port, db=3).get("{s}:sticky:k") == b"line-1"
    assert "sentinel" in repr(state)
    state.clear()


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


def test_redis_cluster_keeps_a_namespace_on_one_slot(
    cluster: RedisServer, namespaces: Namespaces
) -> None:
    """redis+cluster:// passes the contract; every key of a namespace hashes to one slot."""
    url = f"redis+cluster://127.0.0.1:{cluster.port}?fallback=off&namespace="
    check_state(lambda: from_uri(url + namespaces()), other=lambda: from_uri(url + namespaces()))
    state = bare(url + "eu")
    slots = {state.client.keyslot(state.key(k)) for k in ("a", "+14155550100", "日本", "z" * 99)}
    assert len(slots) == 1
    assert state.assign_many({f"k{at}": "line-1" for at in range(600)})["k1"] == "line-1"
    state.clear()


def test_missing_redis_server_fails_saying_how_to_install() -> None:
    """Without redis-server, RedisServer raises (tests fail, never skip) naming setup.sh."""
    with (
        pytest.raises(FileNotFoundError, match=r"scripts/setup\.sh --redis"),
        RedisServer(executable="no-such-redis-server"),
    ):
        pass


def test_redis_server_restarts_on_its_port() -> None:
    """kill() ends it at once; start() brings it back, empty, where clients find it."""
    with RedisServer() as server:
        client = redis.Redis(port=server.port, socket_timeout=2, retry=Retry(NoBackoff(), 0))
        client.set("k", "v")
        server.kill()
        assert not server.running
        with pytest.raises(redis.exceptions.ConnectionError):
            client.get("k")
        server.start()
        assert server.running
        assert client.get("k") is None
        client.close()
    assert not server.running
    assert repr(server) == f"RedisServer(port={server.port}, stopped)"
