"""A disk that can be filled and freed during a test: a tmpfs of a few MB (root), or, without
root, the log writer's ``PRAGMA max_page_count`` (SQLITE_FULL either way; never a skip).

``SmallDisk.directory`` is where the log's file goes; ``fill`` uses up the space left,
``free`` gives it back. The tmpfs is unmounted at teardown.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import attrs

TMPFS_SIZE = "8m"
_FILLER_CHUNK = 256 * 1024


def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root, as in CI)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


@attrs.define
class SmallDisk:
    """The filesystem under the log's file, filled and freed on demand."""

    directory: Path
    mounted: bool
    # Without a tmpfs: a function that caps the log writer at its current size (or lifts the cap).
    cap_pages: Callable[[int], Awaitable[int]] | None = None
    _filler: Path | None = None

    async def fill(self) -> None:
        """Use up the free space: writes then fail with SQLITE_FULL."""
        if self.mounted:
            self._filler = self.directory / "filler"
            fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                # Big pieces first, then small ones, so that not even one page is left.
                for size in (_FILLER_CHUNK, 4096, 512):
                    with contextlib.suppress(OSError):
                        while True:
                            os.write(fd, b"\0" * size)
            finally:
                os.close(fd)
            return
        assert self.cap_pages is not None, "set cap_pages (EventLog.set_max_page_count)"
        await self.cap_pages(1)  # SQLite keeps the cap at no less than the current size

    async def free(self) -> None:
        """Give the space back."""
        if self.mounted:
            if self._filler is not None:
                self._filler.unlink()
                self._filler = None
            return
        assert self.cap_pages is not None
        await self.cap_pages(2**31 - 1)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@contextlib.contextmanager
def small_disk(base: Path, *, mount: bool = True) -> Iterator[SmallDisk]:
    """A ``SmallDisk`` under ``base``: a tmpfs of ``TMPFS_SIZE`` as root (unless ``mount`` is
    false), else a plain directory whose log is capped with ``max_page_count``."""
    directory = base / "small-disk"
    directory.mkdir()
    if not (mount and can_mount()):
        yield SmallDisk(directory, mounted=False)
        return
    _run("mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(directory))
    try:
        yield SmallDisk(directory, mounted=True)
    finally:
        try:
            _run("umount", str(directory))
        except subprocess.CalledProcessError:
            _run("umount", "-l", str(directory))  # a file still open: detach now, free later
