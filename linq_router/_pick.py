"""What a pick returns and what it is asked: ``Pick``, its ``Explanation``, ``PickContext``.

Policies build every ``Pick`` they can return while they compile against a snapshot,
so a pick hands back an object that already exists; rendering the explanation to text
happens only when someone reads it (``str()``, or a DEBUG log that is enabled).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Sized

import attrs

from ._arguments import shown
from ._models import PhoneNumber
from ._parsing import is_e164

__all__ = [
    "PURPOSES",
    "Cell",
    "Explanation",
    "Pick",
    "PickContext",
    "Purpose",
    "Stage",
    "make_context",
]

Purpose = str
"""``"chat"`` or ``"voice_memo"``: what the chosen line will carry."""

PURPOSES: tuple[str, ...] = ("chat", "voice_memo")
"""Every purpose ``Router.pick`` accepts."""

# Deliberately loose: Linq validates addresses itself; this only catches values that
# are plainly neither a phone number nor an address (typos, names, empty strings).
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


@attrs.frozen
class Stage:
    """One step of a pipeline, as an explanation shows it.

    ``kept`` of ``total`` lines went on; ``dropped`` lists ``(reason, count)`` pairs
    (``("CRITICAL", 2)`` renders as "2 CRITICAL skipped"); ``note`` is free text
    (a soft filter saying it fell back, for example).

    .. versionadded:: 0.1
    """

    name: str
    kept: int
    total: int
    dropped: tuple[tuple[str, int], ...] = ()
    note: str | None = None

    def __str__(self) -> str:
        text = f"{self.name}: kept {self.kept} of {self.total}"
        details = [f"{count} {reason} skipped" for reason, count in self.dropped if count]
        if self.note:
            details.append(self.note)
        if details:
            text += f" ({', '.join(details)})"
        return text


class Cell:
    """A value a compiled group shares with the picks it built, updated in place.

    An incremental compile that keeps a group's picks (their lines did not change)
    only has to update the group's stages, or its total weight, here, instead of
    rebuilding every pick because a count in its explanation moved.
    """

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Cell({self.value!r})"


class Explanation:
    """Why a line was chosen: each filter stage in order, then the selector's choice.

    ``str()`` renders it for people, for example
    ``"skip-critical: kept 9 of 12 (2 CRITICAL skipped, 1 FLAGGED skipped) →
    reputation-weighted: chose +12025551234 (HEALTHY, weight 1.0)"``.

    ``stages`` and ``choice`` are rendered when read: the picks a policy builds at
    compile time share their group's current stages, so an explanation always counts
    the lines as of the compiled policy that handed the pick out.

    .. versionadded:: 0.1
    """

    __slots__ = ("_choice", "_stages")

    def __init__(self, stages: tuple[Stage, ...], choice: str) -> None:
        self._stages: tuple[Stage, ...] | Cell = tuple(stages)
        self._choice: str | Callable[[], str] = choice

    @classmethod
    def live(cls, stages: Cell, choice: str | Callable[[], str]) -> Explanation:
        """An explanation whose stages are read from ``stages`` (a ``Cell``) when rendered.

        ``choice`` may be a function, called when the explanation is read.

        .. versionadded:: 0.2
        """
        explanation = cls.__new__(cls)
        explanation._stages = stages
        explanation._choice = choice
        return explanation

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The filter stages, in order."""
        stages = self._stages
        return stages.value if isinstance(stages, Cell) else stages  # type: ignore[return-value]

    @property
    def choice(self) -> str:
        """What the selector said about its choice."""
        choice = self._choice
        return choice if isinstance(choice, str) else choice()

    def __str__(self) -> str:
        return " → ".join([*(str(stage) for stage in self.stages), self.choice])

    def __repr__(self) -> str:
        return f"Explanation(stages={self.stages!r}, choice={self.choice!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Explanation):
            return NotImplemented
        return (self.stages, self.choice) == (other.stages, other.choice)

    def __hash__(self) -> int:
        return hash((self.stages, self.choice))

    def __reduce__(self) -> tuple[type[Explanation], tuple[tuple[Stage, ...], str]]:
        # Pickled as it reads now: the shared cell stays behind.
        return (Explanation, (self.stages, self.choice))


@attrs.frozen
class Pick:
    """The line a policy chose: pass ``phone_number`` as the message's ``from``.

    ``number`` is the full ``PhoneNumber``, ``policy`` the name (spec) of the policy
    that chose it, ``purpose`` what it was chosen for, and ``explanation`` why.

    .. versionadded:: 0.1
    """

    phone_number: str
    number: PhoneNumber = attrs.field(repr=False)
    policy: str
    explanation: Explanation = attrs.field(repr=False)
    purpose: str = "chat"


@attrs.frozen
class PickContext:
    """What a pick is asked for: the normalized recipients and the purpose.

    ``recipients`` keeps the caller's order (E.164 numbers as given, emails in lower
    case); ``key`` identifies the conversation (the sorted, de-duplicated handles
    joined), ``None`` when no recipient was given.

    .. versionadded:: 0.1
    """

    recipients: tuple[str, ...] = ()
    key: str | None = None
    purpose: str = "chat"


# The most handles Linq takes in one chat's ``to`` (a group chat; linq-api.md).
_MAX_RECIPIENTS = 31

_HANDLE = "an E.164 number (+12025551234) or an email address"


def _normalize(handle: object, name: str = "to") -> str:
    if isinstance(handle, str):
        value = handle.strip()
        if is_e164(value):
            return value
        if _EMAIL.fullmatch(value):
            return value.lower()
    msg = f"{name}={shown(handle)} is neither {_HANDLE}"
    raise ValueError(msg)


@functools.lru_cache(maxsize=4096)
def _single(handle: str, purpose: str) -> PickContext:
    # Most traffic repeats recipients; caching keeps validation off the hot path.
    value = _normalize(handle)
    return PickContext((value,), value, purpose)


def make_context(to: str | Iterable[str] | None, purpose: str = "chat") -> PickContext:
    """Validate and normalize ``to`` for ``purpose``; ``ValueError`` names a bad value.

    ``to`` is one handle, several (a group chat: at most 31, as many as Linq takes in
    one chat), or ``None``. Values in messages are cut to 60 characters.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       More than 31 handles is a ``ValueError``; a bad handle in a list is named by
       its position (``to[2]='nobody'``).
    """
    if purpose not in PURPOSES:
        msg = f"unknown purpose {shown(purpose)}; expected one of {', '.join(PURPOSES)}"
        raise ValueError(msg)
    if to is None:
        return _NO_RECIPIENT[purpose]
    if isinstance(to, str):
        return _single(to, purpose)
    if isinstance(to, (bytes, bytearray)) or not isinstance(to, Iterable):
        msg = f"to={shown(to)} is neither {_HANDLE}, nor a list of them"
        raise ValueError(msg)
    # One past the limit is enough to refuse: an endless iterable must not hang here.
    given = tuple(itertools.islice(to, _MAX_RECIPIENTS + 1))
    if len(given) > _MAX_RECIPIENTS:
        count = f"{len(to)} handles" if isinstance(to, Sized) else "more than 31 handles"
        msg = (
            f"to has {count}; Linq takes at most {_MAX_RECIPIENTS} in one chat, so a pick "
            "is for one direct chat or one group of up to 31"
        )
        raise ValueError(msg)
    handles = tuple(_normalize(h, f"to[{i}]") for i, h in enumerate(given))
    if not handles:
        msg = f"to={shown(to)} is empty; give at least one recipient or None"
        raise ValueError(msg)
    # The sorted set makes the same group the same conversation whatever the order.
    return PickContext(handles, "\x1f".join(sorted(set(handles))), purpose)


_NO_RECIPIENT = {purpose: PickContext((), None, purpose) for purpose in PURPOSES}
