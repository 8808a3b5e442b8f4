"""The asset cache's store (storage.assets): content addressing, caps, children, erasure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.assets import AssetStore, AssetTooLarge, asset_hash, asset_path

CSS = "https://site.test/a.css"
FONT = "https://site.test/f.woff2"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AssetStore]:
    opened = AssetStore.open(tmp_path / "x-assets.db", max_asset_bytes=1000, max_project_bytes=2500)
    yield opened
    opened.close()


def test_the_same_bytes_are_stored_once_and_the_first_fetch_wins(store: AssetStore) -> None:
    first = store.store(1, CSS, b"body{color:red}", "text/css", fetched_at_ms=10)
    again = store.store(1, CSS, b"body{color:blue}", "text/css", fetched_at_ms=20)
    assert again == first
    assert first.hash == asset_hash(b"body{color:red}") and first.path == asset_path(first.hash)
    other = store.store(
        2, "https://mirror.test/a.css", b"body{color:red}", "text/css", fetched_at_ms=30
    )
    assert other.hash == first.hash
    assert store.blob(first.hash) == ("text/css", b"body{color:red}")
    assert store.path_of(1, CSS) == first.path
    assert store.path_of(3, CSS) is None  # another project's cache is not this one's
    assert store.paths_of(1, [CSS, FONT]) == {CSS: first.path}
    assert store.cached_urls(2, [CSS, "https://mirror.test/a.css"]) == {"https://mirror.test/a.css"}


def test_caps_per_asset_and_per_project(store: AssetStore) -> None:
    with pytest.raises(AssetTooLarge, match="per-asset"):
        store.store(1, FONT, b"x" * 1001, "font/woff2", fetched_at_ms=1)
    store.store(1, "https://s.test/1", b"a" * 1000, "image/png", fetched_at_ms=1)
    store.store(1, "https://s.test/2", b"b" * 1000, "image/png", fetched_at_ms=1)
    # The same bytes under another URL cost nothing more.
    store.store(1, "https://s.test/1-again", b"a" * 1000, "image/png", fetched_at_ms=1)
    assert store.project_bytes(1) == 2000
    with pytest.raises(AssetTooLarge, match="full"):
        store.store(1, "https://s.test/3", b"c" * 1000, "image/png", fetched_at_ms=1)
    assert store.lookup(1, "https://s.test/3") is None
    # Another project has its own allowance.
    store.store(2, "https://s.test/3", b"c" * 1000, "image/png", fetched_at_ms=1)
    assert store.project_bytes(2) == 1000


def test_forgetting_sessions_removes_only_what_no_other_session_references(
    store: AssetStore,
) -> None:
    store.note_references(1, 100, [CSS])
    store.note_references(1, 200, ["https://site.test/only-200.png"])
    store.note_references(1, 300, [CSS])
    store.store(1, FONT, b"wOF2font", "font/woff2", fetched_at_ms=1)
    sheet = store.store(
        1, CSS, b"@font-face{src:url(/assets/x)}", "text/css", fetched_at_ms=1, children=[FONT]
    )
    store.store(1, "https://site.test/only-200.png", b"\x89PNG", "image/png", fetched_at_ms=1)
    # The sessions that referenced the sheet reference its font as well.
    assert store.session_urls(1, 100) == [CSS, FONT]
    assert store.forget_sessions(1, [200]) == 1
    assert store.lookup(1, "https://site.test/only-200.png") is None
    assert store.blob(asset_hash(b"\x89PNG")) is None
    assert store.forget_sessions(1, [100]) == 0  # 300 still references the sheet and its font
    assert store.blob(sheet.hash) is not None
    # A later session referencing the sheet gets its children noted at once.
    store.note_references(1, 400, [CSS])
    assert store.session_urls(1, 400) == [CSS, FONT]
    assert store.forget_sessions(1, [300, 400]) == 2
    assert store.blob(sheet.hash) is None and store.blob(asset_hash(b"wOF2font")) is None
    assert store.project_bytes(1) == 0


def test_a_blob_another_project_names_outlives_an_erasure(store: AssetStore) -> None:
    store.note_references(1, 100, [CSS])
    store.note_references(2, 900, [CSS])
    kept = store.store(1, CSS, b"a{}", "text/css", fetched_at_ms=1)
    store.store(2, CSS, b"a{}", "text/css", fetched_at_ms=1)
    store.forget_sessions(1, [100])
    assert store.lookup(1, CSS) is None
    assert store.blob(kept.hash) == ("text/css", b"a{}")
    assert store.forget_project(2) == 1
    assert store.blob(kept.hash) is None
    assert store.project_bytes(2) == 0


def test_erased_bytes_are_not_left_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x-assets.db"
    store = AssetStore.open(path)
    secret = b"secret-avatar-" * 50
    store.note_references(1, 7, ["https://site.test/avatar.png"])
    store.store(1, "https://site.test/avatar.png", secret, "image/png", fetched_at_ms=1)
    store.forget_sessions(1, [7])
    store.close()
    # secure_delete overwrote the freed pages; a checkpoint moved the WAL into the file on close.
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("x-assets"))
    assert secret not in raw
    assert b"site.test/avatar.png" not in raw
