"""The catalog: projects, hashed organization API keys, the token secret, the project cache."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import pytest

from storage.catalog import _NEGATIVE_KEY_MAX_CHARS, _NEGATIVE_MAX, Catalog


@pytest.fixture
def catalog(fresh_db_path: Path):
    catalog = Catalog.open(fresh_db_path)
    yield catalog
    catalog.close()


def test_projects_are_created_listed_and_found(catalog: Catalog) -> None:
    shop = catalog.create_project("shop")
    app = catalog.create_project("app", "ios", sample_rate=50)
    assert len(shop.project_key) == 20 and shop.project_key.isalnum()
    assert shop.project_key != app.project_key
    assert (shop.platform, shop.org_id, shop.active, shop.sample_rate) == ("web", 1, True, 100)
    assert shop.max_session_duration_ms == 0 and shop.beacon_size == 0  # 0 = server setting
    assert catalog.list_projects() == [shop, app]
    assert catalog.list_projects(org_id=2) == []
    assert catalog.get_project_by_key(app.project_key) == app
    assert catalog.get_project(shop.project_id) == shop
    assert catalog.get_project_by_key("nope") is None
    assert catalog.get_project(999) is None
    with pytest.raises(ValueError):
        catalog.create_project("tv", "tv")


def test_api_keys_are_stored_hashed_and_verified(catalog: Catalog, fresh_db_path: Path) -> None:
    key = catalog.create_api_key(label="ci")
    assert len(key) == 20 and key.isalnum()
    assert catalog.verify_api_key(key) == 1
    assert catalog.verify_api_key(key[:-1]) is None
    assert catalog.verify_api_key("") is None
    assert catalog.api_key_count() == 1
    with sqlite3.connect(fresh_db_path) as raw:
        rows = raw.execute("SELECT key_hash, org_id, label FROM api_keys").fetchall()
        dump = "\n".join(raw.iterdump())
    assert rows == [(hashlib.sha256(key.encode()).hexdigest(), 1, "ci")]
    assert key not in dump  # the plaintext is nowhere in the database


def test_token_secret_is_generated_once_and_persisted(fresh_db_path: Path) -> None:
    first = Catalog.open(fresh_db_path)
    second = Catalog.open(fresh_db_path)
    try:
        assert len(first.token_secret()) == 32
        assert first.token_secret() == second.token_secret()
    finally:
        first.close()
        second.close()
    other = Catalog.open(fresh_db_path.with_name("other.db"))
    try:
        assert other.token_secret() != first.token_secret()
    finally:
        other.close()


def test_cache_answers_known_keys_and_sees_projects_of_other_processes(fresh_db_path: Path) -> None:
    server = Catalog.open(fresh_db_path)
    cli = Catalog.open(fresh_db_path)  # stands for `replayd project create` in another process
    try:
        mine = server.create_project("mine")
        assert server.cached_project_by_key(mine.project_key) == (True, mine)
        theirs = cli.create_project("theirs")
        assert server.cached_project_by_key(theirs.project_key) == (False, None)
        assert server.get_project_by_key(theirs.project_key) == theirs  # read once from SQLite
        assert server.cached_project_by_key(theirs.project_key) == (True, theirs)
        assert server.get_project_by_key("unknown") is None
        assert server.cached_project_by_key("unknown") == (True, None)  # remembered as unknown
    finally:
        server.close()
        cli.close()


def test_reopening_keeps_everything(fresh_db_path: Path) -> None:
    catalog = Catalog.open(fresh_db_path)
    project = catalog.create_project("shop")
    key = catalog.create_api_key()
    catalog.close()
    again = Catalog.open(fresh_db_path)
    try:
        assert again.cached_project_by_key(project.project_key) == (True, project)
        assert again.verify_api_key(key) == 1
    finally:
        again.close()


def test_verified_api_keys_are_cached_in_memory(tmp_path) -> None:
    from storage.catalog import Catalog

    catalog = Catalog.open(tmp_path / "keys.db")
    key = catalog.create_api_key()
    assert catalog.cached_api_key(key) is None  # not verified yet: the caller asks SQLite
    assert catalog.verify_api_key(key) == 1
    assert catalog.cached_api_key(key) == 1
    assert catalog.cached_api_key("unknown") is None and catalog.verify_api_key("unknown") is None
    assert catalog.cached_api_key("unknown") is None  # unknown keys are never cached


async def test_find_answers_from_memory_or_sqlite_off_the_trio_thread(fresh_db_path: Path) -> None:
    server = Catalog.open(fresh_db_path)
    cli = Catalog.open(fresh_db_path)  # another process
    try:
        theirs = cli.create_project("theirs")
        key = cli.create_api_key()
        assert server.cached_project(theirs.project_id) == (False, None)
        assert await server.find_project(theirs.project_id) == theirs
        assert server.cached_project(theirs.project_id) == (True, theirs)
        assert server.cached_project_by_key(theirs.project_key) == (True, theirs)
        assert await server.find_project_by_key(theirs.project_key) == theirs
        assert await server.find_project(424242) is None
        assert server.cached_project(424242) == (True, None)  # remembered as unknown
        assert server.cached_api_key(key) is None
        assert await server.find_api_key(key) == 1
        assert server.cached_api_key(key) == 1
        assert await server.find_api_key("not-a-key") is None
    finally:
        server.close()
        cli.close()


def test_cached_lookups_do_not_wait_for_a_busy_connection(catalog: Catalog) -> None:
    # A worker thread holding the catalog's lock (a slow write, a busy database) must not hold
    # up the trio thread's memory lookups.
    project = catalog.create_project("shop")
    answers: list[object] = []
    held, done = threading.Event(), threading.Event()

    def writer() -> None:
        with catalog._lock:
            held.set()
            done.wait(30)

    def lookups() -> None:
        answers.append(catalog.cached_project_by_key(project.project_key))
        answers.append(catalog.cached_project(project.project_id))

    holder = threading.Thread(target=writer)
    holder.start()
    try:
        held.wait(30)
        looker = threading.Thread(target=lookups)
        looker.start()
        looker.join(10)  # a hang guard: before, it waited for the lock until `done`
        assert answers == [(True, project), (True, project)]
    finally:
        done.set()
        holder.join()


def test_unknown_keys_remembered_are_bounded_in_count_and_size(catalog: Catalog) -> None:
    # A client scanning random keys, long ones included, must not grow the catalog's memory.
    for i in range(_NEGATIVE_MAX + 500):
        assert catalog.get_project_by_key(f"{i:020d}") is None
    for i in range(200):
        assert catalog.get_project_by_key(f"{i:05d}" + "x" * 10_000) is None
    assert len(catalog._unknown_keys) <= _NEGATIVE_MAX
    assert sum(map(len, catalog._unknown_keys)) <= _NEGATIVE_MAX * _NEGATIVE_KEY_MAX_CHARS
    # A long key is still answered, and a short unknown one still remembered.
    assert catalog.cached_project_by_key("y" * 10_000) == (False, None)
    assert catalog.cached_project_by_key(f"{_NEGATIVE_MAX + 499:020d}") == (True, None)


def test_api_keys_are_listed_by_id_and_revoked_by_key_or_id(
    fresh_db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Catalog.open(fresh_db_path)
    cli = Catalog.open(fresh_db_path)  # `replayd api-key revoke`, another process
    try:
        first = cli.create_api_key(label="ci")
        second = cli.create_api_key(label="laptop")
        listed = cli.list_api_keys()
        ids = [hashlib.sha256(k.encode()).hexdigest()[:12] for k in (first, second)]
        expected = sorted(zip(ids, ["ci", "laptop"], strict=True))
        assert sorted((k.key_id, k.label) for k in listed) == expected
        assert server.verify_api_key(first) == 1 and server.cached_api_key(first) == 1
        assert cli.revoke_api_key(ids[0]).label == "ci"  # type: ignore[union-attr]
        assert server.cached_api_key(first) == 1  # memory may answer for a few seconds ...
        monkeypatch.setattr("storage.catalog._VERIFIED_TTL_S", 0.0)
        assert server.verify_api_key(second) == 1
        assert server.cached_api_key(second) is None  # ... and no longer than that
        assert server.verify_api_key(first) is None
        assert cli.revoke_api_key(second).label == "laptop"  # type: ignore[union-attr]
        assert server.verify_api_key(second) is None and cli.list_api_keys() == []
        assert cli.revoke_api_key(second) is None and cli.revoke_api_key("nonsense") is None
    finally:
        server.close()
        cli.close()


def test_delete_project(catalog: Catalog) -> None:
    kept, gone = catalog.create_project("kept"), catalog.create_project("gone")
    assert catalog.delete_project(gone.project_id) is True
    assert catalog.list_projects() == [kept]
    assert catalog.get_project_by_key(gone.project_key) is None
    assert catalog.get_project(gone.project_id) is None
    assert catalog.delete_project(gone.project_id) is False
