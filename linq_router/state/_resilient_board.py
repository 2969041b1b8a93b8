"""``ResilientState``'s notice board: the primary's, or a local one during an outage.

Every board call goes through the state's switch (``_call``): while Redis answers,
to it; while it does not, to a ``LocalBoard`` whose notices reach this process's
subscribers. Records posted locally during an outage are written back on rejoining,
each only where the primary holds none (``first=True``: what another process posted
meanwhile wins); counters, announcements and claims made locally are not (a streak
counted apart, a notice nobody else heard, a webhook id taken here: they mean
nothing to the fleet afterwards).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ._base import StateBackend
from ._board import Board, Listener, LocalBoard, Record

__all__ = ["ResilientBoard"]

logger = logging.getLogger("linq_router")

_T = TypeVar("_T")


class ResilientBoard:
    """The ``Board`` methods of ``ResilientState`` (a mixin: it needs ``_call``)."""

    primary: StateBackend
    fallback: StateBackend
    _lock: threading.Lock
    _call: Callable[..., Any]

    def _board_init(self) -> None:
        fallback = self.fallback
        self._local_board: Board = fallback if isinstance(fallback, Board) else LocalBoard()
        self._posted: set[tuple[str, str]] = set()  # (topic, name) posted locally

    def _renew_local_board(self) -> None:
        """In a child made by ``os.fork()``: the local board's locks, made anew."""
        renew = getattr(self._local_board, "_renew_board", None)
        if callable(renew):
            renew()

    def _primary_board(self) -> Board:
        primary = self.primary
        if not isinstance(primary, Board):
            msg = f"{type(primary).__name__} has no notice board (post, notes, subscribe...)"
            raise TypeError(msg)
        return primary

    @property
    def shares_notices(self) -> bool:
        """Whether the primary has a notice board (a Redis state does)."""
        return isinstance(self.primary, Board)

    def post(
        self, topic: str, name: str, record: Record, ttl: float | None, *, first: bool = False
    ) -> Record:
        """``Board.post`` on the primary, or locally (written back on rejoining)."""
        primary = self._primary_board()

        def local() -> Record:
            self._posted.add((topic, name))
            return self._local_board.post(topic, name, record, ttl, first=first)

        return self._call(lambda: primary.post(topic, name, record, ttl, first=first), local)  # type: ignore[no-any-return]

    def remove(self, topic: str, name: str) -> bool:
        """``Board.remove`` on the primary, or locally."""
        primary = self._primary_board()

        def local() -> bool:
            self._posted.discard((topic, name))
            return self._local_board.remove(topic, name)

        return bool(self._call(lambda: primary.remove(topic, name), local))

    def notes(self, topic: str) -> dict[str, tuple[Record, float | None]]:
        """``Board.notes`` of the primary, or of the local board."""
        primary = self._primary_board()
        found = self._call(lambda: primary.notes(topic), lambda: self._local_board.notes(topic))
        return dict(found)

    def count(self, topic: str, name: str, ttl: float) -> int:
        """``Board.count`` on the primary, or a local counter."""
        primary = self._primary_board()
        board = self._local_board
        return int(
            self._call(
                lambda: primary.count(topic, name, ttl), lambda: board.count(topic, name, ttl)
            )
        )

    def announce(self, topic: str, record: Record) -> None:
        """``Board.announce`` on the primary, or to this process only."""
        primary = self._primary_board()
        board = self._local_board
        self._call(lambda: primary.announce(topic, record), lambda: board.announce(topic, record))

    def claim(self, topic: str, name: str, ttl: float) -> bool:
        """``Board.claim`` on the primary, or in this process only."""
        primary = self._primary_board()
        board = self._local_board
        return bool(
            self._call(
                lambda: primary.claim(topic, name, ttl), lambda: board.claim(topic, name, ttl)
            )
        )

    def release(self, topic: str, name: str) -> None:
        """``Board.release`` on the primary, or locally."""
        primary = self._primary_board()
        board = self._local_board
        self._call(lambda: primary.release(topic, name), lambda: board.release(topic, name))

    def subscribe(
        self, listener: Listener, joined: Callable[[], object] | None = None
    ) -> Callable[[], None]:
        """Hear the primary's notices and, during an outage, the local board's."""
        away = self._local_board.subscribe(listener)
        shared = self._primary_board().subscribe(listener, joined)

        def unsubscribe() -> None:
            shared()
            away()

        return unsubscribe

    def _board_write_back(self) -> int:
        """On rejoining: the records posted locally during the outage, where none is held."""
        posted, self._posted = self._posted, set()
        if not posted:
            return 0
        primary = self._primary_board()
        held = self._local_board
        written = 0
        for topic in {topic for topic, _ in posted}:
            for name, (record, ttl) in held.notes(topic).items():
                if (topic, name) in posted:
                    primary.post(topic, name, record, ttl, first=True)
                    written += 1
        return written
