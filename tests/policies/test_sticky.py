"""sticky: stable per conversation, across instances; consistent hashing moves few."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import attrs
import pytest

from linq_router._errors import NoEligibleNumberError
from linq_router._models import PhoneNumber, Reputation
from linq_router._pick import make_context
from linq_router.policies import CompiledPolicy, as_policy, compile_policy, parse_policy, sticky
from linq_router.policies._sticky import VNODES
from linq_router.state import MemoryState

from .conftest import make_line, snap

RECIPIENTS = [f"+1415555{i:04d}" for i in range(3000)]


def _fresh(lines: list[PhoneNumber], spec: str = "sticky") -> CompiledPolicy:
    return compile_policy(parse_policy(spec), snap(lines))


def _assign(compiled: CompiledPolicy, recipients: list[str]) -> dict[str, str]:
    return {to: compiled.pick(make_context(to)).number.id for to in recipients}


def test_same_recipient_same_line_across_calls_and_instances() -> None:
    """Two independent policies (no shared state) agree on every recipient."""
    lines = [make_line(i) for i in range(10)]
    first = _assign(_fresh(lines), RECIPIENTS[:500])
    again = _assign(_fresh(list(reversed(lines))), RECIPIENTS[:500])
    assert first == again
    assert len(set(first.values())) == 10


def test_same_line_across_threads(in_threads: Callable[..., list[set[str]]]) -> None:
    """Threads picking for the same conversation all get one line."""
    compiled = _fresh([make_line(i) for i in range(20)])
    seen = set().union(
        *in_threads(
            lambda: {compiled.pick(make_context("+14155550001")).number.id for _ in range(200)}, 8
        )
    )
    assert len(seen) == 1


def test_removing_a_line_moves_only_its_recipients() -> None:
    """Fresh instances with one line fewer: only the removed line's recipients move."""
    lines = [make_line(i) for i in range(10)]
    before = _assign(_fresh(lines), RECIPIENTS)
    after = _assign(_fresh(lines[:3] + lines[4:]), RECIPIENTS)
    moved = {to for to in RECIPIENTS if before[to] != after[to]}
    assert moved == {to for to in RECIPIENTS if before[to] == lines[3].id}
    assert moved


@pytest.mark.parametrize("n", [4, 9, 19])
def test_adding_one_line_moves_about_one_in_n_plus_one(n: int) -> None:
    """Adding the (n+1)th line moves about 1/(n+1) of recipients, all to the new line."""
    lines = [make_line(i) for i in range(n + 1)]
    before = _assign(_fresh(lines[:n]), RECIPIENTS)
    after = _assign(_fresh(lines), RECIPIENTS)
    moved = [to for to in RECIPIENTS if before[to] != after[to]]
    assert {after[to] for to in moved} == {lines[n].id}
    share = len(moved) / len(RECIPIENTS)
    # A line's share of the ring varies by about 1/sqrt(VNODES); allow three of those.
    spread = 3 / math.sqrt(VNODES)
    assert (1 - spread) / (n + 1) <= share <= (1 + spread) / (n + 1)


def test_at_risk_lines_get_a_smaller_share() -> None:
    """The ring is weighted by reputation: AT_RISK lines own fewer recipients."""
    lines = [make_line(i) for i in range(5)] + [make_line(i, "AT_RISK") for i in range(5, 10)]
    counts = Counter(_assign(_fresh(lines), RECIPIENTS).values())
    healthy = sum(counts[line.id] for line in lines[:5])
    at_risk = sum(counts[line.id] for line in lines[5:])
    assert 2.5 < healthy / at_risk < 6.5


def test_remembered_line_survives_pool_changes_while_eligible() -> None:
    """A conversation keeps its line when other lines join, and moves when it goes."""
    lines = [make_line(i) for i in range(5)]
    policy = parse_policy("skip-critical | sticky")
    compiled = compile_policy(policy, snap(lines))
    ctx = make_context("+14155550123")
    line_id = compiled.pick(ctx).number.id
    grown = [*lines, *(make_line(i) for i in range(5, 50))]
    compiled = compile_policy(policy, snap(grown), previous=compiled)
    assert compiled.pick(ctx).number.id == line_id
    assert "remembered" in str(compiled.pick(ctx).explanation)
    degraded = [
        attrs.evolve(n, reputation=Reputation.CRITICAL) if n.id == line_id else n for n in grown
    ]
    compiled = compile_policy(policy, snap(degraded), previous=compiled)
    moved = compiled.pick(ctx).number.id
    assert moved != line_id
    assert compiled.pick(ctx).number.id == moved


def test_group_key_ignores_order_and_email_case() -> None:
    """The same group in another order, or an email in other case, is one conversation."""
    compiled = _fresh([make_line(i) for i in range(30)])
    a = compiled.pick(make_context(["+14155550001", "Ann@Example.com"])).number.id
    b = compiled.pick(make_context(["ann@example.com", "+14155550001"])).number.id
    assert a == b


def test_without_recipient_falls_back_to_weighted_choice() -> None:
    """No `to`: the weighted rotation, which visits every line."""
    lines = [make_line(i) for i in range(4)]
    compiled = _fresh(lines)
    ctx = make_context(None)
    picks = [compiled.pick(ctx) for _ in range(8)]
    assert Counter(p.number.id for p in picks) == Counter({line.id: 2 for line in lines})
    assert "no recipient" in str(picks[0].explanation)


def test_forget_and_pin() -> None:
    """pin() re-assigns a conversation; forget() lets it hash afresh."""
    selector = sticky()
    lines = [make_line(i) for i in range(6)]
    compiled = compile_policy(as_policy(selector), snap(lines))
    ctx = make_context("+14155550999")
    original = compiled.pick(ctx).number.id
    other = next(line.id for line in lines if line.id != original)
    selector.pin(ctx.key or "", other)
    assert compiled.pick(ctx).number.id == other
    assert selector.forget(ctx.key or "")
    assert not selector.forget(ctx.key or "")
    assert compiled.pick(ctx).number.id == original


def test_memory_is_bounded() -> None:
    """max_size bounds the remembered assignments."""
    state = MemoryState(max_size=50)
    compiled = compile_policy(
        as_policy(sticky(state=state)), snap([make_line(i) for i in range(5)])
    )
    _assign(compiled, RECIPIENTS[:500])
    assert len(state) == 50
    assert parse_policy("sticky(max_size=7)").selector.max_size == 7  # type: ignore[union-attr]


def test_all_weights_zero_raises() -> None:
    """Only CRITICAL lines and no ignore-health: NoEligibleNumberError."""
    compiled = _fresh([make_line(0, "CRITICAL")])
    with pytest.raises(NoEligibleNumberError):
        compiled.pick(make_context("+14155550001"))


def test_two_processes_agree_without_talking() -> None:
    """A separate interpreter (its own hash seed, no shared state) makes the same assignments."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json\n"
        "from linq_router import PhoneNumber, Reputation, Snapshot\n"
        "from linq_router._pick import make_context\n"
        "from linq_router.policies import compile_policy, parse_policy\n"
        "reps = [Reputation.HEALTHY, Reputation.AT_RISK]\n"
        "lines = [PhoneNumber(f'id-{i}', f'+1202555{i:04d}', reps[i % 2]) for i in range(25)]\n"
        "c = compile_policy(parse_policy('sticky'), Snapshot(lines))\n"
        "to = [f'+1415555{i:04d}' for i in range(300)]\n"
        "print(json.dumps({t: c.pick(make_context(t)).number.id for t in to}))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    theirs = json.loads(proc.stdout)
    reps = [Reputation.HEALTHY, Reputation.AT_RISK]
    lines = [PhoneNumber(f"id-{i}", f"+1202555{i:04d}", reps[i % 2]) for i in range(25)]
    ours = _assign(_fresh(lines), [f"+1415555{i:04d}" for i in range(300)])
    assert ours == theirs
