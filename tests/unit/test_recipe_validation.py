"""Every validation rule of the recipe gives one line naming the key path, the value and the rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main
from tunesmith.errors import RecipeError
from tunesmith.recipe.loading import apply_override, load_recipe, parse_key_path


@pytest.fixture
def data_file(tmp_path: Path) -> str:
    path = tmp_path / "train.jsonl"
    rows = (
        {"messages": [{"role": "user", "content": f"q {i}"}, {"role": "assistant", "content": f"a {i}"}]}
        for i in range(100)
    )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def _recipe(data_file: str, **stage_extra) -> dict:
    stage = {"technique": "sft", "data": {"train": data_file}}
    stage.update(stage_extra)
    return {"name": "r", "model": {"family": "tiny", "checkpoint": "post-trained"}, "stages": [stage]}


def _write(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _error(tmp_path: Path, recipe: dict, capsys, *overrides: str) -> str:
    path = _write(tmp_path, recipe)
    code = main(["plan", str(path), *overrides])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_misspelled_key_names_path_and_suggests(tmp_path, data_file, capsys) -> None:
    line = _error(tmp_path, _recipe(data_file, hyperparameters={"warmup_step": 10}), capsys)
    assert "stages[0].hyperparameters.warmup_step" in line
    assert "did you mean 'warmup_steps'" in line
    assert "recipe.yaml:" in line  # the file and line


def test_misspelled_top_level_key(tmp_path, data_file, capsys) -> None:
    recipe = _recipe(data_file)
    recipe["stagse"] = recipe.pop("stages")
    line = _error(tmp_path, recipe, capsys)
    assert "stagse" in line and "did you mean 'stages'" in line


@pytest.mark.parametrize(
    ("stage_extra", "expected"),
    [
        ({"data_mixing": {"customer_percent": 120}}, ["customer_percent = 120", "less than or equal to 100"]),
        ({"data_mixing": {"customer_percent": -1}}, ["customer_percent = -1", "greater than or equal to 0"]),
        ({"data_mixing": {"general": {"math": 50, "reasoning": 40}}}, ["sum to 100", "sum to 90"]),
        (
            {"data_mixing": {"general": {"maths": 100}}},
            ["unknown general category 'maths'", "did you mean 'math'"],
        ),
        ({"data_mixing": {"customer_percent": 100, "general": {"math": 100}}}, ["must be empty or all 0"]),
        ({"data_mixing": {"customer_percent": 50, "general": {"math": 0}}}, ["general shares are all 0"]),
        ({"hyperparameters": {"lr": 0}}, ["lr = 0", "greater than 0"]),
        ({"hyperparameters": {"lr": "fast"}}, ["lr = 'fast'", "valid number"]),
        ({"hyperparameters": {"lr": 1e-5, "min_lr": 1e-4}}, ["min_lr", "must not exceed lr"]),
        ({"hyperparameters": {"warmup_steps": 5, "warmup_ratio": 0.1}}, ["warmup_steps or warmup_ratio"]),
        ({"hyperparameters": {"warmup_ratio": 1.5}}, ["warmup_ratio = 1.5", "less than 1"]),
        ({"hyperparameters": {"max_steps": 10, "max_epochs": 1}}, ["max_steps or max_epochs"]),
        ({"hyperparameters": {"max_steps": 0}}, ["max_steps = 0"]),
        (
            {"hyperparameters": {"global_batch_size": 8, "micro_batch_size": 16}},
            ["must not exceed global_batch_size"],
        ),
        ({"hyperparameters": {"max_length": 4}}, ["max_length = 4", "greater than or equal to 8"]),
        ({"hyperparameters": {"weight_decay": 2}}, ["weight_decay = 2"]),
        ({"hyperparameters": {"grad_clip": -1}}, ["grad_clip = -1"]),
        ({"hyperparameters": {"lora": {"rank": 0}}}, ["lora.rank = 0"]),
        ({"hyperparameters": {"lora": {"dropout": 1.0}}}, ["lora.dropout = 1.0"]),
        ({"hyperparameters": {"lora": {"target_modules": 5}}}, ["target_modules = 5", "'all-linear'"]),
        ({"mode": "full", "hyperparameters": {"lora": {"rank": 4}}}, ["mode is full"]),
        ({"mode": "qlora"}, ["mode = 'qlora'", "'lora' or 'full'"]),
        ({"technique": "ppo"}, ["technique = 'ppo'"]),
        ({"technique": "rft"}, ["rft.reward"]),
        ({"rft": {"reward": "exact_match"}}, ["belong to rft stages"]),
        (
            {"technique": "rft", "rft": {"reward": "exact_match", "number_generation": 1}},
            ["number_generation = 1"],
        ),
        ({"technique": "rft", "rft": {"reward": "exact_match", "temperature": 0}}, ["temperature = 0"]),
        ({"scale": "large"}, ["cpt stages only"]),
        ({"name": "a/b"}, ["plain folder name"]),
        ({"hyperparameters": {"val_check_interval": 0}}, ["val_check_interval = 0"]),
        ({"hyperparameters": {"save_top_k": 0}}, ["save_top_k = 0"]),
    ],
)
def test_stage_rules(tmp_path, data_file, capsys, stage_extra: dict, expected: list[str]) -> None:
    line = _error(tmp_path, _recipe(data_file, **stage_extra), capsys)
    for fragment in expected:
        assert fragment in line, line


def test_model_rules(tmp_path, data_file, capsys) -> None:
    recipe = _recipe(data_file)
    recipe["model"] = {"family": "tinny"}
    assert "unknown family 'tinny'" in _error(tmp_path, recipe, capsys)
    recipe["model"] = {"family": "qwen3-0.6b", "checkpoint": "mid-trained"}
    assert "publishes no mid-trained checkpoint" in _error(tmp_path, recipe, capsys)
    recipe["model"] = {"checkpoint": "post-trained"}
    assert "set `family`" in _error(tmp_path, recipe, capsys)
    recipe["model"] = {"family": "tiny", "checkpoint": "final"}
    assert "model.checkpoint = 'final'" in _error(tmp_path, recipe, capsys)


def test_recipe_level_rules(tmp_path, data_file, capsys) -> None:
    recipe = _recipe(data_file)
    recipe["stages"] = []
    assert "stages" in _error(tmp_path, recipe, capsys)
    recipe = _recipe(data_file, name="same")
    recipe["stages"].append(dict(recipe["stages"][0]))
    assert "used twice" in _error(tmp_path, recipe, capsys)
    recipe = _recipe(data_file)
    del recipe["name"]
    assert "missing required key 'name'" in _error(tmp_path, recipe, capsys)


def test_resolve_time_rules(tmp_path, data_file, capsys) -> None:
    line = _error(
        tmp_path,
        _recipe(data_file, hyperparameters={"max_steps": 10, "warmup_steps": 8, "constant_steps": 5}),
        capsys,
    )
    assert "exceed the stage's 10 optimizer steps" in line
    line = _error(
        tmp_path,
        _recipe(data_file, hyperparameters={"global_batch_size": 64, "micro_batch_size": 48}),
        capsys,
    )
    assert "not a multiple of micro_batch_size" in line
    line = _error(tmp_path, _recipe(str(tmp_path / "missing.jsonl")), capsys)
    assert "missing.jsonl: data file not found" in line


def test_file_level_errors(tmp_path, capsys) -> None:
    assert main(["plan", str(tmp_path / "nope.yaml")]) == 2
    assert "recipe file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstages: [\n")
    assert main(["plan", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:" in err and "YAML" in err and len(err.strip().splitlines()) == 1
    bad.write_text("- a\n- b\n")
    assert main(["plan", str(bad)]) == 2
    assert "mapping of keys" in capsys.readouterr().err
    bad.write_text("")
    assert main(["plan", str(bad)]) == 2
    assert "empty" in capsys.readouterr().err


def test_overrides(tmp_path, data_file) -> None:
    path = _write(tmp_path, _recipe(data_file))
    recipe = load_recipe(
        path, ["stages[0].hyperparameters.lr=3e-3", "stages.sft.data_mixing.customer_percent=75", "seed=7"]
    )
    assert recipe.stages[0].hyperparameters.lr == pytest.approx(3e-3)
    assert recipe.stages[0].data_mixing.customer_percent == 75
    assert recipe.seed == 7
    assert parse_key_path("stages.0.hyperparameters.lora.rank") == [
        "stages",
        0,
        "hyperparameters",
        "lora",
        "rank",
    ]
    with pytest.raises(RecipeError, match="no stage named 'sfft'.*did you mean 'sft'"):
        load_recipe(path, ["stages.sfft.hyperparameters.lr=1"])
    with pytest.raises(RecipeError, match="out of range"):
        load_recipe(path, ["stages[3].hyperparameters.lr=1"])
    with pytest.raises(RecipeError, match="expected key.path=value"):
        load_recipe(path, ["stages[0].hyperparameters.lr"])
    with pytest.raises(RecipeError, match="warmup_stepz.*did you mean 'warmup_steps'"):
        load_recipe(path, ["stages[0].hyperparameters.warmup_stepz=3"])
    data: dict = {"a": [{"name": "x"}]}
    apply_override(data, "a.x.b.c=1")
    assert data == {"a": [{"name": "x", "b": {"c": 1}}]}
