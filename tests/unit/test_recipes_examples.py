"""Every shipped recipe in recipes/ plans cleanly, with provenance for every field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main
from tunesmith.recipe.plan import plan, provenance_rows

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


def test_there_are_at_least_three_recipes() -> None:
    names = [p.name for p in RECIPES]
    assert len(RECIPES) >= 3, names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_plans_with_provenance_everywhere(recipe: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "resolved.yaml"
    assert main(["plan", str(recipe), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "derived numbers" in text and "total_steps" in text
    resolved = plan(recipe)
    for path, value, origin in provenance_rows(resolved):
        assert origin.startswith(("user", "default: ", "derived: ")), (path, value, origin)
        assert origin != "default: empty", path
    assert yaml.safe_load(out.read_text()) == resolved.to_dict()
    assert main(["plan", str(recipe), "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["recipe"]["name"] == resolved.recipe.name
    assert all(stage["numbers"]["total_steps"] >= 1 for stage in payload["stages"])
