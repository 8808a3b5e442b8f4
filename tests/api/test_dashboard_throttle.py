"""The login rate limit (sans-IO): the time is passed in, so the rules are checked exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from api.dashboard.throttle import LoginThrottle

EMAIL = ("email", "ann@example.test")
ADDRESS = ("ip", "192.0.2.1")


def test_the_attempt_after_max_failures_waits_for_the_oldest_to_leave_the_window() -> None:
    throttle = LoginThrottle(max_failures=3, max_address_failures=3, window_s=60.0)
    for t in (0.0, 10.0, 20.0):
        assert throttle.retry_after([EMAIL, ADDRESS], t) is None
        throttle.failed([EMAIL, ADDRESS], t)
    assert throttle.retry_after([EMAIL], 30.0) == 30.0  # the failure at 0 leaves at 60
    assert throttle.retry_after([("email", "other"), ADDRESS], 30.0) == 30.0  # same address
    assert throttle.retry_after([("email", "other"), ("ip", "elsewhere")], 30.0) is None
    assert throttle.retry_after([EMAIL], 60.0) is None


def test_a_success_forgets_the_email_not_the_address() -> None:
    throttle = LoginThrottle(max_failures=2, max_address_failures=2, window_s=60.0)
    throttle.failed([EMAIL, ADDRESS], 0.0)
    throttle.failed([EMAIL, ADDRESS], 1.0)
    throttle.succeeded(EMAIL)
    assert throttle.retry_after([EMAIL], 2.0) is None
    assert throttle.retry_after([ADDRESS], 2.0) == 58.0


def test_an_address_may_fail_more_often_than_an_email() -> None:
    throttle = LoginThrottle(max_failures=2, max_address_failures=5, window_s=60.0)
    for i in range(4):
        throttle.failed([("email", f"user{i}@example.test"), ADDRESS], float(i))
    assert throttle.retry_after([("email", "new@example.test"), ADDRESS], 4.0) is None
    throttle.failed([("email", "new@example.test"), ADDRESS], 4.0)
    assert throttle.retry_after([("email", "other@example.test"), ADDRESS], 5.0) == 55.0


def test_remembered_keys_are_bounded() -> None:
    throttle = LoginThrottle(max_failures=1, window_s=60.0, max_keys=100)
    for i in range(1000):
        throttle.failed([("email", f"user{i}@example.test")], 0.0)
    assert len(throttle._failures) == 100
    assert throttle.retry_after([("email", "user999@example.test")], 1.0) == 59.0


@given(
    st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=40),
    st.integers(min_value=1, max_value=5),
)
def test_never_more_than_max_failures_within_any_window(times: list[float], limit: int) -> None:
    """Attempts allowed by retry_after and then failed: no window holds more than ``limit``."""
    throttle = LoginThrottle(max_failures=limit, window_s=100.0)
    allowed = []
    for t in sorted(times):
        if throttle.retry_after([EMAIL], t) is None:
            throttle.failed([EMAIL], t)
            allowed.append(t)
    for start in allowed:
        assert sum(1 for t in allowed if start <= t < start + 100.0) <= limit
