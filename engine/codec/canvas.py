"""The web tracker's canvas uploads (``POST /v1/web/images``, PROTOCOL.md 8): file names (sans-IO).

With ``framesSupport: true`` (what replayd answers) the tracker sends one file part ``frames``
named ``<createdAt>_<canvasNodeId>.<ext>.frames`` whose bytes are a frames stream (``[u64 LE
capture ms][u32 LE size][image]``, not gzipped:
:func:`engine.codec.mobile_images.unpack_plain_frames`).
Older trackers send one ``snapshot`` file part per image, named
``<createdAt>_<canvasNodeId>_<captureMs>.<ext>``. ``createdAt`` is the tracker's session start and
the canvas node id the ``CanvasNode`` (119) message's ``NodeId``: that is how the player finds a
canvas's frames.
"""

from __future__ import annotations

import re

import attrs

# Node ids are the tracker's numbers as text; bounded so a name cannot smuggle a long string.
_FRAMES = re.compile(r"^([0-9]{1,19})_([0-9A-Za-z-]{1,40})\.([A-Za-z0-9]{1,10})\.frames$")
_SNAPSHOT = re.compile(r"^([0-9]{1,19})_([0-9A-Za-z-]{1,40})_([0-9]{1,19})\.([A-Za-z0-9]{1,10})$")
_INT64_MAX = 2**63 - 1


@attrs.frozen(slots=True)
class CanvasFileName:
    """What a canvas file's name says: the canvas node, and (snapshots only) the capture time."""

    created_at: int
    node_id: str
    extension: str
    capture_ms: int | None  # None for a frames file: each frame carries its own time

    @property
    def is_frames(self) -> bool:
        return self.capture_ms is None


def parse_canvas_file_name(name: str) -> CanvasFileName | None:
    """The parts of a canvas file name, or None when it is neither form (the part is refused)."""
    if (match := _FRAMES.fullmatch(name)) is not None:
        created, node, ext = match.groups()
        capture = None
    elif (match := _SNAPSHOT.fullmatch(name)) is not None:
        created, node, captured, ext = match.groups()
        capture = int(captured)
        if capture > _INT64_MAX:
            return None
    else:
        return None
    if int(created) > _INT64_MAX:
        return None
    return CanvasFileName(int(created), node, ext.lower(), capture)
