"""The mixing engine: SDK rules, arithmetic, realized vs requested shares, determinism, windows, tokens,
sampling and repeats, the quality tail, warnings and the stored report. General data here is a small fake
stream so the tests do not depend on the embedded world; one integration test uses the real one."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest

from tunesmith.data.mixing import (
    CUSTOMER,
    CustomerData,
    MixingRuleError,
    MixSpec,
    check_mixing_rules,
    largest_remainder,
    mix,
    mixing_rule_violations,
    plan_counts,
    requested_percents,
    rows_source,
    weighted_interleave,
)
from tunesmith.errors import DataError

UNEVEN = {"reasoning-instruction-following": 55.5, "math": 24.5, "knowledge": 13, "reasoning": 7}


def mix_spec(
    customer_percent: float,
    general: dict[str, float] | None = None,
    *,
    unit: str = "examples",
    sampling: str = "without_replacement",
    max_general_repeats: int = 4,
    quality_tail_percent: float = 0.0,
) -> MixSpec:
    """A `MixSpec` with every knob spelled out (these tests' values; `MixSpec` itself has no defaults)."""
    return MixSpec(customer_percent, general or {}, unit, sampling, max_general_repeats, quality_tail_percent)


def fake_general(categories, *, size: int | None = None, text_length=lambda i: 10):
    """Unlimited (or `size`-long) SFT rows per category; row i of a pass is distinguishable."""

    def rows_for(name):
        def rows(epoch):
            indices = range(size) if size is not None else itertools.count()
            for i in indices:
                answer = "x" * text_length(i)
                yield {
                    "messages": [
                        {"role": "user", "content": f"{name} {epoch} {i}"},
                        {"role": "assistant", "content": answer},
                    ]
                }

        return rows

    return {name: rows_source(name, rows_for(name), "sft", size=size) for name in categories}


def customer_file(path: Path, count: int, *, high_every: int = 0, length=lambda i: 5) -> Path:
    with open(path, "w") as handle:
        for i in range(count):
            row = {
                "messages": [
                    {"role": "user", "content": f"c{i}"},
                    {"role": "assistant", "content": "y" * length(i)},
                ]
            }
            if high_every and i % high_every == 0:
                row["quality"] = "high"
            handle.write(json.dumps(row) + "\n")
    return path


# ------------------------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("customer", "general", "fragment"),
    [
        (101, {"math": 100}, "customer_percent: 101 is outside 0-100"),
        (50, {"math": 120, "knowledge": -20}, "general.math: 120 is outside 0-100"),
        (50, {"math": 60, "knowledge": 30}, "sum to 90, not 100"),
        (100, {"math": 100}, "customer_percent is 100 (your data only)"),
        (50, {}, "no general category has a share"),
        (50, {"math": 0, "knowledge": 0}, "no general category has a share"),
    ],
)
def test_mixing_rules_from_the_sdk(customer, general, fragment) -> None:
    violations = mixing_rule_violations(customer, general)
    assert any(fragment in v for v in violations), violations
    with pytest.raises(MixingRuleError) as err:
        check_mixing_rules(customer, general)
    assert isinstance(err.value, ValueError) and isinstance(err.value, DataError)


@pytest.mark.parametrize(
    ("customer", "general"),
    [
        (100, None),
        (100, {"math": 0}),
        (0, {"math": 100}),
        (30, {"math": 33.33, "knowledge": 33.33, "reasoning": 33.34}),
        (25, {"math": 99.995, "knowledge": 0}),
    ],
)
def test_valid_mixing_blocks(customer, general) -> None:
    assert mixing_rule_violations(customer, general) == []


def test_requested_percents_follow_the_worked_example() -> None:
    # DOC-FORGE-SFT: customer 25 and five categories at 20 each -> 15% of each category overall
    shares = requested_percents(25, {name: 20 for name in "abcde"})
    assert shares == {CUSTOMER: 25.0, "a": 15.0, "b": 15.0, "c": 15.0, "d": 15.0, "e": 15.0}


def test_largest_remainder_sums_exactly() -> None:
    assert largest_remainder(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    counts = plan_counts(10_001, 37, UNEVEN)
    assert sum(counts.values()) == 10_001
    assert counts[CUSTOMER] == 3700  # 37% of 10,001 = 3700.37
    assert abs(counts["math"] - 10_001 * 0.63 * 0.245) < 1


def test_interleave_keeps_every_window_close_to_the_shares() -> None:
    targets = {"a": 5000, "b": 3000, "c": 2000}
    streams = {name: itertools.count() for name in targets}
    order = [name for name, _ in weighted_interleave(streams, targets, seed=3)]
    assert Counter(order) == Counter(targets)
    for start in range(0, 10_000, 500):
        window = Counter(order[start : start + 500])
        for name, target in targets.items():
            assert abs(window[name] - target / 20) <= 2, (start, name, window)


# ------------------------------------------------------------------------------------------- shares


@pytest.mark.parametrize("customer_percent", [10, 25, 50, 75, 100])
def test_realized_shares_match_requested_within_1pp(customer_percent: int, tmp_path: Path) -> None:
    path = customer_file(tmp_path / "c.jsonl", 10_000)
    general = {} if customer_percent == 100 else UNEVEN
    spec = mix_spec(customer_percent=customer_percent, general=general)
    mixture = mix(CustomerData(path), fake_general(UNEVEN), spec, seed=7, total=10_000)
    examples = list(mixture)
    assert len(examples) == 10_000
    counts = Counter(example.source for example in examples)
    for name, requested in requested_percents(customer_percent, general).items():
        realized = 100.0 * counts[name] / 10_000
        assert abs(realized - requested) < 1.0, (name, realized, requested)
        assert mixture.report.realized_percent(name) == pytest.approx(realized)
    assert mixture.report.complete


def test_same_seed_same_order_other_seed_differs(tmp_path: Path) -> None:
    path = customer_file(tmp_path / "c.jsonl", 2_000)
    spec = mix_spec(customer_percent=40, general={"math": 70, "knowledge": 30})

    def order(seed: int) -> list[str]:
        mixture = mix(CustomerData(path, shuffle_buffer=500), fake_general(spec.general), spec, seed=seed)
        return [example.messages[0]["content"] for example in mixture]

    first, again, other = order(1), order(1), order(2)
    assert first == again
    assert first != other
    assert sorted(first) != first  # shuffled, not file order
    assert Counter(first) == Counter(other)  # the same examples, in another order


def test_token_unit_balances_tokens_not_examples(tmp_path: Path) -> None:
    # customer examples are short, general ones long: a token mix needs many more customer examples
    path = customer_file(tmp_path / "c.jsonl", 3_000, length=lambda i: 5 + i % 7)
    general = fake_general({"math": 1, "knowledge": 1}, text_length=lambda i: 40 + (i * 13) % 60)
    spec = mix_spec(customer_percent=50, general={"math": 75, "knowledge": 25}, unit="tokens")
    length = lambda example: len(example.render_text())  # noqa: E731 (a char-level "tokenizer")
    mixture = mix(CustomerData(path), general, spec, seed=0, length=length)
    examples = list(mixture)
    tokens = Counter()
    for example in examples:
        tokens[example.source] += length(example)
    total = sum(tokens.values())
    assert abs(100 * tokens[CUSTOMER] / total - 50) < 1
    assert abs(100 * tokens["math"] / total - 37.5) < 1
    assert abs(100 * tokens["knowledge"] / total - 12.5) < 1
    by_examples = Counter(example.source for example in examples)
    assert by_examples[CUSTOMER] == 3_000 and by_examples[CUSTOMER] > 2 * (
        by_examples["math"] + by_examples["knowledge"]
    )
    assert mixture.report.to_dict()["sources"][CUSTOMER]["tokens"] == tokens[CUSTOMER]


# ------------------------------------------------------------------------------------------- sampling


def test_default_total_uses_customer_data_once(tmp_path: Path) -> None:
    path = customer_file(tmp_path / "c.jsonl", 300)
    mixture = mix(
        CustomerData(path), fake_general({"math": 1}), mix_spec(customer_percent=30, general={"math": 100})
    )
    examples = list(mixture)
    assert len(examples) == 1000
    customer = [e.messages[0]["content"] for e in examples if e.source == CUSTOMER]
    assert len(customer) == len(set(customer)) == 300


def test_without_replacement_shrinks_when_customer_is_too_small(tmp_path: Path) -> None:
    path = customer_file(tmp_path / "c.jsonl", 200)
    spec = mix_spec(customer_percent=50, general={"math": 100})
    mixture = mix(CustomerData(path), fake_general({"math": 1}), spec, total=1000)
    examples = list(mixture)
    assert len(examples) == 400
    assert any("shrank from 1000 to 400" in warning for warning in mixture.report.warnings)


def test_with_replacement_repeats_customer_data(tmp_path: Path) -> None:
    path = customer_file(tmp_path / "c.jsonl", 200)
    spec = mix_spec(customer_percent=50, general={"math": 100}, sampling="with_replacement")
    mixture = mix(CustomerData(path), fake_general({"math": 1}), spec, total=1000)
    examples = list(mixture)
    customer = Counter(e.messages[0]["content"] for e in examples if e.source == CUSTOMER)
    assert sum(customer.values()) == 500 and len(customer) == 200
    assert max(customer.values()) == 3 and mixture.report.sources[CUSTOMER].passes == 3
    assert any("customer data repeats 2.50 times" in warning for warning in mixture.report.warnings)


def test_warns_when_general_data_would_repeat_too_often(tmp_path: Path) -> None:
    path = customer_file(tmp_path / "c.jsonl", 900)
    spec = mix_spec(
        customer_percent=10, general={"math": 100}, sampling="with_replacement", max_general_repeats=4
    )
    mixture = mix(CustomerData(path), fake_general({"math": 1}, size=1000), spec)
    assert any(
        "'math' would repeat 8.10 times (more than max_general_repeats=4)" in w
        for w in mixture.report.warnings
    )
    assert sum(1 for e in mixture if e.source == "math") == 8100
    assert mixture.report.sources["math"].passes == 9


def test_file_source_as_a_finite_general_category(tmp_path: Path) -> None:
    from tunesmith.data.mixing import file_source

    general_path = customer_file(tmp_path / "general.jsonl", 50)
    path = customer_file(tmp_path / "c.jsonl", 100)
    spec = mix_spec(
        customer_percent=50, general={"mine": 100}, sampling="with_replacement", max_general_repeats=1
    )
    mixture = mix(CustomerData(path), {"mine": file_source("mine", general_path, "sft")}, spec)
    examples = list(mixture)
    assert Counter(e.source for e in examples) == {CUSTOMER: 100, "mine": 100}
    assert mixture.report.sources["mine"].passes == 2
    assert any("'mine' would repeat 2.00 times" in w for w in mixture.report.warnings)


def test_general_only_needs_a_total() -> None:
    with pytest.raises(MixingRuleError, match="needs an explicit mix size"):
        mix(None, fake_general({"math": 1}), mix_spec(customer_percent=0, general={"math": 100}))
    mixture = mix(
        None,
        fake_general({"math": 1}),
        mix_spec(customer_percent=0, general={"math": 100}),
        total=50,
        kind="cpt",
    )
    assert len(list(mixture)) == 50


# ------------------------------------------------------------------------------------------- quality tail


def test_quality_tail_places_high_quality_examples_in_the_final_steps(tmp_path: Path) -> None:
    path = customer_file(tmp_path / "c.jsonl", 1_000, high_every=20)  # 50 high-quality examples
    spec = mix_spec(customer_percent=50, general={"math": 100}, quality_tail_percent=10)
    mixture = mix(CustomerData(path), fake_general({"math": 1}), spec, seed=4)
    examples = list(mixture)
    assert len(examples) == 2_000
    high_positions = [i for i, e in enumerate(examples) if e.quality]
    assert len(high_positions) == 50
    assert min(high_positions) >= 0.89 * len(examples)  # all within the final ~10% of steps
    tail_customer = [e for e in examples[int(0.9 * len(examples)) :] if e.source == CUSTOMER]
    assert 95 <= len(tail_customer) <= 105 and sum(e.quality for e in tail_customer) == 50
    # the general share is kept in the tail too (no forgetting spike at the end)
    tail = examples[-200:]
    assert abs(sum(e.source == "math" for e in tail) - 100) <= 3
    assert "50 high-quality example(s) in the final 100 customer slot(s)" in mixture.report.render_table()
    assert len({e.messages[0]["content"] for e in examples if e.source == CUSTOMER}) == 1_000  # none lost


def test_quality_file_examples_go_to_the_tail(tmp_path: Path) -> None:
    path = customer_file(tmp_path / "c.jsonl", 900)
    quality = tmp_path / "q.jsonl"
    quality.write_text(
        "".join(
            json.dumps(
                {"messages": [{"role": "user", "content": f"gold{i}"}, {"role": "assistant", "content": "g"}]}
            )
            + "\n"
            for i in range(100)
        )
    )
    spec = mix_spec(customer_percent=100, quality_tail_percent=10)
    examples = list(mix(CustomerData(path, quality_file=quality), {}, spec))
    assert len(examples) == 1000
    assert all(e.messages[0]["content"].startswith("gold") for e in examples[-100:])


def test_quality_tail_without_marked_examples_warns(tmp_path: Path) -> None:
    path = customer_file(tmp_path / "c.jsonl", 100)
    mixture = mix(CustomerData(path), {}, mix_spec(customer_percent=100, quality_tail_percent=20))
    assert any("no example is marked high quality" in w for w in mixture.report.warnings)


# ------------------------------------------------------------------------------------------- report


def test_sft_mix_without_reasoning_instruction_following_warns(tmp_path: Path) -> None:
    path = customer_file(tmp_path / "c.jsonl", 100)
    warned = mix(
        CustomerData(path), fake_general({"math": 1}), mix_spec(customer_percent=50, general={"math": 100})
    )
    assert any("reasoning-instruction-following" in w for w in warned.report.warnings)
    spec = mix_spec(customer_percent=50, general={"math": 50, "reasoning-instruction-following": 50})
    quiet = mix(CustomerData(path), fake_general(spec.general), spec)
    assert not quiet.report.warnings


def test_report_table_dict_and_saved_json(tmp_path: Path) -> None:
    path = customer_file(tmp_path / "c.jsonl", 250)
    spec = mix_spec(customer_percent=25, general=UNEVEN)
    mixture = mix(CustomerData(path), fake_general(UNEVEN), spec, seed=5)
    assert "stream not fully consumed" in mixture.report.render_table()
    list(mixture)
    table = mixture.report.render_table()
    assert "requested" in table and "realized" in table
    assert "customer                              25.00%    25.00%        250" in table
    saved = json.loads(mixture.report.save(tmp_path / "run" / "sft" / "mix.json").read_text())
    assert saved["complete"] is True and saved["seed"] == 5
    assert saved["sources"]["math"]["requested_percent"] == pytest.approx(75 * 0.245)
    assert sum(source["examples"] for source in saved["sources"].values()) == 1000


def test_integration_with_the_embedded_general_stream(tmp_path: Path) -> None:
    from tunesmith.data.mixing import builtin_general_sources

    path = customer_file(tmp_path / "c.jsonl", 500)
    spec = mix_spec(customer_percent=50, general={"reasoning-instruction-following": 60, "math": 40})
    sources = builtin_general_sources(spec.general, "sft", seed=0)
    first = [(e.source, e.content_key()) for e in mix(CustomerData(path), sources, spec, seed=1)]
    again = [(e.source, e.content_key()) for e in mix(CustomerData(path), sources, spec, seed=1)]
    assert first == again and len(first) == 1000
    counts = Counter(source for source, _ in first)
    assert counts == {CUSTOMER: 500, "reasoning-instruction-following": 300, "math": 200}
    with pytest.raises(MixingRuleError, match="unknown category"):
        builtin_general_sources(["no-such-category"], "sft")
