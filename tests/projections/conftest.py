"""Fixtures of the projection tests: a migrated database connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from projections.base import migrate_checkpoints
from projections.pipeline import ALL_PROJECTIONS
from storage.sqlite import connect


@pytest.fixture
def conn(fresh_db_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a fresh database with every projection's tables."""
    connection = connect(fresh_db_path)
    migrate_checkpoints(connection)
    for projection in ALL_PROJECTIONS:
        projection.migrate(connection)
    try:
        yield connection
    finally:
        connection.close()
