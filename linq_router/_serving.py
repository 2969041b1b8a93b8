"""What picks are served from while a new snapshot compiles: ``_Serving``.

A router never makes a pick wait for a compile when it has compiled an earlier
snapshot. When a new snapshot arrives (the registry's notice, or a pick that sees a
new ``version``), the router at once serves an *interim*: the last compiled policy
with the lines the new snapshot made ineligible (gone, CRITICAL, UNKNOWN or FLAGGED)
masked out, which costs time proportional to what changed. A worker thread compiles
the new snapshot (incrementally: ``compile_policy(previous=...)``) and swaps the
result in whole. Only the very first compile of a purpose makes a caller wait.

While the interim serves, lines that joined or recovered are not picked yet, and a
line whose reputation changed keeps its old weight: both for the few milliseconds an
incremental compile takes. A pick that lands on a masked line is asked again: a
sticky selector walks its ring past the masked lines (the answer the new ring will
give), a rotation takes its next turn, and as a last resort an unmasked line of the
same group is taken in turn.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Mapping

from ._errors import NoEligibleNumberError
from ._fork import renew_after_fork
from ._interim import Served, _Interim, _MustWait, pick_avoiding
from ._models import PhoneNumber, Snapshot
from ._pick import Pick, PickContext, Stage
from .feedback import LineEvent, Tracker, eligible
from .pacing import PacerCore
from .policies import NO_ADJUSTMENTS, Adjustments, CompiledPolicy, Policy, compile_policy
from .policies._adjust import ejection_stage

__all__ = ["Served", "_Interim", "_MustWait", "_Serving", "pick_avoiding"]

logger = logging.getLogger("linq_router")
# How many compiles a pick the interim could not answer waits for, at most.
_WAITS = 5
# How long the compile worker waits for more work before its thread ends (seconds).
_LINGER = 1.0
# A change this soon after the last compile waits this long for more (seconds).
_BURST = 0.005


class _Serving:
    """Per purpose: the compiled policy picks use, and the worker that replaces it."""

    policies: Mapping[str, Policy]

    def __init__(self, tracker: Tracker | None = None, pacer: PacerCore | None = None) -> None:
        self._tracker = tracker
        self._pacer = pacer
        self._merged: tuple[Adjustments, dict[str, str], Adjustments] | None = None
        self._queued: list[LineEvent] = []
        self._latest: Snapshot | None = None  # the newest snapshot seen
        # Replaced wholesale under the lock, read without it: a pick sees either the old
        # mapping or the new one, both complete.
        self._compiled: dict[str, Served] = {}
        self._bases: dict[str, CompiledPolicy] = {}  # the newest real compile, per purpose
        self._pending: dict[str, Snapshot] = {}  # the newest snapshot still to compile
        self._reset_locks()
        renew_after_fork(self)

    def _reset_locks(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._first = {purpose: threading.Lock() for purpose in self.policies}
        self._worker: threading.Thread | None = None
        self._busy = False  # the worker is compiling (or about to)
        self._compiled_at = -math.inf  # when the worker last finished a compile
        self._lingering = False  # the worker waits for more work (notify it of some)
        self._closing = False

    # -- the pick path's slow side ------------------------------------------------------

    def _served_for(self, snapshot: Snapshot, purpose: str) -> Served:
        """What picks of ``purpose`` use for ``snapshot``; waits only for a first compile."""
        with self._lock:
            served = self._without_compiling_locked(snapshot, purpose)
        self._flush()
        return served if served is not None else self._first_compile(snapshot, purpose)

    def _without_compiling_locked(self, snapshot: Snapshot, purpose: str) -> Served | None:
        """What is served for ``snapshot`` at once, or ``None`` before a first compile."""
        current = self._compiled.get(purpose)
        if current is not None and current.version == snapshot.version:
            return current
        self._observe(snapshot)
        base = self._bases.get(purpose)
        return self._interim_locked(base, snapshot, purpose) if base is not None else None

    def _adjustments(self) -> Adjustments:
        """What the feedback and the budgets change in a compile, now."""
        tracker, pacer = self._tracker, self._pacer
        adjust = NO_ADJUSTMENTS if tracker is None else tracker.adjustments
        if pacer is None or not pacer.excluded:
            return adjust
        out = pacer.excluded
        merged = self._merged
        if merged is not None and merged[0] is adjust and merged[1] is out:
            return merged[2]
        both = Adjustments(
            {**adjust.excluded, **out},
            adjust.factors,
            {**adjust.reasons, **dict.fromkeys(out, "out of budget")},
        )
        self._merged = (adjust, out, both)
        return both

    def _observe(self, snapshot: Snapshot) -> None:
        """Tell the feedback about a snapshot (O(changed)); announce what it did."""
        self._latest = snapshot
        tracker = self._tracker
        if tracker is not None:
            self._queued.extend(tracker.observe(snapshot)[1])

    def _flush(self) -> None:
        """Announce the events queued while the lock was held (outside it)."""
        if self._queued:
            with self._lock:
                events, self._queued = self._queued, []
            self._announce(events)

    def _interim_locked(self, base: CompiledPolicy, snapshot: Snapshot, purpose: str) -> Served:
        adjust = self._adjustments()
        same = base.adjustments == adjust
        if base.version == snapshot.version and same:  # back to what was compiled (A, B, A)
            served: Served = self._watched(base, snapshot)
            self._pending.pop(purpose, None)
        else:
            masked: set[str] = set()
            if base.version != snapshot.version and base.snapshot is not None:
                changed = snapshot.changes_since(base.snapshot)
                masked.update(i for i in changed if not eligible(_line(snapshot, i)))
            stage = None
            if not same:
                # Newly ejected lines are masked at once; returned ones wait for the compile.
                masked.update(i for i in adjust.excluded if i not in base.adjustments.excluded)
                stage = _ejection_stage(adjust, snapshot)
            served = self._watched(base, snapshot, frozenset(masked), stage, pending=True)
            self._pending[purpose] = snapshot
            self._start_worker_locked()
        self._compiled = {**self._compiled, purpose: served}
        return served

    def _watched(
        self,
        base: CompiledPolicy,
        snapshot: Snapshot,
        masked: frozenset[str] = frozenset(),
        stage: Stage | None = None,
        *,
        pending: bool = False,
    ) -> Served:
        """``base`` as served: itself, or wrapped to mask lines and watch the feedback's time."""
        tracker = self._tracker
        due = math.inf if tracker is None else tracker.due
        if not masked and not pending and due == math.inf:
            return base
        clock = None if tracker is None else tracker.clock
        return _Interim(
            base,
            snapshot,
            masked,
            stage=stage,
            due=due,
            clock=clock,
            tick=self._tick,
            pending=pending,
        )

    # -- feedback -----------------------------------------------------------------------

    def _refeed(self) -> None:
        """The feedback changed: re-serve every purpose from its base, masked; recompile."""
        with self._lock:
            for purpose, current in self._compiled.items():
                base = self._bases.get(purpose)
                if base is not None and current.snapshot is not None:
                    self._interim_locked(base, current.snapshot, purpose)

    def _tick(self, purpose: str | None = None) -> Served | None:
        """A due time came: ejections end, slow start steps; what now serves ``purpose``.

        O(what came), and no compile: that happens in the background.
        """
        tracker = self._tracker
        if tracker is None:
            return None
        changed, events = tracker.advance()
        if changed:
            self._refeed()
        self._announce(events)
        self._flush()
        return None if purpose is None else self._compiled.get(purpose)

    def _announce(self, events: list[LineEvent]) -> None:
        """Hand events to the router's listener (the router overrides this)."""

    def _first_compile(self, snapshot: Snapshot, purpose: str) -> Served:
        with self._first[purpose]:  # racing first picks share one compile
            with self._lock:
                served = self._without_compiling_locked(snapshot, purpose)
            if served is not None:
                return served
            with self._lock:
                self._observe(snapshot)
                adjust = self._adjustments()
            self._flush()
            compiled = compile_policy(
                self.policies[purpose], snapshot, purpose=purpose, adjustments=adjust
            )
            with self._lock:
                served = self._install_locked(compiled, snapshot, purpose)
            gc.freeze()  # see _work
            return served

    def _pick_after_wait(self, snapshot: Snapshot, ctx: PickContext) -> tuple[Pick, Served]:
        """A pick once the compile it waited for is served, and what served it.

        The pool or the feedback may change again while it compiles, so the newest
        compile may be served masked once more: wait again, a few times at most.
        """
        for _ in range(_WAITS):
            served = self._after_must_wait(snapshot, ctx.purpose)
            try:
                return served.pick(ctx), served
            except _MustWait:
                snapshot = served.snapshot or snapshot  # the newest one, from here on
        msg = (
            f"no eligible line for {ctx.purpose!r}: the pool or the feedback changed "
            f"{_WAITS} times while the lines left were compiled"
        )
        raise NoEligibleNumberError(msg)

    def _after_must_wait(self, snapshot: Snapshot, purpose: str) -> Served:
        """The interim had nothing to pick: wait for the worker's compile, or compile."""
        _Serving.settle(self, timeout=30.0)  # not the asyncio twin: this runs in a thread
        with self._lock:
            adjust = self._adjustments()
            current = self._compiled.get(purpose)
            base = self._bases.get(purpose)
            if current is not None and _serves(current, snapshot, adjust):
                return current
        compiled = compile_policy(
            self.policies[purpose], snapshot, purpose=purpose, previous=base, adjustments=adjust
        )
        with self._lock:
            return self._install_locked(compiled, snapshot, purpose)

    def _install_locked(self, compiled: CompiledPolicy, snapshot: Snapshot, purpose: str) -> Served:
        """Serve a compile just made, as what is newest now allows.

        The feedback or the snapshot may have changed while it compiled: then it is
        served masked (and compiled again), never as if nothing had happened.
        """
        self._bases[purpose] = compiled
        current = self._compiled.get(purpose)
        target = snapshot
        if current is not None and current.version != snapshot.version and current.snapshot:
            target = current.snapshot  # a newer snapshot is served already
        return self._interim_locked(compiled, target, purpose)

    # -- notices and the worker ---------------------------------------------------------

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        """A new snapshot was announced: serve an interim and compile in the background."""
        with self._lock:
            self._observe(snapshot)
            for purpose in {*self._bases, "chat"}:
                base = self._bases.get(purpose)
                current = self._compiled.get(purpose)
                if current is not None and current.version == snapshot.version:
                    continue
                if base is not None:
                    self._interim_locked(base, snapshot, purpose)
                else:
                    # Nothing compiled yet: warm up in the background; a pick that comes
                    # first waits for this compile (it holds the purpose's first lock).
                    self._pending[purpose] = snapshot
                    self._start_worker_locked()
        self._flush()

    def _start_worker_locked(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(
                target=self._work, name="linq-router-compile", daemon=True
            )
            self._worker.start()
        elif self._lingering:
            self._idle.notify_all()  # the worker is waiting for more work: here it is

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._busy = False
                    self._idle.notify_all()
                    # Changes come in bursts (webhooks, a refresh): wait a little for the
                    # next one rather than start a thread for each.
                    self._lingering = True
                    self._idle.wait_for(lambda: bool(self._pending) or self._closing, _LINGER)
                    self._lingering = False
                    if not self._pending or self._closing:
                        self._worker = None
                        self._idle.notify_all()
                        return
                self._busy = True
                if time.monotonic() - self._compiled_at < _BURST:
                    # A burst of changes (webhooks): let it gather for a moment, so one
                    # compile covers many; the interim serves picks meanwhile.
                    self._idle.wait_for(lambda: self._closing, _BURST)
                    if not self._pending:
                        continue
                purpose, snapshot = next(iter(self._pending.items()))
                del self._pending[purpose]
                base = self._bases.get(purpose)
                adjust = self._adjustments()
            try:
                if base is None:
                    self._first_compile(snapshot, purpose)
                    continue
                compiled = compile_policy(
                    self.policies[purpose],
                    snapshot,
                    purpose=purpose,
                    previous=base,
                    adjustments=adjust,
                )
            except Exception:
                logger.exception(
                    "compiling the %s policy failed; the next pick compiles it", purpose
                )
                with self._lock:
                    self._compiled = {k: v for k, v in self._compiled.items() if k != purpose}
                    self._bases.pop(purpose, None)
                continue
            with self._lock:
                newer = self._pending.get(purpose)
                if newer is not None:  # a newer snapshot came meanwhile: mask from here
                    self._bases[purpose] = compiled
                    self._interim_locked(compiled, newer, purpose)
                else:
                    self._install_locked(compiled, snapshot, purpose)
            # As the registry does after installing a snapshot (see _registry_core): the
            # compiled policy lives until the next change, so keep full collections from
            # walking its hundreds of thousands of picks again, with the GIL held.
            gc.freeze()
            self._compiled_at = time.monotonic()

    def settle(self, timeout: float | None = 10.0) -> bool:
        """Wait until every announced snapshot is compiled and swapped in.

        True when done within ``timeout`` seconds. Picks never need this; tests and
        benchmarks use it to know that what they see comes from the newest compile.

        .. versionadded:: 0.2
        """
        with self._idle:
            return self._idle.wait_for(lambda: not self._busy and not self._pending, timeout)

    def _stop_worker(self) -> None:
        """Let the worker end now rather than after its wait for more work."""
        with self._idle:
            self._closing = True
            self._idle.notify_all()

    def _after_fork_in_child(self) -> None:
        # Locks a parent thread held are locked forever here, and the worker thread does
        # not exist: start afresh, serving what was compiled; the next pick that sees a
        # newer snapshot masks and compiles it in this process.
        self._reset_locks()
        self._pending = {}
        self._compiled = dict(self._bases)


def _serves(served: Served, snapshot: Snapshot, adjust: Adjustments) -> bool:
    """Whether ``served`` picks from a compile of ``snapshot`` and ``adjust``, unmasked."""
    if isinstance(served, _Interim):
        if served.masked:
            return False
        served = served.base
    return served.version == snapshot.version and served.adjustments == adjust


def _ejection_stage(adjust: Adjustments, snapshot: Snapshot) -> Stage | None:
    """The first stage a full compile with ``adjust`` would give (for interim picks)."""
    present = sum(1 for i in adjust.excluded if _line(snapshot, i) is not None)
    return ejection_stage(adjust, snapshot, len(snapshot.numbers) - present)


def _line(snapshot: Snapshot, line_id: str) -> PhoneNumber | None:
    line = snapshot.get(line_id)
    return line if line is not None and line.id == line_id else None
