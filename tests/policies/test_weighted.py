"""reputation-weighted: exact shares per cycle, spread-out picks, no restart on refresh."""

from __future__ import annotations

import itertools
from collections import Counter

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linq_router._errors import NoEligibleNumberError
from linq_router._models import Reputation
from linq_router._pick import make_context
from linq_router.policies import (
    CompiledPolicy,
    as_policy,
    compile_policy,
    parse_policy,
    reputation_weighted,
)
from linq_router.policies._rotation import integer_weights

from .conftest import make_line, snap

CTX = make_context(None)


def _ids(compiled: CompiledPolicy, n: int) -> list[str]:
    return [compiled.pick(CTX).number.id for _ in range(n)]


def test_default_weights_give_at_risk_a_quarter() -> None:
    """3 HEALTHY + 2 AT_RISK: a cycle of 14 picks, 4 per HEALTHY line, 1 per AT_RISK."""
    lines = [make_line(i, "HEALTHY") for i in range(3)] + [make_line(i, "AT_RISK") for i in (3, 4)]
    compiled = compile_policy(parse_policy("reputation-weighted"), snap(lines))
    counts = Counter(_ids(compiled, 14 * 10))
    assert counts == Counter(
        {**{lines[i].id: 40 for i in range(3)}, lines[3].id: 10, lines[4].id: 10}
    )


@settings(max_examples=60, deadline=None)
@given(
    reps=st.lists(st.sampled_from(["HEALTHY", "AT_RISK", "CRITICAL"]), min_size=1, max_size=12),
    at_risk=st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.75, 1.0, 2.0]),
    cycles=st.integers(1, 3),
)
def test_shares_are_exact_over_whole_cycles(reps: list[str], at_risk: float, cycles: int) -> None:
    """Over whole cycles each line's count is exactly proportional to its weight."""
    lines = [make_line(i, rep) for i, rep in enumerate(reps)]
    weights = {"HEALTHY": 1.0, "AT_RISK": at_risk, "CRITICAL": 0.0}
    policy = as_policy(reputation_weighted(AT_RISK=at_risk))
    compiled = compile_policy(policy, snap(lines))
    positive = [line for line in lines if weights[line.reputation.value] > 0]
    if not positive:
        with pytest.raises(NoEligibleNumberError, match="weight 0"):
            compiled.pick(CTX)
        return
    ints = dict(
        zip(
            [ln.id for ln in positive],
            integer_weights([weights[ln.reputation.value] for ln in positive]),
            strict=True,
        )
    )
    cycle = sum(ints.values())
    counts = Counter(_ids(compiled, cycle * cycles))
    assert counts == Counter({key: w * cycles for key, w in ints.items()})
    assert ints[positive[0].id] * weights[positive[-1].reputation.value] == pytest.approx(
        ints[positive[-1].id] * weights[positive[0].reputation.value], rel=1e-9
    )


def test_picks_of_a_heavy_line_are_spread_out() -> None:
    """1 HEALTHY among 20 AT_RISK: never twice in a row, gaps as even as they can be."""
    lines = [make_line(0, "HEALTHY")] + [make_line(i, "AT_RISK") for i in range(1, 21)]
    compiled = compile_policy(parse_policy("reputation-weighted"), snap(lines))
    seq = _ids(compiled, 24 * 5)
    heavy = [i for i, key in enumerate(seq) if key == lines[0].id]
    gaps = [b - a for a, b in itertools.pairwise(heavy)]
    assert len(heavy) == 20
    assert min(gaps) >= 5
    assert max(gaps) <= 7


def test_zero_weight_lines_are_never_picked() -> None:
    """CRITICAL and UNKNOWN weigh 0 by default and never come up."""
    lines = [make_line(0, "CRITICAL"), make_line(1, "HEALTHY"), make_line(2, "UNKNOWN")]
    compiled = compile_policy(parse_policy("reputation-weighted"), snap(lines))
    assert set(_ids(compiled, 50)) == {lines[1].id}


def test_all_zero_weights_raise_no_eligible() -> None:
    """A pool of CRITICAL lines, weighed 0, raises with the weights in the message."""
    compiled = compile_policy(parse_policy("reputation-weighted"), snap([make_line(0, "CRITICAL")]))
    with pytest.raises(NoEligibleNumberError, match=r"CRITICAL 0\.0"):
        compiled.pick(CTX)


def test_refresh_after_every_pick_keeps_every_share() -> None:
    """Recompiling before each pick (new version each time) still gives exact shares."""
    lines = [make_line(0, "HEALTHY"), make_line(1, "HEALTHY"), make_line(2, "AT_RISK")]
    policy = parse_policy("reputation-weighted")
    compiled = None
    counts: Counter[str] = Counter()
    for i in range(9 * 20):
        bumped = attrs.evolve(lines[i % 3], forwarding_number=f"+1310555{i:04d}")
        pool = [bumped if line.id == bumped.id else line for line in lines]
        compiled = compile_policy(
            policy, snap(reversed(pool) if i % 2 else pool), previous=compiled
        )
        counts[compiled.pick(CTX).number.id] += 1
    assert counts == Counter({lines[0].id: 80, lines[1].id: 80, lines[2].id: 20})


def test_refresh_does_not_restart_with_the_heaviest_line() -> None:
    """Picks across a refresh are the same sequence as without one (no first-pick bias)."""
    lines = [make_line(0, "HEALTHY"), make_line(1, "AT_RISK"), make_line(2, "AT_RISK")]
    policy = parse_policy("reputation-weighted")
    straight = _ids(compile_policy(policy, snap(lines)), 12)
    first = compile_policy(policy, snap(lines))
    head = _ids(first, 5)
    changed = [attrs.evolve(lines[0], forwarding_number="+13105550000"), *lines[1:]]
    tail = _ids(compile_policy(policy, snap(changed), previous=first), 7)
    assert head + tail == straight


def test_a_new_line_joins_mid_rotation_with_its_share() -> None:
    """A line added to a running pool gets its exact share from the next whole cycle on."""
    lines = [make_line(i, "HEALTHY") for i in range(3)]
    policy = parse_policy("reputation-weighted")
    old = compile_policy(policy, snap(lines))
    _ids(old, 2)
    grown = [*lines, make_line(3, "AT_RISK")]
    new = compile_policy(policy, snap(grown), previous=old)
    counts = Counter(_ids(new, 13 * 4))
    assert counts == Counter({**{line.id: 16 for line in lines}, grown[3].id: 4})


def test_custom_weights_and_ignore_health() -> None:
    """Configured weights apply; ignore-health makes all-zero weights count equally."""
    lines = [make_line(0, "CRITICAL"), make_line(1, "CRITICAL")]
    compiled = compile_policy(parse_policy("reputation-weighted(CRITICAL=0.5)"), snap(lines))
    assert Counter(_ids(compiled, 10)) == Counter({lines[0].id: 5, lines[1].id: 5})
    spec = "skip-critical(on_empty=ignore-health) | reputation-weighted"
    compiled = compile_policy(parse_policy(spec), snap(lines))
    pick = compiled.pick(CTX)
    assert "health ignored" in str(pick.explanation)
    assert Counter(_ids(compiled, 10)) == Counter({lines[0].id: 5, lines[1].id: 5})


def test_bad_weights_are_rejected() -> None:
    """Negative, non-numeric or unknown weights are a ValueError naming them."""
    with pytest.raises(ValueError, match="AT_RISK"):
        reputation_weighted(AT_RISK=-1)
    with pytest.raises(ValueError, match="BOGUS"):
        reputation_weighted(BOGUS=1.0)
    assert Reputation.HEALTHY in reputation_weighted().weights
