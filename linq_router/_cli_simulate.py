"""``linq-router simulate`` and ``linq-router budgets`` (registered by ``cli``)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import attrs
import click

from ._cli_common import api_errors, demo_option, make_console, open_registry
from ._cli_errors import (
    Failure,
    UsageLine,
    check_base_url,
    report_path_problem,
    safe_url,
    scrub,
)
from ._cli_lines import budgets_table
from ._client import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL
from ._errors import LinqRouterError

__all__ = ["budgets", "simulate"]


def _checked_specs(specs: tuple[str, ...], param: str) -> list[str]:
    """Each spec parsed once up front, so a typo is a usage error before anything runs."""
    from .policies import PolicySpecError, as_policy, available_policies  # noqa: PLC0415

    for spec in specs:
        try:
            as_policy(spec)
        except PolicySpecError as exc:
            msg = str(exc)
            if "known" not in msg:
                msg += f" (known names: {', '.join(available_policies())})"
            raise click.BadParameter(msg, param_hint=param) from exc
    return list(specs)


@contextlib.contextmanager
def _quiet_library_logs() -> Iterator[None]:
    # The run injects 3006s on purpose; the report counts them, so their warnings
    # would only scroll the progress bar away.
    logger = logging.getLogger("linq_router")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _checked_report(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # Checked while the arguments are parsed, so a path that cannot be written stops
    # the command before a run that may take a minute, not after it.
    problem = None if value is None else report_path_problem(value)
    if problem is not None:
        raise UsageLine(f"--report {value}: {problem}")
    return value


def _checked_state(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # Parsed up front (nothing connects), so a typo stops the command before any
    # process starts; from_uri's message already masks the password.
    if value is None:
        return None
    from .simulate import check_state_uri  # noqa: PLC0415 - only this option needs it

    try:
        check_state_uri(value)
    except (ValueError, ImportError) as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _quoted(spec: str) -> str:
    """``spec`` in single quotes, as a shell takes it back."""
    return "'" + spec.replace("'", "'\"'\"'") + "'"


def _stray_specs(specs: tuple[str, ...], policy: str | None) -> str:
    """What to say about SPEC arguments given without ``--compare``."""
    if len(specs) == 1 and policy is None:
        return (
            f"unexpected argument {_quoted(specs[0])}; to run one spec, give it as "
            f"--policy {_quoted(specs[0])} (--compare SPEC SPEC ... runs several side by side)"
        )
    together = " ".join(_quoted(spec) for spec in ((policy,) if policy else ()) + specs)
    noun = "argument" if len(specs) == 1 else "arguments"
    return (
        f"unexpected {noun} {' '.join(_quoted(spec) for spec in specs)}; to run several "
        f"specs side by side, use --compare {together}"
    )


@click.command(short_help="Run sends through a policy and report what happened.")
@demo_option
@click.option("--policy", "policy", metavar="SPEC", help="The policy spec to run.")
@click.option(
    "--compare",
    is_flag=True,
    help="Run every SPEC given as an argument on the same workload, side by side.",
)
@click.argument("specs", nargs=-1, metavar="[SPEC]...")
@click.option(
    "--sends",
    type=click.IntRange(min=1),
    help="How many sends to make.  [default: 1,000; 1,600 with --day]",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Sends in flight at once (threads).  [default: 4; 1 with --day]",
)
@click.option(
    "--day",
    is_flag=True,
    help="Run a day of sends on the simulated clock, with and without pacing.",
)
@click.option(
    "--workers-processes",
    "processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Pick from N worker processes (--workers threads each) and compare their shares "
    "with one process's.",
)
@click.option(
    "--state",
    metavar="URI",
    callback=_checked_state,
    help="The state URI every worker process's Router uses (redis://HOST:PORT/DB); "
    "memory:// is each process's own.  [default: memory://]",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Makes the run reproducible.")
@click.option(
    "--report",
    metavar="FILE.html",
    callback=_checked_report,
    help="Also write the results as a self-contained HTML page with charts.",
)
@api_errors
def simulate(
    demo: bool,
    policy: str | None,
    compare: bool,
    specs: tuple[str, ...],
    sends: int | None,
    workers: int | None,
    day: bool,
    processes: int,
    state: str | None,
    seed: int,
    report: str | None,
) -> None:
    """Run a workload of sends through a policy and report what happened.

    Without an API key (or with --demo) it sends through the embedded fake Linq API,
    whose sample pool changes during the run: a line drops to CRITICAL, one recovers,
    the API answers some 3006 errors, and lines the list still shows HEALTHY go
    ineligible (403/2027) or start failing (500) for a while. Each spec runs with the
    feedback loop (Router.report ejects such lines) and again as the naive worker
    (no ejection), and the report compares them. With a key and no --demo, the real
    pool is read and picked from, and nothing is sent.

    With --day, 86,400 simulated seconds of sends (and bursts to one recipient) run
    on the embedded fake in seconds, with per_line budgets scaled to the day, once
    with pacing and once without; the report shows the most each line sent within
    24 h against its budget and the fake's 429/1007 answers.

    With --workers-processes N (and --state URI), N processes pick the run's --sends,
    each with a Router of its own on the state URI, and one process alone then makes
    as many picks; a table per spec shows both shares per line and whether they
    match. Only picks are made. Examples:

    \b
      linq-router simulate --compare "round-robin" "skip-critical | sticky"
      linq-router simulate --day
      linq-router simulate --workers-processes 3 --state redis://localhost:6379/0
    """  # noqa: D301 - click's \b (a backspace) keeps the examples' lines unwrapped
    from . import simulate as sim  # noqa: PLC0415 - only this command needs it
    from .policies import DEFAULT_POLICY  # noqa: PLC0415

    if compare and policy is not None:
        raise click.UsageError("give either --policy SPEC or --compare SPEC SPEC ..., not both")
    if specs and not compare:
        raise click.UsageError(_stray_specs(specs, policy))
    if compare and not specs:
        raise click.UsageError("--compare needs at least one SPEC, e.g. --compare round-robin")
    chosen = _checked_specs(
        specs if compare else (policy or DEFAULT_POLICY,), "--compare" if compare else "--policy"
    )
    if processes > 1 or state is not None:
        options = _FleetOptions(processes, state or "memory://", sends, workers, seed, demo)
        _simulate_fleet(chosen, options, day=day, report=report)
        return
    if day:
        _simulate_day(chosen, sends, workers, seed, compare=compare, report=report)
        return
    sends = 1_000 if sends is None else sends
    workers = 4 if workers is None else workers
    demo = demo or not os.environ.get(API_KEY_ENV)
    if not demo:
        check_base_url()
    workload = sim.make_workload(sends, seed, events=demo)
    console = make_console()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_library_logs())
        advance = None
        if console.is_terminal:
            from rich.progress import Progress  # noqa: PLC0415

            bar = stack.enter_context(Progress(console=console, transient=True))
            runs = sim.runs_per_spec(demo=demo) * len(chosen)
            task = bar.add_task("simulating", total=sends * runs)

            def advance(n: int) -> None:
                bar.advance(task, n)

        results = sim.run_specs(chosen, workload, demo=demo, workers=workers, progress=advance)
    if len(results) == 1:
        console.print(sim.render_run(results[0], demo=demo))
    else:
        console.print(sim.render_compare(results, demo=demo))
    if not demo:
        console.print(
            "(real API: the pool was read, not changed; no events were injected and "
            "nothing was sent)"
        )
    if report is not None:
        try:
            with open(report, "w", encoding="utf-8") as out:
                out.write(sim.render_html(results, demo=demo))
        except OSError as exc:
            raise Failure(f"could not write the report to {report}: {exc.strerror or exc}") from exc
        console.print(f"HTML report written to {report}")


@attrs.frozen
class _FleetOptions:
    """What ``simulate`` hands its fleet mode (``--sends``/``--workers`` unset: None)."""

    processes: int
    state: str
    sends: int | None
    workers: int | None
    seed: int
    demo: bool


def _simulate_fleet(
    specs: list[str], options: _FleetOptions, *, day: bool, report: str | None
) -> None:
    """``simulate --workers-processes N --state URI``: a fleet's shares against one's."""
    from . import simulate as sim  # noqa: PLC0415 - only this command needs it

    if day or report is not None:
        what = "--day" if day else "--report"
        raise click.UsageError(f"{what} does not run with --workers-processes/--state; drop {what}")
    demo = options.demo or not os.environ.get(API_KEY_ENV)
    if not demo:
        check_base_url()
    console = make_console()
    with _quiet_library_logs():
        try:
            results = sim.run_fleet(
                specs,
                processes=options.processes,
                threads=4 if options.workers is None else options.workers,
                sends=1_000 if options.sends is None else options.sends,
                seed=options.seed,
                state=options.state,
                demo=demo,
            )
        except sim.FleetError as exc:
            url = os.environ.get(BASE_URL_ENV, DEFAULT_BASE_URL)
            raise Failure(scrub(str(exc).replace(options.state, "<--state>"), url)) from None
    console.print(sim.render_fleet(results, demo=demo))
    if not demo:
        console.print("(real API: the pool was read, not changed; nothing was sent)")


def _simulate_day(
    specs: list[str],
    sends: int | None,
    workers: int | None,
    seed: int,
    *,
    compare: bool,
    report: str | None,
) -> None:
    """``simulate --day``: one spec's day on the embedded fake, paced and not."""
    from . import simulate as sim  # noqa: PLC0415 - only this command needs it

    if compare or report is not None:
        what = "--compare" if compare else "--report"
        raise click.UsageError(f"--day runs one --policy and prints its report; drop {what}")
    sends = sim.DAY_SENDS if sends is None else sends
    if sends < sim.MIN_DAY_SENDS:
        msg = f"a day needs at least {sim.MIN_DAY_SENDS:,} sends (its bursts and one a tick)"
        raise click.BadParameter(msg, param_hint="--sends")
    console = make_console()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_library_logs())
        advance = None
        if console.is_terminal:
            from rich.progress import Progress  # noqa: PLC0415

            bar = stack.enter_context(Progress(console=console, transient=True))
            task = bar.add_task("simulating a day", total=sends * 2)

            def advance(n: int) -> None:
                bar.advance(task, n)

        result = sim.run_day(
            specs[0],
            sends,
            seed,
            workers=sim.DAY_WORKERS if workers is None else workers,
            progress=advance,
        )
    console.print(sim.render_day(result))


# -- budgets --------------------------------------------------------------------------


def _checked_storage(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if "://" not in value:
        msg = f"--storage {value}: expected a limits storage URI such as memory:// or redis://host"
        raise UsageLine(msg)
    return value


@click.command(short_help="Show each line's budgets: use and reset times.")
@click.option(
    "--demo",
    is_flag=True,
    help="Run a short seeded simulation on the embedded fake and show its budgets.",
)
@click.option(
    "--storage",
    metavar="URI",
    default="memory://",
    show_default=True,
    callback=_checked_storage,
    help="The limits storage the routers count in (redis://host:6379, ...).",
)
@click.option(
    "--per-line",
    "per_line",
    metavar="RATE",
    default="7000/day",
    show_default=True,
    help="The routers' Pacing(per_line=...): the counts are kept per rate.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="The --demo run's seed.")
@api_errors
def budgets(demo: bool, storage: str, per_line: str, seed: int) -> None:
    """Show each line's budgets: its use, what remains and when the window frees room.

    Without --demo, the lines are listed from the API (LINQ_API_V3_API_KEY) and their
    counts read from --storage, where routers built with Pacing(storage=URI) keep
    them. memory:// is this process's own store, empty at start: give the URI your
    routers use. With --demo, a short seeded run of sends through the embedded fake
    with the default Pacing() shows the budgets at its end.
    """
    from .pacing import Pacing  # noqa: PLC0415 - only this command needs it

    try:
        pacing = Pacing(per_line=per_line, storage=storage)
    except (TypeError, ValueError) as exc:
        raise UsageLine(str(exc)) from None
    console = make_console()
    if demo:
        from . import simulate as sim  # noqa: PLC0415
        from .policies import DEFAULT_POLICY  # noqa: PLC0415

        with _quiet_library_logs():
            result = sim.run_budgets_demo(DEFAULT_POLICY, seed)
        title = f"budgets (demo pool, seed {seed})"
        console.print(budgets_table(result.budget_use, result.ended_at, title))
        console.print(
            f"after {result.sends:,} sends over 10 simulated minutes through the embedded "
            "fake, with Pacing() defaults (per_line 7000/day, per_pair 30/minute)"
        )
        return
    from ._router import Router  # noqa: PLC0415

    with open_registry(demo=False) as registry:
        registry.snapshot()
        try:
            router = Router(registry, pacing=pacing)
            found = router.budgets()
        except LinqRouterError:
            raise
        except Exception as exc:  # the storage's own errors: redis missing or down, ...
            where = safe_url(storage)
            msg = f"could not read the budgets from {where}: {type(exc).__name__}: {exc}"
            raise Failure(scrub(msg, storage)) from exc
        now = router.clock()
        router.close()
    console.print(budgets_table(found, now, f"budgets in {safe_url(storage)}"))
    if storage.startswith("memory://"):
        console.print(
            "(memory:// is this process's own store and starts empty, so every count is 0; "
            "give --storage the URI your routers' Pacing(storage=...) uses, e.g. "
            "redis://localhost:6379)"
        )
