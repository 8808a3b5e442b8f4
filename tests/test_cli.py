"""The command-line contract that scripts rely on (run as real subprocesses)."""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

from api.cli import build_parser, tracker_snippet
from engine.mobile_start import decode_project_id
from storage.catalog import Catalog
from storage.v3_catalog import V3Catalog
from tests.api.conftest import CHROME_UA, start_body


def replayd(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_project_create_prints_the_key_alone_on_the_last_line(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    result = replayd("project", "create", "My shop", "--db", str(db), "--create")
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
    assert replayd("project", "create", "Shop", "--db", str(db), "--create").returncode == 0
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
    # --db from the environment
    result = replayd("api-key", "create", "--create", env={"REPLAYD_DB": str(db)})
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


def _one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "Attribute(" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "--log-level", "LOUD"], "argument --log-level: 'LOUD' is not a level"),
        # No prefix matching: --prot is not --protocol-version.
        (["serve", "--prot", "9"], "unrecognized arguments: --prot 9"),
        (["serve", "--port", "eighty"], "argument --port: 'eighty' is not an integer"),
        (["serve", "--trust-x-forwarded-for", "maybe"], "'maybe' is not true or false"),
        (
            ["serve", "--protocol-version", "9"],
            "replayd serve: --protocol-version (env REPLAYD_PROTOCOL_VERSION) must be in (1, 2)",
        ),
        (["serve", "--port", "70000"], "--port (env REPLAYD_PORT) must be <= 65535: 70000"),
        (["project", "create"], "the following arguments are required: name"),
    ],
)
def test_bad_flags_fail_in_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    db = tmp_path / "sub" / "x.db"
    line = _one_line_error(replayd(*args, "--db", str(db)), 2)
    assert expected in line and line.startswith("replayd")
    assert not db.parent.exists()  # refused before anything was created


def test_trust_x_forwarded_for_is_a_switch_that_still_takes_a_value() -> None:
    def trust(*flags: str) -> object:
        return build_parser().parse_args(["serve", *flags]).trust_x_forwarded_for

    assert trust() is None  # the environment or the default decides
    assert trust("--trust-x-forwarded-for") is True
    assert trust("--trust-x-forwarded-for", "false") is False
    assert trust("--trust-x-forwarded-for", "--port", "0") is True
    assert trust("--no-trust-x-forwarded-for") is False


@pytest.mark.parametrize(
    "command",
    [
        ["project", "list"],
        ["project", "create", "shop"],
        ["api-key", "create"],
        ["dead-letters", "list"],
        ["rebuild"],
    ],
)
def test_commands_refuse_a_database_that_does_not_exist(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "typo" / "replayd.db"
    line = _one_line_error(replayd(*command, "--db", str(db)), 1)
    hint = f"no database at {db} (create it with `replayd serve --db {db}`"
    name = " ".join(word for word in command if word != "shop")
    assert line.startswith(f"replayd {name}: {hint}")
    assert line.endswith(" or pass --create)") == ("create" in command)
    assert not db.parent.exists()


def test_create_makes_the_database_when_asked(tmp_path: Path) -> None:
    db = tmp_path / "new" / "replayd.db"
    assert replayd("project", "create", "shop", "--db", str(db), "--create").returncode == 0
    listed = replayd("project", "list", "--db", str(db))
    assert listed.returncode == 0 and "\tweb\tshop" in listed.stdout
    key = listed.stdout.split("\t")[1]
    # A database the CLI made has no log yet: nothing recorded, so the project may go.
    deleted = replayd("project", "delete", key, "--db", str(db))
    assert deleted.returncode == 0, deleted.stderr
    assert replayd("project", "list", "--db", str(db)).stdout == ""


def test_version() -> None:
    result = replayd("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"replayd {importlib.metadata.version('replayd')}"


def _walk(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        found.append((parser.prog, action))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.extend(_walk(sub))
    return found


def test_every_argument_has_help_and_no_parser_abbreviates() -> None:
    walked = _walk(build_parser())
    assert len(walked) > 40
    assert [(prog, a.dest) for prog, a in walked if not a.help] == []
    parsers = {prog for prog, _ in walked}
    assert "replayd serve" in parsers and "replayd api-key create" in parsers
    assert all(not parser.allow_abbrev for parser in _parsers(build_parser()))


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.extend(_parsers(sub))
    return found


def test_tracker_snippet() -> None:
    assert tracker_snippet("k" * 20, "http://127.0.0.1:8080") == (
        'new Tracker({projectKey: "kkkkkkkkkkkkkkkkkkkk", ingestPoint: "http://127.0.0.1:8080", '
        "__DISABLE_SECURE_MODE: true})"
    )


def _serve_until_listening(
    db: Path, *extra: str, stderr: IO[str] | int = subprocess.DEVNULL
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--db", str(db), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=stderr,
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


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    # Log lines of the start-up may come first; the failure is the last line, and no traceback.
    assert "Traceback" not in result.stderr and "ExceptionGroup" not in result.stderr
    return result.stderr.splitlines()[-1]


def test_a_port_in_use_is_one_line_and_loses_no_key(tmp_path: Path) -> None:
    db = tmp_path / "serve.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = replayd("serve", "--db", str(db), "--port", str(port))
    assert result.returncode == 1
    assert _last_line(result) == (
        f"replayd serve: port {port} on 127.0.0.1 is in use (another replayd?); pass --port"
    )
    assert "First start" not in result.stdout
    catalog = Catalog.open(db)
    try:  # nothing was created that nobody saw
        assert catalog.list_projects() == [] and catalog.api_key_count() == 0
    finally:
        catalog.close()
    proc, out = _serve_until_listening(db)  # the next start is the first start
    try:
        assert "First start" in out and "API key: " in out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_second_serve_on_a_database_in_use_says_so_at_once(tmp_path: Path) -> None:
    db = tmp_path / "serve.db"
    first, _ = _serve_until_listening(db)
    try:
        started = time.monotonic()
        second = replayd("serve", "--db", str(db), "--port", "0")
        elapsed = time.monotonic() - started
        assert second.returncode == 1
        assert _last_line(second) == (
            f"replayd serve: the projections are being written by server (pid {first.pid}"
            f" on {socket.gethostname()}); stop it first"
        )
        assert elapsed < 5, elapsed  # not after the projector's wait for the lock
    finally:
        first.terminate()
        first.wait(timeout=30)


def test_serve_on_a_database_without_api_key_says_how_to_get_one(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    assert replayd("project", "create", "shop", "--db", str(db), "--create").returncode == 0
    proc, out = _serve_until_listening(db)
    try:
        assert "First start" not in out
        assert f"create one with `replayd api-key create --db {db}`" in out
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert replayd("api-key", "create", "--db", str(db)).returncode == 0
    proc, out = _serve_until_listening(db)
    try:
        assert "api-key create" not in out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_api_key_list_and_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "keys.db")
    ci = replayd("api-key", "create", "--db", db, "--create", "--label", "ci").stdout.split()[-1]
    replayd("api-key", "create", "--db", db, "--label", "laptop")
    listed = replayd("api-key", "list", "--db", db)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "id\tcreated\tlabel" and lines[-1] == "2 API key(s)"
    ci_id = hashlib.sha256(ci.encode()).hexdigest()[:12]
    assert [line.split("\t")[0::2] for line in lines[1:-1]].count([ci_id, "ci"]) == 1
    assert ci not in listed.stdout  # the key itself is never shown again
    revoked = replayd("api-key", "revoke", ci_id, "--db", db)
    assert revoked.returncode == 0 and f"revoked API key {ci_id}" in revoked.stdout
    assert replayd("api-key", "list", "--db", db).stdout.splitlines()[-1] == "1 API key(s)"
    again = _one_line_error(replayd("api-key", "revoke", ci, "--db", db), 1)
    assert again == f"replayd api-key revoke: no API key {ci} (see `replayd api-key list`)"


def test_project_delete_refuses_a_running_server_and_recorded_sessions(tmp_path: Path) -> None:
    db = tmp_path / "serve.db"
    proc, out = _serve_until_listening(db)
    try:
        key = out.split("project key: ")[1].split()[0]
        url = out.split("replayd serving ")[1].split(" on ")[1].split()[0]
        busy = _one_line_error(replayd("project", "delete", key, "--db", str(db)), 1)
        assert "the projections are being written by server" in busy
        started = httpx.post(
            f"{url}/v1/web/start",
            content=json.dumps(start_body(key)),
            headers={"Content-Type": "application/json", "User-Agent": CHROME_UA},
        )
        assert started.status_code == 200, started.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    recorded = _one_line_error(replayd("project", "delete", key, "--db", str(db)), 1)
    assert recorded == (
        "replayd project delete: project 1 'default' has recorded sessions; deleting their data"
        " is not supported yet, so the project stays"
    )
    other = replayd("project", "create", "empty", "--db", str(db)).stdout.split()[-1]
    deleted = replayd("project", "delete", other, "--db", str(db))
    assert deleted.returncode == 0 and deleted.stdout == "deleted project 2 'empty'\n"
    assert other not in replayd("project", "list", "--db", str(db)).stdout
    unknown = _one_line_error(replayd("project", "delete", other, "--db", str(db)), 1)
    assert unknown == f"replayd project delete: no project with key {other} (see `project list`)"


def _json_log_of_one_start(tmp_path: Path, *extra: str) -> list[dict[str, object]]:
    """Serve with ``--log-format json``, start one session, stop: the stderr lines, parsed."""
    db = tmp_path / "logs.db"
    with open(tmp_path / "stderr.txt", "w+") as stderr:
        proc, out = _serve_until_listening(db, "--log-format", "json", *extra, stderr=stderr)
        try:
            key = out.split("project key: ")[1].split()[0]
            url = out.split("replayd serving ")[1].split(" on ")[1].split()[0]
            started = httpx.post(
                f"{url}/v1/web/start",
                content=json.dumps(start_body(key)),
                headers={"Content-Type": "application/json", "User-Agent": CHROME_UA},
            )
            assert started.status_code == 200
            deadline = time.monotonic() + 20
            while '"session_started"' not in Path(stderr.name).read_text():
                assert time.monotonic() < deadline, "the session's start was never logged"
                time.sleep(0.05)
        finally:
            proc.terminate()
            assert proc.wait(timeout=30) == 0
        stderr.seek(0)
        return [json.loads(line) for line in stderr.read().splitlines()]


def test_json_logs_are_one_object_per_line_with_the_fields(tmp_path: Path) -> None:
    lines = _json_log_of_one_start(tmp_path)
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    accesses = [line for line in lines if line["logger"] == "replayd.access"]
    assert len(accesses) == 1, accesses
    (access,) = accesses
    assert access["level"] == "INFO"
    assert str(access["message"]).startswith("POST /v1/web/start 200 ")
    assert (access["method"], access["path"], access["status"]) == ("POST", "/v1/web/start", 200)
    assert isinstance(access["bytes"], int) and isinstance(access["ms"], float)
    assert str(access["time"]).endswith("Z")
    (started,) = [line for line in lines if line.get("event") == "session_started"]
    assert started["logger"] == "runtime.engine_service" and started["project_id"] == 1


def test_no_access_log(tmp_path: Path) -> None:
    lines = _json_log_of_one_start(tmp_path, "--no-access-log")
    assert [line for line in lines if line["logger"] == "replayd.access"] == []
    assert any(line.get("event") == "session_started" for line in lines)


def test_v3_app_create_prints_the_app_id_and_secret_alone_on_the_last_line(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    created = replayd("project", "create", "Shop", "--db", str(db), "--create")
    key = created.stdout.splitlines()[-1]
    result = replayd("v3", "app", "create", "BigBrother", "--project", key, "--db", str(db))
    assert result.returncode == 0, result.stderr
    aid, secret = result.stdout.splitlines()[-1].split(" ")
    assert int(aid) > 0 and len(secret) == 50 and secret.isalnum() and secret.islower()
    v3 = V3Catalog.open(db)
    try:
        app = v3.get_app(int(aid))
    finally:
        v3.close()
    assert app is not None and (app.name, app.secret, app.project_id) == ("BigBrother", secret, 1)
    unknown = replayd("v3", "app", "create", "X", "--project", "nope", "--db", str(db))
    assert unknown.returncode == 1 and "no project with key nope" in unknown.stderr
