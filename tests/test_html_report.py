"""`simulate --report`: a self-contained page whose charts render in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest

from linq_router import Reputation
from linq_router._html_report import BAR_COLOR, REPUTATION_HEX, render_html
from linq_router._simulate import RunResult, make_workload, run_specs

SPECS = ["round-robin", "skip-critical | sticky"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def results() -> list[RunResult]:
    return run_specs(SPECS, make_workload(2000, 3), demo=True, workers=2)


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


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "no headless browser found (looked for "
        + ", ".join(BROWSERS)
        + "); install Debian's chromium: apt-get install -y chromium"
    )


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
    """Chromium loads the page without errors, its script counts the charts, and the
    screenshot shows the bar and reputation colours."""
    browser = _browser()
    url = page.resolve().as_uri()
    dom = _chromium(browser, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f'data-charts="{2 * len(SPECS)}"' in dom.stdout, dom.stdout[:500]
    assert "Uncaught" not in dom.stderr, dom.stderr[-2000:]
    assert not re.search(r"CONSOLE.*error", dom.stderr, re.IGNORECASE), dom.stderr[-2000:]

    shot = tmp_path / "report.png"
    run = _chromium(
        browser, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1200,1400", url
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Uncaught" not in run.stderr, run.stderr[-2000:]
    width, height, rows = _decode_png(shot.read_bytes())
    assert (width, height) == (1200, 1400)
    pixels: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        pixels.update(zip(row[0::3], row[1::3], row[2::3], strict=True))
    # The share bars, and every reputation the pool had, show as solid areas.
    assert pixels[_rgb(BAR_COLOR)] > 20_000
    for reputation in (Reputation.HEALTHY, Reputation.AT_RISK, Reputation.CRITICAL):
        assert pixels[_rgb(REPUTATION_HEX[reputation])] > 2_000, reputation
