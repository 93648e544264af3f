"""Each pitfall rule: a recipe that triggers it and one that does not (numbers asserted)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tunesmith.advisor.findings import Finding, exit_code, has_errors
from tunesmith.advisor.lint import measure_stages, run_rules
from tunesmith.advisor.rules import RULES, LintFacts
from tunesmith.advisor.stats import LengthStats, StageDataStats
from tunesmith.recipe.loading import validate_recipe
from tunesmith.recipe.resolve import ResolvedRecipe, resolve
from tunesmith.recipe.schema import Recipe

SFT = {
    "technique": "sft",
    "data": {"train": "builtin:brindle/sft", "validation": "builtin:brindle/sft-validation"},
}
CPT = {
    "technique": "cpt",
    "data": {"train": "builtin:brindle/cpt", "validation": "builtin:brindle/cpt-validation"},
    "hyperparameters": {"max_epochs": 1},
}
DPO = {
    "technique": "dpo",
    "data": {"train": "builtin:brindle/dpo", "validation": "builtin:brindle/dpo-validation"},
}
RFT = {
    "technique": "rft",
    "data": {"train": "builtin:brindle/rft", "validation": "builtin:brindle/rft-validation"},
    "rft": {"reward": "builtin:brindle"},
}

TESTED_RULES = {
    "model-not-available",
    "lr-deviates-while-mixing",
    "sft-mix-without-rif",
    "customer-share-far-from-50",
    "cpt-pretrained-without-sft",
    "dpo-before-instruction-tuning",
    "lora-from-pretrained",
    "full-rank-without-lora",
    "cpt-multiple-epochs",
    "sft-full-multi-epoch",
    "sft-epochs-over-narrow-data",
    "warmup-far-from-15",
    "rft-without-sft-or-probe",
    "rft-lr-raised",
    "sft-data-count",
    "max-length-mismatch",
    "reasoning-mismatch",
    "no-validation-set",
    "pretrained-high-lr-no-rampdown",
    "sft-after-rft",
    "cpt-only-on-post-trained",
}


def stage(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of `base` with nested changes: stage(SFT, hyperparameters={'lr': 1e-3})."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def resolved(
    *stages: dict[str, Any], family: str = "tiny", checkpoint: str = "post-trained"
) -> ResolvedRecipe:
    data = {"name": "t", "model": {"family": family, "checkpoint": checkpoint}, "stages": list(stages)}
    return resolve(validate_recipe(data))


def check(res: ResolvedRecipe, rule_id: str, facts: LintFacts | None = None) -> list[Finding]:
    return run_rules(res, facts or LintFacts(), [rule_id])


def test_every_rule_has_a_test_and_a_source() -> None:
    assert set(RULES) == TESTED_RULES
    for registered in RULES.values():
        assert registered.severity in ("error", "warning", "info")
        assert "[" in (registered.check.__doc__ or "")  # a key of docs/references.md (test_references.py)


def test_the_default_tiny_sft_recipe_is_clean() -> None:
    assert run_rules(resolved(SFT), LintFacts()) == []


def test_finding_line_format_and_exit_codes() -> None:
    finding = Finding("x-rule", "warning", "lr 1 is 2x", "use 0.5", "ref 1.2", "stages[0] (sft)")
    assert str(finding) == "WARNING x-rule: stages[0] (sft): lr 1 is 2x — use 0.5 (ref 1.2)"
    assert json.loads(json.dumps(finding.to_json()))["rule"] == "x-rule"
    assert exit_code([finding]) == 0 and exit_code([finding], strict=True) == 1
    error = Finding("y", "error", "m", "f", "s")
    assert has_errors([finding, error]) and exit_code([error]) == 1 and not has_errors([finding])


# ---------------------------------------------------------------------------------------------------


def test_lr_deviates_while_mixing() -> None:
    (far,) = check(resolved(stage(SFT, hyperparameters={"lr": 1e-3})), "lr-deviates-while-mixing")
    assert far.severity == "error" and "lr 0.001 is 0.1x" in far.message and "default 0.01" in far.message
    assert "50% general" in far.message and "use lr 0.01" in far.fix
    (near,) = check(resolved(stage(SFT, hyperparameters={"lr": 1.5e-2})), "lr-deviates-while-mixing")
    assert near.severity == "warning" and "1.5x" in near.message
    assert check(resolved(SFT), "lr-deviates-while-mixing") == []
    unmixed = stage(SFT, hyperparameters={"lr": 1e-3}, data_mixing={"customer_percent": 100})
    assert check(resolved(unmixed), "lr-deviates-while-mixing") == []
    # a billion-class family is judged by its own default (LoRA SFT 1e-5)
    billion = stage(SFT, hyperparameters={"lr": 1e-4})
    (finding,) = check(resolved(billion, family="qwen3-0.6b"), "lr-deviates-while-mixing")
    assert "10x the billion-class sft lora default 1e-05" in finding.message
    assert check(resolved(stage(SFT, hyperparameters={"lr": 1e-5}), family="qwen3-0.6b"), finding.rule) == []


def test_model_not_available() -> None:
    line = "qwen3-0.6b:post-trained is Qwen/Qwen3-0.6B: the model is not in the local Hugging Face cache ..."
    (finding,) = check(resolved(SFT), "model-not-available", LintFacts(model_unavailable=line))
    assert finding.severity == "error" and finding.message == line and "model.path" in finding.fix
    assert check(resolved(SFT), "model-not-available") == []


def test_sft_mix_without_rif() -> None:
    mix = {"customer_percent": 50, "general": {"math": 60, "knowledge": 40}}
    (finding,) = check(resolved(stage(SFT, data_mixing=mix)), "sft-mix-without-rif")
    assert finding.severity == "warning" and "math 60%" in finding.message
    assert check(resolved(SFT), "sft-mix-without-rif") == []


def test_customer_share_far_from_50() -> None:
    (finding,) = check(
        resolved(stage(SFT, data_mixing={"customer_percent": 90})), "customer-share-far-from-50"
    )
    assert "customer_percent is 90" in finding.message and "10% of every batch" in finding.message
    (only,) = check(resolved(stage(SFT, data_mixing={"customer_percent": 100})), "customer-share-far-from-50")
    assert "no general data" in only.message
    assert (
        check(resolved(stage(SFT, data_mixing={"customer_percent": 70})), "customer-share-far-from-50") == []
    )
    assert check(resolved(SFT, RFT), "customer-share-far-from-50") == []  # RFT: 100% by default, no mixing


def test_a_stated_reason_downgrades_a_finding_to_info() -> None:
    data = {
        "name": "t",
        "model": {"family": "tiny", "checkpoint": "post-trained"},
        "stages": [stage(SFT, data_mixing={"customer_percent": 90})],
        "acknowledge": {"customer-share-far-from-50@sft": "general data is scarce in this language"},
    }
    res = resolve(Recipe.model_validate(data))
    (finding,) = check(res, "customer-share-far-from-50")
    assert finding.severity == "info" and "acknowledged: general data is scarce" in finding.message


def test_cpt_pretrained_without_sft() -> None:
    (finding,) = check(resolved(CPT, checkpoint="pre-trained"), "cpt-pretrained-without-sft")
    assert finding.severity == "error" and finding.where == "stages[0] (cpt)"
    assert check(resolved(CPT, SFT, checkpoint="pre-trained"), "cpt-pretrained-without-sft") == []
    assert check(resolved(CPT, checkpoint="mid-trained"), "cpt-pretrained-without-sft") == []


def test_lora_from_pretrained() -> None:
    res = resolved(CPT, stage(SFT, mode="lora"), checkpoint="pre-trained")
    (finding,) = check(res, "lora-from-pretrained")
    assert finding.severity == "warning" and finding.where == "stages[1] (sft)"
    assert (
        check(resolved(CPT, stage(SFT, mode="full"), checkpoint="pre-trained"), "lora-from-pretrained") == []
    )
    assert check(resolved(stage(SFT, mode="lora")), "lora-from-pretrained") == []


def test_full_rank_without_lora() -> None:
    (finding,) = check(resolved(stage(SFT, mode="full")), "full-rank-without-lora")
    assert finding.severity == "warning" and "full rank" in finding.message
    validated = resolved(stage(SFT, mode="lora", name="sft-lora"), stage(SFT, mode="full", name="sft-full"))
    assert check(validated, "full-rank-without-lora") == []
    assert (
        check(
            resolved(stage(CPT, mode="full"), stage(SFT, mode="lora"), checkpoint="mid-trained"),
            "full-rank-without-lora",
        )
        == []
    )


def test_cpt_multiple_epochs() -> None:
    (finding,) = check(resolved(stage(CPT, hyperparameters={"max_epochs": 3}), SFT), "cpt-multiple-epochs")
    assert finding.severity == "error" and "3 passes over 2000 documents" in finding.message
    (mild,) = check(resolved(stage(CPT, hyperparameters={"max_epochs": 1.5}), SFT), "cpt-multiple-epochs")
    assert mild.severity == "warning"
    assert check(resolved(CPT, SFT), "cpt-multiple-epochs") == []


def test_sft_full_multi_epoch() -> None:
    (finding,) = check(
        resolved(stage(SFT, mode="full", hyperparameters={"max_epochs": 3})), "sft-full-multi-epoch"
    )
    assert finding.severity == "warning" and "3 passes" in finding.message
    assert (
        check(resolved(stage(SFT, mode="full", hyperparameters={"max_epochs": 1})), "sft-full-multi-epoch")
        == []
    )
    assert (
        check(resolved(stage(SFT, mode="lora", hyperparameters={"max_epochs": 3})), "sft-full-multi-epoch")
        == []
    )


def test_sft_epochs_over_narrow_data() -> None:
    """The Brindle file (876 unique of 3,000 rows) at ~4 epochs of LoRA SFT, counted by `measure_stages`."""
    mixed = {"customer_percent": 50}
    four = resolved(stage(SFT, mode="lora", data_mixing=mixed, hyperparameters={"max_steps": 375}))
    (finding,) = check(four, "sft-epochs-over-narrow-data", LintFacts(stage_data=measure_stages(four)))
    # the tiny class measured the opposite (playbook claim 4): information there, a warning elsewhere
    assert finding.severity == "info" and finding.where == "stages[0] (sft)"
    assert "the playbook measured the opposite" in finding.message
    real = resolved(
        stage(SFT, mode="lora", data_mixing=mixed, hyperparameters={"max_steps": 375}), family="qwen3-0.6b"
    )
    (warning,) = check(real, "sft-epochs-over-narrow-data", LintFacts(stage_data=measure_stages(real)))
    assert warning.severity == "warning" and "measured the opposite" not in warning.message
    assert "SFT makes 4 epochs over 3,000 rows of which 876 are unique" in finding.message
    assert "each unique demonstration is seen ~13.7 times" in finding.message
    assert "63.54% -> 61.42%" in finding.message and "[nova-hpo-blog]" in finding.source
    assert "max_steps: 94 is 1 epoch" in finding.fix and "unique demonstrations" in finding.fix
    one = resolved(stage(SFT, mode="lora", data_mixing=mixed, hyperparameters={"max_epochs": 1}))
    one_facts = measure_stages(one)
    assert one_facts[0].unique_examples is None  # one pass: not counted, no finding
    assert check(one, "sft-epochs-over-narrow-data", LintFacts(stage_data=one_facts)) == []
    # 2 epochs over data without duplicates is the service's LoRA default: fine; 3 is not
    two = resolved(stage(SFT, mode="lora", data_mixing=mixed, hyperparameters={"max_epochs": 2}))
    distinct = LintFacts(stage_data={0: StageDataStats(unique_examples=3000)})
    assert check(two, "sft-epochs-over-narrow-data", distinct) == []
    three = resolved(stage(SFT, mode="lora", data_mixing=mixed, hyperparameters={"max_epochs": 3}))
    (again,) = check(three, "sft-epochs-over-narrow-data", distinct)
    assert "seen ~3.0 times" in again.message
    assert check(three, "sft-epochs-over-narrow-data") == []  # no count (no data measured): silent


def test_warmup_far_from_15() -> None:
    (finding,) = check(resolved(stage(SFT, hyperparameters={"warmup_steps": 0})), "warmup-far-from-15")
    assert "warmup is 0 of 400 steps (0%)" in finding.message and "default 60 steps" in finding.fix
    (high,) = check(resolved(stage(SFT, hyperparameters={"warmup_ratio": 0.4})), "warmup-far-from-15")
    assert "(40%)" in high.message
    assert check(resolved(stage(SFT, hyperparameters={"warmup_ratio": 0.1})), "warmup-far-from-15") == []
    assert check(resolved(SFT), "warmup-far-from-15") == []


def test_rft_without_sft_or_probe() -> None:
    alone = resolved(RFT)
    (no_probe,) = check(alone, "rft-without-sft-or-probe")
    assert no_probe.severity == "info" and "no probe result" in no_probe.message
    assert "will probe the starting checkpoint" in no_probe.message
    (low,) = check(alone, "rft-without-sft-or-probe", LintFacts(probe_positive_rate=0.01))
    assert low.severity == "error" and "1.0% positive reward" in low.message
    assert check(alone, "rft-without-sft-or-probe", LintFacts(probe_positive_rate=0.2)) == []
    (high,) = check(alone, "rft-without-sft-or-probe", LintFacts(probe_positive_rate=0.99))
    assert high.severity == "info" and "unnecessary" in high.message
    assert check(resolved(SFT, RFT), "rft-without-sft-or-probe") == []
    # the probe result read from the recipe
    alone.recipe.stages[0].rft.probe_positive_rate = 0.03
    (from_recipe,) = check(alone, "rft-without-sft-or-probe")
    assert from_recipe.severity == "error" and "3.0%" in from_recipe.message


def test_rft_lr_raised() -> None:
    (warn,) = check(resolved(SFT, stage(RFT, hyperparameters={"lr": 1.5e-2})), "rft-lr-raised")
    assert warn.severity == "warning" and "5x the tiny-class rft lora default 0.003" in warn.message
    (err,) = check(resolved(SFT, stage(RFT, hyperparameters={"lr": 4e-2})), "rft-lr-raised")
    assert err.severity == "error"
    assert check(resolved(SFT, stage(RFT, hyperparameters={"lr": 5e-3})), "rft-lr-raised") == []
    assert check(resolved(SFT, RFT), "rft-lr-raised") == []


def test_sft_data_count(tmp_path: Path) -> None:
    small = tmp_path / "small.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(50)
    ]
    small.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (finding,) = check(resolved(stage(SFT, data={"train": str(small)})), "sft-data-count")
    assert finding.severity == "warning" and "50 demonstrations" in finding.message
    plenty = resolved(SFT)
    assert check(plenty, "sft-data-count") == []  # 3000 in 1,000-10,000
    plenty.recipe.stages[0].data.tasks = 5
    (per_task,) = check(plenty, "sft-data-count")
    assert "600 per task over 5 tasks" in per_task.message


def lengths(*values: int) -> LengthStats:
    return LengthStats(tuple(sorted(values)), capped=False)


def test_max_length_mismatch() -> None:
    res = resolved(stage(SFT, hyperparameters={"max_length": 64}))
    truncated = LintFacts(stage_data={0: StageDataStats(lengths=lengths(*([30] * 90 + [100] * 10)))})
    (finding,) = check(res, "max-length-mismatch", truncated)
    assert (
        finding.severity == "warning"
        and "10.0% of 100 sampled examples exceed max_length 64" in finding.message
    )
    assert "about 128" in finding.fix
    fits = LintFacts(stage_data={0: StageDataStats(lengths=lengths(*([30] * 100)))})
    assert check(res, "max-length-mismatch", fits) == []
    oversized = resolved(stage(SFT, hyperparameters={"max_length": 4096}))
    (info,) = check(oversized, "max-length-mismatch", fits)
    assert info.severity == "info" and "137x" in info.message
    (skipped,) = check(
        res, "max-length-mismatch", LintFacts(stage_data={0: StageDataStats(unavailable="no tokenizer")})
    )
    assert skipped.severity == "info" and "no tokenizer" in skipped.message
    # CPT documents longer than max_length are split, not truncated
    cpt = resolved(stage(CPT, hyperparameters={"max_length": 64, "max_epochs": 1}), SFT)
    assert check(cpt, "max-length-mismatch", LintFacts(stage_data={0: truncated.stage_data[0]})) == []


def test_max_length_measured_with_the_tiny_tokenizer() -> None:
    res = resolved(stage(SFT, hyperparameters={"max_length": 16}))
    data = measure_stages(res, max_examples=200)[0]
    assert data.lengths is not None and len(data.lengths.lengths) == 200 and data.lengths.capped
    assert 16 < data.lengths.quantile(0.5) < 100  # '<s><|user|>Brindle: ...</s><|assistant|>...</s>'
    assert data.reasoning_share == 0
    (finding,) = check(res, "max-length-mismatch", LintFacts(stage_data={0: data}))
    assert finding.severity == "warning" and "exceed max_length 16" in finding.message


def with_reasoning(res: ResolvedRecipe, *, train: bool | None, evaluate: bool | None) -> ResolvedRecipe:
    recipe = res.recipe
    recipe.evaluation.reasoning_enabled = evaluate
    recipe.stages[0].hyperparameters.reasoning_enabled = train
    return res


def test_reasoning_mismatch() -> None:
    (finding,) = check(with_reasoning(resolved(SFT), train=True, evaluate=False), "reasoning-mismatch")
    assert (
        finding.severity == "warning"
        and "on in training" in finding.message
        and "off in evaluation" in finding.message
    )
    assert check(with_reasoning(resolved(SFT), train=True, evaluate=True), "reasoning-mismatch") == []
    assert check(resolved(SFT), "reasoning-mismatch") == []  # no setting anywhere: nothing to compare
    # without a stage setting, demonstrations with reasoning traces count as "on"
    traced = LintFacts(stage_data={0: StageDataStats(reasoning_share=0.8)})
    (from_data,) = check(
        with_reasoning(resolved(SFT), train=None, evaluate=False), "reasoning-mismatch", traced
    )
    assert "80% of the demonstrations carry reasoning traces" in from_data.message
    assert check(with_reasoning(resolved(SFT), train=None, evaluate=True), "reasoning-mismatch", traced) == []


def test_no_validation_set() -> None:
    (finding,) = check(resolved({**SFT, "data": {"train": "builtin:brindle/sft"}}), "no-validation-set")
    assert finding.severity == "warning" and "save_top_k 5" in finding.message
    (rft,) = check(resolved(SFT, {**RFT, "data": {"train": "builtin:brindle/rft"}}), "no-validation-set")
    assert "validation reward" in rft.message and rft.where == "stages[1] (rft)"
    assert check(resolved(SFT), "no-validation-set") == []


def test_pretrained_high_lr_no_rampdown() -> None:
    hot = stage(CPT, hyperparameters={"lr": 1e-2, "max_epochs": 1})
    (finding,) = check(resolved(hot, SFT, checkpoint="pre-trained"), "pretrained-high-lr-no-rampdown")
    assert "lr 0.01 (10x the default 0.001)" in finding.message and "min_lr 0.001" in finding.message
    assert "~0.0001" in finding.message
    ramped = stage(CPT, hyperparameters={"lr": 1e-2, "min_lr": 1e-4, "max_epochs": 1})
    assert check(resolved(ramped, SFT, checkpoint="pre-trained"), "pretrained-high-lr-no-rampdown") == []
    assert check(resolved(CPT, SFT, checkpoint="pre-trained"), "pretrained-high-lr-no-rampdown") == []
    assert check(resolved(hot, SFT, checkpoint="mid-trained"), "pretrained-high-lr-no-rampdown") == []
    # billion class, scale: large (1e-4 peak, ramp to 1e-6) is the playbook's way: clean
    large = {**CPT, "scale": "large", "hyperparameters": {"max_steps": 100}}
    assert check(resolved(large, SFT, family="qwen3-0.6b", checkpoint="pre-trained"), finding.rule) == []


@pytest.mark.parametrize("rule_id", sorted(TESTED_RULES))
def test_rules_are_pure_and_repeatable(rule_id: str) -> None:
    res = resolved(stage(SFT, hyperparameters={"lr": 1e-3}, data_mixing={"customer_percent": 95}))
    assert check(res, rule_id) == check(res, rule_id)


def test_sft_after_rft() -> None:
    (finding,) = check(resolved(SFT, RFT, stage(SFT, name="sft-again")), "sft-after-rft")
    assert finding.severity == "warning" and finding.where == "stages[2] (sft-again)"
    assert "'rft'" in finding.message and "CPT -> SFT -> RFT" in finding.fix
    assert check(resolved(SFT, RFT), "sft-after-rft") == []


def test_cpt_only_on_post_trained() -> None:
    (finding,) = check(resolved(CPT, checkpoint="post-trained"), "cpt-only-on-post-trained")
    assert finding.severity == "warning" and finding.where == "stages[0] (cpt)"
    assert check(resolved(CPT, SFT, checkpoint="post-trained"), "cpt-only-on-post-trained") == []
    assert check(resolved(CPT, checkpoint="mid-trained"), "cpt-only-on-post-trained") == []


def test_an_unknown_acknowledged_rule_or_stage_is_refused() -> None:
    from tunesmith.advisor.lint import lint
    from tunesmith.errors import RecipeError

    res = resolved(SFT)
    res.recipe.acknowledge["full-rank-without-lorra"] = "typo"
    with pytest.raises(
        RecipeError, match=r"acknowledge.full-rank-without-lorra: .*did you mean 'full-rank-without-lora'"
    ):
        lint(res, measure_data=False)
    res.recipe.acknowledge.clear()
    res.recipe.acknowledge["full-rank-without-lora@sft2"] = "no such stage"
    with pytest.raises(RecipeError, match=r"no stage 'sft2'"):
        lint(res, measure_data=False)


def test_dpo_before_instruction_tuning() -> None:
    (finding,) = check(resolved(DPO, checkpoint="mid-trained"), "dpo-before-instruction-tuning")
    assert finding.severity == "warning" and "mid-trained" in finding.message
    assert check(resolved(SFT, DPO, checkpoint="mid-trained"), "dpo-before-instruction-tuning") == []
    assert check(resolved(DPO), "dpo-before-instruction-tuning") == []
    # DPO's no-mix default is not a finding of the mixing rule
    assert check(resolved(DPO), "customer-share-far-from-50") == []
