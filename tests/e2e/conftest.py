"""Fixtures of the real-tracker end-to-end test (the machinery itself is in ``harness.py``).

Every fixture cleans up what it started: the static site servers, the replayd subprocesses (whose
log tail is printed at teardown, the first thing to read when a test fails), the browsers and their
throwaway profiles. Nothing is skipped: no browser, no npm or no replayd means a failure.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import BrowserRun, ReplaydServer, SiteServer, build_bundle


@pytest.fixture(scope="session")
def tracker_bundle() -> Path:
    return build_bundle()


@pytest.fixture
def site_factory(tracker_bundle: Path) -> Iterator[Callable[[dict[str, Any]], SiteServer]]:
    servers: list[SiteServer] = []

    def make(config: dict[str, Any]) -> SiteServer:
        server = SiteServer(config).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def replayd_factory(tmp_path: Path) -> Iterator[Callable[..., ReplaydServer]]:
    servers: list[ReplaydServer] = []

    def make(env: dict[str, str] | None = None, name: str = "replayd") -> ReplaydServer:
        workdir = tmp_path / name
        workdir.mkdir()
        server = ReplaydServer(workdir, env)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
    for server in servers:
        # The server log is the first thing to read when an e2e test fails.
        print(f"\n--- replayd log ({server.workdir.name}), last lines ---\n{server.log_tail(25)}")


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    manager = sync_playwright().start()
    yield manager
    manager.stop()


@pytest.fixture
def browser_factory(playwright_instance: Any) -> Iterator[Callable[[], BrowserRun]]:
    runs: list[BrowserRun] = []
    dirs: list[tempfile.TemporaryDirectory[str]] = []

    def make() -> BrowserRun:
        profile = tempfile.TemporaryDirectory(prefix="replayd-e2e-profile-")
        dirs.append(profile)
        run = BrowserRun(playwright_instance, Path(profile.name))
        runs.append(run)
        return run

    yield make
    for run in runs:
        # Whatever close() raises means the test already closed the browser.
        with contextlib.suppress(Exception):
            run.close()
    for profile in dirs:
        profile.cleanup()
