"""The lm-evaluation-harness adapter on a tiny local task definition and the micro model (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.evaluation.lm_eval_adapter import run_tasks
from tunesmith.models.generate import generate_batch

pytest.importorskip("lm_eval", reason="lm-evaluation-harness is the optional extra `tunesmith[eval]`")

TASK_YAML = """\
task: tunesmith_local_sum
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{query}}}}"
doc_to_target: "{{{{response}}}}"
generation_kwargs:
  until: ["</s>"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def _task(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "local_sum.yaml").write_text(TASK_YAML.format(data=data))
    return folder


def test_local_task_scores_per_item_with_the_chat_template(micro_model, tmp_path) -> None:
    model, tokenizer = micro_model.model, micro_model.tokenizer
    queries = [f"Compute {i} + {i}." for i in range(8)]
    # the micro model is random: its own greedy answers are the references for half of the items, so a
    # correct adapter (same model, chat template, greedy) scores exactly those 4 items
    own = generate_batch(model, tokenizer, [[{"role": "user", "content": q}] for q in queries], 8)
    rows = [{"query": q, "response": own[i] if i % 2 == 0 else "zzzz"} for i, q in enumerate(queries)]
    result = run_tasks(model, tokenizer, ["tunesmith_local_sum"], include_path=_task(tmp_path / "t", rows))
    assert result.skipped == []
    assert result.summary["tunesmith_local_sum"] == {"metric": "exact_match", "score": 0.5, "items": 8}
    scores = {item["id"]: item["scores"]["score"] for item in result.items}
    assert scores == {f"tunesmith_local_sum/{i}": float(i % 2 == 0) for i in range(8)}
    assert [item["prediction"] for item in result.items[::2]] == own[::2]


def test_missing_data_and_unknown_tasks_are_skipped_with_one_line(micro_model, tmp_path) -> None:
    rows = [{"query": "x", "response": "y"}]
    folder = _task(tmp_path / "t", rows)
    (folder / "data.jsonl").unlink()  # the task's local data is gone
    result = run_tasks(micro_model.model, micro_model.tokenizer, ["tunesmith_local_sum", "no_such_task"],
                       include_path=folder)  # fmt: skip
    assert result.items == []
    assert len(result.skipped) == 2
    assert result.skipped[0].startswith(
        "lm-eval task tunesmith_local_sum skipped — its data is not available locally"
    )
    assert result.skipped[1].startswith("lm-eval task no_such_task skipped — no such task")
    assert all("\n" not in line for line in result.skipped)
