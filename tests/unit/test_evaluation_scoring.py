"""Pure scoring: metrics, rewards, the paired bootstrap, the forgetting table and the verdict (no model)."""

from __future__ import annotations

import random
import re

import pytest

from tunesmith.errors import UserError
from tunesmith.evaluation.forgetting import bootstrap_change, forgetting_table, verdict
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
    assert line == "domain +41 points (0.00 -> 0.41); general retained 99% — no significant regression"


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
    assert verdict(None, domain) == "domain +2 points (0.00 -> 0.02) (within noise)"
    assert verdict(None, None) == "nothing to compare"


def test_domain_rows_have_no_retention_ratio() -> None:
    rows = forgetting_table(
        "domain",
        _items({"d": [0.0] * 99 + [1.0]}),
        _items({"d": [1.0] * 60 + [0.0] * 40}),
        with_retention=False,
    )
    assert all(r.retention is None for r in rows) and rows[-1].direction == "gain"
