"""`train --resume` states what changed since a run was written and records who continued it
(`tunesmith.training.resuming`); the refusals are cases of tests/hostile/cases_two.py (class 11)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tunesmith.errors import UserError
from tunesmith.runs import manifest, package_versions
from tunesmith.training.resuming import check_resume, record_resume

NO_STAGES = SimpleNamespace(stages=[], recipe=SimpleNamespace(stages=[]))


def _run(tmp_path: Path, **packages: str) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    written = manifest(["tunesmith", "train", "r.yaml"])
    written["packages"].update(packages)
    (run / "manifest.json").write_text(json.dumps(written))
    return run


def test_a_resume_is_recorded_and_the_first_versions_stay(tmp_path: Path, capsys) -> None:
    run = _run(tmp_path, peft="0.1.0")
    entry = check_resume(run, NO_STAGES, accept=False)
    assert "written with peft 0.1.0; now peft " in capsys.readouterr().err
    record_resume(run, entry)
    record_resume(
        run, check_resume(run, NO_STAGES, accept=False)
    )  # the second compares with the first resume
    assert capsys.readouterr().err == ""
    stored = json.loads((run / "manifest.json").read_text())
    assert stored["packages"]["peft"] == "0.1.0"
    assert [r["packages"]["peft"] for r in stored["resumes"]] == [package_versions()["peft"]] * 2


def test_a_major_version_refuses_until_accepted(tmp_path: Path) -> None:
    run = _run(tmp_path, transformers="4.57.1")
    with pytest.raises(UserError, match=r"transformers 4\.57\.1.*--accept-changes"):
        check_resume(run, NO_STAGES, accept=False)
    assert check_resume(run, NO_STAGES, accept=True)["accepted"] == [
        "a different major version of transformers"
    ]
