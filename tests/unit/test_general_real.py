"""The real-model general item bank (`tunesmith.data.general.real`): sizes, splits, determinism, and the
scorer on hand-written answers in a real model's style. Model-free."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tunesmith.data.general import real
from tunesmith.data.general.ifeval import INSTRUCTION_DICT, follows
from tunesmith.vocabulary import CATEGORIES


def _item(category: str, reference: str | None, checks: list[dict], prompt: str = "q") -> dict:
    return {"id": "t", "category": category, "prompt": prompt, "reference": reference, "checks": checks}


NUMBER = [{"id": "tunesmith:number", "kwargs": {}}]


# --- the bank --------------------------------------------------------------------------------------------
def test_every_category_has_enough_eval_items_and_replay_prompts() -> None:
    for category in CATEGORIES:
        held_out, replay = real.items("eval", category), real.items("replay", category)
        assert len(held_out) >= 60, (category, len(held_out))
        assert len(replay) >= 150, (category, len(replay))
        assert {i["split"] for i in held_out} == {"eval"} and {i["split"] for i in replay} == {"replay"}
        assert {i["category"] for i in held_out + replay} == {category}
    assert len(real.items("eval")) == sum(len(real.items("eval", c)) for c in CATEGORIES)


def test_ids_and_prompts_are_unique_and_items_have_the_interface_keys() -> None:
    every = real.items("eval") + real.items("replay")
    assert len({i["id"] for i in every}) == len(every)
    assert len({i["prompt"] for i in every}) == len(every)
    for item in every:
        assert set(item) == {"id", "category", "prompt", "reference", "checks", "split"}
        assert item["checks"], item
        if item["category"] != "instruction-following":
            assert item["reference"], item


def _problem(item: dict) -> str:
    """The problem behind a prompt, wording removed: its numbers and operation words (math, reasoning)."""
    words = re.findall(r"\d+|plus|minus|times|divided|more|away|boxes|pages|older|larger|smaller|tallest|"
                       r"shortest|even|odd|next|after|two days", item["prompt"])  # fmt: skip
    return " ".join(words)


def test_eval_and_replay_are_disjoint_by_prompt_and_by_problem() -> None:
    for category in CATEGORIES:
        held_out, replay = real.items("eval", category), real.items("replay", category)
        assert not {i["prompt"] for i in held_out} & {i["prompt"] for i in replay}
        if category == "knowledge":  # one fact, one question: no held-out fact is a replay target
            assert not {i["prompt"] for i in held_out} & {i["prompt"] for i in replay}
        if category in ("math", "reasoning"):
            # the same numbers with other names or things would be the same problem
            numeric = [
                {_problem(i) for i in split if re.search(r"\d", i["prompt"])} for split in (held_out, replay)
            ]
            assert len(numeric[0]) >= 50
            assert not numeric[0] & numeric[1]


def test_the_items_are_the_same_in_every_process() -> None:
    code = (
        "import json, hashlib; from tunesmith.data.general import real; "
        "print(hashlib.sha256(json.dumps([real.items('eval'), real.items('replay')]).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1
    assert real.items("eval") == real.items("eval")


def test_unknown_split_or_category_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        real.items("train")
    with pytest.raises(ValueError, match="unknown general category"):
        real.items("eval", "poetry")


def test_prose_is_real_text_with_its_source_and_license() -> None:
    texts = real.prose_texts()
    assert len(texts) >= 50
    assert all(len(t) >= 300 for t in texts)
    assert len(set(texts)) == len(texts)
    from importlib import resources

    shipped = json.loads(resources.files("tunesmith.data.general").joinpath("prose.json").read_text())
    assert "Python Software Foundation" in shipped["license"]
    assert all(row["source"] for row in shipped["texts"])


# --- scoring -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("12 + 7 = 19.", 1.0),
        ("The answer is 19.", 1.0),
        ("The answer is 19. To check: 12 + 7 = 19", 1.0),
        ("<think>12 plus 7 is 18? No, 19.</think>\nSo the sum is 19.", 1.0),
        ("We get \\boxed{19}.", 1.0),
        ("nineteen", 1.0),
        ("It is 18.", 0.0),
        ("12 + 7 = 9", 0.0),
        ("There are 19 apples, so 20.", 0.0),
        ("I don't know.", 0.0),
    ],
)
def test_a_math_answer_counts_by_its_final_number(answer: str, expected: float) -> None:
    assert real.score(_item("math", "19", NUMBER), answer) == expected


def test_large_numbers_with_thousands_separators_count() -> None:
    assert real.score(_item("math", "1200", NUMBER), "The total is 1,200 stamps.") == 1.0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Carol is the shortest.", 1.0),
        ("The shortest is Carol, who is shorter than Ben.", 1.0),
        ("Since Anna is taller than Ben and Ben is taller than Carol, Carol is the shortest.", 1.0),
        ("Carol.", 1.0),
        ("Answer: Carol", 1.0),
        ("Anna is the shortest.", 0.0),
        ("The shortest is Ben.", 0.0),
        ("I cannot tell.", 0.0),
    ],
)
def test_a_choice_answer_counts_by_the_option_it_picks(answer: str, expected: float) -> None:
    checks = [{"id": "tunesmith:choice", "kwargs": {"options": ["Anna", "Ben", "Carol"], "key": "shortest"}}]
    assert real.score(_item("reasoning", "Carol", checks), answer) == expected


def test_comparison_and_parity_answers() -> None:
    larger = [{"id": "tunesmith:choice", "kwargs": {"options": ["37", "52"], "key": "larger"}}]
    assert real.score(_item("reasoning", "52", larger), "52 is larger than 37.") == 1.0
    assert real.score(_item("reasoning", "52", larger), "Between 37 and 52, the larger number is 52.") == 1.0
    assert real.score(_item("reasoning", "52", larger), "37 is larger than 52.") == 0.0
    parity = [{"id": "tunesmith:choice", "kwargs": {"options": ["even", "odd"], "key": "17"}}]
    assert real.score(_item("reasoning", "odd", parity), "17 is an odd number.") == 1.0
    assert real.score(_item("reasoning", "odd", parity), "17 is odd, not even.") == 1.0
    assert real.score(_item("reasoning", "odd", parity), "17 is an even number.") == 0.0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The capital of Colombia is Bogotá.", 1.0),
        ("Bogota", 1.0),
        ("It's BOGOTA!", 1.0),
        ("The capital of Colombia is Medellín.", 0.0),
        ("Bogotaville is a made-up town.", 0.0),
    ],
)
def test_a_knowledge_answer_counts_when_it_mentions_an_alias(answer: str, expected: float) -> None:
    checks = [{"id": "tunesmith:mentions", "kwargs": {"aliases": ["Bogota", "Bogotá"]}}]
    assert real.score(_item("knowledge", "Bogota", checks), answer) == expected


def test_instruction_following_uses_ifeval_checkers_loosely() -> None:
    no_comma = [{"id": "punctuation:no_comma", "kwargs": {}}]
    assert real.score(_item("instruction-following", None, no_comma), "The sea is wide and blue.") == 1.0
    assert real.score(_item("instruction-following", None, no_comma), "The sea is wide, and blue.") == 0.0
    lower = [{"id": "change_case:english_lowercase", "kwargs": {}}]
    assert real.score(_item("instruction-following", None, lower), "the sea is wide and blue today.") == 1.0
    assert real.score(_item("instruction-following", None, lower), "The sea is wide and blue today.") == 0.0
    short = [{"id": "length_constraints:number_words", "kwargs": {"num_words": 10, "relation": "less than"}}]
    assert real.score(_item("instruction-following", None, short), "Tea is made with hot water.") == 1.0
    assert real.score(_item("instruction-following", None, short), "word " * 12) == 0.0
    as_json = [{"id": "detectable_format:json_format", "kwargs": {}}]
    assert real.score(_item("instruction-following", None, as_json), '```json\n{"sea": "blue"}\n```') == 1.0
    # loose: a chatty first line is forgiven, as in IFEval's loose accuracy
    assert real.score(_item("instruction-following", None, as_json), 'Sure!\n{"sea": "blue"}') == 1.0
    assert real.score(_item("instruction-following", None, as_json), "The sea is blue.") == 0.0
    end = [{"id": "startend:end_checker", "kwargs": {"end_phrase": "Any other questions?"}}]
    assert real.score(_item("instruction-following", None, end), "Tea is nice. Any other questions?") == 1.0
    assert real.score(_item("instruction-following", None, end), "Any other questions? Tea is nice.") == 0.0
    both = no_comma + lower
    assert real.score(_item("instruction-following", None, both), "the sea is blue") == 1.0
    assert real.score(_item("instruction-following", None, both), "the sea, is blue") == 0.0


def test_the_vendored_checkers_are_the_registered_ifeval_ids() -> None:
    assert len(INSTRUCTION_DICT) >= 15
    bullets = [{"id": "detectable_format:number_bullet_lists", "kwargs": {"num_bullets": 2}}]
    assert follows(bullets, "p", "* one\n* two")
    assert not follows(bullets, "p", "* one\n* two\n* three", loose=False)
    assert follows(bullets, "p", "* one\n* two\n* three")  # loose: without the last line, two bullets
    used = {c["id"] for i in real.items("eval", "instruction-following") for c in i["checks"]}
    assert used <= set(INSTRUCTION_DICT) and len(used) >= 8


def test_reasoning_instruction_following_needs_both_the_answer_and_the_format() -> None:
    line = NUMBER + [{"id": "tunesmith:answer_line", "kwargs": {}}]
    item = _item("reasoning-instruction-following", "108", line)
    assert real.score(item, "21 + 87: 20 + 80 = 100, 1 + 7 = 8.\nAnswer: 108") == 1.0
    assert real.score(item, "21 + 87 = 108.") == 0.0  # right, but no Answer: line
    assert real.score(item, "First 108 appears.\nAnswer: 107") == 0.0  # the line's number is what counts
    boxed = NUMBER + [{"id": "tunesmith:boxed", "kwargs": {}}]
    item = _item("reasoning-instruction-following", "108", boxed)
    assert real.score(item, "So \\boxed{108}.") == 1.0
    assert real.score(item, "So 108.") == 0.0
    postscript = NUMBER + [{"id": "detectable_content:postscript", "kwargs": {"postscript_marker": "P.S."}}]
    item = _item("reasoning-instruction-following", "60", postscript)
    assert (
        real.score(item, "10 * 6 = 60 pages.\n\nP.S. Ben reads 10 pages every day.") == 1.0
    )  # not the P.S.'s 10
    assert real.score(item, "10 * 6 = 60 pages.") == 0.0  # no postscript
    lower = [
        {"id": "tunesmith:choice", "kwargs": {"options": ["even", "odd"], "key": "17"}},
        {"id": "change_case:english_lowercase", "kwargs": {}},
    ]
    item = _item("reasoning-instruction-following", "odd", lower)
    sentence = "seventeen is an odd number because it cannot be split into two equal whole groups."
    assert real.score(item, sentence) == 1.0
    assert real.score(item, sentence.capitalize()) == 0.0


def test_every_eval_item_scores_zero_on_an_empty_answer_and_its_reference_text_scores() -> None:
    """No item is free: an empty answer fails everything; and the reference, said in a sentence, passes
    every item whose checks are only about the answer."""
    for item in real.items("eval"):
        assert real.score(item, "") == 0.0, item
        if {c["id"] for c in item["checks"]} <= {
            "tunesmith:number",
            "tunesmith:choice",
            "tunesmith:mentions",
        }:
            assert real.score(item, f"The answer is {item['reference']}.") == 1.0, item
