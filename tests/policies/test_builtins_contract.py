"""Every built-in passes the plugin contract (check_policy)."""

from __future__ import annotations

import pytest

from linq_router.policies import (
    exclude,
    geomatch,
    line_type,
    only,
    prefer_imessage,
    reputation_weighted,
    round_robin,
    skip_critical,
    sticky,
)
from linq_router.testing.contract import check_policy

SPECS = [
    "round-robin",
    "reputation-weighted",
    "reputation-weighted(AT_RISK=0.5, CRITICAL=0.1)",
    "sticky",
    "sticky(max_size=3)",
    "skip-critical | reputation-weighted",
    "skip-critical(on_empty=ignore-health) | reputation-weighted",
    "skip-critical(on_empty=ignore-health) | sticky",
    "geomatch | round-robin",
    "skip-critical | geomatch | sticky",
    "line-type(RCS) | round-robin",
    "line-type(iMessage) | sticky",
    "prefer-imessage | reputation-weighted",
    "only(+12025550001, +12125550002) | round-robin",
    "exclude(+12025550001) | reputation-weighted",
]


@pytest.mark.parametrize("spec", SPECS)
def test_builtin_specs_pass_the_contract(spec: str) -> None:
    """Each built-in, alone and composed, passes check_policy."""
    check_policy(lambda: spec, max_examples=40)


def test_python_composed_policy_passes_the_contract() -> None:
    """Policies built with | pass too (fresh objects on every call)."""
    check_policy(
        lambda: skip_critical() | geomatch() | line_type("iMessage") | sticky(), max_examples=30
    )
    check_policy(
        lambda: exclude("+12025550001") | only("+12025550001", "+12025550002") | round_robin(),
        max_examples=20,
    )
    check_policy(lambda: prefer_imessage() | reputation_weighted(AT_RISK=1.0), max_examples=20)
