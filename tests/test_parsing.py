"""Parsing of GET /v3/phone_numbers and PUT answers: both shapes, unknown values, junk."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linq_router import LinqResponseError, PhoneNumber, Reputation
from linq_router._parsing import (
    LineMemo,
    is_e164,
    parse_phone_number_list,
    parse_updated_number,
)

DOC = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation#healthy"


def entry(
    id_: str = "550e8400-e29b-41d4-a716-446655440000",
    number: str = "+12025551234",
    **extra: Any,
) -> dict[str, Any]:
    return {"id": id_, "phone_number": number, **extra}


def test_newer_shape_reads_every_field() -> None:
    """The current shape (reputation, line_type, status) maps onto PhoneNumber fully."""
    payload = {
        "phone_numbers": [
            entry(
                reputation={"status": "AT_RISK", "doc_url": DOC},
                forwarding_number="+13125550000",
                line_type="RCS",
                status="FLAGGED",
            )
        ]
    }
    [line] = parse_phone_number_list(payload)
    assert line == PhoneNumber(
        id="550e8400-e29b-41d4-a716-446655440000",
        phone_number="+12025551234",
        reputation=Reputation.AT_RISK,
        forwarding_number="+13125550000",
        line_type="RCS",
        doc_url=DOC,
        status="FLAGGED",
        reputation_raw="AT_RISK",
    )
    assert line.is_flagged


def test_older_shape_health_status_only() -> None:
    """The deprecated health_status-only shape still yields the reputation."""
    payload = {"phone_numbers": [entry(health_status={"status": "CRITICAL", "doc_url": DOC})]}
    [line] = parse_phone_number_list(payload)
    assert line.reputation is Reputation.CRITICAL
    assert line.line_type is None
    assert line.status is None
    assert line.forwarding_number is None


def test_both_shapes_prefer_reputation() -> None:
    """When both fields are present, `reputation` (the current one) wins."""
    payload = {
        "phone_numbers": [
            entry(
                reputation={"status": "HEALTHY", "doc_url": DOC},
                health_status={"status": "CRITICAL", "doc_url": DOC},
            )
        ]
    }
    assert parse_phone_number_list(payload)[0].reputation is Reputation.HEALTHY


def test_unknown_reputation_is_kept_raw_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    """A status newer than the library becomes UNKNOWN, keeps its name, warns once."""
    payload = {
        "phone_numbers": [
            entry(f"id-{i}", f"+1202555{i:04d}", reputation={"status": "SUSPENDED_TEST_1"})
            for i in range(3)
        ]
    }
    with caplog.at_level(logging.WARNING, logger="linq_router"):
        lines = parse_phone_number_list(payload)
        parse_phone_number_list(payload)
    assert [line.reputation for line in lines] == [Reputation.UNKNOWN] * 3
    assert {line.reputation_raw for line in lines} == {"SUSPENDED_TEST_1"}
    assert sum("SUSPENDED_TEST_1" in r.getMessage() for r in caplog.records) == 1


def test_unknown_fields_are_ignored() -> None:
    """Fields the library does not know do not break parsing."""
    payload = {"phone_numbers": [entry(reputation={"status": "HEALTHY"}, brand_new={"x": 1})]}
    assert parse_phone_number_list(payload)[0].reputation is Reputation.HEALTHY


def test_unknown_ranks_worst() -> None:
    """UNKNOWN is never preferred over CRITICAL."""
    ranks = [r.rank for r in (Reputation.HEALTHY, Reputation.AT_RISK, Reputation.CRITICAL)]
    assert ranks == sorted(ranks)
    assert Reputation.UNKNOWN.rank > Reputation.CRITICAL.rank


def test_bad_entries_are_dropped_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    """A non-E.164 number, a missing id or a duplicate id drops that entry only."""
    payload = {
        "phone_numbers": [
            entry("a", "+12025550001", reputation={"status": "HEALTHY"}),
            entry("b", "2025550002"),
            {"phone_number": "+12025550003"},
            entry("a", "+12025550004"),
            "not an object",
            entry("c", "+12025550005"),
        ]
    }
    with caplog.at_level(logging.WARNING, logger="linq_router"):
        lines = parse_phone_number_list(payload)
    assert [line.id for line in lines] == ["a", "c"]
    assert sum("dropping" in r.getMessage() for r in caplog.records) == 4


def test_all_entries_bad_is_an_error() -> None:
    """A list whose every entry is unusable is a broken answer, not an empty pool."""
    with pytest.raises(LinqResponseError, match="none of the 2"):
        parse_phone_number_list({"phone_numbers": [{"id": 1}, {"phone_number": "x"}]})


def test_empty_list_is_an_empty_pool() -> None:
    """An empty list is valid: the partner has no lines."""
    assert parse_phone_number_list({"phone_numbers": []}) == []


@pytest.mark.parametrize(
    "payload", [None, [], "x", 3, {"numbers": []}, {"phone_numbers": {"a": 1}}]
)
def test_wrong_shapes_raise_response_error(payload: object) -> None:
    """Anything that is not {"phone_numbers": [...]} raises LinqResponseError."""
    with pytest.raises(LinqResponseError):
        parse_phone_number_list(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
entry_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(), json_values),
        "phone_number": st.one_of(
            st.from_regex(r"\+[1-9][0-9]{5,14}", fullmatch=True), json_values
        ),
        "reputation": st.one_of(
            st.fixed_dictionaries(
                {
                    "status": st.sampled_from(["HEALTHY", "AT_RISK", "CRITICAL", "NEW"])
                    | json_values
                },
                optional={"doc_url": json_values},
            ),
            json_values,
        ),
        "health_status": json_values,
        "forwarding_number": st.one_of(st.none(), st.text(), json_values),
        "line_type": st.one_of(st.sampled_from(["iMessage", "RCS"]), json_values),
        "status": st.one_of(st.sampled_from(["ACTIVE", "FLAGGED"]), json_values),
    },
)
payloads = st.one_of(
    json_values,
    st.fixed_dictionaries({"phone_numbers": st.lists(st.one_of(entry_like, json_values))}),
)


@given(payloads)
def test_any_json_yields_lines_or_response_error(payload: object) -> None:
    """Whatever JSON arrives, the parser returns valid lines or raises LinqResponseError."""
    try:
        lines = parse_phone_number_list(payload)
    except LinqResponseError:
        return
    ids = [line.id for line in lines]
    assert len(ids) == len(set(ids))
    for line in lines:
        assert isinstance(line, PhoneNumber)
        assert line.id
        assert is_e164(line.phone_number)
        assert isinstance(line.reputation, Reputation)
        assert line.forwarding_number is None or is_e164(line.forwarding_number)
        assert line.line_type in (None, "iMessage", "RCS")
        assert line.status in (None, "ACTIVE", "FLAGGED")


def _lines_or_error(payload: object, memo: LineMemo | None = None) -> object:
    try:
        return parse_phone_number_list(payload, memo=memo)
    except LinqResponseError as exc:
        return type(exc)


@given(st.lists(st.one_of(entry_like, json_values), max_size=8), st.data())
def test_a_memo_never_changes_what_is_parsed(entries: list[Any], data: st.DataObject) -> None:
    """With a memo of an earlier list, a list parses to exactly what it does without one."""
    earlier = {"phone_numbers": data.draw(st.permutations(entries))}
    later = {
        "phone_numbers": data.draw(st.lists(st.sampled_from(entries) | entry_like))
        if entries
        else []
    }
    memo = LineMemo()
    assert _lines_or_error(earlier, memo) == _lines_or_error(earlier)
    assert _lines_or_error(later, memo) == _lines_or_error(later)


def test_an_unchanged_entry_gets_last_times_line_back() -> None:
    """Parsing the same list again with a memo returns the very same objects."""
    rows = [
        entry(reputation={"status": "HEALTHY", "doc_url": DOC}, line_type="iMessage"),
        entry("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "+12025551235", status="ACTIVE"),
    ]
    memo = LineMemo()
    first = parse_phone_number_list({"phone_numbers": rows}, memo=memo)
    rows[1] = {**rows[1], "status": "FLAGGED"}
    second = parse_phone_number_list({"phone_numbers": rows}, memo=memo)
    assert second[0] is first[0]
    assert second[1] is not first[1]
    assert second[1].is_flagged
    assert len(memo) == 2  # only the last list is remembered


def test_a_memo_skips_entries_it_cannot_key() -> None:
    """An unhashable value (a list where a string belongs) is parsed, just not remembered."""
    memo = LineMemo()
    rows = [entry(line_type=["iMessage"])]
    [line] = parse_phone_number_list({"phone_numbers": rows}, memo=memo)
    assert line.line_type is None
    assert len(memo) == 0


@given(json_values | entry_like)
def test_any_update_answer_yields_line_or_response_error(payload: object) -> None:
    """The PUT answer parser never raises anything but LinqResponseError."""
    try:
        line = parse_updated_number(payload)
    except LinqResponseError:
        return
    assert is_e164(line.phone_number)


def test_update_answer_without_reputation() -> None:
    """The PUT answer carries no reputation: UNKNOWN with no raw value."""
    line = parse_updated_number(entry(forwarding_number=None))
    assert line.reputation is Reputation.UNKNOWN
    assert line.reputation_raw is None
    assert line.forwarding_number is None
