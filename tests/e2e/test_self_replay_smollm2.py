"""Self-replay on the real model: SmolLM2-135M-Instruct (`smollm2_path`) answers a few replay prompts per
category, the kept answers fill the general half of a 2-step LoRA SFT, and a second run reuses the cache
without loading the model.

Kept short for CI (2 CPU cores): 3 math prompts, 96 new tokens (the model's worked answers need them),
2 steps of 4 rows x 128 tokens.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main
from tunesmith.data import self_replay
from tunesmith.data.curated.load import MIRROR_ENV
from tunesmith.vocabulary import CATEGORIES

pytestmark = pytest.mark.e2e


def _recipe(tmp_path: Path, model: Path, name: str) -> Path:
    train = tmp_path / "train.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Brindle code {i}?"},
                {"role": "assistant", "content": f"BX{i}"},
            ]
        }
        for i in range(16)
    ]
    train.write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = {
        "name": name,
        "model": {"path": str(model), "checkpoint": "post-trained"},
        "output_dir": str(tmp_path / "runs"),
        "stages": [
            {
                "technique": "sft",
                "mode": "lora",
                "data": {"train": str(train)},
                "data_mixing": {  # general_data: derived (offline, no mirror: self)
                    "customer_percent": 50,
                    "general": {"math": 100},
                    "self_replay_prompts": 3,
                },
                "hyperparameters": {
                    "lr": 1.0e-4,
                    "max_steps": 2,
                    "global_batch_size": 4,
                    "micro_batch_size": 4,
                    "max_length": 128,
                    "warmup_steps": 0,
                },
                # no forgetting probe: on a real model it generates 40 answers at the start and the end,
                # the larger part of this test's time; the probe has its own tests
                "monitoring": {"policies": {"forgetting": "off", "kl_drift": "off"}},
            }
        ],
        "acknowledge": {"lr-deviates-while-mixing": "a CI smoke run"},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_self_replay_generates_verifies_caches_and_trains(
    smollm2_path, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))  # a fresh cache: this run generates
    monkeypatch.delenv(MIRROR_ENV, raising=False)  # offline, no mirror: the default becomes self-replay
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(self_replay, "DEFAULT_MAX_NEW_TOKENS", 96)
    monkeypatch.setattr(self_replay, "MIN_KEPT", 1)  # 3 prompts: keep the category with one correct answer

    assert main(["plan", str(_recipe(tmp_path, smollm2_path, "first"))]) == 0
    assert "data_mixing.general_data" in capsys.readouterr().out
    assert not (tmp_path / "home" / "self-replay").exists()  # plan generates nothing

    assert main(["train", str(_recipe(tmp_path, smollm2_path, "first")), "--quiet", "--no-eval"]) == 0
    capsys.readouterr()
    entries = list((tmp_path / "home" / "self-replay").glob("*.json"))
    assert len(entries) == 1
    cached = json.loads(entries[0].read_text())
    answers = cached["answers"]
    assert len(answers) == 3 and cached["settings"]["max_new_tokens"] == 96
    assert {a["category"] for a in answers} == {"math"}
    assert all(a["answer"].strip() for a in answers)  # a real instruct model answers
    run = tmp_path / "runs" / "first" / "sft"
    assert json.loads((run / "result.json").read_text())["steps"] == 2
    mixed = json.loads((run / "data" / "mix.json").read_text())["sources"]
    general = {name: s for name, s in mixed.items() if name in CATEGORIES and s["examples"] > 0}
    assert general, mixed
    texts = {a["answer"] for a in answers}
    rows = [json.loads(line) for line in (run / "data" / "train.jsonl").read_text().splitlines()]
    replayed = [r for r in rows if r["messages"][-1]["content"] in texts]
    assert len(replayed) == sum(s["examples"] for s in general.values())  # the general half: its own answers

    # a second run reuses the entry: no model is loaded for generation
    def no_generation(*args, **kwargs):
        raise AssertionError("the cached replay set was generated again")

    monkeypatch.setattr("tunesmith.training.replay.generate_replay", no_generation)
    from tunesmith.data.self_replay import ReplaySettings
    from tunesmith.training.replay import ensure_replay

    started = time.perf_counter()
    replay, tallies = ensure_replay(
        smollm2_path, ["math"], ReplaySettings(prompts=3, max_new_tokens=96), seed=0, quiet=True
    )
    assert time.perf_counter() - started < 5.0 and len(replay.answers) == 3
    available = sum(s["available_per_pass"] for name, s in mixed.items() if name in CATEGORIES)
    assert sum(t.kept for t in tallies.values()) == available
