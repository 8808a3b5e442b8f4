"""Test helper: the log records an iOS or Android SDK session makes, built with the real codec.

``MobileScript`` writes the MOBILE_START payload and batches as the SDKs do (a ``MobileBatchMeta``
with the flush time and ``FirstIndex`` = messages sent before, then the messages, each with its
own time), remembering each message's id (its index, MOBILE.md 3.3) and time, so tests can state
the exact events they expect.
"""

from __future__ import annotations

import hashlib

from engine.codec import mobile_messages as mm
from engine.start_payload import WebStartPayload
from storage.records import NewRecord, RecordKind
from tests.engine.builders import T0, Mark


class MobileScript:
    """Builds one mobile session's records, message by message (:meth:`batch` closes a batch)."""

    def __init__(
        self,
        session_id: int,
        *,
        project_id: int = 1,
        platform: str = "ios",
        start_ms: int = T0,
        tracker_version: str = "1.0.14",
    ) -> None:
        self.session_id = session_id
        self.project_id = project_id
        self.platform = platform
        self.start_ms = start_ms
        self.now = start_ms
        self.tracker_version = tracker_version
        self.next_index = 0  # FirstIndex of the next batch: messages flushed so far
        self._items: list[mm.MobileMessage] = []

    # -- records -----------------------------------------------------------------------------

    def start(
        self, *, received_at: int | None = None, continued: bool = False, **fields: object
    ) -> NewRecord:
        """The MOBILE_START record (``fields`` override the payload's defaults)."""
        ios = self.platform == "ios"
        defaults: dict[str, object] = {
            "user_os": "IOS" if ios else "Android",
            "user_os_version": "17.2" if ios else "14",
            "user_device": "iPhone 14 Plus" if ios else "emu64xa",
            "user_device_type": "mobile",
            "user_uuid": "4b1e2f0c-5d7a-4e3b-9c8f-1a2b3c4d5e6f",
        }
        payload = WebStartPayload(
            session_id=self.session_id,
            project_id=self.project_id,
            start_timestamp=self.start_ms,
            delay=0,
            continued=continued,
            tracker_version=self.tracker_version,
            platform=self.platform,
            **(defaults | fields),  # type: ignore[arg-type]
        )
        return self._record(
            RecordKind.MOBILE_START,
            payload.to_bytes(),
            self.start_ms if received_at is None else received_at,
            batch_key=None,
        )

    def batch(
        self,
        *,
        received_at: int | None = None,
        kind: RecordKind = RecordKind.MOBILE_BATCH,
        flush_ms: int = 0,
    ) -> NewRecord:
        """Close the current batch: BatchMeta (flush time = now + ``flush_ms``), then messages."""
        meta = mm.MobileBatchMeta(self.now + flush_ms, self.next_index)
        items, self._items = self._items, []
        self.next_index += len(items)
        payload = self.encode([meta, *items])
        received = self.now + flush_ms + 50 if received_at is None else received_at
        return self._record(kind, payload, received)

    def raw(self, payload: bytes, *, received_at: int, kind: RecordKind = RecordKind.MOBILE_BATCH):
        """A batch record of exactly ``payload``."""
        return self._record(kind, payload, received_at)

    def bare_crash(
        self, name: str, reason: str = "", *, kind: RecordKind = RecordKind.MOBILE_BATCH
    ) -> NewRecord:
        """A crash upload: one ``MobileCrash`` alone, no BatchMeta (MOBILE.md 3.7.10)."""
        crash = mm.MobileCrash(self.now, name, reason, "0 App 0x1\n1 App 0x2")
        return self._record(kind, self.encode([crash]), self.now + 20)

    def encode(self, messages: list[mm.MobileMessage]) -> bytes:
        """Messages as this script's SDK encodes them."""
        return mm.encode_batch(messages, platform=self.platform)

    def _record(
        self, kind: RecordKind, payload: bytes, received_at: int, *, batch_key: str | None = ""
    ) -> NewRecord:
        return NewRecord(
            session_id=self.session_id,
            project_id=self.project_id,
            kind=kind,
            received_at_ms=received_at,
            payload=payload,
            # As the routes key an upload: a digest of its raw body (a resend is stored once).
            batch_key=hashlib.sha256(payload).hexdigest() if batch_key == "" else batch_key,
        )

    # -- messages ------------------------------------------------------------------------------

    def wait(self, ms: int) -> MobileScript:
        """Move the script's clock."""
        self.now += ms
        return self

    def add(self, msg: mm.MobileMessage) -> Mark:
        """Queue ``msg``; its id is its index: this batch's FirstIndex + 1 + its place."""
        self._items.append(msg)
        return Mark(self.next_index + len(self._items), msg.timestamp)

    def tap(self, label: str, x: int = 150, y: int = 420) -> Mark:
        return self.add(mm.MobileClickEvent(self.now, label, x, y))

    def swipe(self, label: str = "Swipe", direction: str = "left") -> Mark:
        return self.add(mm.MobileSwipeEvent(self.now, label, 10, 20, direction))

    def input(self, label: str, value: str = "secret") -> Mark:
        return self.add(mm.MobileInputEvent(self.now, value, False, label))

    def view(self, screen: str, view: str, visible: bool = True) -> Mark:
        return self.add(mm.MobileViewComponentEvent(self.now, screen, view, visible))

    def custom(self, name: str, payload: str = '{"n":1}') -> Mark:
        return self.add(mm.MobileEvent(self.now, name, payload))

    def request(
        self,
        url: str,
        status: int = 200,
        *,
        method: str = "GET",
        request: str = '{"body":"q"}',
        response: str = '{"body":"r"}',
        duration: int = 87,
    ) -> Mark:
        # Android writes the status as 4 big-endian bytes (MOBILE.md 3.7.1).
        return self.add(
            mm.MobileNetworkCall(
                self.now, "request", method, url, request, response, status, duration,
                status_int32=self.platform == "android",
            )
        )  # fmt: skip

    def crash(self, name: str, reason: str = "") -> Mark:
        return self.add(mm.MobileCrash(self.now, name, reason, "0 App 0x1"))

    def graphql(self, name: str, kind: str = "query") -> Mark:
        return self.add(mm.MobileGraphQL(self.now, kind, name, '{"id":1}', '{"data":{}}', 12))

    def user_id(self, user_id: str) -> Mark:
        return self.add(mm.MobileUserID(self.now, user_id))

    def anonymous_id(self, anonymous_id: str) -> Mark:
        return self.add(mm.MobileUserAnonymousID(self.now, anonymous_id))

    def metadata(self, key: str, value: str) -> Mark:
        return self.add(mm.MobileMetadata(self.now, key, value))

    def performance(self, name: str = "fps", value: int = 60) -> Mark:
        return self.add(mm.MobilePerformanceEvent(self.now, name, value))
