"""What a sweep shows while it runs and keeps afterwards: one line per finished trial with an ETA, and
`runs/<sweep>/trials.csv` (every trial of the study: configuration, state, objectives, pruning, compute),
rewritten atomically after each trial."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from tunesmith.runs import atomic_write_text
from tunesmith.sweeps.space import config_label
from tunesmith.sweeps.synchronous import CONFIG_ATTR, RANK_ATTR

CSV_COLUMNS = (
    "trial", "state", "config", "domain_gain_points", "domain_score", "general_retention_percent",
    "general_score", "significant_regression", "pruned_stage", "pruned_step", "pruned_by", "steps",
    "planned_steps", "tokens", "train_seconds", "eval_seconds", "run_dir",
)  # fmt: skip


def _duration(trial: Any) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def eta_seconds(trials: list[Any], total: int | None) -> float | None:
    """Mean finished-trial duration x trials left, shared by the workers now running trials."""
    finished = [
        d for t in trials if t.state.name in ("COMPLETE", "PRUNED") and (d := _duration(t)) is not None
    ]
    if total is None or not finished:
        return None
    done = sum(1 for t in trials if t.state.name in ("COMPLETE", "PRUNED"))
    running = max(1, sum(1 for t in trials if t.state.name == "RUNNING"))
    return max(0, total - done) * (sum(finished) / len(finished)) / running


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def trial_line(trial: Any, trials: list[Any], total: int | None) -> str:
    """`trial 3/12 lr=0.005 customer_percent=50: domain +41.2 pts, general retained 98.1% (no significant
    regression) | 400 steps, 1.2M tokens, 35 s + eval 8 s | ETA 6m10s`."""
    config = config_label(trial.user_attrs.get(CONFIG_ATTR, {}))
    done = sum(1 for t in trials if t.state.name in ("COMPLETE", "PRUNED"))
    head = f"trial {trial.number} ({done}/{total if total is not None else '?'}) {config}: "
    promoted = trial.user_attrs.get(RANK_ATTR)
    if promoted:
        head += f"promoted (rank {promoted['rank']} of {promoted['of']} at the rung before), "
    if trial.state.name == "COMPLETE":
        o = trial.user_attrs["objectives"]
        flag = (
            "significant general regression" if o["significant_regression"] else "no significant regression"
        )
        body = (
            f"domain {o['domain_gain_points']:+.1f} pts ({o['domain_score']:.1f}), "
            f"general retained {o['general_retention_percent']:.1f}% ({flag})"
        )
    elif trial.state.name == "PRUNED":
        pruned = trial.user_attrs.get("pruned", {})
        body = f"pruned at step {pruned.get('step')} of {pruned.get('stage')} ({pruned.get('by')})"
    else:
        body = trial.state.name.lower()
    c = trial.user_attrs.get("compute")
    compute = ""
    if c:
        tokens = f", {c['tokens'] / 1e6:.2f}M tokens" if c.get("tokens") else ""
        steps = f"{c['steps_before']}->{c['steps']}" if c.get("steps_before") else f"{c['steps']}"
        compute = f" | {steps}/{c['planned_steps']} steps{tokens}, {c['train_seconds']:.0f} s + eval {c['eval_seconds']:.0f} s"
    eta = eta_seconds(trials, total)
    return head + body + compute + (f" | ETA {_clock(eta)}" if eta is not None else "")


def trials_csv(trials: list[Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for t in sorted(trials, key=lambda t: t.number):
        o = t.user_attrs.get("objectives") or {}
        p = t.user_attrs.get("pruned") or {}
        c = t.user_attrs.get("compute") or {}
        writer.writerow(
            [
                t.number,
                t.state.name,
                config_label(t.user_attrs.get(CONFIG_ATTR, {})),
                o.get("domain_gain_points", ""),
                o.get("domain_score", ""),
                o.get("general_retention_percent", ""),
                o.get("general_score", ""),
                o.get("significant_regression", ""),
                p.get("stage", ""),
                p.get("step", ""),
                p.get("by", ""),
                c.get("steps", ""),
                c.get("planned_steps", ""),
                c.get("tokens", ""),
                c.get("train_seconds", ""),
                c.get("eval_seconds", ""),
                t.user_attrs.get("run_dir", ""),
            ]  # fmt: skip
        )
    return buffer.getvalue()


class LiveView:
    """`on_finished(trial)`: print the trial's line and rewrite trials.csv."""

    def __init__(self, study: Any, sweep_dir: Path, total: int | None, *, stream: Any = None) -> None:
        self.study, self.sweep_dir, self.total = study, sweep_dir, total
        self.stream = stream or sys.stdout

    def write_csv(self) -> Path:
        path = self.sweep_dir / "trials.csv"
        atomic_write_text(path, trials_csv(self.study.get_trials(deepcopy=False)))
        return path

    def on_finished(self, trial: Any) -> None:
        trials = self.study.get_trials(deepcopy=False)
        print(trial_line(trial, trials, self.total), file=self.stream, flush=True)
        self.write_csv()
