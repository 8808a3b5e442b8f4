"""Password hashes: scrypt (stdlib ``hashlib.scrypt``) with a random salt per password.

The stored form is ``scrypt$N$r$p$salt$hash`` (hex), so the cost can be raised later without
breaking the hashes already stored: each one carries the parameters it was made with. The cost is
RFC 7914's interactive-login suggestion (N=2**14, r=8, p=1: about 16 MB and tens of milliseconds a
check), the same for the dashboard's users and the v3 API's users. scrypt rather than argon2-cffi:
it is in the standard library (no compiled dependency) and memory-hard as well.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (hex) of the password, with a fresh random salt."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """True if ``password`` matches a :func:`hash_password` value (compared in constant time)."""
    _, n, r, p, salt, digest = stored.split("$")
    got = hashlib.scrypt(
        password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(got.hex(), digest)


@functools.cache
def decoy_hash() -> str:
    """A hash of no one's password: checked when a login names no known user, so that an unknown
    email costs as much time as a wrong password (the answer must not tell who has an account).
    Made on first use, not at import (it costs one scrypt)."""
    return hash_password(secrets.token_hex(16))
