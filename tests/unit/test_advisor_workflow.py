"""`advise`: the playbook's four situations give the playbook's sequence; written recipes load and lint
without errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.advisor.findings import has_errors
from tunesmith.advisor.lint import lint
from tunesmith.advisor.stats import VocabularyGap
from tunesmith.advisor.workflow import (
    Inventory,
    advise,
    checkpoint_for_cpt,
    needs_cpt,
    recommend,
    render_advice,
    to_recipe,
)
from tunesmith.errors import UserError
from tunesmith.recipe.loading import load_recipe
from tunesmith.recipe.resolve import resolve
from tunesmith.runs import atomic_write_yaml

DEMOS, PROMPTS, TEXT, REWARD = (
    "builtin:brindle/sft",
    "builtin:brindle/rft",
    "builtin:brindle/cpt",
    "builtin:brindle",
)


def write_and_lint(advice, tmp_path: Path, probe: float | None = None):
    out = tmp_path / "advised.yaml"
    atomic_write_yaml(out, to_recipe(advice, name="advised", out_dir=tmp_path))
    recipe = load_recipe(out)
    findings = lint(resolve(recipe, recipe_path=out), probe_positive_rate=probe)
    return recipe, findings


def assert_only_narrow_data_warning(findings) -> None:
    """The one finding on an advised Brindle SFT: the tiny family's default 400 steps make ~4 epochs over a
    file of 876 unique demonstrations in 3,000 rows; information only on the tiny class, where the playbook
    measured more epochs helping (the defaults keep them)."""
    assert [(f.rule, f.severity) for f in findings] == [("sft-epochs-over-narrow-data", "info")]
    assert "876 are unique" in findings[0].message


def test_demonstrations_and_verifiable_reward_give_lora_sft_then_rft(tmp_path: Path) -> None:
    advice = advise(Inventory(demonstrations=DEMOS, prompts=PROMPTS, reward=REWARD))
    assert advice.sequence == ["sft", "rft"]
    assert [s.mode for s in advice.steps] == ["lora", "lora"] and advice.checkpoint == "post-trained"
    assert "reasoning-instruction-following" in advice.steps[0].reason
    recipe, findings = write_and_lint(advice, tmp_path)
    assert [s.technique for s in recipe.stages] == ["sft", "rft"]
    assert recipe.stages[0].data_mixing.customer_percent == 50
    assert recipe.stages[0].data.validation == "builtin:brindle/sft-validation"
    assert_only_narrow_data_warning(findings)


def test_reward_only_with_probe_above_5_percent_gives_rft_directly(tmp_path: Path) -> None:
    advice = advise(Inventory(prompts=PROMPTS, reward=REWARD, probe_positive_rate=0.12))
    assert advice.sequence == ["rft"]
    assert "12.0% positive reward (> 5%)" in advice.steps[0].reason
    recipe, findings = write_and_lint(advice, tmp_path, probe=0.12)
    assert recipe.stages[0].rft.reward == REWARD and findings == []


def test_reward_only_with_probe_below_5_percent_falls_back_to_sft_first() -> None:
    advice = advise(Inventory(prompts=PROMPTS, reward=REWARD, probe_positive_rate=0.02))
    assert advice.sequence == ["sft", "rft"]
    assert "fall back to SFT" in advice.steps[0].reason and not advice.steps[0].runnable
    with pytest.raises(UserError, match="no data — pass --demonstrations"):
        to_recipe(advice)
    text = render_advice(advice)
    assert "SFT -> RFT" in text and "[data missing]" in text


def test_reward_only_without_probe_says_probe_first() -> None:
    advice = advise(Inventory(prompts=PROMPTS, reward=REWARD))
    assert [s.technique for s in advice.steps] == ["probe", "rft"] and advice.sequence == ["rft"]
    assert "more than ~5%" in advice.steps[0].reason


def test_domain_text_with_unknown_vocabulary_gives_cpt_then_sft(tmp_path: Path) -> None:
    advice = advise(Inventory(domain_text=TEXT, demonstrations=DEMOS))
    assert advice.sequence == ["cpt", "sft"]
    assert "lacks the domain's vocabulary" in advice.steps[0].reason
    assert any("brindle" in m for m in advice.measurements)  # the most frequent unknown word
    # the demo domain text is ~0.5M tokens < 10B: post-trained checkpoint, so CPT uses LoRA
    assert advice.checkpoint == "post-trained" and advice.steps[0].mode == "lora"
    recipe, findings = write_and_lint(advice, tmp_path)
    assert [s.technique for s in recipe.stages] == ["cpt", "sft"] and not has_errors(findings)
    assert_only_narrow_data_warning(findings)


def test_domain_text_only_still_requires_sft() -> None:
    advice = advise(Inventory(domain_text=TEXT))
    assert advice.sequence == ["cpt", "sft"] and not advice.steps[1].runnable
    assert any("optionally follow with RFT" in n for n in advice.notes)


def test_domain_text_the_base_already_knows_skips_cpt() -> None:
    advice = advise(Inventory(domain_text="builtin:general/math/text", demonstrations=DEMOS))
    assert advice.sequence == ["sft"]
    assert any(n.startswith("no CPT: the base knows") for n in advice.notes)


def gap(rate: float, unk: float = 0.0) -> VocabularyGap:
    return VocabularyGap(rate, unk, words=1000, examples=10, reference="test")


def test_needs_cpt_thresholds_and_overrides() -> None:
    assert needs_cpt(gap(0.2))[0] and not needs_cpt(gap(0.05))[0]
    assert needs_cpt(gap(0.0, unk=0.02))[0]  # the tokenizer cannot spell the domain
    assert needs_cpt(None, "unknown")[0] and not needs_cpt(gap(0.9), "known")[0]
    assert not needs_cpt(None)[0]


def test_cpt_checkpoint_follows_data_scale() -> None:
    all_stages = ["pre-trained", "mid-trained", "post-trained"]
    assert checkpoint_for_cpt(200_000_000_000, all_stages)[0] == "pre-trained"
    assert checkpoint_for_cpt(20_000_000_000, all_stages)[0] == "mid-trained"
    assert checkpoint_for_cpt(1_000_000, all_stages)[0] == "post-trained"
    # a family without a mid-trained checkpoint (Qwen3): 10-100B tokens start from pre-trained
    assert checkpoint_for_cpt(20_000_000_000, ["pre-trained", "post-trained"])[0] == "pre-trained"


def test_large_cpt_on_a_billion_family_is_full_rank_large_scale_from_pre_trained() -> None:
    inventory = Inventory(family="qwen3-0.6b", domain_text=TEXT, demonstrations=DEMOS, vocabulary="unknown")
    advice = recommend(
        inventory,
        domain_tokens=2_000_000_000_000,
        available_checkpoints=["pre-trained", "post-trained"],
        size_class="billion",
    )
    assert advice.checkpoint == "pre-trained" and advice.scale == "large"
    assert advice.steps[0].mode == "full" and advice.sequence == ["cpt", "sft"]
    recipe = to_recipe(advice)
    assert recipe["stages"][0]["scale"] == "large"


def test_target_domain_only_keeps_some_mixing() -> None:
    advice = recommend(Inventory(demonstrations=DEMOS, target="domain"))
    assert advice.customer_percent == 75
    assert to_recipe(advice)["stages"][0]["data_mixing"] == {"customer_percent": 75}


def test_inventory_errors_are_one_line_user_errors() -> None:
    with pytest.raises(UserError, match="nothing to train on"):
        recommend(Inventory())
    with pytest.raises(UserError, match="both --prompts FILE and --reward"):
        recommend(Inventory(prompts=PROMPTS))
    with pytest.raises(UserError, match="not a fraction"):
        advise(Inventory(prompts=PROMPTS, reward=REWARD, probe_positive_rate=12))


def test_preferences_put_dpo_after_sft_and_before_rft(tmp_path: Path) -> None:
    advice = advise(
        Inventory(demonstrations=DEMOS, prompts=PROMPTS, reward=REWARD, preferences="builtin:brindle/dpo")
    )
    assert advice.sequence == ["sft", "dpo", "rft"]
    assert "SFT checkpoint" in advice.steps[1].reason and "[nova-dpo-docs]" in advice.steps[1].source
    recipe, findings = write_and_lint(advice, tmp_path)
    assert [s.technique for s in recipe.stages] == ["sft", "dpo", "rft"]
    assert recipe.stages[1].data_mixing is None  # DPO mixes no general data
    assert recipe.stages[1].data.validation == "builtin:brindle/dpo-validation"
    assert not has_errors(findings)
    alone = advise(Inventory(preferences="builtin:brindle/dpo"))
    assert alone.sequence == ["dpo"] and "post-trained start" in alone.steps[0].reason
