"""Storage layer: bytes and SQLite.

The append-only log, the catalog (projects, keys, secrets) and SQLite helpers. Knows nothing of
the tracker protocol; nothing here imports engine, projections or api.
"""
