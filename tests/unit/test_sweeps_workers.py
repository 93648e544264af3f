"""Several workers share one study on a real PostgreSQL server (started here on loopback, in a temp dir).

The workers are separate processes running the sweep's own worker loop (`sweeps.workers.run_worker`: claim,
heartbeat, tell, fail stale trials, take retries) and its space sampling, on a stand-in objective that
sleeps instead of training (the training path is covered by test_sweeps_command.py): what is tested here
is the study bookkeeping under concurrency and `kill -9`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("psycopg2")

POSTGRES_BINARIES = ("initdb", "pg_ctl", "postgres")
HEARTBEAT = 1
GRACE = 3

SPACE = {
    "stages[0].hyperparameters.lr": [1.0e-4, 3.0e-4, 1.0e-3],
    "stages[0].data_mixing.customer_percent": [50, 75],
}

WORKER = f"""
import json, os, sys, time
from tunesmith.sweeps.space import parse_space, sample, suggest
from tunesmith.sweeps.storage import make_storage, open_study
from tunesmith.sweeps.workers import CONFIG_ATTR, run_worker

url, name, seconds, log = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
space = parse_space(json.loads(sys.argv[5]))
storage = make_storage(url, heartbeat_seconds={HEARTBEAT}, grace_seconds={GRACE})
study = open_study(storage, name, create=False, sampler=None)

def objective(trial):
    config = sample(space, lambda p: suggest(trial, p), lambda key: None)
    trial.set_user_attr(CONFIG_ATTR, config)
    with open(log, "a") as f:
        f.write(f"{{os.getpid()}} started {{trial.number}}\\n")
    time.sleep(seconds)
    return (config["stages[0].hyperparameters.lr"] * 1000, float(config["stages[0].data_mixing.customer_percent"]))

ran = run_worker(study, objective, budget=None, heartbeat_seconds={HEARTBEAT}, poll_seconds=0.5)
with open(log, "a") as f:
    f.write(f"{{os.getpid()}} done {{ran}}\\n")
"""


SYNC_WORKER = f"""
import json, os, sys, time
from types import SimpleNamespace
import optuna
from tunesmith.sweeps.space import parse_space, sample, suggest
from tunesmith.sweeps.storage import make_storage, open_study
from tunesmith.sweeps.synchronous import CONFIG_ATTR, SLOT_ATTR, level_of
from tunesmith.sweeps.trial import take_slot
from tunesmith.sweeps.workers import run_worker

url, name, seconds, log = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
space = parse_space(json.loads(sys.argv[5]))
storage = make_storage(url, heartbeat_seconds={HEARTBEAT}, grace_seconds={GRACE})
study = open_study(storage, name, create=False, sampler=None)
setup = SimpleNamespace(levels=[("sft", 0), ("sft", 1)])  # two rungs: levels 0 and 1 pause, level 2 ends

def objective(trial):
    if SLOT_ATTR in trial.user_attrs:
        trial = take_slot(setup, trial)  # the real promotion: the configuration its rank names
    config = sample(space, lambda p: suggest(trial, p), lambda key: None)
    trial.set_user_attr(CONFIG_ATTR, config)
    level = level_of(trial)
    with open(log, "a") as f:
        f.write(f"{{os.getpid()}} started {{trial.number}} level {{level}}\\n")
    time.sleep(seconds)
    lr, share = config["stages[0].hyperparameters.lr"], config["stages[0].data_mixing.customer_percent"]
    if level < 2:  # a rung: record the scalar (larger lr and share rank higher) and pause
        trial.set_user_attr(f"rung:sft/{{level}}", [0, lr * 1000 + share / 100])
        raise optuna.TrialPruned("paused")
    return (lr * 1000, float(share))

ran = run_worker(study, objective, budget=None, heartbeat_seconds={HEARTBEAT}, poll_seconds=0.2)
with open(log, "a") as f:
    f.write(f"{{os.getpid()}} done {{ran}}\\n")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its binaries as `nobody` then."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        why = "running as root and no runuser to start PostgreSQL as an unprivileged user"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return [runuser, "-u", "nobody", "--", *command]


@pytest.fixture(scope="module")
def postgres_url():
    missing = [b for b in POSTGRES_BINARIES if shutil.which(b) is None]
    if missing:
        why = f"PostgreSQL binaries not installed ({', '.join(missing)} not on PATH)"
        if os.environ.get("CI"):  # scripts/test.sh installs the server: in CI a missing one is a failure
            pytest.fail(f"{why}: scripts/test.sh should have installed them")
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="tunesmith-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user="nobody")
    data, port = root / "data", _free_port()
    subprocess.run(
        _as_postgres_user(["initdb", "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    options = f"-k {root} -c listen_addresses=127.0.0.1 -p {port}"
    subprocess.run(
        _as_postgres_user(["pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres_user(["pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _create(url: str, name: str):
    from tunesmith.sweeps.space import grid, parse_space
    from tunesmith.sweeps.storage import make_storage, open_study
    from tunesmith.sweeps.workers import enqueue_missing

    storage = make_storage(url, heartbeat_seconds=HEARTBEAT, grace_seconds=GRACE)
    study = open_study(storage, name, create=True, sampler=None)
    configs = grid(parse_space(SPACE), lambda key: None)
    assert enqueue_missing(study, configs) == 6
    assert enqueue_missing(study, configs) == 0  # idempotent: a second coordinator queues nothing
    return study, configs


def _start(url: str, name: str, seconds: float, log: Path, tmp_path: Path) -> subprocess.Popen:
    import json

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return subprocess.Popen(
        [sys.executable, str(script), url, name, str(seconds), str(log), json.dumps(SPACE)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stderr=subprocess.PIPE,
    )


def _config_key(config: dict) -> tuple:
    return tuple(sorted(config.items()))


def _check_complete(study, configs) -> list:
    from tunesmith.sweeps.workers import CONFIG_ATTR

    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    assert states["RUNNING"] == 0 and states["WAITING"] == 0, states
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    done = Counter(_config_key(t.user_attrs[CONFIG_ATTR]) for t in complete)
    assert done == Counter(_config_key(c) for c in configs)  # each configuration exactly once: none lost
    for t in complete:  # the values are the configuration's own
        config = t.user_attrs[CONFIG_ATTR]
        assert t.values == [
            pytest.approx(config["stages[0].hyperparameters.lr"] * 1000),
            config["stages[0].data_mixing.customer_percent"],
        ]
    return trials


def test_two_workers_share_a_study_without_duplicates_or_losses(postgres_url, tmp_path) -> None:
    study, configs = _create(postgres_url, "shared")
    log = tmp_path / "log"
    workers = [_start(postgres_url, "shared", 0.5, log, tmp_path) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()[-2000:]
    trials = _check_complete(study, configs)
    assert len(trials) == 6  # no extra trials either
    ran = {
        int(line.split()[0]): int(line.split()[2])
        for line in log.read_text().splitlines()
        if " done " in line
    }
    assert sum(ran.values()) == 6 and len(ran) == 2 and all(n >= 1 for n in ran.values()), ran


def test_a_worker_killed_mid_trial_leaves_a_study_the_other_finishes(postgres_url, tmp_path) -> None:
    study, configs = _create(postgres_url, "killed")
    log = tmp_path / "log"
    victim = _start(postgres_url, "killed", 3.0, log, tmp_path)
    deadline = time.monotonic() + 60
    while f"{victim.pid} started" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline and victim.poll() is None, "the worker never started a trial"
        time.sleep(0.1)
    survivor = _start(postgres_url, "killed", 0.5, log, tmp_path)
    time.sleep(0.5)
    os.kill(victim.pid, signal.SIGKILL)  # mid-trial: its trial stays RUNNING until its heartbeat goes stale
    victim.wait(timeout=10)
    _, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err.decode()[-2000:]
    trials = _check_complete(study, configs)
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and len(trials) == 7  # the killed trial, and its retry
    killed_number = int(
        next(
            line.split()[2]
            for line in log.read_text().splitlines()
            if line.startswith(f"{victim.pid} started")
        )
    )
    assert failed[0].number == killed_number
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed_number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE"
    assert retry[0].params == failed[0].params


def test_a_sampled_sweep_stops_at_its_budget_and_draws_within_the_ranges(tmp_path) -> None:
    """`--trials N` on SQLite (the default storage), in process: N trials, ranges respected, and a second
    worker loop on the same study (a re-run) adds none."""
    from tunesmith.sweeps.space import parse_space, sample, suggest
    from tunesmith.sweeps.storage import default_url, make_storage, open_study, optuna_module
    from tunesmith.sweeps.workers import CONFIG_ATTR, run_worker

    optuna = optuna_module()
    space = parse_space(
        {
            "stages[0].hyperparameters.lr": {"low": 1e-4, "high": 1e-2, "log": True},
            "stages[0].mode": ["lora", "full"],
        }
    )
    study = open_study(
        make_storage(default_url(tmp_path)),
        "sampled",
        create=True,
        sampler=optuna.samplers.TPESampler(seed=0),
    )

    def objective(trial):
        config = sample(space, lambda p: suggest(trial, p), lambda key: None)
        trial.set_user_attr(CONFIG_ATTR, config)
        if config["stages[0].mode"] == "full":
            raise optuna.TrialPruned("stand-in")
        return (-abs(config["stages[0].hyperparameters.lr"] - 1e-3), 1.0)

    assert run_worker(study, objective, budget=5, heartbeat_seconds=1) == 5
    assert run_worker(study, objective, budget=5, heartbeat_seconds=1) == 0
    trials = study.get_trials()
    assert len(trials) == 5 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert all(1e-4 <= t.params["stages[0].hyperparameters.lr"] <= 1e-2 for t in trials)


def test_an_interrupted_grid_continues_on_a_rerun_with_the_failed_configuration_queued_again(
    tmp_path,
) -> None:
    from tunesmith.sweeps.space import grid, parse_space, sample, suggest
    from tunesmith.sweeps.storage import default_url, make_storage, open_study
    from tunesmith.sweeps.workers import CONFIG_ATTR, enqueue_missing, run_worker

    space = parse_space(SPACE)
    configs = grid(space, lambda key: None)
    calls: list[dict] = []

    def objective(trial):
        config = sample(space, lambda p: suggest(trial, p), lambda key: None)
        trial.set_user_attr(CONFIG_ATTR, config)
        calls.append(config)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the third trial
        return (
            config["stages[0].hyperparameters.lr"] * 1000,
            float(config["stages[0].data_mixing.customer_percent"]),
        )

    def command():  # what `tunesmith sweep` does on each call: open (or continue), queue what is missing, run
        study = open_study(make_storage(default_url(tmp_path)), "grid", create=True, sampler=None)
        queued = enqueue_missing(study, configs)
        return study, queued, run_worker(study, objective, budget=None, heartbeat_seconds=1)

    with pytest.raises(KeyboardInterrupt):
        command()
    study, queued, ran = command()
    # the interrupted configuration is queued again next to the 3 never started (still queued from before)
    assert queued == 1 and ran == 4
    trials = _check_complete(study, configs)
    assert [t.state.name for t in trials].count("FAIL") == 1
    assert calls[3:] and calls[2] in calls[3:]  # the interrupted configuration ran again


def test_two_workers_halve_a_grid_synchronously_without_double_promotions(postgres_url, tmp_path) -> None:
    """The synchronous schedule's slots on a shared study: every configuration reaches the first rung
    before any slot starts, each slot takes a distinct configuration (the ranking every worker computes
    alike), and the last level trains the best one, once."""
    import json

    from tunesmith.sweeps.space import grid, parse_space
    from tunesmith.sweeps.storage import make_storage, open_study
    from tunesmith.sweeps.synchronous import CONFIG_ATTR, SLOT_ATTR, level_of, slot_counts
    from tunesmith.sweeps.workers import enqueue_missing

    storage = make_storage(postgres_url, heartbeat_seconds=HEARTBEAT, grace_seconds=GRACE)
    study = open_study(storage, "synchronous", create=True, sampler=None)
    configs = grid(parse_space(SPACE), lambda key: None)
    counts = slot_counts(len(configs), 3)
    assert counts == [6, 2, 1]
    assert enqueue_missing(study, configs, slot_counts=counts) == 6
    assert enqueue_missing(study, configs, slot_counts=counts) == 0 and len(study.get_trials()) == 9
    script = tmp_path / "sync_worker.py"
    script.write_text(SYNC_WORKER)
    log = tmp_path / "log"
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), postgres_url, "synchronous", "0.3", str(log), json.dumps(SPACE)],
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()[-2000:]
    trials = study.get_trials(deepcopy=False)
    assert Counter(t.state.name for t in trials) == Counter({"PRUNED": 8, "COMPLETE": 1})

    def score(t) -> float:
        c = t.user_attrs[CONFIG_ATTR]
        return c["stages[0].hyperparameters.lr"] * 1000 + c["stages[0].data_mixing.customer_percent"] / 100

    level0 = sorted((t for t in trials if level_of(t) == 0), key=score, reverse=True)
    level1 = [t for t in trials if level_of(t) == 1]
    final = [t for t in trials if level_of(t) == 2]
    assert len(level0) == 6 and {_config_key(t.user_attrs[CONFIG_ATTR]) for t in level0} == {
        _config_key(c) for c in configs
    }
    # the top 2 of level 0, one each, in rank order; then the best of those, once
    assert sorted(tuple(t.user_attrs[SLOT_ATTR]) for t in level1) == [(1, 0), (1, 1)]
    assert {_config_key(t.user_attrs[CONFIG_ATTR]) for t in level1} == {
        _config_key(t.user_attrs[CONFIG_ATTR]) for t in level0[:2]
    }
    assert len(final) == 1 and final[0].user_attrs[CONFIG_ATTR] == level0[0].user_attrs[CONFIG_ATTR]
    # no slot started before the level before it had finished
    order = [line.split() for line in log.read_text().splitlines() if " started " in line]
    levels_in_order = [int(words[4]) for words in order]
    assert levels_in_order == sorted(levels_in_order), levels_in_order
