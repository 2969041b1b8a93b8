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
import itertools
import logging
import threading
from collections.abc import Callable, Mapping

from ._fork import renew_after_fork
from ._models import PhoneNumber, Reputation, Snapshot
from ._pick import Pick, PickContext
from .policies import CompiledPolicy, Policy, compile_policy

__all__ = ["_MustWait", "_Serving"]

logger = logging.getLogger("linq_router")

_UNPICKABLE = (Reputation.CRITICAL, Reputation.UNKNOWN)
# How many more turns a rotation is asked for before the interim picks a line itself.
_RETRIES = 16


class _MustWait(Exception):  # a signal, not an error anyone sees
    """The interim has nothing it may pick: the caller waits for the compile."""


def _ineligible(line: PhoneNumber | None) -> bool:
    return line is None or line.reputation in _UNPICKABLE or line.is_flagged


class _Interim:
    """A compiled policy for an older snapshot, with newly ineligible lines masked."""

    def __init__(self, base: CompiledPolicy, snapshot: Snapshot, masked: frozenset[str]) -> None:
        self.base = base
        self.version = snapshot.version
        self.snapshot = snapshot
        self.masked = masked
        self._turn = itertools.count()
        inner = base.pick
        if masked:
            self.pick: Callable[[PickContext], Pick] = self._masked_pick
        else:
            self.pick = inner

    def _masked_pick(self, ctx: PickContext) -> Pick:
        masked = self.masked
        try:
            pick = self.base.pick(ctx)
        except Exception:  # the old compile had nothing; the new snapshot may
            raise _MustWait from None
        if pick.number.id not in masked:
            return pick
        leaf = self.base.leaf_for(ctx)
        avoiding = getattr(leaf.selector, "pick_avoiding", None)
        if callable(avoiding):
            found = avoiding(ctx, masked)
            if isinstance(found, Pick):
                return found
        for _ in range(min(_RETRIES, len(leaf.group.lines))):
            pick = self.base.pick(ctx)
            if pick.number.id not in masked:
                return pick
        lines = [line for line in leaf.group.lines if line.id not in masked]
        if not lines:
            raise _MustWait
        line = lines[next(self._turn) % len(lines)]
        return leaf.group.make_pick(
            line, f"chose {line.phone_number} while the new snapshot compiles"
        )

    def candidates(self, ctx: PickContext) -> tuple[PhoneNumber, ...]:
        """The lines the filters kept for ``ctx``, less the masked ones."""
        return tuple(n for n in self.base.candidates(ctx) if n.id not in self.masked)


Served = CompiledPolicy | _Interim



class _Serving:
    """Per purpose: the compiled policy picks use, and the worker that replaces it."""

    policies: Mapping[str, Policy]

    def __init__(self) -> None:
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

    # -- the pick path's slow side ------------------------------------------------------

    def _served_for(self, snapshot: Snapshot, purpose: str) -> Served:
        """What picks of ``purpose`` use for ``snapshot``; waits only for a first compile."""
        with self._lock:
            served = self._without_compiling_locked(snapshot, purpose)
        return served if served is not None else self._first_compile(snapshot, purpose)

    def _without_compiling_locked(self, snapshot: Snapshot, purpose: str) -> Served | None:
        """What is served for ``snapshot`` at once, or ``None`` before a first compile."""
        current = self._compiled.get(purpose)
        if current is not None and current.version == snapshot.version:
            return current
        base = self._bases.get(purpose)
        return self._interim_locked(base, snapshot, purpose) if base is not None else None

    def _interim_locked(self, base: CompiledPolicy, snapshot: Snapshot, purpose: str) -> Served:
        if base.version == snapshot.version:  # back to what was compiled (A, B, A)
            served: Served = base
            self._pending.pop(purpose, None)
        else:
            changed = snapshot.changes_since(base.snapshot) if base.snapshot else frozenset()
            masked = frozenset(i for i in changed if _ineligible(_line(snapshot, i)))
            served = _Interim(base, snapshot, masked)
            self._pending[purpose] = snapshot
            self._start_worker_locked()
        self._compiled = {**self._compiled, purpose: served}
        return served

    def _first_compile(self, snapshot: Snapshot, purpose: str) -> Served:
        with self._first[purpose]:  # racing first picks share one compile
            with self._lock:
                served = self._without_compiling_locked(snapshot, purpose)
            if served is not None:
                return served
            compiled = compile_policy(
                self.policies[purpose], snapshot, purpose=purpose, previous=None
            )
            with self._lock:
                self._bases[purpose] = compiled
                current = self._compiled.get(purpose)
                if current is None or current.version != snapshot.version:
                    self._compiled = {**self._compiled, purpose: compiled}
                served = self._compiled[purpose]
            gc.freeze()  # see _work
            return served

    def _after_must_wait(self, snapshot: Snapshot, purpose: str) -> Served:
        """The interim had nothing to pick: wait for the worker's compile, or compile."""
        self.settle(timeout=30.0)
        with self._lock:
            current = self._compiled.get(purpose)
            if isinstance(current, CompiledPolicy) and current.version == snapshot.version:
                return current
            base = self._bases.get(purpose)
        compiled = compile_policy(self.policies[purpose], snapshot, purpose=purpose, previous=base)
        with self._lock:
            self._bases[purpose] = compiled
            self._compiled = {**self._compiled, purpose: compiled}
        return compiled

    # -- notices and the worker ---------------------------------------------------------

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        """A new snapshot was announced: serve an interim and compile in the background."""
        with self._lock:
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

    def _start_worker_locked(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(
                target=self._work, name="linq-router-compile", daemon=True
            )
            self._worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._worker = None
                    self._idle.notify_all()
                    return
                purpose, snapshot = next(iter(self._pending.items()))
                del self._pending[purpose]
                base = self._bases.get(purpose)
            try:
                if base is None:
                    self._first_compile(snapshot, purpose)
                    continue
                compiled = compile_policy(
                    self.policies[purpose], snapshot, purpose=purpose, previous=base
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
                self._bases[purpose] = compiled
                newer = self._pending.get(purpose)
                current = self._compiled.get(purpose)
                if newer is not None:  # a newer snapshot came meanwhile: mask from here
                    self._interim_locked(compiled, newer, purpose)
                elif current is None or current.version == compiled.version:
                    self._compiled = {**self._compiled, purpose: compiled}
            # As the registry does after installing a snapshot (see _registry_core): the
            # compiled policy lives until the next change, so keep full collections from
            # walking its hundreds of thousands of picks again, with the GIL held.
            gc.freeze()

    def settle(self, timeout: float | None = 10.0) -> bool:
        """Wait until every announced snapshot is compiled and swapped in.

        True when done within ``timeout`` seconds. Picks never need this; tests and
        benchmarks use it to know that what they see comes from the newest compile.

        .. versionadded:: 0.2
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._worker is None and not self._pending, timeout)

    def _after_fork_in_child(self) -> None:
        # Locks a parent thread held are locked forever here, and the worker thread does
        # not exist: start afresh, serving what was compiled; the next pick that sees a
        # newer snapshot masks and compiles it in this process.
        self._reset_locks()
        self._pending = {}
        self._compiled = dict(self._bases)


def _line(snapshot: Snapshot, line_id: str) -> PhoneNumber | None:
    line = snapshot.get(line_id)
    return line if line is not None and line.id == line_id else None


