"""The fake API's HTTP layer: a threading server that can stop with requests in flight."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import attrs

from ._faults import error_envelope

if TYPE_CHECKING:
    from socketserver import _RequestType

__all__ = ["Dispatch", "Plan", "StoppableHTTPServer"]


@attrs.frozen
class Plan:
    """What to send back: decided by the fake's logic, carried out by the handler."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    drop: bool = False  # close the connection without an answer
    truncate: bool = False  # send half the body under the full Content-Length
    # Called once the answer is written (a webhook about the send must not overtake it).
    after: Callable[[], None] | None = None


Dispatch = Callable[[str, str, "str | None", bytes], Plan]
"""(method, raw path, Authorization header, body) -> Plan."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real clients pool connections
    # Headers and body go out in separate writes; without this, Nagle plus delayed
    # ACKs add ~40 ms to every keep-alive answer.
    disable_nagle_algorithm = True
    server: StoppableHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the stdlib logs every request to stderr."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests get Linq's JSON envelope too, not the stdlib's HTML page."""
        self.close_connection = True
        body = json.dumps(error_envelope(code)).encode()
        self._send(code, body, ())
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # Not worth decoding for a test double; answer, then drop the connection.
            self.close_connection = True
            return b""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        body = self._read_body()
        plan = self.server.dispatch(
            self.command, self.path, self.headers.get("Authorization"), body
        )
        if plan.delay > 0 and self.server.stopping.wait(plan.delay):
            self.close_connection = True  # stopping: give up on this answer
            return
        if plan.drop:
            self.close_connection = True
            return
        if plan.truncate:
            self.close_connection = True
        self._send(plan.status, plan.body, plan.headers)
        self.wfile.write(plan.body[: len(plan.body) // 2] if plan.truncate else plan.body)
        if plan.after is not None:
            self.wfile.flush()
            plan.after()

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve


class StoppableHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that tracks its connections so stop can cut them."""

    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 drops SYNs when a test opens many connections
    # at once, and the client's retransmit adds a full second.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], dispatch: Dispatch) -> None:
        self.dispatch = dispatch
        self.stopping = threading.Event()
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        super().__init__(address, _Handler)

    def process_request(self, request: _RequestType, client_address: Any) -> None:
        """Handle the connection in a thread of its own, tracked until it ends."""
        thread = threading.Thread(target=self._process, args=(request, client_address), daemon=True)
        with self._conn_lock:
            if self.stopping.is_set():
                self.shutdown_request(request)
                return
            if isinstance(request, socket.socket):
                self._connections.add(request)
            self._handlers.add(thread)
        thread.start()

    def _process(self, request: _RequestType, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # same contract as socketserver's own loop
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._conn_lock:
                if isinstance(request, socket.socket):
                    self._connections.discard(request)
                self._handlers.discard(threading.current_thread())

    def handle_error(self, request: _RequestType, client_address: Any) -> None:
        """Clients hanging up and ``stop()`` cutting connections are not worth a traceback."""
        if isinstance(sys.exc_info()[1], OSError) or self.stopping.is_set():
            return
        super().handle_error(request, client_address)

    def begin_stop(self) -> list[threading.Thread]:
        """Wake delayed answers, cut open connections; returns the handler threads to join."""
        self.stopping.set()
        with self._conn_lock:
            connections = list(self._connections)
            handlers = list(self._handlers)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                conn.shutdown(socket.SHUT_RDWR)
        return handlers
