"""Process assembly: the single process, the ``--workers`` engine and ingest processes, services.

No HTTP routes and no SQL here: what a process serves over HTTP is handed in by the HTTP layer
(:class:`runtime.assembly.Assembly`), and every query lives in ``storage/`` or ``projections/``.
"""
