"""The ``linq-router`` command line (also ``python -m linq_router``).

An optional extra: ``pip install 'linq-router[cli]'`` brings click and rich. Every
command reads the real API with ``LINQ_API_V3_API_KEY`` (and ``LINQ_API_V3_BASE_URL``
when set), or, with ``--demo``, an embedded fake Linq API seeded with a sample pool.

Exit codes: 0 ok, 1 API or selection failure, 2 usage error. A failure is one
``Error:`` line on stderr that names what to fix (the variable, the URL tried), never
a traceback and never the key.
"""

from __future__ import annotations

import json
import logging

try:
    import click
    import rich.console  # noqa: F401 (checked here: the commands' modules use it)
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    missing = exc.name or "click/rich"
    msg = (
        f"the linq-router command line needs {missing!r}; "
        "install it with: pip install 'linq-router[cli]'"
    )
    raise SystemExit(msg) from exc

from ._cli_common import (
    _LOG_HANDLER,
    CliContext,
    api_errors,
    demo_option,
    make_console,
    open_registry,
)
from ._cli_errors import (
    Failure,
    HoldingErrors,
    root_error,
)
from ._cli_lines import line_json, lines_table, reputation_summary
from ._cli_simulate import _checked_specs, budgets, simulate
from ._errors import LinqAPIError
from ._models import Snapshot
from ._parsing import is_e164

__all__ = ["CliContext", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="linq-router")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Choose the `from` number for outbound Linq messages."""
    # The library only adds a NullHandler; the command line shows its warnings (an
    # RCS fallback for a voice memo, sending on unhealthy lines, retries) on stderr.
    handler = HoldingErrors()
    logger = logging.getLogger("linq_router")
    logger.addHandler(handler)
    ctx.meta[_LOG_HANDLER] = handler

    def done() -> None:
        logger.removeHandler(handler)
        handler.show_held()

    ctx.call_on_close(done)


@main.command(short_help="List the partner's lines with their reputation.")
@demo_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@api_errors
def numbers(demo: bool, as_json: bool) -> None:
    """List the partner's lines with their reputation.

    The table fits the terminal: on a narrow one it leaves out the forwarding number,
    then the line type, then the status, and says so; ids and numbers stay whole.
    """
    with open_registry(demo) as registry:
        lines = list(registry.snapshot())
    if as_json:
        click.echo(json.dumps({"phone_numbers": [line_json(n) for n in lines]}, indent=2))
        return
    console = make_console()
    console.print(lines_table(lines, "Linq lines" + (" (demo pool)" if demo else "")))
    console.print(reputation_summary(lines))


# -- pick and update ------------------------------------------------------------------


@main.command(short_help="Choose the `from` number(s) for a message.")
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


def line_id_for(snapshot: Snapshot, id_or_number: str) -> str:
    """The id of the line ``id_or_number`` names: its id, or the id of its number.

    A number no line has is a ``Failure``; an id the list does not show is passed
    on, for the API to decide.
    """
    line = snapshot.get(id_or_number)
    if line is not None:
        return line.id
    if is_e164(id_or_number):
        msg = (
            f"no line has the number {id_or_number} (of {len(snapshot)} listed); "
            "`linq-router numbers` lists them with their ids"
        )
        raise Failure(msg)
    return id_or_number


@main.command(short_help="Set or clear a line's forwarding number.")
@demo_option
@click.argument("line", metavar="ID_OR_NUMBER")
@click.option("--forwarding-number", metavar="E164", help="The number to forward to.")
@click.option("--clear", is_flag=True, help="Remove the forwarding number.")
@api_errors
def update(demo: bool, line: str, forwarding_number: str | None, clear: bool) -> None:
    """Set (or --clear) a line's forwarding number, through the registry.

    The line is given by its id or by its number, as `linq-router numbers` shows them.
    """
    if clear == (forwarding_number is not None):
        msg = "give exactly one of --forwarding-number E164 or --clear"
        raise click.UsageError(msg)
    if forwarding_number is not None and not is_e164(forwarding_number):
        msg = f"{forwarding_number!r} is not an E.164 number such as +12025551234"
        raise click.BadParameter(msg, param_hint="--forwarding-number")
    with open_registry(demo) as registry:
        line_id = line_id_for(registry.snapshot(), line)
        try:
            updated = registry.update_phone_number(line_id, forwarding_number=forwarding_number)
        except LinqAPIError as exc:
            if root_error(exc).status != 404:
                raise
            msg = f"no line has the id {line!r}; `linq-router numbers` lists them with their ids"
            raise Failure(msg) from exc
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="ID_OR_NUMBER") from exc
    click.echo(json.dumps(line_json(updated), indent=2))


# -- simulate -------------------------------------------------------------------------


main.add_command(simulate)
main.add_command(budgets)
