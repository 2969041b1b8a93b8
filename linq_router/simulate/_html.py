"""``simulate --report``: the results as one self-contained HTML page.

The charts (``_html_charts``) are inline SVG drawn in Python, with inline CSS and a
few lines of inline JavaScript; nothing is fetched when the page is viewed. Once the
page has loaded, the script sets ``data-charts`` on ``<body>`` to the number of
charts it found, so a headless browser can tell the page rendered.

Every chart has a ``viewBox`` and shrinks with the window (``max-width: 100%``), so
the page fits a narrow one without scrolling sideways. The figures table puts each
spec's run with the feedback loop beside what the naive worker met on the same
workload; each spec's section draws the loop's ejections over the strips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from linq_router._models import Reputation

from ._html_charts import (
    ABSENT,
    BAR_COLOR,
    EJECTED_HEX,
    EVENT,
    FLAGGED_OPACITY,
    REPUTATION_HEX,
    RETURNED_HEX,
    esc,
    event_text,
    lines_chart,
    reputation_chart,
    share_scale,
)
from ._results import RunResult, SendFigures, percent
from ._workload import TICK_SECONDS, TTL, PoolEvent

__all__ = ["BAR_COLOR", "EJECTED_HEX", "REPUTATION_HEX", "RETURNED_HEX", "render_html"]

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; overflow-wrap: anywhere; } h2 { font-size: 18px; margin-top: 32px; }
.scroll { overflow-x: auto; max-width: 100%; }
table.figures { border-collapse: collapse; margin: 12px 0; }
table.figures th, table.figures td { border: 1px solid #ccc; padding: 4px 10px;
  text-align: left; vertical-align: top; }
table.figures th { background: #f4f4f4; }
table.figures code { overflow-wrap: anywhere; }
.ok { color: #2ca02c; font-weight: bold; } .bad { color: #d62728; font-weight: bold; }
.legend p { margin: 4px 0; }
.legend .swatch { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px;
  vertical-align: middle; }
.legend .swatch.marker { width: 2px; margin-left: 17px; margin-right: 9px; }
.caption { margin: 4px 0; color: #555; }
svg.chart { display: block; margin: 8px 0; max-width: 100%; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: #222; }
svg text.axis { font-size: 11px; fill: #555; }
svg text.event { font-size: 10px; font-weight: bold; fill: #fff; }
@media (max-width: 760px) {
  body { margin: 12px; }
  table.figures th, table.figures td { padding: 3px 6px; }
}
"""

_SCRIPT = """
window.addEventListener("load", function () {
  document.body.dataset.charts = String(document.querySelectorAll("svg.chart").length);
});
"""


def _row(name: str, cells: list[str]) -> str:
    return f"<tr><th>{esc(name)}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _versus(r: RunResult, figure: Callable[[SendFigures], int], *, fewer_is_better: bool) -> str:
    """The loop's figure, marked good or bad against the naive worker's beside it."""
    sending = r.sending
    if sending is None:
        return "- (nothing sent)"
    mine = figure(sending)
    naive = None if r.naive is None or r.naive.sending is None else figure(r.naive.sending)
    if naive is None:
        return f"{mine:,}"
    better = mine < naive if fewer_is_better else mine >= naive
    cls = "ok" if better or mine == naive == 0 else "bad"
    return f'<span class="{cls}">{mine:,}</span> (naive worker: {naive:,})'


def _send_rows(results: Sequence[RunResult]) -> list[str]:
    if all(r.sending is None for r in results):
        return []

    def requests(r: RunResult) -> str:
        s = r.sending
        if s is None:
            return "-"
        return f"{s.requests:,} sent, {s.accepted:,} accepted, {r.sends_per_second:,.0f} sends/s"

    def loop(r: RunResult) -> str:
        if r.ejection is None or r.sending is None:
            return "off"
        returns = sum(p.end is not None for p in r.ejections)
        return f"{len(r.ejections)} ejections, {returns} returns"

    return [
        _row("POST /v3/chats to the fake", [requests(r) for r in results]),
        _row(
            "sends that hit an ineligible line (403/2027)",
            [_versus(r, lambda s: s.ineligible, fewer_is_better=True) for r in results],
        ),
        _row(
            "sends that hit a failing line (5xx, never resent)",
            [_versus(r, lambda s: s.failing, fewer_is_better=True) for r in results],
        ),
        _row(
            "repicks after a 2027",
            [_versus(r, lambda s: s.repicks, fewer_is_better=True) for r in results],
        ),
        _row(
            "sends never accepted",
            [_versus(r, lambda s: s.lost, fewer_is_better=True) for r in results],
        ),
        _row("feedback loop", [loop(r) for r in results]),
    ]


def _figures(results: Sequence[RunResult]) -> str:
    def critical(r: RunResult) -> str:
        cls = "ok" if r.to_critical == 0 else "bad"
        return (
            f'<span class="{cls}">{r.to_critical:,}</span> ({percent(r.to_critical, r.attempts)})'
        )

    def stay(r: RunResult) -> str:
        if r.stay_rate is None:
            return "-"
        return f"{100 * r.stay_rate:.1f}% of {r.returning:,} returning sends"

    def reps(r: RunResult) -> str:
        return ", ".join(
            f"{rep.value} {percent(r.by_reputation.get(rep.value, 0), r.attempts)}"
            for rep in Reputation
            if rep is not Reputation.UNKNOWN or r.by_reputation.get(rep.value)
        )

    rows = [
        _row("policy", [f"<code>{esc(r.spec)}</code>" for r in results]),
        _row("sends", [f"{r.sends:,} from {r.workers} threads" for r in results]),
        _row("picks/s", [f"{r.picks_per_second:,.0f}" for r in results]),
        _row("share by reputation", [reps(r) for r in results]),
        _row(
            "API calls",
            [
                f"{r.api_calls:,} list requests vs {r.uncached_api_calls:,} listing before "
                "each send"
                for r in results
            ],
        ),
        _row("retries", [str(r.retries) for r in results]),
        _row("refreshes (failed)", [f"{r.refreshes} ({r.failures})" for r in results]),
        _row("picks to a CRITICAL line (expected 0)", [critical(r) for r in results]),
        _row("picks to a FLAGGED line", [f"{r.to_flagged:,}" for r in results]),
        _row("returning recipients kept their line", [stay(r) for r in results]),
        _row("no eligible line", [f"{r.no_eligible:,}" for r in results]),
        *_send_rows(results),
    ]
    # A wide comparison scrolls inside its box; the page itself never scrolls sideways.
    return '<div class="scroll"><table class="figures">' + "".join(rows) + "</table></div>"


def _swatch(colour: str, label: str, *, opacity: str | None = None, kind: str = "") -> str:
    fade = f";opacity:{opacity}" if opacity is not None else ""
    return (
        f'<span class="swatch{" " + kind if kind else ""}" '
        f'style="background:{colour}{fade}"></span>{esc(label)}'
    )


def _ejection_label(results: Sequence[RunResult]) -> str:
    ejection = next((r.ejection for r in results if r.ejection is not None), None)
    if ejection is None:
        return "ejected by the feedback loop"
    return (
        f"ejected by the feedback loop (a 2027: {ejection.ineligible_time:g} s, doubling "
        f"on repeats; {ejection.consecutive_failures} failures in a row: "
        f"{ejection.base_time:g} s x n)"
    )


def _legend(results: Sequence[RunResult]) -> str:
    """What the strips' colours and marks mean, then what the bars mean: apart."""
    seen = {rep for r in results for h in r.lines for rep in h.reputations if rep is not None}
    shown = [Reputation.HEALTHY, Reputation.AT_RISK, Reputation.CRITICAL]
    if Reputation.UNKNOWN in seen:
        shown.append(Reputation.UNKNOWN)
    strips = "".join(_swatch(REPUTATION_HEX[r], r.value) for r in shown)
    strips += _swatch(ABSENT, "not in pool")
    strips += _swatch(
        REPUTATION_HEX[Reputation.HEALTHY],
        "FLAGGED (faded: the line's reputation colour, paused)",
        opacity=FLAGGED_OPACITY,
    )
    strips += _swatch(EVENT, "pool event, numbered as in the list", kind="marker")
    if any(r.sending is not None and r.ejection is not None for r in results):
        strips += _swatch(EJECTED_HEX, _ejection_label(results))
        strips += _swatch(RETURNED_HEX, "back from ejection", kind="marker")
    bars = _swatch(BAR_COLOR, "share of all picks that went to the line")
    return (
        '<div class="legend">'
        f"<p><b>Reputation over time:</b>{strips}</p>"
        f"<p><b>Share of picks:</b>{bars}</p>"
        "</div>"
    )


def _events(events: Sequence[PoolEvent]) -> str:
    if not events:
        return "<h2>Pool events</h2><p>none</p>"
    items = "".join(f"<li>{esc(event_text(e))}</li>" for e in events)
    hidden = (
        " A line that goes ineligible or starts failing keeps its colour: the list does "
        "not say so, only its sends' answers do, and the feedback loop's bands show what "
        "the router made of them."
        if any(e.hidden for e in events)
        else ""
    )
    return (
        "<h2>Pool events</h2>"
        f'<ol class="events">{items}</ol>'
        '<p class="caption">The strips show each line as the registry saw it: a change '
        f"shows at the next refresh (the TTL is {TTL:g} simulated seconds), or later when "
        f"a refresh fails, so a strip changes colour a little after its event's mark.{hidden}"
        "</p>"
    )


def _ejections(result: RunResult) -> str:
    """The loop's ejections in one spec's run, as a list under its chart."""
    if result.sending is None or result.ejection is None:
        return ""
    if not result.ejections:
        return '<p class="caption">The feedback loop ejected no line.</p>'
    items = []
    for p in result.ejections:
        end = "the end" if p.end is None else f"t={p.end * TICK_SECONDS:.0f}s"
        items.append(
            f"<li>{esc(p.line)}: t={p.start * TICK_SECONDS:.0f}s to {end}, {esc(p.reason)}</li>"
        )
    return (
        '<p class="caption">The feedback loop ejected:</p>'
        f'<ul class="ejections">{"".join(items)}</ul>'
    )


def render_html(results: Sequence[RunResult], *, demo: bool = True) -> str:
    """The whole page for one or more runs of the same workload."""
    first = results[0]
    title = "linq-router simulate: " + ", ".join(r.spec for r in results)
    scale = share_scale(results)
    sections = "".join(
        f"<h2>{esc(r.spec)}</h2>"
        '<p class="caption">Share of picks by the reputation the line had:</p>'
        f"{reputation_chart(r)}{lines_chart(r, scale)}{_ejections(r)}"
        for r in results
    )
    pool = (
        "the embedded demo pool, each send a POST /v3/chats to it"
        if demo
        else "the real API (read only: nothing was sent)"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f"<p>{first.sends:,} sends per policy, seed {first.seed}, on {pool}.</p>"
        f"{_figures(results)}"
        f"{_legend(results)}{_events(first.events)}{sections}"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
