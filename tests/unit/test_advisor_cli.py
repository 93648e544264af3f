"""`tunesmith lint` / `advise` through the real CLI entry point, and lint inside `plan`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.cli import main
from tunesmith.recipe.loading import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))
MIXED = str(Path(__file__).resolve().parents[2] / "recipes" / "tiny-sft-lora-mixed.yaml")


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_lint_without_errors(recipe: Path, capsys) -> None:
    from tunesmith.models.catalog import FAMILIES
    from tunesmith.models.loading import unavailable_reason
    from tunesmith.recipe.resolve import start_ref

    model = load_recipe(recipe).model
    # real weights absent; a registry family (pulled on first use, never by lint) is never missing to lint
    registry = model.family is not None and FAMILIES[model.family].kind == "registry"
    missing = None if model.family == "tiny" or registry else unavailable_reason(start_ref(model))
    assert main(["lint", str(recipe)]) == (1 if missing else 0)
    out = capsys.readouterr().out
    if missing:  # the one error is the missing model, named with the fix
        assert out.startswith(f"ERROR model-not-available: model: {missing}") and out.count("ERROR") == 1
        out = out.split("\n", 1)[1]
    assert "ERROR" not in out
    for line in out.splitlines():
        assert line.split(" ", 1)[0] in ("WARNING", "INFO") and " — " in line and line.endswith(")")


def test_lint_exit_codes_strict_and_json(capsys) -> None:
    assert main(["lint", MIXED]) == 0  # its one finding is acknowledged in the recipe, with the reason
    assert capsys.readouterr().out.startswith(
        "INFO sft-epochs-over-narrow-data: stages[0] (sft): SFT makes 4.27"
    )
    warn = "stages[0].data_mixing.customer_percent=90"
    assert main(["lint", MIXED, warn]) == 0
    assert (
        "WARNING customer-share-far-from-50: stages[0] (sft): customer_percent is 90"
        in capsys.readouterr().out
    )
    assert main(["lint", MIXED, warn, "--strict"]) == 1
    capsys.readouterr()
    assert main(["lint", MIXED, "stages[0].hyperparameters.lr=1e-3", "--format", "json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["exit_code"] == 1
    assert [f["rule"] for f in payload["findings"] if f["severity"] == "error"] == [
        "lr-deviates-while-mixing"
    ]


def test_lint_takes_the_probe_result(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "rft.yaml"
    recipe.write_text(
        "name: r\nmodel: {family: tiny}\nstages:\n  - technique: rft\n    data: {train: builtin:brindle/rft, "
        "validation: builtin:brindle/rft-validation}\n    rft: {reward: builtin:brindle}\n"
    )
    assert main(["lint", str(recipe), "--probe-positive-rate", "0.01"]) == 1
    assert "ERROR rft-without-sft-or-probe" in capsys.readouterr().out
    assert main(["lint", str(recipe), "--probe-positive-rate", "0.3"]) == 0


def test_plan_prints_lint_findings_and_json_includes_them(capsys) -> None:
    assert main(["plan", MIXED, "stages[0].data_mixing.customer_percent=90"]) == 0
    text = capsys.readouterr().out
    assert "== lint ==" in text and "WARNING customer-share-far-from-50" in text
    assert main(["plan", MIXED, "--format", "json"]) == 0
    lint = json.loads(capsys.readouterr().out)["lint"]
    assert [(f["rule"], f["severity"]) for f in lint] == [
        ("sft-epochs-over-narrow-data", "info")
    ]  # acknowledged


def test_advise_writes_a_recipe_that_loads(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine.yaml"
    argv = ["advise", "--demonstrations", "builtin:brindle/sft", "--prompts", "builtin:brindle/rft"]
    assert main([*argv, "--reward", "builtin:brindle", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "recommended sequence: SFT -> RFT" in text and "lint: 0 errors" in text
    recipe = load_recipe(out)
    assert recipe.name == "mine" and [s.technique for s in recipe.stages] == ["sft", "rft"]
    assert main([*argv, "--reward", "builtin:brindle", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["sequence"] == ["sft", "rft"]


def test_advise_user_errors_exit_2(capsys) -> None:
    assert main(["advise"]) == 2
    assert "nothing to train on" in capsys.readouterr().err
    argv = ["advise", "--prompts", "builtin:brindle/rft", "--reward", "builtin:brindle"]
    assert main([*argv, "--probe-positive-rate", "0.01", "--out", "/tmp/never.yaml"]) == 2
    assert "pass --demonstrations" in capsys.readouterr().err
