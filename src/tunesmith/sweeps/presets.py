"""The playbook's sweeps, as spaces: `--preset mix-ratio,lr` composes them (a key may come from one only).

- `mix-ratio`: general share 10/25/50/75% at fixed domain data (`customer_percent` 90/75/50/25): the managed
  service's guidance for finding the mix ([nova-hpo-blog]); the domain data stays the same, only the
  general share of the mix moves.
- `lr`: 0.5x, 1x and 2x of the resolved learning rate (the family's default unless the recipe sets one):
  "move one knob at a time to 0.5x, 1x and 2x" ([nova-hpo-blog]).
- `lora`: LoRA rank x alpha, each 0.5x/1x/2x of the resolved value, searched only when the stage is LoRA.
- `epochs`: 0.5x/1x/2x of the stage's length (`max_epochs` when the recipe counts epochs, else `max_steps`).

Each preset targets one stage (`--stage`, default the first); the values come from the resolved recipe, so
a preset means the same thing on every model family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tunesmith.errors import UserError
from tunesmith.sweeps.space import Space, parse_space

KNOB_MULTIPLIERS = [0.5, 1, 2]
GENERAL_SHARES_PERCENT = [10, 25, 50, 75]


def _mix_ratio(stage: str, base: Callable[[str], Any]) -> dict[str, Any]:
    return {f"{stage}.data_mixing.customer_percent": [100 - share for share in GENERAL_SHARES_PERCENT]}


def _lr(stage: str, base: Callable[[str], Any]) -> dict[str, Any]:
    return {f"{stage}.hyperparameters.lr": {"multipliers": KNOB_MULTIPLIERS}}


def _lora(stage: str, base: Callable[[str], Any]) -> dict[str, Any]:
    when = {f"{stage}.mode": "lora"}
    if base(f"{stage}.hyperparameters.lora.rank") is None:
        raise UserError(f"--preset lora: {stage} has no LoRA settings (mode: full) — set mode: lora first")
    return {
        f"{stage}.hyperparameters.lora.rank": {"multipliers": KNOB_MULTIPLIERS, "when": when},
        f"{stage}.hyperparameters.lora.alpha": {"multipliers": KNOB_MULTIPLIERS, "when": when},
    }


def _epochs(stage: str, base: Callable[[str], Any]) -> dict[str, Any]:
    key = "max_epochs" if base(f"{stage}.hyperparameters.max_epochs") is not None else "max_steps"
    return {f"{stage}.hyperparameters.{key}": {"multipliers": KNOB_MULTIPLIERS}}


PRESETS: dict[str, Callable[[str, Callable[[str], Any]], dict[str, Any]]] = {
    "mix-ratio": _mix_ratio,
    "lr": _lr,
    "lora": _lora,
    "epochs": _epochs,
}


def preset_space(names: str, stage_index: int, base: Callable[[str], Any]) -> Space:
    """The composed space of comma-separated preset names for stage `stage_index`."""
    stage = f"stages[{stage_index}]"
    if base(stage) is None:
        raise UserError(f"--stage {stage_index}: the recipe has no such stage — count from 0")
    space: Space | None = None
    for name in [n.strip() for n in names.split(",") if n.strip()]:
        if name not in PRESETS:
            raise UserError(f"--preset {name}: unknown preset — choose from {', '.join(PRESETS)}")
        part = parse_space(PRESETS[name](stage, base), f"preset {name}", base)
        space = part if space is None else space.merged(part)
    if space is None:
        raise UserError(f"--preset: no preset named — choose from {', '.join(PRESETS)}")
    return space
