"""``RedisState``'s notice board: records and counters in Redis, notices by pub/sub.

Key layout, for namespace ``ns`` (one hash tag, as for assignments)::

    {ns}:note:<topic>:<name>    a record (JSON), with a time to live
    {ns}:count:<topic>:<name>   a counter, with a time to live
    {ns}:claim:<topic>:<name>   a claim ("1"), with a time to live
    {ns}:notices                the channel every change is published on

Each change is one script call (the write and its ``PUBLISH`` together), so a
subscriber never hears of a record that is not stored, nor misses one that is. One
thread per state listens (``SUBSCRIBE``), started by the first ``subscribe`` and
ended by the last unsubscribe; it reconnects by itself after an outage (trying once
a ``recheck``), and tells subscribers it rejoined so they read ``notes`` again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._board import (
    Listener,
    Record,
    _Listeners,
    checked_note,
    decoded_notice,
    encoded_notice,
)
from ._redis_wire import glob_escaped, lua, outage_errors, text

if TYPE_CHECKING:
    from redis import Redis, RedisCluster
    from redis.commands.core import Script

__all__ = ["RedisBoard"]

logger = logging.getLogger("linq_router")

# How often the listening thread looks up from waiting for a message (seconds): the
# longest an unsubscribe waits for it to end.
_POLL = 0.2


def _ms(ttl: float | None) -> int:
    return 0 if ttl is None else max(1, round(ttl * 1000))


def _record(text: object) -> Record:
    raw = text.decode("utf-8") if isinstance(text, bytes) else str(text)
    value = json.loads(raw)
    if not isinstance(value, dict):
        msg = f"a board record must be a JSON object, found {raw[:80]!r}"
        raise TypeError(msg)
    return value


class RedisBoard:
    """The ``Board`` methods of ``RedisState`` (a mixin: it needs ``_redis()``)."""

    namespace: str
    recheck: float = 1.0
    """Seconds between the listening thread's tries to reconnect."""

    _redis: Callable[[], Redis | RedisCluster]
    _board_scripts: dict[str, Script]
    _listeners: _Listeners
    _listening: threading.Thread | None = None
    _stop_listening: threading.Event

    # -- keys and scripts ---------------------------------------------------------------

    def _board_init(self) -> None:
        self._board_scripts = {}
        self._listeners = _Listeners()
        self._listening = None
        self._stop_listening = threading.Event()

    def _board_key(self, kind: str, topic: str, name: str) -> str:
        return "{" + self.namespace + "}:" + kind + ":" + topic + ":" + name

    @property
    def channel(self) -> str:
        """The pub/sub channel of this namespace's notices."""
        return "{" + self.namespace + "}:notices"

    def _board_script(self, name: str) -> Script:
        script = self._board_scripts.get(name)
        if script is None:
            script = self._redis().register_script(lua(name))
            self._board_scripts[name] = script
        return script

    # -- the Board methods -------------------------------------------------------------

    def post(
        self, topic: str, name: str, record: Record, ttl: float | None, *, first: bool = False
    ) -> Record:
        """Store ``record`` and announce it (one script call); see ``Board.post``."""
        checked_note(topic, name, ttl)
        body = json.dumps(dict(record), separators=(",", ":"), sort_keys=True)
        notice = encoded_notice(topic, name, dict(record), _ms(ttl) if ttl else None)
        args = [body, str(_ms(ttl)), "1" if first else "0", self.channel, notice]
        held = self._board_script("post.lua")(
            keys=[self._board_key("note", topic, name)], args=args
        )
        return _record(held)

    def remove(self, topic: str, name: str) -> bool:
        """Delete ``(topic, name)`` and its counter, announcing it; see ``Board.remove``."""
        checked_note(topic, name, None)
        keys = [self._board_key("note", topic, name), self._board_key("count", topic, name)]
        args = [self.channel, encoded_notice(topic, name, None)]
        return bool(self._board_script("remove.lua")(keys=keys, args=args))

    def notes(self, topic: str) -> dict[str, tuple[Record, float | None]]:
        """Every record of ``topic`` (``SCAN``, then one pipeline); see ``Board.notes``."""
        checked_note(topic, "", None)
        client = self._redis()
        prefix = self._board_key("note", topic, "")
        names = [text(k) or "" for k in client.scan_iter(match=glob_escaped(prefix) + "*")]
        if not names:
            return {}
        pipe = client.pipeline(transaction=False)
        for key in names:
            pipe.get(key)
            pipe.pttl(key)
        replies: list[Any] = pipe.execute()
        found: dict[str, tuple[Record, float | None]] = {}
        for index, key in enumerate(names):
            held, left = replies[2 * index], replies[2 * index + 1]
            if held is None:
                continue  # expired between the scan and the read
            try:
                record = _record(held)
            except (ValueError, TypeError):
                logger.debug("ignored a board record that is not JSON: %s", key)
                continue
            found[key[len(prefix) :]] = (record, None if int(left) < 0 else int(left) / 1000.0)
        return found

    def count(self, topic: str, name: str, ttl: float) -> int:
        """Step ``(topic, name)``'s counter and announce it; see ``Board.count``."""
        checked_note(topic, name, ttl, allow_none=False)
        args = [str(_ms(ttl)), self.channel, topic, name]
        key = self._board_key("count", topic, name)
        return int(self._board_script("count.lua")(keys=[key], args=args))

    def announce(self, topic: str, record: Record) -> None:
        """``PUBLISH`` a notice of ``record`` to every subscriber; see ``Board.announce``."""
        checked_note(topic, "", None)
        self._redis().publish(self.channel, encoded_notice(topic, "", dict(record)))

    def claim(self, topic: str, name: str, ttl: float) -> bool:
        """``SET NX PX``: True if this call took ``(topic, name)``; see ``Board.claim``."""
        checked_note(topic, name, ttl, allow_none=False)
        key = self._board_key("claim", topic, name)
        return bool(self._redis().set(key, "1", nx=True, px=_ms(ttl)))

    def release(self, topic: str, name: str) -> None:
        """Give back a claim (``DEL``); see ``Board.release``."""
        checked_note(topic, name, None)
        self._redis().delete(self._board_key("claim", topic, name))

    def subscribe(
        self, listener: Listener, joined: Callable[[], object] | None = None
    ) -> Callable[[], None]:
        """Listen on the namespace's channel (one thread per state); see ``Board.subscribe``."""
        ident = self._listeners.add(listener, joined)
        self._start_listening()

        def unsubscribe() -> None:
            if self._listeners.drop(ident):
                self._stop()

        return unsubscribe

    # -- the listening thread ------------------------------------------------------------

    def _start_listening(self) -> None:
        thread = self._listening
        if thread is not None and thread.is_alive():
            return
        self._stop_listening = stop = threading.Event()
        thread = threading.Thread(
            target=self._listen, args=(stop,), name="linq-router-board", daemon=True
        )
        self._listening = thread
        thread.start()

    def _stop(self) -> None:
        self._stop_listening.set()
        thread = self._listening
        self._listening = None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2 * _POLL + 1.0)

    def _listen(self, stop: threading.Event) -> None:
        errors = outage_errors()
        while not stop.is_set():
            pubsub = None
            try:
                pubsub = self._redis().pubsub()  # type: ignore[no-untyped-call]
                pubsub.subscribe(self.channel)
                while not stop.is_set():
                    message = pubsub.get_message(timeout=_POLL)
                    if message is None:
                        continue
                    if message.get("type") == "subscribe":
                        self._listeners.rejoined()
                    elif message.get("type") == "message":
                        notice = decoded_notice(message.get("data"))
                        if notice is not None:
                            self._listeners.tell(notice)
            except errors as error:
                logger.debug("board listener lost Redis (%r); trying again", error)
                stop.wait(self.recheck)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(*errors):
                        pubsub.close()

    def _renew_board_after_fork(self) -> None:
        """In a child: the parent's thread is gone; listen anew if anyone subscribed."""
        self._board_scripts = {}
        self._listeners.renew()
        self._listening = None
        if self._listeners:
            self._start_listening()
