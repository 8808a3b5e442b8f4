"""Server configuration: one attrs class, each setting from a ``REPLAYD_*`` variable and a CLI flag.

Precedence: command-line flag > environment variable > default. ``SETTINGS`` is the single table
that names every setting's variable, flag and help text; ``api.cli`` builds its flags from it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import PurePath

import attrs
from attrs import validators as v

from engine.asset_policy import AllowList
from engine.supervisor import DEFAULT_INACTIVITY_TIMEOUT_MS
from storage.assets import DEFAULT_MAX_ASSET_BYTES, DEFAULT_MAX_PROJECT_BYTES

_positive = v.gt(0)
MAX_WORKERS = 64
LOG_FORMATS = ("text", "json")  # runtime.logs.configure_logging


def default_projections_path(db_path: str | os.PathLike[str]) -> str:
    """Where the projections live when not configured: ``<db stem>-projections<suffix>`` beside it.

    ``./data/replayd.db`` -> ``./data/replayd-projections.db``. The one derivation used by
    ``serve`` and ``rebuild``, so both find the same file.
    """
    return _beside(db_path, "projections")


def default_images_path(db_path: str | os.PathLike[str]) -> str:
    """Where the mobile screenshots live when not configured: ``<db stem>-images<suffix>``."""
    return _beside(db_path, "images")


def default_assets_path(db_path: str | os.PathLike[str]) -> str:
    """Where the asset cache lives when not configured: ``<db stem>-assets<suffix>``."""
    return _beside(db_path, "assets")


def _beside(db_path: str | os.PathLike[str], name: str) -> str:
    path = PurePath(db_path)
    derived = path.with_name(f"{path.stem}-{name}{path.suffix or '.db'}")
    # PurePath drops a leading "./"; keep the caller's spelling of the directory.
    text = os.fspath(db_path)
    if text.startswith("./") and not os.fspath(derived).startswith("./"):
        return "./" + os.fspath(derived)
    return os.fspath(derived)


def _apart_from_the_log(instance: ServerConfig, attribute: attrs.Attribute, path: str) -> None:
    # In the log's file the projector would contend with the log writer again (one writer per
    # SQLite file): the very thing the second file exists to avoid.
    if os.path.abspath(path) == os.path.abspath(instance.db_path):
        raise ValueError("the projections' file must not be the log's file (db_path)")


def _images_apart(instance: ServerConfig, attribute: attrs.Attribute, path: str) -> None:
    # The same reason as for the projections: a 10 MB image commit must not hold the log writer
    # (or the projector) behind SQLite's one write lock per file.
    taken = {os.path.abspath(instance.db_path), os.path.abspath(instance.projections_db_path)}
    if os.path.abspath(path) in taken:
        raise ValueError("the images' file must not be the log's or the projections' file")


def _assets_apart(instance: ServerConfig, attribute: attrs.Attribute, path: str) -> None:
    # Fetched assets are written as they arrive: in the log's, the projections' or the images'
    # file they would queue behind (and hold up) those writers.
    taken = {instance.db_path, instance.projections_db_path, instance.images_db_path}
    if os.path.abspath(path) in {os.path.abspath(p) for p in taken}:
        raise ValueError("the asset cache's file must be a file of its own")


def _allow_list(instance: ServerConfig, attribute: attrs.Attribute, text: str) -> None:
    AllowList.parse(text)  # ValueError names the bad entry


def _shards_fit(instance: ServerConfig, attribute: attrs.Attribute, workers: int) -> None:
    # Ingest process i of ``--workers N`` generates session ids with shard ``shard + i``.
    if workers > 0 and instance.shard + workers - 1 > 0xFFFF:
        raise ValueError(f"shard + workers - 1 must be <= 65535 (shard {instance.shard})")


@attrs.frozen(slots=True, kw_only=True)
class ServerConfig:
    """Everything ``serve`` needs. Defaults work on a laptop."""

    db_path: str = "./data/replayd.db"
    # The projections (read models) get a file of their own: SQLite allows one writer per file,
    # and the log writer must never wait for the projector's transactions. Derived from db_path
    # unless set; the log and the catalog stay in db_path.
    projections_db_path: str = attrs.field(
        default=attrs.Factory(lambda self: default_projections_path(self.db_path), takes_self=True),
        validator=_apart_from_the_log,
    )
    # Mobile screenshots (storage.images), in a file of their own for the same reason.
    images_db_path: str = attrs.field(
        default=attrs.Factory(lambda self: default_images_path(self.db_path), takes_self=True),
        validator=_images_apart,
    )
    # The asset cache (runtime.asset_fetcher): off unless asked for; its own SQLite file.
    cache_assets: bool = False
    assets_db_path: str = attrs.field(
        default=attrs.Factory(lambda self: default_assets_path(self.db_path), takes_self=True),
        validator=_assets_apart,
    )
    # Hosts, addresses and networks the asset fetcher may reach although they are private,
    # loopback or link-local (engine.asset_policy), e.g. "127.0.0.1" or "10.1.0.0/16".
    asset_allow: str = attrs.field(default="", validator=_allow_list)
    asset_max_bytes: int = attrs.field(default=DEFAULT_MAX_ASSET_BYTES, validator=_positive)
    asset_project_bytes: int = attrs.field(default=DEFAULT_MAX_PROJECT_BYTES, validator=_positive)
    asset_timeout: float = attrs.field(default=10.0, validator=v.gt(0))
    # canvasEnabled in the start answer: the tracker then uploads canvas frames (api.ingest_canvas).
    record_canvas: bool = False
    host: str = "127.0.0.1"
    port: int = attrs.field(default=8080, validator=[v.ge(0), v.le(65535)])  # 0 = any free port
    # Session token lifetime when the project sets none (projects carry their own, 2 h by default).
    token_ttl_ms: int = attrs.field(default=7_200_000, validator=_positive)
    # Largest accepted batch body, as sent (compressed), unless the project sets its own.
    beacon_size_limit: int = attrs.field(default=1_000_000, validator=_positive)
    # Largest batch after gunzip: a guard against decompression bombs.
    decompressed_size_limit: int = attrs.field(default=10_000_000, validator=_positive)
    # Largest /v1/web/start body (the reference backend's JSON_SIZE_LIMIT).
    json_size_limit: int = attrs.field(default=131_072, validator=_positive)
    # Largest mobile screenshot upload (/v1/mobile/images), as sent: the reference's
    # FILE_SIZE_LIMIT. Its unpacked images may be twice that in all (storage.images).
    images_size_limit: int = attrs.field(default=10_000_000, validator=_positive)
    # Largest /3/* request (form or query), as sent: PICTURE and VIDEO events carry base64, and
    # 1000 events (the per-request cap of engine.v3_protocol) must fit (V3.md 9.5).
    v3_size_limit: int = attrs.field(default=5_000_000, validator=_positive)
    # A JSON or TOML file of extra v3 event types (engine.v3_protocol.load_registry); "" = the
    # built-in types only.
    v3_types: str = ""
    # The tracker gzips batches bigger than this.
    compression_threshold: int = attrs.field(default=20_000, validator=v.ge(0))
    # How long an upload may wait for room in the log queue before it is answered 503.
    append_wait_timeout: float = attrs.field(default=5.0, validator=v.gt(0))
    # Appends the log writer may hold queued before uploads wait (and, past the wait, get 503).
    log_queue_size: int = attrs.field(default=1024, validator=_positive)
    # Memory bounded in bytes (each bound admits one item alone however big it is):
    # payload bytes the log writer holds, queued or being written, before uploads wait;
    log_queue_bytes: int = attrs.field(default=64 * 2**20, validator=_positive)
    # payload bytes of one read of the log by the engine (one chunk of the supervisor);
    engine_read_bytes: int = attrs.field(default=16 * 2**20, validator=_positive)
    # payload bytes waiting in all the session actors' mailboxes together;
    mailbox_bytes: int = attrs.field(default=16 * 2**20, validator=_positive)
    # request bodies the ingest routes read and hold at once (a process-wide budget); an upload
    # waits for room up to append_wait_timeout, then gets 503.
    ingest_body_bytes: int = attrs.field(default=64 * 2**20, validator=_positive)
    # 1 = one stream of "player" batches (protocolVersion is not sent); 2 = the tracker's four
    # streams and the split "visual" first batch. Both kinds of traffic are accepted either way.
    protocol_version: int = attrs.field(default=1, validator=v.in_((1, 2)))
    # The flake-id shard of this process (distinct per process when several ingest processes run).
    shard: int = attrs.field(default=0, validator=[v.ge(0), v.le(0xFFFF)])
    # Take the client IP (for the country) from X-Forwarded-For: only behind a trusted proxy.
    trust_x_forwarded_for: bool = False
    # Seconds in-flight requests get to finish on shutdown.
    graceful_timeout: float = attrs.field(default=5.0, validator=v.ge(0))
    # 0: one process does everything. N > 0: N ingest processes serve HTTP and append to the log,
    # and the parent process runs the engine and the projections (runtime/worker.py).
    workers: int = attrs.field(default=0, validator=[v.ge(0), v.le(MAX_WORKERS), _shards_fit])
    # /readyz answers 503 once the engine is further behind the log than this (records, or
    # seconds of record time between the newest record and the projections' checkpoint).
    ready_max_lag_records: int = attrs.field(default=100_000, validator=v.ge(0))
    ready_max_lag_seconds: float = attrs.field(default=60.0, validator=v.ge(0))
    # A session ends after this much record time without a record of it.
    inactivity_timeout_ms: int = attrs.field(
        default=DEFAULT_INACTIVITY_TIMEOUT_MS, validator=_positive
    )
    # The data lifecycle (runtime.erasure): how often due delete-user jobs are looked for, and
    # how often expired sessions (a project's retention) are swept.
    lifecycle_interval_s: float = attrs.field(default=1.0, validator=v.gt(0))
    retention_interval_s: float = attrs.field(default=300.0, validator=v.gt(0))
    # One line per answered request (runtime.logs.AccessLog); off for very busy servers.
    access_log: bool = True
    # "text" for people, "json" (one object per line) for log shippers.
    log_format: str = attrs.field(default="text", validator=v.in_(LOG_FORMATS))
    # Count the SQL statements of every connection (storage.sqlite.STATEMENTS, in /metrics): a
    # diagnostic for the benchmark's statements per request; it costs a call per statement.
    count_sql_statements: bool = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> ServerConfig:
        """Defaults, then ``REPLAYD_*`` variables, then ``overrides`` (``None`` ones skipped)."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for setting in SETTINGS:
            raw = environ.get(setting.env)
            if raw is not None and raw != "":
                try:
                    values[setting.field] = setting.parse(raw)
                except ValueError as error:
                    raise ValueError(f"{setting.env}={raw!r}: {error}") from None
        values.update({k: val for k, val in overrides.items() if val is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def bind(self) -> str:
        """``host:port`` for the HTTP listener (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


def parse_bool(raw: str) -> bool:
    """``true/false`` (also 1/0, yes/no, on/off) of a boolean setting; ValueError otherwise."""
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


@attrs.frozen(slots=True)
class Setting:
    """How one ``ServerConfig`` field is set from outside."""

    field: str
    env: str
    flag: str
    parse: Callable[[str], object]
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("db_path", "REPLAYD_DB", "--db", str, "SQLite file of the log and the catalog"),
    Setting(
        "projections_db_path",
        "REPLAYD_PROJECTIONS_DB",
        "--projections-db",
        str,
        "SQLite file of the projections (default: <db stem>-projections.db beside --db)",
    ),
    Setting(
        "images_db_path",
        "REPLAYD_IMAGES_DB",
        "--images-db",
        str,
        "SQLite file of the mobile screenshots (default: <db stem>-images.db beside --db)",
    ),
    Setting(
        "cache_assets",
        "REPLAYD_CACHE_ASSETS",
        "--cache-assets",
        parse_bool,
        "fetch and keep the stylesheets, fonts and images recordings reference (asset cache)",
    ),
    Setting(
        "assets_db_path",
        "REPLAYD_ASSETS_DB",
        "--assets-db",
        str,
        "SQLite file of the asset cache (default: <db stem>-assets.db beside --db)",
    ),
    Setting(
        "asset_allow",
        "REPLAYD_ASSET_ALLOW",
        "--asset-allow",
        str,
        "comma-separated hosts, addresses or networks the asset cache may fetch from although"
        " private or loopback (e.g. 127.0.0.1)",
    ),
    Setting(
        "asset_max_bytes",
        "REPLAYD_ASSET_MAX_BYTES",
        "--asset-max-bytes",
        int,
        "largest asset the cache keeps, in bytes",
    ),
    Setting(
        "asset_project_bytes",
        "REPLAYD_ASSET_PROJECT_BYTES",
        "--asset-project-bytes",
        int,
        "bytes of cached assets per project at most",
    ),
    Setting(
        "asset_timeout",
        "REPLAYD_ASSET_TIMEOUT",
        "--asset-timeout",
        float,
        "seconds one asset fetch (every redirect included) may take",
    ),
    Setting(
        "record_canvas",
        "REPLAYD_RECORD_CANVAS",
        "--record-canvas",
        parse_bool,
        "ask the tracker to record canvases as images (canvasEnabled; POST /v1/web/images)",
    ),
    Setting("host", "REPLAYD_HOST", "--host", str, "address to listen on"),
    Setting("port", "REPLAYD_PORT", "--port", int, "port to listen on (0 = any free port)"),
    Setting(
        "token_ttl_ms",
        "REPLAYD_TOKEN_TTL_MS",
        "--token-ttl-ms",
        int,
        "session token lifetime in ms when the project sets none",
    ),
    Setting(
        "beacon_size_limit",
        "REPLAYD_BEACON_SIZE_LIMIT",
        "--beacon-size-limit",
        int,
        "largest batch body in bytes, as sent",
    ),
    Setting(
        "decompressed_size_limit",
        "REPLAYD_DECOMPRESSED_SIZE_LIMIT",
        "--decompressed-size-limit",
        int,
        "largest batch in bytes after gunzip",
    ),
    Setting(
        "json_size_limit",
        "REPLAYD_JSON_SIZE_LIMIT",
        "--json-size-limit",
        int,
        "largest /v1/web/start body in bytes",
    ),
    Setting(
        "images_size_limit",
        "REPLAYD_IMAGES_SIZE_LIMIT",
        "--images-size-limit",
        int,
        "largest mobile screenshot upload in bytes, as sent",
    ),
    Setting(
        "v3_size_limit",
        "REPLAYD_V3_SIZE_LIMIT",
        "--v3-size-limit",
        int,
        "largest /3/* request of the v3 events API in bytes",
    ),
    Setting(
        "v3_types",
        "REPLAYD_V3_TYPES",
        "--v3-types",
        str,
        "JSON or TOML file of extra v3 event types (categories, required entities)",
    ),
    Setting(
        "compression_threshold",
        "REPLAYD_COMPRESSION_THRESHOLD",
        "--compression-threshold",
        int,
        "the tracker gzips batches larger than this many bytes",
    ),
    Setting(
        "append_wait_timeout",
        "REPLAYD_APPEND_WAIT_TIMEOUT",
        "--append-wait-timeout",
        float,
        "seconds an upload waits for room (in memory, then in the log) before a 503",
    ),
    Setting(
        "log_queue_size",
        "REPLAYD_LOG_QUEUE_SIZE",
        "--log-queue-size",
        int,
        "appends queued for the log writer before uploads have to wait",
    ),
    Setting(
        "log_queue_bytes",
        "REPLAYD_LOG_QUEUE_BYTES",
        "--log-queue-bytes",
        int,
        "payload bytes queued for (or being written by) the log writer before uploads wait",
    ),
    Setting(
        "engine_read_bytes",
        "REPLAYD_ENGINE_READ_BYTES",
        "--engine-read-bytes",
        int,
        "payload bytes the engine reads from the log at once (at least one record)",
    ),
    Setting(
        "mailbox_bytes",
        "REPLAYD_MAILBOX_BYTES",
        "--mailbox-bytes",
        int,
        "payload bytes waiting in all session actors' mailboxes together",
    ),
    Setting(
        "ingest_body_bytes",
        "REPLAYD_INGEST_BODY_BYTES",
        "--ingest-body-bytes",
        int,
        "request bodies the ingest routes hold at once, in bytes; uploads wait for room",
    ),
    Setting(
        "protocol_version",
        "REPLAYD_PROTOCOL_VERSION",
        "--protocol-version",
        int,
        "tracker protocol to ask for: 1 (one stream) or 2 (four streams)",
    ),
    Setting("shard", "REPLAYD_SHARD", "--shard", int, "flake-id shard of this process (0-65535)"),
    Setting(
        "trust_x_forwarded_for",
        "REPLAYD_TRUST_X_FORWARDED_FOR",
        "--trust-x-forwarded-for",
        parse_bool,
        "take the client IP from X-Forwarded-For (behind a trusted proxy only)",
    ),
    Setting(
        "graceful_timeout",
        "REPLAYD_GRACEFUL_TIMEOUT",
        "--graceful-timeout",
        float,
        "seconds in-flight requests get to finish on shutdown",
    ),
    Setting(
        "workers",
        "REPLAYD_WORKERS",
        "--workers",
        int,
        "ingest processes; 0 = one process for everything, N = N HTTP processes + one engine",
    ),
    Setting(
        "ready_max_lag_records",
        "REPLAYD_READY_MAX_LAG_RECORDS",
        "--ready-max-lag-records",
        int,
        "/readyz fails once the engine is more records than this behind the log",
    ),
    Setting(
        "ready_max_lag_seconds",
        "REPLAYD_READY_MAX_LAG_SECONDS",
        "--ready-max-lag-seconds",
        float,
        "/readyz fails once the engine is more seconds of record time than this behind the log",
    ),
    Setting(
        "inactivity_timeout_ms",
        "REPLAYD_INACTIVITY_TIMEOUT_MS",
        "--inactivity-timeout-ms",
        int,
        "a session ends after this many ms without a record of it (the tracker's heartbeat is"
        " 2 min)",
    ),
    Setting(
        "lifecycle_interval_s",
        "REPLAYD_LIFECYCLE_INTERVAL_S",
        "--lifecycle-interval-s",
        float,
        "seconds between looks for due delete-user jobs",
    ),
    Setting(
        "retention_interval_s",
        "REPLAYD_RETENTION_INTERVAL_S",
        "--retention-interval-s",
        float,
        "seconds between sweeps that erase sessions older than their project's retention",
    ),
    Setting(
        "access_log",
        "REPLAYD_ACCESS_LOG",
        "--access-log",
        parse_bool,
        "one log line per answered request (method, path, status, bytes, ms, client)",
    ),
    Setting(
        "log_format",
        "REPLAYD_LOG_FORMAT",
        "--log-format",
        str,
        "text, or json: one object per line (time, level, logger, message and fields)",
    ),
    Setting(
        "count_sql_statements",
        "REPLAYD_COUNT_SQL_STATEMENTS",
        "--count-sql-statements",
        parse_bool,
        "count the SQL statements of each connection, reported in /metrics (a diagnostic)",
    ),
)
