"""Serving an app for real in a test: uvicorn for ASGI, wsgiref for WSGI, on 127.0.0.1.

Each server runs in a thread of its own on a free port; ``stop()`` (or the context
manager's exit) ends it within a bounded wait.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import wsgiref.simple_server
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any

import uvicorn


def free_socket() -> socket.socket:
    """A socket bound to a free port of 127.0.0.1."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Uvicorn:
    """uvicorn serving an ASGI app on a socket of ours, in a thread."""

    def __init__(self, app: Any, path: str = "/linq/webhooks") -> None:
        self._sock = free_socket()
        self._path = path
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", access_log=False, interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        """Where it answers."""
        host, port = self._sock.getsockname()
        return f"http://{host}:{port}{self._path}"

    def start(self) -> None:
        """Start serving; waits (at most 5 s) until it answers."""
        self._thread.start()
        deadline = threading.Event()
        for _ in range(500):
            if self._server.started:
                return
            deadline.wait(0.01)
        msg = "uvicorn did not start within 5 s"
        raise RuntimeError(msg)

    def stop(self) -> None:
        """Stop serving and join the thread (10 s at most)."""
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
        assert not self._thread.is_alive()


class ThreadingWSGIServer(ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    """wsgiref's server, a thread per request (so a held request holds no other)."""

    daemon_threads = True


class Quiet(wsgiref.simple_server.WSGIRequestHandler):
    """wsgiref's handler without its access log on stderr."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def wsgi_served(app: Any, path: str = "/hooks") -> Iterator[tuple[str, threading.Thread]]:
    """``app`` under wsgiref: its URL, and the thread to start (stopped on exit)."""
    httpd = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=Quiet
    )
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    try:
        yield f"http://127.0.0.1:{httpd.server_port}{path}", thread
    finally:
        if thread.is_alive():
            httpd.shutdown()
            thread.join(10)
        httpd.server_close()
        assert not thread.is_alive()
