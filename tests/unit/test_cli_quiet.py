"""Quiet by default: a real `tunesmith train` shows tunesmith's lines, not the libraries' warnings and
progress bars; `--verbose` (anywhere on the command line) shows those too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tunesmith.logs import QUIET_ENVIRONMENT

REPO = Path(__file__).resolve().parents[2]
LIBRARY_NOISE = (
    "FutureWarning",
    "DeprecationWarning",
    "Generating train split",  # datasets
    "Map:",  # datasets (tunesmith tokenizes chat rows with the assistant mask itself)
    "Building labels for train dataset",  # TRL
    "Loading weights",  # transformers
)


def _recipe(tmp_path: Path, model_dir: Path) -> Path:
    rows = [
        {"messages": [{"role": "user", "content": f"zq {i}?"}, {"role": "assistant", "content": str(i % 7)}]}
        for i in range(16)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:12]))
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[12:]))
    recipe = {
        "name": "quiet",
        "model": {"path": str(model_dir), "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "stages": [
            {
                "technique": "sft",
                "mode": "lora",
                "data": {"train": str(tmp_path / "train.jsonl"), "validation": str(tmp_path / "val.jsonl")},
                "data_mixing": {"customer_percent": 100},
                "hyperparameters": {"max_steps": 1, "global_batch_size": 4, "micro_batch_size": 4},
            }
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _train(recipe: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    # the environment as a user has it: without the settings an in-process `main()` of another test left
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENVIRONMENT}
    return subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "train", str(recipe), "--no-eval", "--force", *flags],
        cwd=REPO,
        env={**env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_train_hides_library_noise_unless_verbose(tmp_path, micro_model_dir) -> None:
    (tmp_path / "a").mkdir()
    quiet = _train(_recipe(tmp_path / "a", micro_model_dir))
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert "validation loss" in quiet.stdout and "best checkpoints" in quiet.stdout  # tunesmith's lines
    assert "sft (sft, lora)" in quiet.stderr  # tunesmith's own progress bar stays
    assert not [noise for noise in LIBRARY_NOISE if noise in quiet.stderr], quiet.stderr[-3000:]

    (tmp_path / "b").mkdir()
    verbose = _train(_recipe(tmp_path / "b", micro_model_dir), "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert "validation loss" in verbose.stdout
    assert "Map:" in verbose.stderr and "Building labels for train dataset" in verbose.stderr
