"""Flake session ids: layout, timestamp roundtrip, strict monotonicity."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.ids import EPOCH_MS, FlakeIdGenerator, flake_shard, flake_timestamp_ms, make_flake_id

T0 = 1_795_418_019_165


def test_layout_matches_the_captured_session_id() -> None:
    assert make_flake_id(T0, 0, 1) == 4117431117823344641  # sessionID of the captured start
    assert flake_timestamp_ms(4117431117823344641) == T0


@given(
    ts=st.integers(min_value=EPOCH_MS, max_value=EPOCH_MS + 2**39 - 1),
    shard=st.integers(0, 0xFFFF),
    seq=st.integers(0, 255),
)
def test_parts_roundtrip(ts: int, shard: int, seq: int) -> None:
    flake = make_flake_id(ts, shard, seq)
    assert (flake_timestamp_ms(flake), flake_shard(flake), flake & 0xFF) == (ts, shard, seq)
    assert 0 <= flake < 2**63


def test_generator_is_strictly_increasing_even_in_one_millisecond_or_backwards() -> None:
    gen = FlakeIdGenerator(shard=7)
    readings = [T0] * 600 + [T0 - 5_000] * 10 + [T0 + 1] * 3 + [T0 + 10_000]
    ids = [gen.next_id(now) for now in readings]
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert {flake_shard(i) for i in ids} == {7}
    assert flake_timestamp_ms(ids[0]) == T0
    assert flake_timestamp_ms(ids[-1]) == T0 + 10_000
    # 600 ids in one ms borrow the next ms or two rather than repeating.
    assert flake_timestamp_ms(ids[599]) - T0 <= 3


def test_out_of_range_parts_are_refused() -> None:
    with pytest.raises(ValueError):
        FlakeIdGenerator(shard=0x10000)
    with pytest.raises(ValueError):
        make_flake_id(EPOCH_MS - 1, 0, 0)
    with pytest.raises(ValueError):
        make_flake_id(T0, 0, 256)
    with pytest.raises(ValueError):  # year 2036: the id would not fit a signed 64-bit integer
        make_flake_id(EPOCH_MS + 2**39, 0, 0)
