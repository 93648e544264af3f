"""Self-replay general data, model-free: the cache key, the filter, the share arithmetic, the sources, the
plan's provenance and the offline default (`tunesmith.data.self_replay`, `recipe.resolve`)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tunesmith.cli import main
from tunesmith.data import self_replay
from tunesmith.data.curated.load import MIRROR_ENV
from tunesmith.data.mixing import MixSpec, mix
from tunesmith.data.self_replay import (
    MIN_KEPT,
    ReplayAnswer,
    ReplaySet,
    ReplaySettings,
    cache_key,
    filter_answers,
    judge,
    pick_items,
    read_cache,
    replay_sources,
    surviving_shares,
    write_cache,
)
from tunesmith.errors import DataError
from tunesmith.recipe.plan import plan, render_plan
from tunesmith.vocabulary import CATEGORIES


def _item(i: int, category: str = "math", reference: str | None = None, checks: list | None = None) -> dict:
    return {
        "id": f"{category}-replay-{i:03d}",
        "category": category,
        "prompt": f"What is {i} + 1?",
        "reference": reference if reference is not None else str(i + 1),
        "checks": checks,
        "split": "replay",
    }


class FakeBank:
    """The item bank's interface (`tunesmith.data.general.real`) over a few items per category."""

    def __init__(self, per_category: int = 30) -> None:
        self.bank = {c: [_item(i, c) for i in range(per_category)] for c in CATEGORIES}

    def items(self, split: str, category: str | None = None) -> list[dict]:
        assert split == "replay"
        return list(self.bank[category]) if category else [i for v in self.bank.values() for i in v]

    @staticmethod
    def score(item: dict, answer: str) -> float:
        return 1.0 if item["reference"] in answer.split() else 0.0


def _answer(item: dict, text: str, *, cut_off: bool = False) -> ReplayAnswer:
    return ReplayAnswer(item["id"], item["category"], item["prompt"], text, cut_off=cut_off)


# ------------------------------------------------------------------------------------------- prompts, cache


def test_pick_is_seeded_keeps_the_bank_order_and_takes_all_without_a_cap() -> None:
    bank = FakeBank(30)
    everything = pick_items(["math"], ReplaySettings(), seed=0, source=bank)
    assert [i["id"] for i in everything["math"]] == [i["id"] for i in bank.bank["math"]]
    a = pick_items(["math", "knowledge"], ReplaySettings(prompts=7), seed=1, source=bank)
    b = pick_items(["math", "knowledge"], ReplaySettings(prompts=7), seed=1, source=bank)
    c = pick_items(["math", "knowledge"], ReplaySettings(prompts=7), seed=2, source=bank)
    assert a == b and a != c and [len(v) for v in a.values()] == [7, 7]
    ids = [i["id"] for i in a["math"]]
    assert ids == sorted(ids)  # the bank's order
    with pytest.raises(DataError, match=r"general\.math: the self-replay prompt bank has no replay prompt"):
        pick_items(["math"], ReplaySettings(), seed=0, source=SimpleNamespace(items=lambda split, c: []))


def test_cache_key_changes_with_the_model_the_prompts_and_the_settings_only() -> None:
    bank = FakeBank(30)
    settings = ReplaySettings(prompts=5)
    picked = pick_items(["math"], settings, seed=0, source=bank)
    key = cache_key("model-a", picked, settings)
    assert key == cache_key("model-a", pick_items(["math"], settings, seed=0, source=bank), settings)
    assert key != cache_key("model-b", picked, settings)
    assert key != cache_key("model-a", pick_items(["math"], settings, seed=3, source=bank), settings)
    assert key != cache_key("model-a", picked, ReplaySettings(prompts=5, max_new_tokens=64))
    assert key != cache_key("model-a", picked, ReplaySettings(prompts=5, reasoning=True))
    edited = {"math": [{**picked["math"][0], "reference": "999"}, *picked["math"][1:]]}
    assert key != cache_key("model-a", edited, settings)  # a new bank version of a picked item
    # greedy answers do not depend on the seed: two seeds that pick the same prompts share one entry
    whole = ReplaySettings()
    assert cache_key("m", pick_items(["math"], whole, seed=0, source=bank), whole) == cache_key(
        "m", pick_items(["math"], whole, seed=9, source=bank), whole
    )


def test_cache_entries_round_trip_atomically_and_other_versions_are_ignored(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path))
    answers = [ReplayAnswer("math-replay-000", "math", "What is 0 + 1?", "1", reasoning="", cut_off=False)]
    replay = ReplaySet("k1", "/models/m", {"max_new_tokens": 256}, answers, seconds=1.5)
    path = write_cache(replay)
    assert path == tmp_path / "self-replay" / "k1.json" and [p.name for p in path.parent.iterdir()] == [
        "k1.json"
    ]
    back = read_cache("k1")
    assert back is not None and back.answers == answers and back.model == "/models/m" and back.seconds == 1.5
    assert read_cache("k2") is None
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "version": self_replay.CACHE_VERSION + 1}))
    assert read_cache("k1") is None
    path.write_text("{not json")
    assert read_cache("k1") is None


# ------------------------------------------------------------------------------------------- the filter


def test_judge_keeps_correct_and_uncheckable_complete_answers_only() -> None:
    score = FakeBank.score
    item = _item(4)
    assert judge(item, _answer(item, "It is 5 ."), score).reason == "correct"
    assert judge(item, _answer(item, "It is 6 ."), score) == self_replay.Verdict(False, "wrong")
    assert judge(item, _answer(item, "   "), score) == self_replay.Verdict(False, "empty")
    assert judge(item, _answer(item, "It is 5 .", cut_off=True), score) == self_replay.Verdict(
        False, "cut off"
    )
    free = {
        **_item(1),
        "reference": None,
        "checks": None,
    }  # nothing to check against: kept as the model said it
    never = lambda item, answer: pytest.fail("an item without reference or checks is not scored")  # noqa: E731
    assert judge(free, _answer(free, "anything"), never) == self_replay.Verdict(True, "unverified")
    checks_only = {**free, "checks": [{"id": "x"}]}
    assert judge(checks_only, _answer(checks_only, "x"), lambda item, answer: 0.0).reason == "wrong"


def test_filter_tallies_each_category() -> None:
    bank = FakeBank(4)
    picked = pick_items(["math", "knowledge"], ReplaySettings(), seed=0, source=bank)
    math, knowledge = picked["math"], picked["knowledge"]
    answers = [
        _answer(math[0], "1"),
        _answer(math[1], "2"),
        _answer(math[2], "7"),
        _answer(math[3], "4", cut_off=True),
        _answer(knowledge[0], "1"),
        ReplayAnswer("not-picked", "math", "?", "1"),
    ]
    tallies = filter_answers(picked, answers, bank.score)
    assert tallies["math"].generated == 4 and tallies["math"].kept == 2
    assert tallies["math"].reasons == {"correct": 2, "wrong": 1, "cut off": 1}
    assert tallies["math"].describe() == "2/4 kept (2 correct, 1 cut off, 1 wrong)"
    assert tallies["knowledge"].generated == 1 and tallies["knowledge"].kept == 1


# ------------------------------------------------------------------------------------------- shares, sources


def test_a_category_with_too_few_answers_gives_its_share_to_the_others() -> None:
    general = {"math": 40.0, "knowledge": 40.0, "reasoning": 20.0}
    shares, lines = surviving_shares(general, {"math": 50, "knowledge": MIN_KEPT - 1, "reasoning": 30})
    assert shares == pytest.approx({"math": 200 / 3, "reasoning": 100 / 3}) and sum(shares.values()) == 100.0
    assert len(lines) == 1 and "knowledge is left out: 9 kept answer(s)" in lines[0] and "40%" in lines[0]
    same, none = surviving_shares(general, {"math": MIN_KEPT, "knowledge": 99, "reasoning": 99})
    assert same == general and none == []
    # a category from a file (not in the tally) keeps its place and takes its part of the moved share
    shares, _ = surviving_shares({"math": 50.0, "code": 50.0}, {"math": 0})
    assert shares == {"code": 100.0}
    with pytest.raises(DataError, match=r"too few correct answers in every general category \(math: 2, "):
        surviving_shares({"math": 50.0, "knowledge": 50.0}, {"math": 2, "knowledge": 0})


def test_sources_mix_the_kept_answers_at_the_recipe_shares() -> None:
    bank = FakeBank(20)
    picked = pick_items(["math", "knowledge"], ReplaySettings(), seed=0, source=bank)
    answers = [_answer(i, i["reference"]) for i in picked["math"]]
    answers += [_answer(i, "wrong") for i in picked["knowledge"]]  # none kept
    tallies = filter_answers(picked, answers, bank.score)
    shares, lines = surviving_shares(
        {"math": 60.0, "knowledge": 40.0}, {c: t.kept for c, t in tallies.items()}
    )
    assert shares == {"math": 100.0} and len(lines) == 1
    sources = replay_sources(tallies, shares, "sft", seed=0)
    assert list(sources) == ["math"] and sources["math"].size == 20
    rows = list(sources["math"].open(0))
    assert sorted(r.messages[1]["content"] for r in rows) == sorted(i["reference"] for i in picked["math"])
    assert rows[0].messages[0] == {
        "role": "user",
        "content": next(
            i["prompt"] for i in picked["math"] if i["reference"] == rows[0].messages[1]["content"]
        ),
    }
    assert [r.messages[1]["content"] for r in sources["math"].open(1)] != [
        r.messages[1]["content"] for r in rows
    ]
    cpt = next(replay_sources(tallies, shares, "cpt", seed=0)["math"].open(0))
    assert cpt.text.count("\n\n") == 1
    spec = MixSpec(50.0, shares, "examples", "with_replacement", 4, 0.0)
    mixture = mix(
        None, sources, MixSpec(0.0, shares, "examples", "with_replacement", 4, 0.0), seed=0, total=30
    )
    assert sum(1 for _ in mixture) == 30 and mixture.report.sources["math"].examples == 30
    assert spec.general == {"math": 100.0}


# ------------------------------------------------------------------------------------------- plan


def _recipe(tmp_path: Path, model: dict, **mixing) -> Path:
    train = tmp_path / "train.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"zq {i}?"}, {"role": "assistant", "content": f"{i % 7}"}]}
        for i in range(16)
    ]
    train.write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = {
        "name": "replay",
        "model": model,
        "output_dir": str(tmp_path / "runs"),
        "stages": [
            {
                "technique": "sft",
                "mode": "lora",
                "data": {"train": str(train)},
                "data_mixing": {"customer_percent": 50, **mixing},
                "hyperparameters": {"max_steps": 2, "global_batch_size": 8, "max_length": 128},
            }
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_offline_without_a_mirror_the_default_becomes_self_replay_and_plan_says_why(
    tmp_path, stand_ins, monkeypatch
) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = {"path": str(stand_ins["qwen3"]), "checkpoint": "post-trained"}
    resolved = plan(_recipe(tmp_path, model))
    mixing = resolved.recipe.stages[0].data_mixing
    assert mixing.general_data == "self" and set(mixing.general) == set(CATEGORIES)
    provenance = str(resolved.provenance["stages[0].data_mixing.general_data"])
    assert provenance.startswith(
        "derived: the Hub cannot be reached and no mirror is set: the start model's own"
    )
    text = render_plan(resolved)
    line = next(line for line in text.splitlines() if "<- self-replay" in line)
    assert all(category in line for category in CATEGORIES) and str(stand_ins["qwen3"]) in line
    assert "generated at train time" in line and not (tmp_path / "home" / "self-replay").exists()
    # a category the bank does not have cannot fall back: curated keeps its one-line refusal
    resolved = plan(
        _recipe(
            tmp_path,
            model,
            general_data="self",
            general={"math": 60, "knowledge": 40},
            self_replay_prompts=12,
        )
    )
    assert "12 replay prompts per category" in render_plan(resolved)
    assert main(["plan", str(_recipe(tmp_path, model, general={"math": 50, "code": 50}))]) == 2
    # with a mirror or the Hub in reach the curated default stays (no fallback)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("tunesmith.recipe.resolve._hub_reachable", lambda: True)
    assert plan(_recipe(tmp_path, model)).recipe.stages[0].data_mixing.general_data == "curated"


def test_self_replay_rejects_a_category_the_bank_lacks(tmp_path, stand_ins, capsys) -> None:
    model = {"path": str(stand_ins["qwen3"]), "checkpoint": "post-trained"}
    recipe = _recipe(tmp_path, model, general_data="self", general={"math": 50, "code": 50})
    assert main(["plan", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "recipe.yaml:9: stages[0].data_mixing" in err
    assert "unknown general category 'code'" in err and "general_sources" in err


def test_the_shipped_qwen3_recipe_plans_offline_with_self_replay(monkeypatch, capsys) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "qwen3-0.6b-sft-lora.yaml"
    main(["plan", str(recipe)])
    out = capsys.readouterr().out
    assert "data_mixing.general_data" in out and "= self" in out and "the Hub cannot be reached" in out
    assert "<- self-replay: the start model's (qwen3-0.6b:post-trained) own greedy answers" in out
