"""Budgets that keep each line inside Linq's limits, counted by ``limits``: no I/O here.

``Pacing`` configures them; ``Budget`` is one line's use of one rate. The router
consumes budgets on reported sends and checks local marks at pick time (``_pacer``).
"""

from ._config import STRATEGIES, Budget, Pacing
from ._pacer import AsyncPacer, Pacer, PacerCore

__all__ = ["STRATEGIES", "AsyncPacer", "Budget", "Pacer", "PacerCore", "Pacing"]
