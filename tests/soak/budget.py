"""Time budgets of the fuzz tests: CI runs a bounded number of examples; ``REPLAYD_FUZZ_SCALE``
(set by ``scripts/soak --fuzz-scale N``) multiplies it for longer runs by hand."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_SCALE = max(1, int(os.environ.get("REPLAYD_FUZZ_SCALE", "1")))


def fuzz_settings(max_examples: int) -> settings:
    """Hypothesis settings for ``max_examples`` CI examples (times the scale), without a deadline:
    the budget is the example count, never the speed of a loaded CI machine."""
    return settings(
        max_examples=max_examples * FUZZ_SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
