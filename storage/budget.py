"""A byte budget shared by many tasks: memory bounded in bytes, not only in items.

Used by the log writer (payload bytes queued or being written), the engine's mailboxes (payload
bytes waiting in them) and the ingest routes (request bodies held). A task takes bytes when the
budget has room and waits otherwise; releasing wakes the waiters. An empty budget admits any
size, so one item larger than the whole budget still passes (alone).
"""

from __future__ import annotations

import trio


class ByteBudget:
    """``used`` bytes out of ``capacity``; one trio thread (plain integer updates)."""

    __slots__ = ("_room", "capacity", "used", "waiting")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a byte budget must be >= 1")
        self.capacity = capacity
        self.used = 0
        self.waiting = 0  # tasks in wait_for_room (for statistics)
        # Replaced on every release: the waiters wake on the old one and re-check.
        self._room = trio.Event()

    def fits(self, size: int) -> bool:
        """Whether ``size`` more bytes may be taken now."""
        return self.used == 0 or self.used + size <= self.capacity

    def take(self, size: int) -> None:
        """Count ``size`` bytes as held (no waiting: the caller checked :meth:`fits` or must go)."""
        self.used += size

    async def wait_for_room(self, size: int) -> None:
        """Return once ``size`` bytes fit (cancellable: wrap it in a timeout)."""
        self.waiting += 1
        try:
            while not self.fits(size):
                await self._room.wait()
        finally:
            self.waiting -= 1

    async def changed(self) -> None:
        """Return at the next release or :meth:`wake` (for waiters that watch more than room)."""
        await self._room.wait()

    async def acquire(self, size: int) -> None:
        """Wait for room, then take ``size`` bytes."""
        if not self.fits(size):
            await self.wait_for_room(size)
        self.used += size

    def release(self, size: int) -> None:
        """Give back ``size`` bytes taken before, waking the tasks waiting for room."""
        if size:
            self.used -= size
            self.wake()

    def wake(self) -> None:
        """Wake every waiter to re-check (also when something else they watch changed)."""
        self._room.set()
        self._room = trio.Event()
