"""A keyed table of handlers filled once at import time, that refuses a second entry for a key.

The event-row mappers (:mod:`projections.events`) and the public API's event serializers
(``api.public_v1``) are such tables: one entry per event type, registered next to its function,
instead of parallel ``match`` statements that must be kept in step by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar, cast

K = TypeVar("K")
V = TypeVar("V")


class Registry(Generic[K, V]):
    """Key -> handler. ``what`` names the table in the error of a double registration."""

    __slots__ = ("_entries", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[K, V] = {}

    def register(self, key: K, value: V) -> None:
        """Add the handler of ``key``; a key already there is refused (ValueError).

        Refused rather than replaced: two modules claiming one event type is a bug, and the
        last import winning would hide it.
        """
        if key in self._entries:
            raise ValueError(f"{self.what}: {key!r} is already registered")
        self._entries[key] = value

    def unregister(self, key: K) -> None:
        """Remove the handler of ``key`` (KeyError when there is none)."""
        del self._entries[key]

    def get(self, key: object) -> V | None:
        """The handler of ``key``, or None (any object may be asked: unknown keys are ignored)."""
        # The cast only widens what may be asked: a key of another type is simply not there.
        return self._entries.get(cast(K, key))

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
