"""Pure scoring: metrics, rewards, the paired bootstrap, the forgetting table and the verdict (no model)."""

from __future__ import annotations

import random
import re

import pytest

from tunesmith.errors import UserError
from tunesmith.evaluation.forgetting import (
    RunSettings,
    bootstrap_change,
    forgetting_table,
    raised_share,
    regression_levers,
    verdict,
)
from tunesmith.evaluation.metrics import (
    exact_match,
    normalize_answer,
    normalized_match,
    resolve_reward,
    rouge_l,
    score_all,
    token_f1,
)


def reward_len(completion: str, reference_answer: str) -> float:
    """A module:function reward for the tests: 1 when the lengths match."""
    return float(len(completion) == len(reference_answer))


# --- metrics ---------------------------------------------------------------------------------------------
def test_exact_match_keeps_case_and_collapses_whitespace() -> None:
    assert exact_match("A  B", "A B") == 1.0
    assert exact_match("a b", "A B") == 0.0


def test_squad_normalization_and_token_f1() -> None:
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert normalized_match("the Cat.", "cat") == 1.0
    # SQuAD: precision 1/2, recall 1/1 -> F1 2/3
    assert token_f1("red fox", "fox") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0
    assert token_f1("a b c", "d e") == 0.0


def test_rouge_l_is_lcs_f_measure() -> None:
    # LCS("police killed the gunman", "police kill the gunman") = police the gunman = 3 of 4 and 4
    assert rouge_l("police kill the gunman", "police killed the gunman") == pytest.approx(0.75)
    assert rouge_l("a b c d", "a b c d") == 1.0
    assert rouge_l("x", "y") == 0.0


def _lcs_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F1 written out (the project's scorer before it used rouge-score), to compare against."""
    got, want = (re.sub(r"[^a-z0-9]+", " ", t.lower()).split() for t in (prediction, reference))
    if not got or not want:
        return float(got == want)
    table = [[0] * (len(want) + 1) for _ in range(len(got) + 1)]
    for i, a in enumerate(got):
        for j, b in enumerate(want):
            table[i + 1][j + 1] = table[i][j] + 1 if a == b else max(table[i][j + 1], table[i + 1][j])
    lcs = table[-1][-1]
    return 0.0 if lcs == 0 else 2 * (lcs / len(got)) * (lcs / len(want)) / (lcs / len(got) + lcs / len(want))


def test_rouge_l_gives_the_written_out_lcs_scores() -> None:
    pairs = [
        ("4 x 6 = 24 brix", "4 x 6 = 24 brix"),
        ("request shipment", "request shipment next-day"),
        ("the cat sat on the mat", "the cat is on the mat today"),
        ("Gold, Teal!", "gold"),
        ("Ünïcode café", "unicode cafe"),
    ]
    rng = random.Random(0)
    words = ["a", "b", "C", "d4", "e-f", "!", "ß"]
    pairs += [
        (" ".join(rng.choices(words, k=rng.randint(0, 8))), " ".join(rng.choices(words, k=rng.randint(0, 8))))
        for _ in range(300)
    ]
    for prediction, reference in pairs:
        assert rouge_l(prediction, reference) == _lcs_f1(prediction, reference), (prediction, reference)
    # answers without a single token: equal (1.0) as in token_f1, where rouge-score itself says 0.0
    assert rouge_l("", "") == 1.0 and rouge_l("!!", "??") == 1.0
    assert rouge_l("", "x") == 0.0 and rouge_l("x", "") == 0.0


def test_score_all_with_the_brindle_reward() -> None:
    scores = score_all("4 x 6 = 25 brix", "4 x 6 = 24 brix", resolve_reward("builtin:brindle"))
    assert scores["exact_match"] == 0.0 and scores["reward"] == 0.0
    assert score_all("3 x 2 = 7 brix", "4 x 2 = 7 brix", resolve_reward("builtin:brindle"))["reward"] == 0.5
    assert set(scores) == {"exact_match", "normalized_match", "token_f1", "rouge_l", "reward"}


def test_module_function_reward_and_one_line_errors() -> None:
    fn = resolve_reward(f"{__name__}:reward_len")
    assert fn("ab", "cd") == 1.0
    for spec, words in [
        ("not a reward", "unknown reward"),
        ("no_such_module_xyz:f", "no_such_module_xyz"),
        (f"{__name__}:missing", "missing"),
    ]:
        with pytest.raises(UserError) as err:
            resolve_reward(spec)
        assert words in str(err.value) and "\n" not in str(err.value)


# --- bootstrap -------------------------------------------------------------------------------------------
def test_identical_scores_have_a_zero_interval() -> None:
    change, low, high = bootstrap_change([1, 0, 1, 1] * 15, [1, 0, 1, 1] * 15)
    assert (change, low, high) == (0.0, 0.0, 0.0)


def test_a_large_paired_drop_is_significant_and_a_few_flips_are_not() -> None:
    before = [1.0] * 60
    change, low, high = bootstrap_change(before, [1.0] * 12 + [0.0] * 48)
    assert change == pytest.approx(-0.8) and high < 0 and low < -0.85 < high
    # 2 of 60 items flipped: 3 points, within noise (P(no flipped item in a resample) ~ 13% > 2.5%)
    change, low, high = bootstrap_change(before, [0.0] * 2 + [1.0] * 58)
    assert change == pytest.approx(-2 / 60) and high == 0.0 and low < 0


def test_interval_is_deterministic_and_covers_the_change() -> None:
    before = [1.0, 0.0] * 50
    after = [1.0, 1.0, 0.0, 0.0] * 25
    first = bootstrap_change(before, after, seed=3)
    assert first == bootstrap_change(before, after, seed=3)
    assert first[1] <= first[0] <= first[2]


def test_stratified_overall_is_the_macro_mean() -> None:
    # stratum a (10 items) drops 1.0; stratum b (90 items) is unchanged -> macro change -0.5, not -0.1
    before = [1.0] * 100
    after = [0.0] * 10 + [1.0] * 90
    strata = ["a"] * 10 + ["b"] * 90
    change, low, high = bootstrap_change(before, after, strata)
    assert change == pytest.approx(-0.5) and low == pytest.approx(-0.5) and high == pytest.approx(-0.5)


# --- table and verdict -----------------------------------------------------------------------------------
def _items(scores: dict[str, list[float]]) -> list[dict]:
    return [
        {"id": f"{c}/{i}", "category": c, "scores": {"exact_match": s}}
        for c, values in scores.items()
        for i, s in enumerate(values)
    ]


def test_forgetting_table_rows_and_retention() -> None:
    before = _items({"math": [1.0] * 60, "knowledge": [1.0] * 40 + [0.0] * 20})
    after = _items({"math": [0.0] * 30 + [1.0] * 30, "knowledge": [1.0] * 40 + [0.0] * 20})
    rows = {r.category: r for r in forgetting_table("general", before, after)}
    assert list(rows) == ["knowledge", "math", "overall"]
    assert rows["math"].before == 1.0 and rows["math"].after == 0.5 and rows["math"].direction == "drop"
    assert rows["knowledge"].direction == "same" and rows["knowledge"].retention == pytest.approx(1.0)
    overall = rows["overall"]
    assert overall.before == pytest.approx((1 + 2 / 3) / 2) and overall.change == pytest.approx(-0.25)
    assert overall.retention == pytest.approx(((0.5 + 2 / 3) / 2) / ((1 + 2 / 3) / 2))
    assert overall.to_dict()["direction"] == "drop"


def test_table_pairs_items_by_id_not_position() -> None:
    before = _items({"math": [1.0, 0.0]})
    after = list(reversed(_items({"math": [1.0, 0.0]})))
    rows = forgetting_table("general", before, after)
    assert all(r.change == 0.0 for r in rows)
    with pytest.raises(AssertionError):
        forgetting_table("general", before, _items({"math": [1.0]}))


def test_verdict_no_regression() -> None:
    general = forgetting_table(
        "general", _items({"math": [1.0] * 60, "reasoning": [1.0] * 60}),
        _items({"math": [1.0] * 59 + [0.0], "reasoning": [1.0] * 60}),
    )  # fmt: skip
    domain = forgetting_table(
        "domain", _items({"brindle": [0.0] * 100}), _items({"brindle": [1.0] * 41 + [0.0] * 59})
    )
    line = verdict(general, domain)
    assert (
        line
        == "domain exact_match +41 points (0.00 -> 0.41); general retained 99% — no significant regression"
    )


def test_verdict_names_the_worst_category() -> None:
    general = forgetting_table(
        "general",
        _items({"math": [1.0] * 60, "reasoning-instruction-following": [1.0] * 60, "knowledge": [1.0] * 60}),
        _items({"math": [0.0] * 20 + [1.0] * 40, "reasoning-instruction-following": [0.0] * 46 + [1.0] * 14,
                "knowledge": [1.0] * 60}),
    )  # fmt: skip
    line = verdict(general, None)
    assert "significant regression" in line
    assert "dropped 77 points in reasoning-instruction-following (also: math)" in line
    assert "raise reasoning-instruction-following's share" in line
    assert "\n" not in line


def test_verdict_domain_within_noise_and_nothing() -> None:
    domain = forgetting_table("domain", _items({"d": [0.0] * 50}), _items({"d": [1.0] + [0.0] * 49}))
    assert verdict(None, domain) == "domain exact_match +2 points (0.00 -> 0.02) (within noise)"
    assert verdict(None, None) == "nothing to compare"


def test_domain_rows_have_no_retention_ratio() -> None:
    rows = forgetting_table(
        "domain",
        _items({"d": [0.0] * 99 + [1.0]}),
        _items({"d": [1.0] * 60 + [0.0] * 40}),
        with_retention=False,
    )
    assert all(r.retention is None for r in rows) and rows[-1].direction == "gain"


# --- advice that fits the run's recipe (issue 17) --------------------------------------------------------
MIX = {"reasoning-instruction-following": 30, "instruction-following": 20, "math": 15, "reasoning": 15,
       "knowledge": 20}  # fmt: skip


def _dropped(category: str = "instruction-following"):
    """A general table where `category` dropped 30 points (significant) and math stayed."""
    return forgetting_table(
        "general", _items({category: [1.0] * 60, "math": [1.0] * 60}),
        _items({category: [0.0] * 18 + [1.0] * 42, "math": [1.0] * 60}),
    )  # fmt: skip


def _settings(**changes) -> RunSettings:
    base = {"technique": "sft", "mode": "lora", "customer_percent": 50.0, "general": MIX, "lr": 1e-2,
            "default_lr": 1e-2, "epochs": 1.0, "lora_rank": 8, "lora_alpha": 16.0, "run": "runs/r/sft"}  # fmt: skip
    return RunSettings(**{**base, **changes})


def test_unmixed_run_is_told_to_mix_general_data_in() -> None:
    unmixed = _settings(customer_percent=100.0, general={}, mode="full")
    for settings in (None, unmixed):
        line = verdict(_dropped(), None, settings)
        assert line.endswith(
            "dropped 30 points in instruction-following: mix general data in and raise instruction-following's share"
        )
    assert regression_levers(_dropped(), unmixed) == []


def test_mixed_full_rank_run_gets_the_levers_left_with_its_numbers() -> None:
    settings = _settings(mode="full", lr=3e-4, default_lr=3e-4, lora_rank=None, lora_alpha=None)
    line = verdict(_dropped(), None, settings)
    assert "mix general data in" not in line and "mix more general data in" not in line
    assert "the run already mixes 50% general data; levers left: " in line
    assert "raise instruction-following's share from 20% to ~30% of the general half" in line
    assert "lower the LR from 0.0003 to ~0.00015 (0.5x)" in line
    assert "train LoRA instead of full rank" in line
    assert "`tunesmith eval runs/r/sft --blend 0.9`" in line
    assert "fewer epochs" not in line and "alpha" not in line  # one epoch; no LoRA
    ids = [lever["id"] for lever in regression_levers(_dropped(), settings)]
    assert ids == ["share", "lr", "lora", "blend"]
    assert all(lever["source"].startswith("[") for lever in regression_levers(_dropped(), settings))


def test_mixed_lora_with_high_alpha_is_told_to_lower_alpha() -> None:
    line = verdict(_dropped(), None, _settings(lora_alpha=64.0))
    assert "lower LoRA alpha from 64 to ~16 (2x rank 8" in line and "train LoRA instead" not in line
    assert "alpha" not in verdict(_dropped(), None, _settings())  # alpha = 2 x rank: not a lever


def test_multi_epoch_run_is_told_to_train_fewer_epochs() -> None:
    line = verdict(_dropped(), None, _settings(epochs=4.2667))
    assert "train fewer epochs (the run saw your data 4.3 times; try ~2)" in line


def test_lr_above_the_default_is_sent_back_and_a_lowered_lr_is_not_lowered_again() -> None:
    assert "return the LR from 0.03 (3x the family default) to 0.01" in verdict(
        _dropped(), None, _settings(lr=3e-2)
    )
    assert "LR" not in verdict(_dropped(), None, _settings(lr=5e-3))


def test_a_category_missing_from_the_mix_is_added_and_other_splits_are_named() -> None:
    settings = _settings(customer_percent=70.0, general={"math": 100.0})
    line = verdict(_dropped("knowledge"), None, settings)
    assert "the run already mixes 30% general data" in line
    assert "add knowledge to the general mix (~20% of the general 30%)" in line
    assert raised_share(15) == 25 and raised_share(30) == 45 and raised_share(80) == 100


def test_overall_only_drop_on_a_mixed_run_raises_the_general_share() -> None:
    many = {c: [1.0] * 60 for c in ("a", "b", "c", "d", "e")}
    after = {c: [0.0] * 2 + [1.0] * 58 for c in many}  # 3 points each: within noise alone, not together
    rows = forgetting_table("general", _items(many), _items(after))
    line = verdict(rows, None, _settings())
    assert "significant regression overall" in line and "mix more general data in" not in line
    assert "levers left: raise the general share from 50% to ~65% (customer_percent 35)" in line
    assert verdict(rows, None, None).endswith("): mix more general data in")


def test_no_regression_reads_the_same_with_or_without_settings() -> None:
    general = forgetting_table("general", _items({"math": [1.0] * 60}), _items({"math": [1.0] * 60}))
    for settings in (None, _settings(), _settings(customer_percent=100.0, general={})):
        assert verdict(general, None, settings) == "general retained 100% — no significant regression"
        assert regression_levers(general, settings) == []
