"""The workload ``linq-router simulate`` runs: recipients, simulated time, pool events.

Pure: building a workload does no I/O; ``PoolEvent.apply`` is the only call that
touches a (fake) API, and ``_engine.run_workload`` makes it between ticks. The
ejection settings the feedback loop runs with are here too: they are scaled to the
run's simulated length, as the TTL is.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

import attrs

from linq_router.feedback import Ejection
from linq_router.testing import FakeLinqServer

__all__ = [
    "ERROR_RETRY",
    "LOOP_EJECTION",
    "TICKS",
    "TICK_SECONDS",
    "TTL",
    "PoolEvent",
    "Workload",
    "demo_events",
    "make_workload",
]

TICKS = 120
"""Ticks in a run: the resolution of "reputation over time"."""
TICK_SECONDS = 5.0
"""Simulated seconds per tick: a run covers ten simulated minutes."""
TTL = 30.0
"""The registry's TTL in simulated seconds: a refresh every six ticks."""
ERROR_RETRY = 5.0
"""Simulated seconds between refreshes while they fail (one tick)."""

LOOP_EJECTION = Ejection(ineligible_time=60.0)
"""How the feedback loop ejects in a run: the library's defaults, but a 2027 ejects a
line for 60 s (doubling on repeats) rather than 300 s, which is half of a ten-minute
run. Five failures in a row eject a line for 30 s x n, as by default."""

EventKind = Literal["reputation", "status", "3006", "behaviour"]
"""What a ``PoolEvent`` changes."""
Behaviour = Literal["ok", "ineligible", "failing"]
"""What ``FakeLinqServer.set_line_behaviour`` takes."""


@attrs.frozen
class PoolEvent:
    """A change to the demo pool at the start of ``tick``, as real pools change.

    ``kind`` is ``"reputation"`` or ``"status"`` (``line`` gets ``value``), or
    ``"3006"``: the next ``times`` list requests answer Linq's internal error, or
    ``"behaviour"``: sends from ``line`` answer as ``value`` says from now on
    (``"ineligible"``: 403 / 2027, ``"failing"``: 500 / 3006, ``"ok"``), while the
    list keeps showing the line as it was: only a send's answer tells.
    """

    tick: int
    kind: EventKind
    label: str
    line: str | None = None
    value: str | None = None
    times: int = 0

    def apply(self, server: FakeLinqServer) -> None:
        """Make the change on the fake API."""
        if self.kind == "3006":
            server.fail_next("3006", times=self.times, route="list")
        elif self.kind == "reputation" and self.line and self.value:
            server.set_reputation(self.line, self.value)
        elif self.kind == "status" and self.line:
            server.set_status(self.line, self.value)
        elif self.kind == "behaviour" and self.line:
            server.set_line_behaviour(self.line, _behaviour(self.value))

    @property
    def hidden(self) -> bool:
        """True for a change the line list does not show (a line's send behaviour)."""
        return self.kind == "behaviour"


def _behaviour(value: str | None) -> Behaviour:
    if value == "ineligible":
        return "ineligible"
    if value == "failing":
        return "failing"
    return "ok"


def demo_events(rng: random.Random, ticks: int = TICKS) -> tuple[PoolEvent, ...]:
    """The sample pool's script: a line drops, one recovers, the API fails, ...

    The lines are those of ``sample_pool()``; the seed moves each event by a few ticks.
    Three 3006s in a row outlast the client's three attempts, so one refresh fails and
    the registry serves its last good snapshot until the next try succeeds. Two
    HEALTHY lines go ineligible for a while and one starts failing, then they come
    back; the list shows them HEALTHY and ACTIVE throughout.
    """

    def at(fraction: float) -> int:
        return max(1, min(ticks - 1, round(fraction * ticks) + rng.randint(-2, 2)))

    return tuple(
        sorted(
            (
                PoolEvent(
                    at(0.15),
                    "reputation",
                    "+12025550101 drops to CRITICAL",
                    "+12025550101",
                    "CRITICAL",
                ),
                PoolEvent(at(0.30), "3006", "API answers 3006 twice (retried)", times=2),
                PoolEvent(
                    at(0.42),
                    "reputation",
                    "+13055550109 recovers to HEALTHY",
                    "+13055550109",
                    "HEALTHY",
                ),
                PoolEvent(
                    at(0.55),
                    "reputation",
                    "+13125550105 drops to CRITICAL",
                    "+13125550105",
                    "CRITICAL",
                ),
                PoolEvent(
                    at(0.65), "3006", "API answers 3006 three times (a refresh fails)", times=3
                ),
                PoolEvent(
                    at(0.78),
                    "reputation",
                    "+12025550101 recovers to AT_RISK",
                    "+12025550101",
                    "AT_RISK",
                ),
                PoolEvent(
                    at(0.88), "status", "+15125550110 is ACTIVE again", "+15125550110", "ACTIVE"
                ),
                # Drawn after the events above, so that adding them moved none of those.
                *_send_behaviours(at),
            ),
            key=lambda e: e.tick,
        )
    )


def _send_behaviours(at: Callable[[float], int]) -> tuple[PoolEvent, ...]:
    """Lines whose sends go wrong mid-run and come right again: (start, end) each."""
    # Each five ticks or more from the others and from the script's other events (the
    # seed moves each by up to two), so no two fall on the same tick; the failing
    # stretch is long enough for five failures in a row to matter.
    script = (
        ("+12125550102", "ineligible", 0.20, 0.467),
        ("+14155550104", "failing", 0.508, 0.70),
        ("+17135550107", "ineligible", 0.742, 0.933),
    )
    events = []
    for line, behaviour, start, end in script:
        answer = "403/2027" if behaviour == "ineligible" else "500/3006"
        verb = "goes ineligible" if behaviour == "ineligible" else "starts failing"
        again = "is eligible again" if behaviour == "ineligible" else "sends normally again"
        label = f"{line} {verb} ({answer}; still listed HEALTHY)"
        events.append(PoolEvent(at(start), "behaviour", label, line, behaviour))
        events.append(PoolEvent(at(end), "behaviour", f"{line} {again}", line, "ok"))
    return tuple(events)


_AREA_CODES = (202, 212, 305, 312, 415, 512, 617, 713, 206, 310)


@attrs.frozen
class Workload:
    """What to send: one recipient per send, in order, and the pool's events.

    Sends of tick ``t`` are ``range(*bounds(t))``: spread evenly over the ticks, or,
    with ``starts`` (``ticks + 1`` indexes), from ``starts[t]`` to ``starts[t + 1]``.
    A tick lasts ``tick_seconds`` of simulated time.
    """

    seed: int
    recipients: tuple[str, ...]
    events: tuple[PoolEvent, ...]
    ticks: int = TICKS
    tick_seconds: float = TICK_SECONDS
    starts: tuple[int, ...] = ()

    def bounds(self, tick: int) -> tuple[int, int]:
        """The first and past-the-last send index of ``tick``."""
        if self.starts:
            return self.starts[tick], self.starts[tick + 1]
        n = len(self.recipients)
        return tick * n // self.ticks, (tick + 1) * n // self.ticks


def make_workload(
    sends: int,
    seed: int,
    *,
    ticks: int = TICKS,
    returning_share: float = 0.6,
    email_share: float = 0.1,
    events: bool = True,
) -> Workload:
    """A reproducible mix of new and returning recipients (E.164 numbers, some emails).

    About ``returning_share`` of the sends go to someone already written to, chosen
    uniformly among them; new recipients are US numbers or, ``email_share`` of the
    time, email addresses.
    """
    if sends < 1:
        msg = f"sends must be at least 1, got {sends}"
        raise ValueError(msg)
    rng = random.Random(seed)
    known: list[str] = []
    seen: set[str] = set()
    recipients: list[str] = []
    for _ in range(sends):
        if known and rng.random() < returning_share:
            to = rng.choice(known)
        else:
            if rng.random() < email_share:
                to = f"user{rng.randrange(10**8):08d}@example.com"
            else:
                to = f"+1{rng.choice(_AREA_CODES)}{rng.randrange(2_000_000, 10_000_000)}"
            if to not in seen:
                seen.add(to)
                known.append(to)
        recipients.append(to)
    script = demo_events(random.Random(seed + 1), ticks) if events else ()
    return Workload(seed, tuple(recipients), script, ticks)
