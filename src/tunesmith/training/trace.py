"""Spike tracing: which examples every optimizer step trained on, and which of them a spike points at.

The analogue of the managed service's `trace_batch(step)` ([nova-forge-sdk]), recorded instead of matched
back by fingerprints:

- The training dataset carries each row's index in `data/train.jsonl` (`EXAMPLE_INDEX`); the collator
  (`TracingCollator`) takes it off the features before batching, so packed rows keep every example's
  identity, and hands the trainer the micro-batch's indices (`EXAMPLE_IDS`), which `StepTracer.add` collects.
- At each optimizer step's end `StepTracer` appends one line to `<stage>/trace.jsonl`:
  `{"step", "attempt", "rows": [0-based train.jsonl indices]}` (one small write, no fsync: a crash loses at
  most the lines after the last checkpoint, which the resumed run trains and records again). A resume or a
  rollback drops the lines past the step it restarts from, so each step has the record of what it trained.
- When a loss spike, gradient-norm explosion, non-finite step or spike frequency fires, the monitor asks
  `StepTracer.annotate` for the step's rows: their origins (`tunesmith.data.origins`: the user's file and
  line, or the general category and row) and each one's loss, measured by one forward pass over those
  examples right after the step (the weights the step produced; nothing is computed on healthy steps).
  Rows whose loss is an outlier among the step's rows (modified z-score >= 3.5, [iglewicz-hoaglin-1993])
  are the suspects; a rollback with `monitoring.skip_data` skips exactly those rows from then on.
- `trace_step(run, stage, step)` reads it back as typed data (`tunesmith trace` prints it).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunesmith.data.origins import Origin, read_origins
from tunesmith.errors import UserError
from tunesmith.monitoring import Event
from tunesmith.monitoring.stats import median, robust_z
from tunesmith.training.monitor import EVENTS_FILE, read_rows, rewrite_rows

TRACE_FILE = "trace.jsonl"
EXAMPLE_INDEX = "example_index"
"""The training dataset's column: the row's 0-based index in data/train.jsonl."""
EXAMPLE_IDS = "example_ids"
"""The batch key the collator adds: the micro-batch's example indices (the trainer takes it off)."""
TRACED_DETECTORS = ("loss_spike", "spike_frequency", "grad_norm_explosion", "non_finite")
OUTLIER_Z = 3.5
"""A row is a suspect when its loss is at least 3.5 robust standard deviations (the modified z-score of
Iglewicz and Hoaglin, [iglewicz-hoaglin-1993]) above the median loss of the step's rows."""
KEPT_STEPS = 256
"""Recent steps whose rows stay in memory for the events (spike_frequency looks back over its window)."""


@dataclass(frozen=True)
class TracedRow:
    """One example a step trained on: its line in the stage's train.jsonl (1-based), where it came from,
    and (when an event measured it) its loss and whether it stands out among the step's rows."""

    row: int
    source: str | None = None
    file: str | None = None
    line: int | None = None
    loss: float | None = None
    suspect: bool = False

    @property
    def where(self) -> str:
        if self.file is None:
            return f"data/train.jsonl:{self.row}"
        return Origin(self.source or "", self.file, self.line or 0).where

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "source": self.source,
            "file": self.file,
            "line": self.line,
            "loss": self.loss,
            "suspect": self.suspect,
        }


@dataclass(frozen=True)
class StepTrace:
    """What one optimizer step of a stage trained on (`trace_step`)."""

    stage: str
    step: int
    attempt: int
    rows: list[TracedRow]
    events: list[str] = field(default_factory=list)  # detectors that fired at this step


# --------------------------------------------------------------------------------------------- recording


def with_example_index(dataset: Any) -> Any:
    """The dataset with `EXAMPLE_INDEX` (row i -> i), unless it has it already."""
    if EXAMPLE_INDEX in dataset.column_names:
        return dataset
    return dataset.add_column(EXAMPLE_INDEX, list(range(len(dataset))))


def truncated(feature: dict[str, Any]) -> dict[str, Any]:
    """A feature cut to its first token: a sequence with no next token to predict (no loss, no gradient)."""
    return {key: value[:1] if isinstance(value, list) else value for key, value in feature.items()}


@dataclass
class TracingCollator:
    """Wraps a collator: takes `EXAMPLE_INDEX` off each feature, leaves out the examples in `skip` (a micro-
    batch whose examples are all skipped keeps one cut to a single token, which trains nothing), and adds the
    indices of the examples it batched as `EXAMPLE_IDS`."""

    inner: Callable[[list[dict[str, Any]]], dict[str, Any]]
    skip: frozenset[int] = frozenset()

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if not features or EXAMPLE_INDEX not in features[0]:
            return self.inner(features)  # validation batches carry no index
        kept, ids = [], []
        for feature in features:
            feature = dict(feature)
            index = int(feature.pop(EXAMPLE_INDEX))
            if index in self.skip:
                continue
            kept.append(feature)
            ids.append(index)
        if not kept:
            placeholder = dict(features[0])
            placeholder.pop(EXAMPLE_INDEX)
            kept = [truncated(placeholder)]
        batch = self.inner(kept)
        batch[EXAMPLE_IDS] = torch.tensor(ids, dtype=torch.long)
        return batch


class StepTracer(TrainerCallback):
    """Collects each micro-batch's example indices (`add`, from the trainer's `training_step`) and writes one
    line per optimizer step to `trace.jsonl`; `annotate` names a traced event's rows with their losses."""

    def __init__(
        self,
        stage_dir: Path,
        *,
        attempt: int = 0,
        resume_step: int = 0,
        main_process: bool = True,
        skip: frozenset[int] = frozenset(),
    ) -> None:
        self.stage_dir = stage_dir
        self.path = stage_dir / TRACE_FILE
        self.attempt = attempt
        self.main_process = main_process
        self.skip = skip  # train.jsonl indices a rollback with `skip_data` left out (`TracingCollator`)
        self.current: list[int] = []
        self.recent: OrderedDict[int, list[int]] = OrderedDict()
        self.trainer: Any = None  # bound after the trainer is built (`bind`): its dataset and collator
        self._fd: int | None = None
        if main_process and self.path.exists():  # the steps after the restart point are trained again
            rewrite_rows(self.path, [r for r in read_rows(self.path) if r["step"] <= resume_step])
        for row in read_rows(self.path) if self.path.exists() else []:
            self._keep(row["step"], row["rows"])

    def bind(self, trainer: Any) -> None:
        """Attach the attempt's trainer: its collator is wrapped (`TracingCollator`) and its dataset and
        collator measure an event's per-example losses. The trainer calls `add` with each micro-batch's
        `EXAMPLE_IDS`."""
        self.trainer = trainer
        if not isinstance(trainer.data_collator, TracingCollator):
            trainer.data_collator = TracingCollator(trainer.data_collator, self.skip)

    def add(self, ids: Any) -> None:
        self.current.extend(int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids))

    def _keep(self, step: int, rows: list[int]) -> None:
        self.recent[step] = rows
        self.recent.move_to_end(step)
        while len(self.recent) > KEPT_STEPS:
            self.recent.popitem(last=False)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        rows, self.current = self.current, []
        self._keep(state.global_step, rows)
        if not self.main_process:
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line = f'{{"step": {state.global_step}, "attempt": {self.attempt}, "rows": {json.dumps(rows)}}}\n'
        os.write(self._fd, line.encode("ascii"))

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- events -------------------------------------------------------------------------------------------
    def annotate(self, events: list[Event], model: Any) -> list[Event]:
        """Each traced event with `details["rows"]` (the rows of its step(s), highest loss first, suspects
        marked) and its data-quality cause naming them."""
        out = []
        for event in events:
            steps = _event_steps(event)
            if event.detector not in TRACED_DETECTORS or not any(s in self.recent for s in steps):
                out.append(event)
                continue
            rows: list[TracedRow] = []
            for step in steps:
                rows += self.rows_of(self.recent.get(step, []), model)
            rows.sort(key=lambda r: -(r.loss if r.loss is not None else float("-inf")))
            details = {**event.details, "rows": [r.to_json() for r in rows]}
            command = (
                f"tunesmith trace {self.stage_dir.parent} --stage {self.stage_dir.name} --step {steps[-1]}"
            )
            causes = tuple(_name_rows(c, rows, steps, command) for c in event.causes)
            out.append(replace(event, details=details, causes=causes))
        return out

    def rows_of(self, indices: list[int], model: Any) -> list[TracedRow]:
        """Traced rows for train.jsonl indices: origins, and the losses under `model` (None without one)."""
        losses = self.losses(indices, model) if model is not None and self.trainer is not None else {}
        return traced_rows(self.stage_dir / "data", indices, losses, outliers(losses))

    @torch.no_grad()
    def losses(self, indices: list[int], model: Any) -> dict[int, float]:
        """Each example's mean token loss under `model`: one forward pass per example (packed together their
        losses could not be told apart), laid out by the trainer's own collator, whose labels say which tokens
        count."""
        dataset = self.trainer.train_dataset
        position = _positions(dataset)
        collator = self.trainer.data_collator
        inner = collator.inner if isinstance(collator, TracingCollator) else collator
        wanted = [i for i in indices if i in position]
        found: dict[int, float] = {}
        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            for index in wanted:
                feature = dict(dataset[position[index]])
                feature.pop(EXAMPLE_INDEX, None)
                batch = inner([feature])
                labels = batch.pop("labels")
                inputs = {
                    k: v.to(device)
                    for k, v in batch.items()
                    if k in ("input_ids", "attention_mask", "position_ids")
                }
                logits = model(**inputs, use_cache=False).logits[0, :-1].float()
                targets = labels[0, 1:].to(device)
                mask = targets != -100
                if not bool(mask.any()):
                    continue
                loss = torch.nn.functional.cross_entropy(logits[mask], targets[mask])
                found[index] = round(float(loss), 5)
        finally:
            model.train(was_training)
        return found


def traced_rows(
    data_dir: Path, indices: list[int], losses: dict[int, float], suspects: set[int]
) -> list[TracedRow]:
    """Rows for train.jsonl indices (0-based), in that order, with their origins (none for a stage prepared
    before origins were recorded), losses and suspect marks."""
    origins = read_origins(data_dir, indices) or {}
    rows = []
    for index in indices:
        origin = origins.get(index)
        rows.append(
            TracedRow(
                row=index + 1,
                source=origin.source if origin else None,
                file=origin.file if origin else None,
                line=origin.line if origin else None,
                loss=losses.get(index),
                suspect=index in suspects,
            )
        )
    return rows


def outliers(losses: dict[int, float]) -> set[int]:
    """The examples whose loss lies `OUTLIER_Z` robust sigma or more above the median of the others'
    (leave-one-out, so that the suspect does not widen its own yardstick); none among fewer than 3."""
    if len(losses) < 3:
        return set()
    found = set()
    for index, loss in losses.items():
        others = [v for i, v in losses.items() if i != index]
        z, center, _ = robust_z(loss, others, sigma_floor=0.01 * max(median(others), 1e-6))
        if z >= OUTLIER_Z:
            found.add(index)
    return found


def _positions(dataset: Any) -> dict[int, int]:
    """EXAMPLE_INDEX -> the dataset position holding it (the trainer may have dropped rows before)."""
    if EXAMPLE_INDEX not in dataset.column_names:
        return {i: i for i in range(len(dataset))}
    return {int(v): p for p, v in enumerate(dataset[EXAMPLE_INDEX])}


def _event_steps(event: Event | dict[str, Any]) -> list[int]:
    detector = event.detector if isinstance(event, Event) else event["detector"]
    details = event.details if isinstance(event, Event) else event.get("details") or {}
    step = event.step if isinstance(event, Event) else event["step"]
    if detector == "spike_frequency" and details.get("spike_steps"):
        return sorted(set(details["spike_steps"]))
    return [step]


def _name_rows(cause: str, rows: list[TracedRow], steps: list[int], command: str) -> str:
    """The data-quality cause with the traced rows instead of a line range: suspects (or the top losses)."""
    if not cause.startswith("data quality:"):
        return cause
    shown = [r for r in rows if r.suspect] or rows[:3]
    named = ", ".join(r.where + (f" (loss {r.loss:.3g})" if r.loss is not None else "") for r in shown[:5])
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    which = "outlier rows" if any(r.suspect for r in rows) else "highest-loss rows"
    step = ", ".join(str(s) for s in steps)
    return f"data quality: the {which} of step {step}: {named}{more} (all {len(rows)} rows: `{command}`)"


def suspect_rows(event: Event) -> list[int]:
    """The 0-based train.jsonl indices an event named as suspects (what `skip_data` skips)."""
    return sorted({int(r["row"]) - 1 for r in event.details.get("rows", []) if r.get("suspect")})


# --------------------------------------------------------------------------------------------- reading


def stage_dirs(run_dir: Path) -> list[Path]:
    """The stage folders of a run that have a trace record, in name order."""
    return sorted(p.parent for p in run_dir.glob(f"*/{TRACE_FILE}"))


def trace_step(run_dir: str | os.PathLike[str], step: int, stage: str | None = None) -> StepTrace:
    """The rows step `step` of a stage trained on (the stage's latest attempt at that step), with origins,
    and the per-example losses and suspects an event at that step measured. One-line `UserError`s name what
    is missing."""
    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"{run}: no such run folder — give the run's folder, e.g. runs/<name>")
    traced = stage_dirs(run)
    if stage is None:
        if not traced:
            raise UserError(f"{run}: no stage of this run has a trace record ({TRACE_FILE}) — train it first")
        if len(traced) > 1:
            names = ", ".join(p.name for p in traced)
            raise UserError(f"{run}: the run has several traced stages ({names}) — pick one with --stage")
        stage_dir = traced[0]
    else:
        stage_dir = run / stage
        if stage_dir not in traced:
            names = ", ".join(p.name for p in traced) or "none"
            raise UserError(f"{run}: stage {stage!r} has no trace record — traced stages: {names}")
    records = {r["step"]: r for r in read_rows(stage_dir / TRACE_FILE)}
    if step not in records:
        last = max(records) if records else 0
        raise UserError(f"{stage_dir / TRACE_FILE}: no step {step} — the stage recorded steps 1-{last}")
    record = records[step]
    measured: dict[int, dict[str, Any]] = {}
    fired: list[str] = []
    for event in read_rows(stage_dir / EVENTS_FILE):
        if event.get("attempt", 0) != record.get("attempt", 0) or step not in _event_steps(event):
            continue
        fired.append(event["detector"])
        for row in (event.get("details") or {}).get("rows", []):
            measured[int(row["row"])] = row
    indices = [int(i) for i in record["rows"]]
    losses = {row - 1: m["loss"] for row, m in measured.items() if m.get("loss") is not None}
    suspects = {row - 1 for row, m in measured.items() if m.get("suspect")}
    rows = traced_rows(stage_dir / "data", indices, losses, suspects)
    if measured:
        rows.sort(key=lambda r: -(r.loss if r.loss is not None else float("-inf")))
    return StepTrace(stage_dir.name, step, int(record.get("attempt", 0)), rows, fired)


def render(trace: StepTrace) -> str:
    """The lines `tunesmith trace` prints."""
    events = f" (events: {', '.join(sorted(set(trace.events)))})" if trace.events else ""
    lines = [
        f"{trace.stage} step {trace.step}, attempt {trace.attempt}: {len(trace.rows)} example(s){events}"
    ]
    has_loss = any(r.loss is not None for r in trace.rows)
    for r in trace.rows:
        loss = f"  loss {r.loss:8.4f}" if r.loss is not None else ""
        flag = "  <- suspect" if r.suspect else ""
        source = r.source or "?"
        lines.append(f"  train.jsonl:{r.row:<7d} {source:<12s} {r.where:<48s}{loss}{flag}".rstrip())
    if not has_loss:
        lines.append("  (no per-example losses: they are measured when an event fires at the step)")
    return "\n".join(lines)
