"""Every default in the table has a value and a source, and resolve() fills every field for every context."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tunesmith.recipe import defaults as table
from tunesmith.recipe.loading import validate_recipe
from tunesmith.recipe.plan import provenance_rows
from tunesmith.recipe.resolve import resolve

REFERENCE_MARKERS = ("[",)  # a key of docs/references.md (tests/unit/test_references.py checks it exists)


@pytest.mark.parametrize(
    "entry",
    table.DEFAULTS,
    ids=lambda e: f"{e.key}|{e.size_class}|{e.technique}|{e.mode}|{e.checkpoint}|{e.scale}",
)
def test_every_default_has_value_and_cited_source(entry: table.Default) -> None:
    assert entry.value is not None
    assert len(entry.source) > 20, "a default needs a sentence saying where it comes from"
    assert any(marker in entry.source for marker in REFERENCE_MARKERS), entry.source


def test_no_two_entries_share_key_and_conditions() -> None:
    seen = set()
    for e in table.DEFAULTS:
        ident = (e.key, e.size_class, e.technique, e.mode, e.checkpoint, e.scale)
        assert ident not in seen, ident
        seen.add(ident)


@pytest.mark.parametrize(
    ("context", "key", "expected"),
    [
        ({"size_class": "billion", "technique": "sft", "mode": "lora"}, "hyperparameters.lr", 1e-5),
        ({"size_class": "billion", "technique": "sft", "mode": "full"}, "hyperparameters.lr", 5e-6),
        ({"size_class": "billion", "technique": "cpt", "mode": "full"}, "hyperparameters.lr", 1e-5),
        (
            {"size_class": "billion", "technique": "cpt", "mode": "full", "scale": "large"},
            "hyperparameters.lr",
            1e-4,
        ),
        (
            {"size_class": "billion", "technique": "cpt", "mode": "full", "scale": "large"},
            "hyperparameters.min_lr",
            1e-6,
        ),
        ({"size_class": "tiny", "technique": "sft", "mode": "full"}, "hyperparameters.lr", 3e-4),
        ({"size_class": "tiny", "technique": "sft", "mode": "full"}, "hyperparameters.max_steps", 800),
        ({"size_class": "tiny", "technique": "sft", "mode": "lora"}, "hyperparameters.max_steps", 400),
        ({"size_class": "tiny", "technique": "sft", "mode": "lora"}, "hyperparameters.lr", 1e-2),
        ({"size_class": "tiny", "technique": "rft", "mode": "full"}, "hyperparameters.lr", 1e-4),
        ({"size_class": "tiny", "technique": "rft", "mode": "lora"}, "hyperparameters.lr", 3e-3),
        ({"size_class": "tiny", "technique": "rft", "mode": "full"}, "hyperparameters.global_batch_size", 32),
        ({"size_class": "tiny", "technique": "rft", "mode": "lora"}, "rft.drop_zero_variance_groups", True),
        ({"size_class": "billion", "technique": "sft", "mode": "lora"}, "hyperparameters.lora.alpha", 64),
        ({"size_class": "billion", "technique": "sft", "mode": "lora"}, "hyperparameters.warmup_ratio", 0.15),
        ({"size_class": "billion", "technique": "sft", "mode": "lora"}, "data_mixing.customer_percent", 50.0),
        (
            {"size_class": "billion", "technique": "rft", "mode": "lora"},
            "data_mixing.customer_percent",
            100.0,
        ),
        ({"size_class": "billion", "technique": "rft", "mode": "lora"}, "rft.number_generation", 8),
        ({"checkpoint": "post-trained"}, "mode", "lora"),
        ({"checkpoint": "mid-trained"}, "mode", "full"),
    ],
)
def test_lookup_picks_the_playbook_value(context: dict, key: str, expected: object) -> None:
    entry = table.lookup(key, context)
    assert entry is not None and entry.value == expected


def test_sft_general_mix_includes_reasoning_instruction_following() -> None:
    entry = table.lookup("data_mixing.general", {"size_class": "tiny", "technique": "sft", "mode": "lora"})
    assert "reasoning-instruction-following" in entry.value
    assert abs(sum(entry.value.values()) - 100) < 1e-6


def _write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


SIZE_FAMILY = {"tiny": "tiny", "billion": "olmo2-1b"}


@pytest.mark.parametrize(
    ("size_class", "technique", "mode", "checkpoint", "scale"),
    [
        combo
        for combo in itertools.product(
            ["tiny", "billion"],
            ["cpt", "sft", "rft"],
            ["lora", "full", None],
            ["pre-trained", "mid-trained", "post-trained"],
            ["standard", "large"],
        )
        if not (combo[4] == "large" and combo[1] != "cpt")
    ],
)
def test_resolve_fills_every_field_with_provenance(
    tmp_path: Path, size_class: str, technique: str, mode: str | None, checkpoint: str, scale: str
) -> None:
    rows = {
        "cpt": [{"text": f"doc {i}"} for i in range(1000)],
        "sft": [
            {"messages": [{"role": "user", "content": f"q {i}"}, {"role": "assistant", "content": "a"}]}
            for i in range(1000)
        ],
        "rft": [
            {"messages": [{"role": "user", "content": f"q {i}"}], "reference_answer": "a"}
            for i in range(1000)
        ],
    }[technique]
    train = _write_jsonl(tmp_path / "train.jsonl", rows)  # valid data of the stage's kind (resolve checks it)
    stage = {"technique": technique, "data": {"train": train, "validation": train}}
    if mode:
        stage["mode"] = mode
    if technique == "rft":
        stage["rft"] = {"reward": "exact_match"}
    if scale == "large":
        stage["scale"] = "large"
    recipe = validate_recipe(
        {
            "name": "t",
            "model": {"family": SIZE_FAMILY[size_class], "checkpoint": checkpoint},
            "stages": [stage],
        }
    )
    resolved = resolve(recipe)
    hp = resolved.recipe.stages[0].hyperparameters
    for field in (
        "lr",
        "min_lr",
        "warmup_steps",
        "constant_steps",
        "decay",
        "global_batch_size",
        "micro_batch_size",
        "max_length",
        "weight_decay",
        "grad_clip",
        "val_check_interval",
        "save_top_k",
        "seed",
    ):
        assert getattr(hp, field) is not None, field
    assert (hp.max_steps is None) != (hp.max_epochs is None)
    if resolved.recipe.stages[0].mode == "lora":
        assert hp.lora.rank and hp.lora.alpha and hp.lora.target_modules
    rows = provenance_rows(resolved)
    assert rows and all(origin for _, _, origin in rows)
    for path, _, origin in rows:
        assert origin.split(":")[0] in ("user", "default", "derived"), (path, origin)
    numbers = resolved.stages[0].numbers
    assert numbers["total_steps"] >= 1
    assert (
        numbers["warmup_steps"] + numbers["constant_steps"] + numbers["decay_steps"] == numbers["total_steps"]
    )
