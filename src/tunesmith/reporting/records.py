"""What the report reads from a run folder, checked: a damaged file is a one-line `UserError` naming it.

Every file is optional except `plan.json` (what makes a folder a run): a section appears only when its
record exists. The layout is the training stage's (`tunesmith.training.stage` lists the files)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.runs import read_json_record, read_jsonl_record

FIX = "restore the file from the run, or delete the damaged line, and run `tunesmith report` again"


@dataclass
class StageRecord:
    """One stage folder: its training curves, schedule, monitoring events, general probe, realized mix,
    readiness probe (RFT) and result (absent while the stage runs or after it was interrupted)."""

    name: str
    technique: str
    mode: str
    folder: Path
    metrics: list[dict[str, Any]] = field(default_factory=list)
    schedule: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    mix: dict[str, Any] | None = None
    readiness: dict[str, Any] | None = None
    result: dict[str, Any] | None = None

    @property
    def started(self) -> bool:
        return self.folder.is_dir()

    def status(self) -> str:
        """finished / stopped by the monitor / stopped at step N / not started."""
        if not self.started:
            return "not started"
        if self.result is None:
            last = max((int(r["step"]) for r in self.metrics), default=0)
            return f"interrupted or still running (last logged step {last})"
        if self.result.get("stopped_by_monitor"):
            return f"stopped by the monitor at step {self.result.get('steps')}"
        if self.result.get("stopped_by_signal"):
            return f"stopped by a signal at step {self.result.get('steps')}"
        return "finished"


@dataclass
class RunRecord:
    root: Path
    plan: dict[str, Any]
    manifest: dict[str, Any] | None
    stages: list[StageRecord]
    evaluation: dict[str, Any] | None

    @property
    def name(self) -> str:
        return str(self.plan["recipe"].get("name", self.root.name))


def _optional_json(path: Path) -> Any:
    return read_json_record(path, fix=FIX) if path.exists() else None


def _optional_jsonl(path: Path, numeric: Iterable[str]) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = read_jsonl_record(path, fix=FIX)
    check_numbers(rows, path, numeric)
    return rows


def check_numbers(rows: list[dict[str, Any]], path: Path, keys: Iterable[str]) -> None:
    """Every row has an integer `step` >= 0, and each of `keys` it holds is a number (or null)."""
    keys = tuple(keys)
    for index, row in enumerate(rows, 1):
        step = row.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise UserError(f"{path}: record {index}: step {step!r} is not a step number — {FIX}")
        for key in keys:
            value = row.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise UserError(f"{path}: step {step}: {key} = {value!r} is not a number — {FIX}")


def is_number(value: Any) -> bool:
    """A finite number (not a bool): what a chart can plot."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


METRIC_KEYS = ("loss", "lr", "grad_norm", "eval_loss", "eval_mean_token_accuracy", "reward", "reward_std",
               "kl", "eval_reward", "eval_kl")  # fmt: skip
"""The metrics.jsonl columns the report plots (training.callbacks.MetricsLogger writes them)."""


def read_stage(root: Path, plan_stage: dict[str, Any]) -> StageRecord:
    name = str(plan_stage.get("name", ""))
    folder = root / name
    stage = StageRecord(name, str(plan_stage.get("technique", "")), str(plan_stage.get("mode", "")), folder)
    if not name or not folder.is_dir():
        return stage
    stage.metrics = _optional_jsonl(folder / "metrics.jsonl", METRIC_KEYS)
    stage.schedule = _optional_jsonl(folder / "schedule.jsonl", ("lr",))
    stage.events = _optional_jsonl(folder / "events.jsonl", ("value", "threshold"))
    for row in stage.events:
        if not isinstance(row.get("detector"), str) or not isinstance(row.get("action"), str):
            raise UserError(f"{folder / 'events.jsonl'}: an event without detector/action — {FIX}")
    stage.probes = _optional_jsonl(folder / "probes.jsonl", ("general_accuracy", "kl"))
    stage.mix = _optional_json(folder / "data" / "mix.json")
    stage.readiness = _optional_json(folder / "probe.json")
    stage.result = _optional_json(folder / "result.json")
    for path, value in ((folder / "data" / "mix.json", stage.mix), (folder / "probe.json", stage.readiness),
                        (folder / "result.json", stage.result)):  # fmt: skip
        if value is not None and not isinstance(value, dict):
            raise UserError(f"{path}: not a JSON object — {FIX}")
    return stage


def read_run(root: Path) -> RunRecord:
    """The run folder's records (`plan.json` required: it names the stages and holds the recipe)."""
    plan = read_json_record(root / "plan.json", fix=FIX)
    if not isinstance(plan, dict) or not isinstance(plan.get("recipe"), dict):
        raise UserError(f"{root / 'plan.json'}: not a run plan (no recipe) — {FIX}")
    stages = [read_stage(root, s) for s in plan.get("stages") or [] if isinstance(s, dict)]
    evaluation = _optional_json(root / "eval" / "evaluation.json")
    if evaluation is not None and not isinstance(evaluation, dict):
        raise UserError(f"{root / 'eval' / 'evaluation.json'}: not a JSON object — {FIX}")
    manifest = _optional_json(root / "manifest.json")
    return RunRecord(root, plan, manifest if isinstance(manifest, dict) else None, stages, evaluation)
