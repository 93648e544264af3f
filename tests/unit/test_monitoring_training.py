"""The monitor inside a real (micro-model) stage: events.jsonl, probes, result.json summary, rollback to the
last good checkpoint with a scaled LR, stop after the rollback budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunesmith.recipe.loading import load_recipe
from tunesmith.recipe.resolve import resolve
from tunesmith.training.pipeline import train


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _recipe(tmp_path: Path, model_dir: Path, monitoring: dict | None) -> Path:
    rows = [
        {"messages": [{"role": "user", "content": f"zq {i}?"}, {"role": "assistant", "content": f"{i % 7}"}]}
        for i in range(72)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:64]))
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[64:]))
    stage = {
        "technique": "sft",
        "mode": "full",
        "data": {"train": str(tmp_path / "train.jsonl"), "validation": str(tmp_path / "val.jsonl")},
        "data_mixing": {"customer_percent": 50, "general": {"math": 100}},
        "hyperparameters": {
            "max_steps": 8,
            "global_batch_size": 8,
            "micro_batch_size": 8,
            "val_check_interval": 2,
            "lr": 3e-3,
            "warmup_steps": 0,
            "save_top_k": 5,
        },
    }
    if monitoring is not None:
        stage["monitoring"] = monitoring
    recipe = {
        "name": "micro",
        "model": {"path": str(model_dir), "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "stages": [stage],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_healthy_micro_run_has_probes_and_an_empty_events_summary(tmp_path, micro_model_dir) -> None:
    resolved = resolve(load_recipe(_recipe(tmp_path, micro_model_dir, {"probe_items_per_category": 2})))
    result = train(resolved, runs_root=tmp_path / "runs", quiet=True)
    stage = result.stages[0].stage_dir
    assert result.completed
    summary = json.loads((stage / "result.json").read_text())
    assert summary["events"]["total"] == 0 and summary["events"]["rollbacks"] == []
    assert summary["stopped_by_monitor"] is None
    probes = _rows(stage / "probes.jsonl")
    assert [p["step"] for p in probes] == [0, 2, 4, 6, 8]  # start + every val_check_interval
    assert probes[0]["kl"] == 0.0 and all(p["kl"] >= 0 for p in probes)
    assert probes[-1]["kl"] > 0  # the model moved away from its start
    assert (stage / "probe_reference.pt").exists()


def test_rollback_restores_the_last_good_checkpoint_scales_the_lr_then_stops(
    tmp_path, micro_model_dir
) -> None:
    # a hair-trigger spike detector (fires once 3 losses are in its window) with the rollback policy
    monitoring = {
        "policies": {"loss_spike": "rollback", "forgetting": "off", "kl_drift": "off"},
        "thresholds": {"loss_spike": {"z": -1000.0, "min_ratio": 0.0, "min_history": 3}},
        "max_rollbacks": 1,
        "rollback_lr_scale": 0.5,
    }
    resolved = resolve(load_recipe(_recipe(tmp_path, micro_model_dir, monitoring)))
    result = train(resolved, runs_root=tmp_path / "runs", quiet=True)
    stage = result.stages[0].stage_dir
    assert not result.completed  # stopped by the monitor after the one allowed rollback
    events = _rows(stage / "events.jsonl")
    assert [(e["detector"], e["step"], e["action"], e["attempt"]) for e in events] == [
        ("loss_spike", 4, "rollback", 0),  # onset step 3 -> last complete checkpoint at or before it: 2
        ("loss_spike", 4, "stop", 1),  # the replayed history (steps 1-2) + step 3 fills the window again
    ]
    assert events[0]["causes"] and events[1]["message"].endswith("stopping instead)")
    state = json.loads((stage / "monitor.json").read_text())
    assert state["attempt"] == 1 and state["lr_segments"] == [[2, 0.5]]
    assert state["rollbacks"][0] | {"attempt": 0} == {
        "attempt": 0,
        "detector": "loss_spike",
        "detected_step": 4,
        "onset_step": 3,
        "to_step": 2,
        "lr_scale": 0.5,
    }
    # attempt 0's metrics are kept aside; the live file resumes from step 2 with half the LR
    assert [r["step"] for r in _rows(stage / "metrics.attempt-0.jsonl") if "loss" in r] == [1, 2, 3, 4]
    metrics = [r for r in _rows(stage / "metrics.jsonl") if "loss" in r]
    schedule = {r["step"]: r["lr"] for r in _rows(stage / "schedule.jsonl")}
    assert [r["step"] for r in metrics] == [1, 2, 3, 4]
    assert metrics[2]["lr"] == pytest.approx(schedule[2]) and schedule[2] == pytest.approx(
        0.5 * schedule[1], rel=0.2
    )
    # 'stop' saves and ends the stage: a checkpoint at the stop step, result.json says why, best exported
    summary = json.loads((stage / "result.json").read_text())
    assert summary["stopped_by_monitor"]["detector"] == "loss_spike" and summary["steps"] == 4
    assert summary["events"]["by_action"] == {"warn": 0, "stop": 1, "rollback": 1}
    assert summary["events"]["rollbacks"][0]["to_step"] == 2
    assert (stage / "checkpoints" / "checkpoint-4" / "COMPLETE").exists()
    assert (stage / "best" / "config.json").exists()
