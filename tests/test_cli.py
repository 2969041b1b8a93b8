"""The linq-router command line, run through click's runner against the fake API."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from linq_router import API_KEY_ENV, BASE_URL_ENV
from linq_router.cli import main
from linq_router.testing import FakeLinqServer, sample_pool


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
