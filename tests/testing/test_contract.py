"""check_policy fails on broken policies (so it can fail) and the strategies are sound."""

from __future__ import annotations

import random

import attrs
import pytest
from hypothesis import given, settings

from linq_router._models import Reputation, Snapshot
from linq_router._pick import Pick, PickContext, make_context
from linq_router.policies import BaseSelector, CompiledSelector, Group, skip_critical
from linq_router.testing.contract import PolicyContractError, check_policy
from linq_router.testing.strategies import recipients, snapshots


class _Broken(BaseSelector):
    """A selector whose compiled pick is whatever `how` says."""

    name = "broken"

    def __init__(self, how: str, deterministic: bool = True) -> None:
        self.how = how
        self.deterministic = deterministic

    def compile(self, group: Group, previous: CompiledSelector | None) -> CompiledSelector:
        how = self.how
        rng = random.Random()

        class Compiled:
            def pick(self, ctx: PickContext) -> Pick:
                line = group.lines[0]
                if how == "outside":
                    line = attrs.evolve(line, phone_number="+19995550000", id="ghost")
                elif how == "none":
                    return None  # type: ignore[return-value]
                elif how == "index-error":
                    return group.lines[len(group.lines)]
                elif how == "random":
                    line = rng.choice(group.lines)
                elif how == "mutate":
                    object.__setattr__(group.lines[0], "reputation", Reputation.CRITICAL)
                return group.make_pick(line, "broken")

        return Compiled()


class _Unfiltered(BaseSelector):
    """Ignores the filters: compiles against the group but picks a CRITICAL line it kept aside."""

    name = "unfiltered"

    def __init__(self) -> None:
        self.everything: tuple = ()  # type: ignore[type-arg]

    def compile(self, group: Group, previous: CompiledSelector | None) -> CompiledSelector:
        outer = self

        class Compiled:
            def pick(self, ctx: PickContext) -> Pick:
                dropped = [n for n in outer.everything if n not in group.lines]
                return group.make_pick(dropped[0] if dropped else group.lines[0], "unfiltered")

        return Compiled()


class _Filter(type(skip_critical())):  # type: ignore[misc]
    """skip-critical that lets the next selector see what it dropped."""

    def __init__(self, selector: _Unfiltered) -> None:
        super().__init__()
        self.selector = selector

    def compile(self, lines):  # type: ignore[no-untyped-def]
        self.selector.everything = lines
        return super().compile(lines)


@pytest.mark.parametrize(
    ("how", "fragment"),
    [
        ("outside", "not in the snapshot"),
        ("none", "not a Pick"),
        ("index-error", "IndexError"),
        ("mutate", "mutated"),
    ],
)
def test_broken_selectors_fail_the_contract(how: str, fragment: str) -> None:
    """Each way of breaking the contract is caught, with a message saying which."""
    with pytest.raises(PolicyContractError, match=fragment):
        check_policy(lambda: _Broken(how), max_examples=50)


def test_nondeterminism_is_caught_when_declared_deterministic() -> None:
    """A random selector claiming determinism fails; declaring it honestly passes."""
    with pytest.raises(PolicyContractError, match="deterministic"):
        check_policy(lambda: _Broken("random"), max_examples=100)
    check_policy(lambda: _Broken("random", deterministic=False), max_examples=20)


def test_picking_a_line_the_filters_dropped_is_caught() -> None:
    """A selector that returns a line its own filter dropped fails."""

    def factory() -> object:
        selector = _Unfiltered()
        return _Filter(selector) | selector

    with pytest.raises(PolicyContractError, match="filters dropped"):
        check_policy(factory, max_examples=100)


def test_a_counterexample_is_minimal() -> None:
    """Hypothesis shrinks the failing case: one line in the snapshot."""
    with pytest.raises(PolicyContractError) as info:
        check_policy(lambda: _Broken("outside"), max_examples=50)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "snapshot=" in notes
    assert notes.count("PhoneNumber(") == 1


@settings(max_examples=50, deadline=None)
@given(snapshot=snapshots(), to=recipients())
def test_strategies_make_valid_inputs(snapshot: Snapshot, to: str | list[str]) -> None:
    """Generated snapshots have distinct ids and numbers; recipients are accepted."""
    assert len({n.id for n in snapshot}) == len(snapshot)
    assert len({n.phone_number for n in snapshot}) == len(snapshot)
    ctx = make_context(to)
    assert ctx.key
