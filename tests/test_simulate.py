"""`linq-router simulate`: the seeded workload, the run over the changing demo pool, the CLI."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from linq_router import API_KEY_ENV, BASE_URL_ENV, Reputation
from linq_router.cli import main
from linq_router.simulate._engine import run_specs, run_workload
from linq_router.simulate._results import Attempt, _Trace, summarize
from linq_router.simulate._workload import TICKS, Workload, make_workload
from linq_router.testing import FakeClock, FakeLinqServer, sample_pool

COMPARE = ["round-robin", "skip-critical | reputation-weighted", "skip-critical | sticky"]


@pytest.fixture(autouse=True)
def _no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test says whether it has a key; none inherits one from the environment.
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    monkeypatch.delenv(BASE_URL_ENV, raising=False)


# -- the workload ---------------------------------------------------------------------


def test_workload_is_reproducible_from_its_seed() -> None:
    """The same seed gives the same recipients and events; another seed does not."""
    a, b, c = make_workload(3000, 7), make_workload(3000, 7), make_workload(3000, 8)
    assert a == b
    assert a.recipients != c.recipients


def test_workload_mixes_new_and_returning_numbers_and_emails() -> None:
    """Recipients are E.164 numbers and some emails; most sends go to someone seen before."""
    workload = make_workload(5000, 1)
    recipients = workload.recipients
    emails = [r for r in recipients if "@" in r]
    numbers = [r for r in recipients if r.startswith("+")]
    assert len(emails) + len(numbers) == len(recipients)
    assert emails
    assert all(re.fullmatch(r"\+1\d{10}", n) for n in numbers)
    returning = len(recipients) - len(set(recipients))
    assert 0.4 < returning / len(recipients) < 0.8


def test_ticks_cover_every_send_once() -> None:
    """The ticks' send ranges are contiguous and cover the whole workload."""
    workload = make_workload(1001, 3)
    covered = [i for t in range(TICKS) for i in range(*workload.bounds(t))]
    assert covered == list(range(1001))


def test_events_drop_recover_fail_and_hide_send_behaviours() -> None:
    """The script drops, recovers, injects 3006s, and turns lines ineligible or failing."""
    events = make_workload(100, 1).events
    kinds = {(e.kind, e.value) for e in events}
    assert ("reputation", "CRITICAL") in kinds
    assert ("reputation", "HEALTHY") in kinds
    assert any(e.kind == "3006" for e in events)
    assert {("behaviour", "ineligible"), ("behaviour", "failing"), ("behaviour", "ok")} <= kinds
    assert [e.tick for e in events] == sorted(e.tick for e in events)
    assert all(e.hidden == (e.kind == "behaviour") for e in events)
    assert make_workload(100, 1, events=False).events == ()


@pytest.mark.parametrize("seed", range(1, 21))
def test_no_two_events_share_a_tick(seed: int) -> None:
    """Events are far enough apart that their marks on the report's time axis never overlap."""
    ticks = [e.tick for e in make_workload(100, seed).events]
    assert len(set(ticks)) == len(ticks), ticks


def test_behaviour_events_keep_their_lines_listed_healthy() -> None:
    """A send behaviour changes the fake's answers to sends, never its line list."""
    with FakeLinqServer(sample_pool()) as server:
        before = server.numbers
        for event in make_workload(100, 1).events:
            if event.hidden:
                event.apply(server)
                assert server.numbers == before
        assert server.numbers == before


# -- summarizing ----------------------------------------------------------------------


def test_summary_counts_attempts_repicks_and_who_stayed() -> None:
    """Shares count attempts; a send 'stayed' when it ended on its recipient's last line."""
    workload = Workload(1, ("a@x.io", "b@x.io", "a@x.io", "a@x.io", "b@x.io", "c@x.io"), ())
    h, c = Reputation.HEALTHY, Reputation.CRITICAL
    trace = _Trace(
        attempts=[
            Attempt(0, "L1", h, False, "accepted"),
            Attempt(1, "L2", h, False, "accepted"),
            Attempt(2, "L2", h, False, "ineligible"),
            Attempt(2, "L1", h, False, "accepted"),  # the repick, back on a's line
            Attempt(3, "L2", c, False, "failing"),  # not resent
            Attempt(4, None, None, False, "no_line"),
            Attempt(5, "L3", h, True, "accepted"),
        ],
        sent=True,
    )
    result = summarize("x", workload, trace, workers=1, elapsed=1.0, counters=(2, 0, 2, 0))
    assert (result.returning, result.stayed) == (2, 1)
    assert result.to_critical == 1
    assert result.to_flagged == 1
    assert result.critical_examples == ((3, "a@x.io", "L2"),)
    assert result.no_eligible == 1
    assert result.attempts == 7
    assert result.picks == {"L1": 2, "L2": 3, "L3": 1}
    assert result.hits == {"L2": 2}
    assert result.share("L2") == pytest.approx(3 / 7)
    assert result.uncached_api_calls == 6
    sending = result.sending
    assert sending is not None
    assert (sending.requests, sending.accepted, sending.ineligible, sending.failing) == (6, 4, 1, 1)
    assert (sending.repicks, sending.lost) == (1, 2)


def test_a_run_that_sent_nothing_has_no_send_figures() -> None:
    """A pick-only trace (the real API) summarizes without send figures."""
    workload = Workload(1, ("a@x.io",), ())
    trace = _Trace(attempts=[Attempt(0, "L1", Reputation.HEALTHY, False, "unsent")])
    result = summarize("x", workload, trace, workers=1, elapsed=1.0, counters=(1, 0, 1, 0))
    assert result.sending is None
    assert result.picks == {"L1": 1}


# -- running --------------------------------------------------------------------------


def test_run_refreshes_sends_and_sees_the_changes() -> None:
    """The registry refreshes on simulated time, retries 3006s and sees the drop; sends go out."""
    workload = make_workload(800, 2)
    clock = FakeClock(0.0)
    with FakeLinqServer(sample_pool(), clock=clock) as server:
        result = run_workload(
            "skip-critical | reputation-weighted",
            workload,
            base_url=server.base_url,
            api_key=server.api_key,
            server=server,
            clock=clock,
            workers=3,
        )
        assert result.api_calls == server.count("GET /v3/phone_numbers")
        sending = result.sending
        assert sending is not None
        assert server.count("POST /v3/chats") == len(server.sends) == sending.requests
        assert server.send_count() == sending.accepted
        assert server.rejected_count(code=2027) == sending.ineligible
        assert server.rejected_count(code=3006) == sending.failing
    assert sending.requests == 800 + sending.repicks
    assert result.refreshes > 10
    assert result.retries == 4  # 2 + 2 of the 3 failed tries (the third gives up)
    assert result.failures == 1
    assert result.api_calls < result.uncached_api_calls
    assert result.to_critical == result.to_flagged == result.no_eligible == 0
    dropped = next(h for h in result.lines if h.phone_number == "+12025550101")
    assert dropped.reputations[0] is Reputation.HEALTHY
    assert Reputation.CRITICAL in dropped.reputations
    recovered = next(h for h in result.lines if h.phone_number == "+13055550109")
    assert recovered.reputations[0] is Reputation.CRITICAL
    assert recovered.reputations[-1] is Reputation.HEALTHY
    assert result.picks.get(dropped.id, 0) > 0  # picked while healthy, skipped while not


def test_compare_only_skip_critical_avoids_critical_and_sticky_sticks() -> None:
    """Same seeded workload: round-robin hits CRITICAL lines, sticky keeps recipients."""
    workload = make_workload(1000, 5)
    rr, weighted, sticky = run_specs(COMPARE, workload, demo=True, workers=2, naive=False)
    assert rr.to_critical > 0
    assert weighted.to_critical == sticky.to_critical == 0
    assert sticky.stay_rate is not None
    assert rr.stay_rate is not None
    assert sticky.stay_rate > 0.85
    assert rr.stay_rate < 0.3
    assert rr.lines == weighted.lines == sticky.lines  # the same pool history for all
    assert rr.naive is weighted.naive is sticky.naive is None


def test_seeded_runs_repeat_their_figures() -> None:
    """Two runs with the same seed pick, send and eject alike, with the loop and without."""
    figures = []
    for _ in range(2):
        (result,) = run_specs(["skip-critical | sticky"], make_workload(700, 9), demo=True)
        assert result.naive is not None
        figures.append(
            (
                result.picks,
                result.by_reputation,
                result.stayed,
                result.api_calls,
                result.sending,
                result.ejections,
                result.naive.picks,
                result.naive.sending,
            )
        )
    assert figures[0] == figures[1]


# -- the command ----------------------------------------------------------------------


def test_simulate_default_run_reports() -> None:
    """`simulate` with no key runs the demo, loop and naive worker, and ends with the report."""
    result = CliRunner().invoke(main, ["simulate", "--sends", "600"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "skip-critical | reputation-weighted" in out
    assert "+12025550101" in out
    assert "picks/s" in out
    assert re.search(r"sends/s\s+\d", out)
    assert re.search(r"API calls\s+\d+ list requests vs 600 when listing before each send", out)
    assert "picks to a CRITICAL line: 0 (expected: none)" in out
    assert re.search(r"\d+ retries, \d+ refreshes, 1 failed", out)
    assert "drops to CRITICAL" in out
    assert "+12125550102 goes ineligible (403/2027; still listed HEALTHY)" in out
    assert re.search(r"returning recipients\s+kept their previous line: \d", out)
    loop = re.search(
        r"with the loop: (\d+) sends? hit ineligible lines \(naive worker: (\d+)\)", out
    )
    assert loop is not None, out
    assert int(loop[1]) < int(loop[2])
    assert re.search(r"feedback loop: \+12125550102 out t=\d+s-\d+s", out)
    assert "- ejected by the feedback loop" in out


def test_simulate_compare_side_by_side() -> None:
    """`--compare` prints the specs side by side with both verdicts."""
    result = CliRunner().invoke(main, ["simulate", "--sends", "600", "--compare", *COMPARE])
    assert result.exit_code == 0, result.output
    out = result.output
    assert (
        "CRITICAL lines at zero picks: skip-critical | reputation-weighted, "
        "skip-critical | sticky; not: round-robin"
    ) in out
    match = re.search(r"sticky keeps returning recipients on one line: .*?(\d+\.\d)%", out)
    assert match is not None
    assert float(match.group(1)) > 85
    for spec in COMPARE:
        line = re.search(
            re.escape(repr(spec)) + r" with the loop: (\d+) sends? hit ineligible lines "
            r"\(naive worker: (\d+)\)",
            out,
        )
        assert line is not None, spec
        assert int(line[1]) < int(line[2])
        assert f"feedback loop ({spec}): +12125550102 out" in " ".join(out.split())


def test_simulate_policy_option_and_seed() -> None:
    """`--policy` runs that spec; the same --seed gives the same share table."""
    args = [
        "simulate",
        "--sends",
        "500",
        "--policy",
        "round-robin",
        "--seed",
        "4",
        "--workers",
        "2",
    ]
    first = CliRunner().invoke(main, args)
    second = CliRunner().invoke(main, args)
    assert first.exit_code == second.exit_code == 0, first.output
    assert "'round-robin'" in first.output
    table = first.output.split("reputation over time (")[0]
    assert table == second.output.split("reputation over time (")[0]


@pytest.mark.parametrize(
    "args",
    [
        ["--policy", "bogus"],
        ["--policy", "skip-critical"],
        ["--policy", "round-robin | skip-critical"],
        ["--compare", "round-robin", "nonsense | sticky"],
    ],
)
def test_simulate_bad_spec_is_a_usage_error_listing_names(args: list[str]) -> None:
    """A bad spec exits 2 before running, and the message lists the known policies."""
    result = CliRunner().invoke(main, ["simulate", "--sends", "10", *args])
    assert result.exit_code == 2, result.output
    for name in ("round-robin", "reputation-weighted", "sticky", "skip-critical"):
        assert name in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["--policy", "round-robin", "--compare", "sticky"],
        ["round-robin"],
        ["--compare"],
        ["--sends", "0"],
    ],
)
def test_simulate_usage_errors(args: list[str]) -> None:
    """Conflicting or missing arguments exit 2."""
    result = CliRunner().invoke(main, ["simulate", *args])
    assert result.exit_code == 2, result.output


def test_simulate_api_failure_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a key the API refuses, simulate fails with exit code 1 and says why."""
    with FakeLinqServer(sample_pool()) as server:
        monkeypatch.setenv(API_KEY_ENV, "wrong-key")
        monkeypatch.setenv(BASE_URL_ENV, server.base_url)
        result = CliRunner().invoke(main, ["simulate", "--sends", "100"])
    assert result.exit_code == 1, result.output
    assert "2004" in result.output


def test_simulate_api_down_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """An API that answers nothing but 3006 is an API failure (exit 1), after retries."""
    with FakeLinqServer(sample_pool()) as server:
        server.fail_next("3006", times=None)
        monkeypatch.setenv(API_KEY_ENV, server.api_key)
        monkeypatch.setenv(BASE_URL_ENV, server.base_url)
        result = CliRunner().invoke(main, ["simulate", "--sends", "100"])
        assert server.count("GET /v3/phone_numbers") == 3
    assert result.exit_code == 1, result.output
    assert "3006" in result.output


def test_simulate_reads_the_real_api_without_changing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a key and no --demo, the pool is read but no events are injected."""
    with FakeLinqServer(sample_pool()) as server:
        monkeypatch.setenv(API_KEY_ENV, server.api_key)
        monkeypatch.setenv(BASE_URL_ENV, server.base_url)
        result = CliRunner().invoke(main, ["simulate", "--sends", "300"])
        assert server.count("GET /v3/phone_numbers") > 1
        assert server.numbers == sample_pool()
        assert server.sends == []
    assert result.exit_code == 0, result.output
    assert "no events were injected and nothing was sent" in " ".join(result.output.split())
    assert "0 retries" in result.output
    assert "naive worker" not in result.output


def test_simulate_writes_the_html_report(tmp_path: Path) -> None:
    """`--report` writes one HTML page with the charts."""
    out = tmp_path / "out.html"
    result = CliRunner().invoke(
        main, ["simulate", "--sends", "400", "--compare", *COMPARE[:2], "--report", str(out)]
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.count('<svg class="chart') == 4
    assert "round-robin" in page
    assert 'class="ejected"' in page
    assert "naive worker" in page


# -- widths: picks and shares stay whole at 80 and 120 columns -------------------------

WIDTHS = [80, 120]
NUMBERS = [line["phone_number"] for line in sample_pool()]
SHARE = re.compile(r"(\d+\.\d)%")


def at_width(width: int, args: list[str]) -> str:
    """The output of `linq-router <args>` on a terminal ``width`` columns wide."""
    result = CliRunner().invoke(main, args, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert max(cell_len(line) for line in result.output.splitlines()) <= width
    return result.output


def line_rows(output: str) -> dict[str, list[str]]:
    """The per-line table's rows, by number: each row's cells after the number."""
    rows = {}
    for text in output.splitlines():
        cells = [cell.strip() for cell in text.split("│")[1:-1]]
        if cells and cells[0] in NUMBERS:
            rows[cells[0]] = cells[1:]
    return rows


def picks_and_share(cells: list[str]) -> tuple[int, int, float]:
    """A one-spec row's pick count, refused count and share (the three cells in a row)."""
    at = next(k for k, cell in enumerate(cells) if re.fullmatch(r"\d[\d,]*", cell))
    refused = cells[at + 1]
    assert re.fullmatch(r"\d[\d,]*", refused), cells
    share = SHARE.fullmatch(cells[at + 2])
    assert share is not None, cells
    return int(cells[at].replace(",", "")), int(refused.replace(",", "")), float(share[1])


@pytest.mark.parametrize("width", WIDTHS)
def test_simulate_keeps_picks_and_shares_whole(width: int) -> None:
    """One spec: every line's picks, refusals and share are whole; picks add up to the sends."""
    out = at_width(width, ["simulate", "--sends", "300", "--workers", "1"])
    rows = line_rows(out)
    assert list(rows) == NUMBERS
    figures = [picks_and_share(cells) for cells in rows.values()]
    repicks = re.search(r"^repicks\s+(\d+) resends", out, re.MULTILINE)
    assert repicks is not None, out
    assert sum(picks for picks, _, _ in figures) == 300 + int(repicks[1])
    hit = re.search(r"(\d+) sends? hit ineligible lines", out)
    failing = re.search(r"^to a failing line\s+(\d+) sends", out, re.MULTILINE)
    assert hit is not None
    assert failing is not None
    assert sum(refused for _, refused, _ in figures) == int(hit[1]) + int(failing[1])
    shares = [share for _, _, share in figures]
    assert sum(shares) == pytest.approx(100, abs=0.6)
    assert "skip-critical | reputation-weighted" in out


@pytest.mark.parametrize("width", WIDTHS)
def test_simulate_compare_keeps_every_share_whole(width: int) -> None:
    """--compare: each line shows one whole share per spec; each spec's shares add to 100%."""
    out = at_width(width, ["simulate", "--sends", "300", "--workers", "1", "--compare", *COMPARE])
    rows = line_rows(out)
    assert list(rows) == NUMBERS
    columns = [[float(m) for c in cells for m in SHARE.findall(c)] for cells in rows.values()]
    assert all(len(shares) == len(COMPARE) for shares in columns)
    for k in range(len(COMPARE)):
        assert sum(shares[k] for shares in columns) == pytest.approx(100, abs=0.6)
    flat = " ".join(out.split())
    assert "CRITICAL lines at zero picks:" in flat
    for spec in COMPARE:
        assert spec in flat


def test_simulate_drops_timeline_legend_only_with_its_column() -> None:
    """The glyph legend shows exactly when the 'reputation over time' column does."""
    wide = at_width(120, ["simulate", "--sends", "300"])
    narrow = at_width(80, ["simulate", "--sends", "300", "--compare", *COMPARE])
    assert timeline_shown(wide)
    assert "█ HEALTHY" in wide
    assert "- ejected by the feedback loop" in wide
    assert not timeline_shown(narrow)
    assert "█ HEALTHY" not in narrow
    assert "ejected by the feedback loop" not in narrow
    assert "reputation over time not shown at this width" in narrow


def timeline_shown(output: str) -> bool:
    """Whether a table in ``output`` has the 'reputation over time' column."""
    return any("┃" in line and "reputation over time" in line for line in output.splitlines())


# -- argument mistakes -------------------------------------------------------------------


def test_one_bare_spec_suggests_policy() -> None:
    """`simulate round-robin` suggests --policy for one spec, not --compare."""
    result = CliRunner().invoke(main, ["simulate", "round-robin"])
    assert result.exit_code == 2, result.output
    assert "--policy 'round-robin'" in result.output
    assert "--compare" not in result.output.split("Error:", 1)[1].split("(")[0]


def test_several_bare_specs_suggest_compare() -> None:
    """`simulate round-robin sticky` suggests --compare for several specs."""
    result = CliRunner().invoke(main, ["simulate", "round-robin", "sticky"])
    assert result.exit_code == 2, result.output
    assert "--compare 'round-robin' 'sticky'" in result.output


@pytest.mark.parametrize(
    ("report", "needle"),
    [
        ("{tmp}/no/such/dir/x.html", "does not exist"),
        ("{tmp}", "is a directory"),
        ("{tmp}/file.txt/x.html", "not a directory"),
    ],
)
def test_a_report_path_that_cannot_be_written_fails_before_the_run(
    tmp_path: Path, report: str, needle: str
) -> None:
    """--report to a path that cannot be written: exit 2 at once, one line, nothing run."""
    (tmp_path / "file.txt").write_text("x")
    path = report.format(tmp=tmp_path)
    result = CliRunner().invoke(main, ["simulate", "--sends", "300000", "--report", path])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: ")
    assert "--report" in line
    assert needle in line
    assert "Traceback" not in result.output


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_a_report_in_a_read_only_directory_fails_before_the_run(tmp_path: Path) -> None:
    """--report into a directory without write permission: exit 2 at once, one line."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = CliRunner().invoke(
            main, ["simulate", "--sends", "300000", "--report", str(locked / "x.html")]
        )
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 2, result.output
    assert "not writable" in result.stderr
