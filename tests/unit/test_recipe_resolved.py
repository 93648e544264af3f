"""resolve() returns the fully resolved, typed tree; provenance marks exactly what the user wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tunesmith.advisor.rules import input_checkpoints as lint_input_checkpoints
from tunesmith.recipe import defaults as table
from tunesmith.recipe.loading import load_recipe
from tunesmith.recipe.plan import plan
from tunesmith.recipe.resolve import input_checkpoints, start_ref
from tunesmith.recipe.schema import (
    ResolvedConfig,
    ResolvedHyperparameters,
    ResolvedMixing,
    ResolvedStage,
)

RECIPES = sorted(Path(__file__).resolve().parents[2].joinpath("recipes").glob("*.yaml"))


def _dump_walk(recipe: Any) -> set[str]:
    """The user's key paths as the former implementation found them (a dump of the set fields)."""
    found: set[str] = set()

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict) and not path.endswith((".general", ".general_sources")):
            if not node and path:
                found.add(path)
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)
        elif isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        elif node is not None:
            found.add(path)

    walk(recipe.model_dump(exclude_none=True, exclude_unset=True), "")
    return found


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_resolves_to_the_typed_tree(path: Path) -> None:
    resolved = plan(path)
    recipe = resolved.recipe
    assert isinstance(recipe, ResolvedConfig)
    default_items = table.lookup("evaluation.general_items_per_category", {}).value
    assert recipe.evaluation.general_items_per_category == (
        load_recipe(path).evaluation.general_items_per_category or default_items
    )
    names = [stage.name for stage in recipe.stages]
    assert len(set(names)) == len(names) and all(names)
    for stage, stage_plan in zip(recipe.stages, resolved.stages, strict=True):
        assert isinstance(stage, ResolvedStage) and stage.mode in ("lora", "full")
        assert (stage.hyperparameters.lora is not None) == (stage.mode == "lora")
        assert stage.data_mixing.sampling in ("with_replacement", "without_replacement")
        assert stage_plan.train_data is not None
        assert stage_plan.numbers["customer_examples"] == stage_plan.train_data.records
    user = {p for p, origin in resolved.provenance.items() if origin.origin == "user"}
    assert user == _dump_walk(load_recipe(path))
    assert lint_input_checkpoints(resolved) == input_checkpoints(
        recipe.model.checkpoint, [stage.technique for stage in recipe.stages]
    )


def test_resolved_types_require_what_resolution_always_sets() -> None:
    for model, fields in (
        (ResolvedStage, ("name", "mode", "data_mixing", "hyperparameters")),
        (ResolvedMixing, ("customer_percent", "general", "unit", "sampling", "max_general_repeats")),
        (
            ResolvedHyperparameters,
            ("lr", "min_lr", "warmup_steps", "global_batch_size", "seed", "save_top_k"),
        ),
    ):
        assert all(model.model_fields[name].is_required() for name in fields), model
    assert not ResolvedHyperparameters.model_fields["max_steps"].is_required()  # max_steps or max_epochs


def test_input_checkpoints_after_sft_or_rft_are_post_trained() -> None:
    kinds = input_checkpoints("pre-trained", ["cpt", "sft", "cpt", "rft", "sft"])
    assert kinds == ["pre-trained", "pre-trained", "post-trained", "post-trained", "post-trained"]


def test_start_ref_of_a_family_and_of_a_path() -> None:
    from tunesmith.recipe.schema import ModelSpec

    assert start_ref(ModelSpec(family="tiny", checkpoint="mid-trained")) == "tiny:mid-trained"
    assert start_ref(ModelSpec(path="org/model", revision="abc")) == "org/model@abc"
