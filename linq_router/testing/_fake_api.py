"""``FakeLinqServer``: Linq's phone-number and send endpoints on 127.0.0.1, with faults."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

import attrs

from linq_router._models import Reputation

from ._answers import error_plan, fault_plan, forwarding_number, json_plan
from ._fake_checks import LINE_TYPES, STATUSES, check_forwarding, choice_value, reputation_value
from ._fake_data import SHAPES, Line, NumberSpec, Shape, default_pool, find_line, to_line, to_lines
from ._fake_sends import SendBook, Sending
from ._fake_webhooks import Webhooks
from ._faults import FaultControls, FaultQueue
from ._http import Plan, StoppableHTTPServer
from ._routes import LIST_ROUTE, SEND_ROUTES, RecordedRequest, RequestLog, api_path, resolve
from ._webhook_events import WebhookScheme

__all__ = ["FakeLinqServer"]


# The public methods live in four bases, one concern each (faults, the request log,
# sends, webhooks); this class holds the lifecycle, the lines and the dispatch.
class FakeLinqServer(FaultControls, RequestLog, Sending, Webhooks):
    """A fake of Linq's partner API for lines and sends: a real HTTP server on 127.0.0.1.

    It serves, with the documented payloads (the official SDK parses them strictly):

    * ``GET /v3/phone_numbers`` and ``PUT /v3/phone_numbers/{id}``: the lines, which
      change at run time (``add_number``, ``set_reputation``, ``shape``, ...);
    * ``POST /v3/chats`` (``from``, ``to``: 1 to 31 E.164 numbers or emails,
      ``message``): 201 with a new chat, or 200 with the existing one when the line and
      the exact ``to`` set match one, as Linq reuses chats;
    * ``POST /v3/chats/{id}/messages`` and ``POST /v3/chats/{id}/voicememo``: 202; they
      go out on the chat's line. An unknown chat is a 404 (code 2001).

    Every send is recorded, with its line, in ``sends`` (``SentMessage``), accepted or
    not; ``send_count()`` and ``rejected_count()`` count them. Sends are refused as
    Linq refuses them, before anything is created: a ``from`` that is none of the
    lines (403 / 2005); a line set ``"ineligible"`` (403 / 2027) or ``"failing"``
    (500 / 3006) by ``set_line_behaviour``; a recipient ``opt_out()`` named (403 /
    2024, unless the request sets ``override_optout``); more than 30 sends a
    sender-recipient pair within a moving 60 s of the server's ``clock`` (429 / 1007,
    with ``Retry-After`` and ``error.retry_after``: whole seconds until the pair has
    room). Each accepted create, message or voice memo counts once for each recipient.

    It checks ``Authorization: Bearer <api_key>`` (401 / code 2004 otherwise), answers
    unknown routes with a 404 and bad bodies with a 400 (codes 1001 to 1005), always in
    Linq's error envelope. Paths work with or without the real base URL's
    ``/api/partner`` prefix. Everything can be changed while it runs, from any thread.
    Request logging is silent.

    Use it as a context manager (``with`` or ``async with``) or call ``start()`` /
    ``stop()``. It runs in its own threads, so sync and async tests use it alike::

        from linq_router.testing import FakeLinqServer

        with FakeLinqServer(["+12025550101"], api_key="k") as server:
            server.add_number("+12025550102", reputation="AT_RISK", line_type="RCS")
            server.fail_next("3006", times=2)            # two 500s, then normal answers
            server.fail_next("429", route="list", retry_after=0.1)
            server.set_line_behaviour("+12025550102", "ineligible")
            ...  # point your client at server.base_url with key "k"
            assert server.count("GET /v3/phone_numbers") == 3
            assert server.send_count("+12025550101") == 1

    Faults (``fail_next(kind, times=1, *, route=None, ...)``) are queued and consumed,
    first in first out, by the next matching *authorized* requests to a *known* route
    (a refused key gets its 401 and unknown routes their 404 first). ``Fault`` lists
    the kinds: error statuses (``"3006"``, ``"429"``, any other 4xx or 5xx),
    ``"delay"``, ``"malformed"``, ``"wrong-shape"``, ``"truncated"`` and ``"drop"``.
    ``times=None`` keeps a fault until ``clear_faults()``. A fault that replaces a
    send's answer creates nothing and is no accepted send.

    With ``webhook_url``, it POSTs events there as Linq does, from a thread of its own:
    line changes, ``message.failed`` for ``"ineligible-async"`` lines,
    ``receive_message()`` and ``deliver_event()``, signed with ``webhook_secret`` in
    ``webhook_scheme`` at ``wall_clock`` time; a 5xx, 429 or network error is retried,
    up to 10 attempts, ``webhook_delays`` apart (about 25 minutes by default).

    .. versionadded:: 0.1
    .. versionchanged:: 0.3 the send routes, ``sends``, line behaviours, opt-outs and
       the pair limit.
    .. versionchanged:: 0.4 webhooks (``webhook_url`` and the arguments after it).
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
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_delays: Sequence[float] | None = None,
        webhook_scheme: WebhookScheme = "standard",
        wall_clock: Callable[[], float] = time.time,
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
        self._sends = SendBook(self._failed_later)
        self._init_webhooks(webhook_url, webhook_secret, webhook_delays, webhook_scheme, wall_clock)
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
            if self._webhooks is not None:
                self._webhooks.start()
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
        if self._webhooks is not None:
            self._webhooks.stop(max(0.0, deadline - time.monotonic()))

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
        lines = to_lines(numbers)
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
            self._ownership_changed("phone_number.assigned", line)
        return line.id

    def remove_number(self, id_or_number: str) -> None:
        """Remove the line with this id (or, failing that, this E.164 number)."""
        with self._cond:
            line = self._find(id_or_number)
            self._lines.remove(line)
            self._ownership_changed("phone_number.released", line)

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
            before = line.reputation, line.status
            line.reputation = value
            line.doc_url = None
            self._status_changed(line, *before)

    def set_status(
        self, id_or_number: str, status: str | None = None, *, raw_status: str | None = None
    ) -> None:
        """Set a line's ``status``: ``"ACTIVE"``, ``"FLAGGED"``, or ``None`` to omit it.

        ``raw_status=`` serves any other string as it is; anything else is refused.

        .. versionchanged:: 0.2 the status is checked; ``raw_status``.
        """
        value = choice_value(status, raw_status, "status", STATUSES)
        with self._cond:
            line = self._find(id_or_number)
            before = line.reputation, line.status
            line.status = value
            self._status_changed(line, *before)

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
            line = self._find(id_or_number)
            before, line.forwarding_number = line.forwarding_number, value
            self._forwarding_changed(line, before)

    def _find(self, id_or_number: str) -> Line:
        return find_line(self._lines, id_or_number)

    # -- counting (requests and sends: RequestLog and Sending) ----------------------

    def reset_counts(self) -> None:
        """Forget the recorded requests and sends (chats and the pair limit's windows stay).

        .. versionchanged:: 0.3 sends too.
        """
        with self._cond:
            self._requests.clear()
            self._sends.sends.clear()

    # -- answering (no I/O: the HTTP layer carries out the plan) ---------------------

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self._api_key.encode()
        )

    def _dispatch(self, method: str, raw_path: str, authorization: str | None, body: bytes) -> Plan:
        path = raw_path.partition("?")[0]
        relative = api_path(path)
        route, resource_id = resolve(method, relative)
        authorized = self._authorized(authorization)
        with self._cond:
            now = self._clock()  # once: a request and its send share one reading
            fault = None
            if route is not None and authorized:
                fault = self._faults.take(route, relative)
            self._requests.append(
                RecordedRequest(
                    method=method,
                    path=path,
                    route=route or f"{method} {relative}",
                    time=now,
                    authorized=authorized,
                    fault=fault.kind if fault is not None else None,
                    body=body,
                )
            )
            self._cond.notify_all()
            if route is None:
                return error_plan(404, message=f"No route for {method} {path}")
            sending = route in SEND_ROUTES
            if not authorized:
                if sending:
                    self._sends.refused(route, resource_id, body, now, 401, 2004)
                return error_plan(401)
            if fault is not None and fault.kind not in {"delay", "truncated"}:
                if sending and fault.status is not None and fault.error_code is not None:
                    self._sends.refused(
                        route, resource_id, body, now, fault.status, fault.error_code
                    )
                return fault_plan(fault)
            if sending:
                plan = self._sends.answer(route, resource_id, body, self._lines, now)
                after = self._sends.take_failures()
                if after is not None:
                    plan = attrs.evolve(plan, after=after)
            else:
                plan = self._answer(route, resource_id, body)
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
        before, line.forwarding_number = line.forwarding_number, value
        self._forwarding_changed(line, before)
        return json_plan(200, line.update_response())
