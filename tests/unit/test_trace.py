"""Spike tracing: origins of the mixed rows, the collator that carries example indices (and skips rows), the
per-step record, the outlier rule, event annotation and `trace_step` / `tunesmith trace`."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tunesmith.cli import main
from tunesmith.data.origins import OriginsWriter, read_origins
from tunesmith.errors import UserError
from tunesmith.monitoring import Event
from tunesmith.training.trace import (
    EXAMPLE_IDS,
    EXAMPLE_INDEX,
    StepTracer,
    TracingCollator,
    outliers,
    suspect_rows,
    trace_step,
)


def _example(source: str, file: str, line: int) -> SimpleNamespace:
    return SimpleNamespace(source=source, file=file, line=line)


def test_origins_round_trip_by_seek(tmp_path: Path) -> None:
    writer = OriginsWriter(tmp_path)
    stream = [_example("customer", "/d/a.jsonl", n) for n in (5, 9, 2)] + [
        _example("math", "general:math", 17)
    ]
    assert list(writer.track(stream)) == stream  # passes the examples through, saves at the end
    assert (tmp_path / "origins.bin").stat().st_size == 4 * 8
    found = read_origins(tmp_path, [3, 1, 99])
    assert found is not None and sorted(found) == [1, 3]  # 99 is past the record: left out
    assert (found[1].file, found[1].line, found[1].where) == ("/d/a.jsonl", 9, "/d/a.jsonl:9")
    assert (found[3].source, found[3].where) == ("math", "general:math row 17")
    assert read_origins(tmp_path / "none", [0]) is None


def test_collator_moves_the_index_to_the_batch_and_skips_rows() -> None:
    seen: list[list[dict]] = []

    def inner(features: list[dict]) -> dict:
        seen.append(features)
        return {
            "input_ids": torch.tensor([f["input_ids"] + [0] * (3 - len(f["input_ids"])) for f in features])
        }

    collator = TracingCollator(inner, skip=frozenset({11}))
    batch = collator([{"input_ids": [1, 2], EXAMPLE_INDEX: 10}, {"input_ids": [3, 4, 5], EXAMPLE_INDEX: 11}])
    assert batch[EXAMPLE_IDS].tolist() == [10] and batch["input_ids"].shape == (1, 3)
    assert all(EXAMPLE_INDEX not in f for f in seen[-1])
    # every example skipped: one stays, cut to a single token (nothing to predict), and no id is reported
    batch = collator([{"input_ids": [3, 4, 5], EXAMPLE_INDEX: 11}])
    assert seen[-1] == [{"input_ids": [3]}] and batch[EXAMPLE_IDS].tolist() == []
    # validation batches carry no index: passed through untouched
    batch = collator([{"input_ids": [7]}])
    assert EXAMPLE_IDS not in batch and seen[-1] == [{"input_ids": [7]}]


def test_outliers_are_rows_far_above_the_others() -> None:
    assert outliers({0: 0.5, 1: 0.6, 2: 0.4, 3: 0.55, 4: 9.3, 5: 0.45}) == {4}
    assert outliers({0: 0.5, 1: 0.6, 2: 0.4, 3: 0.55, 4: 0.7, 5: 0.45}) == set()  # a plain step
    assert outliers({0: 0.5, 1: 9.0}) == set()  # too few rows to tell


def _state(step: int) -> SimpleNamespace:
    return SimpleNamespace(global_step=step)


def test_tracer_records_steps_and_a_resume_drops_the_later_ones(tmp_path: Path) -> None:
    tracer = StepTracer(tmp_path)
    for step, ids in ((1, [[0, 1], [2, 3]]), (2, [[5, 4]]), (3, [[6]])):
        for micro in ids:
            tracer.add(torch.tensor(micro))
        tracer.on_step_end(None, _state(step), None)
    tracer.close()
    rows = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert [(r["step"], r["rows"]) for r in rows] == [(1, [0, 1, 2, 3]), (2, [5, 4]), (3, [6])]
    resumed = StepTracer(tmp_path, attempt=1, resume_step=2)
    assert [json.loads(x)["step"] for x in (tmp_path / "trace.jsonl").read_text().splitlines()] == [1, 2]
    resumed.add([8])
    resumed.on_step_end(None, _state(3), None)
    resumed.close()
    last = json.loads((tmp_path / "trace.jsonl").read_text().splitlines()[-1])
    assert last == {"step": 3, "attempt": 1, "rows": [8]}


def _traced_stage(tmp_path: Path) -> tuple[Path, StepTracer]:
    stage = tmp_path / "runs" / "r" / "sft"
    (stage / "data").mkdir(parents=True)
    writer = OriginsWriter(stage / "data")
    for n in range(6):
        writer.add("customer", "/d/train.jsonl", 100 + n)
    writer.save()
    tracer = StepTracer(stage)
    tracer.add([0, 1, 2, 3, 4, 5])
    tracer.on_step_end(None, _state(1), None)
    tracer.close()
    return stage, tracer


def test_annotate_names_the_outlier_rows_and_trace_step_reads_them(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    stage, tracer = _traced_stage(tmp_path)
    losses = {0: 0.5, 1: 0.6, 2: 8.0, 3: 0.4, 4: 0.55, 5: 0.45}
    tracer.trainer = object()
    monkeypatch.setattr(StepTracer, "losses", lambda self, indices, model: {i: losses[i] for i in indices})
    event = Event("loss_spike", 1, "warn", "loss 3 is ...", ("lr first", "data quality: inspect lines 1-6"))
    other = Event("plateau", 1, "warn", "flat", ("data quality: x",))
    spike, plateau = tracer.annotate([event, other], model=object())
    assert plateau == other  # not a traced detector
    rows = spike.details["rows"]
    assert rows[0] == {"row": 3, "source": "customer", "file": "/d/train.jsonl", "line": 102, "loss": 8.0,
                       "suspect": True}  # fmt: skip
    assert [r["suspect"] for r in rows].count(True) == 1 and len(rows) == 6
    assert spike.causes[0] == "lr first"
    assert spike.causes[1].startswith("data quality: the outlier rows of step 1: /d/train.jsonl:102 (loss 8)")
    assert f"tunesmith trace {stage.parent} --stage sft --step 1" in spike.causes[1]
    assert suspect_rows(spike) == [2]
    (stage / "events.jsonl").write_text(json.dumps(spike.to_json()) + "\n")

    trace = trace_step(stage.parent, 1)
    assert trace.stage == "sft" and trace.events == ["loss_spike"]
    assert [(r.row, r.line, r.loss, r.suspect) for r in trace.rows[:2]] == [
        (3, 102, 8.0, True),
        (2, 101, 0.6, False),
    ]
    assert main(["trace", str(stage.parent), "--step", "1"]) == 0
    out = capsys.readouterr().out
    assert "/d/train.jsonl:102" in out and "<- suspect" in out and out.count("<- suspect") == 1


def test_trace_errors_are_one_line(tmp_path: Path, capsys) -> None:
    stage, _ = _traced_stage(tmp_path)
    with pytest.raises(UserError, match="no step 7 — the stage recorded steps 1-1"):
        trace_step(stage.parent, 7)
    with pytest.raises(UserError, match="stage 'cpt' has no trace record — traced stages: sft"):
        trace_step(stage.parent, 1, "cpt")
    with pytest.raises(UserError, match="no such run folder"):
        trace_step(tmp_path / "missing", 1)
    (stage.parent / "rft").mkdir()
    (stage.parent / "rft" / "trace.jsonl").write_text('{"step": 1, "attempt": 0, "rows": []}\n')
    assert main(["trace", str(stage.parent), "--step", "1"]) == 2
    assert "several traced stages (rft, sft) — pick one with --stage" in capsys.readouterr().err


def test_per_example_losses_match_the_models_own_loss(micro_model) -> None:
    from datasets import Dataset

    from tunesmith.training.trace import with_example_index

    rows = [[5, 9, 11, 13, 7], [4, 4, 20, 31], [8, 12, 16, 24, 30, 33]]
    labels = [[-100, -100, 11, 13, 7], [-100, 4, 20, 31], [-100, -100, -100, 24, 30, 33]]
    dataset = with_example_index(Dataset.from_dict({"input_ids": rows, "labels": labels}))

    def collate(features: list[dict]) -> dict:
        return {
            "input_ids": torch.tensor([f["input_ids"] for f in features]),
            "labels": torch.tensor([f["labels"] for f in features]),
        }

    tracer = StepTracer.__new__(StepTracer)
    tracer.trainer = SimpleNamespace(train_dataset=dataset, data_collator=TracingCollator(collate))
    model = micro_model.model
    measured = tracer.losses([2, 0], model)
    with torch.no_grad():
        for index in (0, 2):
            ids, target = torch.tensor([rows[index]]), torch.tensor([labels[index]])
            expected = model(input_ids=ids, labels=target).loss.item()  # mean over the labelled tokens
            assert measured[index] == pytest.approx(expected, abs=1e-4)
    assert sorted(measured) == [0, 2] and model.training is micro_model.model.training
