"""The space YAML and the presets: parsing, validation messages, conditional keys, the grid, composition."""

from __future__ import annotations

import pytest

from tunesmith.errors import UserError
from tunesmith.sweeps.presets import preset_space
from tunesmith.sweeps.space import active, grid, parse_space, sample

BASE = {
    "stages[0].mode": "lora",
    "stages[0].hyperparameters.lr": 0.01,
    "stages[0].hyperparameters.lora.rank": 8,
    "stages[0].hyperparameters.lora.alpha": 16.0,
    "stages[0].hyperparameters.max_steps": 400,
    "stages[0].hyperparameters.max_epochs": None,
    "stages[0]": {"technique": "sft"},
}


def base(key: str):
    return BASE.get(key)


def test_lists_ranges_and_multipliers_parse() -> None:
    space = parse_space(
        {
            "stages[0].data_mixing.customer_percent": [90, 50],
            "stages[0].hyperparameters.warmup_steps": {"low": 0, "high": 20.5, "int": True},
            "stages[0].hyperparameters.lr": {"multipliers": [0.5, 2]},
            "stages[0].hyperparameters.min_lr": {"low": 1e-5, "high": 1e-3, "log": True},
        },
        "s.yaml",
        base,
    )
    by_key = {p.key: p for p in space.params}
    assert by_key["stages[0].data_mixing.customer_percent"].values == (90, 50)
    assert (
        by_key["stages[0].hyperparameters.warmup_steps"].low,
        by_key["stages[0].hyperparameters.warmup_steps"].high,
    ) == (0, 20)
    assert by_key["stages[0].hyperparameters.lr"].values == (0.005, 0.02)
    assert by_key["stages[0].hyperparameters.min_lr"].log and not space.is_finite()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "the list of values is empty"),
        ({"low": 3, "high": 1}, "range low 3 > high 1"),
        ({"low": 0, "high": 1, "log": True}, "a log range needs low > 0"),
        ({"low": "a", "high": 1}, "low 'a' is not a number"),
        ({"low": 1}, "a range needs both 'low' and 'high'"),
        ({"values": [1], "step": 2}, "unknown field 'step'"),
        ([1, 1], "repeats a value"),
        ([[1, 2]], "is a list"),
        ("fast", "neither a list of values nor a range"),
        ({"multipliers": []}, "'multipliers' is empty"),
    ],
)
def test_malformed_entries_name_the_key(raw, message) -> None:
    with pytest.raises(UserError) as err:
        parse_space({"stages[0].hyperparameters.lr": raw}, "s.yaml", base)
    text = str(err.value)
    assert text.startswith("s.yaml: key 'stages[0].hyperparameters.lr'") and message in text
    assert "\n" not in text


def test_conditional_keys_enter_the_grid_only_where_active() -> None:
    space = parse_space(
        {
            "stages[0].hyperparameters.lora.alpha": {"values": [8, 32], "when": {"stages[0].mode": "lora"}},
            "stages[0].mode": ["lora", "full"],
            "stages[0].hyperparameters.lr": [1e-3, 1e-2],
        },
        "s.yaml",
        base,
    )
    configs = grid(space, base)
    # lora: 2 alphas x 2 LRs; full: 2 LRs, no alpha
    assert len(configs) == 6
    assert sum("stages[0].hyperparameters.lora.alpha" in c for c in configs) == 4
    assert all(c["stages[0].mode"] == "lora" for c in configs if "stages[0].hyperparameters.lora.alpha" in c)
    # sampling follows the same rule; a key not searched is read from the recipe
    drawn = sample(space, lambda p: (p.values or ())[-1], base)
    assert drawn == {"stages[0].mode": "full", "stages[0].hyperparameters.lr": 1e-2}
    alpha = space.params[0]
    assert active(alpha, {}, base)  # the recipe's own mode is lora


def test_a_grid_needs_lists() -> None:
    space = parse_space({"stages[0].hyperparameters.lr": {"low": 1e-4, "high": 1e-2}}, "s.yaml", base)
    with pytest.raises(UserError, match="is a range — a grid needs lists"):
        grid(space, base)


def test_presets_compose_and_follow_the_resolved_recipe() -> None:
    space = preset_space("mix-ratio,lr,lora,epochs", 0, base)
    by_key = {p.key: p for p in space.params}
    assert by_key["stages[0].data_mixing.customer_percent"].values == (90, 75, 50, 25)
    assert by_key["stages[0].hyperparameters.lr"].values == (0.005, 0.01, 0.02)
    assert by_key["stages[0].hyperparameters.lora.rank"].values == (4, 8, 16)
    assert by_key["stages[0].hyperparameters.lora.alpha"].values == (8.0, 16.0, 32.0)
    assert by_key["stages[0].hyperparameters.lora.alpha"].when == (("stages[0].mode", "lora"),)
    assert by_key["stages[0].hyperparameters.max_steps"].values == (200, 400, 800)
    assert len(grid(space, base)) == 4 * 3 * 3 * 3 * 3
    with pytest.raises(UserError, match="unknown preset"):
        preset_space("mix", 0, base)
    with pytest.raises(UserError, match="no such stage"):
        preset_space("lr", 3, base)
    with pytest.raises(UserError, match="also searched by"):
        preset_space("lr", 0, base).merged(preset_space("lr", 0, base))
