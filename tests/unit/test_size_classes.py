"""Size-aware defaults: the size class comes from the parameter count of a path model's config (no weights
loaded), `plan` says which class and why, and lint compares the LR with that class's default."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.advisor.lint import run_rules
from tunesmith.advisor.rules import LintFacts
from tunesmith.models.parameters import TINY_BOUNDARY_PARAMETERS, classify, size_class
from tunesmith.recipe.loading import validate_recipe
from tunesmith.recipe.plan import render_plan
from tunesmith.recipe.resolve import resolve

SFT = {
    "technique": "sft",
    "mode": "lora",
    "data": {"train": "builtin:brindle/sft", "validation": "builtin:brindle/sft-validation"},
}


@pytest.fixture(scope="module")
def config_only_05b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Qwen3 folder with only the 0.5b stand-in's config.json: the size is read without any weights."""
    from transformers import Qwen3Config

    from tunesmith.models.stand_ins import SIZES

    folder = tmp_path_factory.mktemp("qwen3-0.5b-config")
    Qwen3Config(**SIZES["0.5b"]).save_pretrained(folder)
    assert not any(folder.glob("*.safetensors"))
    return folder


def _recipe(path: Path, **hyperparameters: float) -> dict:
    stage = {**SFT, "hyperparameters": hyperparameters} if hyperparameters else SFT
    return {"name": "t", "model": {"path": str(path)}, "stages": [stage]}


def test_classify_at_the_boundary() -> None:
    assert classify(TINY_BOUNDARY_PARAMETERS - 1).name == "tiny"
    assert classify(TINY_BOUNDARY_PARAMETERS).name == "billion"
    assert 15_000_000 < TINY_BOUNDARY_PARAMETERS < 25_000_000  # between the 1.06M family and 360M


def test_a_micro_path_model_gets_the_tiny_class_and_plan_says_why(stand_ins: dict[str, Path]) -> None:
    sized = size_class(None, str(stand_ins["qwen3"]))
    assert sized.name == "tiny" and sized.parameters is not None and sized.parameters < 1_000_000
    resolved = resolve(validate_recipe(_recipe(stand_ins["qwen3"])))
    assert resolved.size_class == "tiny"
    hp = resolved.recipe.stages[0].hyperparameters
    assert (hp.lr, hp.lora.rank, hp.lora.alpha, hp.global_batch_size) == (1e-2, 8, 16, 64)
    text = render_plan(resolved)
    assert "[defaults: tiny-class]" in text
    assert f"size class: {sized.reason}" in text
    assert "parameters -> tiny class: the tiny defaults were measured on the 1.06M tiny family" in text


def test_a_05b_config_gets_the_billion_class(config_only_05b: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # sizing reads config.json alone; the folder check (which refuses a folder without weights or tokenizer,
    # tests/hostile) is set aside so that a 0.5B model needs no 2 GB of weights here
    monkeypatch.setattr("tunesmith.models.validation.check_model_path", lambda *args, **kwargs: None)
    resolved = resolve(validate_recipe(_recipe(config_only_05b)))
    assert resolved.size_class == "billion"
    assert resolved.size_reason.startswith("0.") and "parameters -> billion class" in resolved.size_reason
    hp = resolved.recipe.stages[0].hyperparameters
    assert (hp.lr, hp.lora.rank, hp.lora.alpha, hp.global_batch_size) == (1e-5, 32, 64, 32)


def test_a_hub_id_without_a_local_config_keeps_the_billion_class_and_says_so() -> None:
    sized = size_class(None, "nobody-here/not-a-model")
    assert sized.name == "billion" and sized.parameters is None
    assert "no local config" in sized.reason and "model.path" in sized.reason


def test_a_catalog_family_keeps_its_class() -> None:
    from tunesmith.models.catalog import FAMILIES

    assert size_class(FAMILIES["qwen3-0.6b"], None).name == "billion"
    assert size_class(FAMILIES["tiny"], None).name == "tiny"


def test_lint_compares_the_lr_with_the_tiny_class_default(stand_ins: dict[str, Path]) -> None:
    def lr_findings(lr: float) -> list:
        resolved = resolve(validate_recipe(_recipe(stand_ins["llama3"], lr=lr)))
        return [f for f in run_rules(resolved, LintFacts()) if f.rule == "lr-deviates-while-mixing"]

    assert lr_findings(1e-2) == []  # the tiny-class LoRA SFT default
    (finding,) = lr_findings(4e-2)
    assert "4x the tiny-class sft lora default 0.01" in finding.message
    assert "billion" not in finding.message


def test_a_plateau_at_ln_vocab_is_not_blamed_on_a_fitted_model() -> None:
    import math

    from tunesmith.monitoring.diagnosis import RunContext, causes_for
    from tunesmith.monitoring.events import Detection

    context = RunContext(technique="sft", mode="lora", lr=1e-5, default_lr=1e-5, vocab_size=2048)
    stuck = causes_for(Detection("plateau", 40, "flat", value=math.log(2048) - 0.05), context)
    assert "sits at chance, ln(2048) = 7.625" in stuck[0]
    assert not any("already fits" in cause for cause in stuck)
    assert "learning rate too low for this model (lr 1e-05, x1 the default 1e-05)" in stuck[1]
    learned = causes_for(Detection("plateau", 40, "flat", value=2.0), context)
    assert learned[0].startswith("the model already fits this data")
    assert causes_for(Detection("plateau", 40, "flat", value=7.6), RunContext())[0].startswith(
        "the model already fits"
    )  # no vocabulary known: no chance level to compare with


@pytest.mark.parametrize(
    ("total_steps", "cost_steps", "interval"),
    [
        (400, 0.5, 40),  # a long run: about ten validations
        (100, 64 / (3 * 8), 27),  # 64 validation examples at batch 8: a tenth of the time, not every 10 steps
        (20, 64 / (3 * 8), 20),  # the same in a short run: only at the end
        (8, 8 / (3 * 8), 4),
        (10, 0.0, 1),
        (6, 100.0, 6),  # validating costs more than the stage: only at the end
    ],
)
def test_the_validation_cadence_follows_the_step_count_and_the_validation_cost(
    total_steps: int, cost_steps: float, interval: int
) -> None:
    from tunesmith.recipe.resolve import validation_interval

    assert validation_interval(total_steps, cost_steps) == interval


def test_a_short_sft_run_does_not_validate_every_step(stand_ins: dict[str, Path]) -> None:
    recipe = _recipe(stand_ins["qwen3"], max_steps=20, global_batch_size=8)
    resolved = resolve(validate_recipe(recipe))
    validation = resolved.stages[0].numbers["validation_examples"]
    interval = resolved.recipe.stages[0].hyperparameters.val_check_interval
    # 200 brindle validation examples cost 200 / 24 = 8.3 steps each: validating only at the end (and the
    # start) keeps it under a tenth of the training time
    assert validation == 200 and interval == min(20, max(2, -(-10 * validation // (3 * 8)))) == 20
    assert interval > 1 and "ceil(10 x one validation's cost" in str(
        resolved.provenance["stages[0].hyperparameters.val_check_interval"]
    )


def test_the_forgetting_probe_counts_in_the_validation_cadence(stand_ins: dict[str, Path]) -> None:
    """No validation file, batch 16: the probe's 40 general items (8 per category) still cost 40 / 48 of a
    step each time, so a 20-step stage probes every 9 steps (a tenth of the time), not every 2 (total_steps // 10)."""

    def interval(monitoring: dict | None) -> int:
        stage = {**SFT, "data": {"train": "builtin:brindle/sft"}}
        stage["hyperparameters"] = {"max_steps": 20, "global_batch_size": 16}
        if monitoring is not None:
            stage["monitoring"] = monitoring
        recipe = {"name": "t", "model": {"path": str(stand_ins["qwen3"])}, "stages": [stage]}
        return resolve(validate_recipe(recipe)).recipe.stages[0].hyperparameters.val_check_interval

    assert interval(None) == 9  # ceil(10 x 40 / 48)
    assert interval({"probe_items_per_category": 24}) == 20  # 120 items: ceil(10 x 120 / 48) = 25, the stage
    assert interval({"enabled": False}) == 2  # no probe: about ten validations
    assert interval({"policies": {"forgetting": "off", "kl_drift": "off"}}) == 2  # nothing reads the probe
    assert interval({"probe_interval": 5}) == 2  # the probe keeps its own cadence
