"""General skill is one measurement (`evaluation.retention.measure`): the evaluation's suite, the monitor's
forgetting probe, the sweep rungs' probe and the readiness probe all reach it; the suite is picked by model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tunesmith.evaluation import retention
from tunesmith.models.loading import load_tokenizer


class _Reached(Exception):
    """Raised by the patched measurement: the path called it."""


@pytest.fixture
def spied(monkeypatch) -> list[dict]:
    calls: list[dict] = []

    def spy(model, tokenizer, items, **kwargs):
        calls.append({"items": list(items), **kwargs})
        raise _Reached

    monkeypatch.setattr(retention, "measure", spy)
    return calls


@pytest.fixture(scope="module")
def tiny_tokenizer():
    return load_tokenizer("tiny")


def test_the_evaluation_suite_calls_the_measurement(spied, tiny_tokenizer) -> None:
    from tunesmith.evaluation.runner import EvalConfig, _general

    lazy = SimpleNamespace(get=lambda: (None, tiny_tokenizer))
    items = retention.general_items("tiny", 2)
    with pytest.raises(_Reached):
        _general(lazy, EvalConfig(suites=("general",)), items)
    assert len(spied) == 1 and spied[0]["items"] == items and spied[0].get("mode", "generate") == "generate"


def test_the_monitor_probe_calls_the_measurement(spied, tiny_tokenizer) -> None:
    from tunesmith.training.monitor import ForgettingProbe

    probe = ForgettingProbe(tiny_tokenizer, 2, None)
    with pytest.raises(_Reached):
        probe.measure(None)
    assert spied[0]["mode"] == "teacher-forced" and len(spied[0]["items"]) == 10


def test_the_sweep_rungs_probe_calls_the_measurement(spied, tiny_tokenizer) -> None:
    """The rungs read the monitor's probe (`probe_at`) and the domain probe `sweeps.trial.domain_probe`
    builds: both measure through `retention.measure`."""
    from tunesmith.sweeps.trial import domain_probe
    from tunesmith.training.monitor import ForgettingProbe

    watcher = SimpleNamespace(probe=ForgettingProbe(tiny_tokenizer, 1, None))
    evaluation = SimpleNamespace(domain="builtin:brindle/eval")
    setup = SimpleNamespace(base=SimpleNamespace(recipe=SimpleNamespace(evaluation=evaluation), source=None))
    probe = domain_probe(setup, watcher)
    with pytest.raises(_Reached):
        probe.measure(None)
    assert spied[0]["mode"] == "teacher-forced"
    assert len(spied[0]["items"]) >= 50 and spied[0]["items"][0]["reference"]


def test_the_readiness_probe_calls_the_measurement(spied, micro_model_dir) -> None:
    from tunesmith.evaluation.probe import ProbeSettings, probe_rows

    rows = [
        {"id": f"p{i}", "messages": [{"role": "user", "content": f"q{i}"}], "reference_answer": "a"}
        for i in range(3)
    ]
    with pytest.raises(_Reached):
        probe_rows(
            micro_model_dir, rows, "exact_match", ProbeSettings(prompts=3, generations=2, max_new_tokens=2)
        )
    assert spied[0]["num_samples"] == 2 and spied[0]["temperature"] is not None
    assert spied[0]["scorer"] is not None and len(spied[0]["items"]) == 3


# --- the suite by model -----------------------------------------------------------------------------------
def test_the_tiny_family_keeps_its_suite_and_any_other_model_gets_the_real_bank(
    tmp_path, tiny_tokenizer
) -> None:
    tiny = retention.general_items("tiny:post-trained", 3)
    assert retention.metric_of(tiny) == "exact_match" and len(tiny) == 15
    tiny_tokenizer.save_pretrained(tmp_path / "tiny-folder")  # a folder trained from the tiny family
    assert retention.general_items(tmp_path / "tiny-folder", 3) == tiny
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "config.json").write_text("{}")
    picked = retention.general_items(tmp_path / "real", 3)
    assert retention.metric_of(picked) == "score" and len(picked) == 15
    assert {item["category"] for item in picked} == {item["category"] for item in tiny}
    assert all(item["item"]["split"] == "eval" for item in picked)
    assert retention.general_items("Qwen/Qwen3-0.6B", 3) == picked  # a Hub id is a real model


def test_the_monitor_probe_of_a_real_model_generates_and_scores_with_the_bank(tmp_path) -> None:
    from tunesmith.training.monitor import ForgettingProbe

    (tmp_path / "config.json").write_text("{}")
    probe = ForgettingProbe(load_tokenizer("tiny"), 2, None, model_ref=tmp_path)
    assert probe.mode == "generate" and retention.metric_of(probe.items) == "score"
    assert len(probe.items) == 10 and all(item["item"]["split"] == "eval" for item in probe.items)


def test_teacher_forced_mode_refuses_real_bank_items(tiny_tokenizer) -> None:
    with pytest.raises(ValueError, match="exact-match items"):
        retention.measure(
            torch.nn.Linear(1, 1), tiny_tokenizer, retention.real_items(1), mode="teacher-forced"
        )


def test_a_real_item_is_scored_by_the_bank_and_a_tiny_item_by_exact_match() -> None:
    (real_item,) = [i for i in retention.real_items(1) if i["category"] == "knowledge"]
    alias = real_item["checks"][0]["kwargs"]["aliases"][0]
    assert retention.score_item(real_item, f"<think>hm</think>I believe it is {alias}.") == {"score": 1.0}
    assert retention.score_item(real_item, "No idea.") == {"score": 0.0}
    tiny_item = retention.general_items("tiny", 1)[0]
    scores = retention.score_item(tiny_item, tiny_item["reference"])
    assert scores["exact_match"] == 1.0


# --- retention on the items the start solved --------------------------------------------------------------
def test_kept_is_the_share_of_the_start_solved_items_still_solved() -> None:
    from tunesmith.evaluation.forgetting import forgetting_table

    before = [1, 1, 1, 1, 0, 0, 0, 0]
    after = [1, 0, 1, 1, 1, 1, 1, 0]  # the mean rises (0.5 -> 0.75), yet one of four solved items was lost
    rows = forgetting_table(
        "general",
        [{"id": str(i), "category": "math", "scores": {"score": b}} for i, b in enumerate(before)]
        + [{"id": "n", "category": "knowledge", "scores": {"score": 0}}],
        [{"id": str(i), "category": "math", "scores": {"score": a}} for i, a in enumerate(after)]
        + [{"id": "n", "category": "knowledge", "scores": {"score": 1}}],
        "score",
    )
    by_category = {row.category: row for row in rows}
    math = by_category["math"]
    assert (math.before, math.after, math.kept) == (0.5, 0.75, 0.75)
    assert 0.0 <= math.kept_low <= 0.75 <= math.kept_high <= 1.0 and math.kept_low < math.kept_high
    assert by_category["knowledge"].kept is None  # the start solved none of them
    assert by_category["overall"].kept == 0.75
    domain = forgetting_table(
        "domain",
        [{"id": "a", "category": "d", "scores": {"score": 1}}],
        [{"id": "a", "category": "d", "scores": {"score": 0}}],
        "score",
        with_retention=False,
    )
    assert all(row.kept is None for row in domain)
