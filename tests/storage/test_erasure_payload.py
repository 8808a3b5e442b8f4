"""The ``ERASURE`` payload: ranges and a count, and the first shape (every position) still read."""

from __future__ import annotations

import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from storage.records import Erasure, position_ranges

positions = st.sets(st.integers(min_value=1, max_value=10_000), max_size=200)


@given(positions)
def test_ranges_cover_exactly_the_positions_in_runs(wanted: set[int]) -> None:
    ranges = position_ranges(wanted)
    expanded = [p for first, last in ranges for p in range(first, last + 1)]
    assert expanded == sorted(wanted)
    # Maximal runs: two ranges never touch.
    assert all(b[0] > a[1] + 1 for a, b in itertools.pairwise(ranges))


@given(positions, st.sets(st.integers(min_value=0, max_value=2**63 - 1), max_size=20),
       st.integers(min_value=0, max_value=2**40))  # fmt: skip
def test_the_payload_round_trips(wanted: set[int], sessions: set[int], job: int) -> None:
    erasure = Erasure.of_positions(
        reason="user-deletion", positions=wanted, sessions=sessions, job=job
    )
    assert Erasure.from_bytes(erasure.to_bytes()) == erasure
    assert erasure.count == len(wanted) and erasure.positions == tuple(sorted(wanted))
    assert 0 not in erasure.sessions


@given(positions, st.sets(st.integers(min_value=1, max_value=10**6), max_size=20))
def test_a_payload_of_the_first_shape_still_parses(wanted: set[int], sessions: set[int]) -> None:
    old = json.dumps(
        {"reason": "retention", "positions": sorted(wanted), "sessions": sorted(sessions)}
    ).encode()
    assert Erasure.from_bytes(old) == Erasure.of_positions(
        reason="retention", positions=wanted, sessions=sessions
    )


def test_an_erasure_names_no_content() -> None:
    erasure = Erasure.of_positions(reason="user-deletion", positions=[3, 4, 5, 9], sessions=[7])
    assert json.loads(erasure.to_bytes()) == {
        "reason": "user-deletion", "ranges": [[3, 5], [9, 9]], "count": 4, "sessions": [7],
        "job": 0,
    }  # fmt: skip
