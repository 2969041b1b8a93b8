"""``RedisServer``: a throwaway ``redis-server`` on 127.0.0.1, for tests of shared state."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["RedisServer"]

_MISSING = (
    "redis-server is not on PATH; the shared-state tests need it: run "
    "`bash scripts/setup.sh --redis` in a linq_router checkout, or "
    "`sudo apt-get install -y redis-server` (macOS: `brew install redis`)"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _served_by(port: int, pid: int, timeout: float) -> bool:
    """True if the server on ``port`` answers, and is process ``pid`` (not a stranger)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"INFO server\r\n")
            reply = b""
            while b"process_id:" not in reply or not reply.split(b"process_id:")[1].count(b"\r\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    return False
                reply += chunk
    except OSError:
        return False
    found = reply.split(b"process_id:")[1].split(b"\r\n")[0]
    return found.strip() == str(pid).encode()


class _PortTaken(RuntimeError):
    """Someone else listens on the port chosen."""


class RedisServer:
    """Debian's ``redis-server`` on a free port of 127.0.0.1, with no persistence.

    A context manager: ``with RedisServer() as server:`` starts it (``--save ''
    --appendonly no``, its own temporary directory), waits up to ``startup_timeout``
    seconds for it to answer (``INFO``, naming its own pid: not a stranger on the
    port), and stops it on exit.
    ``url`` and ``port`` say where it listens; ``stop()`` ends it gracefully,
    ``kill()`` with ``SIGKILL`` (an outage, for tests of ``ResilientState``), and
    ``start()`` brings it back, empty, on the same port. ``args`` are more
    ``redis-server`` options, e.g. ``["--cluster-enabled", "yes"]``; ``config`` is
    the text of its configuration file (``"sentinel monitor ..."`` with
    ``args=["--sentinel"]`` makes a Sentinel).

    Raises ``FileNotFoundError`` saying how to install it when ``redis-server`` is not
    on PATH, and ``RuntimeError`` (with the end of its log) when it does not come up.

    >>> with RedisServer() as server:  # doctest: +SKIP
    ...     state = from_uri(server.url + "/0?fallback=off")

    .. versionadded:: 0.4
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        executable: str = "redis-server",
        args: Sequence[str] = (),
        config: str = "",
        startup_timeout: float = 5.0,
    ) -> None:
        self._fixed_port = port
        self.port = port or 0
        """The TCP port it listens on (chosen at the first ``start`` unless given)."""
        self.executable = executable
        self.args = tuple(args)
        self.config = config
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RedisServer(port={self.port}, {state})"

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>``: append ``/<db>`` and options as you need."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server process lives."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (on the same port as before, if it ran before) and wait for it."""
        if self.running:
            return
        path = shutil.which(self.executable)
        if path is None:
            raise FileNotFoundError(_MISSING)
        # A port chosen here may be taken by someone else before the server binds it:
        # try a few, unless the port is fixed (given, or the one clients already know).
        fixed = self._fixed_port is not None or self.port != 0
        for attempt in range(1 if fixed else 3):
            port = self.port if fixed else _free_port()
            try:
                self._launch(path, port)
            except _PortTaken:
                if fixed or attempt == 2:
                    raise
            else:
                self.port = port
                return

    def _launch(self, path: str, port: int) -> None:
        self._cleanup_dir()
        self._dir = Path(tempfile.mkdtemp(prefix="linq-router-redis-"))
        log = self._dir / "redis.log"
        config = self._dir / "redis.conf"  # a sentinel insists on a file it may rewrite
        config.write_text(self.config, encoding="utf-8")
        command = [
            path,
            str(config),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--logfile", str(log),
            "--daemonize", "no",
            *self.args,
        ]  # fmt: skip
        # Errors in the options go to stderr before the log file is open: keep them too,
        # in a file (a pipe nobody reads could fill up and stall the server).
        with (self._dir / "stderr.log").open("wb") as stderr:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline and self._process.poll() is None:
            if _served_by(port, self._process.pid, timeout=0.2):
                return
            time.sleep(0.02)
        exited = self._process.poll() is not None
        said = self._said()
        self._end(kill=True)
        self._cleanup_dir()
        where = f"127.0.0.1:{port}"
        if exited and "already in use" in said:
            raise _PortTaken(f"redis-server could not listen on {where}: the port is in use")
        problem = "exited" if exited else f"did not answer within {self.startup_timeout} s"
        msg = f"redis-server on {where} {problem}" + (f"; it said:\n{said}" if said else "")
        raise RuntimeError(msg)

    def _said(self) -> str:
        """The last lines of the server's log and stderr."""
        text = ""
        for name in ("stderr.log", "redis.log"):
            if self._dir is not None:
                with contextlib.suppress(OSError):
                    text += (self._dir / name).read_text(errors="replace")
        return "\n".join(text.strip().splitlines()[-10:])

    def _end(self, *, kill: bool) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def _cleanup_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def stop(self) -> None:
        """Stop the server (``SIGTERM``, then ``SIGKILL`` after 5 s) and remove its directory."""
        self._end(kill=False)
        self._cleanup_dir()

    def kill(self) -> None:
        """End the server at once with ``SIGKILL``, as a crash would; ``start()`` restarts it."""
        self._end(kill=True)
