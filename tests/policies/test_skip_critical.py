"""skip-critical: drops CRITICAL, UNKNOWN and FLAGGED lines; on_empty decides the rest."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linq_router._errors import NoEligibleNumberError
from linq_router._models import Reputation, Snapshot
from linq_router._pick import make_context
from linq_router.policies import compile_policy, parse_policy, skip_critical
from linq_router.testing.strategies import recipients, snapshots

from .conftest import make_line, snap

CTX = make_context(None)


def test_drops_critical_unknown_and_flagged_and_says_so() -> None:
    """The explanation counts what was skipped and why."""
    lines = [
        make_line(0),
        make_line(1, "CRITICAL"),
        make_line(2, "CRITICAL"),
        make_line(3, "UNKNOWN"),
        make_line(4, "HEALTHY", status="FLAGGED"),
        make_line(5, "AT_RISK"),
    ]
    compiled = compile_policy(parse_policy("skip-critical | round-robin"), snap(lines))
    picked = {compiled.pick(CTX).number.id for _ in range(10)}
    assert picked == {lines[0].id, lines[5].id}
    text = str(compiled.pick(CTX).explanation)
    assert text.startswith(
        "skip-critical: kept 2 of 6 (2 CRITICAL skipped, 1 UNKNOWN skipped, 1 FLAGGED skipped)"
    )


def test_all_unhealthy_raises_with_reasons_by_default() -> None:
    """With nothing left, the error says what was filtered out and why."""
    lines = [make_line(0, "CRITICAL"), make_line(1, status="FLAGGED")]
    compiled = compile_policy(parse_policy("skip-critical | reputation-weighted"), snap(lines))
    with pytest.raises(NoEligibleNumberError, match=r"1 CRITICAL skipped, 1 FLAGGED skipped"):
        compiled.pick(CTX)


def test_ignore_health_sends_anyway_and_warns_every_time(caplog: pytest.LogCaptureFixture) -> None:
    """on_empty=ignore-health keeps the lines and logs a warning on each pick."""
    lines = [make_line(0, "CRITICAL"), make_line(1, "CRITICAL")]
    compiled = compile_policy(
        parse_policy("skip-critical(on_empty=ignore-health) | round-robin"), snap(lines)
    )
    with caplog.at_level(logging.WARNING, logger="linq_router"):
        picks = [compiled.pick(CTX) for _ in range(3)]
    assert {p.number.reputation for p in picks} == {Reputation.CRITICAL}
    warnings = [r for r in caplog.records if "ignore-health" in r.getMessage()]
    assert len(warnings) == 3
    assert "sending anyway" in str(picks[0].explanation)


def test_on_empty_is_validated() -> None:
    """An unknown on_empty value is a ValueError listing the accepted ones."""
    with pytest.raises(ValueError, match="ignore-health"):
        skip_critical("whatever")


@settings(max_examples=80, deadline=None)
@given(
    snapshot=snapshots(),
    to=st.none() | recipients(),
    ignore=st.booleans(),
    selector=st.sampled_from(["round-robin", "reputation-weighted", "sticky"]),
)
def test_never_returns_a_critical_line_unless_asked(
    snapshot: Snapshot, to: object, ignore: bool, selector: str
) -> None:
    """Without ignore-health no CRITICAL, UNKNOWN or FLAGGED line is ever picked."""
    arg = "(on_empty=ignore-health)" if ignore else ""
    compiled = compile_policy(parse_policy(f"skip-critical{arg} | {selector}"), snapshot)
    ctx = make_context(to)  # type: ignore[arg-type]
    healthy = [
        n
        for n in snapshot
        if n.reputation in (Reputation.HEALTHY, Reputation.AT_RISK) and not n.is_flagged
    ]
    for _ in range(3):
        try:
            pick = compiled.pick(ctx)
        except NoEligibleNumberError:
            assert not healthy or selector != "round-robin"
            continue
        if healthy or not ignore:
            assert pick.number in healthy
