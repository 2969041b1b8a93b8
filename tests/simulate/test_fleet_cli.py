"""``simulate --workers-processes N --state URI``: a fleet's shares against one process's.

Each run forks N worker processes (and one more for the single process) that pick from
the embedded fake API, in a namespace of the run's own on a real redis-server.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

from linq_router import API_KEY_ENV, BASE_URL_ENV
from linq_router.cli import main
from linq_router.testing import FakeLinqServer, RedisServer, sample_pool

_TITLE = re.compile(r"^'(?P<spec>[^']+)': (?P<picks>[\d,]+) picks by (?P<n>\d+) processes")
_ROW = re.compile(
    r"^│ (?P<line>\+\d+) +│ +(?P<fleet>[\d,]+) │ +[\d.]+% │ +(?P<one>[\d,]+) │ +[\d.]+% │"
    r" +(?P<diff>[+-]?[\d,]+) │$"
)
# sample_pool(): 12 lines, of which 2 CRITICAL (weight 0 in reputation-weighted), 2
# AT_RISK (0.25) and 8 HEALTHY (1): a weighted cycle of 8 x 4 + 2 x 1 = 34 turns.
LINES = [line["phone_number"] for line in sample_pool()]
_REPUTATION = {line["phone_number"]: line["reputation"]["status"] for line in sample_pool()}
TURNS = {"HEALTHY": 4, "AT_RISK": 1, "CRITICAL": 0}


def _simulate(*args: str) -> Result:
    result = CliRunner(env={API_KEY_ENV: None}).invoke(main, ["simulate", "--demo", *args])
    assert "Traceback" not in result.output
    return result


def _tables(output: str) -> dict[str, dict[str, tuple[int, int, int]]]:
    """spec -> line -> (fleet's picks, one process's, difference), from the tables."""
    tables: dict[str, dict[str, tuple[int, int, int]]] = {}
    rows: dict[str, tuple[int, int, int]] = {}
    for text in output.splitlines():
        title = _TITLE.match(text)
        if title:
            rows = tables.setdefault(title["spec"], {})
        row = _ROW.match(text.strip())
        if row:
            numbers = (row["fleet"], row["one"], row["diff"])
            fleet, one, diff = (int(n.replace(",", "")) for n in numbers)
            rows[row["line"]] = (fleet, one, diff)
    return tables


def _flat(output: str) -> str:
    return " ".join(output.split())


def test_three_processes_on_redis_pick_as_one(redis_server: RedisServer) -> None:
    """3 processes x 2 threads on one Redis: round-robin's counts are one process's, exactly.

    240 picks are 20 whole cycles of the 12 lines; reputation-weighted's 240 turns of its
    34-turn cycle stay within one cycle of each line's share; all keys are the run's own.
    """
    state = f"{redis_server.url}/0?namespace=fleet-cli"
    result = _simulate(
        "--workers-processes", "3", "--workers", "2", "--state", state, "--sends", "240",
        "--compare", "round-robin", "reputation-weighted",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    tables = _tables(result.output)
    assert dict(tables["round-robin"]) == dict.fromkeys(LINES, (20, 20, 0))
    weighted = tables["reputation-weighted"]
    assert sum(fleet for fleet, _, _ in weighted.values()) == 240
    for line, (fleet, one, diff) in weighted.items():
        turns = TURNS[_REPUTATION[line]]
        assert fleet - one == diff
        assert abs(fleet - 240 * turns / 34) <= turns  # the share of one, within a cycle
        assert abs(diff) <= turns
    flat = _flat(result.output)
    assert flat.count("shares match one process exactly: the 3 processes shared one state") == 2
    assert "namespace fleet-cli-simulate-" in flat
    client = redis.Redis.from_url(redis_server.url + "/0")
    keys = [key.decode() for key in client.scan_iter(match="*fleet-cli*")]
    client.close()
    assert keys
    assert all(key.startswith("{fleet-cli-simulate-") for key in keys)


def test_memory_state_rotates_in_each_process_on_its_own() -> None:
    """Without --state (memory://), 3 processes rotate apart: the shares do not match one's."""
    result = _simulate("--workers-processes", "3", "--policy", "round-robin", "--sends", "200")
    assert result.exit_code == 0, result.output
    rows = _tables(result.output)["round-robin"]
    # 67, 67 and 66 picks each start at the top of the rotation: the first lines gain.
    assert sum(fleet for fleet, _, _ in rows.values()) == 200
    assert any(diff for _, _, diff in rows.values())
    flat = _flat(result.output)
    assert "shares do NOT match one process" in flat
    assert "each of the 3 processes kept its own state (memory://)" in flat
    assert "give --state redis://HOST:PORT/DB" in flat


def test_unreachable_redis_is_reported_not_hidden() -> None:
    """A Redis that is down: every process falls back to memory, and the output says so."""
    with RedisServer() as server:
        server.kill()
        state = f"redis://:hunter2@127.0.0.1:{server.port}/0"
        result = _simulate("--workers-processes", "2", "--state", state, "--sends", "50")
    assert result.exit_code == 0, result.output
    flat = _flat(result.output)
    assert "Redis unreachable: 2 of 2 processes fell back to their own memory" in flat
    assert "ResilientState: 2 outages" in flat
    assert "did not share their turns while Redis was unreachable" in flat
    assert "hunter2" not in result.output
    assert f"redis://:***@127.0.0.1:{server.port}/0" in flat


@pytest.mark.parametrize("value", ["0", "-2", "abc", "1.5"])
def test_workers_processes_must_be_an_integer_of_at_least_one(value: str) -> None:
    """A bad --workers-processes is a usage error naming the option and the value."""
    result = _simulate("--workers-processes", value)
    assert result.exit_code == 2
    assert "Invalid value for '--workers-processes'" in result.output
    assert value in result.output


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("redis://user:hunter2@127.0.0.1:6379/0?bogus=1", "unknown option 'bogus'"),
        ("redis://:hunter2@127.0.0.1:6379/zz", "the database must be a number"),
        ("mongodb://127.0.0.1", "unsupported scheme 'mongodb://'"),
    ],
)
def test_a_state_uri_from_uri_rejects_is_a_clean_usage_error(uri: str, says: str) -> None:
    """from_uri's ValueError: exit 2 naming --state and the problem, password masked."""
    result = _simulate("--workers-processes", "2", "--state", uri)
    assert result.exit_code == 2
    assert "Invalid value for '--state'" in result.output
    assert says in result.output
    assert "hunter2" not in result.output


@pytest.mark.parametrize("option", [["--day"], ["--report", "fleet.html"]])
def test_day_and_report_are_refused_in_fleet_mode(option: list[str], tmp_path: Path) -> None:
    """--day and --report do not run with --workers-processes: a usage error says so."""
    given = [*option[:1], *(str(tmp_path / name) for name in option[1:])]
    result = _simulate("--workers-processes", "2", *given)
    assert result.exit_code == 2
    assert f"{option[0]} does not run with --workers-processes/--state" in result.output


def test_a_failing_worker_fails_the_run_and_ends_the_others(
    server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key the API refuses (real API mode): exit 1 naming the worker, key not echoed."""
    monkeypatch.setenv(API_KEY_ENV, "refused-key-0123456789")
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    args = ["simulate", "--workers-processes", "2", "--sends", "20", "--policy", "round-robin"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "worker process" in result.output
    assert "2004" in result.output
    assert "refused-key-0123456789" not in result.output
    assert "Traceback" not in result.output


def test_the_real_api_mode_picks_from_the_pool_the_environment_names(
    server: FakeLinqServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a key and no --demo, every process reads the API of the environment."""
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    monkeypatch.setenv(BASE_URL_ENV, server.base_url)
    args = ["simulate", "--workers-processes", "2", "--sends", "30", "--policy", "round-robin"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = _tables(result.output)["round-robin"]
    assert set(rows) == {line["phone_number"] for line in server.numbers}
    assert server.count("GET /v3/phone_numbers") == 3  # each process listed once
    assert "nothing was sent" in result.output
