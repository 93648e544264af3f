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


def test_grid_sweep_halves_synchronously_matches_its_grid_twin_then_continues(
    tmp_path, micro_model_dir, monkeypatch, capsys
) -> None:
    import optuna

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
    configs = {
        frozenset({f"lr={lr}", f"customer_percent={cp}"}) for lr in ("0.001", "0.02") for cp in (50, 75)
    }
    # rungs at steps 1 and 3 of 6 (ceil(6/9), x3); 4 configurations -> 4 to the first rung, 1 to the second,
    # 1 to the end: every configuration paused at rung 1 before any continued
    assert len(rows) == 6 and {frozenset(r["config"].split()) for r in rows[:4]} == configs
    for row in rows[:4]:
        assert row["state"] == "PRUNED" and row["steps"] == row["pruned_step"] == "1"
        assert "paused at rung 1 (step 1)" in row["pruned_by"]
    study = optuna.load_study(study_name="micro-sweep-sweep", storage=f"sqlite:///{sweep / 'study.db'}")
    trials = study.get_trials()
    from tunesmith.sweeps.synchronous import ranking

    for trial in trials[:4]:  # each recorded its general probe items and its domain probe at the rung
        probe = trial.user_attrs["rung-probe:sft/0"]
        assert probe["step"] == 1 and len(probe["items"]) == 2 * 5 and 0 <= probe["domain"] <= 1
    first = ranking(trials, 0, "sft/0")[0]
    assert trials[4].user_attrs["promoted"]["from_trial"] == first.number  # the best at rung 1 continued
    assert rows[4]["config"] == rows[5]["config"] == rows[first.number]["config"]
    assert (
        rows[4]["state"] == "PRUNED"
        and rows[4]["steps"] == "3"
        and "paused at rung 2" in rows[4]["pruned_by"]
    )
    complete = rows[5]
    assert complete["state"] == "COMPLETE" and complete["steps"] == complete["planned_steps"] == "6"
    assert (
        float(complete["eval_seconds"]) > 0
        and float(complete["train_seconds"]) > 0
        and int(complete["tokens"]) > 0
    )
    assert (Path(complete["run_dir"]) / "eval" / "evaluation.json").exists()
    assert len({r["run_dir"] for r in rows if r["config"] == complete["config"]}) == 1  # one run, continued
    assert "promoted (rank 1 of 4" in out and out.count("trial ") >= 6 and "Pareto front" in out
    summary = json.loads((sweep / "sweep.json").read_text())
    assert summary["trials"]["COMPLETE"] == 1 and summary["trials"]["PRUNED"] == 5
    assert summary["compute"]["steps"] == 4 * 1 + (3 - 1) + (6 - 3)  # each step counted once
    best = summary["recommended"]
    if best is not None:
        assert best["trial"] == 5 and not best["significant_regression"]
        data = yaml.safe_load(exported.read_text())
        assert data["stages"][0]["hyperparameters"]["lr"] == best["config"]["stages[0].hyperparameters.lr"]
        assert main(["plan", str(exported)]) == 0
    # each trial keeps its intermediate numbers (step, validation token accuracy, probe accuracy); validations
    # every 2 steps plus the rungs' own steps
    history = trials[5].user_attrs["validation:sft"]
    assert [h[0] for h in history] == [4, 6] and all(0 <= h[1] <= 1 for h in history)
    assert [h[0] for h in trials[0].user_attrs["validation:sft"]] == [0, 1]
    # the exhaustive grid (--no-prune) runs the same schedule: the sweep's finished trial ends as its twin
    capsys.readouterr()
    argv = ["sweep", str(recipe), "--space", str(space), "--quiet", "--no-prune", "--name", "grid"]
    assert main(argv) == 0
    grid = _rows(tmp_path / "runs" / "grid" / "trials.csv")
    assert len(grid) == 4 and all(r["state"] == "COMPLETE" and r["steps"] == "6" for r in grid)
    twin = next(r for r in grid if r["config"] == complete["config"])
    for key in ("domain_score", "general_retention_percent", "general_score", "significant_regression"):
        assert twin[key] == complete[key], key
    # re-running continues the study: nothing left to train, same trials
    capsys.readouterr()
    assert main(["sweep", str(recipe), "--space", str(space), "--quiet"]) == 0
    assert _rows(sweep / "trials.csv") == rows
    assert "Pareto front" in capsys.readouterr().out
    # a study re-created beside its trials' folders: each trial continues its own folder instead of refusing
    # it ("run folder ... exists"); the finished one is read again, not trained again
    (sweep / "study.db").unlink()
    assert main(["sweep", str(recipe), "--space", str(space), "--quiet"]) == 0
    again = _rows(sweep / "trials.csv")
    assert {r["run_dir"] for r in again} == {r["run_dir"] for r in rows}
    finished = [r for r in again if r["run_dir"] == complete["run_dir"] and r["state"] == "COMPLETE"]
    assert finished and finished[0]["domain_score"] == complete["domain_score"]
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
