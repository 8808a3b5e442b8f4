"""The ``replayd`` command line.

Contract (scripts rely on it):

* ``replayd serve [--db PATH] [--host H] [--port P] ...`` runs the server; on the first start of a
  database (no project yet) it creates a default project and an organization API key and prints
  both with the tracker snippet. ``--workers N`` runs N ingest processes (``runtime.worker``); it
  exits with status 1 if one of them dies.
* ``replayd project create NAME [--db PATH] [--platform web|ios|android]`` and ``replayd api-key
  create [--db PATH]`` print the new key ALONE on the LAST line of stdout.
* ``replayd project list`` prints one project a line: id, key, platform, name, tab-separated; a
  mobile project adds ``projectID=<n>``, the encoded id an old iOS SDK (``/v1/ios/start``) takes.
* Every flag also reads its ``REPLAYD_*`` variable (``REPLAYD_DB``, ``REPLAYD_HOST``, ...).

Adding a subcommand: write ``def add_<name>_command(subparsers) -> None`` that adds its parser and
``set_defaults(handler=<function taking the argparse.Namespace, returning an exit code>)``, and
append it to ``COMMANDS`` below. The function may live in its own layer (e.g. projections/); this
module is the only place that imports it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial

import attrs
import trio

from api.config import SETTINGS, ServerConfig
from engine.mobile_start import MOBILE_PLATFORMS, encode_project_id
from storage.catalog import PLATFORMS, Catalog, Project

# argparse has no public name for the object add_subparsers() returns.
SubParsers = argparse._SubParsersAction


def _db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help="SQLite file of the log and the catalog (env REPLAYD_DB, default ./data/replayd.db)",
    )


def _db_path(args: argparse.Namespace) -> str:
    return ServerConfig.from_env(db_path=args.db).db_path


# -- serve ---------------------------------------------------------------------------------------


def add_serve_command(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("serve", help="run the server")
    for setting in SETTINGS:
        default_text = getattr(ServerConfig(), setting.field)
        parser.add_argument(
            setting.flag,
            dest=setting.field,
            type=setting.parse,
            default=None,
            help=f"{setting.help} (env {setting.env}, default {default_text})",
        )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("REPLAYD_LOG_LEVEL", "INFO"),
        help="logging level (env REPLAYD_LOG_LEVEL, default INFO)",
    )
    parser.set_defaults(handler=run_serve)


@attrs.frozen(slots=True)
class FirstStart:
    """What the first ``serve`` of a database created (printed once the port is known)."""

    project: Project
    api_key: str


def bootstrap(db_path: str) -> FirstStart | None:
    """On a database without projects: create the default project and an organization API key."""
    catalog = Catalog.open(db_path)
    try:
        if catalog.list_projects():
            return None
        project = catalog.create_project("default")
        api_key = catalog.create_api_key(label="created by the first serve")
        return FirstStart(project, api_key)
    finally:
        catalog.close()


def tracker_snippet(project_key: str, ingest_point: str) -> str:
    """The one line that points the OpenReplay tracker at this server."""
    return (
        f'new Tracker({{projectKey: "{project_key}", ingestPoint: "{ingest_point}", '
        "__DISABLE_SECURE_MODE: true})"
    )


def _print_first_start(first: FirstStart, ingest_point: str) -> None:
    print("First start: created a default project and an organization API key.")
    print(f"  project key: {first.project.project_key}")
    print(f"  API key:     {first.api_key}   (shown once; only its hash is stored)")
    print("Point the tracker at this server:")
    print(f"  {tracker_snippet(first.project.project_key, ingest_point)}")
    print("  (__DISABLE_SECURE_MODE is only for plain http; drop it when serving over https)")
    sys.stdout.flush()


def run_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides = {s.field: getattr(args, s.field) for s in SETTINGS}
    try:
        config = ServerConfig.from_env(**overrides)
    except (ValueError, TypeError) as error:
        print(f"replayd: bad configuration: {error}", file=sys.stderr)
        return 2
    first = bootstrap(config.db_path)

    async def main() -> None:
        # Imported late: `replayd project ...` needs no web stack.
        from api.surfaces import ASSEMBLY
        from runtime.process import serve

        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(serve, config, assembly=ASSEMBLY))
            if first is not None:
                host = server.host if server.host not in ("0.0.0.0", "::") else "localhost"
                host = f"[{host}]" if ":" in host else host
                _print_first_start(first, f"http://{host}:{server.port}")
            processes = f" ({config.workers} ingest processes)" if config.workers else ""
            print(f"replayd serving {config.db_path} on {server.url}{processes}", flush=True)

    try:
        trio.run(main)
    except BaseException as error:
        from runtime.pool import find_worker_failure

        failure = find_worker_failure(error)
        if failure is None:
            raise
        # A dead ingest process takes the whole server down (no half-running server).
        print(f"replayd: {failure}; the server stopped", file=sys.stderr, flush=True)
        return 1
    return 0


# -- project / api-key ---------------------------------------------------------------------------


def add_project_command(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("project", help="manage projects")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a project; prints its key on the last line")
    create.add_argument("name")
    create.add_argument("--platform", choices=PLATFORMS, default="web")
    _db_argument(create)
    create.set_defaults(handler=run_project_create)
    listing = actions.add_parser("list", help="list projects")
    _db_argument(listing)
    listing.set_defaults(handler=run_project_list)


def run_project_create(args: argparse.Namespace) -> int:
    catalog = Catalog.open(_db_path(args))
    try:
        project = catalog.create_project(args.name, args.platform)
    finally:
        catalog.close()
    print(f"created project {project.project_id} {project.name!r} ({_platform_note(project)})")
    print(project.project_key)
    return 0


def _platform_note(project: Project) -> str:
    """The platform, and for a mobile project the number an old iOS SDK is configured with."""
    if project.platform not in MOBILE_PLATFORMS:
        return project.platform
    return f"{project.platform}, old iOS SDK projectID {encode_project_id(project.project_id)}"


def run_project_list(args: argparse.Namespace) -> int:
    catalog = Catalog.open(_db_path(args))
    try:
        projects = catalog.list_projects()
    finally:
        catalog.close()
    for project in projects:
        state = "" if project.active else " (inactive)"
        line = f"{project.project_id}\t{project.project_key}\t{project.platform}\t{project.name}"
        if project.platform in MOBILE_PLATFORMS:
            # What /v1/ios/start takes as projectID (the old README's encoded number).
            line += f"\tprojectID={encode_project_id(project.project_id)}"
        print(line + state)
    return 0


def add_api_key_command(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("api-key", help="manage organization API keys")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create an API key; prints it on the last line")
    create.add_argument("--label", default="", help="a note stored with the key")
    _db_argument(create)
    create.set_defaults(handler=run_api_key_create)


def run_api_key_create(args: argparse.Namespace) -> int:
    catalog = Catalog.open(_db_path(args))
    try:
        key = catalog.create_api_key(label=args.label)
    finally:
        catalog.close()
    print("created an organization API key (shown once; only its hash is stored):")
    print(key)
    return 0


# -- rebuild (projections) -----------------------------------------------------------------------


def add_rebuild_command(subparsers: SubParsers) -> None:
    from projections.pipeline import PROJECTIONS_BY_NAME

    parser = subparsers.add_parser(
        "rebuild",
        help="empty projections and replay the whole log into them (stop the server first)",
    )
    _db_argument(parser)
    _projections_db_argument(parser, "; the only file the rebuild writes")
    parser.add_argument(
        "--projection",
        action="append",
        dest="projections",
        choices=sorted(PROJECTIONS_BY_NAME),
        help="a projection to rebuild (repeatable; default: all)",
    )
    parser.set_defaults(handler=run_rebuild)


def run_rebuild(args: argparse.Namespace) -> int:
    from projections.rebuild import run_command

    config = _projections_config(args, "rebuild")
    if config is None:
        return 2
    return run_command(config.db_path, config.projections_db_path, args.projections)


# -- dead letters (projections) ------------------------------------------------------------------


def _projections_db_argument(parser: argparse.ArgumentParser, note: str = "") -> None:
    parser.add_argument(
        "--projections-db",
        default=None,
        help="SQLite file of the projections (env REPLAYD_PROJECTIONS_DB, default"
        f" <db stem>-projections.db beside --db){note}",
    )


def add_dead_letters_command(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "dead-letters",
        help="list the records and events that were parked, or re-run them after an upgrade",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    list_text = (
        "the newest dead letters first (position, session, project, stage, at, error), then"
        " their count; only reads, the server may run"
    )
    listing = actions.add_parser("list", help=list_text, description=list_text)
    retry_text = (
        "re-run the sessions with dead letters through the code installed now, e.g. after an"
        " upgrade (stop the server first, as for rebuild: the projections are locked while it"
        " runs): what applies now is no longer parked, what still fails stays parked with its"
        " new error; prints how many remain. The result is what `replayd rebuild` would give,"
        " at the cost of reading the log once; the log is never written"
    )
    retry = actions.add_parser("retry", help=retry_text, description=retry_text)
    for sub in (listing, retry):
        _db_argument(sub)
        _projections_db_argument(sub)
        sub.add_argument(
            "--project-id", type=int, default=None, help="only this project (default: all)"
        )
    listing.add_argument(
        "--limit", type=int, default=50, help="at most this many lines (default 50)"
    )
    listing.set_defaults(handler=run_dead_letters_list)
    retry.set_defaults(handler=run_dead_letters_retry)


def _projections_config(args: argparse.Namespace, command: str) -> ServerConfig | None:
    # The same derivation as ``serve`` (ServerConfig), so both find the same projections file.
    try:
        return ServerConfig.from_env(db_path=args.db, projections_db_path=args.projections_db)
    except (ValueError, TypeError) as error:
        print(f"replayd {command}: bad configuration: {error}", file=sys.stderr)
        return None


def run_dead_letters_list(args: argparse.Namespace) -> int:
    from projections.retry import run_list_command

    config = _projections_config(args, "dead-letters list")
    if config is None:
        return 2
    return run_list_command(config.projections_db_path, args.project_id, args.limit)


def run_dead_letters_retry(args: argparse.Namespace) -> int:
    from projections.retry import run_retry_command

    config = _projections_config(args, "dead-letters retry")
    if config is None:
        return 2
    return run_retry_command(config.db_path, config.projections_db_path, args.project_id)


# -- entry point ---------------------------------------------------------------------------------

COMMANDS: list[Callable[..., None]] = [
    add_serve_command,
    add_project_command,
    add_api_key_command,
    add_rebuild_command,
    add_dead_letters_command,
]


def build_parser() -> argparse.ArgumentParser:
    """The parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="replayd", description="Session replay and product analytics backend."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
