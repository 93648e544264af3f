"""The data snapshot: one streaming pass per stage file, shared by resolve, lint and the mixer."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest
import yaml

from tunesmith.advisor.lint import lint
from tunesmith.data.formats import read_examples
from tunesmith.data.mixing import CustomerData
from tunesmith.data.snapshot import HEAD_EXAMPLES, take_snapshot
from tunesmith.recipe.plan import plan
from tunesmith.training.data import prepare_stage_data


def _sft_rows(count: int, *, prefix: str = "q") -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"{prefix}{i}?"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
        for i in range(count)
    ]


def _write(path: Path, rows: list[dict], *, extra: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + extra)
    return path


def test_counts_fingerprint_and_a_bounded_head(tmp_path: Path) -> None:
    rows = _sft_rows(HEAD_EXAMPLES + 500)
    rows[3]["quality"] = "high"
    path = _write(tmp_path / "a.jsonl", rows, extra="\n{not json}\n")
    snapshot = take_snapshot(path, "sft")
    assert snapshot.records == HEAD_EXAMPLES + 501  # every non-blank line, the invalid one too
    assert snapshot.examples == HEAD_EXAMPLES + 500 and snapshot.high_quality == 1
    assert len(snapshot.head) == HEAD_EXAMPLES + 1  # the file is not held: only the head sample
    assert snapshot.first_issue().startswith(f"{path}:{HEAD_EXAMPLES + 502}: invalid JSON")
    same = take_snapshot(_write(tmp_path / "b.jsonl", rows, extra="\n{not json}\n"), "sft")
    assert same.fingerprint == snapshot.fingerprint  # the bytes, not the file name
    rows[0]["messages"][1]["content"] = "changed"
    assert take_snapshot(_write(tmp_path / "c.jsonl", rows), "sft").fingerprint != snapshot.fingerprint


def test_txt_records_are_lines_and_unreadable_files_keep_their_line_count(tmp_path: Path) -> None:
    text = tmp_path / "doc.txt"
    text.write_text("one\ntwo\n\nthree\n")
    snapshot = take_snapshot(text, "cpt")
    assert (snapshot.records, snapshot.examples, snapshot.error) == (3, 2, None)
    wrong = take_snapshot(text, "sft")  # a .txt file cannot hold SFT data
    assert wrong.records == 3 and "holds CPT documents" in wrong.error


def _recipe(tmp_path: Path, train: Path) -> Path:
    recipe = {
        "name": "scan-count",
        "model": {"family": "tiny", "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "stages": [
            {
                "technique": "sft",
                "mode": "full",
                "data": {"train": str(train)},
                "hyperparameters": {"max_steps": 20, "global_batch_size": 8},
            }
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_train_reads_the_customer_file_once_before_the_mix_streams(tmp_path: Path, monkeypatch) -> None:
    """resolve + lint + the mix's pre-scan read the user's file once; the streamed mix then reads it once
    per pass (the only other reads). Counted as opens of the file, whoever opens it."""
    train = _write(tmp_path / "train.jsonl", _sft_rows(120))
    opens: list[str] = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if str(file) == str(train):
            opens.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    list(read_examples(train, "sft"))
    per_pass = len(opens)  # opens of one reader pass (the format sniff included)
    assert per_pass >= 1
    opens.clear()
    resolved = plan(_recipe(tmp_path, train))
    lint(resolved)
    assert len(opens) == per_pass  # resolve, plan and lint: one pass in all
    stage, stage_plan = resolved.recipe.stages[0], resolved.stages[0]
    data = prepare_stage_data(
        stage,
        stage_dir=tmp_path / "stage",
        total_examples=stage_plan.numbers["total_steps"] * stage.hyperparameters.global_batch_size,
        seed=stage.hyperparameters.seed,
        quiet=True,
        snapshot=stage_plan.train_data,
    )
    passes = data.mix_report["sources"]["customer"]["passes"]
    assert passes >= 1 and len(opens) == per_pass * (1 + passes)  # no pre-scan of its own in the mix


def test_the_snapshot_gives_the_same_training_file_as_a_prescan(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.jsonl", _sft_rows(120))
    resolved = plan(_recipe(tmp_path, train))
    stage, stage_plan = resolved.recipe.stages[0], resolved.stages[0]
    files = []
    for folder, snapshot in (("with", stage_plan.train_data), ("without", None)):
        data = prepare_stage_data(
            stage, stage_dir=tmp_path / folder, total_examples=160, seed=2, quiet=True, snapshot=snapshot
        )
        files.append(
            (data.train_file.read_bytes(), json.loads((tmp_path / folder / "data" / "mix.json").read_text()))
        )
    assert files[0] == files[1]


def test_an_invalid_line_stops_plan_and_the_mix_as_data_inspect_does(tmp_path: Path) -> None:
    from tunesmith.data.snapshot import take_snapshot
    from tunesmith.errors import DataError

    train = _write(tmp_path / "train.jsonl", _sft_rows(50), extra='{"messages": []}\n')
    with pytest.raises(DataError, match=":51:"):  # nothing is computed from a file training would refuse
        plan(_recipe(tmp_path, train))
    resolved = plan(_recipe(tmp_path, _write(tmp_path / "ok.jsonl", _sft_rows(50))))
    assert resolved.stages[0].numbers["customer_examples"] == 50
    with pytest.raises(DataError, match=":51:"):
        CustomerData.from_snapshot(take_snapshot(train, "sft"))


def test_an_unchanged_file_is_read_once_per_process_and_a_changed_one_again(tmp_path) -> None:
    path = tmp_path / "cpt.txt"
    path.write_text("one document\n\nanother one\n")
    first = take_snapshot(path, "cpt")
    assert take_snapshot(path, "cpt") is first  # plan, lint and train in one process: one pass
    path.write_text("one document\n\nanother one\n\na third, longer document\n")
    changed = take_snapshot(path, "cpt")
    assert changed is not first and changed.examples == first.examples + 1
