"""Fixtures shared by every test layer."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def fresh_db_path(tmp_path: Path) -> Path:
    """Path of a database file that does not exist yet, in a per-test temporary directory."""
    return tmp_path / "replayd.db"
