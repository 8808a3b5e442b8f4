"""Sampling profiles of the processes under test (``scripts/bench --profile DIR``), with py-spy.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;... count``); this module
starts it against a pid for a fixed duration and turns the stacks into two short top lists: where
the samples are (self time, by function) and what they are under (inclusive time, by function,
counted once per stack). That is what the report's "where the time goes" notes are made from.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# Set by the driver (``--profile DIR``); the sections profile only when it is set.
PROFILE_DIR: Path | None = None

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    """The py-spy executable of this environment (bench extra), if installed."""
    here = Path(sys.executable).with_name("py-spy")
    return str(here) if here.exists() else shutil.which("py-spy")


def record(
    pid: int, seconds: float, out: Path, rate: int = 200, subprocesses: bool = True
) -> subprocess.Popen[bytes] | None:
    """Start sampling ``pid`` for ``seconds`` into ``out`` (collapsed stacks); None if no py-spy."""
    exe = py_spy()
    if exe is None:
        return None
    args = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    ]
    if subprocesses:
        args.append("--subprocesses")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def record_command(
    cmd: list[str], out: Path, rate: int = 200, **kwargs
) -> subprocess.CompletedProcess:
    """Run ``cmd`` under ``py-spy record`` (collapsed stacks into ``out``)."""
    exe = py_spy()
    if exe is None:
        return subprocess.run(cmd, **kwargs)
    return subprocess.run(
        [
            exe,
            "record",
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            str(out),
            "--subprocesses",
            "--",
            *cmd,
        ],
        **kwargs,
    )


def _short(frame: str) -> str:
    found = _FRAME.match(frame.strip())
    if not found:
        return frame.strip()
    path = found.group("file")
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        parts = Path(path).parts
        path = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{found.group('func')} ({path})"


# Frames every stack goes through (interpreter, threads, trio's scheduler, the CLI entry): left
# out of the inclusive list, where they would only crowd out the informative ones.
_PLUMBING = re.compile(
    r"\((<frozen runpy>|threading\.py|_core/_(run|thread_cache)\.py|outcome/|trio/_threads\.py"
    r"|api/cli\.py)"
)


def summarize(collapsed: Path, top: int = 20) -> str:
    """Self and inclusive top lists of a collapsed-stack file, as plain text."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [
            _short(f)
            for f in stack.split(";")
            if f and not f.startswith("process ") and not f.startswith("thread ")
        ]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            if not _PLUMBING.search(f):
                inclusive[f] += n
    if not total:
        return f"{collapsed.name}: no samples\n"
    lines = [f"{collapsed.name}: {total} samples", "  self time:"]
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("  inclusive time:")
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def finish(proc: subprocess.Popen[bytes] | None, out: Path, timeout: float = 60) -> None:
    """Wait for a ``record`` started earlier and print its summary on stderr."""
    if proc is None:
        print(f"[profile] py-spy not installed; no profile for {out.name}", file=sys.stderr)
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(10)
    if out.exists():
        text = summarize(out)
        out.with_suffix(".txt").write_text(text)
        print(text, file=sys.stderr, flush=True)
