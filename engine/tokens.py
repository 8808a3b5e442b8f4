"""Session tokens in the shape the OpenReplay Go backend issues (``backend/pkg/token``).

``base36(session_id) . base36(delay) . base36(expiry_ms) . base58(HMAC-SHA256(secret, "p1.p2.p3"))``

The tracker treats the token as opaque; keeping Go's shape costs nothing and keeps tokens readable
in logs. No clock in here: ``now_ms`` is always passed in. The secret lives in the catalog.
"""

from __future__ import annotations

import enum
import hashlib
import hmac

import attrs

JUST_EXPIRED_GRACE_MS = 30_000
"""Expired less than this long ago = "just expired": the batch is still stored (then 401)."""

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
# Bitcoin alphabet, as used by the Go backend's base58 package.
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
# Longest sane token: three int64s in base36 (13 chars + sign each) and a 32-byte MAC (<= 44).
_MAX_TOKEN_LEN = 128


class TokenStatus(enum.Enum):
    VALID = "valid"
    JUST_EXPIRED = "just_expired"  # expired < 30 s ago: accept the batch, then answer 401
    EXPIRED = "expired"
    INVALID = "invalid"  # malformed or forged


@attrs.frozen(slots=True)
class TokenData:
    """What a token carries."""

    session_id: int
    delay: int
    expiry_ms: int


@attrs.frozen(slots=True)
class TokenCheck:
    """Result of ``verify``: the status and, unless INVALID, the token's data."""

    status: TokenStatus
    data: TokenData | None = None

    @property
    def accepted(self) -> bool:
        """True when a batch carrying this token may be stored (VALID or JUST_EXPIRED)."""
        return self.status in (TokenStatus.VALID, TokenStatus.JUST_EXPIRED)


def base36(n: int) -> str:
    """Lower-case base36 like Go's ``strconv.FormatInt(n, 36)`` (a leading ``-`` when negative)."""
    if n < 0:
        return "-" + base36(-n)
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_B36[r])
    return "".join(reversed(out))


def parse_base36(text: str) -> int:
    """Inverse of ``base36``; raises ValueError on anything else (no ``+``, spaces or ``_``)."""
    body = text[1:] if text.startswith("-") else text
    if not body or any(c not in _B36 for c in body):
        raise ValueError(f"not base36: {text!r}")
    value = int(body, 36)
    return -value if text.startswith("-") else value


def base58(data: bytes) -> str:
    """Bitcoin-alphabet base58 (leading zero bytes become ``1``)."""
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def parse_base58(text: str) -> bytes:
    """Inverse of ``base58``; raises ValueError on characters outside the alphabet."""
    n = 0
    for c in text:
        digit = _B58_INDEX.get(c)
        if digit is None:
            raise ValueError(f"not base58: {text!r}")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def _mac(secret: bytes, signed_part: str) -> bytes:
    return hmac.new(secret, signed_part.encode("ascii"), hashlib.sha256).digest()


def sign(secret: bytes, data: TokenData) -> str:
    """The token for ``data`` under ``secret``."""
    signed_part = f"{base36(data.session_id)}.{base36(data.delay)}.{base36(data.expiry_ms)}"
    return f"{signed_part}.{base58(_mac(secret, signed_part))}"


def verify(secret: bytes, token: str, now_ms: int) -> TokenCheck:
    """Check a token's signature (constant-time) and then its expiry against ``now_ms``."""
    if not token or len(token) > _MAX_TOKEN_LEN:
        return TokenCheck(TokenStatus.INVALID)
    parts = token.split(".")
    if len(parts) != 4:
        return TokenCheck(TokenStatus.INVALID)
    try:
        given_mac = parse_base58(parts[3])
        data = TokenData(
            session_id=parse_base36(parts[0]),
            delay=parse_base36(parts[1]),
            expiry_ms=parse_base36(parts[2]),
        )
    except ValueError:
        return TokenCheck(TokenStatus.INVALID)
    # Recompute over the text exactly as received (Go does the same), then compare in constant time.
    expected = _mac(secret, f"{parts[0]}.{parts[1]}.{parts[2]}")
    if not hmac.compare_digest(expected, given_mac):
        return TokenCheck(TokenStatus.INVALID)
    if data.expiry_ms > now_ms:
        return TokenCheck(TokenStatus.VALID, data)
    if now_ms - data.expiry_ms < JUST_EXPIRED_GRACE_MS:
        return TokenCheck(TokenStatus.JUST_EXPIRED, data)
    return TokenCheck(TokenStatus.EXPIRED, data)


def verify_bearer(secret: bytes, authorization: str, now_ms: int) -> TokenCheck:
    """``verify`` of an ``Authorization: Bearer <token>`` header's token (INVALID without one)."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return TokenCheck(TokenStatus.INVALID)
    return verify(secret, value.strip(), now_ms)
