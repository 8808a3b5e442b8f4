"""The images' store (storage.images): content addressing, links, the hash list, all-or-nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.images import (
    HASH_LIST_MAX,
    CapturedImage,
    ImageStore,
    image_hash,
    sniff_content_type,
)
from storage.schema import schema_version

JPEG = b"\xff\xd8\xff\xe0" + b"jpeg body"
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8L" + b"webp body"
PNG = b"\x89PNG\r\n\x1a\n" + b"png body"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    opened = ImageStore.open(tmp_path / "replayd-images.db")
    yield opened
    opened.close()


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_content_types_come_from_the_bytes() -> None:
    assert sniff_content_type(JPEG) == "image/jpeg"
    assert sniff_content_type(WEBP) == "image/webp"
    assert sniff_content_type(PNG) == "image/png"
    assert sniff_content_type(b"RIFF\x10\x00\x00\x00WAVE") == "application/octet-stream"
    assert sniff_content_type(b"") == "application/octet-stream"


def test_an_image_is_stored_once_and_linked_per_session_and_capture(
    store: ImageStore, tmp_path: Path
) -> None:
    first = store.store(
        1, 10, [CapturedImage(100, JPEG), CapturedImage(200, WEBP)], received_at_ms=5
    )
    assert (first.linked, first.new_blobs) == (2, 2)
    again = store.store(1, 10, [CapturedImage(100, JPEG)], received_at_ms=6)  # a resend
    assert (again.linked, again.new_blobs) == (0, 0)
    other = store.store(1, 11, [CapturedImage(300, JPEG)], received_at_ms=7)
    assert (other.linked, other.new_blobs) == (1, 0)

    db = tmp_path / "replayd-images.db"
    assert count(db, "image_blobs") == 2
    assert count(db, "image_links") == 3
    listed = store.session_images(1, 10)
    assert [(i.hash, i.capture_ms, i.size, i.content_type) for i in listed] == [
        (image_hash(JPEG), 100, len(JPEG), "image/jpeg"),
        (image_hash(WEBP), 200, len(WEBP), "image/webp"),
    ]
    assert store.session_images(2, 10) == []  # another project sees nothing
    found = store.image(1, 11, image_hash(JPEG))
    assert found is not None and found[1] == JPEG and found[0].capture_ms == 300
    assert store.image(2, 11, image_hash(JPEG)) is None
    assert store.image(1, 11, image_hash(WEBP)) is None  # stored, but not in this session


def test_a_failing_upload_stores_nothing(store: ImageStore) -> None:
    def broken() -> Iterator[CapturedImage]:
        yield CapturedImage(1, JPEG)
        raise ValueError("the archive broke half-way")

    with pytest.raises(ValueError, match="half-way"):
        store.store(1, 10, broken(), received_at_ms=1)
    assert store.session_images(1, 10) == []
    assert store.frequent_hashes(1) == []


def test_the_hash_list_is_the_most_linked_hashes_of_the_project(store: ImageStore) -> None:
    assert store.frequent_hashes(1) == []  # a new project
    images = [bytes([0xFF, 0xD8, 0xFF, n]) for n in range(HASH_LIST_MAX + 5)]
    # Image n is linked n + 1 times (distinct sessions), the later ones more often.
    for n, data in enumerate(images):
        for session in range(n + 1):
            store.store(1, session, [CapturedImage(n, data)], received_at_ms=n)
    store.store(2, 1, [CapturedImage(0, images[0])], received_at_ms=0)
    most = store.frequent_hashes(1)
    assert most == [image_hash(data) for data in reversed(images)][:HASH_LIST_MAX]
    assert store.frequent_hashes(2) == [image_hash(images[0])]
    assert store.frequent_hashes(1, limit=3) == most[:3]


def test_reopening_keeps_everything_and_migrates_once(tmp_path: Path) -> None:
    path = tmp_path / "replayd-images.db"
    first = ImageStore.open(path)
    first.store(1, 10, [CapturedImage(100, JPEG)], received_at_ms=5)
    first.close()
    second = ImageStore.open(path)
    try:
        assert [i.hash for i in second.session_images(1, 10)] == [image_hash(JPEG)]
    finally:
        second.close()
    with sqlite3.connect(path) as conn:
        assert schema_version(conn, "images") == 3  # 2: canvas_frames, 3: the links by hash
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_canvas_frames_share_the_blobs_and_are_erased_by_session(tmp_path: Path) -> None:
    store = ImageStore.open(tmp_path / "replayd-images.db")
    try:
        frame_a, frame_b = b"RIFF\0\0\0\0WEBPaaaa", b"RIFF\0\0\0\0WEBPbbbb"
        store.store(1, 10, [CapturedImage(100, JPEG)], received_at_ms=5)  # a screenshot
        result = store.store_canvas(
            1,
            20,
            [("3", CapturedImage(200, frame_a)), ("3", CapturedImage(300, JPEG))],
            received_at_ms=5,
        )
        assert (result.linked, result.new_blobs) == (2, 1)
        store.store_canvas(1, 21, [("4", CapturedImage(400, frame_b))], received_at_ms=5)
        assert [(f.node_id, f.capture_ms, f.content_type) for f in store.session_canvas(1, 20)] == [
            ("3", 200, "image/webp"),
            ("3", 300, "image/jpeg"),
        ]
        assert store.session_canvas(2, 20) == []  # another project's session
        assert store.canvas_image(1, 21, image_hash(frame_a)) is None  # another session's frame
        assert store.forget_canvas(1, [20, 21]) == 3
        assert store.session_canvas(1, 20) == [] and store.session_canvas(1, 21) == []
        assert store.canvas_image(1, 20, image_hash(frame_a)) is None
        # The screenshot still names the JPEG blob; the frames' own blobs are gone.
        assert store.image(1, 10, image_hash(JPEG)) is not None
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "replayd-images.db") as conn:
        blobs = {row[0] for row in conn.execute("SELECT hash FROM image_blobs")}
    assert blobs == {image_hash(JPEG)}


def test_forgetting_sessions_drops_their_links_and_the_blobs_no_one_else_links(
    tmp_path: Path,
) -> None:
    path = tmp_path / "images.db"
    store = ImageStore.open(path)
    try:
        store.store(1, 10, [CapturedImage(100, JPEG), CapturedImage(101, WEBP)], received_at_ms=5)
        store.store(1, 11, [CapturedImage(200, JPEG)], received_at_ms=6)
        assert store.forget_sessions(1, [10]) == 2
        assert store.session_images(1, 10) == []
        assert [i.hash for i in store.session_images(1, 11)] == [image_hash(JPEG)]
        assert store.frequent_hashes(1) == [image_hash(JPEG)]  # WEBP's count went with it
        assert store.image(1, 11, image_hash(JPEG)) is not None  # still linked by session 11
        assert store.forget_sessions(1, [11, 12]) == 1
        assert store.frequent_hashes(1) == []
        assert store.checkpoint()
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM image_blobs").fetchone()[0] == 0
    # secure_delete: not a byte of the images is left in the file (the WAL is empty).
    data = path.read_bytes()
    assert b"jpeg body" not in data and b"webp body" not in data
