"""Successive halving on the constraint-aware scalar: rungs, ordering, the promotion rule, the callback."""

from __future__ import annotations

from types import SimpleNamespace

from tunesmith.monitoring import MonitorSettings
from tunesmith.sweeps.pruning import SuccessiveHalving, promotable, rung_steps, scalar


def test_rungs_are_geometric_from_a_fraction_of_the_steps_or_the_end_of_warmup() -> None:
    assert rung_steps(400) == [45, 135]  # ceil(400/9), x3
    assert rung_steps(81, eta=3, min_fraction=1 / 27) == [3, 9, 27]
    assert rung_steps(2) == [1]
    # no rung inside the warmup (the stability gap): the first rung moves to its end, the rest follow x eta
    assert rung_steps(180, warmup_steps=25) == [25, 75]
    assert rung_steps(400, warmup_steps=60) == [60, 180]
    assert rung_steps(400, warmup_steps=10) == [45, 135]  # a short warmup changes nothing
    assert rung_steps(100, warmup_steps=100) == []  # all warmup: nothing to compare, every trial runs in full


def test_the_scalar_ranks_forgetting_below_any_feasible_trial() -> None:
    within = scalar(0.40, True, probe_drop=0.05, max_drop=0.10)
    beyond = scalar(0.95, True, probe_drop=0.30, max_drop=0.10)
    far_beyond = scalar(0.99, True, probe_drop=0.50, max_drop=0.10)
    assert within > beyond > far_beyond
    assert scalar(1.2, False, None, None) > scalar(1.5, False, None, None)  # losses: lower is better


def test_promotion_keeps_the_top_third_or_the_best_so_far() -> None:
    assert promotable([0, 0.5], [])  # the first trial at a rung continues
    assert not promotable([0, 0.4], [[0, 0.5]])  # fewer than eta trials: only the best so far
    assert promotable([0, 0.6], [[0, 0.5]])
    others = [[0, v] for v in (0.1, 0.2, 0.3, 0.4, 0.5)]
    assert promotable([0, 0.45], others)  # 6 trials -> top 2: 0.5, 0.45
    assert not promotable([0, 0.35], others)


class _Control:
    should_training_stop = False
    should_save = False


def _callback(store: dict, pruned: list, probe: dict) -> SuccessiveHalving:
    watcher = SimpleNamespace(
        general_accuracy=probe, monitor=SimpleNamespace(settings=MonitorSettings.from_spec(None))
    )
    selection = SimpleNamespace(metric="eval_mean_token_accuracy", higher_is_better=True)
    return SuccessiveHalving(
        stage="sft",
        total_steps=90,
        watcher=watcher,
        selection=selection,
        record=lambda key, value: store.setdefault(key, []).append(value),
        competitors=lambda key: [v for v in store.get(key, [])],
        on_prune=pruned.append,
    )


def test_the_callback_stops_a_trial_that_forgot_even_with_a_better_metric() -> None:
    store: dict = {}
    good, pruned = _callback(store, [], {0: 0.9, 10: 0.88}), []
    control = _Control()
    good.on_evaluate(
        None, SimpleNamespace(global_step=10), control, metrics={"eval_mean_token_accuracy": 0.5}
    )
    assert not control.should_training_stop and store["sft/0"] == [[0, 0.5]]
    # the next trial validates better but its probe fell 40 points (the forgetting limit is far below)
    forgot = _callback(store, pruned, {0: 0.9, 10: 0.5})
    control = _Control()
    forgot.on_evaluate(
        None, SimpleNamespace(global_step=10), control, metrics={"eval_mean_token_accuracy": 0.8}
    )
    assert control.should_training_stop and control.should_save
    assert pruned[0].step == 10 and "rank 2 of 2 at rung 1" in pruned[0].reason
    # steps before a rung decide nothing; a rung is decided once
    later = _callback(store, [], {0: 0.9})
    control = _Control()
    later.on_evaluate(
        None, SimpleNamespace(global_step=5), control, metrics={"eval_mean_token_accuracy": 0.1}
    )
    assert not control.should_training_stop and len(store["sft/0"]) == 2
    assert later.history == [[5, 0.1, None]] and forgot.history == [[10, 0.8, 0.5]]
    # with pruning off the callback only reports: the forgetting trial would run on
    reporting = _callback(store, [], {0: 0.9, 10: 0.5})
    reporting.prune = False
    control = _Control()
    reporting.on_evaluate(
        None, SimpleNamespace(global_step=10), control, metrics={"eval_mean_token_accuracy": 0.0}
    )
    assert not control.should_training_stop and reporting.history == [[10, 0.0, 0.5]]


class _Args:
    eval_strategy = "steps"


def test_a_rung_step_validates_probes_and_saves_there() -> None:
    store: dict = {}
    probed: list = []
    callback = _callback(store, [], {0: 0.9})
    callback.watcher.probe_at = lambda step, model, control: probed.append(step)
    assert callback.rungs == [10, 30]
    for step, expected in ((9, False), (10, True), (11, False), (30, True)):
        control = SimpleNamespace(should_evaluate=False, should_save=False)
        callback.on_step_end(_Args(), SimpleNamespace(global_step=step), control, model=None)
        assert control.should_evaluate is expected and control.should_save is expected, step
    assert probed == [10, 30]
    # a decided rung (a resumed trial) is not validated again
    callback.decided = {0}
    control = SimpleNamespace(should_evaluate=False)
    callback.on_step_end(_Args(), SimpleNamespace(global_step=10), control, model=None)
    assert not control.should_evaluate
    # the grid (pruning off) runs the same schedule, so a trial and its grid twin end alike
    callback.prune, callback.decided = False, set()
    control = SimpleNamespace(should_evaluate=False, should_save=False)
    callback.on_step_end(_Args(), SimpleNamespace(global_step=30), control, model=None)
    assert control.should_evaluate and control.should_save and probed == [10, 30, 30]
    # a stage without validation keeps its own schedule
    control = SimpleNamespace(should_evaluate=False)
    callback.on_step_end(SimpleNamespace(eval_strategy="no"), SimpleNamespace(global_step=30), control)
    assert not control.should_evaluate


def test_the_synchronous_schedule_records_and_pauses_at_its_rung_whatever_the_others() -> None:
    store: dict = {"sft/1": [[0, 0.99]] * 5}  # five better trials at rung 2: pruning would stop this one
    paused: list = []
    callback = _callback(store, paused, {0: 0.9, 10: 0.9, 30: 0.9})
    callback.prune, callback.pause_at = False, 1
    control = _Control()
    callback.on_evaluate(
        None, SimpleNamespace(global_step=10), control, metrics={"eval_mean_token_accuracy": 0.5}
    )
    assert not control.should_training_stop and store["sft/0"] == [[0, 0.5]]  # rung 1 recorded, passed
    callback.on_evaluate(
        None, SimpleNamespace(global_step=30), control, metrics={"eval_mean_token_accuracy": 0.6}
    )
    assert control.should_training_stop and control.should_save and store["sft/1"][-1] == [0, 0.6]
    assert paused[0].step == 30 and "paused at rung 2 (step 30)" in paused[0].reason
