"""ServerConfig: defaults, REPLAYD_* variables, overrides, validation."""

from __future__ import annotations

import pytest

from api.config import SETTINGS, ServerConfig


def test_defaults_work_on_a_laptop() -> None:
    config = ServerConfig.from_env({})
    assert (config.db_path, config.host, config.port) == ("./data/replayd.db", "127.0.0.1", 8080)
    assert (config.beacon_size_limit, config.json_size_limit, config.compression_threshold) == (
        1_000_000,
        131_072,
        20_000,
    )
    assert config.token_ttl_ms == 7_200_000
    assert config.protocol_version == 1
    assert config.bind == "127.0.0.1:8080"


def test_environment_then_overrides() -> None:
    env = {
        "REPLAYD_DB": "/srv/r.db",
        "REPLAYD_PORT": "9000",
        "REPLAYD_PROTOCOL_VERSION": "2",
        "REPLAYD_TRUST_X_FORWARDED_FOR": "yes",
        "REPLAYD_APPEND_WAIT_TIMEOUT": "2.5",
        "REPLAYD_HOST": "",
    }
    config = ServerConfig.from_env(env, port=9001, host=None)
    assert (config.db_path, config.port, config.protocol_version) == ("/srv/r.db", 9001, 2)
    assert config.trust_x_forwarded_for is True
    assert config.append_wait_timeout == 2.5
    assert config.host == "127.0.0.1"  # empty variable and None override both mean "default"
    assert ServerConfig(host="::1", port=1).bind == "[::1]:1"


def test_bad_values_are_refused_with_the_variable_named() -> None:
    with pytest.raises(ValueError, match="REPLAYD_PORT"):
        ServerConfig.from_env({"REPLAYD_PORT": "eighty"})
    with pytest.raises(ValueError):
        ServerConfig.from_env({"REPLAYD_PROTOCOL_VERSION": "3"})
    with pytest.raises(ValueError):
        ServerConfig(beacon_size_limit=0)


def test_every_field_has_exactly_one_setting() -> None:
    import attrs

    assert sorted(s.field for s in SETTINGS) == sorted(f.name for f in attrs.fields(ServerConfig))
    assert all(s.env.startswith("REPLAYD_") and s.flag.startswith("--") for s in SETTINGS)


def test_projections_file_is_derived_from_the_database_unless_set() -> None:
    from api.config import default_projections_path

    assert ServerConfig().projections_db_path == "./data/replayd-projections.db"
    assert default_projections_path("/srv/r.db") == "/srv/r-projections.db"
    assert default_projections_path("data/log") == "data/log-projections.db"
    derived = ServerConfig.from_env({"REPLAYD_DB": "/srv/r.db"})
    assert derived.projections_db_path == "/srv/r-projections.db"
    env = {"REPLAYD_DB": "/srv/r.db", "REPLAYD_PROJECTIONS_DB": "/fast/p.db"}
    assert ServerConfig.from_env(env).projections_db_path == "/fast/p.db"
    assert ServerConfig.from_env(env, projections_db_path="/x.db").projections_db_path == "/x.db"
    with pytest.raises(ValueError, match="must not be the log's file"):
        ServerConfig(db_path="a/r.db", projections_db_path="a/../a/r.db")


def test_readiness_lag_thresholds_from_the_environment() -> None:
    defaults = ServerConfig.from_env({})
    assert (defaults.ready_max_lag_records, defaults.ready_max_lag_seconds) == (100_000, 60.0)
    env = {"REPLAYD_READY_MAX_LAG_RECORDS": "0", "REPLAYD_READY_MAX_LAG_SECONDS": "2.5"}
    config = ServerConfig.from_env(env)
    assert (config.ready_max_lag_records, config.ready_max_lag_seconds) == (0, 2.5)
    with pytest.raises(ValueError):
        ServerConfig(ready_max_lag_seconds=-1)
