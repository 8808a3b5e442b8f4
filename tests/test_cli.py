"""The command-line contract that scripts rely on (run as real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from api.cli import build_parser, tracker_snippet
from engine.mobile_start import decode_project_id
from storage.catalog import Catalog


def replayd(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_project_create_prints_the_key_alone_on_the_last_line(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    result = replayd("project", "create", "My shop", "--db", str(db))
    assert result.returncode == 0, result.stderr
    key = result.stdout.splitlines()[-1]
    assert len(key) == 20 and key.isalnum()
    mobile = replayd("project", "create", "App", "--db", str(db), "--platform", "ios")
    assert mobile.returncode == 0, mobile.stderr
    catalog = Catalog.open(db)
    try:
        projects = catalog.list_projects()
    finally:
        catalog.close()
    assert [(p.name, p.platform, p.project_key) for p in projects] == [
        ("My shop", "web", key),
        ("App", "ios", mobile.stdout.splitlines()[-1]),
    ]


def test_project_list_prints_the_old_ios_project_id_of_mobile_projects(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    assert replayd("project", "create", "Shop", "--db", str(db)).returncode == 0
    created = replayd("project", "create", "App", "--db", str(db), "--platform", "android")
    listing = replayd("project", "list", "--db", str(db))
    assert listing.returncode == 0, listing.stderr
    web_line, app_line = listing.stdout.splitlines()
    assert "projectID" not in web_line
    fields = app_line.split("\t")
    assert fields[:4] == ["2", created.stdout.splitlines()[-1], "android", "App"]
    encoded = int(fields[4].removeprefix("projectID="))
    assert decode_project_id(encoded) == 2
    assert f"old iOS SDK projectID {encoded}" in created.stdout.splitlines()[0]


def test_api_key_create_prints_a_key_that_verifies(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    result = replayd("api-key", "create", env={"REPLAYD_DB": str(db)})  # --db from the environment
    assert result.returncode == 0, result.stderr
    key = result.stdout.splitlines()[-1]
    catalog = Catalog.open(db)
    try:
        assert catalog.verify_api_key(key) == 1
    finally:
        catalog.close()


def test_bad_usage_fails_with_a_message(tmp_path: Path) -> None:
    result = replayd("project", "create", "x", "--db", str(tmp_path / "a.db"), "--platform", "tv")
    assert result.returncode != 0 and "invalid choice" in result.stderr
    assert replayd().returncode != 0


def test_serve_accepts_every_setting_flag() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--db",
            "x.db",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--protocol-version",
            "2",
            "--trust-x-forwarded-for",
            "true",
        ]
    )
    assert (args.db_path, args.host, args.port, args.protocol_version) == ("x.db", "0.0.0.0", 0, 2)
    assert args.trust_x_forwarded_for is True and args.beacon_size_limit is None


def test_tracker_snippet() -> None:
    assert tracker_snippet("k" * 20, "http://127.0.0.1:8080") == (
        'new Tracker({projectKey: "kkkkkkkkkkkkkkkkkkkk", ingestPoint: "http://127.0.0.1:8080", '
        "__DISABLE_SECURE_MODE: true})"
    )


def _serve_until_listening(db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--db", str(db), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # ends when the process exits; the serving line comes first
        lines.append(line)
        if line.startswith("replayd serving"):
            break
    return proc, "".join(lines)


def test_first_serve_creates_a_project_and_key_and_sigterm_stops_it_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "serve.db"
    proc, out = _serve_until_listening(db)
    try:
        assert (
            "project key: " in out and "API key: " in out and "__DISABLE_SECURE_MODE: true" in out
        )
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    project_key = out.split("project key: ")[1].split()[0]
    api_key = out.split("API key: ")[1].split()[0]
    catalog = Catalog.open(db)
    try:
        assert [p.project_key for p in catalog.list_projects()] == [project_key]
        assert catalog.verify_api_key(api_key) == 1
    finally:
        catalog.close()
    again, out_again = _serve_until_listening(db)  # not the first start any more
    try:
        assert "First start" not in out_again
        again.terminate()
        assert again.wait(timeout=30) == 0
    finally:
        again.kill()
