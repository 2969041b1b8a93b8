"""Test doubles shared by tests/feedback and tests/pacing: lines, pools, a registry."""

from __future__ import annotations

from collections.abc import Callable

from linq_router import PhoneNumber, Reputation, Snapshot


def line(
    i: int, rep: str = "HEALTHY", status: str | None = "ACTIVE", line_type: str = "iMessage"
) -> PhoneNumber:
    """Line ``i``: id ``id-i``, number ``+1202555iiii``."""
    return PhoneNumber(
        f"id-{i}",
        f"+1202555{i:04d}",
        Reputation[rep],
        status=status,  # type: ignore[arg-type]
        line_type=line_type,  # type: ignore[arg-type]
    )


def pool(n: int) -> Snapshot:
    """``n`` healthy active lines."""
    return Snapshot([line(i) for i in range(n)])


class FakeRegistry:
    """A registry double: snapshot() and subscribe(), with set() to publish a new one."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        self.listeners: list[Callable[[Snapshot], None]] = []

    def snapshot(self) -> Snapshot:
        return self.current

    def subscribe(self, listener: Callable[[Snapshot], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def set(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        for listener in list(self.listeners):
            listener(snapshot)


class AsyncFakeRegistry(FakeRegistry):
    """The asyncio twin."""

    async def snapshot(self) -> Snapshot:  # type: ignore[override]
        return self.current
