"""The notice board of a state backend: small shared records, announced as they change.

Sticky assignments and rotations are read on the pick path. What changes rarely
(ejections, failure streaks, slow-start entry times, registry changes learned from a
webhook, the webhook ids already applied) lives on a board instead: each process
keeps its own copy, learns of changes by ``subscribe`` (Redis pub/sub), and so a
pick never asks the store about them.

A record is a small JSON object under ``(topic, name)``, with a time to live:
``post`` stores it (``first=True``: only if there is none, answering the one that
won) and announces it; ``remove`` deletes it and announces that; ``count`` steps a
counter; ``announce`` tells subscribers without storing; ``claim`` and ``release``
take a name once per fleet, silently. ``notes(topic)`` reads what is stored, for a
process that (re)joins.

``LocalBoard`` is the in-process one (``MemoryState`` is one), and the fallback a
``ResilientState`` posts to while Redis is away; ``RedisState`` is the shared one.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["Board", "Listener", "LocalBoard", "Notice", "checked_note", "decoded_notice"]

logger = logging.getLogger("linq_router")

Record = Mapping[str, Any]


@attrs.frozen
class Notice:
    """A change on a board: ``record`` posted under ``(topic, name)``, or removed.

    ``record`` is ``None`` for a removal; ``ttl`` is the seconds it had left when it
    was posted (``None``: no expiry); ``count`` is set by ``Board.count``.

    .. versionadded:: 0.4
    """

    topic: str
    name: str
    record: Record | None
    ttl: float | None = None
    count: int | None = None


Listener = Callable[[Notice], object]
"""Called with each ``Notice``, on the board's listening thread (or the poster's)."""


@runtime_checkable
class Board(Protocol):
    """Shared records with times to live, and notices of their changes.

    .. versionadded:: 0.4
    """

    def post(
        self, topic: str, name: str, record: Record, ttl: float | None, *, first: bool = False
    ) -> Record:
        """Store ``record`` under ``(topic, name)`` for ``ttl`` seconds and announce it.

        With ``first``, only when nothing is stored there: the record stored afterwards
        is answered either way (the one that won).
        """
        ...

    def remove(self, topic: str, name: str) -> bool:
        """Delete ``(topic, name)`` and announce it; True if something was there."""
        ...

    def notes(self, topic: str) -> dict[str, tuple[Record, float | None]]:
        """Every record of ``topic``: name -> (record, seconds it has left or None)."""
        ...

    def count(self, topic: str, name: str, ttl: float) -> int:
        """Add one to ``(topic, name)``'s counter (kept ``ttl`` seconds); announce it."""
        ...

    def announce(self, topic: str, record: Record) -> None:
        """Tell every subscriber ``record`` (name ``""``), storing nothing."""
        ...

    def claim(self, topic: str, name: str, ttl: float) -> bool:
        """Take ``(topic, name)`` for ``ttl`` seconds; False if it is taken already."""
        ...

    def release(self, topic: str, name: str) -> None:
        """Give back a claim (nothing is announced)."""
        ...

    def subscribe(
        self, listener: Listener, joined: Callable[[], object] | None = None
    ) -> Callable[[], None]:
        """Call ``listener`` with each notice; ``joined`` after each (re)connection.

        Answers the function that unsubscribes. ``joined`` is where a subscriber
        reads ``notes`` again: notices sent while it was away are not replayed.
        """
        ...


def checked_note(topic: object, name: object, ttl: object, *, allow_none: bool = True) -> None:
    """Refuse a topic or name that is not text, or a TTL that is not positive."""
    if not isinstance(topic, str) or not topic or ":" in topic:
        msg = f"topic must be non-empty text without ':', got {topic!r}"
        raise ValueError(msg)
    if not isinstance(name, str):
        msg = f"name must be text, got {type(name).__name__}"
        raise TypeError(msg)
    if ttl is None and allow_none:
        return
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        msg = f"ttl must be a positive number of seconds, got {ttl!r}"
        raise ValueError(msg)
    if not math.isfinite(ttl):
        msg = f"ttl must be finite, got {ttl!r}"
        raise ValueError(msg)


def decoded_notice(data: object) -> Notice | None:
    """A notice from its wire form (JSON), or ``None`` if it is not one (logged)."""
    try:
        raw = json.loads(data.decode("utf-8") if isinstance(data, bytes) else str(data))
        topic, name, record = raw["t"], raw["n"], raw.get("r")
        ttl, count = raw.get("ttl"), raw.get("c")
        if not isinstance(topic, str) or not isinstance(name, str):
            raise TypeError(topic)
        if record is not None and not isinstance(record, dict):
            raise TypeError(record)
        return Notice(
            topic,
            name,
            record,
            None if ttl is None else float(ttl) / 1000.0,
            None if count is None else int(count),
        )
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as error:
        logger.debug("ignored a message on the board's channel that is not a notice: %r", error)
        return None


def encoded_notice(
    topic: str,
    name: str,
    record: Record | None,
    ttl_ms: int | None = None,
    count: int | None = None,
) -> str:
    """The wire form of a notice (compact JSON)."""
    body: dict[str, Any] = {"t": topic, "n": name, "r": record}
    if ttl_ms is not None:
        body["ttl"] = ttl_ms
    if count is not None:
        body["c"] = count
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


class _Listeners:
    """Subscribers and the calls to them; a failing subscriber is logged, not raised."""

    def __init__(self) -> None:
        self._subscribers: dict[int, tuple[Listener, Callable[[], object] | None]] = {}
        self._ids = 0
        self._guard = threading.Lock()

    def add(self, listener: Listener, joined: Callable[[], object] | None) -> int:
        if not callable(listener):
            msg = f"listener must be a function taking a Notice, got {listener!r}"
            raise TypeError(msg)
        with self._guard:
            self._ids += 1
            self._subscribers = {**self._subscribers, self._ids: (listener, joined)}
            return self._ids

    def drop(self, ident: int) -> bool:
        """Remove a subscriber; True if none is left."""
        with self._guard:
            subscribers = dict(self._subscribers)
            subscribers.pop(ident, None)
            self._subscribers = subscribers
            return not subscribers

    def __bool__(self) -> bool:
        return bool(self._subscribers)

    def tell(self, notice: Notice) -> None:
        for listener, _ in self._subscribers.values():
            try:
                listener(notice)
            except Exception:  # one subscriber must not break the others
                logger.exception("a board subscriber failed on %s", notice)

    def rejoined(self) -> None:
        for _, joined in self._subscribers.values():
            if joined is not None:
                try:
                    joined()
                except Exception:
                    logger.exception("a board subscriber failed on rejoining")

    def renew(self) -> None:
        self._guard = threading.Lock()


class LocalBoard:
    """A board in this process: notices reach this process's subscribers only.

    ``clock`` tells the time for times to live. Thread-safe.

    .. versionadded:: 0.4
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._board_clock = clock
        self._board_lock = threading.Lock()
        self._board_held: dict[tuple[str, str], tuple[Record, float]] = {}  # -> (record, expiry)
        self._board_counters: dict[tuple[str, str], tuple[int, float]] = {}
        self._board_listeners = _Listeners()

    def _renew_board(self) -> None:
        """In a child made by ``os.fork()``: locks a parent thread may have held, anew."""
        self._board_lock = threading.Lock()
        self._board_listeners.renew()

    def _board_live(self, key: tuple[str, str], now: float) -> Record | None:
        found = self._board_held.get(key)
        if found is None:
            return None
        if found[1] <= now:
            del self._board_held[key]
            return None
        return found[0]

    def post(
        self, topic: str, name: str, record: Record, ttl: float | None, *, first: bool = False
    ) -> Record:
        """Store and announce ``record``; see ``Board.post``."""
        checked_note(topic, name, ttl)
        record = dict(record)
        with self._board_lock:
            now = self._board_clock()
            held = self._board_live((topic, name), now)
            if first and held is not None:
                return held
            expiry = math.inf if ttl is None else now + ttl
            self._board_held[(topic, name)] = (record, expiry)
        self._board_listeners.tell(Notice(topic, name, record, ttl))
        return record

    def remove(self, topic: str, name: str) -> bool:
        """Delete and announce; see ``Board.remove``."""
        checked_note(topic, name, None)
        with self._board_lock:
            held = self._board_live((topic, name), self._board_clock())
            self._board_held.pop((topic, name), None)
            counted = self._board_counters.pop((topic, name), None) is not None
        if held is None and not counted:
            return False
        self._board_listeners.tell(Notice(topic, name, None))
        return True

    def notes(self, topic: str) -> dict[str, tuple[Record, float | None]]:
        """Every live record of ``topic``; see ``Board.notes``."""
        checked_note(topic, "", None)
        with self._board_lock:
            now = self._board_clock()
            found: dict[str, tuple[Record, float | None]] = {}
            for (held_topic, name), (record, expiry) in list(self._board_held.items()):
                if held_topic == topic and self._board_live((topic, name), now) is not None:
                    found[name] = (record, None if expiry == math.inf else expiry - now)
            return found

    def count(self, topic: str, name: str, ttl: float) -> int:
        """Step a counter; see ``Board.count``."""
        checked_note(topic, name, ttl, allow_none=False)
        with self._board_lock:
            now = self._board_clock()
            value, expiry = self._board_counters.get((topic, name), (0, math.inf))
            value = 1 if expiry <= now else value + 1
            self._board_counters[(topic, name)] = (value, now + ttl)
        self._board_listeners.tell(Notice(topic, name, None, ttl, value))
        return value

    def announce(self, topic: str, record: Record) -> None:
        """Tell this process's subscribers; see ``Board.announce``."""
        checked_note(topic, "", None)
        self._board_listeners.tell(Notice(topic, "", dict(record)))

    def claim(self, topic: str, name: str, ttl: float) -> bool:
        """Take a name once; see ``Board.claim``."""
        checked_note(topic, name, ttl, allow_none=False)
        key = ("claim\x1f" + topic, name)
        with self._board_lock:
            now = self._board_clock()
            if self._board_live(key, now) is not None:
                return False
            self._board_held[key] = ({}, now + ttl)
            return True

    def release(self, topic: str, name: str) -> None:
        """Give back a claim; see ``Board.release``."""
        checked_note(topic, name, None)
        with self._board_lock:
            self._board_held.pop(("claim\x1f" + topic, name), None)

    def subscribe(
        self, listener: Listener, joined: Callable[[], object] | None = None
    ) -> Callable[[], None]:
        """Listen to this process's notices; see ``Board.subscribe``.

        ``joined`` is called at once: a local board is joined from the start.
        """
        ident = self._board_listeners.add(listener, joined)
        if joined is not None:
            joined()

        def unsubscribe() -> None:
            self._board_listeners.drop(ident)

        return unsubscribe
