"""The login rate limit: failed logins counted per email and per client address, in memory.

Sans-IO: the caller passes the time (monotonic seconds), so the rules are tested without waiting.
An email key (``("email", ...)``) may fail ``max_failures`` times within ``window_s``, an address
key (``("ip", ...)``) ``max_address_failures`` times: more, because many people may share one
address (a proxy, an office), and one of them must not lock everyone else out by failing ten
times. One more attempt is refused until the oldest counted failure leaves the window. A
success forgets the email's failures (not the address's: one address trying many emails stays
limited). At most ``max_keys`` keys are remembered: a client inventing emails cannot grow memory,
it only forgets the oldest keys.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

import attrs

ThrottleKey = tuple[str, str]  # (EMAIL or ADDRESS, the value)
EMAIL = "email"
ADDRESS = "ip"


@attrs.define
class LoginThrottle:
    """Counts failed logins per key; :meth:`retry_after` says whether one more may be tried."""

    max_failures: int = 10
    max_address_failures: int = 100
    window_s: float = 300.0
    max_keys: int = 10_000
    _failures: OrderedDict[ThrottleKey, deque[float]] = attrs.field(factory=OrderedDict)

    def retry_after(self, keys: Iterable[ThrottleKey], now: float) -> float | None:
        """Seconds until an attempt with ``keys`` is allowed again, or None if it is now."""
        waits = []
        for key in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= self._limit(key):
                waits.append(times[0] + self.window_s - now)
        return max(waits) if waits else None

    def failed(self, keys: Iterable[ThrottleKey], now: float) -> None:
        """Count one failed attempt against every key."""
        for key in keys:
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque()
                while len(self._failures) > self.max_keys:
                    self._failures.popitem(last=False)
            times.append(now)
            if len(times) > self._limit(key):
                times.popleft()

    def succeeded(self, key: ThrottleKey) -> None:
        """Forget the failures of ``key`` (the email of a successful login)."""
        self._failures.pop(key, None)

    def _limit(self, key: ThrottleKey) -> int:
        return self.max_address_failures if key[0] == ADDRESS else self.max_failures

    def _recent(self, key: ThrottleKey, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times
