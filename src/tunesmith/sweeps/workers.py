"""The worker loop: claim a trial, train and evaluate it with a heartbeat, tell the study; until done.

A grid sweep queues every configuration once (`enqueue_missing`, by the command that creates the study
and on every re-run, so a configuration whose trial failed is queued again) and workers only *claim* queued
trials: a claim is one atomic state change in the database (`set_trial_state_values(..., RUNNING)` fails
for all but one worker), so two workers never run the same queued trial and no configuration is lost.
A sampled sweep (`--trials N`) asks the sampler for new trials until N have finished (completed or
pruned) or are running: queued retries are taken first.

A worker whose trial was killed stops heartbeating; after the grace period any worker marks that trial
FAIL (`fail_stale_trials`) and the retry callback queues its copy (`storage.py`). A worker waits while
other workers' trials are still running, so the last worker standing also finishes a killed peer's trial.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tunesmith.sweeps.storage import optuna_module
from tunesmith.sweeps.synchronous import CONFIG_ATTR, LEVEL_ATTR, SLOT_ATTR, claimable, missing_slots


class Heartbeat:
    """Record the trial's heartbeat now and every `seconds` until the block ends (Optuna's own heartbeat
    thread runs only inside `study.optimize`)."""

    def __init__(self, storage: Any, trial_id: int, seconds: float) -> None:
        self.storage, self.trial_id, self.seconds = storage, trial_id, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds):
            self.storage.record_heartbeat(self.trial_id)

    def __enter__(self) -> Heartbeat:
        self.storage.record_heartbeat(self.trial_id)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _key(config: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in config.items()))


ALIVE = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")


def enqueue_missing(
    study: Any, configs: Iterable[Mapping[str, Any]], *, slot_counts: list[int] | None = None
) -> int:
    """Queue each configuration that has no completed, pruned, running or queued trial; returns how many.
    With `slot_counts` (the synchronous schedule, `sweeps.synchronous`), configurations are queued to level
    0 and each missing promotion slot is queued too."""
    trials = study.get_trials(deepcopy=False)
    covered = {
        _key(t.user_attrs.get(CONFIG_ATTR, {}))
        for t in trials
        if t.state.name in ALIVE and SLOT_ATTR not in t.user_attrs
    }
    extra = {LEVEL_ATTR: 0} if slot_counts is not None else {}
    added = 0
    for config in configs:
        if _key(config) not in covered:
            study.enqueue_trial(
                params=dict(config), user_attrs={CONFIG_ATTR: dict(config), **extra}, skip_if_exists=False
            )
            covered.add(_key(config))
            added += 1
    for slot in missing_slots(trials, slot_counts or [], ALIVE):
        study.enqueue_trial(params={}, user_attrs={SLOT_ATTR: slot}, skip_if_exists=False)
    return added


def _claim_waiting(study: Any, trials: list[Any]) -> Any | None:
    """Claim the first queued trial of `trials` (a snapshot of the study) that may start (a promotion slot
    waits for the level before it)."""
    optuna = optuna_module()
    for frozen in trials:
        if frozen.state.name != "WAITING" or not claimable(frozen, trials):
            continue
        try:  # False: a peer claimed it first; UpdateFinishedTrialError: a peer already finished it
            claimed = study._storage.set_trial_state_values(frozen._trial_id, optuna.trial.TrialState.RUNNING)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        if claimed:
            return optuna.trial.Trial(study, frozen._trial_id)
    return None


def run_worker(
    study: Any,
    objective: Callable[[Any], tuple[float, ...]],
    *,
    budget: int | None,
    heartbeat_seconds: float,
    on_finished: Callable[[Any], None] = lambda trial: None,
    poll_seconds: float | None = None,
) -> int:
    """Run trials until the study is done (grid: nothing queued or running; sampled: `budget` trials
    finished). `objective(trial)` returns the objective values or raises `optuna.TrialPruned`. Returns how
    many trials this worker ran."""
    optuna_module()
    from optuna.storages import fail_stale_trials

    poll = poll_seconds if poll_seconds is not None else heartbeat_seconds
    ran = 0
    while True:
        fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        trial = _claim_waiting(study, trials)
        if trial is None:
            # one snapshot for the claim and the counts: with a fresh read here, a peer finishing the last
            # trial of a level in between showed a slot as waiting with nothing running, and this worker
            # stopped with an error although the slot had just become claimable
            counts = Counter(t.state.name for t in trials)
            planned = counts["COMPLETE"] + counts["PRUNED"] + counts["RUNNING"] + counts["WAITING"]
            if budget is not None and planned < budget:
                with (
                    warnings.catch_warnings()
                ):  # "heartbeat is supposed to be used with optimize": ours beats
                    warnings.filterwarnings("ignore", message="Heartbeat of storage")
                    trial = study.ask()
            elif counts["RUNNING"]:
                time.sleep(poll)  # another worker's trial: wait for it, or for it to go stale
                continue
            elif any(t.state.name == "WAITING" and claimable(t, trials) for t in trials):
                continue  # a peer claimed it first: read again
            elif counts["WAITING"]:  # only promotions whose level before never settles: cannot happen
                raise RuntimeError(f"sweep: {counts['WAITING']} queued trials that no worker may start")
            else:
                return ran
        _run_one(study, trial, objective, heartbeat_seconds)
        ran += 1
        on_finished(study._storage.get_trial(trial._trial_id))


def _run_one(
    study: Any, trial: Any, objective: Callable[[Any], tuple[float, ...]], heartbeat_seconds: float
) -> None:
    optuna = optuna_module()
    with Heartbeat(study._storage, trial._trial_id, heartbeat_seconds):
        try:
            values = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return
        except BaseException:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
    study.tell(trial, values=list(values))
