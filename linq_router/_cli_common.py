"""What every ``linq-router`` command shares (see ``cli``).

The click/rich import, the context, the registry to read, and how errors become one
``Error:`` line.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import attrs
import click
from rich.console import Console

from ._cli_errors import (
    Failure,
    HoldingErrors,
    check_base_url,
    describe_api_error,
    scrub,
)
from ._client import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL, LinqClient
from ._errors import LinqAPIError, LinqRouterError
from ._registry import Registry

__all__ = [
    "CliContext",
    "api_errors",
    "demo_option",
    "make_console",
    "open_registry",
]

_F = TypeVar("_F", bound=Callable[..., Any])

_LOG_HANDLER = "linq_router.cli.log"
_BASE_URL = "linq_router.cli.base_url"


@attrs.frozen
class CliContext:
    """What the commands take from the world, as click's ``obj``; tests pass their own.

    ``sleep`` is what the API client waits with between retries.
    """

    sleep: Callable[[float], None] = time.sleep


def _context() -> CliContext:
    found = click.get_current_context().find_object(CliContext)
    return found if found is not None else CliContext()


def _api_url() -> str:
    """The base URL the command talked to (the environment's, unless a demo)."""
    meta = click.get_current_context().meta
    url = meta.get(_BASE_URL)
    return url if isinstance(url, str) else os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL


@contextlib.contextmanager
def open_registry(demo: bool) -> Iterator[Registry]:
    """A registry on the real API (key from the environment) or on the embedded demo API."""
    sleep = _context().sleep
    if demo:
        from .testing import FakeLinqServer, sample_pool  # noqa: PLC0415 - demo only

        with (
            FakeLinqServer(sample_pool()) as server,
            LinqClient(server.api_key, base_url=server.base_url, sleep=sleep) as client,
        ):
            click.get_current_context().meta[_BASE_URL] = client.base_url
            yield Registry(client)
        return
    if not os.environ.get(API_KEY_ENV):
        msg = (
            f"no API key: set {API_KEY_ENV} (and LINQ_API_V3_BASE_URL to use another "
            "server), or add --demo to try the embedded sample pool"
        )
        raise click.UsageError(msg)
    check_base_url()
    try:
        client = LinqClient(sleep=sleep)
    except ValueError as exc:  # the library's messages never hold the key
        raise click.UsageError(scrub(str(exc), os.environ.get(BASE_URL_ENV, ""))) from None
    with client:
        click.get_current_context().meta[_BASE_URL] = client.base_url
        yield Registry(client)


def _drop_held_errors() -> None:
    handler = click.get_current_context().meta.get(_LOG_HANDLER)
    if isinstance(handler, HoldingErrors):
        handler.failed()


def api_errors(fn: _F) -> _F:
    """Turn library errors into one line a person can act on, with exit code 1."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LinqAPIError as exc:
            _drop_held_errors()  # the line below says it all
            raise Failure(describe_api_error(exc, _api_url())) from exc
        except LinqRouterError as exc:
            _drop_held_errors()
            raise Failure(str(exc)) from exc

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]


demo_option = click.option(
    "--demo", is_flag=True, help="Use the embedded fake Linq API with a sample pool."
)


def make_console() -> Console:
    """A rich console; tables fit its width (the terminal's, or ``COLUMNS``).

    Piped output with no ``COLUMNS`` gets a wide page, so nothing needs to fold.
    """
    console = Console()
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console = Console(width=max(console.width, 160))
    return console
