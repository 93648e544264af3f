"""One trial: `resolve(recipe + overrides)`, then the same training and evaluation as `tunesmith train`.

The configuration's overrides (plus the sweep's detector policies, `pruning.SWEEP_POLICIES`, for detectors
the recipe leaves at their default) go through `recipe.plan.plan`, the run goes through
`training.pipeline.train` with the pruner as an extra callback, and a finished run through
`evaluation.runner.evaluate_run` (the starting checkpoint's scores come from the evaluation cache after the
first trial). Each trial records its compute as user attributes: steps, tokens, training seconds,
evaluation seconds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.recipe.plan import plan
from tunesmith.recipe.resolve import ResolvedRecipe
from tunesmith.sweeps.objectives import objectives_from_evaluation
from tunesmith.sweeps.pruning import (
    ETA,
    MIN_FRACTION,
    SWEEP_POLICIES,
    PruneDecision,
    SuccessiveHalving,
    rung_steps,
)
from tunesmith.sweeps.space import Space, override, sample, suggest, value_at
from tunesmith.sweeps.storage import optuna_module
from tunesmith.sweeps.synchronous import (
    CONFIG_ATTR,
    RANK_ATTR,
    RUNG_PREFIX,
    RUNG_PROBE_PREFIX,
    SLOT_ATTR,
    level_of,
    slot_configuration,
)


def warmup_of(stage: Any) -> int:
    """The stage's warmup steps (0 for a technique without them): no rung falls before their end."""
    return int(getattr(getattr(stage, "hyperparameters", None), "warmup_steps", 0) or 0)


def run_dir_name(config: dict[str, Any]) -> str:
    """The trial's run folder, named after its configuration: a retry or a re-run resumes the same run."""
    digest = hashlib.sha1(json.dumps(sorted(config.items()), default=str).encode()).hexdigest()[:10]
    return f"config-{digest}"


@dataclass
class SweepSetup:
    """What every trial of one sweep shares."""

    recipe_path: Path
    base: ResolvedRecipe
    space: Space
    trials_dir: Path
    overrides: list[str] = field(default_factory=list)  # the command line's own key=value overrides
    prune: bool = True
    eta: int = ETA
    min_fraction: float = MIN_FRACTION
    quiet: bool = True
    levels: list[tuple[str, int]] | None = None  # the synchronous schedule's rungs (stage, index), in order

    def schedule_levels(self) -> list[tuple[str, int]]:
        """Every stage's rungs in training order: the synchronous schedule's levels (+ the last: the end)."""
        return [
            (stage.name, index)
            for stage, planned in zip(self.base.recipe.stages, self.base.stages, strict=True)
            for index, _ in enumerate(
                rung_steps(planned.numbers["total_steps"], self.eta, self.min_fraction, warmup_of(stage))
            )
        ]

    def base_value(self, key: str) -> Any:
        return value_at(self.base.recipe.model_dump(mode="json"), key)

    def policy_overrides(self) -> list[str]:
        """The sweep's detector policies (`pruning.SWEEP_POLICIES`) and, unless the recipe sets its own, a
        forgetting probe of the evaluation's general items: the rungs compare trials on the yardstick the
        final rule uses (8 items per category leave one item = 2.5 points of noise between two trials)."""
        out = []
        evaluation = self.base.recipe.evaluation
        items = getattr(evaluation, "general_items_per_category", None)
        for index, stage in enumerate(self.base.recipe.stages):
            given = (stage.monitoring.policies if stage.monitoring else {}) or {}
            out += [
                f"stages[{index}].monitoring.policies.{name}={policy}"
                for name, policy in SWEEP_POLICIES.items()
                if name not in given
            ]
            if items and not (stage.monitoring and stage.monitoring.probe_items_per_category):
                out.append(f"stages[{index}].monitoring.probe_items_per_category={items}")
        return out

    def trial_overrides(self, config: dict[str, Any]) -> list[str]:
        return [*self.overrides, *(override(k, v) for k, v in config.items()), f"name={run_dir_name(config)}"]


def _competitors(study: Any, number: int) -> Callable[[str], list[list[float]]]:
    optuna = optuna_module()
    states = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.RUNNING,
    )

    def read(key: str) -> list[list[float]]:
        return [
            t.user_attrs[RUNG_PREFIX + key]
            for t in study.get_trials(deepcopy=False, states=states)
            if t.number != number and RUNG_PREFIX + key in t.user_attrs
        ]

    return read


def _num_tokens(stage_dir: Path) -> int | None:
    """The trainer's count of input tokens trained on (`tokens` in the stage's metrics; only techniques that
    ask the trainer to count them have it, CPT today)."""
    path = stage_dir / "metrics.jsonl"
    if not path.exists():
        return None
    value = None
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("tokens"):
            value = row["tokens"]
    return int(value) if value is not None else None


def _tokens(result: Any, resolved: ResolvedRecipe) -> tuple[int, str]:
    """Tokens trained on: counted by the trainer where it counts them, else the plan's padded upper bound
    (steps x global_batch_size x max_length)."""
    total, measure = 0, "counted"
    plans = {s.name: p for s, p in zip(resolved.recipe.stages, resolved.stages, strict=True)}
    for stage in result.stages:
        counted = _num_tokens(stage.stage_dir)
        if counted is None:
            measure = "padded upper bound"
            counted = int(stage.summary["steps"]) * int(
                plans[stage.name].numbers.get("tokens_per_step_max", 0)
            )
        total += counted
    return total, measure


def _continued(run_dir: Path, resolved: ResolvedRecipe) -> Path | None:
    """The trial's existing run folder when there is one to continue (a retry of a killed or interrupted
    trial, a study re-created beside its trials): `train` resumes it from its last complete checkpoint, or
    only re-reads a finished one. None: a new run. A folder trained with other settings is refused in one
    line, not overwritten."""
    from tunesmith.training.pipeline import recipe_changes, resumable, stored_recipe

    if not run_dir.exists():
        return None
    if not resumable(run_dir):  # made, but nothing finished in it: start the trial again in its place
        shutil.rmtree(run_dir)
        return None
    _, unsafe = recipe_changes(stored_recipe(run_dir), resolved)
    if unsafe:
        raise UserError(
            f"sweep: trial folder {run_dir} was trained with other settings ({', '.join(unsafe[:4])}"
            f"{' and more' if len(unsafe) > 4 else ''} differ) — delete that folder, or run this sweep under "
            "another --name"
        )
    return run_dir


def domain_probe(setup: SweepSetup, watcher: Any) -> Any:
    """The rungs' domain measure: the forgetting probe's teacher-forced scoring (token accuracy) of the
    evaluation's domain items (the items the final rule's domain score comes from), or None without a
    general probe or a domain file. The stage's own validation metric is no yardstick across trials: its data are mixed
    at each trial's general share."""
    from tunesmith.evaluation.suites import domain_items, resolve_data
    from tunesmith.training.monitor import ForgettingProbe

    probe = getattr(watcher, "probe", None)
    evaluation = setup.base.recipe.evaluation
    ref = getattr(evaluation, "domain", None)
    if probe is None or not ref:
        return None
    base_dir = Path(setup.base.source).parent if setup.base.source else None
    items = [(row["category"], row) for row in domain_items(resolve_data(ref, base_dir))]
    return ForgettingProbe(probe.tokenizer, 0, None, items=items) if items else None


def take_slot(setup: SweepSetup, trial: Any) -> Any:
    """A promotion slot: take the configuration its rank names at the level before (a retry keeps the one
    its killed trial took) and fix the trial's parameters to it; raises `optuna.TrialPruned` when the level
    before ranked too few configurations."""
    optuna = optuna_module()
    slot = trial.user_attrs[SLOT_ATTR]
    if CONFIG_ATTR not in trial.user_attrs:
        stage, index = setup.levels[int(slot[0]) - 1]
        trials = trial.study.get_trials(deepcopy=False)
        chosen = slot_configuration(trials, slot, f"{stage}/{index}")
        if chosen is None:
            trial.set_user_attr(
                "pruned", {"by": "nothing to promote: the level before ranked fewer configurations"}
            )
            raise optuna.TrialPruned("nothing to promote")
        config, source = chosen
        source["trial_id"] = next(t._trial_id for t in trials if t.number == source["from_trial"])
        trial.set_user_attr(CONFIG_ATTR, dict(config))
        trial.set_user_attr(RANK_ATTR, source)
    config = trial.user_attrs[CONFIG_ATTR]
    storage = trial.study._storage
    storage.set_trial_system_attr(trial._trial_id, "fixed_params", dict(config))
    return optuna.trial.Trial(trial.study, trial._trial_id)  # re-read: its parameters are now fixed


def execute(setup: SweepSetup, trial: Any) -> tuple[float, ...]:
    """Train and evaluate one configuration; returns (domain gain, general retention) or raises
    `optuna.TrialPruned` (successive halving, or a monitor stop)."""
    from tunesmith.evaluation.runner import evaluate_run
    from tunesmith.training.pipeline import model_ref, train

    optuna = optuna_module()
    level = level_of(trial) if setup.levels is not None else None
    if level is not None and SLOT_ATTR in trial.user_attrs:
        trial = take_slot(setup, trial)
    config = sample(setup.space, lambda p: suggest(trial, p), setup.base_value)
    trial.set_user_attr(CONFIG_ATTR, config)
    # the exhaustive grid (--no-prune) trains as the sweep's trials do: the same detector policies, and the
    # same validations, probes and checkpoints at the rungs, so a trial and its grid twin end alike
    policies = setup.policy_overrides()
    resolved = plan(setup.recipe_path, [*setup.trial_overrides(config), *policies])
    run_dir = setup.trials_dir / resolved.recipe.name
    trial.set_user_attr("run_dir", str(run_dir))
    totals = {
        s.name: p.numbers["total_steps"] for s, p in zip(resolved.recipe.stages, resolved.stages, strict=True)
    }
    warmups = {s.name: warmup_of(s) for s in resolved.recipe.stages}
    decisions: list[PruneDecision] = []

    def pruner(watcher: Any, selection: Any) -> SuccessiveHalving:
        """Built per attempt (a rollback starts a new one): rungs this trial (or the killed trial it
        retries) already passed are not decided again."""
        stage = watcher.stage_dir.name
        done = {k.removeprefix(RUNG_PREFIX) for k in trial.user_attrs if k.startswith(RUNG_PREFIX)}
        pause_at = None
        if level is not None and setup.levels:
            done |= {f"{s}/{i}" for s, i in setup.levels[:level]}  # passed before this promotion
            if level < len(setup.levels) and setup.levels[level][0] == stage:
                pause_at = setup.levels[level][1]
        callback = SuccessiveHalving(
            stage=stage,
            total_steps=totals[stage],
            warmup_steps=warmups[stage],
            watcher=watcher,
            selection=selection,
            record=lambda key, value: trial.set_user_attr(RUNG_PREFIX + key, value),
            competitors=_competitors(trial.study, trial.number),
            eta=setup.eta,
            min_fraction=setup.min_fraction,
            on_prune=decisions.append,
            report=lambda history: trial.set_user_attr(f"validation:{stage}", history),
            prune=setup.prune and setup.levels is None,  # the synchronous schedule decides between trials
            pause_at=pause_at,
            domain_probe=domain_probe(setup, watcher) if setup.levels is not None else None,
            record_probe=lambda key, value: trial.set_user_attr(RUNG_PROBE_PREFIX + key, value),
        )
        callback.decided = {i for i in range(len(callback.rungs)) if f"{stage}/{i}" in done}
        return callback

    started = time.monotonic()
    result = train(
        resolved,
        runs_root=setup.trials_dir,
        run_dir=_continued(run_dir, resolved),
        quiet=setup.quiet,
        force=True,  # the sweep linted the base recipe; its values deliberately leave the defaults
        callbacks=(pruner,),  # with --no-prune it only reports the intermediate numbers
    )
    compute = {
        "steps": sum(int(r.summary["steps"]) for r in result.stages),
        "planned_steps": sum(totals.values()),
        "tokens": 0,
        "tokens_measure": "counted",
        "train_seconds": round(time.monotonic() - started, 2),
        "eval_seconds": 0.0,
    }
    compute["tokens"], compute["tokens_measure"] = _tokens(result, resolved)
    source = trial.user_attrs.get(RANK_ATTR)
    if source is not None:  # a promotion continued the run of an earlier trial: count only its own steps
        before = trial.study._storage.get_trial_user_attrs(source["trial_id"]).get("compute") or {}
        compute["steps_before"] = int(before.get("steps", 0))
    trial.set_user_attr("compute", compute)
    if not result.completed:
        stopped = result.stages[-1].summary
        if decisions:
            trial.set_user_attr(
                "pruned",
                {"step": decisions[-1].step, "stage": decisions[-1].stage, "by": decisions[-1].reason},
            )
            raise optuna.TrialPruned(decisions[-1].reason)
        if stopped.get("stopped_by_monitor") and not stopped.get("resumable"):
            event = stopped["stopped_by_monitor"]
            by = f"monitor: {event['detector']}"
            trial.set_user_attr("pruned", {"step": event["step"], "stage": stopped["stage"], "by": by})
            raise optuna.TrialPruned(by)
        raise KeyboardInterrupt  # a signal or an infrastructure stop: the trial fails, a re-run resumes it
    started = time.monotonic()
    base_dir = Path(resolved.source).parent if resolved.source else None
    payload = evaluate_run(
        result.run_dir, model_ref(resolved), recipe=resolved.recipe, base_dir=base_dir, quiet=True
    )
    compute["eval_seconds"] = round(time.monotonic() - started, 2)
    trial.set_user_attr("compute", compute)
    if not payload:
        raise UserError("sweep: the recipe evaluates nothing — set evaluation.suites: [general, domain]")
    objectives = objectives_from_evaluation(payload)
    trial.set_user_attr("objectives", objectives.to_dict())
    return objectives.values
