"""Policy specs (``"skip-critical | reputation-weighted"``) and the registry of names.

Grammar, one line::

    spec  := stage ("|" stage)*
    stage := name ["(" [arg ("," arg)*] ")"]
    arg   := [key "="] value          (values are plain text; quote them to keep
                                       "," "|" "(" ")" inside)

Names are case-insensitive and ``_`` equals ``-``. The names come from the built-ins
and from the ``linq_router.policies`` entry-point group: a plugin's entry point is a
factory called with the stage's arguments as strings (positional and keyword) and
returning a filter or a selector. A name registered twice is an error, never a
silent override.
"""

from __future__ import annotations

import importlib.metadata
import re
import threading
from collections.abc import Callable, Mapping

from linq_router._errors import PolicySpecError

from ._base import BaseFilter, BaseSelector, Filter, Policy, Selector, _kind
from ._geomatch import geomatch
from ._limits import check_size
from ._round_robin import round_robin
from ._skip_critical import skip_critical
from ._static import exclude, line_type, only, prefer_imessage
from ._sticky import sticky
from ._weighted import reputation_weighted

__all__ = [
    "ENTRY_POINT_GROUP",
    "PolicySpecError",
    "StageFactory",
    "as_policy",
    "available_policies",
    "parse_policy",
    "register_policy",
]

ENTRY_POINT_GROUP = "linq_router.policies"
"""Entry-point group third-party policies register under."""

StageFactory = Callable[..., "Filter | Selector | BaseFilter | BaseSelector"]
"""Builds a stage from a spec's arguments (strings): ``factory(*args, **kwargs)``."""


def _float(name: str, key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        msg = f"{key}={value!r} is not a number"
        raise ValueError(msg) from None


def _int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        msg = f"{key}={value!r} is not an integer"
        raise ValueError(msg) from None


def _bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    msg = f"{key}={value!r} is not true or false"
    raise ValueError(msg)


def _no_args(factory: Callable[[], BaseFilter | BaseSelector], name: str) -> StageFactory:
    def build(*args: str, **kwargs: str) -> BaseFilter | BaseSelector:
        if args or kwargs:
            msg = "takes no arguments"
            raise ValueError(msg)
        return factory()

    build.__doc__ = f"``{name}`` (no arguments)."
    return build


def _skip_critical(*args: str, **kwargs: str) -> BaseFilter:
    values = [*args, *(v for k, v in kwargs.items() if k == "on_empty")]
    extra = set(kwargs) - {"on_empty"}
    if extra or len(values) > 1:
        msg = f"unexpected arguments {sorted(extra) or list(args)}"
        raise ValueError(msg)
    return skip_critical(values[0] if values else "raise")


def _weights(kwargs: Mapping[str, str], allowed: set[str]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for key, value in kwargs.items():
        if key in allowed:
            continue
        weights[key.upper()] = _float("weight", key, value)
    return weights


def _reputation_weighted(*args: str, **kwargs: str) -> BaseSelector:
    if args:
        msg = f"weights are keyword arguments like HEALTHY=1, got {args[0]!r}"
        raise ValueError(msg)
    return reputation_weighted(_weights(kwargs, set()))


def _sticky(*args: str, **kwargs: str) -> BaseSelector:
    if args:
        msg = f"expected keyword arguments (max_size=..., HEALTHY=...), got {args[0]!r}"
        raise ValueError(msg)
    max_size = _int("max_size", kwargs["max_size"]) if "max_size" in kwargs else 100_000
    return sticky(max_size=max_size, weights=_weights(kwargs, {"max_size"}))


def _line_type(*args: str, **kwargs: str) -> BaseFilter:
    values = [*args, *(v for k, v in kwargs.items() if k == "kind")]
    extra = set(kwargs) - {"kind", "include_unknown"}
    if extra:
        msg = f"unexpected arguments {sorted(extra)}"
        raise ValueError(msg)
    if len(values) != 1:
        msg = "expects one line type: iMessage or RCS"
        raise ValueError(msg)
    unknown = (
        _bool("include_unknown", kwargs["include_unknown"])
        if "include_unknown" in kwargs
        else False
    )
    return line_type(values[0], include_unknown=unknown)


def _listed(factory: Callable[..., BaseFilter]) -> StageFactory:
    def build(*args: str, **kwargs: str) -> BaseFilter:
        if kwargs:
            msg = f"takes phone numbers or line ids, not {sorted(kwargs)}"
            raise ValueError(msg)
        return factory(*args)

    return build


_BUILTINS: dict[str, tuple[StageFactory, str]] = {
    "exclude": (_listed(exclude), "exclude(+12025551234, <line id>, ...)"),
    "geomatch": (_no_args(geomatch, "geomatch"), "geomatch"),
    "line-type": (_line_type, "line-type(iMessage | RCS[, include_unknown=true])"),
    "only": (_listed(only), "only(+12025551234, <line id>, ...)"),
    "prefer-imessage": (_no_args(prefer_imessage, "prefer-imessage"), "prefer-imessage"),
    "reputation-weighted": (
        _reputation_weighted,
        "reputation-weighted(HEALTHY=1, AT_RISK=0.25, CRITICAL=0, UNKNOWN=0)",
    ),
    "round-robin": (_no_args(round_robin, "round-robin"), "round-robin"),
    "skip-critical": (_skip_critical, "skip-critical(on_empty=raise | ignore-health)"),
    "sticky": (_sticky, "sticky(max_size=100000, HEALTHY=1, AT_RISK=0.25, ...)"),
}

_lock = threading.Lock()
_extra: dict[str, tuple[StageFactory, str]] = {}
_plugins: dict[str, tuple[StageFactory, str]] | None = None


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _load_plugins() -> dict[str, tuple[StageFactory, str]]:
    global _plugins  # noqa: PLW0603 - loaded once, lazily, under the lock
    with _lock:
        if _plugins is not None:
            return _plugins
        found: dict[str, tuple[StageFactory, str]] = {}
        sources: dict[str, str] = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            name = _normalize(ep.name)
            if sources.get(name) == ep.value:
                continue  # the same distribution seen twice on sys.path
            if name in _BUILTINS or name in found:
                where = "a built-in" if name in _BUILTINS else sources[name]
                msg = (
                    f"policy name {name!r} is registered twice: entry point {ep.value!r} "
                    f"clashes with {where}; uninstall one of them"
                )
                raise PolicySpecError(msg)
            factory = ep.load()
            if not callable(factory):
                msg = f"entry point {ep.name} = {ep.value!r} is not callable"
                raise PolicySpecError(msg)
            found[name] = (factory, f"{name}(...) from {ep.value}")
            sources[name] = ep.value
        _plugins = found
        return found


def _names() -> dict[str, tuple[StageFactory, str]]:
    plugins = _load_plugins()
    return {**_BUILTINS, **plugins, **_extra}


def available_policies() -> list[str]:
    """Every name a spec may use, sorted: built-ins, plugins and registered ones.

    .. versionadded:: 0.1
    """
    return sorted(_names())


def register_policy(name: str, factory: StageFactory, *, usage: str | None = None) -> None:
    """Make ``factory`` usable by ``name`` in specs (as an entry point would).

    Raises ``PolicySpecError`` if the name is taken.

    .. versionadded:: 0.1
    """
    key = _normalize(name)
    if not re.fullmatch(r"[a-z][a-z0-9.-]*", key):
        msg = f"policy name {name!r} must be letters, digits, '-' or '.', starting with a letter"
        raise PolicySpecError(msg)
    plugins = _load_plugins()
    with _lock:
        if key in _BUILTINS or key in plugins or key in _extra:
            msg = f"policy name {key!r} is already registered"
            raise PolicySpecError(msg)
        _extra[key] = (factory, usage or f"{key}(...)")


def _unregister(name: str) -> None:
    """Remove a name ``register_policy`` added (for tests)."""
    with _lock:
        _extra.pop(_normalize(name), None)


def _split_top(text: str, sep: str, spec: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    start = 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                msg = f"unbalanced ')' at position {i} in spec {spec!r}"
                raise PolicySpecError(msg)
        elif char == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote or depth:
        what = "quote" if quote else "'('"
        msg = f"unclosed {what} in spec {spec!r}"
        raise PolicySpecError(msg)
    parts.append(text[start:])
    return parts


_STAGE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_.-]*)\s*(?:\((.*)\))?\s*", re.DOTALL)
_KEY = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)", re.DOTALL)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _parse_args(text: str, spec: str) -> tuple[list[str], dict[str, str]]:
    args: list[str] = []
    kwargs: dict[str, str] = {}
    if not text.strip():
        return args, kwargs
    for raw in _split_top(text, ",", spec):
        if not raw.strip():
            msg = f"empty argument in {text!r} in spec {spec!r}"
            raise PolicySpecError(msg)
        match = _KEY.fullmatch(raw) if raw.strip()[:1] not in "\"'" else None
        if match:
            key, value = match.group(1), _unquote(match.group(2))
            if key in kwargs:
                msg = f"argument {key!r} given twice in spec {spec!r}"
                raise PolicySpecError(msg)
            kwargs[key] = value
        else:
            if kwargs:
                msg = (
                    f"positional argument {raw.strip()!r} after keyword arguments in spec {spec!r}"
                )
                raise PolicySpecError(msg)
            args.append(_unquote(raw))
    return args, kwargs


def _build_stage(text: str, spec: str) -> Filter | Selector:
    match = _STAGE.fullmatch(text)
    if not text.strip():
        msg = f"empty stage in spec {spec!r} (a '|' with nothing on one side)"
        raise PolicySpecError(msg)
    if match is None:
        msg = f"cannot read stage {text.strip()!r} in spec {spec!r}; expected name or name(args)"
        raise PolicySpecError(msg)
    names = _names()
    name = _normalize(match.group(1))
    entry = names.get(name)
    if entry is None:
        known = ", ".join(sorted(names))
        msg = f"unknown policy {match.group(1)!r} in spec {spec!r}; known names: {known}"
        raise PolicySpecError(msg)
    factory, usage = entry
    args, kwargs = _parse_args(match.group(2) or "", spec)
    try:
        stage = factory(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        msg = f"bad argument for {name!r} in spec {spec!r}: {exc}; usage: {usage}"
        raise PolicySpecError(msg) from exc
    if _kind(stage) is None:
        msg = f"{name!r} built {stage!r}, which is neither a filter nor a selector"
        raise PolicySpecError(msg)
    return stage  # type: ignore[return-value]


def parse_policy(spec: str) -> Policy:
    """Build a ``Policy`` from its one-line text form; ``PolicySpecError`` if it is wrong.

    ``parse_policy("skip-critical | reputation-weighted(AT_RISK=0.5)")``. Every stage but
    the last must be a filter; the last must be a selector.

    .. versionadded:: 0.1
    """
    try:
        policy = _parse_policy(spec)
    except PolicySpecError as exc:
        # Whatever was wrong, the reader's next question is "what may I write?".
        if "known names:" in str(exc):
            raise
        msg = f"{exc} (known names: {', '.join(available_policies())})"
        raise PolicySpecError(msg) from exc
    check_size(policy)
    return policy


def _parse_policy(spec: str) -> Policy:
    if not isinstance(spec, str):
        msg = f"a policy spec is a string, got {type(spec).__name__}"
        raise PolicySpecError(msg)
    if not spec.strip():
        msg = f"empty policy spec; known names: {', '.join(available_policies())}"
        raise PolicySpecError(msg)
    stages = [_build_stage(part, spec) for part in _split_top(spec, "|", spec)]
    *filters, last = stages
    for stage in filters:
        if _kind(stage) != "filter":
            name = getattr(stage, "name", stage)
            msg = f"selector {name!r} must be the last stage of spec {spec!r}"
            raise PolicySpecError(msg)
    if _kind(last) != "selector":
        selectors = [n for n in available_policies() if n in _SELECTOR_NAMES] or ["round-robin"]
        msg = (
            f"spec {spec!r} has no selector; end it with one of: "
            f"{', '.join(selectors)} (known names: {', '.join(available_policies())})"
        )
        raise PolicySpecError(msg)
    return Policy(tuple(filters), last)  # type: ignore[arg-type]


_SELECTOR_NAMES = frozenset({"reputation-weighted", "round-robin", "sticky"})


def as_policy(value: object) -> Policy:
    """A ``Policy`` from a policy, a spec string, or a bare selector.

    Raises ``PolicySpecError`` for a spec that is wrong, and for a pipeline that has
    no selector or is not a policy at all.

    .. versionadded:: 0.1
    """
    if isinstance(value, str):
        return parse_policy(value)
    if isinstance(value, Policy):
        if value.selector is None:
            msg = f"policy {value.name!r} has no selector; end it with one (e.g. | round_robin())"
            raise PolicySpecError(msg)
        check_size(value)
        return value
    kind = _kind(value)
    if kind == "selector":
        return Policy((), value)  # type: ignore[arg-type]
    if kind == "filter":
        msg = f"{value!r} is a filter; a policy needs a selector at the end (e.g. | round_robin())"
        raise PolicySpecError(msg)
    msg = f"expected a Policy, a selector or a spec string, got {value!r}"
    raise PolicySpecError(msg)
