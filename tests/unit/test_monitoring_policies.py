"""Monitor: policies (defaults, overrides, rollback budget), diagnosis order, summaries, replay, recipe schema."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from tunesmith.monitoring import DEFAULT_POLICIES, DETECTORS, Monitor, MonitorSettings, RunContext, summarize
from tunesmith.monitoring.detectors import LossSpike
from tunesmith.monitoring.diagnosis import causes_for
from tunesmith.monitoring.events import Detection
from tunesmith.recipe.schema import MonitoringSpec, Stage

MIXED_X10 = RunContext(
    stage="sft",
    technique="sft",
    mode="lora",
    lr=0.1,
    default_lr=0.01,
    general_percent=50,
    checkpoint="post-trained",
    warmup_steps=60,
    total_steps=400,
    grad_clip=1.0,
    global_batch_size=64,
    train_file="data/train.jsonl",
    lora_alpha=16,
)


def test_every_detector_has_a_default_policy_with_a_source() -> None:
    assert set(DEFAULT_POLICIES) == set(DETECTORS)
    assert all(
        p.policy in ("warn", "stop", "rollback") and len(p.source) > 20 for p in DEFAULT_POLICIES.values()
    )
    # the defaults intervene only on persistent or fatal problems
    hard = {name for name, p in DEFAULT_POLICIES.items() if p.policy != "warn"}
    assert hard == {
        "non_finite",
        "spike_frequency",
        "divergence",
        "collapse",
        "reward_collapse",
        "reward_stuck_low",
        "reward_saturated",
    }


def test_nan_rolls_back_until_the_budget_is_spent_then_stops() -> None:
    monitor = Monitor(context=MIXED_X10)
    events = monitor.observe_step(5, float("nan"), 1.0)
    assert [(e.detector, e.action, e.step) for e in events] == [("non_finite", "rollback", 5)]
    assert monitor.decision(events) is events[0]
    spent = Monitor(context=MIXED_X10, rollbacks_done=2)
    event = spent.observe_step(5, float("nan"), 1.0)[0]
    assert event.action == "stop" and "rollback limit 2 reached" in event.message


def test_policy_overrides_and_off() -> None:
    spec = MonitoringSpec(policies={"non_finite": "stop", "loss_spike": "off"}, max_rollbacks=0)
    monitor = Monitor(MonitorSettings.from_spec(spec), MIXED_X10)
    assert monitor.observe_step(1, math.inf, None)[0].action == "stop"
    for step in range(1, 31):
        monitor.observe_step(step, 1.0, 1.0)
    assert monitor.observe_step(31, 10.0, 1.0) == []  # a spike, but loss_spike is off
    assert MonitorSettings.from_spec(spec).max_rollbacks == 0


def test_threshold_overrides_reach_the_detector() -> None:
    settings = MonitorSettings.from_spec(
        MonitoringSpec(thresholds={"loss_spike": {"z": 3.0}, "spike_frequency": {"max_spikes": 2}})
    )
    det = settings.make("loss_spike")
    assert isinstance(det, LossSpike) and det.z == 3.0 and det.max_spikes == 2
    assert settings.make("forgetting").max_drop == 0.10


def test_diagnosis_puts_the_lr_first_with_its_factor_when_it_deviates() -> None:
    finding = Detection("spike_frequency", 11, "3 spikes", details={"spike_steps": [9, 10, 11]})
    causes = causes_for(finding, MIXED_X10)
    assert causes[0].startswith("learning rate is the first suspect: you deviated from the default by x10")
    assert "50% general data" in causes[0]
    assert "data/train.jsonl lines 513-704" in causes[1]  # steps 9-11 x 64 examples


def test_diagnosis_at_the_default_lr_suspects_the_data_first() -> None:
    default = RunContext(
        lr=0.01, default_lr=0.01, general_percent=50, global_batch_size=64, train_file="t.jsonl"
    )
    causes = causes_for(Detection("loss_spike", 3, "spike"), default)
    assert causes[0].startswith("data quality") and "t.jsonl lines 129-192" in causes[0]
    assert causes[1].startswith("learning rate too high")
    divergence = causes_for(Detection("divergence", 50, "up", onset_step=40), default)
    assert divergence[0].startswith("learning rate too high") and "lines 2561-3200" in divergence[1]


@pytest.mark.parametrize(
    ("detector", "first_words"),
    [
        ("overfitting", "too many epochs/steps"),
        ("forgetting", "raise the general share"),
        ("kl_drift", "raise the general share"),
        ("reward_stuck_low", "run SFT first"),
        ("reward_saturated", "the reward is not discriminative"),
        ("reward_collapse", "reward hacking"),
        ("kl_spike", "increase the KL coefficient"),
        ("plateau", "the model already fits this data"),
    ],
)
def test_diagnosis_first_cause_per_detector(detector: str, first_words: str) -> None:
    causes = causes_for(Detection(detector, 10, "x", onset_step=5), MIXED_X10)
    assert causes[0].startswith(first_words), causes
    assert len(causes) >= 3


def test_forgetting_causes_follow_the_playbook_order() -> None:
    full = RunContext(mode="full", lr=3e-3, default_lr=1e-3, general_percent=25, checkpoint="mid-trained")
    causes = causes_for(Detection("forgetting", 10, "x"), full)
    assert [c.split(" ")[0] for c in causes] == ["raise", "lower", "use", "start"]
    assert "x3" in causes[1] and "LoRA" in causes[2] and "later checkpoint" in causes[3]


def test_events_render_summarize_and_replay() -> None:
    monitor = Monitor(context=MIXED_X10)
    for step in range(1, 40):
        monitor.observe_step(step, 1.0 + 0.01 * (step % 3), 1.0)
    events = monitor.observe_step(40, 5.0, 1.0)
    assert [e.detector for e in events] == ["loss_spike"] and events[0].action == "warn"
    text = events[0].render()
    assert text.startswith("[WARN] sft: step 40: loss spike: loss 5") and "\n    1. learning rate" in text
    events += monitor.observe_step(41, float("nan"), 1.0)
    summary = summarize(events)
    assert summary["total"] == 2 and summary["by_action"] == {"warn": 1, "stop": 0, "rollback": 1}
    assert summary["first_intervention"]["detector"] == "non_finite"
    assert summary["by_detector"]["loss_spike"] == {"count": 1, "first_step": 40, "actions": {"warn": 1}}
    # replay warms the detectors up silently: the spike after a replayed history is still caught
    fresh = Monitor(context=MIXED_X10)
    fresh.replay([{"step": s, "loss": 1.0 + 0.01 * (s % 3), "grad_norm": 1.0} for s in range(1, 40)])
    assert fresh.events == []
    assert [e.detector for e in fresh.observe_step(40, 5.0, 1.0)] == ["loss_spike"]


def test_disabled_monitoring_emits_nothing() -> None:
    monitor = Monitor(MonitorSettings.from_spec(MonitoringSpec(enabled=False)))
    assert monitor.observe_step(1, float("nan"), None) == []


def test_monitoring_spec_is_strict() -> None:
    with pytest.raises(ValidationError, match="unknown detector 'divergense' \\(did you mean 'divergence'"):
        MonitoringSpec(policies={"divergense": "stop"})
    with pytest.raises(ValidationError, match="forgetting has no threshold 'max_dro'"):
        MonitoringSpec(thresholds={"forgetting": {"max_dro": 0.2}})
    with pytest.raises(ValidationError):
        MonitoringSpec(policies={"divergence": "explode"})
    with pytest.raises(ValidationError):
        MonitoringSpec(rollback_lr_scale=1.5)
    with pytest.raises(ValidationError):
        MonitoringSpec(probe_every=3)
    stage = Stage.model_validate(
        {
            "technique": "sft",
            "data": {"train": "x.jsonl"},
            "monitoring": {"policies": {"divergence": "stop"}, "max_rollbacks": 1, "probe_interval": 20},
        }
    )
    assert stage.monitoring is not None and stage.monitoring.policies == {"divergence": "stop"}
