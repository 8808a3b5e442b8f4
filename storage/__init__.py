"""Storage layer: bytes and databases.

The append-only log (the trio side in ``log``, the recorder protocol in ``recorder``, SQLite's
recorder with every line of the log's SQL in ``sqlite_recorder``), the catalog (projects, keys,
secrets), backend-neutral errors and SQLite helpers. Knows nothing of the tracker protocol;
nothing here imports engine, projections or api.
"""
