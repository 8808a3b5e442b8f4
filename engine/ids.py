"""Flake session ids, shaped like the OpenReplay backend's (``backend/pkg/flakeid``).

A session id is a 64-bit integer ``((now_ms - EPOCH_MS) << 24) | (shard << 8) | seq``: the
milliseconds since 2019-02-12 19:33:20 UTC, a 16-bit shard (the generating node) and an 8-bit
sequence. The tracker gets it as a decimal string and ids sort by start time. No clock in here:
the caller passes ``now_ms``.
"""

from __future__ import annotations

EPOCH_MS = 1_550_000_000_000
SHARD_BITS = 16
SEQ_BITS = 8
MAX_SHARD = (1 << SHARD_BITS) - 1
_SEQ_LIMIT = 1 << SEQ_BITS
# Ids stay positive signed 64-bit integers (SQLite INTEGER) until 2036-07 with 39 bits of ms.
_MAX_OFFSET_MS = 1 << (63 - SHARD_BITS - SEQ_BITS)


def flake_timestamp_ms(flake_id: int) -> int:
    """The epoch milliseconds embedded in a flake id (the session's start timestamp)."""
    return (flake_id >> (SHARD_BITS + SEQ_BITS)) + EPOCH_MS


def flake_shard(flake_id: int) -> int:
    """The shard embedded in a flake id."""
    return (flake_id >> SEQ_BITS) & MAX_SHARD


def make_flake_id(timestamp_ms: int, shard: int, seq: int) -> int:
    """Compose a flake id from its parts (no uniqueness bookkeeping: see ``FlakeIdGenerator``)."""
    if not 0 <= shard <= MAX_SHARD:
        raise ValueError(f"shard {shard} out of range 0..{MAX_SHARD}")
    if not 0 <= seq < _SEQ_LIMIT:
        raise ValueError(f"seq {seq} out of range 0..{_SEQ_LIMIT - 1}")
    if not EPOCH_MS <= timestamp_ms < EPOCH_MS + _MAX_OFFSET_MS:
        raise ValueError("timestamp outside the flake epoch's range")
    return ((timestamp_ms - EPOCH_MS) << (SHARD_BITS + SEQ_BITS)) | (shard << SEQ_BITS) | seq


class FlakeIdGenerator:
    """Hands out strictly increasing flake ids for one shard.

    Unlike the Go generator (whose 8-bit sequence wraps and can repeat within one millisecond), a
    full millisecond or a clock that steps backwards borrows the next millisecond instead, so ids
    never repeat and never go down; the embedded time is then at most a few ms ahead.
    """

    def __init__(self, shard: int = 0) -> None:
        if not 0 <= shard <= MAX_SHARD:
            raise ValueError(f"shard {shard} out of range 0..{MAX_SHARD}")
        self.shard = shard
        self._last_ms = 0
        self._seq = 0

    def next_id(self, now_ms: int) -> int:
        """A new id for ``now_ms`` (epoch ms), greater than every id returned before."""
        if now_ms > self._last_ms:
            self._last_ms = now_ms
            # Start at 1 like the reference backend (its first id of a millisecond has seq 1).
            self._seq = 1
        else:
            self._seq += 1
            if self._seq >= _SEQ_LIMIT:
                self._last_ms += 1
                self._seq = 0
        return make_flake_id(self._last_ms, self.shard, self._seq)
