"""``linq-router simulate``: the engine, its seeded workload and the reports. Private.

This package sits at the top, beside the command line: it may use the router, the
feedback, the client and the fake API, and nothing below imports it. The names here
are what ``linq_router.cli`` uses; they are not part of the public API.
"""

from ._day import DAY_SENDS, DAY_WORKERS, MIN_DAY_SENDS, run_budgets_demo, run_day
from ._day_report import render_day
from ._engine import run_specs, run_workload, runs_per_spec
from ._fleet import FleetError, check_state_uri, render_fleet, run_fleet
from ._html import render_html
from ._report import render_compare, render_run
from ._workload import make_workload

__all__ = [
    "DAY_SENDS",
    "DAY_WORKERS",
    "MIN_DAY_SENDS",
    "FleetError",
    "check_state_uri",
    "make_workload",
    "render_compare",
    "render_day",
    "render_fleet",
    "render_html",
    "render_run",
    "run_budgets_demo",
    "run_day",
    "run_fleet",
    "run_specs",
    "run_workload",
    "runs_per_spec",
]
