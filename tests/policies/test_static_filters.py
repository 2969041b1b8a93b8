"""line-type, prefer-imessage, only, exclude."""

from __future__ import annotations

import pytest

from linq_router._errors import NoEligibleNumberError
from linq_router._pick import make_context
from linq_router.policies import compile_policy, line_type, only, parse_policy

from .conftest import make_line, snap

CTX = make_context(None)
LINES = [
    make_line(0, line_type="iMessage"),
    make_line(1, line_type="RCS"),
    make_line(2, line_type=None),
]


def _picked(spec: str, lines: list = LINES) -> set[str]:  # type: ignore[type-arg]
    compiled = compile_policy(parse_policy(spec), snap(lines))
    return {compiled.pick(CTX).number.id for _ in range(12)}


def test_line_type_is_strict() -> None:
    """line-type keeps one type only; unknown types only when asked."""
    assert _picked("line-type(RCS) | round-robin") == {LINES[1].id}
    assert _picked("line-type(imessage) | round-robin") == {LINES[0].id}
    assert _picked("line-type(iMessage, include_unknown=true) | round-robin") == {
        LINES[0].id,
        LINES[2].id,
    }
    with pytest.raises(NoEligibleNumberError, match="line-type: kept 0 of 1"):
        compile_policy(parse_policy("line-type(RCS) | round-robin"), snap([LINES[0]])).pick(CTX)
    with pytest.raises(ValueError, match="SMS"):
        line_type("SMS")


def test_prefer_imessage_falls_back_to_rcs() -> None:
    """prefer-imessage keeps iMessage-capable lines, else the RCS ones."""
    assert _picked("prefer-imessage | round-robin") == {LINES[0].id, LINES[2].id}
    compiled = compile_policy(parse_policy("prefer-imessage | round-robin"), snap([LINES[1]]))
    pick = compiled.pick(CTX)
    assert pick.number.id == LINES[1].id
    assert "no iMessage-capable line" in str(pick.explanation)


def test_only_and_exclude_match_ids_and_numbers() -> None:
    """Allow and deny lists accept line ids and E.164 numbers."""
    assert _picked(f"only({LINES[0].phone_number}, {LINES[2].id}) | round-robin") == {
        LINES[0].id,
        LINES[2].id,
    }
    assert _picked(f"exclude({LINES[0].phone_number}, {LINES[2].id}) | round-robin") == {
        LINES[1].id
    }
    assert only(LINES[0].id).values == frozenset({LINES[0].id})
    with pytest.raises(ValueError, match="at least one"):
        only()


def test_only_accepts_a_list() -> None:
    """only([...]) is the same as only(a, b)."""
    assert only([LINES[0].id, LINES[1].id]).values == only(LINES[0].id, LINES[1].id).values
