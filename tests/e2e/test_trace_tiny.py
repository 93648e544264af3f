"""Spike tracing on the real tiny family: a garbage row planted in the Brindle demonstrations makes a loss
spike; the event and `tunesmith trace` name it by file and line with its loss, and a rollback with
`monitoring.skip_data` trains the step again without it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main
from tunesmith.data.builtin import resolve_builtin, to_bedrock
from tunesmith.data.origins import read_origins
from tunesmith.training.trace import trace_step

pytestmark = pytest.mark.e2e

STEPS, BATCH = 64, 8
GARBAGE_LINE = 458  # with 512 rows and seed 0, the shuffled mix trains this line at step 50 (asserted below)


def _run(tmp_path: Path, monitoring: dict) -> Path:
    rows = [line for line in resolve_builtin("builtin:brindle/sft").read_text().splitlines() if line.strip()]
    rows = rows[: STEPS * BATCH]
    rng = random.Random(0)
    junk = "".join(rng.choice("qxzjv#@%&*0123456789 ") for _ in range(400))
    rows[GARBAGE_LINE - 1] = json.dumps(to_bedrock([{"role": "user", "content": "Part?"},
                                                     {"role": "assistant", "content": junk}]))  # fmt: skip
    data = tmp_path / "brindle.jsonl"
    data.write_text("\n".join(rows) + "\n")
    stage = {
        "name": "sft",
        "technique": "sft",
        "mode": "full",
        "data": {"train": str(data)},
        "data_mixing": {"customer_percent": 100},
        "hyperparameters": {
            "max_steps": STEPS,
            "global_batch_size": BATCH,
            "micro_batch_size": BATCH,
            "val_check_interval": 16,
            "lr": 1e-3,
        },
        # a 20-step window: the default 50 would still hold the first steps' fast fall at step 50
        "monitoring": {
            "policies": {"forgetting": "off", "kl_drift": "off", **monitoring.pop("policies", {})},
            "thresholds": {"loss_spike": {"min_history": 10, "window": 20}},
            **monitoring,
        },
    }
    recipe = {
        "name": "spike",
        "model": {"family": "tiny", "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "stages": [stage],
        "acknowledge": {"customer-share-far-from-50@sft": "test", "full-rank-without-lora@sft": "test"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["train", str(path), "--quiet", "--no-eval"]) == 0
    return tmp_path / "runs" / "spike"


def _events(stage: Path) -> list[dict]:
    return [json.loads(line) for line in (stage / "events.jsonl").read_text().splitlines()]


def test_a_planted_garbage_row_is_named_by_file_and_line(tiny_family, tmp_path, capsys) -> None:
    run = _run(tmp_path, {})
    stage = run / "sft"
    origins = read_origins(stage / "data", range(STEPS * BATCH))
    landed = next(i for i, o in origins.items() if o.line == GARBAGE_LINE)
    assert landed // BATCH + 1 == 50, "the mix's order changed: pick a GARBAGE_LINE trained after step 20"
    spikes = [e for e in _events(stage) if e["detector"] == "loss_spike"]
    assert [e["step"] for e in spikes] == [50]
    rows = spikes[0]["details"]["rows"]
    suspects = [r for r in rows if r["suspect"]]
    assert len(rows) == BATCH and [(r["file"], r["line"]) for r in suspects] == [
        (str(tmp_path / "brindle.jsonl"), GARBAGE_LINE)
    ]
    others = [r["loss"] for r in rows if not r["suspect"]]
    assert suspects[0]["loss"] > 5 * max(others)  # measured: 9.31 against at most 0.64
    assert f"brindle.jsonl:{GARBAGE_LINE} (loss" in next(
        c for c in spikes[0]["causes"] if c.startswith("data quality")
    )
    capsys.readouterr()
    assert main(["trace", str(run), "--step", "50"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert f"brindle.jsonl:{GARBAGE_LINE}" in printed[1] and printed[1].endswith("<- suspect")
    assert len(printed) == 1 + BATCH


def test_a_rollback_with_skip_data_trains_the_step_again_without_the_row(tiny_family, tmp_path) -> None:
    run = _run(tmp_path, {"policies": {"loss_spike": "rollback"}, "skip_data": True})
    stage = run / "sft"
    events = _events(stage)
    assert [(e["detector"], e["step"], e["action"], e["attempt"]) for e in events] == [
        ("loss_spike", 50, "rollback", 0)
    ]
    state = json.loads((stage / "monitor.json").read_text())
    garbage_row = next(r["row"] for r in events[0]["details"]["rows"] if r["suspect"])
    assert state["skipped_rows"] == [garbage_row - 1] and state["rollbacks"][0]["to_step"] == 48
    assert state["rollbacks"][0]["skipped_rows"] == [garbage_row]
    again = trace_step(run, 50)
    assert again.attempt == 1 and len(again.rows) == BATCH - 1  # the step's seven other rows
    assert all(r.line != GARBAGE_LINE for r in again.rows)
    metrics = [json.loads(x) for x in (stage / "metrics.jsonl").read_text().splitlines()]
    loss_at_50 = next(r["loss"] for r in metrics if r.get("step") == 50 and "loss" in r)
    assert loss_at_50 < 2.0  # the spike was 6.5; without the row the step is an ordinary one
    assert json.loads((stage / "result.json").read_text())["steps"] == STEPS
