"""The linq-router command line, run through click's runner against the fake API."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.cells import cell_len

from linq_router import API_KEY_ENV, BASE_URL_ENV
from linq_router._cli_errors import HoldingErrors, check_base_url
from linq_router.cli import CliContext, main
from linq_router.testing import FakeClock, FakeLinqServer, sample_pool


def test_numbers_demo_prints_the_sample_pool() -> None:
    """`numbers --demo` shows every sample line with its reputation and a summary."""
    result = CliRunner().invoke(main, ["numbers", "--demo"])
    assert result.exit_code == 0, result.output
    for line in sample_pool():
        assert line["phone_number"] in result.output
    assert "CRITICAL" in result.output
    assert "12 lines:" in result.output


def test_numbers_json_against_the_api(
    server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --demo, `numbers --json` reads the API named by the environment."""
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    server.set_reputation(server.numbers[0]["id"], "AT_RISK")
    result = CliRunner().invoke(main, ["numbers", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [n["id"] for n in payload["phone_numbers"]] == [n["id"] for n in server.numbers]
    assert payload["phone_numbers"][0]["reputation"] == "AT_RISK"
    assert server.count("GET /v3/phone_numbers") == 1


def test_missing_key_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key: exit 2, naming the variable and --demo."""
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    result = CliRunner().invoke(main, ["numbers"])
    assert result.exit_code == 2
    assert API_KEY_ENV in result.output
    assert "--demo" in result.output


def test_refused_key_exits_1(server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key the API refuses (2004): exit 1 with a message saying so, key not echoed."""
    monkeypatch.setenv(API_KEY_ENV, "sk-wrong-key")
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    result = CliRunner().invoke(main, ["numbers"])
    assert result.exit_code == 1
    assert "refused" in result.output
    assert "2004" in result.output
    assert "sk-wrong-key" not in result.output


def test_python_dash_m_runs_the_cli() -> None:
    """`python -m linq_router numbers --demo --json` works as a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "linq_router", "numbers", "--demo", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["phone_numbers"]) == len(sample_pool())


def test_pick_prints_from_numbers_with_explanation() -> None:
    """`pick --count 3 --explain` prints three eligible numbers and their reasoning."""
    result = CliRunner().invoke(
        main, ["pick", "--demo", "--to", "+12025550123", "--count", "3", "--explain"]
    )
    assert result.exit_code == 0, result.output
    chosen = [line for line in result.output.splitlines() if line.startswith("+")]
    eligible = {
        n["phone_number"]
        for n in sample_pool()
        if n["reputation"]["status"] in ("HEALTHY", "AT_RISK") and n.get("status") != "FLAGGED"
    }
    assert len(chosen) == 3
    assert set(chosen) <= eligible
    assert "CRITICAL skipped" in result.output


def test_pick_voice_memo_with_strict_rcs_policy() -> None:
    """`--purpose voice_memo --policy 'line-type(RCS) | round-robin'` picks only RCS lines."""
    result = CliRunner().invoke(
        main,
        ["pick", "--demo", "--purpose", "voice_memo", "--policy", "line-type(RCS) | round-robin"],
    )
    assert result.exit_code == 0, result.output
    rcs = {n["phone_number"] for n in sample_pool() if n.get("line_type") == "RCS"}
    assert result.output.strip() in rcs


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--policy", "no-such-policy"], "reputation-weighted"),
        (["--to", "not-a-handle"], "not-a-handle"),
    ],
)
def test_pick_bad_input_is_a_usage_error(args: list[str], needle: str) -> None:
    """A bad spec lists the known names; a bad recipient is named; both exit 2."""
    result = CliRunner().invoke(main, ["pick", "--demo", *args])
    assert result.exit_code == 2
    assert needle in result.output


def test_pick_with_nothing_eligible_exits_1(
    server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every line is CRITICAL, pick exits 1 saying what was dropped."""
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    for line in server.numbers:
        server.set_reputation(line["id"], "CRITICAL")
    result = CliRunner().invoke(main, ["pick"])
    assert result.exit_code == 1
    assert "CRITICAL" in result.output


def test_update_sets_and_clears_through_the_api(
    server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`update ID --forwarding-number` and `--clear` change the line on the API."""
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    line_id = server.numbers[0]["id"]
    result = CliRunner().invoke(main, ["update", line_id, "--forwarding-number", "+13125550000"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["forwarding_number"] == "+13125550000"
    assert server.numbers[0]["forwarding_number"] == "+13125550000"
    result = CliRunner().invoke(main, ["update", line_id, "--clear"])
    assert result.exit_code == 0, result.output
    assert server.numbers[0]["forwarding_number"] is None


@pytest.mark.parametrize(
    "args",
    [
        ["x"],
        ["x", "--clear", "--forwarding-number", "+13125550000"],
        ["x", "--forwarding-number", "123"],
    ],
)
def test_update_usage_errors(args: list[str]) -> None:
    """Neither or both of --forwarding-number/--clear, or a non-E.164 number: exit 2."""
    result = CliRunner().invoke(main, ["update", "--demo", *args])
    assert result.exit_code == 2, result.output


# -- widths: every table readable and copyable at 80 and 120 columns -----------------

WIDTHS = [80, 120]


def at_width(width: int, args: list[str], **kwargs: Any) -> Result:
    """Run the command line as a terminal ``width`` columns wide would."""
    return CliRunner().invoke(main, args, env={"COLUMNS": str(width)}, **kwargs)


def assert_fits(output: str, width: int) -> None:
    """Nothing is cut short, and no line is wider than the terminal."""
    assert "…" not in output
    assert max(cell_len(line) for line in output.splitlines()) <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_numbers_keeps_every_id_and_number_whole(width: int) -> None:
    """`numbers` shows each id and number in full, within the terminal's width."""
    result = at_width(width, ["numbers", "--demo"])
    assert result.exit_code == 0, result.output
    assert_fits(result.output, width)
    rows = [line for line in result.output.splitlines() if "0b6f1c2e-" in line]
    assert len(rows) == len(sample_pool())
    for line, row in zip(sample_pool(), rows, strict=True):
        assert line["id"] in row
        assert line["phone_number"] in row
        assert line["reputation"]["status"] in row
    assert "12 lines: 8 HEALTHY, 2 AT_RISK, 2 CRITICAL, 1 FLAGGED" in result.output


def test_numbers_says_which_columns_a_narrow_terminal_hides() -> None:
    """At 120 columns every column shows; at 80 the table says what it left out."""
    wide = at_width(120, ["numbers", "--demo"]).output
    narrow = at_width(80, ["numbers", "--demo"]).output
    assert "+447700900999" in wide
    assert "forwarding" in wide
    assert "not shown" not in wide
    assert "not shown" in narrow
    assert "--json" in narrow


@pytest.mark.parametrize("width", WIDTHS)
def test_pick_prints_whole_numbers(width: int) -> None:
    """`pick --explain` prints each chosen number whole at any width."""
    result = at_width(
        width, ["pick", "--demo", "--count", "3", "--explain", "--to", "+12025550123"]
    )
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    numbers = {line["phone_number"] for line in sample_pool()}
    chosen = [line for line in result.output.splitlines() if line.startswith("+")]
    assert len(chosen) == 3
    assert set(chosen) <= numbers


@pytest.mark.parametrize("width", WIDTHS)
def test_update_prints_the_whole_line(width: int) -> None:
    """`update` prints the updated line's id and numbers whole at any width."""
    line = sample_pool()[0]
    result = at_width(
        width, ["update", "--demo", line["id"], "--forwarding-number", "+13125550000"]
    )
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    payload = json.loads(result.output)
    assert (payload["id"], payload["phone_number"]) == (line["id"], line["phone_number"])
    assert payload["forwarding_number"] == "+13125550000"


@pytest.mark.parametrize("width", WIDTHS)
def test_top_level_help_shows_each_command_whole(width: int) -> None:
    """`--help` lists every command with its whole description, never cut with '...'."""
    # A real process: click sizes help by the terminal, which CliRunner replaces.
    proc = subprocess.run(
        [sys.executable, "-m", "linq_router", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": str(width)},
    )
    assert proc.returncode == 0, proc.stderr
    commands = proc.stdout.split("Commands:", 1)[1]
    assert "..." not in commands
    flat = " ".join(commands.split())
    for name, command in main.commands.items():  # type: ignore[attr-defined]
        assert name in flat
        assert " ".join(command.get_short_help_str(10_000).split()) in flat


# -- update by number ------------------------------------------------------------------


def test_update_accepts_the_number_the_list_shows(
    server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`update +1...` finds the line with that number and updates it by its id."""
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    line = server.numbers[1]
    result = CliRunner().invoke(
        main, ["update", line["phone_number"], "--forwarding-number", "+13125550000"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["id"] == line["id"]
    assert server.numbers[1]["forwarding_number"] == "+13125550000"
    assert server.count(f"PUT /v3/phone_numbers/{line['id']}") == 1


def test_update_of_an_unknown_number_says_so(
    server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A number no line has: exit 1, naming it and where to find the lines, no PUT sent."""
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    result = CliRunner().invoke(main, ["update", "+19995550100", "--clear"])
    assert result.exit_code == 1, result.output
    assert "no line has the number +19995550100" in result.output
    assert "linq-router numbers" in result.output
    assert server.count("update") == 0


def test_update_of_an_unknown_id_says_so(
    server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An id the API does not know: exit 1 naming the id, without the raw HTTP details."""
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    result = CliRunner().invoke(main, ["update", "no-such-id", "--clear"])
    assert result.exit_code == 1, result.output
    assert "no line has the id 'no-such-id'" in result.output
    assert "linq-router numbers" in result.output


# -- failures: one clear line ------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["numbers"], ["pick"], ["update", "+12025551234", "--clear"], ["simulate", "--sends", "10"]],
)
def test_a_refused_key_is_one_clear_line(
    server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """A refused key: exit 1 and one line naming the variable, the URL and code 2004 once."""
    monkeypatch.setenv(API_KEY_ENV, "sk-wrong-key")
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: ")
    assert API_KEY_ENV in line
    assert server.base_url in line
    assert line.count("2004") == 1
    assert "sk-wrong-key" not in line


def test_a_refused_key_logs_nothing_else(server: FakeLinqServer) -> None:
    """Run as a program, a refused key prints exactly one line on stderr (no ERROR log)."""
    env = {**os.environ, API_KEY_ENV: "sk-wrong-key", BASE_URL_ENV: server.base_url}
    proc = subprocess.run(
        [sys.executable, "-m", "linq_router", "numbers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("Error: ")
    assert "refused" in line


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_api_is_named_without_secrets(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """No answer: exit 1 naming the URL tried, without its password, query or the key."""
    port = closed_port()
    monkeypatch.setenv(API_KEY_ENV, "sk-secret-key")
    monkeypatch.setenv(BASE_URL_ENV, f"http://ops:hunter2@127.0.0.1:{port}/api/partner?t=tok")
    result = CliRunner().invoke(main, ["numbers"], obj=CliContext(sleep=clock.sleep))
    assert result.exit_code == 1, result.output
    error = result.stderr.splitlines()[-1]
    assert error.startswith("Error: ")
    assert f"http://127.0.0.1:{port}/api/partner" in error
    assert BASE_URL_ENV in error
    for secret in ("hunter2", "ops:", "tok", "sk-secret-key"):
        assert secret not in result.output
    assert len(clock.sleeps) == 2  # the client's two retries, on the injected clock


def test_a_base_url_that_is_not_http_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A base URL without http(s)://: exit 2 naming the variable, not a traceback."""
    monkeypatch.setenv(API_KEY_ENV, "sk-secret-key")
    monkeypatch.setenv(BASE_URL_ENV, "ftp://ops:hunter2@example.com/")
    result = CliRunner().invoke(main, ["numbers"])
    assert result.exit_code == 2, result.output
    assert BASE_URL_ENV in result.output
    assert "http://" in result.output
    assert "hunter2" not in result.output


def test_library_errors_wait_for_the_end_and_vanish_after_a_failure() -> None:
    """Warnings print at once; errors print at the end, or never once the command failed."""
    stream = io.StringIO()
    handler = HoldingErrors()
    handler.setStream(stream)
    logger = logging.getLogger("linq_router.test_cli")
    logger.addHandler(handler)
    try:
        logger.warning("retrying")
        logger.error("refresh failed")
        assert stream.getvalue() == "WARNING: retrying\n"
        handler.show_held()
        assert stream.getvalue() == "WARNING: retrying\nERROR: refresh failed\n"
        logger.error("again")
        handler.failed()
        logger.error("and after the failure")
        handler.show_held()
        assert "again" not in stream.getvalue()
        assert "after the failure" not in stream.getvalue()
    finally:
        logger.removeHandler(handler)


def test_a_blank_base_url_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """LINQ_API_V3_BASE_URL of spaces is unset, as in the client; a bad scheme is refused."""
    import click

    monkeypatch.setenv(BASE_URL_ENV, "   ")
    check_base_url()
    monkeypatch.setenv(BASE_URL_ENV, "ftp://example.test")
    with pytest.raises(click.UsageError, match="http"):
        check_base_url()


def test_budgets_demo_shows_each_lines_use_after_a_run() -> None:
    """`budgets --demo` runs sends through the fake and shows used, remaining and resets."""
    result = CliRunner().invoke(main, ["budgets", "--demo"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "remaining" in line)
    for column in ("line", "kind", "limit", "used", "remaining", "resets in"):
        assert column in header
    rows = [line for line in result.output.splitlines() if "per_line" in line and "│" in line]
    assert len(rows) == len(sample_pool())
    used = []
    for row in rows:
        cells = [c.strip() for c in row.strip("│ ").split("│")]
        n, left = int(cells[3].replace(",", "")), int(cells[4].replace(",", ""))
        assert n + left == 7000
        assert cells[5] == "-" if n == 0 else re.fullmatch(r"23h \d\dm", cells[5])
        used.append(n)
    assert sum(used) == 400  # every send of the run was accepted and counted once
    assert "Pacing() defaults" in result.output


def test_budgets_reads_memory_storage_and_says_it_is_empty(
    server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --demo the lines come from the API; memory:// holds nothing, and it says so."""
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    result = CliRunner().invoke(main, ["budgets"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for line in server.numbers:
        assert line["phone_number"] in result.output
    assert "memory:// is this process's own store and starts empty" in result.output


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--storage", "nowhere"], 2, "limits storage URI"),
        (["--per-line", "lots"], 2, "not a rate"),
        (["--storage", "bogus://host"], 1, "could not read the budgets from bogus://host"),
    ],
)
def test_budgets_errors_are_one_line(
    server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, needle: str
) -> None:
    """A bad URI or rate is a usage error; a storage that cannot be read exits 1."""
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    result = CliRunner().invoke(main, ["budgets", *args])
    assert result.exit_code == code, result.output
    assert needle in result.output
    assert "Traceback" not in result.output


def test_budgets_without_a_key_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key and no --demo: exit 2 naming the variable, as the other commands."""
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    result = CliRunner().invoke(main, ["budgets"])
    assert result.exit_code == 2
    assert API_KEY_ENV in result.output
