"""The ``replayd`` command line.

Contract (scripts rely on it):

* ``replayd serve [--db PATH] [--host H] [--port P] ...`` runs the server; on the first start of a
  database (no project yet) it creates a default project and an organization API key once it
  listens, and prints both with the tracker snippet (a failed start creates neither).
  ``--workers N`` runs N ingest processes (``runtime.worker``); it exits with status 1 if one of
  them dies.
* ``replayd project create NAME [--db PATH] [--platform web|ios|android]`` and ``replayd api-key
  create [--db PATH]`` print the new key ALONE on the LAST line of stdout; ``replayd v3 app create
  NAME --project KEY [--db PATH]`` prints ``<app id> <secret>`` alone on the last line.
* ``replayd user create EMAIL [--db PATH] [--password-stdin] [--create]`` makes a dashboard user;
  without ``--password-stdin`` it generates a password and prints it ALONE on the LAST line.
  ``replayd user list`` prints one user a line (id, organization, created, email, tab-separated);
  ``replayd user delete EMAIL`` deletes one and signs it out.
* ``replayd project list`` prints one project a line: id, key, platform, name, tab-separated; a
  mobile project adds ``projectID=<n>``, the encoded id an old iOS SDK (``/v1/ios/start``) takes.
* Only ``serve`` creates a database that does not exist; every other command refuses with "no
  database at PATH" (``--create`` on the two ``create`` commands makes one).
* A failure is one line on stderr (``replayd COMMAND: what went wrong (the fix)``) and a non-zero
  exit: 2 for bad usage or a bad setting, 1 for everything else.
* Every flag also reads its ``REPLAYD_*`` variable (``REPLAYD_DB``, ``REPLAYD_HOST``, ...).

Adding a subcommand: write ``def add_<name>_command(subparsers) -> None`` that adds its parser and
``set_defaults(handler=<function taking the argparse.Namespace, returning an exit code>)``, and
append it to ``COMMANDS`` below. The function may live in its own layer (e.g. projections/); this
module is the only place that imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.metadata
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import NoReturn, TypeVar

import attrs
import trio

from api.config import SETTINGS, ServerConfig, Setting, parse_bool
from engine.mobile_start import MOBILE_PLATFORMS, encode_project_id
from storage.catalog import DEFAULT_ORG_ID, PLATFORMS, Catalog, Project, UserExists
from storage.v3_catalog import V3Catalog

# argparse has no public name for the object add_subparsers() returns.
SubParsers = argparse._SubParsersAction


class Parser(argparse.ArgumentParser):
    """Every parser of ``replayd`` (subparsers inherit the class): no prefix matching, and usage
    errors in one line on stderr with the way to more help."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        # Prefix matching would take `serve --prot 9` for --protocol-version, and a flag added
        # later could silently change what an old abbreviation means.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def fail(command: str, message: str, code: int = 1) -> int:
    """Print ``message`` as the one line of a failed ``replayd COMMAND``; returns ``code``."""
    print(f"replayd {command}: {message}", file=sys.stderr, flush=True)
    return code


def _db_argument(parser: argparse.ArgumentParser, *, may_create: bool = False) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help="SQLite file of the log and the catalog (env REPLAYD_DB, default ./data/replayd.db)",
    )
    if may_create:
        parser.add_argument(
            "--create",
            action="store_true",
            help="create the database if there is none at --db (else that is an error)",
        )


def _db_path(args: argparse.Namespace) -> str:
    return ServerConfig.from_env(db_path=args.db).db_path


def existing_db(args: argparse.Namespace, command: str) -> str | None:
    """The database path of ``args``, or None (after printing why) when there is no database.

    Only ``serve`` creates a database unasked (the first command of the README must work on a
    fresh machine); elsewhere a typo in --db must not silently start a new, empty one.
    """
    path = _db_path(args)
    if os.path.exists(path) or getattr(args, "create", False):
        return path
    hint = f"create it with `replayd serve --db {path}`"
    if hasattr(args, "create"):
        hint += " or pass --create"
    fail(command, f"no database at {path} ({hint})")
    return None


def config_error_text(error: Exception) -> str:
    """A ``ServerConfig`` error as one line that names the flag, not the attrs field."""
    # attrs validators raise ValueError(message, attribute, bound, value): str() of that is a
    # tuple repr; the message alone says it all.
    text = str(error.args[0]) if error.args else str(error)
    for setting in SETTINGS:
        text = text.replace(f"'{setting.field}'", f"{setting.flag} (env {setting.env})")
    return text


_KINDS: dict[object, str] = {int: "an integer", float: "a number", parse_bool: "true or false"}


def _flag_type(setting: Setting) -> Callable[[str], object]:
    def parse(raw: str) -> object:
        try:
            return setting.parse(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{raw!r} is not {_KINDS.get(setting.parse, 'valid')}"
            ) from None

    return parse


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a level (one of {', '.join(LOG_LEVELS).lower()})"
        )
    return level


# -- serve ---------------------------------------------------------------------------------------


def add_serve_command(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("serve", help="run the server")
    for setting in SETTINGS:
        default_text = getattr(ServerConfig(), setting.field)
        help_text = f"{setting.help} (env {setting.env}, default {default_text})"
        if setting.parse is parse_bool:
            # A switch (`--trust-x-forwarded-for`), still taking a value as documented
            # (`--trust-x-forwarded-for false`), with a --no- form.
            parser.add_argument(
                setting.flag,
                dest=setting.field,
                type=_flag_type(setting),
                nargs="?",
                const=True,
                default=None,
                metavar="true|false",
                help=help_text,
            )
            parser.add_argument(
                f"--no-{setting.flag.removeprefix('--')}",
                dest=setting.field,
                action="store_const",
                const=False,
                help=f"the same as {setting.flag} false",
            )
        else:
            parser.add_argument(
                setting.flag,
                dest=setting.field,
                type=_flag_type(setting),
                default=None,
                help=help_text,
            )
    parser.add_argument(
        "--log-level",
        type=_log_level,
        default=os.environ.get("REPLAYD_LOG_LEVEL", "INFO"),
        help="logging level: debug, info, warning, error or critical"
        " (env REPLAYD_LOG_LEVEL, default info)",
    )
    parser.set_defaults(handler=run_serve)


@attrs.frozen(slots=True)
class FirstStart:
    """What the first ``serve`` of a database created (printed once the port is known)."""

    project: Project
    api_key: str


def bootstrap(catalog: Catalog) -> FirstStart | None:
    """On a catalog without projects: create the default project and an organization API key.

    Called once the server listens, by the step that prints them: a failed start (port in use)
    must not create a key that nobody ever sees.
    """
    if catalog.list_projects():
        return None
    project = catalog.create_project("default")
    api_key = catalog.create_api_key(label="created by the first serve")
    return FirstStart(project, api_key)


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
    overrides = {s.field: getattr(args, s.field) for s in SETTINGS}
    try:
        config = ServerConfig.from_env(**overrides)
    except (ValueError, TypeError) as error:
        return fail("serve", config_error_text(error), 2)
    from runtime.logs import configure_logging

    configure_logging(args.log_level, config.log_format)
    from projections.pipeline import ProjectionsBusy, check_lock_free

    try:
        # At once, before the slow start-up: a second server on these files would only fail
        # once its projector gives up waiting for the lock.
        check_lock_free(config.projections_db_path)
    except ProjectionsBusy as error:
        return fail("serve", str(error))

    async def main() -> None:
        # Imported late: `replayd project ...` needs no web stack.
        from api.surfaces import ASSEMBLY
        from runtime.process import serve

        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(serve, config, assembly=ASSEMBLY))
            first = await trio.to_thread.run_sync(bootstrap, server.catalog)
            if first is not None:
                host = server.host if server.host not in ("0.0.0.0", "::") else "localhost"
                host = f"[{host}]" if ":" in host else host
                _print_first_start(first, f"http://{host}:{server.port}")
            elif await trio.to_thread.run_sync(server.catalog.api_key_count) == 0:
                print(
                    "No organization API key yet (the public API needs one): create one with"
                    f" `replayd api-key create --db {config.db_path}`"
                )
            processes = f" ({config.workers} ingest processes)" if config.workers else ""
            print(f"replayd serving {config.db_path} on {server.url}{processes}", flush=True)

    try:
        trio.run(main)
    except BaseException as error:
        from runtime.pool import WorkerFailed

        failure = _find_error(error, WorkerFailed)
        if failure is not None:
            # A dead ingest process takes the whole server down (no half-running server).
            return fail("serve", f"{failure}; the server stopped")
        refused = _find_error(error, OSError)
        if refused is not None and refused.errno in _BIND_ERRNOS:
            return fail("serve", _bind_failure_text(config, refused))
        busy = _find_error(error, ProjectionsBusy)
        if busy is not None:  # a server that started after the check above
            return fail("serve", str(busy))
        raise
    return 0


_BIND_ERRNOS = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)

E = TypeVar("E", bound=BaseException)


def _find_error(error: BaseException, kind: type[E]) -> E | None:
    """The first ``kind`` inside ``error`` (trio wraps task errors in exception groups)."""
    if isinstance(error, kind):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _find_error(inner, kind)
            if found is not None:
                return found
    return None


def _bind_failure_text(config: ServerConfig, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"port {config.port} on {config.host} is in use (another replayd?); pass --port"
    if error.errno == errno.EACCES:
        return f"not allowed to listen on port {config.port} (below 1024 needs root); pass --port"
    return f"cannot listen on {config.host}: {error.strerror}; pass --host"


# -- project / api-key ---------------------------------------------------------------------------


def add_project_command(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("project", help="manage projects")
    actions = parser.add_subparsers(dest="action", required=True, help="what to do")
    create = actions.add_parser("create", help="create a project; prints its key on the last line")
    create.add_argument("name", help="the project's name (shown in the API)")
    create.add_argument(
        "--platform", choices=PLATFORMS, default="web", help="what it tracks (default web)"
    )
    _db_argument(create, may_create=True)
    create.set_defaults(handler=run_project_create)
    listing = actions.add_parser("list", help="list projects")
    _db_argument(listing)
    listing.set_defaults(handler=run_project_list)
    delete_text = (
        "delete a project that has recorded nothing (stop the server first); a project with"
        " recorded sessions is refused until the data lifecycle can erase them"
    )
    delete = actions.add_parser("delete", help=delete_text, description=delete_text)
    delete.add_argument("key", help="the project's key (see `replayd project list`)")
    _db_argument(delete)
    delete.set_defaults(handler=run_project_delete)


def run_project_create(args: argparse.Namespace) -> int:
    db_path = existing_db(args, "project create")
    if db_path is None:
        return 1
    with contextlib.closing(Catalog.open(db_path)) as catalog:
        project = catalog.create_project(args.name, args.platform)
    print(f"created project {project.project_id} {project.name!r} ({_platform_note(project)})")
    print(project.project_key)
    return 0


def _platform_note(project: Project) -> str:
    """The platform, and for a mobile project the number an old iOS SDK is configured with."""
    if project.platform not in MOBILE_PLATFORMS:
        return project.platform
    return f"{project.platform}, old iOS SDK projectID {encode_project_id(project.project_id)}"


def run_project_list(args: argparse.Namespace) -> int:
    db_path = existing_db(args, "project list")
    if db_path is None:
        return 1
    with contextlib.closing(Catalog.open(db_path)) as catalog:
        projects = catalog.list_projects()
    for project in projects:
        state = "" if project.active else " (inactive)"
        line = f"{project.project_id}\t{project.project_key}\t{project.platform}\t{project.name}"
        if project.platform in MOBILE_PLATFORMS:
            # What /v1/ios/start takes as projectID (the old README's encoded number).
            line += f"\tprojectID={encode_project_id(project.project_id)}"
        print(line + state)
    return 0


def run_project_delete(args: argparse.Namespace) -> int:
    from projections.pipeline import ProjectionsBusy, check_lock_free
    from storage.log import LogReader

    db_path = existing_db(args, "project delete")
    if db_path is None:
        return 1
    try:
        # A running server caches its projects and would keep recording this one.
        check_lock_free(ServerConfig.from_env(db_path=db_path).projections_db_path)
    except ProjectionsBusy as error:
        return fail("project delete", str(error))
    with contextlib.closing(Catalog.open(db_path)) as catalog:
        project = catalog.get_project_by_key(args.key)
        if project is None:
            return fail("project delete", f"no project with key {args.key} (see `project list`)")
        with LogReader(db_path) as reader:
            recorded = reader.project_has_records(project.project_id)
        if recorded:
            # Deleting the row alone would orphan its sessions in the log and the projections;
            # erasing them takes the data lifecycle (EventLog.erase plus the projections), which
            # no command drives yet.
            return fail(
                "project delete",
                f"project {project.project_id} {project.name!r} has recorded sessions; deleting"
                " their data is not supported yet, so the project stays",
            )
        catalog.delete_project(project.project_id)
    print(f"deleted project {project.project_id} {project.name!r}")
    return 0


def add_api_key_command(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("api-key", help="manage organization API keys")
    actions = parser.add_subparsers(dest="action", required=True, help="what to do")
    create = actions.add_parser("create", help="create an API key; prints it on the last line")
    create.add_argument("--label", default="", help="a note stored with the key")
    _db_argument(create, may_create=True)
    create.set_defaults(handler=run_api_key_create)
    list_text = (
        "list the API keys: id, created (UTC), label. The id is the start of the key's SHA-256:"
        " only that hash is stored, so the key itself cannot be shown again"
    )
    listing = actions.add_parser("list", help=list_text, description=list_text)
    _db_argument(listing)
    listing.set_defaults(handler=run_api_key_list)
    revoke = actions.add_parser(
        "revoke", help="delete an API key; a running server refuses it within seconds"
    )
    revoke.add_argument("key", help="the key itself, or its id from `replayd api-key list`")
    _db_argument(revoke)
    revoke.set_defaults(handler=run_api_key_revoke)


def run_api_key_create(args: argparse.Namespace) -> int:
    db_path = existing_db(args, "api-key create")
    if db_path is None:
        return 1
    with contextlib.closing(Catalog.open(db_path)) as catalog:
        key = catalog.create_api_key(label=args.label)
    print("created an organization API key (shown once; only its hash is stored):")
    print(key)
    return 0


def _utc(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def run_api_key_list(args: argparse.Namespace) -> int:
    db_path = existing_db(args, "api-key list")
    if db_path is None:
        return 1
    with contextlib.closing(Catalog.open(db_path)) as catalog:
        keys = catalog.list_api_keys()
    print("id\tcreated\tlabel")
    for key in keys:
        print(f"{key.key_id}\t{_utc(key.created_at_ms)}\t{key.label}")
    print(f"{len(keys)} API key(s)")
    return 0


def run_api_key_revoke(args: argparse.Namespace) -> int:
    db_path = existing_db(args, "api-key revoke")
    if db_path is None:
        return 1
    with contextlib.closing(Catalog.open(db_path)) as catalog:
        try:
            revoked = catalog.revoke_api_key(args.key)
        except ValueError as error:
            return fail("api-key revoke", str(error))
    if revoked is None:
        return fail("api-key revoke", f"no API key {args.key} (see `replayd api-key list`)")
    print(f"revoked API key {revoked.key_id} (created {_utc(revoked.created_at_ms)} UTC)")
    return 0


# -- dashboard users ----------------------------------------------------------------------------

GENERATED_PASSWORD_BYTES = 18  # 24 URL-safe characters


def add_user_command(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("user", help="manage dashboard users")
    actions = parser.add_subparsers(dest="action", required=True, help="what to do")
    create = actions.add_parser(
        "create",
        help="create a dashboard user; without --password-stdin a generated password is printed"
        " alone on the last line",
    )
    create.add_argument("email", help="the user's email (unique whatever its case)")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin instead of generating one",
    )
    create.add_argument(
        "--org-id", type=int, default=DEFAULT_ORG_ID, help="the user's organization (default 1)"
    )
    _db_argument(create, may_create=True)
    create.set_defaults(handler=run_user_create)
    listing = actions.add_parser("list", help="list dashboard users")
    _db_argument(listing)
    listing.set_defaults(handler=run_user_list)
    delete = actions.add_parser("delete", help="delete a dashboard user (signs it out)")
    delete.add_argument("email", help="the user's email")
    _db_argument(delete)
    delete.set_defaults(handler=run_user_delete)


def run_user_create(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            return fail("user create", "no password on stdin", 2)
    else:
        password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    db_path = existing_db(args, "user create")
    if db_path is None:
        return 1
    with contextlib.closing(Catalog.open(db_path)) as catalog:
        if catalog.organization_name(args.org_id) is None:
            return fail("user create", f"no organization {args.org_id}", 2)
        try:
            user = catalog.create_user(args.email, password, org_id=args.org_id)
        except UserExists:
            return fail("user create", f"a user {args.email} exists already")
        except ValueError as error:
            return fail("user create", str(error), 2)
    print(f"created dashboard user {user.user_id} {user.email} (organization {user.org_id})")
    if not args.password_stdin:
        print("password (shown once; only its hash is stored):")
        print(password)
    return 0


def run_user_list(args: argparse.Namespace) -> int:
    db_path = existing_db(args, "user list")
    if db_path is None:
        return 1
    with contextlib.closing(Catalog.open(db_path)) as catalog:
        users = catalog.list_users()
    for user in users:
        print(f"{user.user_id}\t{user.org_id}\t{_utc(user.created_at_ms)}\t{user.email}")
    return 0


def run_user_delete(args: argparse.Namespace) -> int:
    db_path = existing_db(args, "user delete")
    if db_path is None:
        return 1
    with contextlib.closing(Catalog.open(db_path)) as catalog:
        user = catalog.delete_user(args.email)
    if user is None:
        return fail("user delete", f"no user {args.email} (see `replayd user list`)")
    print(f"deleted dashboard user {user.user_id} {user.email}")
    return 0


# -- v3 apps -------------------------------------------------------------------------------------


def add_v3_command(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("v3", help="manage apps of the version 3 events API (/3/*)")
    objects = parser.add_subparsers(dest="object", required=True, help="what to manage")
    app = objects.add_parser("app", help="v3 apps").add_subparsers(
        dest="action", required=True, help="what to do"
    )
    create = app.add_parser(
        "create", help="register an app; prints `<app id> <secret>` on the last line"
    )
    create.add_argument("name", help="the app's name")
    create.add_argument("--project", required=True, help="the key of the app's project")
    _db_argument(create)
    create.set_defaults(handler=run_v3_app_create)


def run_v3_app_create(args: argparse.Namespace) -> int:
    db_path = existing_db(args, "v3 app create")
    if db_path is None:
        return 1
    with contextlib.closing(Catalog.open(db_path)) as catalog:
        project = catalog.get_project_by_key(args.project)
    if project is None:
        return fail("v3 app create", f"no project with key {args.project} (see `project list`)")
    with contextlib.closing(V3Catalog.open(db_path)) as v3:
        app = v3.create_app(args.name, project.project_id)
    print(f"created v3 app {app.aid} {app.name!r} of project {project.project_id} (aid secret):")
    print(f"{app.aid} {app.secret}")
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
    if existing_db(args, "rebuild") is None:
        return 1
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
    actions = parser.add_subparsers(dest="action", required=True, help="what to do")
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
        config = ServerConfig.from_env(db_path=args.db, projections_db_path=args.projections_db)
    except (ValueError, TypeError) as error:
        fail(command, config_error_text(error))
        return None
    return config


def run_dead_letters_list(args: argparse.Namespace) -> int:
    from projections.retry import run_list_command

    config = _projections_config(args, "dead-letters list")
    if config is None:
        return 2
    if existing_db(args, "dead-letters list") is None:
        return 1
    return run_list_command(config.projections_db_path, args.project_id, args.limit)


def run_dead_letters_retry(args: argparse.Namespace) -> int:
    from projections.retry import run_retry_command

    config = _projections_config(args, "dead-letters retry")
    if config is None:
        return 2
    if existing_db(args, "dead-letters retry") is None:
        return 1
    return run_retry_command(config.db_path, config.projections_db_path, args.project_id)


# -- backup, export, restore ---------------------------------------------------------------------


def add_backup_commands(subparsers: SubParsers) -> None:
    backup_text = (
        "copy every SQLite file of the database (log and catalog, projections, images) into DIR"
        " under the same file names, with SQLite's online backup API: the server may run"
    )
    restore_text = (
        "copy a backup made by `replayd backup` over the database, then rebuild the projections"
        " from the restored log (stop the server first)"
    )
    for name, text, directory, handler in (
        ("backup", backup_text, "where the copies go (created if missing)", run_backup),
        ("restore", restore_text, "the directory `replayd backup` wrote", run_restore),
    ):
        parser = subparsers.add_parser(name, help=text, description=text)
        parser.add_argument("directory", metavar="DIR", help=directory)
        _db_argument(parser)
        parser.set_defaults(handler=handler)

    from api.export import FORMATS

    export_text = (
        'write a project\'s sessions and their events as NDJSON: a {"session": ...} line, then'
        ' one {"event": ...} line per event (the objects of the public API v1); the server'
        " may run"
    )
    export = subparsers.add_parser("export", help=export_text, description=export_text)
    export.add_argument("--project", required=True, metavar="KEY", help="the project's key")
    export.add_argument(
        "--since", default=None, help="only sessions started then or later: epoch ms or ISO date"
    )
    export.add_argument("--format", choices=FORMATS, default="ndjson", help="only ndjson")
    export.add_argument("--output", default=None, metavar="FILE", help="default: stdout")
    _db_argument(export)
    export.set_defaults(handler=run_export)


def _database_files(args: argparse.Namespace, command: str) -> tuple[ServerConfig | None, int]:
    """The configuration naming the database's files, or None and the exit code."""
    try:
        config = ServerConfig.from_env(db_path=args.db)
    except (ValueError, TypeError) as error:
        fail(command, config_error_text(error))
        return None, 2
    return config, 0


def run_backup(args: argparse.Namespace) -> int:
    from runtime.backup import run_backup as backup

    if existing_db(args, "backup") is None:  # the one-line refusal of every other command
        return 1
    return _run_on_files(args, "backup", backup)


def run_restore(args: argparse.Namespace) -> int:
    from runtime.backup import run_restore as restore

    return _run_on_files(args, "restore", restore)


def _run_on_files(args: argparse.Namespace, command: str, run: Callable[..., int]) -> int:
    from runtime.backup import DatabaseFiles

    config, code = _database_files(args, command)
    if config is None:
        return code
    files = DatabaseFiles(config.db_path, config.projections_db_path, config.images_db_path)
    return run(args.directory, files)


def run_export(args: argparse.Namespace) -> int:
    from api.export import parse_since
    from api.export import run_command as export

    config, code = _database_files(args, "export")
    if config is None:
        return code
    if existing_db(args, "export") is None:
        return 1
    try:
        since = 0 if args.since is None else parse_since(args.since)
    except ValueError as error:
        return fail("export", str(error), 2)
    return export(config.db_path, config.projections_db_path, args.project, since, args.output)


# -- entry point ---------------------------------------------------------------------------------

COMMANDS: list[Callable[..., None]] = [
    add_serve_command,
    add_project_command,
    add_api_key_command,
    add_user_command,
    add_v3_command,
    add_rebuild_command,
    add_dead_letters_command,
    add_backup_commands,
]


def version() -> str:
    """The installed replayd's version (pyproject's), or "unknown" when run from a bare tree."""
    try:
        return importlib.metadata.version("replayd")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The parser with every registered subcommand."""
    parser = Parser(prog="replayd", description="Session replay and product analytics backend.")
    parser.add_argument(
        "--version", action="version", version=f"replayd {version()}", help="print the version"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, help="the command")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
