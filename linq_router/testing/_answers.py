"""Answers the fake API builds, as plans the HTTP layer carries out. No I/O."""

from __future__ import annotations

import json

import attrs

from linq_router._parsing import is_e164

from ._faults import Fault, error_envelope
from ._http import Plan

__all__ = ["error_plan", "fault_plan", "forwarding_number", "json_plan"]


def json_plan(status: int, payload: object) -> Plan:
    """A JSON answer."""
    return Plan(status=status, body=json.dumps(payload).encode())


def error_plan(status: int, code: int | None = None, message: str | None = None) -> Plan:
    """An answer in Linq's error envelope."""
    return json_plan(status, error_envelope(status, code, message))


def fault_plan(fault: Fault) -> Plan:
    """The answer to a request that consumed an error, body or drop fault."""
    delay = fault.delay or 0.0
    if fault.kind == "drop":
        return Plan(drop=True, delay=delay)
    if fault.kind in {"malformed", "wrong-shape"}:
        plan = Plan(status=200, body=fault.replacement_body())
    else:
        plan = Plan(status=fault.status or 500, body=fault.error_body())
    return attrs.evolve(plan, delay=delay, headers=tuple(fault.headers()))


def forwarding_number(body: bytes) -> str | Plan | None:
    """The forwarding number a PUT body asks for (None clears), or the error to answer."""
    try:
        payload = json.loads(body)
    except ValueError:
        return error_plan(400, 1003)
    if not isinstance(payload, dict):
        return error_plan(400, 1003)
    if "forwarding_number" not in payload:
        return error_plan(400, 1001, "Missing required field: forwarding_number")
    value = payload["forwarding_number"]
    if value is not None and not isinstance(value, str):
        return error_plan(422, 1005, "forwarding_number must be a string or null")
    if value and not is_e164(value):
        return error_plan(400, 1002)
    return value or None
