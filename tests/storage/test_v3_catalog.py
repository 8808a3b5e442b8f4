"""storage.v3_catalog: apps, users (scrypt plus the signature's sha1) and replayed nonces."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from storage.v3_catalog import UserExists, V3Catalog


def test_apps_users_and_nonces(tmp_path: Path) -> None:
    v3 = V3Catalog.open(tmp_path / "v3.db")
    try:
        first, second = v3.create_app("A", 1), v3.create_app("B", 2)
        assert 0 < first.aid < second.aid and len(first.secret) == 50
        assert v3.get_app(first.aid) == first and v3.get_app(999) is None
        user = v3.create_user(1, "alice", "a@example.org", "pw ü")
        assert user.password_sha1 == hashlib.sha1("pw ü".encode()).hexdigest()
        assert v3.get_user(1, "alice") == user and v3.get_user(2, "alice") is None
        with pytest.raises(UserExists):
            v3.create_user(1, "alice", "other@example.org", "x")
        v3.create_user(2, "alice", "a@example.org", "x")  # another project: another user
        assert v3.check_login(1, "alice", "pw ü") and not v3.check_login(1, "alice", "pw")
        assert not v3.check_login(1, "bob", "pw")
        assert v3.use_nonce(first.aid, "alice", "n1", window_ms=60_000)
        assert not v3.use_nonce(first.aid, "alice", "n1", window_ms=60_000)
        assert v3.use_nonce(second.aid, "alice", "n1", window_ms=60_000)
        # Outside the window a nonce is forgotten (here: a window of -1 ms forgets everything).
        assert v3.use_nonce(first.aid, "alice", "n1", window_ms=-1)
    finally:
        v3.close()
