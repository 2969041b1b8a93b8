"""geomatch: area code first, then country, else every line (never empty)."""

from __future__ import annotations

from collections import Counter

from linq_router._pick import make_context
from linq_router.policies import CompiledPolicy, compile_policy, parse_policy

from .conftest import make_line, snap

LINES = [
    make_line(0, number="+12025550100"),
    make_line(1, number="+12025550101"),
    make_line(2, number="+13105550102"),
    make_line(3, number="+447700900103"),
    make_line(4, number="+14165550104"),  # Toronto: CA, NANP
]


def _compiled() -> CompiledPolicy:
    return compile_policy(parse_policy("geomatch | round-robin"), snap(LINES))


def _picked(compiled: CompiledPolicy, to: object, n: int = 10) -> set[str]:
    ctx = make_context(to)  # type: ignore[arg-type]
    return {compiled.pick(ctx).phone_number for _ in range(n)}


def test_same_area_code_preferred() -> None:
    """A 202 recipient gets the 202 lines, and the explanation says why."""
    compiled = _compiled()
    assert _picked(compiled, "+12025559999") == {"+12025550100", "+12025550101"}
    text = str(compiled.pick(make_context("+12025559999")).explanation)
    assert "geomatch: kept 2 of 5" in text
    assert "area code 202" in text


def test_same_country_when_no_area_match() -> None:
    """A US recipient in an area with no line gets the US lines (not the Canadian one)."""
    assert _picked(_compiled(), "+12125559999") == {"+12025550100", "+12025550101", "+13105550102"}
    assert _picked(_compiled(), "+447700900999") == {"+447700900103"}


def test_falls_back_to_every_line() -> None:
    """No local line, an email, or no recipient: the whole set, never empty."""
    everyone = {line.phone_number for line in LINES}
    assert _picked(_compiled(), "+33612345678") == everyone
    assert _picked(_compiled(), "ann@example.com") == everyone
    assert _picked(_compiled(), None) == everyone


def test_first_phone_recipient_decides_for_groups() -> None:
    """In a group, the first phone number (in the caller's order) decides."""
    assert _picked(_compiled(), ["ann@example.com", "+13105551111", "+12025551111"]) == {
        "+13105550102"
    }


def test_each_group_rotates_on_its_own() -> None:
    """Picks within a local group rotate evenly."""
    compiled = _compiled()
    ctx = make_context("+12025559999")
    assert Counter(compiled.pick(ctx).phone_number for _ in range(10)) == Counter(
        {"+12025550100": 5, "+12025550101": 5}
    )
