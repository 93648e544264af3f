"""Synchronous successive halving: levels, slots, when a slot may start, which configuration it continues."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

from tunesmith.sweeps.synchronous import (
    CONFIG_ATTR,
    LEVEL_ATTR,
    SLOT_ATTR,
    claimable,
    missing_slots,
    ranking,
    settled,
    slot_configuration,
    slot_counts,
)

KEY = "sft/0"
RUNG = "rung:" + KEY


def _trial(number: int, state: str, **attrs) -> SimpleNamespace:
    return SimpleNamespace(number=number, state=SimpleNamespace(name=state), user_attrs=attrs)


def _level0(
    number: int, lr: float, value: list[float] | None, state: str = "PRUNED", **more
) -> SimpleNamespace:
    attrs = {CONFIG_ATTR: {"lr": lr}, LEVEL_ATTR: 0, **more}
    if value is not None:
        attrs[RUNG] = value
    return _trial(number, state, **attrs)


def test_each_level_keeps_the_top_third_and_at_least_one() -> None:
    assert slot_counts(12, 3) == [12, 4, 1]  # 12 x 1/9 + 4 x 2/9 + 1 x 6/9 of the steps: 24% of the grid
    assert slot_counts(27, 4) == [27, 9, 3, 1]
    assert slot_counts(4, 3) == [4, 1, 1]
    assert slot_counts(12, 2, eta=2) == [12, 6]
    assert slot_counts(5, 1) == [5]  # no rung: every configuration trains in full


def test_missing_slots_are_those_no_alive_trial_holds() -> None:
    trials = [
        _trial(0, "WAITING", **{SLOT_ATTR: [1, 0]}),
        _trial(1, "FAIL", **{SLOT_ATTR: [1, 1]}),  # failed for good: queued again
        _trial(2, "PRUNED", **{SLOT_ATTR: [2, 0]}),
    ]
    alive = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")
    assert missing_slots(trials, [12, 4, 1], alive) == [[1, 1], [1, 2], [1, 3]]
    assert missing_slots([], [4], alive) == []


def test_a_slot_waits_until_the_level_before_is_settled() -> None:
    slot = _trial(9, "WAITING", **{SLOT_ATTR: [1, 0]})
    later = _trial(10, "WAITING", **{SLOT_ATTR: [2, 0]})
    running = [_level0(0, 0.1, [0, 0.5]), _level0(1, 0.2, None, state="RUNNING"), slot, later]
    assert claimable(running[0], running)  # outside the slots: always
    assert not settled(running, 0) and not claimable(slot, running)
    done = [_level0(0, 0.1, [0, 0.5]), _level0(1, 0.2, [0, 0.6]), slot, later]
    assert settled(done, 0) and claimable(slot, done)
    assert not claimable(later, done)  # level 1 (the slot) is still waiting
    retry_waiting = [*done, _level0(3, 0.3, None, state="WAITING")]  # a killed trial's retry, queued
    assert not claimable(slot, retry_waiting)


def test_slots_take_the_ranking_of_the_level_before_in_order() -> None:
    trials = [
        _level0(0, 0.1, [0, 0.50]),
        _level0(1, 0.2, [-0.3, 0.99]),  # best validation, but beyond the forgetting limit: ranked last
        _level0(2, 0.3, [0, 0.70]),
        _level0(3, 0.4, [0, 0.70]),  # tie: the lower trial number first
        _level0(4, 0.5, [0, 0.90], pruned={"by": "monitor: divergence"}),  # stopped by a detector: out
        _level0(5, 0.6, None),  # never reached the rung (no validation, or failed): out
        _level0(
            6, 0.1, [0, 0.10]
        ),  # the same configuration twice (a re-created study): its first trial counts
    ]
    assert [t.number for t in ranking(trials, 0, KEY)] == [2, 3, 0, 1]
    config, source = slot_configuration(trials, [1, 0], KEY)
    assert config == {"lr": 0.3} and source == {"from_trial": 2, "rank": 1, "of": 4}
    assert slot_configuration(trials, [1, 3], KEY)[0] == {"lr": 0.2}
    assert slot_configuration(trials, [1, 4], KEY) is None  # fewer ranked than slots: nothing to promote


def _probed(number: int, lr: float, items: str, domain: float) -> SimpleNamespace:
    general = items.count("1") / len(items)
    probe = {
        "general": general,
        "items": items,
        "strata": [["math", len(items) // 2], ["knowledge", len(items) // 2]],
        "domain": domain,
    }
    return _level0(number, lr, [0, 0.5], **{"rung-probe:" + KEY: probe})


def test_with_probes_a_rung_ranks_by_the_final_rule_against_the_best_trial_there() -> None:
    best = "1" * 90 + "0" * 10  # 90% right
    tied = "1" * 88 + "0" * 12  # 2 items fewer: within noise of the best
    below = "1" * 75 + "0" * 25  # 15 points below: significant
    far = "1" * 60 + "0" * 40
    trials = [
        _probed(0, 0.1, best, domain=0.30),  # forgets least, learns the domain slowly
        _probed(1, 0.2, tied, domain=0.60),  # as good on general, better on the domain: first
        _probed(2, 0.3, below, domain=0.90),  # best domain, but significantly below the best on general
        _probed(3, 0.4, far, domain=0.95),
    ]
    assert [t.number for t in ranking(trials, 0, KEY)] == [1, 0, 2, 3]
    # without the probes (an older study, a recipe without a domain file): the scalar, as before
    plain = [_level0(i, 0.1 * i, [0, v]) for i, v in enumerate((0.2, 0.9, 0.5))]
    assert [t.number for t in ranking(plain, 0, KEY)] == [1, 2, 0]


def _study_with_a_peer(tmp_path, peer_acts):
    """A SQLite study holding one queued level-0 configuration, whose `get_trials` lets a peer act right
    after this worker's first read (`peer_acts(study, storage, snapshot)`); (optuna, study, reads)."""
    import pytest

    optuna = pytest.importorskip("optuna")
    pytest.importorskip("sqlalchemy")
    from tunesmith.sweeps.storage import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_seconds=60, grace_seconds=120)
    study = optuna.create_study(storage=storage, directions=["maximize"])
    study.enqueue_trial(params={}, user_attrs={CONFIG_ATTR: {"lr": 0.1}, LEVEL_ATTR: 0})
    read = study.get_trials
    reads: list[int] = []

    def get_trials(*args, **kwargs):
        snapshot = read(*args, **kwargs)
        reads.append(len(reads))
        if len(reads) == 1:
            peer_acts(study, storage, snapshot)
        return snapshot

    study.get_trials = get_trials
    return optuna, study, reads


def test_a_worker_takes_a_slot_whose_level_a_peer_settles_between_its_reads(tmp_path) -> None:
    """The worker decides from one read of the study: a peer finishing the last trial of level 0 just after
    this worker found the slot not yet claimable must not make it stop with 'queued trials that no worker
    may start' (seen in CI with two workers on PostgreSQL); it waits a poll and takes the slot."""
    from tunesmith.sweeps.workers import run_worker

    peer: list = []

    def pause_at_the_rung(study, storage, snapshot):  # the peer's level-0 trial ends at its rung
        study.tell(peer[0], state=optuna.trial.TrialState.PRUNED)

    optuna, study, reads = _study_with_a_peer(tmp_path, pause_at_the_rung)
    with warnings.catch_warnings():  # "heartbeat is supposed to be used with optimize": the worker beats
        warnings.simplefilter("ignore")
        peer.append(study.ask())  # the peer's level-0 trial, running
    study.enqueue_trial(params={}, user_attrs={SLOT_ATTR: [1, 0]})
    ran = []
    worked = run_worker(
        study, lambda t: ran.append(t.number) or (1.0,), budget=None, heartbeat_seconds=60, poll_seconds=0.01
    )
    assert worked == 1 and ran == [1] and len(reads) >= 3


def test_a_worker_that_loses_a_claim_reads_again(tmp_path) -> None:
    """A peer claims (and finishes) the queued trial between this worker's read and its claim: the worker
    reads again and stops with nothing left, not with an error about a queued trial."""
    from tunesmith.sweeps.workers import run_worker

    def claim_and_pause(study, storage, snapshot):
        trial_id = snapshot[0]._trial_id
        assert storage.set_trial_state_values(trial_id, optuna.trial.TrialState.RUNNING)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.PRUNED)

    optuna, study, reads = _study_with_a_peer(tmp_path, claim_and_pause)
    ran = []
    assert run_worker(study, lambda t: ran.append(t.number) or (1.0,), budget=None, heartbeat_seconds=60) == 0
    assert ran == [] and len(reads) >= 2
