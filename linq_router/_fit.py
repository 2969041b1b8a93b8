"""Layouts that fit the terminal: the command line's tables at any width (rich only).

A table too wide for its console gets every column cut to ``…`` by rich, ids and
numbers included, which leaves nothing to copy. ``Fit`` instead renders the first of
several layouts, richest first, that fits the width it is given, and a last resort
that folds rather than cuts when none does. The caller orders the layouts: each
drops or narrows the columns that matter least, never the values people copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement

__all__ = ["Fit", "fits"]

_UNBOUNDED = 100_000
"""A width no layout reaches: measuring at it gives a table's natural widths."""

Layout = Callable[[], RenderableType]
"""Builds one layout; called only when ``Fit`` needs it."""


def fits(console: Console, options: ConsoleOptions, renderable: RenderableType) -> bool:
    """Whether ``renderable`` renders within ``options.max_width`` with nothing cut.

    A table measured without a width limit tells most cases apart: at its natural
    width it fits, and below its narrowest it cannot (a table measured at the
    console's width reports widths already squeezed to fit). In between, where its
    wrapping columns decide, it is rendered and checked for rich's ``…``, which the
    layouts given to ``Fit`` show only where they cut a value. A group fits when
    each of its parts does.
    """
    if isinstance(renderable, Group):
        return all(fits(console, options, part) for part in renderable.renderables)
    width = options.max_width
    measured = Measurement.get(console, options.update_width(_UNBOUNDED), renderable)
    if measured.maximum <= width:
        return True
    if measured.minimum > width:
        return False
    lines = console.render_lines(renderable, options, pad=False)
    return not any("…" in segment.text for line in lines for segment in line)


class Fit:
    """The first of ``layouts`` that fits the console it is printed on, else ``fallback``.

    ``layouts`` should cut with rich's default ``…`` (so a cut is seen); ``fallback``
    should fold (``overflow="fold"``), so on a very narrow terminal a value wraps
    instead of losing characters.
    """

    def __init__(self, layouts: Sequence[Layout], fallback: Layout) -> None:
        self._layouts = tuple(layouts)
        self._fallback = fallback

    def choose(self, console: Console, options: ConsoleOptions) -> RenderableType:
        """The layout this console and width get."""
        for build in self._layouts:
            layout = build()
            if fits(console, options, layout):
                return layout
        return self._fallback()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.choose(console, options)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.choose(console, options))
