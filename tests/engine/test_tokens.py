"""Session tokens: Go's shape, signing, verification, expiry windows, forgery."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine import tokens
from engine.tokens import TokenData, TokenStatus

SECRET = bytes(range(32))
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def test_token_has_the_go_shape() -> None:
    token = tokens.sign(SECRET, TokenData(4117431117823344641, 16, 1795432419165))
    parts = token.split(".")
    assert parts[:3] == ["va5vimrqwz5t", "g", "mwt63syl"]  # the captured token's first parts
    assert len(parts) == 4 and 40 <= len(parts[3]) <= 44  # base58 of a 32-byte HMAC
    assert tokens.base36(-16) == "-g"


@given(
    session_id=st.integers(min_value=0, max_value=2**63 - 1), delay=INT64, expiry=INT64, now=INT64
)
def test_sign_then_verify_roundtrips(session_id: int, delay: int, expiry: int, now: int) -> None:
    data = TokenData(session_id, delay, expiry)
    check = tokens.verify(SECRET, tokens.sign(SECRET, data), now)
    assert check.data == data
    if expiry > now:
        assert check.status is TokenStatus.VALID
    elif now - expiry < 30_000:
        assert check.status is TokenStatus.JUST_EXPIRED
    else:
        assert check.status is TokenStatus.EXPIRED


def test_expiry_boundaries() -> None:
    token = tokens.sign(SECRET, TokenData(1, 0, 1_000_000))
    assert tokens.verify(SECRET, token, 999_999).status is TokenStatus.VALID
    assert tokens.verify(SECRET, token, 1_000_000).status is TokenStatus.JUST_EXPIRED
    assert tokens.verify(SECRET, token, 1_029_999).status is TokenStatus.JUST_EXPIRED
    assert tokens.verify(SECRET, token, 1_030_000).status is TokenStatus.EXPIRED
    assert tokens.verify(SECRET, token, 1_029_999).accepted
    assert not tokens.verify(SECRET, token, 1_030_000).accepted


def test_forged_or_malformed_tokens_are_invalid() -> None:
    token = tokens.sign(SECRET, TokenData(4117431117823344641, 5, 10_000))
    p1, p2, p3, mac = token.split(".")
    forgeries = [
        tokens.sign(b"x" * 32, TokenData(4117431117823344641, 5, 10_000)),  # another secret
        f"{p1}.{p2}.{tokens.base36(10**12)}.{mac}",  # extended expiry, old MAC
        f"{tokens.base36(4117431117823344642)}.{p2}.{p3}.{mac}",  # another session
        f"{p1}.{p2}.{p3}.{mac[:-1]}",
        f"{p1}.{p2}.{p3}",
        f"{token}.extra",
        f"{p1}.{p2}.{p3}.{mac[:-1]}0",  # 0 is not in the base58 alphabet
        f"{p1.upper()}.{p2}.{p3}.{mac}",
        "",
        "a" * 500,
    ]
    for forged in forgeries:
        check = tokens.verify(SECRET, forged, 0)
        assert check.status is TokenStatus.INVALID, forged
        assert check.data is None


@given(st.binary(max_size=40))
def test_base58_roundtrips_with_leading_zeros(data: bytes) -> None:
    assert tokens.parse_base58(tokens.base58(data)) == data


@given(INT64)
def test_base36_roundtrips(n: int) -> None:
    assert tokens.parse_base36(tokens.base36(n)) == n
