"""``FakeLinqServer``: Linq's phone-number endpoints on 127.0.0.1, with injectable faults."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import attrs

from linq_router._models import Reputation

from ._answers import error_plan, fault_plan, forwarding_number, json_plan
from ._fake_checks import (
    LINE_TYPES,
    STATUSES,
    check_forwarding,
    choice_value,
    reputation_value,
)
from ._fake_data import SHAPES, Line, NumberSpec, Shape, default_pool, to_line
from ._faults import Fault, FaultQueue
from ._http import Plan, StoppableHTTPServer
from ._routes import (
    LIST_ROUTE,
    RecordedRequest,
    api_path,
    normalize_route,
    resolve,
    route_matches,
)

__all__ = ["FakeLinqServer"]


class FakeLinqServer:
    """A fake of Linq's ``/v3/phone_numbers`` API: a real HTTP server on 127.0.0.1.

    It serves ``GET /v3/phone_numbers`` and ``PUT /v3/phone_numbers/{id}`` with the
    documented payloads, checks ``Authorization: Bearer <api_key>`` (401 / code 2004
    otherwise), answers unknown routes with a 404 and bad bodies with a 400, always in
    Linq's error envelope. Paths work with or without the real base URL's
    ``/api/partner`` prefix. Everything can be changed while it runs, from any thread:
    the lines, the response ``shape``, queued faults. Request logging is silent.

    Use it as a context manager (``with`` or ``async with``) or call ``start()`` /
    ``stop()``. It runs in its own threads, so sync and async tests use it alike::

        from linq_router.testing import FakeLinqServer

        with FakeLinqServer(["+12025550101"], api_key="k") as server:
            server.add_number("+12025550102", reputation="AT_RISK", line_type="RCS")
            server.fail_next("3006", times=2)            # two 500s, then normal answers
            server.fail_next("429", route="list", retry_after=0.1)
            ...  # point your client at server.base_url with key "k"
            assert server.count("GET /v3/phone_numbers") == 3

    Faults (``fail_next(kind, times=1, *, route=None, ...)``) are queued and consumed,
    first in first out, by the next matching *authorized* requests to a *known* route
    (a refused key gets its 401 and unknown routes their 404 first). Kinds:

    * ``"3006"`` / ``"500"``: 500 with the code 3006 envelope; ``"503"``, ``"502"``, ...
      likewise; any HTTP error status works (``"403"`` is code 2027, pass
      ``code=2024`` for an opted-out recipient; ``"401"`` is code 2004).
    * ``"429"``: code 1007, ``Retry-After`` header and ``error.retry_after`` (1 s unless
      ``retry_after=`` says otherwise). ``retry_after=`` adds the header to any status.
    * ``"delay"``: wait ``delay`` seconds (default 1), then answer normally; ``stop()``
      cuts the wait short. ``delay=`` also delays any other kind's answer.
    * ``"malformed"``: 200 with a body that is not JSON (or ``body=``).
    * ``"wrong-shape"``: 200 with ``{"numbers": []}``, or ``body=`` (JSON-encoded, or
      sent as is when ``bytes``/``str``): the raw override for parser tests.
    * ``"truncated"``: the normal answer, cut short: ``Content-Length`` promises more
      than is sent before the connection closes.
    * ``"drop"``: the connection closes without any answer.

    ``times=None`` keeps a fault until ``clear_faults()``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        numbers: Iterable[NumberSpec] | None = None,
        *,
        api_key: str = "test-key",
        shape: Shape = "reputation",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api_key = api_key
        self._host = host
        self._requested_port = port
        self._clock = clock
        self._cond = threading.Condition(threading.RLock())
        self._lines: list[Line] = []
        self._shape: str = "reputation"
        self._faults = FaultQueue()
        self._requests: list[RecordedRequest] = []
        self._lifecycle = threading.Lock()
        self._httpd: StoppableHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self.shape = shape
        self.set_numbers(default_pool() if numbers is None else numbers)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeLinqServer:
        """Bind an ephemeral port and serve in a daemon thread; returns ``self``."""
        with self._lifecycle:
            if self._httpd is not None:
                return self
            httpd = StoppableHTTPServer((self._host, self._requested_port), self._dispatch)
            thread = threading.Thread(
                target=httpd.serve_forever,
                # A short poll keeps stop() fast: shutdown() waits out one poll.
                kwargs={"poll_interval": 0.01},
                name=f"FakeLinqServer:{httpd.server_address[1]}",
                daemon=True,
            )
            self._httpd, self._thread = httpd, thread
            self._port = int(httpd.server_address[1])
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, cut open connections (and delays), join the threads.

        Waits at most about ``timeout`` seconds. Safe to call twice or before ``start()``.
        """
        with self._lifecycle:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is None or thread is None:
            return
        deadline = time.monotonic() + timeout
        handlers = httpd.begin_stop()
        httpd.shutdown()
        httpd.server_close()
        thread.join(max(0.0, deadline - time.monotonic()))
        for handler in handlers:
            handler.join(max(0.0, deadline - time.monotonic()))

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._httpd is not None

    def __enter__(self) -> FakeLinqServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeLinqServer:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (still the last one after ``stop()``)."""
        if self._port is None:
            msg = "FakeLinqServer has not been started"
            raise RuntimeError(msg)
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; clients append ``/v3/phone_numbers``."""
        return f"http://{self._host}:{self.port}"

    @property
    def api_key(self) -> str:
        """The bearer key the fake accepts."""
        return self._api_key

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"<FakeLinqServer {where} shape={self._shape!r} lines={len(self._lines)}>"

    # -- the pool --------------------------------------------------------------------

    @property
    def shape(self) -> Shape:
        """The list shape served: ``"reputation"``, ``"health_status"`` or ``"both"``."""
        return self._shape  # type: ignore[return-value]

    @shape.setter
    def shape(self, value: Shape) -> None:
        if value not in SHAPES:
            msg = f"shape must be one of {sorted(SHAPES)}, got {value!r}"
            raise ValueError(msg)
        with self._cond:
            self._shape = value

    def set_shape(self, shape: Shape) -> None:
        """Same as assigning ``.shape``."""
        self.shape = shape

    @property
    def numbers(self) -> list[dict[str, Any]]:
        """The current lines, each as the list endpoint would serve it now."""
        with self._cond:
            return [line.render(self._shape) for line in self._lines]

    def set_numbers(self, numbers: Iterable[NumberSpec]) -> None:
        """Replace every line (E.164 strings, mappings or ``PhoneNumber`` objects).

        Every spec is checked first (see ``NumberSpec``); on an error nothing changes
        and the message names the spec (``numbers[2]: ...``).

        .. versionchanged:: 0.2 the specs' values are checked.
        """
        lines = []
        for index, spec in enumerate(numbers):
            try:
                lines.append(to_line(spec))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"numbers[{index}]: {exc}") from None
        ids = [line.id for line in lines]
        if len(set(ids)) != len(ids):
            msg = f"duplicate line ids in {ids}"
            raise ValueError(msg)
        with self._cond:
            self._lines = lines

    def add_number(
        self,
        phone_number: str,
        *,
        reputation: str | Reputation | None = None,
        line_type: str | None = "iMessage",
        id: str | None = None,  # the API's field name
        status: str | None = None,
        forwarding_number: str | None = None,
        raw_reputation: str | None = None,
        raw_line_type: str | None = None,
        raw_status: str | None = None,
    ) -> str:
        """Append a line and return its id (a uuid5 of the number unless ``id`` is given).

        ``reputation`` is ``"HEALTHY"`` (the default), ``"AT_RISK"`` or ``"CRITICAL"``
        (or the ``Reputation``); ``line_type`` ``"iMessage"`` (the default), ``"RCS"``
        or ``None`` to omit it; ``status`` ``"ACTIVE"``, ``"FLAGGED"`` or ``None`` (the
        default: omitted). Anything else is a ``ValueError`` naming the accepted
        values, as is a number that is not E.164. To serve a value Linq may add later,
        pass it as ``raw_reputation=``, ``raw_line_type=`` or ``raw_status=`` instead
        (``raw_reputation="SUSPENDED"``): the client then reads ``Reputation.UNKNOWN``.

        .. versionchanged:: 0.2 values are checked; ``raw_reputation``, ``raw_line_type``
           and ``raw_status``.
        """
        spec: dict[str, Any] = {
            "id": id,
            "phone_number": phone_number,
            "status": status,
            "forwarding_number": forwarding_number,
            "raw_reputation": raw_reputation,
            "raw_line_type": raw_line_type,
            "raw_status": raw_status,
        }
        if reputation is not None:
            spec["reputation"] = reputation
        # The default line type gives way to a raw one; an explicit other type conflicts.
        if raw_line_type is None or line_type != "iMessage":
            spec["line_type"] = line_type
        line = to_line(spec)
        with self._cond:
            if any(existing.id == line.id for existing in self._lines):
                msg = f"a line with id {line.id!r} already exists"
                raise ValueError(msg)
            self._lines.append(line)
        return line.id

    def remove_number(self, id_or_number: str) -> None:
        """Remove the line with this id (or, failing that, this E.164 number)."""
        with self._cond:
            self._lines.remove(self._find(id_or_number))

    def set_reputation(
        self,
        id_or_number: str,
        reputation: str | Reputation | None = None,
        *,
        raw_reputation: str | None = None,
    ) -> None:
        """Set a line's reputation status: ``"HEALTHY"``, ``"AT_RISK"`` or ``"CRITICAL"``.

        Any other value is a ``ValueError`` naming those (``"critical"`` would reach the
        client as ``UNKNOWN``, which policies drop just as they drop CRITICAL, so a
        test would pass for the wrong reason). ``raw_reputation="SUSPENDED"`` serves a
        status Linq may add later, as it is; give one of the two.

        .. versionchanged:: 0.2 the status is checked; ``raw_reputation``.
        """
        value = reputation_value(reputation, raw_reputation)
        with self._cond:
            line = self._find(id_or_number)
            line.reputation = value
            line.doc_url = None

    def set_status(
        self, id_or_number: str, status: str | None = None, *, raw_status: str | None = None
    ) -> None:
        """Set a line's ``status``: ``"ACTIVE"``, ``"FLAGGED"``, or ``None`` to omit it.

        ``raw_status=`` serves any other string as it is; anything else is refused.

        .. versionchanged:: 0.2 the status is checked; ``raw_status``.
        """
        value = choice_value(status, raw_status, "status", STATUSES)
        with self._cond:
            self._find(id_or_number).status = value

    def set_line_type(
        self, id_or_number: str, line_type: str | None = None, *, raw_line_type: str | None = None
    ) -> None:
        """Set a line's ``line_type``: ``"iMessage"``, ``"RCS"``, or ``None`` to omit it.

        ``raw_line_type=`` serves any other string as it is; anything else is refused.

        .. versionchanged:: 0.2 the line type is checked; ``raw_line_type``.
        """
        value = choice_value(line_type, raw_line_type, "line_type", LINE_TYPES)
        with self._cond:
            self._find(id_or_number).line_type = value

    def set_forwarding_number(self, id_or_number: str, forwarding_number: str | None) -> None:
        """Set a line's E.164 forwarding number (``None`` or ``""`` clears it).

        .. versionchanged:: 0.2 a number that is not E.164 is a ``ValueError``.
        """
        value = check_forwarding(forwarding_number)
        with self._cond:
            self._find(id_or_number).forwarding_number = value

    def _find(self, id_or_number: str) -> Line:
        for line in self._lines:
            if line.id == id_or_number:
                return line
        for line in self._lines:
            if line.phone_number == id_or_number:
                return line
        msg = f"no line with id or number {id_or_number!r}"
        raise KeyError(msg)

    # -- faults ----------------------------------------------------------------------

    def fail_next(
        self,
        kind: str,
        times: int | None = 1,
        *,
        route: str | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
        body: Any = None,
        code: int | None = None,
        message: str | None = None,
    ) -> Fault:
        """Queue a fault for the next ``times`` matching requests (see the class doc).

        ``route`` is ``"GET /v3/phone_numbers"`` (or ``"list"``),
        ``"PUT /v3/phone_numbers/{id}"`` (or ``"update"``), a concrete path, or ``None``
        for any known route.
        """
        fault = Fault(kind, route, retry_after, delay, body, code, message)
        with self._cond:
            return self._faults.push(fault, times)

    @property
    def pending_faults(self) -> list[tuple[Fault, int | None]]:
        """The queued faults with how many requests each still applies to."""
        with self._cond:
            return self._faults.pending()

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._cond:
            self._faults.clear()

    # -- counting --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since start (or ``reset_counts()``), oldest first."""
        with self._cond:
            return list(self._requests)

    def count(self, route: str | None = None) -> int:
        """How many requests hit ``route`` (every request when ``None``).

        ``route`` is ``"GET /v3/phone_numbers"``, ``"PUT /v3/phone_numbers/{id}"``, the
        aliases ``"list"`` / ``"update"``, a concrete ``"PUT /v3/phone_numbers/<id>"``,
        or a bare path (any method). Faulted and refused requests count too.
        """
        with self._cond:
            if route is None:
                return len(self._requests)
            return sum(1 for r in self._requests if self._matches(route, r))

    def reset_counts(self) -> None:
        """Forget the recorded requests."""
        with self._cond:
            self._requests.clear()

    def wait_for_requests(self, n: int, route: str | None = None, *, timeout: float = 5.0) -> bool:
        """Block until ``count(route) >= n``; False if ``timeout`` seconds pass first."""
        with self._cond:
            return self._cond.wait_for(lambda: self.count(route) >= n, timeout)

    @staticmethod
    def _matches(route: str, request: RecordedRequest) -> bool:
        return route_matches(normalize_route(route), request.route, api_path(request.path))

    # -- answering (no I/O: the HTTP layer carries out the plan) ---------------------

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self._api_key.encode()
        )

    def _dispatch(self, method: str, raw_path: str, authorization: str | None, body: bytes) -> Plan:
        path = raw_path.partition("?")[0]
        relative = api_path(path)
        route, line_id = resolve(method, relative)
        authorized = self._authorized(authorization)
        with self._cond:
            fault = None
            if route is not None and authorized:
                fault = self._faults.take(route, relative)
            self._requests.append(
                RecordedRequest(
                    method=method,
                    path=path,
                    route=route or f"{method} {relative}",
                    time=self._clock(),
                    authorized=authorized,
                    fault=fault.kind if fault is not None else None,
                    body=body,
                )
            )
            self._cond.notify_all()
            if route is None:
                return error_plan(404, message=f"No route for {method} {path}")
            if not authorized:
                return error_plan(401)
            if fault is not None and fault.kind not in {"delay", "truncated"}:
                return fault_plan(fault)
            plan = self._answer(route, line_id, body)
        if fault is not None:
            plan = attrs.evolve(plan, delay=fault.delay or 0.0, truncate=fault.kind == "truncated")
        return plan

    def _answer(self, route: str, line_id: str | None, body: bytes) -> Plan:
        if route == LIST_ROUTE:
            return json_plan(200, {"phone_numbers": self.numbers})
        line = next((x for x in self._lines if x.id == line_id), None)
        if line is None:
            return error_plan(404, message=f"Phone number {line_id} not found")
        value = forwarding_number(body)
        if isinstance(value, Plan):
            return value
        line.forwarding_number = value
        return json_plan(200, line.update_response())
