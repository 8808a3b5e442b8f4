"""Fixtures of the runtime tests: the real server of the API tests (``tests/api/conftest.py``)."""

from tests.api.conftest import server_factory  # noqa: F401  (a fixture, found by its name)
