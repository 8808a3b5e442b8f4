"""How the runtime is handed what it serves: an assembly found by its name in a child process."""

from __future__ import annotations

import pytest

from api.config import ServerConfig
from api.surfaces import ASSEMBLY
from runtime.assembly import Assembly, load_assembly
from runtime.pool import child_config

# An Assembly stored under a name other than the one it carries (what a child would not find).
MISNAMED = Assembly(name="elsewhere:X", config_type=ServerConfig, build_host=ASSEMBLY.build_host)


def test_an_ingest_process_finds_the_assembly_by_its_name() -> None:
    assert load_assembly(ASSEMBLY.name) is ASSEMBLY
    assert ASSEMBLY.name == "api.surfaces:ASSEMBLY"


def test_a_name_that_does_not_name_an_assembly_is_refused() -> None:
    with pytest.raises(ValueError, match="does not name an Assembly"):
        load_assembly("api.surfaces:SURFACES")  # exists, but is no Assembly
    with pytest.raises(ValueError, match="does not name an Assembly"):
        load_assembly(f"{__name__}:MISNAMED")  # an Assembly, under another name than its own
    with pytest.raises(AttributeError):
        load_assembly("api.surfaces:NOTHING")


def test_the_settings_cross_to_a_child_as_their_own_class() -> None:
    config = ServerConfig(db_path="x.db", workers=2, shard=5, graceful_timeout=1.5)
    child = child_config(config, 1)
    assert type(child) is ServerConfig
    assert child == ServerConfig(db_path="x.db", workers=0, shard=6, graceful_timeout=1.5)
    assert ASSEMBLY.config_type(**{"db_path": "x.db"}) == ServerConfig(db_path="x.db")
