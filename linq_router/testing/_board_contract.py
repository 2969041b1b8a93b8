"""``check_state``'s rules for a backend that is also a notice board (``Board``).

* a record posted comes back from ``notes`` with the time it has left; a post
  replaces it, ``first=True`` keeps what is there and answers it;
* ``remove`` answers True once, then False; ``count`` counts 1, 2... per name;
* ``claim`` takes a name once, ``release`` gives it back;
* a subscriber hears, in order, every post, removal, count and announcement, and
  is told it joined; after unsubscribing it hears nothing more;
* a record with a short time to live is gone after it;
* a bad topic or time to live is a ``ValueError``.

Each run uses topics of its own, so a shared store keeps no state between runs but
short-lived records.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from linq_router.state._board import Board, Notice

__all__ = ["check_board"]

_WAIT = 5.0  # seconds a notice may take to arrive (a real socket in between)


class BoardContractError(AssertionError):
    """A board broke a rule (raised as ``StateContractError`` by ``check_state``)."""


def _expect(ok: bool, detail: str) -> None:
    if not ok:
        raise BoardContractError(detail)


def _eventually(condition: Callable[[], bool], timeout: float = _WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def check_board(board: Board) -> None:
    """Run the board rules against ``board``; raises ``BoardContractError``."""
    topic = "contract" + uuid.uuid4().hex[:10]
    heard: list[Notice] = []
    joined = threading.Event()
    lock = threading.Lock()

    def listener(notice: Notice) -> None:
        if notice.topic.startswith(topic):
            with lock:
                heard.append(notice)

    unsubscribe = board.subscribe(listener, joined.set)
    try:
        _expect(joined.wait(_WAIT), "a subscriber was never told it joined")
        _records(board, topic)
        _counters_and_claims(board, topic)
        board.announce(topic + "x", {"said": "hello"})
        wanted = [
            (topic, "line-1", {"v": 1}, None),
            (topic, "line-1", {"v": 2}, None),
            (topic, "line-1", None, None),
            (topic, "n", None, 1),
            (topic, "n", None, 2),
            (topic, "m", None, 1),
            (topic + "x", "", {"said": "hello"}, None),
        ]

        def got() -> list[tuple[str, str, object, object]]:
            with lock:
                return [(n.topic, n.name, n.record, n.count) for n in heard]

        _eventually(lambda: len(got()) >= len(wanted))
        _expect(got() == wanted, f"a subscriber heard {got()!r}, expected {wanted!r}")
    finally:
        unsubscribe()
    before = len(heard)
    board.post(topic, "after", {"v": 3}, 30)
    time.sleep(0.05)  # a notice after unsubscribing must not come; give it a chance
    _expect(len(heard) == before, "a subscriber heard a notice after unsubscribing")
    board.remove(topic, "after")
    _expires(board, topic + "t")
    for bad_topic, bad_ttl in (("", 1.0), ("a:b", 1.0), (topic, 0), (topic, -1.0)):
        try:
            board.post(bad_topic, "x", {}, bad_ttl)
        except ValueError:
            continue
        msg = f"post({bad_topic!r}, ttl={bad_ttl!r}) was accepted; expected a ValueError"
        raise BoardContractError(msg)


def _records(board: Board, topic: str) -> None:
    _expect(board.notes(topic) == {}, "a new topic has records")
    stored = board.post(topic, "line-1", {"v": 1}, 60)
    _expect(dict(stored) == {"v": 1}, f"post answered {stored!r}, expected the record")
    found = board.notes(topic)
    _expect(set(found) == {"line-1"}, f"notes found {sorted(found)!r}, expected ['line-1']")
    record, left = found["line-1"]
    _expect(dict(record) == {"v": 1}, f"notes answered {record!r}")
    _expect(left is not None and 55 < left <= 60, f"a 60 s record has {left!r} s left")
    kept = board.post(topic, "line-1", {"v": 9}, 60, first=True)
    _expect(dict(kept) == {"v": 1}, f"post(first=True) answered {kept!r}; the first must win")
    board.post(topic, "line-1", {"v": 2}, None)
    record, left = board.notes(topic)["line-1"]
    _expect(dict(record) == {"v": 2} and left is None, "a post did not replace the record")
    _expect(board.remove(topic, "line-1") is True, "remove of a record answered False")
    _expect(board.remove(topic, "line-1") is False, "a second remove answered True")
    _expect(board.notes(topic) == {}, "a removed record is still there")


def _counters_and_claims(board: Board, topic: str) -> None:
    counts = [board.count(topic, "n", 60), board.count(topic, "n", 60)]
    _expect(counts == [1, 2], f"count answered {counts!r}, expected [1, 2]")
    _expect(board.count(topic, "m", 60) == 1, "counters of two names are not apart")
    _expect(board.claim(topic, "evt", 60) is True, "a first claim answered False")
    _expect(board.claim(topic, "evt", 60) is False, "a second claim answered True")
    board.release(topic, "evt")
    _expect(board.claim(topic, "evt", 60) is True, "a released claim could not be taken")
    board.release(topic, "evt")


def _expires(board: Board, topic: str) -> None:
    board.post(topic, "short", {"v": 1}, 0.2)
    gone = _eventually(lambda: "short" not in board.notes(topic), 3.0)
    _expect(gone, "a record posted for 0.2 s was still there after 3 s")
