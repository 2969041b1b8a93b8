"""round-robin: strict rotation, exact under threads, and continuous across refreshes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import attrs
import pytest

from linq_router._pick import make_context
from linq_router.policies import (
    CompiledPolicy,
    as_policy,
    compile_policy,
    parse_policy,
    round_robin,
)

from .conftest import make_line, snap

CTX = make_context(None)


def _ids(compiled: CompiledPolicy, n: int) -> list[str]:
    return [compiled.pick(CTX).number.id for _ in range(n)]


def test_rotates_in_snapshot_order() -> None:
    """A fresh rotation visits every line once per cycle, in snapshot order."""
    lines = [make_line(i) for i in (3, 1, 2)]
    compiled = compile_policy(parse_policy("round-robin"), snap(lines))
    assert _ids(compiled, 6) == [line.id for line in lines] * 2


def test_sixteen_threads_share_exactly(in_threads: Callable[..., list[Counter[str]]]) -> None:
    """16 threads taking 16,000 picks over 8 lines give each line exactly 2,000."""
    compiled = compile_policy(as_policy(round_robin()), snap(make_line(i) for i in range(8)))
    counts = sum(
        in_threads(lambda: Counter(compiled.pick(CTX).number.id for _ in range(1000)), 16),
        Counter(),
    )
    assert sorted(counts.values()) == [2000] * 8


def test_same_lines_new_snapshot_continues_the_rotation() -> None:
    """A refresh with the same lines does not send the cursor back to the first line."""
    lines = [make_line(i) for i in range(5)]
    policy = parse_policy("round-robin")
    old = compile_policy(policy, snap(lines))
    first = _ids(old, 3)
    changed = [attrs.evolve(lines[4], forwarding_number="+12025550000"), *lines[:4]]  # new version
    new = compile_policy(policy, snap(changed), previous=old)
    assert new.version != old.version
    after = _ids(new, 7)
    assert first + after[:2] == [line.id for line in lines]
    assert Counter(first + after) == Counter({line.id: 2 for line in lines})


def test_changed_pool_continues_without_restarting() -> None:
    """After a line joins, the rotation goes on where it was; the newcomer joins the cycle."""
    lines = [make_line(i) for i in range(4)]
    policy = parse_policy("round-robin")
    old = compile_policy(policy, snap(lines))
    assert _ids(old, 2) == [lines[0].id, lines[1].id]
    grown = [*lines, make_line(9)]
    new = compile_policy(policy, snap(grown), previous=old)
    nxt = _ids(new, 10)
    assert nxt[0] == lines[2].id  # not back to the first line
    assert Counter(nxt) == Counter({line.id: 2 for line in grown})


def test_refresh_after_every_pick_keeps_the_rotation() -> None:
    """Recompiling (new version, shuffled order) before every pick still rotates exactly."""
    lines = [make_line(i) for i in range(5)]
    policy = parse_policy("round-robin")
    compiled = None
    picked = []
    for i in range(50):
        order = lines[i % 5 :] + lines[: i % 5]
        version_bump = attrs.evolve(order[0], forwarding_number=f"+1202555{i:04d}")
        compiled = compile_policy(policy, snap([version_bump, *order[1:]]), previous=compiled)
        picked.append(compiled.pick(CTX).number.id)
    assert picked[:5] == [line.id for line in lines]
    assert all(picked[i : i + 5] == picked[:5] for i in range(0, 50, 5))


def test_alternating_pools_keep_the_remaining_lines_level() -> None:
    """A line flapping in and out on every pick does not skew the lines that remain."""
    base = [make_line(i) for i in range(3)]
    pools = [snap(base), snap([*base, make_line(7)])]
    policy = parse_policy("round-robin")
    compiled = None
    counts: Counter[str] = Counter()
    for i in range(600):
        compiled = compile_policy(policy, pools[i % 2], previous=compiled)
        counts[compiled.pick(CTX).number.id] += 1
    # A positional cursor would favour whichever lines the two schedules share slots for.
    assert max(counts[b.id] for b in base) - min(counts[b.id] for b in base) <= 2


@pytest.mark.parametrize("period", [3, 4, 8, 50])
def test_a_line_that_comes_and_goes_gets_its_turns_while_present(period: int) -> None:
    """A line absent every other stretch of `period` picks still gets about 1/9 when present."""
    base = [make_line(i) for i in range(8)]
    extra = make_line(99)
    policy = parse_policy("round-robin")
    compiled = None
    counts: Counter[str] = Counter()
    present = 0
    for i in range(9000):
        here = (i // period) % 2 == 0
        present += here
        compiled = compile_policy(policy, snap([*base, extra] if here else base), previous=compiled)
        counts[compiled.pick(CTX).number.id] += 1
    # It returns where it left off instead of half a stride back, so it is not starved.
    assert counts[extra.id] == pytest.approx(present / 9, rel=0.25)
