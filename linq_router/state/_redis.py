"""``RedisState`` and ``AsyncRedisState``: assignments shared by a fleet, on redis-py.

Key layout, for namespace ``ns`` and conversation key ``k``::

    {ns}:sticky:k     a string: the line id, with a time to live (PX), renewed on use

The braces make ``ns`` the Redis Cluster hash tag, so every key of a namespace lands
on one slot: ``assign`` may then take many keys in one script call (the write-back
after an outage), and ``clear`` finds them all by one ``SCAN MATCH {ns}:sticky:*``
(never ``KEYS``, never ``FLUSHDB``: other namespaces, and other programs' keys in the
same database, are left alone).

The twins differ only in awaiting: key names, TTL arguments, decoding and the repr
are ``_RedisCore``'s, which does no I/O. redis-py itself is imported by whoever builds
the client (``from_uri``), never here, so ``linq_router.state`` imports without it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from linq_router._fork import renew_after_fork

from ._checks import checked_namespace, checked_ttl
from ._redis_board import RedisBoard
from ._redis_wire import glob_escaped as _glob_escaped
from ._redis_wire import lua as _lua
from ._redis_wire import text as _text

if TYPE_CHECKING:
    from redis import Redis, RedisCluster
    from redis.asyncio import Redis as AsyncRedis
    from redis.asyncio import RedisCluster as AsyncRedisCluster
    from redis.commands.core import AsyncScript, Script

__all__ = ["DEFAULT_ASSIGNMENT_TTL", "AsyncRedisState", "RedisState"]

DEFAULT_ASSIGNMENT_TTL = 30 * 24 * 3600.0
"""Seconds a conversation's line is kept after its last use: 30 days."""

_BATCH = 500  # keys a script call or a DEL takes at once: well under a millisecond of Redis

_Client = TypeVar("_Client")


def _sha(script: str) -> str:
    """The SHA-1 that EVALSHA names ``script`` by."""
    return hashlib.sha1(script.encode("utf-8"), usedforsecurity=False).hexdigest()


# The assign scripts are called by EVALSHA with their SHA-1 known here: one
# execute_command, without a redis-py Script object (whose __call__ costs a pick more
# Python than the command's own). A pick's assign takes one key and answers a string;
# assign_many (the write-back) a batch of keys, and an array.
ASSIGN_LUA = _lua("assign.lua")
ASSIGN_SHA = _sha(ASSIGN_LUA)
ASSIGN_MANY_LUA = _lua("assign_many.lua")
ASSIGN_MANY_SHA = _sha(ASSIGN_MANY_LUA)
ROTATE_LUA = _lua("rotate.lua")
# An unused rotation's counter is kept a day: schedules change with the pool, and a
# counter nobody steps any more (the group changed) need not outlive that.
_ROTATION_TTL_MS = str(24 * 3600 * 1000)


def _no_script() -> type[Exception]:
    """redis-py's ``NoScriptError`` (imported when an error is matched, not at import)."""
    from redis.exceptions import NoScriptError  # noqa: PLC0415 (redis-py is optional)

    return NoScriptError


def describe_client(client: object) -> str:
    """Where a redis-py client connects, without its credentials (for reprs)."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        service = getattr(pool, "service_name", None)
        if service:
            return f"sentinel service {service!r}"
        kwargs = getattr(pool, "connection_kwargs", {})
        if "path" in kwargs:
            return f"unix:{kwargs['path']}"
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
    try:
        node = client.get_default_node()  # type: ignore[attr-defined]
    except Exception:  # a repr must not fail
        node = None
    if node is not None:
        return f"cluster via {node.host}:{node.port}"
    return type(client).__name__


class _RedisCore(Generic[_Client]):
    """What the twins share: the client (or how to make it), keys, TTL, repr. No I/O."""

    def __init__(
        self,
        client: _Client | Callable[[], _Client],
        *,
        namespace: str = "linq_router",
        assignment_ttl: float | None = DEFAULT_ASSIGNMENT_TTL,
    ) -> None:
        self.namespace = checked_namespace(namespace)
        self.assignment_ttl = checked_ttl(assignment_ttl)
        # A client has execute_command; anything else callable is a way to make one.
        if hasattr(client, "execute_command"):
            self._connect: Callable[[], _Client] | None = None
            self._client: _Client | None = client  # type: ignore[assignment]
            self._where = describe_client(client)
        elif callable(client):
            self._connect = client
            self._client = None
            self._where = repr(client)
        else:
            msg = f"client must be a redis-py client or a function making one, got {client!r}"
            raise TypeError(msg)
        self._prefix = "{" + self.namespace + "}:sticky:"
        self._turns = "{" + self.namespace + "}:rotation:"
        ttl = self.assignment_ttl
        self._ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))  # "0": no expiry
        self._ttl_arg = str(self._ttl_ms)
        self._lock = threading.Lock()
        renew_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # redis-py's pools notice a new pid and reconnect, but under a lock a parent
        # thread may have held at the fork. A client this object made is made afresh.
        self._lock = threading.Lock()
        if self._connect is not None:
            self._client = None
            self._forget_client()

    def _forget_client(self) -> None:
        """Drop what belongs to the client (the registered script)."""

    def __repr__(self) -> str:
        ttl = self.assignment_ttl
        shown = int(ttl) if ttl is not None and ttl == int(ttl) else ttl
        return (
            f"{type(self).__name__}({self._where}, namespace={self.namespace!r}, "
            f"assignment_ttl={shown})"
        )

    def key(self, key: str) -> str:
        """The Redis key that holds conversation ``key``'s line."""
        return self._prefix + key

    @property
    def pattern(self) -> str:
        """The ``SCAN MATCH`` pattern of this namespace's assignments."""
        return _glob_escaped(self._prefix) + "*"

    def _assign_args(self, pairs: list[tuple[str, str]]) -> list[str | int]:
        """What follows the SHA in ``EVALSHA`` of assign_many: numkeys, keys, ARGV."""
        keys = [self._prefix + key for key, _ in pairs]
        return [len(keys), *keys, *(line for _, line in pairs), self._ttl_arg]

    @staticmethod
    def _answer(key: str, reply: object) -> str:
        """The line in the assign script's reply for ``key``."""
        line = _text(reply)
        if line is None:  # the script answers a line
            msg = f"the assign script answered no line for {key!r}"
            raise TypeError(msg)
        return line

    @staticmethod
    def _answers(pairs: list[tuple[str, str]], reply: object) -> dict[str, str]:
        if not isinstance(reply, list) or len(reply) != len(pairs):
            msg = f"the assign script answered {reply!r} for {len(pairs)} keys"
            raise TypeError(msg)
        found: dict[str, str] = {}
        for (key, _), line in zip(pairs, reply, strict=True):
            text = _text(line)
            if text is None:  # the script answers a line for every key
                msg = f"the assign script answered no line for {key!r}"
                raise TypeError(msg)
            found[key] = text
        return found


class RedisState(RedisBoard, _RedisCore["Redis | RedisCluster"]):
    """Sticky assignments in Redis, shared by every process that names the same namespace.

    ``client`` is a redis-py client (``redis.Redis``, ``redis.RedisCluster``, or a
    Sentinel's ``master_for(...)``) or a function that makes one: it is then called on
    first use, so building the state never waits on the network, and again in a child
    made by ``os.fork()``, which so gets connections of its own (``from_uri`` passes
    one). A client you pass stays yours: ``close`` leaves it open.

    Each conversation's line is kept ``assignment_ttl`` seconds (default 30 days)
    after it was last used: ``get_assignment`` (``GETEX``), ``set_assignment`` and
    ``assign`` all start the time again; ``None`` keeps lines until deleted. Keys are
    ``{namespace}:sticky:<conversation>``. The repr shows where the client connects,
    never a password.

    Errors are redis-py's (``redis.exceptions.RedisError``, ``OSError``): wrap the
    state in ``ResilientState`` (as ``from_uri`` does) for picks to go on without Redis.

    It is also a notice board (``post``, ``notes``, ``subscribe``...: see
    ``linq_router.state._board``), where routers share ejections, failure streaks and
    slow-start entries, and webhook receivers their event ids.

    .. versionadded:: 0.4
    """

    _rotate: Script | None = None
    shares_notices = True
    """Its notices reach every process on the same Redis and namespace."""

    def __init__(
        self,
        client: Redis | RedisCluster | Callable[[], Redis | RedisCluster],
        *,
        namespace: str = "linq_router",
        assignment_ttl: float | None = DEFAULT_ASSIGNMENT_TTL,
    ) -> None:
        super().__init__(client, namespace=namespace, assignment_ttl=assignment_ttl)
        self._board_init()

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._renew_board_after_fork()

    def _forget_client(self) -> None:
        self._rotate = None

    @property
    def client(self) -> Redis | RedisCluster:
        """The redis-py client (made now if it is made on first use)."""
        return self._redis()

    def _redis(self) -> Redis | RedisCluster:
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    assert self._connect is not None  # only a made client is dropped
                    client = self._client = self._connect()
        return client

    def _evalsha(self, lua: str, sha: str, *args: str | int) -> Any:
        """``EVALSHA sha *args``: one round trip, or two more after a NOSCRIPT.

        A server that does not know the script (new, restarted, ``SCRIPT FLUSH``) answers
        NOSCRIPT: it is loaded and the call made again, and later calls are one again.
        """
        client = self._redis()
        try:
            return client.execute_command("EVALSHA", sha, *args)  # type: ignore[no-untyped-call]
        except _no_script():  # evaluated only once the call has raised
            client.script_load(lua)
            return client.execute_command("EVALSHA", sha, *args)  # type: ignore[no-untyped-call]

    def get_assignment(self, key: str) -> str | None:
        """The line id remembered for ``key``, or ``None`` (renewing its time to live)."""
        client = self._redis()
        name = self._prefix + key
        return _text(client.getex(name, px=self._ttl_ms) if self._ttl_ms else client.get(name))

    def set_assignment(self, key: str, line_id: str) -> None:
        """Remember ``line_id`` for ``key``, replacing any previous line."""
        self._redis().set(self._prefix + key, line_id, px=self._ttl_ms or None)

    def assign(self, key: str, candidate: str) -> str:
        """The line remembered for ``key``; if none, ``candidate``, now remembered.

        One round trip (``EVALSHA`` of a Lua script), so two processes assigning a new
        conversation at once agree on one line. The time to live starts again either way.
        """
        reply = self._evalsha(
            ASSIGN_LUA, ASSIGN_SHA, 1, self._prefix + key, candidate, self._ttl_arg
        )
        return self._answer(key, reply)

    def assign_many(self, candidates: Mapping[str, str]) -> dict[str, str]:
        """``assign`` for each key of ``candidates``: the lines remembered afterwards.

        One script call per 500 keys.
        """
        pairs = list(candidates.items())
        found: dict[str, str] = {}
        for start in range(0, len(pairs), _BATCH):
            batch = pairs[start : start + _BATCH]
            reply = self._evalsha(ASSIGN_MANY_LUA, ASSIGN_MANY_SHA, *self._assign_args(batch))
            found.update(self._answers(batch, reply))
        return found

    def delete_assignment(self, key: str) -> bool:
        """Forget ``key``; True if something was remembered."""
        return bool(self._redis().delete(self._prefix + key))

    def rotate(self, schedule: str) -> int:
        """One turn of the rotation ``schedule``, shared by the fleet: the counter after it.

        One round trip (a Lua script: ``INCR`` and a day's time to live). What
        ``round-robin`` and ``reputation-weighted`` call per pick under
        ``Router(state=...)``.

        .. versionadded:: 0.4
        """
        script = self._rotate
        if script is None:
            script = self._rotate = self._redis().register_script(ROTATE_LUA)
        return int(script(keys=[self._turns + schedule], args=[_ROTATION_TTL_MS]))

    def clear(self) -> None:
        """Forget every assignment of this namespace (``SCAN`` and ``DEL``, in batches)."""
        client = self._redis()
        batch: list[Any] = []
        for name in client.scan_iter(match=self.pattern, count=1000):
            batch.append(name)
            if len(batch) >= _BATCH:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)

    def ping(self) -> bool:
        """True if Redis answers ``PING``; raises redis-py's error if it cannot be reached."""
        return bool(self._redis().ping())

    def close(self) -> None:
        """Close the client this state made (a client passed in is left open)."""
        self._stop()  # the listening thread, if any
        with self._lock:
            client, made = self._client, self._connect is not None
            if made:
                self._client = None
                self._rotate = None
        if made and client is not None:
            client.close()


class AsyncRedisState(_RedisCore["AsyncRedis | AsyncRedisCluster"]):
    """``RedisState`` on redis-py's asyncio clients: the same methods, as coroutines.

    ``client`` is a ``redis.asyncio.Redis`` (or ``RedisCluster``, or a Sentinel's
    ``master_for(...)``) or a function that makes one on first use. Keys, TTLs and
    the assign scripts are ``RedisState``'s, so sync and async processes share state.

    .. versionadded:: 0.4
    """

    _rotate: AsyncScript | None = None

    def _forget_client(self) -> None:
        self._rotate = None

    @property
    def client(self) -> AsyncRedis | AsyncRedisCluster:
        """The redis-py asyncio client (made now if it is made on first use)."""
        return self._redis()

    def _redis(self) -> AsyncRedis | AsyncRedisCluster:
        client = self._client
        if client is None:
            # No await in between: within one event loop this cannot race.
            assert self._connect is not None
            client = self._client = self._connect()
        return client

    async def _evalsha(self, lua: str, sha: str, *args: str | int) -> Any:
        """``EVALSHA sha *args``; see ``RedisState._evalsha``."""
        client = self._redis()
        try:
            return await client.execute_command("EVALSHA", sha, *args)
        except _no_script():  # evaluated only once the call has raised
            await client.script_load(lua)
            return await client.execute_command("EVALSHA", sha, *args)

    async def get_assignment(self, key: str) -> str | None:
        """The line id remembered for ``key``, or ``None`` (renewing its time to live)."""
        client = self._redis()
        name = self._prefix + key
        if self._ttl_ms:
            return _text(await client.getex(name, px=self._ttl_ms))
        return _text(await client.get(name))

    async def set_assignment(self, key: str, line_id: str) -> None:
        """Remember ``line_id`` for ``key``, replacing any previous line."""
        await self._redis().set(self._prefix + key, line_id, px=self._ttl_ms or None)

    async def assign(self, key: str, candidate: str) -> str:
        """The line remembered for ``key``; if none, ``candidate``, now remembered."""
        reply = await self._evalsha(
            ASSIGN_LUA, ASSIGN_SHA, 1, self._prefix + key, candidate, self._ttl_arg
        )
        return self._answer(key, reply)

    async def assign_many(self, candidates: Mapping[str, str]) -> dict[str, str]:
        """``assign`` for each key of ``candidates``: the lines remembered afterwards."""
        pairs = list(candidates.items())
        found: dict[str, str] = {}
        for start in range(0, len(pairs), _BATCH):
            batch = pairs[start : start + _BATCH]
            reply = await self._evalsha(ASSIGN_MANY_LUA, ASSIGN_MANY_SHA, *self._assign_args(batch))
            found.update(self._answers(batch, reply))
        return found

    async def delete_assignment(self, key: str) -> bool:
        """Forget ``key``; True if something was remembered."""
        return bool(await self._redis().delete(self._prefix + key))

    async def rotate(self, schedule: str) -> int:
        """One turn of the rotation ``schedule``; see ``RedisState.rotate``."""
        script = self._rotate
        if script is None:
            script = self._rotate = self._redis().register_script(ROTATE_LUA)
        return int(await script(keys=[self._turns + schedule], args=[_ROTATION_TTL_MS]))

    async def clear(self) -> None:
        """Forget every assignment of this namespace (``SCAN`` and ``DEL``, in batches)."""
        client = self._redis()
        batch: list[Any] = []
        async for name in client.scan_iter(match=self.pattern, count=1000):
            batch.append(name)
            if len(batch) >= _BATCH:
                await client.delete(*batch)
                batch = []
        if batch:
            await client.delete(*batch)

    async def ping(self) -> bool:
        """True if Redis answers ``PING``; raises redis-py's error if it cannot be reached."""
        return bool(await self._redis().ping())

    async def close(self) -> None:
        """Close the client this state made (a client passed in is left open)."""
        client, made = self._client, self._connect is not None
        if made:
            self._client = None
            self._rotate = None
        if made and client is not None:
            await client.aclose()
