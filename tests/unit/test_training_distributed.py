"""The same stage under `torchrun --nproc_per_node 2` (CPU, gloo) follows the 1-process loss curve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _recipe(tmp_path: Path, model_dir: Path, name: str) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"add {i} {i % 9}"},
                {"role": "assistant", "content": str(i + i % 9)},
            ]
        }
        for i in range(240)
    ]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {
        "name": name,
        "model": {"path": str(model_dir), "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "acknowledge": {"customer-share-far-from-50": "test", "no-validation-set": "test"},
        "stages": [
            {
                "technique": "sft",
                "mode": "full",
                "data": {"train": str(train)},
                "data_mixing": {"customer_percent": 100},
                "hyperparameters": {
                    "max_steps": 30,
                    "global_batch_size": 8,
                    "micro_batch_size": 4,
                    "lr": 3e-3,
                    "val_check_interval": 30,
                },
            }
        ],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "sft" / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_two_processes_match_one_process_within_two_percent(tmp_path, micro_model_dir) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = _recipe(tmp_path, micro_model_dir, "one")
    two = _recipe(tmp_path, micro_model_dir, "two")
    subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "train", str(one), "--quiet", "--no-eval"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "-m",
            "tunesmith.cli",
            "train",
            str(two),
            "--quiet",
            "--no-eval",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    single, double = _losses(tmp_path / "runs" / "one"), _losses(tmp_path / "runs" / "two")
    assert len(single) == len(double) == 30
    assert single[-1] < 0.9 * single[0], "the run learns"
    worst = max(abs(a - b) / a for a, b in zip(single, double, strict=True))
    assert worst < 0.02, f"largest relative loss difference {worst:.4f}"
    plan = json.loads((tmp_path / "runs" / "two" / "sft" / "config.json").read_text())
    assert plan["derived"]["total_steps"] == 30
