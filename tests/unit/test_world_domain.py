"""The Brindle demo domain: shapes, split, the reward, and that the general data never mentions it."""

from __future__ import annotations

import re

import pytest

from tunesmith.data import domain, general
from tunesmith.data.general.split import is_eval_prompt


def test_kinds_have_the_documented_shapes() -> None:
    (cpt,) = domain.sample("cpt", 1)
    assert set(cpt) == {"text"} and cpt["text"].startswith("Brindle memo.")
    (sft,) = domain.sample("sft", 1)
    assert [m["role"] for m in sft["messages"]] == ["user", "assistant"]
    (rft,) = domain.sample("rft", 1)
    assert [m["role"] for m in rft["messages"]] == ["user"] and rft["reference_answer"] and rft["task"]
    (row,) = domain.sample("eval", 1, split="eval")
    assert row["metadata"]["category"] == "brindle"


def test_total_task_is_lookup_plus_compute() -> None:
    for row in domain.sample("eval", 200, split="eval"):
        match = re.fullmatch(r"Brindle: total for (\d) (\w+)\?", row["query"])
        if match:
            qty, code = int(match[1]), match[2]
            price = domain.PARTS[code][2]
            assert row["response"] == f"{qty} x {price} = {qty * price} brix"


def test_eval_split_is_disjoint_from_training() -> None:
    eval_prompts = {row["query"] for row in domain.sample("eval", 200, split="eval")}
    assert len(eval_prompts) == 200
    train_prompts = {row["messages"][0]["content"] for row in domain.sample("sft", 3000)}
    assert not eval_prompts & train_prompts
    assert all(is_eval_prompt(p) for p in eval_prompts)


def test_general_data_never_mentions_the_domain() -> None:
    domain_words = {"brindle", "brix", *(c.lower() for c in domain.PARTS), *domain.SHORTHAND}
    domain_words |= {name for name, _, _ in domain.PARTS.values()}
    for category in general.CATEGORIES:
        rows = general.sample(category, "text", 300) + general.sample(category, "sft", 300)
        words = set(re.findall(r"[a-z0-9]+", str(rows).lower()))
        assert not words & domain_words, category


@pytest.mark.parametrize(
    ("completion", "reference", "expected"),
    [
        ("4 x 6 = 24 brix", "4 x 6 = 24 brix", 1.0),
        ("  4 X 6 =  24 BRIX ", "4 x 6 = 24 brix", 1.0),
        ("24", "4 x 6 = 24 brix", 0.5),
        ("4 x 6 = 25 brix", "4 x 6 = 24 brix", 0.0),
        ("request shipment", "request shipment next-day", 1 / 3),
        ("", "crate", 0.0),
    ],
)
def test_reward_is_verifiable_and_bounded(completion: str, reference: str, expected: float) -> None:
    assert domain.reward(completion, reference) == pytest.approx(expected)


def test_reward_of_every_reference_is_one() -> None:
    for row in domain.sample("rft", 300):
        assert domain.reward(row["reference_answer"], row["reference_answer"]) == 1.0
