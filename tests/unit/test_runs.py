"""Atomic writes and the run directory layout."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tunesmith.recipe.loading import load_recipe
from tunesmith.recipe.plan import plan
from tunesmith.runs import (
    RunDir,
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    clean_stale_temp_dirs,
    prepare_run,
)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


def test_failed_write_keeps_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_directory_publishes_only_complete_folders(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint-10"
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_bytes(b"half")
        raise RuntimeError("killed mid-save")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_bytes(b"full")
    assert (target / "weights.bin").read_bytes() == b"full"
    with atomic_directory(target) as tmp:  # replacing an existing folder
        (tmp / "weights.bin").write_bytes(b"newer")
    assert (target / "weights.bin").read_bytes() == b"newer"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-10"]


def test_stale_temp_dirs_are_cleaned(tmp_path: Path) -> None:
    (tmp_path / ".checkpoint-5.tmp-abc").mkdir()
    (tmp_path / ".f.json.123.tmp").write_text("x")
    (tmp_path / "keep").mkdir()
    assert clean_stale_temp_dirs(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]


def test_prepare_run_writes_resolved_recipe_plan_and_manifest(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": f"d{i}"}) + "\n" for i in range(50)))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "demo",
                "model": {"family": "tiny"},
                "stages": [{"technique": "cpt", "data": {"train": str(data)}}],
            }
        )
    )
    resolved = plan(recipe)
    run, replaced = prepare_run(resolved, tmp_path / "runs")
    assert replaced is None
    assert isinstance(run, RunDir) and run.root == tmp_path / "runs" / "demo"
    manifest = json.loads(run.manifest_path.read_text())
    assert manifest["packages"]["torch"] and manifest["packages"]["transformers"] and manifest["python"]
    saved = json.loads(run.plan_path.read_text())
    assert saved["stages"][0]["numbers"]["total_steps"] >= 1
    assert saved["provenance"]["stages[0].hyperparameters.lr"]["origin"] == "default"
    # the resolved recipe is itself a valid recipe that resolves to the same values
    again = plan(run.resolved_recipe_path)
    assert again.to_dict() == resolved.to_dict()
    assert (
        load_recipe(run.resolved_recipe_path).stages[0].hyperparameters.lr
        == resolved.recipe.stages[0].hyperparameters.lr
    )
