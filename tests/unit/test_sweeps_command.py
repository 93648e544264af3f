"""`tunesmith sweep` end to end on the micro model: every trial trains and evaluates through the normal
path, the grid is complete, pruned trials stop early, the study continues on a re-run, --export writes a
recipe that `plan` accepts, and a malformed space fails before any training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main

pytest.importorskip("optuna")


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _sft_rows(n: int, offset: int = 0) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"Brindle: price of K{(i + offset) % 6}?"},
                {"role": "assistant", "content": f"{(i + offset) % 6} brix"},
            ]
        }
        for i in range(n)
    ]


def micro_recipe(tmp_path: Path, model_dir: Path, *, steps: int = 6) -> Path:
    domain = [
        {"query": f"Brindle: price of K{i}?", "response": f"{i} brix", "metadata": {"category": "price"}}
        for i in range(6)
    ]
    recipe = {
        "name": "micro-sweep",
        "model": {"path": str(model_dir), "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "acknowledge": {"lr-deviates-while-mixing": "micro test model", "customer-share-far-from-50": "test"},
        "stages": [
            {
                "technique": "sft",
                "mode": "lora",
                "data": {
                    "train": _jsonl(tmp_path / "train.jsonl", _sft_rows(48)),
                    "validation": _jsonl(tmp_path / "val.jsonl", _sft_rows(8, offset=3)),
                },
                "data_mixing": {
                    "customer_percent": 50,
                    "general": {"reasoning-instruction-following": 50, "math": 50},
                },
                "hyperparameters": {
                    "max_steps": steps,
                    "global_batch_size": 8,
                    "micro_batch_size": 8,
                    "val_check_interval": 2,
                    "lr": 3e-3,
                    "save_top_k": 1,
                },
            }
        ],
        "evaluation": {
            "suites": ["general", "domain"],
            "domain": _jsonl(tmp_path / "domain.jsonl", domain),
            "general_items_per_category": 2,
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


SPACE = {
    "stages[0].hyperparameters.lr": [1.0e-3, 2.0e-2],
    "stages[0].data_mixing.customer_percent": [50, 75],
}


def _rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_grid_sweep_trains_every_configuration_once_then_continues(
    tmp_path, micro_model_dir, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    recipe = micro_recipe(tmp_path, micro_model_dir)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    exported = tmp_path / "best.yaml"
    argv = ["sweep", str(recipe), "--space", str(space), "--quiet", "--export", str(exported)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    sweep = tmp_path / "runs" / "micro-sweep-sweep"
    rows = _rows(sweep / "trials.csv")
    assert len(rows) == 4
    assert {frozenset(r["config"].split()) for r in rows} == {
        frozenset({f"lr={lr}", f"customer_percent={cp}"}) for lr in ("0.001", "0.02") for cp in (50, 75)
    }
    assert {r["state"] for r in rows} <= {"COMPLETE", "PRUNED"}
    # the first trial at a rung is never pruned: at least one completes, with objectives and compute
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert complete
    for row in complete:
        assert int(row["steps"]) == int(row["planned_steps"]) == 6
        assert float(row["eval_seconds"]) > 0 and float(row["train_seconds"]) > 0
        assert int(row["tokens"]) > 0
        assert float(row["general_retention_percent"]) >= 0 and row["domain_gain_points"] != ""
        assert (Path(row["run_dir"]) / "eval" / "evaluation.json").exists()
    for row in rows:
        if row["state"] == "PRUNED":
            assert int(row["steps"]) < 6 and int(row["pruned_step"]) == int(row["steps"])
            assert "successive halving" in row["pruned_by"] or "monitor" in row["pruned_by"]
    assert out.count("trial ") >= 4 and "Pareto front" in out
    summary = json.loads((sweep / "sweep.json").read_text())
    assert summary["trials"]["COMPLETE"] == len(complete)
    assert summary["compute"]["steps"] == sum(int(r["steps"]) for r in rows)
    if summary["recommended"] is not None:
        best = summary["recommended"]
        assert not best["significant_regression"]
        eligible = [r for r in complete if r["significant_regression"] == "False"]
        assert best["domain_gain_points"] == max(float(r["domain_gain_points"]) for r in eligible)
        data = yaml.safe_load(exported.read_text())
        stage = data["stages"][0]
        assert stage["hyperparameters"]["lr"] == best["config"]["stages[0].hyperparameters.lr"]
        assert (
            stage["data_mixing"]["customer_percent"]
            == best["config"]["stages[0].data_mixing.customer_percent"]
        )
        assert main(["plan", str(exported)]) == 0
    # each trial keeps its intermediate numbers (step, validation token accuracy, probe accuracy) in the study
    import optuna

    study = optuna.load_study(study_name="micro-sweep-sweep", storage=f"sqlite:///{sweep / 'study.db'}")
    for trial in study.get_trials():
        history = trial.user_attrs["validation:sft"]
        # validations every 2 steps, plus the rungs' own steps (ceil(6/9) = 1; 2 is a validation anyway)
        assert [h[0] for h in history] == [0, 1, 2, 4, 6][: len(history)] and history
        assert all(0 <= h[1] <= 1 for h in history)
    # re-running continues the study: nothing left to train, same trials
    capsys.readouterr()
    assert main(["sweep", str(recipe), "--space", str(space), "--quiet"]) == 0
    assert len(_rows(sweep / "trials.csv")) == 4
    assert "Pareto front" in capsys.readouterr().out
    # a study re-created beside its trials' folders (or a re-queued trial whose folder an interrupted run
    # left): each trial continues its own folder instead of refusing it ("run folder ... exists")
    trained = {r["run_dir"]: r for r in rows}
    (sweep / "study.db").unlink()
    assert main(["sweep", str(recipe), "--space", str(space), "--quiet"]) == 0
    again = _rows(sweep / "trials.csv")
    assert len(again) == 4 and {r["run_dir"] for r in again} == set(trained)
    for row in again:
        if trained[row["run_dir"]]["state"] == "COMPLETE":  # finished: read again, not trained again
            assert (
                row["state"] == "COMPLETE" and row["domain_score"] == trained[row["run_dir"]]["domain_score"]
            )
    # the same folders with other settings are refused in one line, before any training
    (sweep / "study.db").unlink()
    capsys.readouterr()
    argv = ["sweep", str(recipe), "--space", str(space), "--quiet", "stages[0].hyperparameters.max_steps=4"]
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tunesmith: error")]
    assert len(errors) == 1 and "was trained with other settings" in errors[0] and "max_steps" in errors[0]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"stages[0].hyperparameters.lrr": [1.0e-3]}, "'stages[0].hyperparameters.lrr'"),
        ({"stages[0].hyperparameters.lr": []}, "'stages[0].hyperparameters.lr': the list of values is empty"),
        ({"stages[0].hyperparameters.lr": {"low": 1.0e-2, "high": 1.0e-4}}, "range low 0.01 > high 0.0001"),
        ({"stages[0].data_mixing.customer_percent": ["half"]}, "'stages[0].data_mixing.customer_percent'"),
    ],
)
def test_malformed_space_fails_in_one_line_before_training(
    tmp_path, micro_model_dir, monkeypatch, capsys, space, message
) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    recipe = micro_recipe(tmp_path, micro_model_dir)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    assert main(["sweep", str(recipe), "--space", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "runs").exists()  # nothing trained, no study created
