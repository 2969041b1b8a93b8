"""Ejections, failure streaks and slow-start entries shared by a fleet: ``FleetFeedback``.

A router whose state has a notice board (``Router(state="redis://...")``) tells the
fleet what its ``Tracker`` decided and obeys what the others decided:

- an ejection is posted under ``ejection/<line id>`` with its reason, ``times`` and
  wall-clock ``since``/``until``, kept as long as the ejection lasts; every router
  adopts it on the notice, so the next pick anywhere avoids the line. Adopting is
  silent (no ``on_event``): the router that ejected it is the one that announces it.
- a line's failures are counted on ``streak/<line id>`` (one ``INCR`` per failure
  report), so three failures in three processes are three in a row; a success
  anywhere deletes the counter, and every router hears it.
- slow start: the first router to see a line enter posts when (``first=True``), and
  every router ramps it from that time, so the fleet's weights agree.

Nothing here runs on the pick path: notices arrive on the board's listening thread
and change the tracker there (the router then re-serves, masking an ejected line at
once); posts are made by ``report`` (a failure, or a success that ends a streak) or,
for entry times, by a thread of this object's own. A board that fails is logged and
the tracker goes on alone.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .feedback import Ejected, Tracker, Verdict
from .state._board import Board, Notice

__all__ = ["FleetFeedback"]

logger = logging.getLogger("linq_router")

EJECTION, STREAK, ENTERED = "ejection", "streak", "entered"
_STREAK_TTL = 24 * 3600.0  # a failure streak nobody added to for a day is forgotten
_STOP = ("", 0.0)


class FleetFeedback:
    """Connects one router's ``Tracker`` to a fleet's ``Board``."""

    def __init__(
        self,
        board: Board,
        tracker: Tracker,
        on_change: Callable[[], object],
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.board = board
        self.tracker = tracker
        self._on_change = on_change
        self.wall = wall
        self._entries: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self._courier: threading.Thread | None = None
        self.obeyed = 0
        """Ejections from the fleet applied so far (the router re-served), for tests."""
        self.obeyed_at: float | None = None
        """When the last of them was applied (``time.time()``), for tests."""
        self.joined = threading.Event()
        """Set once the board's notices reach this router (``Router.settle`` waits)."""
        if tracker.slow_start is not None:
            tracker.on_enter = self._entering
        self._unsubscribe = board.subscribe(self._heard, self._joined)

    # -- clocks ----------------------------------------------------------------------

    def _local(self, wall_time: float) -> float:
        return self.tracker.clock() + (wall_time - self.wall())

    def _wall(self, local: float) -> float:
        return self.wall() + (local - self.tracker.clock())

    # -- what this router tells the fleet --------------------------------------------

    def failures(self, line_id: str) -> int | None:
        """Count one more failure of ``line_id`` fleet-wide; None if the board failed."""
        try:
            return self.board.count(STREAK, line_id, _STREAK_TTL)
        except Exception as error:  # the tracker counts alone
            logger.debug("could not count a failure on the shared state: %r", error)
            return None

    def ejected(self, line_id: str) -> None:
        """``line_id`` was ejected here: post it, and end its streak everywhere."""
        ejected = self.tracker.ejection_of(line_id)
        if ejected is None:
            return
        record = {
            "line": ejected.line,
            "verdict": ejected.verdict.value,
            "reason": ejected.reason,
            "since": self._wall(ejected.since),
            "until": self._wall(ejected.until),
            "times": ejected.times,
        }
        left = ejected.until - self.tracker.clock()
        try:
            if left > 0:
                self.board.post(EJECTION, line_id, record, left)
            self.board.remove(STREAK, line_id)
        except Exception as error:
            logger.debug("could not post an ejection to the shared state: %r", error)

    def succeeded(self, line_id: str) -> None:
        """A send from ``line_id`` succeeded: end its fleet-wide streak, if it has one."""
        try:
            self.board.remove(STREAK, line_id)
        except Exception as error:
            logger.debug("could not end a streak on the shared state: %r", error)

    def _entering(self, line_id: str, at: float) -> None:
        # Called under the tracker's lock, maybe on the pick path: hand over, no I/O.
        self._entries.put((line_id, at))
        if self._courier is None or not self._courier.is_alive():
            self._courier = threading.Thread(
                target=self._post_entries, name="linq-router-fleet", daemon=True
            )
            self._courier.start()

    def _post_entries(self) -> None:
        while True:
            try:
                line_id, at = self._entries.get(timeout=1.0)
            except queue.Empty:
                return  # idle: the next entry starts another thread
            if (line_id, at) == _STOP:
                return
            slow = self.tracker.slow_start
            window = slow.window if slow is not None else 0.0
            left = at + window - self.tracker.clock()
            if left <= 0:
                continue
            try:
                agreed = self.board.post(ENTERED, line_id, {"at": self._wall(at)}, left, first=True)
            except Exception as error:
                logger.debug("could not post an entry time to the shared state: %r", error)
                continue
            self._adopt_entry(line_id, agreed)

    # -- what the fleet tells this router --------------------------------------------

    def _heard(self, notice: Notice) -> None:
        if notice.topic == EJECTION and notice.record is not None:
            self._adopt_ejection(notice.name, notice.record)
        elif notice.topic == STREAK:
            self.tracker.note_streak(notice.name, notice.count or 0)
        elif notice.topic == ENTERED and notice.record is not None:
            self._adopt_entry(notice.name, notice.record)

    def _joined(self) -> None:
        """(Re)connected: read what was posted meanwhile; notices were not replayed."""
        try:
            ejections = self.board.notes(EJECTION)
            entries = self.board.notes(ENTERED) if self.tracker.slow_start is not None else {}
        except Exception as error:
            logger.debug("could not read the shared feedback: %r", error)
            return
        for line_id, (record, _) in ejections.items():
            self._adopt_ejection(line_id, record)
        for line_id, (record, _) in entries.items():
            self._adopt_entry(line_id, record)
        self.joined.set()

    def _adopt_ejection(self, line_id: str, record: Mapping[str, Any]) -> None:
        try:
            ejected = Ejected(
                str(record["line"]),
                Verdict(record["verdict"]),
                str(record["reason"]),
                self._local(float(record["since"])),
                self._local(float(record["until"])),
                int(record["times"]),
                line_id=line_id,
            )
        except (KeyError, ValueError, TypeError) as error:
            logger.debug("ignored a shared ejection of %s that is not one: %r", line_id, error)
            return
        if self.tracker.adopt(ejected):
            self._on_change()
        self.obeyed += 1
        self.obeyed_at = time.time()

    def _adopt_entry(self, line_id: str, record: Mapping[str, Any]) -> None:
        at = record.get("at")
        if isinstance(at, int | float) and self.tracker.entered(line_id, self._local(float(at))):
            self._on_change()

    def close(self) -> None:
        """Stop hearing the fleet (the board itself stays open)."""
        self._unsubscribe()
        self.tracker.on_enter = None
        if self._courier is not None and self._courier.is_alive():
            self._entries.put(_STOP)
