"""The import contract (pyproject.toml [tool.importlinter]) holds: no upward import, no cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is missing: pip install -e '.[dev]' (import-linter)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([exe, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_import_contract_is_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_contract_fails_on_an_upward_import_and_on_a_cycle(tmp_path: Path) -> None:
    """A copy of the package with one upward import added (data -> training, which imports data): both
    contracts break, so the check is not vacuous."""
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    builtin = tmp_path / "src" / "tunesmith" / "data" / "builtin.py"
    builtin.write_text(builtin.read_text() + "\nfrom tunesmith.training import pipeline  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "tunesmith.data is not allowed to import tunesmith.training" in result.stdout
    assert "No cycles are allowed in tunesmith." in result.stdout


def test_vocabulary_is_a_leaf() -> None:
    source = (ROOT / "src" / "tunesmith" / "vocabulary.py").read_text()
    assert "import tunesmith" not in source and "from tunesmith" not in source
