"""`simulate --report`: a self-contained page whose charts render in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import attrs
import pytest

from linq_router import Reputation
from linq_router.simulate._engine import run_specs
from linq_router.simulate._html import (
    BAR_COLOR,
    EJECTED_HEX,
    REPUTATION_HEX,
    RETURNED_HEX,
    render_html,
)
from linq_router.simulate._results import RunResult
from linq_router.simulate._workload import TICK_SECONDS, make_workload

# Two policies whose busiest lines differ (8.3% against about 20%), so a per-section
# scale would show.
SPECS = ["round-robin", "skip-critical | sticky"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
NARROW = 700
"""A narrow window's width in CSS pixels: the report must fit it without scrolling."""


@attrs.define
class Node:
    """A node of a parsed page: an element, or a ``#text`` node holding ``text``."""

    tag: str
    attrs: dict[str, str]
    children: list[Node] = attrs.Factory(list)
    text: str = ""

    def walk(self) -> list[Node]:
        """This element and every element inside it, in document order."""
        found = [self]
        for child in self.children:
            found += child.walk()
        return found

    def all_text(self) -> str:
        """The text of this element and everything inside it."""
        return self.text + "".join(child.all_text() for child in self.children)

    @property
    def own_text(self) -> str:
        """The text directly inside this element (not inside its child elements)."""
        return "".join(c.text for c in self.children if c.tag == "#text")

    def classes(self) -> set[str]:
        """The element's CSS classes."""
        return set(self.attrs.get("class", "").split())


class _TreeBuilder(HTMLParser):
    _VOID = frozenset({"meta", "br", "img", "input", "link", "hr", "col", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self._open = [self.root]

    def handle_starttag(self, tag: str, attributes: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attributes})
        self._open[-1].children.append(node)
        if tag not in self._VOID:
            self._open.append(node)

    def handle_startendtag(self, tag: str, attributes: list[tuple[str, str | None]]) -> None:
        self._open[-1].children.append(Node(tag, {k: v or "" for k, v in attributes}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._open[-1].children.append(Node("#text", {}, text=data))


def parse(text: str) -> Node:
    """The element tree of an HTML page."""
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def _charts(page: Node, kind: str) -> list[Node]:
    return [n for n in page.walk() if n.tag == "svg" and {"chart", kind} <= n.classes()]


@pytest.fixture(scope="module")
def results() -> list[RunResult]:
    return run_specs(SPECS, make_workload(1000, 3), demo=True, workers=2)


@pytest.fixture(scope="module")
def page(results: list[RunResult], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_html(results), encoding="utf-8")
    return path


def test_page_is_self_contained(page: Path) -> None:
    """Nothing on the page is fetched: no src/href to anywhere, no @import, no url()."""
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""\s(src|href)\s*=""", text)
    assert "@import" not in text
    assert "url(" not in text
    assert text.count('<svg class="chart') == 2 * len(SPECS)


def test_page_escapes_what_it_shows(results: list[RunResult]) -> None:
    """A spec with markup in it is shown as text."""
    import attrs

    odd = attrs.evolve(results[0], spec="<b>x</b> | round-robin")
    text = render_html([odd])
    assert "<b>x</b>" not in text
    assert "&lt;b&gt;x&lt;/b&gt;" in text


def test_share_bars_use_one_scale_across_the_report(results: list[RunResult]) -> None:
    """Bar length per share is the same in every section: 8.3% here is shorter than 13.8% there."""
    page = parse(render_html(results))
    charts = _charts(page, "lines")
    assert len(charts) == len(results)
    ratios = []
    for chart, result in zip(charts, results, strict=True):
        bars = [n for n in chart.walk() if n.tag == "rect" and n.attrs.get("fill") == BAR_COLOR]
        assert len(bars) == len(result.lines)
        for bar, history in zip(bars, result.lines, strict=True):
            share = result.share(history.id)
            if share > 0:
                ratios.append(float(bar.attrs["width"]) / share)
    assert max(ratios) == pytest.approx(min(ratios), rel=0.01), (min(ratios), max(ratios))


def _legend_items(page: Node) -> list[tuple[dict[str, str], str]]:
    """(swatch style, the text after it up to the next swatch) for every legend swatch."""
    legends = [n for n in page.walk() if "legend" in n.classes()]
    assert legends, "no legend"
    items: list[tuple[dict[str, str], str]] = []
    for legend in legends:
        for node in legend.walk()[1:]:
            style = node.attrs.get("style", "")
            if "background" in style:
                declarations = (d.split(":", 1) for d in style.split(";") if ":" in d)
                items.append(({k.strip(): v.strip() for k, v in declarations}, ""))
            elif node.tag == "#text" and items:
                swatch, label = items[-1]
                items[-1] = (swatch, label + node.text)
    return items


def test_legend_shows_flagged_as_the_faded_strip_cells(results: list[RunResult]) -> None:
    """The legend's FLAGGED swatch is a strip cell faded as FLAGGED cells are, not the bar's."""
    page = parse(render_html(results))
    items = _legend_items(page)
    flagged = [(swatch, label) for swatch, label in items if "FLAGGED" in label]
    assert flagged, items
    strip_fades = {
        n.attrs["fill-opacity"]
        for chart in _charts(page, "lines")
        for n in chart.walk()
        if n.tag == "rect" and "fill-opacity" in n.attrs
    }
    assert len(strip_fades) == 1, strip_fades  # the sample pool has a FLAGGED line
    for swatch, label in flagged:
        assert swatch["background"].lower() != BAR_COLOR, label
        assert swatch["background"].lower() in REPUTATION_HEX.values(), label
        assert swatch.get("opacity") in strip_fades, (swatch, label)
    bar_labels = [label for swatch, label in items if swatch["background"].lower() == BAR_COLOR]
    assert bar_labels
    assert not any("FLAGGED" in label for label in bar_labels), bar_labels


def test_reputation_strips_have_a_time_axis_with_the_pool_events(
    results: list[RunResult],
) -> None:
    """The strips sit on a 0 s..end time axis that marks every pool event at its time."""
    page = parse(render_html(results))
    for chart, result in zip(_charts(page, "lines"), results, strict=True):
        ticks = len(result.lines[0].reputations)
        end = ticks * TICK_SECONDS
        labels = {n.own_text.strip(): n for n in chart.walk() if n.tag == "text"}
        assert "0s" in labels, sorted(labels)
        assert f"{end:.0f}s" in labels, sorted(labels)
        x0, x1 = float(labels["0s"].attrs["x"]), float(labels[f"{end:.0f}s"].attrs["x"])
        cells = [
            n
            for n in chart.walk()
            if n.tag == "rect"
            and n.attrs.get("fill", "").lower() != BAR_COLOR
            and n.attrs.get("fill", "").startswith("#")
        ]
        assert min(float(c.attrs["x"]) for c in cells) == pytest.approx(x0, abs=0.5)
        right = max(float(c.attrs["x"]) + float(c.attrs["width"]) for c in cells)
        assert right == pytest.approx(x1, abs=0.5)
        assert result.events
        for event in result.events:
            markers = [
                n
                for n in chart.walk()
                if n.tag == "line"
                and any(c.tag == "title" and event.label in c.all_text() for c in n.children)
            ]
            assert markers, f"no marker for {event.label!r}"
            expected = x0 + (x1 - x0) * event.tick * TICK_SECONDS / end
            for marker in markers:
                assert float(marker.attrs["x1"]) == pytest.approx(expected, abs=0.5)
                assert float(marker.attrs["x2"]) == pytest.approx(expected, abs=0.5)


def test_ejections_are_bands_over_their_lines_strips(results: list[RunResult]) -> None:
    """Each run's ejections sit on its own line's strip, from start to return, with a mark."""
    page = parse(render_html(results))
    for chart, result in zip(_charts(page, "lines"), results, strict=True):
        assert result.ejections
        ticks = len(result.lines[0].reputations)
        labels = {n.own_text.strip(): n for n in chart.walk() if n.tag == "text"}
        x0, x1 = (
            float(labels["0s"].attrs["x"]),
            float(labels[f"{ticks * TICK_SECONDS:.0f}s"].attrs["x"]),
        )
        bands = [n for n in chart.walk() if n.tag == "rect" and "ejected" in n.classes()]
        marks = [n for n in chart.walk() if n.tag == "line" and "returned" in n.classes()]
        assert len(bands) == len(result.ejections)
        assert len(marks) == sum(p.end is not None for p in result.ejections)
        for band, period in zip(bands, result.ejections, strict=True):
            assert band.attrs["fill"] == EJECTED_HEX
            row_y = float(labels[period.line].attrs["y"]) - 13  # the row's label baseline
            assert float(band.attrs["y"]) == pytest.approx(row_y + 4)
            end = ticks if period.end is None else period.end
            assert float(band.attrs["x"]) == pytest.approx(
                x0 + (x1 - x0) * period.start / ticks, abs=0.5
            )
            right = float(band.attrs["x"]) + float(band.attrs["width"])
            assert right == pytest.approx(x0 + (x1 - x0) * end / ticks, abs=0.5)
            assert period.line in band.all_text()


def test_figures_compare_the_loop_with_the_naive_worker(results: list[RunResult]) -> None:
    """The table's ineligible row shows each run's hits beside the naive worker's."""
    page = parse(render_html(results))
    rows = {
        r.children[0].all_text(): [c.all_text() for c in r.children[1:]]
        for r in page.walk()
        if r.tag == "tr"
    }
    cells = rows["sends that hit an ineligible line (403/2027)"]
    for cell, result in zip(cells, results, strict=True):
        assert result.sending is not None
        assert result.naive is not None
        assert result.naive.sending is not None
        assert (
            cell == f"{result.sending.ineligible} (naive worker: {result.naive.sending.ineligible})"
        )
    legend = " ".join(label for _, label in _legend_items(page))
    assert "ejected by the feedback loop (a 2027: 60 s" in legend


def test_charts_scale_down_with_the_window(results: list[RunResult]) -> None:
    """Every chart has a viewBox and CSS that lets it shrink to the page's width."""
    text = render_html(results)
    page = parse(text)
    charts = [n for n in page.walk() if n.tag == "svg" and "chart" in n.classes()]
    assert charts
    for chart in charts:
        assert re.fullmatch(r"0 0 [\d.]+ [\d.]+", chart.attrs.get("viewbox", "")), chart.attrs
    assert re.search(r"svg\.chart\s*\{[^}]*max-width:\s*100%", text), "no max-width: 100%"


def _browser() -> str:
    """The headless browser on PATH; without one the test fails (never skips), saying how."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "no headless browser found (looked for "
        + ", ".join(BROWSERS)
        + " on PATH): the HTML report's browser tests need one. Run the README's test "
        "command (bash scripts/setup.sh first), which installs Debian's chromium when it can, "
        "or install it yourself: apt-get install -y chromium"
    )


def test_a_missing_browser_fails_the_browser_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no browser on PATH the browser tests fail, naming the script that installs one."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"bash scripts/setup\.sh.*apt-get install"):
        _browser()


def _chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**os.environ, "HOME": str(profile)},
    )


def _decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0)
    channels = {2: 3, 6: 4}[colour]
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        previous = line
        rgb = bytes(line) if channels == 3 else bytes(b for k, b in enumerate(line) if k % 4 != 3)
        rows.append(rgb)
    return width, height, rows


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    value = int(hex_colour.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF


def test_report_renders_its_charts_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    """Chromium loads the page cleanly, its script counts the charts, the colours show."""
    browser = _browser()
    url = page.resolve().as_uri()
    dom = _chromium(browser, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f'data-charts="{2 * len(SPECS)}"' in dom.stdout, dom.stdout[:500]
    assert "Uncaught" not in dom.stderr, dom.stderr[-2000:]
    assert not re.search(r"CONSOLE.*error", dom.stderr, re.IGNORECASE), dom.stderr[-2000:]

    shot = tmp_path / "report.png"
    run = _chromium(
        browser, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1200,2800", url
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Uncaught" not in run.stderr, run.stderr[-2000:]
    width, height, rows = _decode_png(shot.read_bytes())
    assert (width, height) == (1200, 2800)
    pixels: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        pixels.update(zip(row[0::3], row[1::3], row[2::3], strict=True))
    # The share bars (the window is tall enough for both sections), and every
    # reputation the pool had, show as solid areas.
    assert pixels[_rgb(BAR_COLOR)] > 20_000
    for reputation in (Reputation.HEALTHY, Reputation.AT_RISK, Reputation.CRITICAL):
        assert pixels[_rgb(REPUTATION_HEX[reputation])] > 2_000, reputation
    # The feedback loop's ejections: bands 8 px high, a few dozen wide, in each section.
    assert pixels[_rgb(EJECTED_HEX)] > 1_000
    assert pixels[_rgb(RETURNED_HEX)] > 50


# Written into the page by the narrow-window test only: once laid out, the page says how
# wide it is and how far right its widest chart reaches.
_MEASURE = """<script>
window.addEventListener("load", function () {
  var right = 0;
  document.querySelectorAll("svg.chart").forEach(function (svg) {
    right = Math.max(right, svg.getBoundingClientRect().right);
  });
  document.body.dataset.scrollWidth = String(document.documentElement.scrollWidth);
  document.body.dataset.viewport = String(window.innerWidth);
  document.body.dataset.chartRight = String(Math.ceil(right));
});
</script></body>"""


def test_report_fits_a_narrow_window_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    """At 700 px wide nothing (chart, table) overflows: the page scrolls only down."""
    browser = _browser()
    measured = tmp_path / "measured.html"
    text = page.read_text(encoding="utf-8")
    assert text.count("</body>") == 1
    measured.write_text(text.replace("</body>", _MEASURE), encoding="utf-8")
    dom = _chromium(
        browser,
        tmp_path / "profile-narrow",
        f"--window-size={NARROW},1000",
        "--dump-dom",
        measured.resolve().as_uri(),
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = dict(re.findall(r'data-(scroll-width|viewport|chart-right)="(\d+)"', dom.stdout))
    assert set(found) == {"scroll-width", "viewport", "chart-right"}, dom.stdout[:500]
    assert int(found["viewport"]) == NARROW
    assert int(found["scroll-width"]) <= NARROW, found
    assert 0 < int(found["chart-right"]) <= NARROW, found
