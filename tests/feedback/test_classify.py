"""classify: the table, every outcome shape, and never an exception."""

from __future__ import annotations

import logging

import httpx
import linq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from linq_router import LinqAPIError, Outcome, RateLimitError, ServerError, Verdict, classify
from linq_router._errors import LinqConnectionError
from linq_router.feedback import _classify

TABLE = [
    (200, None, Verdict.SUCCESS),
    (201, None, Verdict.SUCCESS),
    (202, None, Verdict.SUCCESS),
    (403, 2027, Verdict.LINE_INELIGIBLE),
    (500, 3006, Verdict.LINE_FAILURE),
    (500, None, Verdict.LINE_FAILURE),
    (502, None, Verdict.LINE_FAILURE),
    (503, 3006, Verdict.LINE_FAILURE),
    (429, 1007, Verdict.PAIR_LIMITED),
    (429, None, Verdict.PAIR_LIMITED),
    (403, 2024, Verdict.NOT_THE_LINE),
    (403, 2026, Verdict.NOT_THE_LINE),
    (400, 1005, Verdict.NOT_THE_LINE),
    (400, None, Verdict.NOT_THE_LINE),
    (401, 2004, Verdict.NOT_THE_LINE),
    (404, None, Verdict.NOT_THE_LINE),
    (409, None, Verdict.NOT_THE_LINE),
    (422, None, Verdict.NOT_THE_LINE),
]


@pytest.mark.parametrize(("status", "code", "verdict"), TABLE)
def test_the_table(status: int, code: int | None, verdict: Verdict) -> None:
    """Each row of the documented table, as an Outcome and as our own exception."""
    assert classify(Outcome(status, code)) is verdict
    assert classify(LinqAPIError("x", status=status, code=code)) is verdict
    if code is None:
        assert classify(status) is verdict


def _sdk_error(status: int, code: int | None) -> linq.APIStatusError:
    request = httpx.Request("POST", "https://api.linqapp.com/api/partner/v3/chats")
    response = httpx.Response(status, request=request)
    body = {"status": status, "code": code, "message": "m"} if code is not None else None
    client = linq.LinqAPIV3(api_key="k", base_url="http://127.0.0.1:9")
    return client._make_status_error("m", body=body, response=response)


@pytest.mark.parametrize(("status", "code", "verdict"), TABLE[3:])
def test_the_sdk_exceptions(status: int, code: int | None, verdict: Verdict) -> None:
    """The official SDK's own status errors classify by their status_code and code."""
    error = _sdk_error(status, code)
    assert isinstance(error, linq.APIStatusError)
    assert classify(error) is verdict


def test_no_answer_is_a_line_failure() -> None:
    """Timeouts and connection errors, from the SDK, httpx or us, are LINE_FAILURE."""
    request = httpx.Request("POST", "http://127.0.0.1:9/v3/chats")
    for error in (
        linq.APIConnectionError(request=request),
        linq.APITimeoutError(request=request),
        httpx.ConnectError("refused", request=request),
        httpx.ReadTimeout("slow", request=request),
        httpx.RemoteProtocolError("gone", request=request),
        LinqConnectionError("down"),
        TimeoutError(),
        Outcome(),
    ):
        assert classify(error) is Verdict.LINE_FAILURE, error


def test_our_retry_exhaustion_errors() -> None:
    """ServerError and RateLimitError carry their status."""
    assert classify(ServerError("x", status=500, code=3006)) is Verdict.LINE_FAILURE
    assert classify(RateLimitError("x", status=429, code=1007)) is Verdict.PAIR_LIMITED


def test_unknown_shapes_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    """An outcome nobody can read is NOT_THE_LINE, warned about once per shape."""
    _classify._warned.clear()

    class Strange:
        pass

    with caplog.at_level(logging.WARNING, logger="linq_router"):
        assert classify(Strange()) is Verdict.NOT_THE_LINE
        assert classify(Strange()) is Verdict.NOT_THE_LINE
        assert classify("boom") is Verdict.NOT_THE_LINE
        assert classify(ValueError("x")) is Verdict.NOT_THE_LINE
        assert classify(999) is Verdict.NOT_THE_LINE
    warned = [r for r in caplog.records if "cannot tell" in r.getMessage()]
    assert len(warned) == 4
    assert "Strange" in warned[0].getMessage()


def test_a_hostile_exception_never_escapes() -> None:
    """An outcome whose attributes raise is still classified."""

    class Hostile(Exception):
        @property
        def status_code(self) -> int:
            raise RuntimeError("no")

    assert classify(Hostile()) is Verdict.NOT_THE_LINE


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.builds(
            Outcome,
            st.none() | st.integers(-10, 1000),
            st.none() | st.integers(-10, 10_000),
            st.none() | st.floats(allow_nan=True),
        ),
        st.text(max_size=5),
        st.floats(),
        st.booleans(),
        st.lists(st.integers(), max_size=3),
    )
)
def test_classify_never_raises(outcome: object) -> None:
    """Any value at all gets a Verdict, never an exception."""
    assert isinstance(classify(outcome), Verdict)


@given(st.integers(100, 599), st.none() | st.integers(0, 10_000))
def test_every_status_and_code_pair(status: int, code: int | None) -> None:
    """Every (status, code) pair classifies as the table says."""
    verdict = classify(Outcome(status, code))
    if 200 <= status < 300:
        expected = Verdict.SUCCESS
    elif status == 403 and code == 2027:
        expected = Verdict.LINE_INELIGIBLE
    elif status >= 500:
        expected = Verdict.LINE_FAILURE
    elif status == 429 and code in (None, 1007):
        expected = Verdict.PAIR_LIMITED
    else:
        expected = Verdict.NOT_THE_LINE
    assert verdict is expected


def test_verdict_is_a_str_enum() -> None:
    """Verdicts compare and print as their names."""
    assert Verdict.SUCCESS == "SUCCESS"
    assert str(Verdict.LINE_INELIGIBLE) == "LINE_INELIGIBLE"
