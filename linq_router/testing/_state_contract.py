"""``check_state``: the contract every ``StateBackend`` (built-in or your own) must pass.

Each rule runs on a fresh backend from ``factory()`` and fails with a
``StateContractError`` naming the rule and what broke it. The rules:

* a new backend remembers nothing; ``get_assignment`` answers ``None``, a
  ``delete_assignment`` ``False``;
* what ``set_assignment`` stored comes back exactly (unicode, long, odd keys too);
  a set replaces; keys are independent (``a``, ``a*``, ``A``, ``a:b`` are four);
* ``delete_assignment`` answers ``True`` once, then ``False``;
* ``assign(key, candidate)`` (if the backend has it) stores the candidate when
  nothing is remembered and otherwise answers, and keeps, what is;
* ``clear()`` forgets everything (over a thousand keys), and the backend works on;
* with ``other`` (a second factory, say another namespace on the same Redis): the
  two never see each other's assignments, and clearing one leaves the other;
* many threads assigning one key get one answer; many setting different keys
  lose none;
* if the backend has an ``assignment_ttl`` (on a fake clock, or of at most five
  seconds): an unused assignment is gone after it, a used one (get or ``assign``)
  lives on, and an expired key is assigned afresh;
* a backend that is also a notice board (``RedisState``, ``ResilientState`` over
  it) passes the board's rules too (``_board_contract``): records, counters,
  claims, and notices heard in order by a subscriber.

The rules are written once, as coroutines over a thin view of the backend:
``check_state`` drives them without an event loop (a sync backend never suspends
them), ``check_async_state`` awaits them on the caller's loop.

.. versionadded:: 0.4
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from linq_router.state import MemoryState, StateBackend
from linq_router.state._board import Board

from ._board_contract import BoardContractError, check_board

__all__ = ["StateContractError", "check_async_state", "check_state"]

_T = TypeVar("_T")

MAX_REAL_WAIT = 5.0
"""Without a fake clock, TTLs longer than this many seconds are not checked."""

_KEYS = (
    "+14155550100",
    "+14155550100,+14155550101",
    "someone@example.com",
    "émile 📱 ☎",
    "èmile 📱 ☎",  # the same but for one accent: no backend may fold them together
    "日本語の会話",
    "a*",
    "a?",
    "[a]",
    "{tag}:x",
    "back\\slash",
    " spaced ",
    "new\nline",
    "k" * 1000,
)
_LINES = ("pn_01HZY3", "0", "línea-ü", "📞", "L" * 300, "with space", "a:b")


class StateContractError(AssertionError):
    """A state backend broke the contract; the message names the rule and the backend.

    .. versionadded:: 0.4
    """


class _View:
    """One backend's calls as coroutines, plus how to race them and to let time pass.

    For a sync backend (``awaiting`` false) nothing here ever suspends: races run in
    threads, waits sleep or advance a fake clock.
    """

    def __init__(
        self, backend: Any, advance: Callable[[float], None] | None, *, awaiting: bool
    ) -> None:
        self.backend = backend
        self.has_assign = callable(getattr(backend, "assign", None))
        self._advance = advance
        self._awaiting = awaiting
        self.moves_time = advance is not None

    async def _do(self, method: str, *args: str) -> object:
        answer = getattr(self.backend, method)(*args)
        if self._awaiting:
            return await answer
        if inspect.isawaitable(answer):
            close = getattr(answer, "close", None)
            if close is not None:
                close()  # never to be awaited: no "never awaited" warning
            msg = f"{self.backend!r}.{method} returned an awaitable: use check_async_state"
            raise StateContractError(msg)
        return answer

    async def get(self, key: str) -> object:
        return await self._do("get_assignment", key)

    async def set(self, key: str, line_id: str) -> object:
        return await self._do("set_assignment", key, line_id)

    async def delete(self, key: str) -> object:
        return await self._do("delete_assignment", key)

    async def clear(self) -> object:
        return await self._do("clear")

    async def assign(self, key: str, candidate: str) -> object:
        return await self._do("assign", key, candidate)

    async def race(self, method: str, calls: Sequence[tuple[str, ...]]) -> list[object]:
        """``method`` called with each of ``calls``' arguments at once; the answers."""
        bound = getattr(self.backend, method)
        if self._awaiting:
            return list(await asyncio.gather(*(bound(*args) for args in calls)))
        return _in_threads([functools.partial(bound, *args) for args in calls])

    async def wait(self, seconds: float) -> None:
        if self._advance is not None:
            self._advance(seconds)
        elif self._awaiting:
            await asyncio.sleep(seconds)
        else:
            time.sleep(seconds)


def _in_threads(calls: Sequence[Callable[[], object]], timeout: float = 30.0) -> list[object]:
    barrier = threading.Barrier(len(calls), timeout=timeout)
    answers: list[object] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(at: int) -> None:
        try:
            barrier.wait()
            answers[at] = calls[at]()
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(at,), daemon=True) for at in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if any(thread.is_alive() for thread in threads):
        msg = f"calls from {len(calls)} threads did not finish within {timeout} s"
        raise StateContractError(msg)
    if errors:
        raise errors[0]
    return answers


# -- the rules --------------------------------------------------------------------------


class _Broken(Exception):
    """A rule's check failed; the runner adds the rule and the backend."""


def _r(value: object) -> str:
    """``repr(value)``, cut short: a 1,000-character key makes no readable message."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...{text[-12:]} (a repr of {len(text)})"


def _expect(ok: bool, detail: str) -> None:
    if not ok:
        raise _Broken(detail)


def _line(answer: object, what: str) -> str | None:
    _expect(
        answer is None or type(answer) is str,
        f"{what} answered {answer!r} ({type(answer).__name__}), not a str or None",
    )
    return answer  # type: ignore[return-value]


async def _get(view: _View, key: str) -> str | None:
    return _line(await view.get(key), f"get_assignment({_r(key)})")


async def _delete(view: _View, key: str) -> bool:
    answer = await view.delete(key)
    _expect(type(answer) is bool, f"delete_assignment({_r(key)}) answered {answer!r}, not a bool")
    return answer  # type: ignore[return-value]


async def _assign(view: _View, key: str, candidate: str) -> str:
    answer = _line(await view.assign(key, candidate), f"assign({_r(key)}, {candidate!r})")
    _expect(answer is not None, f"assign({_r(key)}, {candidate!r}) answered None")
    assert answer is not None
    return answer


async def _starts_empty(view: _View) -> None:
    for key in _KEYS:
        found = await _get(view, key)
        _expect(found is None, f"get_assignment({_r(key)}) answered {found!r} on a new backend")
        _expect(not await _delete(view, key), f"delete_assignment({_r(key)}) found something")


async def _round_trips(view: _View) -> None:
    pairs = [(key, _LINES[at % len(_LINES)]) for at, key in enumerate(_KEYS)]
    for key, line in pairs:
        await view.set(key, line)
    for key, line in pairs:
        found = await _get(view, key)
        _expect(found == line, f"set {_r(key)} to {_r(line)}, got back {_r(found)}")


async def _set_replaces(view: _View) -> None:
    await view.set("+14155550100", "line-1")
    await view.set("+14155550100", "line-2")
    found = await _get(view, "+14155550100")
    _expect(found == "line-2", f"after setting line-1 then line-2, got {found!r}")


async def _keys_are_independent(view: _View) -> None:
    keys = ("a", "a*", "A", "a:b", "a ", "b")
    for at, key in enumerate(keys):
        await view.set(key, f"line-{at}")
    _expect(await _delete(view, "a*"), "delete_assignment('a*') found nothing")
    for at, key in enumerate(keys):
        found = await _get(view, key)
        want = None if key == "a*" else f"line-{at}"
        _expect(found == want, f"after deleting 'a*', {key!r} answered {found!r}, not {want!r}")


async def _delete_once(view: _View) -> None:
    await view.set("k", "line-1")
    _expect(await _delete(view, "k"), "delete_assignment of a remembered key answered False")
    _expect(await _get(view, "k") is None, "the key was still remembered after its delete")
    _expect(not await _delete(view, "k"), "a second delete_assignment answered True")


async def _assign_gets_or_sets(view: _View) -> None:
    if not view.has_assign:
        return
    first = await _assign(view, "new", "line-1")
    _expect(first == "line-1", f"assign on an unknown key answered {first!r}, not the candidate")
    again = await _assign(view, "new", "line-2")
    _expect(again == "line-1", f"a second assign answered {again!r}, not the remembered line-1")
    found = await _get(view, "new")
    _expect(found == "line-1", f"after assign, get_assignment answered {found!r}")
    await view.set("new", "line-3")
    after_set = await _assign(view, "new", "line-4")
    _expect(after_set == "line-3", f"assign after a set answered {after_set!r}, not line-3")
    await _delete(view, "new")
    fresh = await _assign(view, "new", "line-5")
    _expect(fresh == "line-5", f"assign after a delete answered {fresh!r}, not the candidate")
    for key in _KEYS:
        stored = await _assign(view, key, "pn_" + key[:5])
        _expect(stored == "pn_" + key[:5], f"assign({_r(key)}) answered {stored!r}")


async def _clear_forgets(view: _View) -> None:
    keys = [f"+1415555{at:04d}" for at in range(1200)] + list(_KEYS)
    for key in keys:
        await view.set(key, "line-1")
    await view.clear()
    for key in keys[::97] + list(_KEYS):
        found = await _get(view, key)
        _expect(found is None, f"after clear(), {_r(key)} still answered {found!r}")
    await view.clear()  # twice, and on an empty backend, is fine
    await view.set("k", "line-2")
    _expect(await _get(view, "k") == "line-2", "a backend did not remember after clear()")


async def _one_answer_under_races(view: _View) -> None:
    if not view.has_assign:
        return
    for key in ("+14155550100", "race-2", "race-3"):
        answers = await view.race("assign", [(key, f"line-{at}") for at in range(16)])
        lines = {_line(a, f"assign({key!r}, ...)") for a in answers}
        _expect(len(lines) == 1, f"16 concurrent assigns of {key!r} got {sorted(map(str, lines))}")
        found = await _get(view, key)
        _expect(found in lines, f"after the race, {key!r} answered {found!r}, not {lines}")


async def _no_set_lost_under_races(view: _View) -> None:
    await view.race("set_assignment", [(f"writer-{at}", f"line-{at}") for at in range(16)])
    for at in range(16):
        found = await _get(view, f"writer-{at}")
        _expect(found == f"line-{at}", f"writer-{at} answered {found!r} after 16 threads set")


async def _expires(view: _View) -> None:
    ttl = _ttl(view.backend)
    if ttl is None or (not view.moves_time and ttl > MAX_REAL_WAIT):
        return
    has_assign = view.has_assign
    await view.set("used", "line-1")
    await view.set("unused", "line-2")
    if has_assign:
        await _assign(view, "assigned", "line-3")
    # Each use renews; "unused" is last touched at 0 s. Presence is checked at most
    # half a TTL after a use, absence at least half a TTL after expiry.
    for step in range(3):
        await view.wait(ttl / 2)
        found = await _get(view, "used")
        _expect(found == "line-1", f"a key used {ttl / 2:g} s ago expired (step {step})")
        if has_assign:
            kept = await _assign(view, "assigned", "other")
            _expect(kept == "line-3", f"a key assigned {ttl / 2:g} s ago answered {kept!r}")
    gone = await _get(view, "unused")
    _expect(gone is None, f"a key unused for {1.5 * ttl:g} s (TTL {ttl:g} s) answered {gone!r}")
    await view.wait(1.5 * ttl)
    _expect(await _get(view, "used") is None, f"a key unused for {1.5 * ttl:g} s did not expire")
    if has_assign:
        fresh = await _assign(view, "assigned", "line-4")
        _expect(fresh == "line-4", f"assign on an expired key answered {fresh!r}, not line-4")


def _ttl(backend: object) -> float | None:
    ttl = getattr(backend, "assignment_ttl", None)
    return float(ttl) if isinstance(ttl, int | float) and not isinstance(ttl, bool) else None


_RULES: tuple[tuple[str, Callable[[_View], Coroutine[Any, Any, None]]], ...] = (
    ("a new backend remembers nothing", _starts_empty),
    ("get returns exactly what set stored", _round_trips),
    ("a set replaces the previous line", _set_replaces),
    ("keys are independent", _keys_are_independent),
    ("delete answers True once, then False", _delete_once),
    ("assign stores the candidate only when nothing is remembered", _assign_gets_or_sets),
    ("clear forgets every assignment", _clear_forgets),
    ("concurrent assigns of one key get one answer", _one_answer_under_races),
    ("concurrent sets of different keys are all kept", _no_set_lost_under_races),
    ("an assignment expires assignment_ttl after its last use", _expires),
)


async def _apart(view: _View, other: _View) -> None:
    await view.set("shared-key", "mine")
    await other.set("shared-key", "theirs")
    mine, theirs = await _get(view, "shared-key"), await _get(other, "shared-key")
    _expect((mine, theirs) == ("mine", "theirs"), f"the two answered {mine!r} and {theirs!r}")
    await other.set("only-theirs", "line-1")
    _expect(await _get(view, "only-theirs") is None, "one saw a key only the other had set")
    await _delete(view, "shared-key")
    _expect(await _get(other, "shared-key") == "theirs", "a delete in one reached the other")
    await view.set("mine-too", "line-2")
    await view.clear()
    kept = await _get(other, "only-theirs")
    _expect(kept == "line-1", f"clear() of one made the other forget: {kept!r}")


# -- running them -----------------------------------------------------------------------


async def _run(
    make: Callable[[], _View],
    other: Callable[[], _View] | None,
    closing: Callable[[object], Awaitable[None]],
) -> None:
    for name, rule in _RULES:
        view = make()
        try:
            await rule(view)
        except _Broken as broken:
            msg = f"{view.backend!r} breaks the rule {name!r}: {broken}"
            raise StateContractError(msg) from None
        finally:
            await closing(view.backend)
    view = make()
    try:
        # A ResilientState over a store without a board is no board (shares_notices).
        if isinstance(view.backend, Board) and getattr(view.backend, "shares_notices", True):
            check_board(view.backend)
    except BoardContractError as broken:
        msg = f"{view.backend!r} breaks a notice board rule: {broken}"
        raise StateContractError(msg) from None
    finally:
        await closing(view.backend)
    if other is None:
        return
    mine, theirs = make(), other()
    try:
        await _apart(mine, theirs)
    except _Broken as broken:
        msg = (
            f"{mine.backend!r} and {theirs.backend!r} break the rule "
            f"'two backends never see each other': {broken}"
        )
        raise StateContractError(msg) from None
    finally:
        await closing(mine.backend)
        await closing(theirs.backend)


def _drive(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine that never suspends (sync calls only) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    msg = "the sync contract suspended: a backend method returned an awaitable"
    raise StateContractError(msg)


def _advance_for(backend: object, advance: Callable[[float], None] | None) -> Any:
    if advance is not None:
        return advance
    # A MemoryState on a fake clock (FakeClock has advance) moves in no time.
    if isinstance(backend, MemoryState):
        return getattr(backend.clock, "advance", None)
    return None


def check_state(
    factory: Callable[[], StateBackend],
    *,
    other: Callable[[], StateBackend] | None = None,
    advance: Callable[[float], None] | None = None,
) -> None:
    """Run the state contract (see the module's rules) against ``factory()``'s backends.

    ``factory`` must return a fresh, empty backend on each call; each rule takes one
    and ``clear()``s it afterwards. ``other``, a second factory (another namespace,
    say), adds the rule that the two keep apart. With an ``assignment_ttl``, time
    passes through ``advance(seconds)`` if given (a ``FakeClock``'s ``advance``; a
    ``MemoryState``'s own fake clock is found by itself), else by really waiting
    (about three TTLs), which is done for a TTL of at most five seconds only: give a
    longer-lived backend (30 days, say) a short TTL in a second run to check expiry.
    Raises ``StateContractError`` naming the first rule broken.

    >>> from linq_router.state import MemoryState
    >>> check_state(MemoryState)

    .. versionadded:: 0.4
    """

    def make(build: Callable[[], StateBackend]) -> Callable[[], _View]:
        def view() -> _View:
            backend = build()
            return _View(backend, _advance_for(backend, advance), awaiting=False)

        return view

    async def closing(backend: object) -> None:
        _quietly(getattr(backend, "clear", None))

    _drive(_run(make(factory), make(other) if other is not None else None, closing))


async def check_async_state(
    factory: Callable[[], object],
    *,
    other: Callable[[], object] | None = None,
    advance: Callable[[float], None] | None = None,
) -> None:
    """``check_state`` for backends whose methods are coroutines (``AsyncRedisState``).

    Awaited on the caller's event loop; "concurrent" means many calls gathered on
    it. The same rules, options and errors as ``check_state``; a method that is not
    a coroutine function is a ``StateContractError``.

    .. versionadded:: 0.4
    """

    def make(build: Callable[[], object]) -> Callable[[], _View]:
        def view() -> _View:
            backend = build()
            for name in ("get_assignment", "set_assignment", "delete_assignment", "clear"):
                if not inspect.iscoroutinefunction(getattr(backend, name, None)):
                    msg = f"{backend!r}.{name} is not a coroutine function"
                    raise StateContractError(msg)
            return _View(backend, advance, awaiting=True)

        return view

    async def closing(backend: object) -> None:
        clear = getattr(backend, "clear", None)
        if clear is not None:
            try:
                await clear()
            except Exception:  # cleaning up: the rule's own verdict stands
                return

    await _run(make(factory), make(other) if other is not None else None, closing)


def _quietly(call: Callable[[], object] | None) -> None:
    if call is None:
        return
    try:
        answer = call()
    except Exception:  # cleaning up: the rule's own verdict stands
        return
    close = getattr(answer, "close", None) if inspect.isawaitable(answer) else None
    if close is not None:
        close()  # a coroutine from an async backend given to check_state
