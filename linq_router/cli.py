"""The ``linq-router`` command line (also ``python -m linq_router``).

An optional extra: ``pip install 'linq-router[cli]'`` brings click and rich. Every
command reads the real API with ``LINQ_API_V3_API_KEY`` (and ``LINQ_API_V3_BASE_URL``
when set), or, with ``--demo``, an embedded fake Linq API seeded with a sample pool.

Exit codes: 0 ok, 1 API or selection failure, 2 usage error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

try:
    import click
    from rich.console import Console
    from rich.table import Table
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    missing = exc.name or "click/rich"
    msg = (
        f"the linq-router command line needs {missing!r}; "
        "install it with: pip install 'linq-router[cli]'"
    )
    raise SystemExit(msg) from exc

from ._client import API_KEY_ENV, LinqClient
from ._errors import LinqAPIError, LinqRouterError
from ._models import PhoneNumber, Reputation
from ._registry import Registry

__all__ = ["main"]

_F = TypeVar("_F", bound=Callable[..., Any])

REPUTATION_STYLE = {
    Reputation.HEALTHY: "green",
    Reputation.AT_RISK: "yellow",
    Reputation.CRITICAL: "red",
    Reputation.UNKNOWN: "magenta",
}


class Failure(click.ClickException):
    """An API or selection failure: exit code 1, message on stderr."""

    exit_code = 1


@contextlib.contextmanager
def open_registry(demo: bool) -> Iterator[Registry]:
    """A registry on the real API (key from the environment) or on the embedded demo API."""
    if demo:
        from .testing import FakeLinqServer, sample_pool  # noqa: PLC0415 - demo only

        with (
            FakeLinqServer(sample_pool()) as server,
            LinqClient(server.api_key, base_url=server.base_url) as client,
        ):
            yield Registry(client)
        return
    if not os.environ.get(API_KEY_ENV):
        msg = (
            f"no API key: set {API_KEY_ENV} (and LINQ_API_V3_BASE_URL to use another "
            "server), or add --demo to try the embedded sample pool"
        )
        raise click.UsageError(msg)
    with LinqClient() as client:
        yield Registry(client)


def api_errors(fn: _F) -> _F:
    """Turn library errors into messages a person can act on, with exit code 1."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LinqAPIError as exc:
            if exc.code == 2004 or exc.status == 401:
                msg = f"the API key in {API_KEY_ENV} was refused (Linq error 2004): {exc}"
                raise Failure(msg) from exc
            raise Failure(f"Linq API error: {exc}") from exc
        except LinqRouterError as exc:
            raise Failure(str(exc)) from exc

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]


demo_option = click.option(
    "--demo", is_flag=True, help="Use the embedded fake Linq API with a sample pool."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="linq-router")
def main() -> None:
    """Choose the `from` number for outbound Linq messages."""
    # The library only adds a NullHandler; the command line shows its warnings (an
    # RCS fallback for a voice memo, sending on unhealthy lines) on stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")


def make_console() -> Console:
    """A rich console; piped output gets a wide page so ids and numbers stay whole."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 160))
    return console


def line_json(line: PhoneNumber) -> dict[str, Any]:
    """A line as plain JSON, for ``--json`` output."""
    return {
        "id": line.id,
        "phone_number": line.phone_number,
        "reputation": line.reputation_raw or line.reputation.value,
        "line_type": line.line_type,
        "status": line.status,
        "forwarding_number": line.forwarding_number,
    }


def reputation_summary(lines: list[PhoneNumber]) -> str:
    """'12 lines: 9 HEALTHY, 2 AT_RISK, 1 CRITICAL' (only the statuses present)."""
    counts = Counter(line.reputation for line in lines)
    parts = [f"{counts[r]} {r.value}" for r in Reputation if counts[r]]
    flagged = sum(line.is_flagged for line in lines)
    if flagged:
        parts.append(f"{flagged} FLAGGED")
    return f"{len(lines)} lines: " + (", ".join(parts) if parts else "none")


@main.command()
@demo_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@api_errors
def numbers(demo: bool, as_json: bool) -> None:
    """List the partner's lines with their reputation."""
    with open_registry(demo) as registry:
        lines = list(registry.snapshot())
    if as_json:
        click.echo(json.dumps({"phone_numbers": [line_json(n) for n in lines]}, indent=2))
        return
    console = make_console()
    table = Table(title="Linq lines" + (" (demo pool)" if demo else ""))
    for column in ("number", "id", "reputation", "status", "line type", "forwarding"):
        table.add_column(column, no_wrap=True)
    for line in lines:
        style = REPUTATION_STYLE[line.reputation]
        table.add_row(
            line.phone_number,
            line.id,
            f"[{style}]{line.reputation_raw or line.reputation.value}[/{style}]",
            "[red]FLAGGED[/red]" if line.is_flagged else (line.status or "-"),
            line.line_type or "-",
            line.forwarding_number or "-",
        )
    console.print(table)
    console.print(reputation_summary(lines))


# -- pick and update ------------------------------------------------------------------


@main.command()
@demo_option
@click.option(
    "--to",
    "to",
    multiple=True,
    metavar="HANDLE",
    help="Recipient (E.164 or email); repeat for a group.",
)
@click.option(
    "--purpose",
    type=click.Choice(["chat", "voice_memo"]),
    default="chat",
    show_default=True,
    help="What the line is for.",
)
@click.option("--policy", "spec", metavar="SPEC", help="Policy spec (default: the Router's).")
@click.option(
    "--count", type=click.IntRange(min=1), default=1, show_default=True, help="How many picks."
)
@click.option("--explain", is_flag=True, help="Show each stage's reasoning.")
@api_errors
def pick(
    demo: bool, to: tuple[str, ...], purpose: str, spec: str | None, count: int, explain: bool
) -> None:
    """Choose the `from` number(s) for a message."""
    from ._router import Router  # noqa: PLC0415 - only this command needs it

    if spec is not None:
        _checked_specs((spec,), "--policy")
    recipients = list(to) or None
    with open_registry(demo) as registry:
        router = Router(registry, spec)
        try:
            picks = [router.pick(recipients, purpose=purpose) for _ in range(count)]
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--to") from exc
    for chosen in picks:
        click.echo(chosen.phone_number)
        if explain:
            click.echo(f"  {chosen.explanation}")


@main.command()
@demo_option
@click.argument("line_id", metavar="ID")
@click.option("--forwarding-number", metavar="E164", help="The number to forward to.")
@click.option("--clear", is_flag=True, help="Remove the forwarding number.")
@api_errors
def update(demo: bool, line_id: str, forwarding_number: str | None, clear: bool) -> None:
    """Set (or --clear) a line's forwarding number, through the registry."""
    if clear == (forwarding_number is not None):
        msg = "give exactly one of --forwarding-number E164 or --clear"
        raise click.UsageError(msg)
    with open_registry(demo) as registry:
        registry.snapshot()
        try:
            line = registry.update_phone_number(line_id, forwarding_number=forwarding_number)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--forwarding-number") from exc
    click.echo(json.dumps(line_json(line), indent=2))


# -- simulate -------------------------------------------------------------------------


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
    import logging  # noqa: PLC0415

    logger = logging.getLogger("linq_router")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@main.command()
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
    default=300_000,
    show_default=True,
    help="How many picks to make.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Threads picking at once.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Makes the run reproducible.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE.html",
    help="Also write the results as a self-contained HTML page with charts.",
)
@api_errors
def simulate(
    demo: bool,
    policy: str | None,
    compare: bool,
    specs: tuple[str, ...],
    sends: int,
    workers: int,
    seed: int,
    report: str | None,
) -> None:
    """Run a workload of picks through a policy and report what happened.

    Without an API key (or with --demo) it runs on the embedded fake Linq API, whose
    sample pool changes during the run: a line drops to CRITICAL, one recovers, the
    API answers some 3006 errors. Example:

      linq-router simulate --compare "round-robin" "skip-critical | sticky"
    """
    from . import _sim_report, _simulate  # noqa: PLC0415 - only this command needs them
    from .policies import DEFAULT_POLICY  # noqa: PLC0415

    if compare and policy is not None:
        raise click.UsageError("give either --policy SPEC or --compare SPEC SPEC ..., not both")
    if specs and not compare:
        raise click.UsageError(f"unexpected argument {specs[0]!r}; did you mean --compare?")
    if compare and not specs:
        raise click.UsageError("--compare needs at least one SPEC, e.g. --compare round-robin")
    chosen = _checked_specs(
        specs if compare else (policy or DEFAULT_POLICY,), "--compare" if compare else "--policy"
    )
    demo = demo or not os.environ.get(API_KEY_ENV)
    workload = _simulate.make_workload(sends, seed, events=demo)
    console = make_console()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_library_logs())
        advance = None
        if console.is_terminal:
            from rich.progress import Progress  # noqa: PLC0415

            bar = stack.enter_context(Progress(console=console, transient=True))
            task = bar.add_task("simulating", total=sends * len(chosen))

            def advance(n: int) -> None:
                bar.advance(task, n)

        results = _simulate.run_specs(
            chosen, workload, demo=demo, workers=workers, progress=advance
        )
    if len(results) == 1:
        console.print(_sim_report.render_run(results[0], demo=demo))
    else:
        console.print(_sim_report.render_compare(results, demo=demo))
    if not demo:
        console.print("(real API: the pool was read, not changed; no events were injected)")
    if report is not None:
        from ._html_report import render_html  # noqa: PLC0415

        with open(report, "w", encoding="utf-8") as out:
            out.write(render_html(results, demo=demo))
        console.print(f"HTML report written to {report}")
