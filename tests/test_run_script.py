"""``scripts/run`` installs only when pyproject.toml changed (issue 14, point 9).

Run in a copy of the scripts with a stand-in ``.venv``: its ``python`` records every pip call
(and hashes with the real interpreter), its ``replayd`` echoes what it was asked to serve.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    for name in ("run", "venv-install"):
        shutil.copy2(SCRIPTS / name, tmp_path / "scripts" / name)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "replayd"\ndependencies = []\n')
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ]; then echo "$*" >> "$(dirname "$0")/pip-calls"; exit 0; fi\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    replayd = bin_dir / "replayd"
    replayd.write_text('#!/bin/sh\necho "replayd $*"\n')
    for script in (python, replayd):
        script.chmod(0o755)
    return tmp_path


def _run(tree: Path, *args: str) -> tuple[list[str], list[str]]:
    result = subprocess.run(
        [str(tree / "scripts" / "run"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    calls = tree / ".venv" / "bin" / "pip-calls"
    pip = calls.read_text().splitlines() if calls.exists() else []
    calls.unlink(missing_ok=True)
    return result.stdout.splitlines(), pip


def test_run_installs_only_when_pyproject_changed(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    out, pip = _run(tree, "--port", "9000")
    assert out == [
        "== installed replayd (.) into .venv (no install of it recorded there yet)",
        "replayd serve --port 9000",
    ]
    assert pip == ["-m pip install --quiet --upgrade pip", "-m pip install --quiet -e ."]
    out, pip = _run(tree)
    assert out[0] == "== .venv is up to date with pyproject.toml: nothing to install"
    assert out[1:] == ["replayd serve"]
    assert pip == []
    with open(tree / "pyproject.toml", "a") as pyproject:
        pyproject.write('optional-dependencies = { extra = ["x"] }\n')
    out, pip = _run(tree)
    assert out[0] == "== pyproject.toml changed: reinstalled replayd (.) into .venv"
    assert len(pip) == 2


def test_a_failed_install_shows_pips_output_and_stops(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    python = tree / ".venv" / "bin" / "python"
    python.write_text(
        python.read_text().replace("exit 0", 'echo "ERROR: no such package" >&2; exit 1')
    )
    result = subprocess.run(
        [str(tree / "scripts" / "run")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and "replayd serve" not in result.stdout
    assert "ERROR: no such package" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("installing replayd (.) into .venv failed")
    assert not list((tree / ".venv").glob("replayd-installed-*"))  # the next run tries again
