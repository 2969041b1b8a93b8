"""What happened to sends, and what the router does about it: no I/O here.

``classify`` maps a send's outcome to a ``Verdict``; ``Ejection`` and ``SlowStart``
configure what a ``Router`` does with the verdicts it is told about.
"""

from ._classify import Outcome, OutcomeLike, Verdict, classify

__all__ = ["Outcome", "OutcomeLike", "Verdict", "classify"]
