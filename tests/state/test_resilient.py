"""ResilientState: picks go on locally while the shared state is down, and rejoin it."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from linq_router.state import MemoryState, RedisState, ResilientState, from_uri
from linq_router.testing import FakeClock, RedisServer, check_state

from .test_redis_state import counted, run_forked


class Flaky(MemoryState):
    """A primary double: a MemoryState that raises redis's ConnectionError while down."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.pings = 0
        self.fail_after = -1  # while up: calls that succeed before the next one fails

    def _check(self) -> None:
        if self.fail_after == 0:
            self.fail_after = -1
            raise redis.exceptions.ConnectionError("reset mid write-back")
        self.fail_after -= 1 if self.fail_after > 0 else 0
        if self.down:
            raise redis.exceptions.ConnectionError("Error 111 connecting. Connection refused.")

    def get_assignment(self, key: str) -> str | None:
        self._check()
        return super().get_assignment(key)

    def set_assignment(self, key: str, line_id: str) -> None:
        self._check()
        super().set_assignment(key, line_id)

    def assign(self, key: str, candidate: str) -> str:
        self._check()
        return super().assign(key, candidate)

    def delete_assignment(self, key: str) -> bool:
        self._check()
        return super().delete_assignment(key)

    def clear(self) -> None:
        self._check()
        super().clear()

    def ping(self) -> bool:
        self.pings += 1
        self._check()
        return True


def levels(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The messages logged by linq_router at exactly ``level``."""
    return [
        r.getMessage() for r in caplog.records if r.name == "linq_router" and r.levelno == level
    ]


@pytest.fixture
def flaky() -> Flaky:
    """A primary that is up until the test says otherwise."""
    return Flaky()


@pytest.fixture
def state(flaky: Flaky, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> ResilientState:
    """A ResilientState over ``flaky``, rechecking every second of the fake clock."""
    caplog.set_level(logging.DEBUG, logger="linq_router")
    return ResilientState(flaky, recheck=1.0, clock=clock)


def test_it_passes_the_contract_while_up_and_while_down() -> None:
    """Healthy, a ResilientState is its primary; down from the start, its fallback."""
    check_state(lambda: ResilientState(MemoryState()))

    def down() -> ResilientState:
        primary = Flaky()
        primary.down = True
        return ResilientState(primary, recheck=3600)

    check_state(down)


def test_an_outage_goes_local_with_one_warning(
    state: ResilientState, flaky: Flaky, caplog: pytest.LogCaptureFixture
) -> None:
    """The first failure switches to the fallback, seeded; one WARNING, one outage."""
    state.set_assignment("a", "line-1")
    assert state.assign("b", "line-2") == "line-2"
    assert not state.degraded
    flaky.down = True
    assert state.get_assignment("a") == "line-1"  # seeded from what the primary said
    assert state.degraded
    assert state.outages == 1
    assert state.assign("b", "other") == "line-2"
    assert state.assign("c", "line-3") == "line-3"
    state.set_assignment("d", "line-4")
    assert state.get_assignment("nobody") is None
    assert state.delete_assignment("a")
    (warning,) = levels(caplog, logging.WARNING)
    assert warning.startswith("shared state unreachable (ConnectionError: Error 111")
    assert warning.endswith("; picks go on with local state")
    assert "degraded=True, outages=1" in repr(state)


def test_probes_at_most_once_a_recheck(
    state: ResilientState, flaky: Flaky, clock: FakeClock
) -> None:
    """While degraded, one call a recheck interval pings the primary; the others do not."""
    flaky.down = True
    for _ in range(100):
        state.get_assignment("k")
    assert flaky.pings == 0
    clock.advance(1.0)
    for _ in range(100):
        state.get_assignment("k")
    assert flaky.pings == 1
    clock.advance(0.5)
    state.get_assignment("k")
    assert flaky.pings == 1
    clock.advance(0.5)
    state.get_assignment("k")
    assert flaky.pings == 2
    assert state.degraded
    assert state.outages == 1


def test_rejoining_writes_back_what_changed_locally(
    state: ResilientState, flaky: Flaky, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """On rejoining: local assignments (the primary's win), deletes and clears written back."""
    state.set_assignment("forgotten", "line-0")
    flaky.down = True
    state.get_assignment("x")
    assert state.assign("mine", "line-1") == "line-1"
    assert state.assign("contested", "line-2") == "line-2"
    state.set_assignment("pinned", "line-3")
    assert state.delete_assignment("forgotten")
    flaky.down = False
    MemoryState.set_assignment(flaky, "contested", "elsewhere")  # another host chose meanwhile
    clock.advance(2.5)
    assert state.get_assignment("contested") == "elsewhere"
    assert not state.degraded
    assert flaky.get_assignment("mine") == "line-1"
    assert flaky.get_assignment("pinned") == "line-3"
    assert flaky.get_assignment("forgotten") is None
    (info,) = levels(caplog, logging.INFO)
    assert info == "rejoined the shared state after 2.5 s; wrote back 3 local assignment(s)"
    assert len(levels(caplog, logging.WARNING)) == 1


def test_a_clear_during_the_outage_is_replayed_first(
    state: ResilientState, flaky: Flaky, clock: FakeClock
) -> None:
    """clear() while degraded clears the primary on rejoining, before later assignments."""
    state.set_assignment("old", "line-0")
    flaky.down = True
    state.clear()
    state.set_assignment("new", "line-1")
    flaky.down = False
    clock.advance(1)
    assert state.get_assignment("old") is None
    assert flaky.get_assignment("new") == "line-1"


def test_a_failed_write_back_keeps_the_changes(
    state: ResilientState, flaky: Flaky, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """If the primary fails again mid write-back, it stays degraded and retries it all."""
    flaky.down = True
    for at in range(5):
        state.set_assignment(f"k{at}", f"line-{at}")
    state.delete_assignment("gone")
    flaky.down = False
    flaky.fail_after = 2  # ping, one delete, then the assignments fail
    clock.advance(1)
    assert state.get_assignment("k0") == "line-0"
    assert state.degraded
    state.set_assignment("k5", "line-5")
    clock.advance(1)
    assert state.get_assignment("k0") == "line-0"
    assert not state.degraded
    assert [flaky.get_assignment(f"k{at}") for at in range(6)] == [f"line-{at}" for at in range(6)]
    assert len(levels(caplog, logging.INFO)) == 1
    assert state.outages == 1


def test_other_errors_are_not_outages(state: ResilientState, flaky: Flaky) -> None:
    """A bug (not a connection problem) in the primary is raised, not hidden."""

    def broken(key: str) -> str | None:
        raise KeyError(key)

    flaky.get_assignment = broken  # type: ignore[method-assign]
    with pytest.raises(KeyError):
        state.get_assignment("k")
    assert not state.degraded


def test_threads_lose_nothing_across_an_outage(flaky: Flaky, clock: FakeClock) -> None:
    """16 threads assigning while the primary is down, then while it comes back: all land."""
    state = ResilientState(flaky, recheck=0.0, clock=clock)  # every call may probe
    flaky.down = True
    state.get_assignment("start")
    answers: dict[str, str] = {}
    lock = threading.Lock()
    halfway = threading.Barrier(17, timeout=30)

    def worker(at: int) -> None:
        for n in range(400):
            if n == 200:
                halfway.wait()  # the primary comes back up now, mid-stream
            key = f"w{at}-{n}"
            line = state.assign(key, f"line-{at}")
            with lock:
                answers[key] = line

    threads = [threading.Thread(target=worker, args=(at,)) for at in range(16)]
    for thread in threads:
        thread.start()
    halfway.wait()
    flaky.down = False
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    state.get_assignment("end")
    assert not state.degraded
    assert state.outages == 1
    assert len(answers) == 16 * 400
    missing = [key for key, line in answers.items() if flaky.get_assignment(key) != line]
    assert missing == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork() on this platform")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_fork_while_a_thread_holds_the_lock(state: ResilientState, flaky: Flaky) -> None:
    """The child of a fork taken while a parent thread held the lock goes on unblocked."""
    flaky.down = True
    state.set_assignment("k", "line-1")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with state._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        report = run_forked(lambda: {"line": state.get_assignment("k")})
    finally:
        release.set()
        holder.join(10)
    assert report == {"line": "line-1"}


# -- on a real redis-server ---------------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill."""
    with RedisServer() as server:
        yield server


def test_a_killed_redis_is_survived_and_rejoined(
    own_server: RedisServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL the server: calls go on locally, one WARNING; restarted: one INFO, written back."""
    caplog.set_level(logging.DEBUG, logger="linq_router")
    primary = from_uri(f"{own_server.url}/0?namespace=fleet&fallback=off")
    assert isinstance(primary, RedisState)
    state = ResilientState(primary, recheck=1.0, clock=clock)
    state.set_assignment("kept", "line-1")
    own_server.kill()
    started = time.perf_counter()
    assert state.get_assignment("kept") == "line-1"
    assert state.assign("new", "line-2") == "line-2"
    state.set_assignment("pinned", "line-3")
    assert time.perf_counter() - started < 1.0
    assert state.degraded
    assert len(levels(caplog, logging.WARNING)) == 1
    own_server.start()
    watcher = redis.Redis(port=own_server.port, socket_timeout=2)
    watcher.set("{fleet}:sticky:new", "chosen-elsewhere")
    assert state.assign("later", "line-4") == "line-4"  # not yet: the recheck is 1 s away
    assert state.degraded
    clock.advance(1.0)
    assert state.get_assignment("new") == "chosen-elsewhere"
    assert not state.degraded
    assert watcher.get("{fleet}:sticky:pinned") == b"line-3"
    assert watcher.get("{fleet}:sticky:later") == b"line-4"
    assert watcher.get("{fleet}:sticky:new") == b"chosen-elsewhere"
    (info,) = levels(caplog, logging.INFO)
    assert info.startswith("rejoined the shared state after 1.0 s")
    assert len(levels(caplog, logging.WARNING)) == 1
    assert state.outages == 1
    watcher.close()
    state.close()


def test_a_silent_redis_does_not_hold_a_pick(caplog: pytest.LogCaptureFixture) -> None:
    """A server that accepts but never answers costs one call ~2 x 50 ms, then none."""
    caplog.set_level(logging.WARNING, logger="linq_router")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        state = from_uri(f"redis://:pw-not-shown@127.0.0.1:{port}/0")
        started = time.perf_counter()
        assert state.get_assignment("k") is None
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(100):
            state.assign("k", "line-1")
        rest = time.perf_counter() - started
    assert first < 1.0
    assert rest < 0.1
    (warning,) = levels(caplog, logging.WARNING)
    assert "Timeout" in warning
    assert "pw-not-shown" not in warning
    assert "pw-not-shown" not in repr(state)


def test_an_unreachable_cluster_at_start_is_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    """redis+cluster with no node answering: the client cannot even be made; picks go on."""
    caplog.set_level(logging.WARNING, logger="linq_router")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = from_uri(f"redis+cluster://127.0.0.1:{port}")
    assert isinstance(state, ResilientState)
    assert state.assign("k", "line-1") == "line-1"
    assert state.get_assignment("k") == "line-1"
    assert state.degraded
    assert len(levels(caplog, logging.WARNING)) == 1


def test_it_checks_its_arguments() -> None:
    """A primary must be a StateBackend; recheck and remember are numbers >= 0."""
    with pytest.raises(TypeError, match="StateBackend"):
        ResilientState(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recheck"):
        ResilientState(MemoryState(), recheck=-1)
    with pytest.raises(ValueError, match="remember"):
        ResilientState(MemoryState(), remember=1.5)  # type: ignore[arg-type]
    assert ResilientState(MemoryState()).assignment_ttl is None


# -- assign: one call to the primary ----------------------------------------------------------


class Counting(MemoryState):
    """A MemoryState that records which of its methods are called."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def get_assignment(self, key: str) -> str | None:
        self.calls.append("get")
        return super().get_assignment(key)

    def set_assignment(self, key: str, line_id: str) -> None:
        self.calls.append("set")
        super().set_assignment(key, line_id)

    def assign(self, key: str, candidate: str) -> str:
        self.calls.append("assign")
        return super().assign(key, candidate)


class FourMethods:
    """A StateBackend with only the protocol's four methods: no assign."""

    def __init__(self) -> None:
        self.lines: dict[str, str] = {}
        self.calls: list[str] = []

    def get_assignment(self, key: str) -> str | None:
        self.calls.append("get")
        return self.lines.get(key)

    def set_assignment(self, key: str, line_id: str) -> None:
        self.calls.append("set")
        self.lines[key] = line_id

    def delete_assignment(self, key: str) -> bool:
        return self.lines.pop(key, None) is not None

    def clear(self) -> None:
        self.lines.clear()


def test_assign_is_the_primarys_own_or_a_get_then_a_set() -> None:
    """A primary with assign gets one assign call a pick; one without, a get and a set."""
    counting = Counting()
    state = ResilientState(counting)
    assert state.assign("k", "line-1") == "line-1"
    assert state.assign("k", "line-2") == "line-1"
    assert counting.calls == ["assign", "assign"]
    four = FourMethods()
    state = ResilientState(four)
    assert state.assign("k", "line-1") == "line-1"
    assert state.assign("k", "line-2") == "line-1"
    assert four.calls == ["get", "set", "get"]


def test_a_script_flush_is_no_outage(redis_client: redis.Redis, redis_url: str) -> None:
    """NOSCRIPT (a SCRIPT FLUSH, a server restarted with its data) is the primary's to
    handle: the script is loaded again, nothing goes local, and the next pick is one call."""
    primary = from_uri(redis_url)  # the fixture's URL says fallback=off
    assert isinstance(primary, RedisState)
    state = ResilientState(primary)
    assert state.assign("k", "line-1") == "line-1"
    redis_client.script_flush()
    sent = counted(primary.client)
    assert state.assign("k", "line-2") == "line-1"
    assert state.assign("new", "line-3") == "line-3"
    assert sent == ["EVALSHA", "SCRIPT LOAD", "EVALSHA", "EVALSHA"]
    assert (state.degraded, state.outages) == (False, 0)
    assert redis_client.pttl(primary.key("k")) > 29 * 24 * 3600 * 1000  # renewed
