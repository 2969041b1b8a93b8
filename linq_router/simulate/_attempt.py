"""One pick and its send, as a run records it: ``Attempt`` and its ``Answer``. Pure."""

from __future__ import annotations

from typing import Literal

import attrs

from linq_router._models import Reputation

__all__ = ["Answer", "Attempt"]

Answer = Literal[
    "accepted",
    "ineligible",
    "failing",
    "pair_limited",
    "refused",
    "unsent",
    "no_line",
    "no_budget",
]
"""How one attempt ended: Linq took it; 403 / 2027; a 5xx or no answer; 429; another
refusal; not sent (a pick-only run on the real API); no eligible line to pick; every
line out of budget (``BudgetExhaustedError``)."""


@attrs.frozen
class Attempt:
    """One pick and, when a line was found and the run sends, one ``POST /v3/chats``.

    ``send`` is the send's index in the workload; a send that was repicked has several
    attempts, in order. ``line`` is the picked line's id (``None``: no eligible line).
    ``tick`` is the tick it was made in.
    """

    send: int
    line: str | None
    reputation: Reputation | None
    flagged: bool
    answer: Answer
    tick: int = 0
