"""What happened to sends, and what the router does about it: no I/O here.

``classify`` maps a send's outcome to a ``Verdict``; ``Ejection`` and ``SlowStart``
configure what a ``Router`` does with the verdicts it is told about; ``Ejected`` and
``LineEvent`` are what it tells back.
"""

from ._classify import Outcome, OutcomeLike, Verdict, classify, outcome_of
from ._config import Ejected, Ejection, LineEvent, SlowStart
from ._tracker import Tracker, eligible

__all__ = [
    "Ejected",
    "Ejection",
    "LineEvent",
    "Outcome",
    "OutcomeLike",
    "SlowStart",
    "Tracker",
    "Verdict",
    "classify",
    "eligible",
    "outcome_of",
]
