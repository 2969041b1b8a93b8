"""Incremental compiles: whatever changed, they agree with compiling afresh."""

from __future__ import annotations

import math
from collections import Counter

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linq_router._errors import NoEligibleNumberError, PolicySpecError
from linq_router._models import PhoneNumber, Reputation, Snapshot
from linq_router._pick import PickContext, Stage, make_context
from linq_router.policies import (
    Adjustments,
    BaseFilter,
    CompiledPolicy,
    Kept,
    Routed,
    compile_policy,
    parse_policy,
    round_robin,
)

from .conftest import make_line

SPECS = [
    "skip-critical | reputation-weighted",
    "round-robin",
    "reputation-weighted",
    "sticky",
    "skip-critical | sticky",
    "skip-critical(on_empty=ignore-health) | round-robin",
    "geomatch | round-robin",
    "geomatch | sticky",
    "line-type(iMessage) | round-robin",
    "prefer-imessage | reputation-weighted",
    "exclude(line-00003) | round-robin",
    "only(line-00001, line-00002, line-00004, line-00007) | sticky",
]
AREAS = ["202", "212", "415"]
RECIPIENTS = [f"+1{area}555{i:04d}" for area in AREAS for i in range(20)] + ["+447700900123"]


def _line(i: int, rep: str, status: str, kind: str) -> PhoneNumber:
    number = f"+1{AREAS[i % 3]}555{i:04d}" if i % 5 else f"+4477009{i:05d}"
    return make_line(i, rep, status=status, line_type=kind, number=number)


lines_st = st.builds(
    _line,
    st.integers(0, 14),
    st.sampled_from(["HEALTHY", "HEALTHY", "AT_RISK", "CRITICAL"]),
    st.sampled_from(["ACTIVE", "ACTIVE", "FLAGGED"]),
    st.sampled_from(["iMessage", "RCS"]),
)


def _pool(lines: list[PhoneNumber]) -> Snapshot:
    unique = {line.id: line for line in lines}
    return Snapshot(tuple(unique.values()))


def _answer(compiled: object, ctx: PickContext) -> tuple[frozenset[str], str | None]:
    candidates = frozenset(n.id for n in compiled.candidates(ctx))  # type: ignore[attr-defined]
    try:
        explanation = compiled.pick(ctx).explanation  # type: ignore[attr-defined]
    except NoEligibleNumberError:
        return candidates, None
    return candidates, " → ".join(str(stage) for stage in explanation.stages)


@settings(max_examples=100, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    first=st.lists(lines_st, max_size=12),
    steps=st.lists(st.lists(lines_st, max_size=4), min_size=1, max_size=5),
)
def test_incremental_compile_agrees_with_a_fresh_one(
    spec: str, first: list[PhoneNumber], steps: list[list[PhoneNumber]]
) -> None:
    """After any run of changes, the candidates and stages equal a fresh compile's."""
    policy = parse_policy(spec)
    snapshot = _pool(first)
    compiled = compile_policy(policy, snapshot)
    for step in steps:
        lines = {line.id: line for line in snapshot}
        for line in step:  # change, add, or (for a repeat of the same id) remove
            if line.id in lines and line == lines[line.id]:
                del lines[line.id]
            else:
                lines[line.id] = line
        snapshot = snapshot.derive(lines.values())
        compiled = compile_policy(policy, snapshot, previous=compiled)
        fresh = compile_policy(policy, snapshot)
        for to in RECIPIENTS[::7]:
            ctx = make_context(to)
            assert _answer(compiled, ctx) == _answer(fresh, ctx), to


@pytest.mark.parametrize("spec", ["round-robin", "reputation-weighted"])
def test_updated_rotation_keeps_exact_shares(spec: str) -> None:
    """A rotation updated line by line gives each line exactly its weight per cycle."""
    policy = parse_policy(spec)
    pool = Snapshot([make_line(i, "AT_RISK" if i % 4 == 0 else "HEALTHY") for i in range(40)])
    compiled = compile_policy(policy, pool)
    for i in range(0, 40, 3):
        line = pool.get(f"line-{i:05d}")
        assert line is not None
        flipped = (
            Reputation.HEALTHY if line.reputation is Reputation.AT_RISK else Reputation.AT_RISK
        )
        pool = pool.replace_number(attrs.evolve(line, reputation=flipped))
        compiled = compile_policy(policy, pool, previous=compiled)
        for _ in range(5):
            compiled.pick(make_context(None))
    rotation = compiled.leaves["chat:"].selector.rotation  # type: ignore[union-attr]
    counts = Counter(compiled.pick(make_context(None)).number.id for _ in range(rotation.cycle))
    if spec == "round-robin":
        assert set(counts.values()) == {1}
    else:
        for line in pool:
            assert counts[line.id] == (4 if line.reputation is Reputation.HEALTHY else 1)


def test_updated_sticky_ring_agrees_with_a_fresh_ring() -> None:
    """New conversations hash to the same lines as in a process that compiled afresh."""
    policy = parse_policy("skip-critical | sticky")
    pool = Snapshot([make_line(i) for i in range(30)])
    compiled = compile_policy(policy, pool)
    for i in (3, 7, 11):
        line = pool.get(f"line-{i:05d}")
        assert line is not None
        pool = pool.replace_number(attrs.evolve(line, reputation=Reputation.AT_RISK))
        compiled = compile_policy(policy, pool, previous=compiled)
    pool = pool.derive([*pool, make_line(31), make_line(32)])
    compiled = compile_policy(policy, pool, previous=compiled)
    fresh = compile_policy(parse_policy("skip-critical | sticky"), pool)
    keys = [f"+1415555{i:04d}" for i in range(500)]
    assert [compiled.pick(make_context(k)).number.id for k in keys] == [
        fresh.pick(make_context(k)).number.id for k in keys
    ]


def test_groups_without_changed_lines_keep_their_selector() -> None:
    """geomatch: a change in one area code recompiles that group, not the others."""
    policy = parse_policy("geomatch | round-robin")
    pool = Snapshot([_line(i, "HEALTHY", "ACTIVE", "iMessage") for i in range(1, 15)])
    compiled = compile_policy(policy, pool)
    line = pool.get("line-00001")  # area 212
    assert line is not None
    changed = pool.replace_number(attrs.evolve(line, forwarding_number="+12025550000"))
    again = compile_policy(policy, changed, previous=compiled)
    assert again.selector_for("chat:/area:415") is compiled.selector_for("chat:/area:415")
    assert again.selector_for("chat:/area:212") is not compiled.selector_for("chat:/area:212")


def test_an_unchanged_group_explains_itself_with_the_new_counts() -> None:
    """A kept selector's picks count the lines as the new compile does."""
    policy = parse_policy("skip-critical | geomatch | round-robin")
    pool = Snapshot([_line(i, "HEALTHY", "ACTIVE", "iMessage") for i in range(1, 15)])
    compiled = compile_policy(policy, pool)
    line = pool.get("line-00001")  # area 212
    assert line is not None
    changed = pool.replace_number(attrs.evolve(line, reputation=Reputation.CRITICAL))
    again = compile_policy(policy, changed, previous=compiled)
    text = str(again.pick(make_context("+14155550000")).explanation)
    assert "skip-critical: kept 13 of 14 (1 CRITICAL skipped) → geomatch: kept 4 of 13" in text


class _PerLine(BaseFilter):
    """A routing filter with a group of every line per line: nested, groups multiply."""

    name = "per-line"

    def compile(self, lines: tuple[PhoneNumber, ...]) -> Routed:
        stage = Stage(self.name, len(lines), len(lines))
        groups = {line.id: Kept(lines, stage) for line in lines}
        return Routed(groups, lambda ctx: next(iter(groups)))


def test_too_large_specs_are_refused_quickly() -> None:
    """Over 64 stages, or routing filters nested too deep, fail with PolicySpecError."""
    with pytest.raises(PolicySpecError, match="at most 64"):
        parse_policy(" | ".join(["skip-critical"] * 100 + ["round-robin"]))
    with pytest.raises(PolicySpecError, match="routing filters"):
        parse_policy("geomatch | geomatch | geomatch | geomatch | round-robin")
    many = _PerLine() | _PerLine() | round_robin()
    pool = Snapshot([make_line(i, number=f"+1202{i:07d}") for i in range(200)])
    with pytest.raises(PolicySpecError, match="about 40000 groups, more than 20000"):
        compile_policy(many, pool)


def test_a_soft_filter_that_stops_falling_back_recompiles_below() -> None:
    """prefer-imessage passing every line, then only the new iMessage one: no RCS left."""
    policy = parse_policy("prefer-imessage | round-robin")
    rcs = Snapshot([make_line(1, line_type="RCS")])
    compiled = compile_policy(policy, rcs)
    both = rcs.derive([*rcs, make_line(2, line_type="iMessage")])
    compiled = compile_policy(policy, both, previous=compiled)
    ctx = make_context("+14155550000")
    assert [n.id for n in compiled.candidates(ctx)] == ["line-00002"]
    assert {compiled.pick(ctx).number.id for _ in range(4)} == {"line-00002"}


@pytest.mark.parametrize("spec", ["geomatch | sticky", "skip-critical | sticky"])
def test_a_changed_line_never_rebuilds_a_whole_ring(
    spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first compile, a changed line updates the rings; none is built afresh."""
    from linq_router.policies import _sticky

    pool = Snapshot([_line(i, "HEALTHY", "ACTIVE", "iMessage") for i in range(1, 15)])
    policy = parse_policy(spec)
    compiled = compile_policy(policy, pool)
    builds: list[str] = []
    original = _sticky._CompiledSticky._build

    def counting(self: _sticky._CompiledSticky, lines: list[PhoneNumber]) -> None:
        builds.append(self._group.path)
        original(self, lines)

    monkeypatch.setattr(_sticky._CompiledSticky, "_build", counting)
    for rep in (Reputation.CRITICAL, Reputation.AT_RISK, Reputation.HEALTHY):
        line = pool.get("line-00004")
        assert line is not None
        pool = pool.replace_number(attrs.evolve(line, reputation=rep))
        compiled = compile_policy(policy, pool, previous=compiled)
    assert builds == []


adjustments_st = st.builds(
    lambda out, ramp: Adjustments(
        {f"line-{i:05d}": f"line {i} out" for i in out},
        {f"line-{i:05d}": f for i, f in ramp.items() if i not in out},
    ),
    st.sets(st.integers(0, 14), max_size=4),
    st.dictionaries(st.integers(0, 14), st.sampled_from([0.1, 0.25, 0.5, 0.75]), max_size=4),
)


def _cycle_counts(compiled: CompiledPolicy) -> dict[str, dict[str, int]]:
    """Per group with a rotation: each line's picks in one whole cycle, in lowest terms.

    (An updated rotation may keep a longer cycle than a fresh one for the same shares.)
    """
    counts = {}
    for path, leaf in compiled.leaves.items():
        rotation = getattr(leaf.selector, "rotation", None)
        if rotation is not None:
            seen = Counter(
                rotation.pick(make_context(None)).number.id for _ in range(rotation.cycle)
            )
            gcd = math.gcd(*seen.values())
            counts[path] = {line: n // gcd for line, n in seen.items()}
    return counts


@settings(max_examples=100, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    first=st.lists(lines_st, max_size=12),
    steps=st.lists(
        st.tuples(st.lists(lines_st, max_size=3), adjustments_st), min_size=1, max_size=5
    ),
)
def test_incremental_compile_with_adjustments_agrees_with_a_fresh_one(
    spec: str, first: list[PhoneNumber], steps: list[tuple[list[PhoneNumber], Adjustments]]
) -> None:
    """Ejected lines and slow-start factors changing with the snapshot: same as afresh."""
    policy = parse_policy(spec)
    snapshot = _pool(first)
    compiled = compile_policy(policy, snapshot)
    for step, adjust in steps:
        lines = {line.id: line for line in snapshot}
        for line in step:
            lines[line.id] = line
        snapshot = snapshot.derive(lines.values())
        compiled = compile_policy(policy, snapshot, previous=compiled, adjustments=adjust)
        fresh = compile_policy(policy, snapshot, adjustments=adjust)
        for to in RECIPIENTS[::7]:
            ctx = make_context(to)
            assert _answer(compiled, ctx) == _answer(fresh, ctx), to
            assert not {n.id for n in compiled.candidates(ctx)} & set(adjust.excluded)
        updated, afresh = _cycle_counts(compiled), _cycle_counts(fresh)
        # sticky builds its rotation (picks without a recipient) only once it is used
        for path in updated.keys() & afresh.keys():
            assert updated[path] == afresh[path], path
