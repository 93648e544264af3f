"""The general data: shapes, determinism, the held-out split, exact answers, knowledge coverage."""

from __future__ import annotations

import re

import pytest

from tunesmith.data import general
from tunesmith.data.general.split import EVAL_PERCENT, is_eval_prompt
from tunesmith.data.general.world import world
from tunesmith.models.tokenizer import CHARACTERS


@pytest.mark.parametrize("category", general.CATEGORIES)
def test_row_shapes(category: str) -> None:
    (text,) = general.sample(category, "text", 1)
    assert set(text) == {"text"} and len(text["text"]) > 20
    (sft,) = general.sample(category, "sft", 1)
    assert [m["role"] for m in sft["messages"]] == ["user", "assistant"]
    (row,) = general.sample(category, "eval", 1, split="eval")
    assert set(row) == {"query", "response", "metadata"} and row["metadata"] == {"category": category}


@pytest.mark.parametrize("category", general.CATEGORIES)
def test_streams_are_deterministic_and_seeded(category: str) -> None:
    assert general.sample(category, "sft", 50, seed=3) == general.sample(category, "sft", 50, seed=3)
    assert general.sample(category, "sft", 50, seed=3) != general.sample(category, "sft", 50, seed=4)


@pytest.mark.parametrize("category", general.CATEGORIES)
def test_eval_prompts_never_appear_in_training(category: str) -> None:
    eval_rows = general.sample(category, "eval", 200, split="eval")
    assert len(eval_rows) >= 50  # knowledge has the smallest pool (~57 distinct held-out prompts)
    eval_prompts = {row["query"] for row in eval_rows}
    train_prompts = {row["messages"][0]["content"] for row in general.sample(category, "sft", 3000)}
    assert not eval_prompts & train_prompts
    assert all(is_eval_prompt(p) for p in eval_prompts)
    assert not any(is_eval_prompt(p) for p in train_prompts)


def test_hash_split_holds_out_about_the_configured_share() -> None:
    prompts = [f"Compute {a} + {b}." for a in range(41) for b in range(41)]
    share = 100 * sum(map(is_eval_prompt, prompts)) / len(prompts)
    assert abs(share - EVAL_PERCENT) < 3


def test_answers_are_exact() -> None:
    for row in general.sample("math", "eval", 100, split="eval"):
        a, op, b = re.fullmatch(r"Compute (\d+) ([+-]) (\d+)\.", row["query"]).groups()
        assert int(row["response"]) == (int(a) + int(b) if op == "+" else int(a) - int(b))
    for row in general.sample("reasoning-instruction-following", "sft", 200):
        prompt, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        if prompt.startswith("Sort"):
            digits = sorted(int(d) for d in prompt[5 : prompt.index(",")].split())
            assert answer == " ".join(map(str, digits[:2]))


def test_every_knowledge_fact_is_in_the_pretraining_text() -> None:
    text = " ".join(row["text"] for row in general.sample("knowledge", "text", 2000))
    w = world()
    for country, capital in w.capitals.items():
        assert country in text and capital in text
    for person in w.pets:
        assert re.search(rf"\b{person}\b.*", text)
    # each held-out knowledge question asks a fact that training demonstrations also ask (other wording)
    train_answers = {(row["messages"][1]["content"]) for row in general.sample("knowledge", "sft", 3000)}
    assert {
        row["response"] for row in general.sample("knowledge", "eval", 100, split="eval")
    } <= train_answers


def test_all_characters_are_in_the_tiny_vocabulary() -> None:
    allowed = set(CHARACTERS)
    for category in general.CATEGORIES:
        for kind in ("text", "sft"):
            for row in general.sample(category, kind, 200):
                assert set(str(row)) <= allowed | {"'", '"'}


def test_unknown_category_or_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown general category"):
        general.sample("poetry", "text", 1)
    with pytest.raises(ValueError, match="unknown kind"):
        general.sample("math", "rft", 1)
