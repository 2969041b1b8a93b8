"""Hypothesis strategies for policies: lines, snapshots and recipients.

For plugin authors (``check_policy`` is built on them) and for linq_router's own
tests. Numbers are valid E.164 from a few countries, with NANP area codes repeated on
purpose so that geography-aware policies see both matches and misses.

.. versionadded:: 0.1
"""

from __future__ import annotations

from hypothesis import strategies as st

from linq_router._models import PhoneNumber, Reputation, Snapshot

__all__ = ["e164_numbers", "emails", "phone_numbers", "recipients", "snapshots"]

# (prefix, digits that follow): US (several area codes), Canada, UK mobile and
# London, Australia mobile, France mobile.
_PLANS = (
    ("+1202555", 4),
    ("+1212555", 4),
    ("+1310555", 4),
    ("+1415555", 4),
    ("+1416555", 4),
    ("+447700900", 3),
    ("+44207946", 4),
    ("+6149157", 4),
    ("+33612", 6),
)


@st.composite
def _e164(draw: st.DrawFn) -> str:
    prefix, digits = draw(st.sampled_from(_PLANS))
    tail = draw(st.integers(min_value=0, max_value=10**digits - 1))
    return f"{prefix}{tail:0{digits}d}"


def e164_numbers() -> st.SearchStrategy[str]:
    """Valid E.164 numbers from the US, Canada, the UK, Australia and France.

    .. versionadded:: 0.1
    """
    return _e164()


def emails() -> st.SearchStrategy[str]:
    """Simple email addresses, mixed case (policies must normalize them).

    .. versionadded:: 0.1
    """
    local = st.text("abcXYZ019._", min_size=1, max_size=8).filter(
        lambda s: s[0] not in "._" and s[-1] not in "._"
    )
    domain = st.sampled_from(["example.com", "Example.org", "mail.example.net"])
    return st.builds(lambda a, b: f"{a}@{b}", local, domain)


def phone_numbers(
    *,
    reputations: st.SearchStrategy[Reputation] | None = None,
    ids: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[PhoneNumber]:
    """One line: any reputation, line type (or none), status (or none).

    .. versionadded:: 0.1
    """
    return st.builds(
        PhoneNumber,
        id=ids if ids is not None else st.uuids().map(str),
        phone_number=e164_numbers(),
        reputation=reputations if reputations is not None else st.sampled_from(Reputation),
        line_type=st.sampled_from([None, "iMessage", "RCS"]),
        status=st.sampled_from([None, "ACTIVE", "ACTIVE", "FLAGGED"]),
        forwarding_number=st.none() | e164_numbers(),
    )


def snapshots(
    *,
    min_size: int = 0,
    max_size: int = 12,
    lines: st.SearchStrategy[PhoneNumber] | None = None,
) -> st.SearchStrategy[Snapshot]:
    """A snapshot of ``min_size`` to ``max_size`` lines with distinct ids and numbers.

    .. versionadded:: 0.1
    """
    return st.lists(
        lines if lines is not None else phone_numbers(),
        min_size=min_size,
        max_size=max_size,
        unique_by=(lambda n: n.id, lambda n: n.phone_number),
    ).map(Snapshot)


def recipients(*, groups: bool = True) -> st.SearchStrategy[str | list[str]]:
    """A recipient as ``pick(to=...)`` takes it: a number, an email, or (``groups``) a list.

    .. versionadded:: 0.1
    """
    one = st.one_of(e164_numbers(), e164_numbers(), emails())
    if not groups:
        return one
    return st.one_of(one, st.lists(one, min_size=1, max_size=4))
