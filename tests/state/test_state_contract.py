"""check_state and check_async_state catch each broken rule, and name it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from linq_router.state import MemoryState
from linq_router.testing import FakeClock, StateContractError, check_async_state, check_state


class Dict:
    """A correct, minimal backend on a dict; the subclasses below each break one rule."""

    def __init__(self, data: dict[str, str] | None = None) -> None:
        self.data: dict[str, str] = {} if data is None else data
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def get_assignment(self, key: str) -> str | None:
        return self.data.get(key)

    def set_assignment(self, key: str, line_id: str) -> None:
        self.data[key] = line_id

    def delete_assignment(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    def clear(self) -> None:
        self.data.clear()

    def assign(self, key: str, candidate: str) -> str:
        with self.lock:
            return self.data.setdefault(key, candidate)


class NotEmpty(Dict):
    def __init__(self) -> None:
        super().__init__({"+14155550100": "left-over"})


class DeleteAnswersNone(Dict):
    def delete_assignment(self, key: str) -> bool:
        super().delete_assignment(key)
        return None  # type: ignore[return-value]


class Bytes(Dict):
    def get_assignment(self, key: str) -> str | None:
        found = super().get_assignment(key)
        return found.encode() if found is not None else None  # type: ignore[return-value]


class AsciiKeys(Dict):
    def set_assignment(self, key: str, line_id: str) -> None:
        super().set_assignment(key.encode("ascii", "replace").decode(), line_id)

    def get_assignment(self, key: str) -> str | None:
        return super().get_assignment(key.encode("ascii", "replace").decode())


class FirstSetWins(Dict):
    def set_assignment(self, key: str, line_id: str) -> None:
        self.data.setdefault(key, line_id)


class GlobDelete(Dict):
    def delete_assignment(self, key: str) -> bool:
        prefix = key.rstrip("*")
        doomed = [k for k in self.data if k.startswith(prefix)]
        for k in doomed:
            del self.data[k]
        return bool(doomed)


class ClearForgetsNothing(Dict):
    def clear(self) -> None:
        pass


class AssignOverwrites(Dict):
    def assign(self, key: str, candidate: str) -> str:
        self.data[key] = candidate
        return candidate


class RacyAssign(Dict):
    def assign(self, key: str, candidate: str) -> str:
        found = self.data.get(key)
        if found is None:
            time.sleep(0.005)  # another thread reads None meanwhile
            self.data[key] = found = candidate
        return found


class NeverExpires(Dict):
    def __init__(self) -> None:
        super().__init__()
        self.assignment_ttl = 10.0


class NotRenewedByUse(MemoryState):
    def get_assignment(self, key: str) -> str | None:
        with self._lock:
            found = self._cache.get(key)
            if found is not None and self._expires[key] <= self.clock():
                return None
            return found


@pytest.mark.parametrize(
    ("factory", "rule", "detail"),
    [
        (NotEmpty, "a new backend remembers nothing", "answered 'left-over' on a new backend"),
        (DeleteAnswersNone, "a new backend remembers nothing", "answered None, not a bool"),
        (Bytes, "get returns exactly what set stored", "(bytes), not a str or None"),
        (AsciiKeys, "get returns exactly what set stored", "to '📞', got back 'LLLLL"),
        (FirstSetWins, "a set replaces the previous line", "got 'line-1'"),
        (GlobDelete, "keys are independent", "'a' answered None, not 'line-0'"),
        (AssignOverwrites, "assign stores the candidate only when nothing", "not the remembered"),
        (ClearForgetsNothing, "clear forgets every assignment", "after clear()"),
        (RacyAssign, "concurrent assigns of one key get one answer", "16 concurrent assigns"),
    ],
)
def test_each_broken_rule_is_named(factory: Callable[[], Dict], rule: str, detail: str) -> None:
    """A backend that breaks one rule fails with a StateContractError naming it."""
    check_state(Dict)  # the baseline passes
    with pytest.raises(StateContractError, match=f"breaks the rule '{rule}") as caught:
        check_state(factory)
    assert detail in str(caught.value)
    assert str(caught.value).startswith(f"{factory.__name__}()")


def test_ttl_rules_run_on_a_fake_clock() -> None:
    """With advance=, a backend that never expires, or does not renew on use, fails."""
    clock = FakeClock()
    with pytest.raises(StateContractError, match=r"a key unused for 15 s \(TTL 10 s\) answered"):
        check_state(NeverExpires, advance=clock.advance)
    with pytest.raises(StateContractError, match="expired"):
        check_state(lambda: NotRenewedByUse(assignment_ttl=10, clock=clock))
    check_state(lambda: MemoryState(assignment_ttl=10, clock=clock))


def test_long_ttls_without_a_fake_clock_are_not_waited_for() -> None:
    """A 30-day TTL on a real clock: the TTL rules are left out, the others run."""
    started = time.perf_counter()
    check_state(lambda: MemoryState(assignment_ttl=30 * 24 * 3600))
    assert time.perf_counter() - started < 2


def test_namespaces_that_share_are_caught() -> None:
    """other= adds the rule that two backends keep apart: two views of one dict fail it."""
    shared: dict[str, str] = {}
    check_state(Dict, other=Dict)
    with pytest.raises(StateContractError, match="break the rule 'two backends never see each"):
        check_state(lambda: Dict(shared), other=lambda: Dict(shared))


def test_a_backend_without_assign_is_checked_on_the_rest() -> None:
    """assign is optional for StateBackend: its rules are skipped when it is missing."""

    class FourMethods(Dict):
        assign = None  # type: ignore[assignment]

    check_state(FourMethods)


class AsyncDict:
    """Dict's twin, with coroutine methods."""

    def __init__(self) -> None:
        self.sync = Dict()

    async def get_assignment(self, key: str) -> str | None:
        return self.sync.get_assignment(key)

    async def set_assignment(self, key: str, line_id: str) -> None:
        self.sync.set_assignment(key, line_id)

    async def delete_assignment(self, key: str) -> bool:
        return self.sync.delete_assignment(key)

    async def clear(self) -> None:
        self.sync.clear()

    async def assign(self, key: str, candidate: str) -> str:
        found = self.sync.get_assignment(key)
        if found is None:
            await asyncio.sleep(0)  # lets the other tasks read None too: a race
            self.sync.set_assignment(key, candidate)
            return candidate
        return found


def test_the_async_contract() -> None:
    """check_async_state passes a correct twin and catches a racy one or a sync one."""

    class AtomicAssign(AsyncDict):
        async def assign(self, key: str, candidate: str) -> str:
            return self.sync.assign(key, candidate)

    async def main() -> None:
        await check_async_state(AtomicAssign)
        with pytest.raises(StateContractError, match="concurrent assigns of one key"):
            await check_async_state(AsyncDict)
        with pytest.raises(StateContractError, match="is not a coroutine function"):
            await check_async_state(Dict)

    asyncio.run(main())
    with pytest.raises(StateContractError, match="returned an awaitable: use check_async_state"):
        check_state(AsyncDict)  # type: ignore[arg-type]


# -- the notice board's rules ------------------------------------------------------------


def test_a_local_board_passes_the_board_rules() -> None:
    from linq_router.state._board import LocalBoard
    from linq_router.testing._board_contract import check_board

    check_board(LocalBoard())


def test_a_board_whose_first_post_does_not_win_breaks_a_rule() -> None:
    from linq_router.state._board import LocalBoard, Record
    from linq_router.testing._board_contract import BoardContractError, check_board

    class LastWins(LocalBoard):
        def post(
            self, topic: str, name: str, record: Record, ttl: float | None, *, first: bool = False
        ) -> Record:
            return super().post(topic, name, record, ttl)

    with pytest.raises(BoardContractError, match="the first must win"):
        check_board(LastWins())


def test_a_state_that_is_a_broken_board_fails_check_state() -> None:
    from linq_router.state._board import LocalBoard

    class Deaf(MemoryState, LocalBoard):
        def __init__(self) -> None:
            MemoryState.__init__(self)
            LocalBoard.__init__(self)

        def subscribe(self, listener, joined=None):  # type: ignore[no-untyped-def]
            return super().subscribe(lambda notice: None, joined)

    with pytest.raises(StateContractError, match="notice board rule: a subscriber heard"):
        check_state(Deaf)
