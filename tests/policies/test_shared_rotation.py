"""Rotations shared through a state that can rotate: routers together give one's shares."""

from __future__ import annotations

import collections
import threading

from doubles import FakeRegistry, line
from hypothesis import given, settings
from hypothesis import strategies as st

from linq_router import Router, Snapshot
from linq_router.policies import reputation_weighted, round_robin
from linq_router.state import MemoryState

TO = "+14155550100"


class CountingState(MemoryState):
    """MemoryState plus a shared counter per schedule, as the Redis backend keeps one."""

    def __init__(self) -> None:
        super().__init__()
        self.counters: collections.Counter[str] = collections.Counter()
        self._turns = threading.Lock()

    def rotate(self, schedule: str) -> int:
        with self._turns:
            self.counters[schedule] += 1
            return self.counters[schedule]


def _routers(snapshot: Snapshot, policy: str, count: int, state: CountingState) -> list[Router]:
    return [
        Router(FakeRegistry(snapshot), policy=policy, state=state, pacing=None, ejection=None)
        for _ in range(count)
    ]


@settings(max_examples=40, deadline=None)
@given(
    reps=st.lists(st.sampled_from(["HEALTHY", "AT_RISK"]), min_size=1, max_size=9),
    routers=st.integers(2, 5),
    order=st.lists(st.integers(0, 4), min_size=1, max_size=200),
    policy=st.sampled_from(["round-robin", "reputation-weighted"]),
)
def test_routers_sharing_a_rotation_give_the_shares_of_one(
    reps: list[str], routers: int, order: list[int], policy: str
) -> None:
    snapshot = Snapshot([line(i, rep) for i, rep in enumerate(reps)])
    shared = CountingState()
    fleet = _routers(snapshot, policy, routers, shared)
    alone = _routers(snapshot, policy, 1, CountingState())[0]
    together = [fleet[k % routers].pick(TO).phone_number for k in order]
    one = [alone.pick(TO).phone_number for _ in order]
    assert together == one  # the same sequence, turn for turn, whoever picks
    assert len(shared.counters) == 1
    for router in [*fleet, alone]:
        router.close()


def test_threads_in_two_routers_split_whole_cycles_exactly() -> None:
    snapshot = Snapshot([line(i, "HEALTHY" if i % 3 else "AT_RISK") for i in range(7)])
    shared = CountingState()
    a, b = _routers(snapshot, "reputation-weighted", 2, shared)
    a.pick(TO)  # compile both: one turn each
    b.pick(TO)
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def work(router: Router, n: int) -> None:
        for _ in range(n):
            number = router.pick(TO).phone_number
            with lock:
                counts[number] += 1

    # Healthy weighs 1, AT_RISK 0.25: a cycle is 4 turns a healthy line, 1 an AT_RISK one.
    per_cycle = 4 * 4 + 3 * 1
    threads = [threading.Thread(target=work, args=(r, per_cycle * 5 - 1)) for r in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    total = sum(counts.values()) + 2
    assert total == per_cycle * 10
    # With the two warm-up turns, whole cycles: every line has its exact share, give or
    # take those two turns.
    for i in range(7):
        expected = 10 * (4 if i % 3 else 1)
        assert abs(counts[f"+1202555{i:04d}"] - expected) <= 2
    a.close()
    b.close()


def test_a_state_that_cannot_rotate_leaves_rotations_local() -> None:
    state = MemoryState()
    assert round_robin().with_state(state).__class__ is round_robin().__class__
    selector = round_robin()
    assert selector.with_state(state) is selector  # nothing to share turns through
    weighted = reputation_weighted()
    assert weighted.with_state(state) is weighted
    assert weighted.with_state(CountingState()) is not weighted
    router = Router(FakeRegistry(Snapshot([line(i) for i in range(3)])), "round-robin", state=state)
    assert len({router.pick(TO).phone_number for _ in range(3)}) == 3
    router.close()
