"""Pay less for bad configurations: successive halving on a constraint-aware scalar.

Why this rule. Optuna cannot prune a multi-objective study (`Trial.report` / `should_prune` refuse it), and
the two objectives (domain gain, general retention) are only known after the end-of-run evaluation. During
training each trial has two cheaper signals at every validation: the stage's selection metric (validation
token accuracy for SFT, loss for CPT, reward for RFT) and the monitor's forgetting probe (general accuracy
on held-out items, the same probe checkpoint selection uses). They are combined by the *feasibility rule*
([deb-2000]): a trial whose probe dropped more than the forgetting limit (the forgetting detector's
`max_drop`) ranks below every trial within it, by how far beyond the limit it is; trials within the limit
rank by the validation metric. That ordering is the constraint-aware scalar.

Rungs (`rung_steps`): `r x eta^k` of the stage's planned steps from `r = ceil(steps x min_fraction)` (1/9
with the defaults), or from the end of the warmup when that is later. At a rung's step the trial validates,
probes and saves, whatever its `val_check_interval`. A grid is halved synchronously
(`sweeps.synchronous`: this callback records the scalar and pauses at the trial's `pause_at` rung); a
sampled sweep asynchronously ([asha-2018]): a trial continues only if its scalar is in the top 1/eta of all
trials that reached that rung (the first trials at a rung, fewer than eta, continue only if they are the
best so far), as Optuna's `SuccessiveHalvingPruner` decides for single-objective studies. A Pareto-aware
rule was not chosen: with one validation number per trial, non-dominated sorting at a rung keeps most
trials when the two signals disagree, which is exactly when pruning should save compute.

The monitor's detectors prune too: a stage the monitor stopped (policy `stop`) ends its trial as pruned
with the detector's name (`SWEEP_POLICIES`: a diverged configuration is a result to record, not a run to
repair).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback

ETA = 3
MIN_FRACTION = 1 / 9
RUNGS_ATTR = "rungs"
SWEEP_POLICIES = {"non_finite": "stop", "divergence": "stop", "collapse": "warn", "spike_frequency": "stop"}
"""Detector policies a sweep's trials run with (the recipe's own policy for a detector wins). A broken run
stops (non-finite or diverging loss); a collapsed general probe only warns: the rung's scalar already ranks it
below every trial within the forgetting limit, and the rung compares trials at the same step, which the
collapse detector's fixed thresholds cannot (calibrated on probes after warmup; probed at step 20, inside a
25-step warmup, they stopped 3 of 4 tiny-family configurations that, unprobed there, end at 82-89% retained)."""


def rung_steps(
    total_steps: int, eta: int = ETA, min_fraction: float = MIN_FRACTION, warmup_steps: int = 0
) -> list[int]:
    """The steps (< total) at which trials are compared: r x eta^k from r = ceil(total x min_fraction), or
    from the end of the warmup when that is later (during warmup the LR has not reached the configuration's
    value, and general skill dips and recovers there: the stability gap, [de-lange-2023]; on the tiny family's
    12-configuration sweep benchmark the general probe stood at 9-78% of its start at step 25, and at
    57-97% at step 180)."""
    steps: list[int] = []
    step = max(math.ceil(total_steps * min_fraction), int(warmup_steps or 0), 1)
    while step < total_steps:
        steps.append(step)
        step = math.ceil(step * eta)
    return steps


def scalar(
    metric: float, higher_is_better: bool, probe_drop: float | None, max_drop: float | None
) -> list[float]:
    """The constraint-aware key [-(drop beyond the limit), oriented metric]: larger is better (compare as
    lists: the constraint first)."""
    excess = 0.0
    if probe_drop is not None and max_drop is not None:
        excess = max(0.0, probe_drop - max_drop)
    return [-round(excess, 6), metric if higher_is_better else -metric]


def promotable(value: Sequence[float], competitors: Sequence[Sequence[float]], eta: int = ETA) -> bool:
    """ASHA's rule: in the top len(all) // eta (all = competitors + this one); when that is 0, only the
    best so far continues."""
    everyone = sorted([list(c) for c in competitors] + [list(value)], reverse=True)
    keep = max(1, len(everyone) // eta)
    return list(value) >= everyone[keep - 1]


@dataclass
class PruneDecision:
    stage: str
    step: int
    reason: str


class SuccessiveHalving(TrainerCallback):
    """At every validation: report the trial's validation metric and probe accuracy (`report`). On or after
    a rung: record the trial's scalar at that rung (`record`); at `pause_at` (the synchronous schedule,
    `sweeps.synchronous`) stop there; with `prune` (asynchronous), compare it with the other trials'
    (`competitors`) and stop training when it is not promotable."""

    def __init__(
        self,
        *,
        stage: str,
        total_steps: int,
        watcher: Any,
        selection: Any,
        record: Callable[[str, list[float]], None],
        competitors: Callable[[str], list[list[float]]],
        eta: int = ETA,
        min_fraction: float = MIN_FRACTION,
        warmup_steps: int = 0,
        on_prune: Callable[[PruneDecision], None],
        report: Callable[[list[list[float | None]]], None] = lambda history: None,
        prune: bool = True,
        pause_at: int | None = None,
        domain_probe: Any = None,
        record_probe: Callable[[str, dict[str, Any]], None] = lambda key, value: None,
    ) -> None:
        self.stage = stage
        self.rungs = rung_steps(total_steps, eta, min_fraction, warmup_steps)
        self.watcher = watcher
        self.selection = selection
        self.record = record
        self.competitors = competitors
        self.eta = eta
        self.on_prune = on_prune
        self.report = report
        self.prune = prune
        self.pause_at = pause_at  # synchronous: the rung (index) to record and stop at, promoted or not
        # `ForgettingProbe` on the evaluation's domain items, run at the rungs
        self.domain_probe = domain_probe
        self.record_probe = record_probe
        self.domain_at: dict[int, dict[str, float]] = {}
        self.decided: set[int] = set()
        self.history: list[list[float | None]] = []  # [step, validation metric, probe general accuracy]

    def _probe_drop(self, step: int) -> float | None:
        probe: Mapping[int, float] = self.watcher.general_accuracy
        if 0 not in probe:
            return None
        seen = [s for s in probe if s <= step]
        return probe[0] - probe[max(seen)]

    def _max_drop(self) -> float | None:
        settings = self.watcher.monitor.settings
        if not settings.enabled or settings.policies.get("forgetting") == "off":
            return None
        return settings.make("forgetting").max_drop

    def _probe_record(self, step: int) -> dict[str, Any]:
        """What the synchronous ranking compares at a rung (`synchronous.final_rule_order`): the general
        probe's items (1 = right) with their categories, and the domain probe's token accuracy."""
        probe = getattr(self.watcher, "probe", None)
        strata: list[list[Any]] = []
        for category in getattr(probe, "categories", []):
            if strata and strata[-1][0] == category:
                strata[-1][1] += 1
            else:
                strata.append([category, 1])
        return {
            "step": step,
            "general": self.watcher.general_accuracy.get(step),
            "items": getattr(self.watcher, "general_items", {}).get(step),
            "strata": strata,
            # the domain answers' token accuracy (exact match is near 0 for every trial early on)
            "domain": self.domain_at.get(step, {}).get("token_accuracy"),
            "domain_exact_match": self.domain_at.get(step, {}).get("general_accuracy"),
        }

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """At an undecided rung's own step, validate now, run the monitor's probe there and save a checkpoint,
        instead of waiting for the next scheduled validation (up to `val_check_interval` steps later). The
        exhaustive grid (pruning off) does the same, so a sweep trial and its grid twin run the same schedule
        (the same checkpoints to select from, the same probes for the detectors) and end with the same
        numbers. Only for a stage that validates."""
        if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "no":
            return
        step = state.global_step
        if any(rung == step and i not in self.decided for i, rung in enumerate(self.rungs)):
            control.should_evaluate = True
            control.should_save = True  # the checkpoint a paused or pruned trial resumes from
            probe_at = getattr(self.watcher, "probe_at", None)
            if probe_at is not None:
                probe_at(step, kw.get("model"), control)
            if self.domain_probe is not None and kw.get("model") is not None:
                self.domain_at[step] = self.domain_probe.measure(kw["model"])

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kw: Any
    ) -> None:
        if not metrics or self.selection.metric not in metrics:
            return
        step = state.global_step
        probe: Mapping[int, float] = self.watcher.general_accuracy
        self.history.append([step, metrics[self.selection.metric], probe.get(step)])
        self.report(self.history)  # the trial's intermediate numbers, kept with the study
        reached = [i for i, rung in enumerate(self.rungs) if rung <= step and i not in self.decided]
        if not reached:
            return
        value = scalar(
            metrics[self.selection.metric],
            self.selection.higher_is_better,
            self._probe_drop(step),
            self._max_drop(),
        )
        for index in reached:
            self.decided.add(index)
            key = f"{self.stage}/{index}"
            others = self.competitors(key) if self.prune else []
            self.record(key, value)  # the grid records its rungs too: what a sweep would have compared
            self.record_probe(key, self._probe_record(step))
            if index == self.pause_at:
                self.on_prune(
                    PruneDecision(
                        self.stage,
                        step,
                        f"paused at rung {index + 1} (step {self.rungs[index]}) until every configuration "
                        "reached it (synchronous successive halving)",
                    )
                )
                control.should_training_stop = True
                control.should_save = True  # a promotion continues from here
                return
            if self.prune and not promotable(value, others, self.eta):
                rank = sorted([*others, value], reverse=True).index(value) + 1
                self.on_prune(
                    PruneDecision(
                        self.stage,
                        step,
                        f"successive halving: rank {rank} of {len(others) + 1} at rung {index + 1} "
                        f"(step {self.rungs[index]}), top 1/{self.eta} continue",
                    )
                )
                control.should_training_stop = True
                control.should_save = True  # a later promotion or retry resumes from here
                return
