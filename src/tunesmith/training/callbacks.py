"""Trainer callbacks: per-step metrics, top-k checkpoints by a validation metric, final validation, SIGTERM.

Checkpoint safety: the trainer writes `checkpoints/checkpoint-N/`; only after it has finished (optimizer,
scheduler, RNG and trainer state included) does `CheckpointKeeper.on_save` drop a `COMPLETE` marker into
it (atomic write). Resume and selection only ever consider marked checkpoints, so a checkpoint half
written when the process was killed is never picked (and is deleted on resume).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunesmith.errors import UserError
from tunesmith.runs import atomic_write_json, atomic_write_text, read_json_record, read_jsonl_record

COMPLETE_MARKER = "COMPLETE"
CHECKPOINT_PREFIX = "checkpoint-"


def checkpoint_step(path: Path) -> int:
    return int(path.name[len(CHECKPOINT_PREFIX) :])


def complete_checkpoints(folder: Path) -> list[Path]:
    """Marked (fully written) checkpoints in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and (p / COMPLETE_MARKER).exists()]
    return sorted(found, key=checkpoint_step)


def checkpoint_problem(path: Path) -> str | None:
    """Why a complete-marked checkpoint cannot be resumed from (None: it can): a file that is unreadable,
    empty or cut short — JSON that does not parse, a safetensors file shorter than its header says, a torch
    file (zip) without its central directory. Cheap: headers only, no tensor is loaded."""
    if not (path / "trainer_state.json").exists():
        return "trainer_state.json is missing"
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        try:
            size = file.stat().st_size
            with open(file, "rb") as handle:
                head = handle.read(8)
                if size == 0:
                    return f"{file.name} is empty"
                if file.suffix == ".json":
                    json.loads(head + handle.read())
                elif file.suffix == ".safetensors":
                    header = int.from_bytes(head, "little")
                    meta = json.loads(handle.read(header)) if 0 < header <= size - 8 else None
                    if not isinstance(meta, dict):
                        return f"{file.name} is cut short"
                    ends = [v["data_offsets"][1] for k, v in meta.items() if k != "__metadata__"]
                    if 8 + header + max(ends, default=0) > size:
                        return f"{file.name} is cut short"
                elif file.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(file):
                    return f"{file.name} is cut short or not a torch file"
        except OSError as err:
            return f"{file.name} cannot be read ({err.strerror})"
        except (ValueError, KeyError, TypeError, IndexError):
            return f"{file.name} is damaged"
    return None


def remove_incomplete_checkpoints(folder: Path) -> list[str]:
    """Delete checkpoint folders without the marker (left by a crash); returns their names."""
    removed = []
    if folder.is_dir():
        for path in folder.glob(f"{CHECKPOINT_PREFIX}*"):
            if path.is_dir() and not (path / COMPLETE_MARKER).exists():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
    return sorted(removed)


RFT_LOG_PREFIXES = ("reward", "kl", "frac_reward", "completions/", "rft/", "entropy")
"""GRPO's per-step logs kept in metrics.jsonl: mean reward and its spread, KL to the reference policy, the
share of zero-variance groups, completion lengths, and tunesmith's own `rft/*` counters."""


METRICS_FIX = "delete that line (its step drops out of the record) and resume again"
INDEX_FIX = "delete it and resume again: the index is rebuilt from the checkpoints' COMPLETE markers"


class MetricsLogger(TrainerCallback):
    """Appends one JSON line per logged step to `metrics.jsonl`: loss, grad norm, LR, tokens/s, elapsed.

    Validation results are logged as rows with `eval_loss`. On resume, rows past the resumed step are
    dropped first, so the file always describes one consistent run.
    """

    def __init__(self, path: Path, resume_step: int = 0) -> None:
        self.path = path
        self._start = time.monotonic()
        self._last_time = self._start
        self._last_tokens = 0
        self._elapsed_offset = 0.0
        if path.exists():
            kept = []
            for row in read_jsonl_record(path, fix=METRICS_FIX):
                if row.get("step", 0) <= resume_step:
                    kept.append(json.dumps(row) + "\n")
                    self._elapsed_offset = max(self._elapsed_offset, row.get("elapsed_seconds", 0.0))
            atomic_write_text(path, "".join(kept))

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._last_tokens = state.num_input_tokens_seen or 0
        self._last_time = time.monotonic()

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        now = time.monotonic()
        row: dict[str, Any] = {"step": state.global_step}
        if "loss" in logs:
            tokens = state.num_input_tokens_seen or 0
            seconds = max(now - self._last_time, 1e-9)
            row.update(
                loss=logs["loss"],
                grad_norm=logs.get("grad_norm"),
                lr=logs.get("learning_rate"),
                tokens=tokens,
                tokens_per_second=(tokens - self._last_tokens) / seconds,
            )
            self._last_tokens, self._last_time = tokens, now
        for key, value in logs.items():
            if key.startswith(RFT_LOG_PREFIXES) or key.startswith("eval_"):
                row[key] = value
        if len(row) == 1:
            return
        row["elapsed_seconds"] = round(self._elapsed_offset + now - self._start, 3)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


@dataclass(frozen=True)
class Selection:
    """How a stage's best checkpoint is chosen: the validation `metric` (a key of the trainer's evaluation
    logs) and its direction. Each technique states its own, with the reason (`cpt.py`, `sft.py`, `rft.py`)."""

    metric: str = "eval_loss"
    higher_is_better: bool = False


METRIC_NAMES = {
    "eval_loss": "validation loss",
    "eval_reward": "validation reward",
    "eval_mean_token_accuracy": "validation token accuracy",
}
"""How `best.json`'s `selected_by` names each selection metric."""


class CheckpointKeeper(TrainerCallback):
    """Marks finished checkpoints, keeps the `save_top_k` best (plus the latest, for resume) and maintains
    `best.json` -> the best checkpoint.

    "Best" is the best value of the stage's `selection` metric (validation loss for CPT, validation token
    accuracy for SFT, validation reward for RFT) among the checkpoints whose general-capability probe
    (`general_probe`: step -> accuracy, the record the monitor's forgetting probe fills at the same steps
    before each save) stayed within `max_general_drop` of its value at the start; when every checkpoint
    dropped more, the best value overall. Measured on the tiny family (50% mix, full rank, 400 steps): by
    validation loss alone the pick sat in the mid-run general dip (it retained 87-93% of general accuracy)
    while later checkpoints retained 97%.

    Ties on the metric (token accuracy often ties across checkpoints) go to the lower validation loss, then
    to the later checkpoint. A checkpoint whose every update ran at LR 0 (the first warmup step) holds the
    starting weights: it ranks after every checkpoint that moved them, so a stage never exports its start
    while it has anything else (`moved` in checkpoints.json; the LR is read before each optimizer step).

    Kept instead of the trainer's `save_total_limit`/`metric_for_best_model`: those keep the latest N plus
    one best by the metric alone, not the top-k within the forgetting limit, and ignore the COMPLETE marker.
    """

    def __init__(
        self,
        stage_dir: Path,
        checkpoints_dir: Path,
        save_top_k: int,
        max_general_drop: float | None = None,
        *,
        selection: Selection | None = None,
        general_probe: Mapping[int, float] | None = None,
    ) -> None:
        self.stage_dir, self.checkpoints_dir, self.save_top_k = stage_dir, checkpoints_dir, save_top_k
        self.max_general_drop = max_general_drop
        self.selection = selection or Selection()  # CPT's: the lowest validation loss
        self.metric, self.higher_is_better = self.selection.metric, self.selection.higher_is_better
        self.general_probe: Mapping[int, float] = general_probe if general_probe is not None else {}
        self.index_path = stage_dir / "checkpoints.json"
        self.index: dict[str, dict[str, Any]] = (
            read_json_record(self.index_path, fix=INDEX_FIX)
            if self.index_path.exists()
            else self._from_markers()
        )
        if not isinstance(self.index, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("step"), int) for v in self.index.values()
        ):
            raise UserError(f"{self.index_path}: damaged (not a checkpoint index) — {INDEX_FIX}")
        self._eval_value: dict[int, float] = {}
        self._eval_loss: dict[int, float] = {}  # reported next to another selection metric
        # whether any update so far ran at LR > 0 (on resume: what the kept checkpoints recorded)
        self.moved = any(entry.get("moved", True) for entry in self.index.values())

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        optimizer = kw.get("optimizer")
        if not self.moved and optimizer is not None:
            self.moved = any(group.get("lr", 0.0) > 0 for group in optimizer.param_groups)

    def _from_markers(self) -> dict[str, dict[str, Any]]:
        """The index rebuilt from the COMPLETE markers (each records its step and selection metric; the
        general probe is not recorded there, so a rebuilt entry counts as within the forgetting limit)."""
        index = {}
        for path in complete_checkpoints(self.checkpoints_dir):
            marker = read_json_record(path / COMPLETE_MARKER, fix=f"delete {path} and resume again")
            index[path.name] = {
                "step": checkpoint_step(path),
                "eval_loss": marker.get("eval_loss"),
                self.metric: marker.get(self.metric),
                "general_probe": None,
            }
        if index:
            atomic_write_json(self.index_path, index)
        return index

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        if metrics and _finite(metrics.get(self.metric)):
            self._eval_value[state.global_step] = float(metrics[self.metric])
        if metrics and _finite(metrics.get("eval_loss")):
            self._eval_loss[state.global_step] = float(metrics["eval_loss"])

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        step = state.global_step
        folder = self.checkpoints_dir / f"{CHECKPOINT_PREFIX}{step}"
        if not folder.is_dir():
            return
        value = self._eval_value.get(step)
        atomic_write_json(folder / COMPLETE_MARKER, {"step": step, self.metric: value, "time": time.time()})
        self.index[folder.name] = {
            "step": step,
            "eval_loss": self._eval_loss.get(step),
            self.metric: value,
            "general_probe": self.general_probe.get(step),
            "moved": self.moved,
        }
        self._prune(latest=folder.name)
        atomic_write_json(self.index_path, self.index)
        best = self.best()
        if best is not None:
            atomic_write_json(self.stage_dir / "best.json", best)

    def _ranked(self) -> list[tuple[bool, bool, float, float, int, str]]:
        """(kept the start's weights, forgot, the metric (negated when higher is better), validation loss,
        -step, name), best first: checkpoints that moved the weights, then those within the forgetting limit
        first; ties to the lower validation loss, then to the later step."""
        start = self.general_probe.get(0)

        def forgot(entry: dict[str, Any]) -> bool:
            probe = entry.get("general_probe")
            if self.max_general_drop is None or start is None or not _finite(probe):
                return False  # nothing measured: every checkpoint is eligible
            return probe < start - self.max_general_drop - 1e-9

        def loss(entry: dict[str, Any]) -> float:
            value = entry.get("eval_loss")
            return float(value) if _finite(value) else math.inf

        sign = -1.0 if self.higher_is_better else 1.0
        return sorted(
            (not v.get("moved", True), forgot(v), sign * v[self.metric], loss(v), -v["step"], k)
            for k, v in self.index.items()
            if _finite(v.get(self.metric))
        )

    def best(self) -> dict[str, Any] | None:
        """The best checkpoint (see the class docstring); without validation: the latest."""
        ranked = self._ranked()
        what = METRIC_NAMES.get(self.metric, self.metric)
        if ranked:
            unmoved, forgot, _, _, step, name = ranked[0]
            step = -step
            how = what
            measured = any(entry.get("general_probe") is not None for entry in self.index.values())
            if self.max_general_drop is not None and measured and 0 in self.general_probe:
                how = (
                    f"{what} (every checkpoint forgot more than the limit)"
                    if forgot
                    else f"{what} among checkpoints within {100 * self.max_general_drop:g} points of "
                    "the start's general probe"
                )
            if unmoved:
                how += " (no checkpoint moved the weights: every update before it ran at LR 0)"
            return {
                "checkpoint": name,
                "step": step,
                "eval_loss": self.index[name].get("eval_loss"),
                **({self.metric: self.index[name][self.metric]} if self.metric != "eval_loss" else {}),
                "selected_by": how,
                "general_probe": self.index[name].get("general_probe"),
                "moved": not unmoved,
            }
        if self.index:
            name, entry = max(self.index.items(), key=lambda kv: kv[1]["step"])
            return {
                "checkpoint": name,
                "step": entry["step"],
                "eval_loss": None,
                "selected_by": "latest",
                "moved": entry.get("moved", True),
            }
        return None

    def _prune(self, latest: str) -> None:
        keep = {name for *_, name in self._ranked()[: self.save_top_k]} | {latest}
        for name in list(self.index):
            if name not in keep:
                shutil.rmtree(self.checkpoints_dir / name, ignore_errors=True)
                del self.index[name]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


class FinalValidation(TrainerCallback):
    """Validate and save at the last step too (the trainer only does so on multiples of the interval)."""

    def __init__(self, has_validation: bool) -> None:
        self.has_validation = has_validation

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if state.global_step >= state.max_steps:
            control.should_save = True
            control.should_evaluate = self.has_validation


class ValidationInterrupted(Exception):
    """A stop signal arrived during validation: the trainer abandons the validation (see `StopOnSignal`)."""


class StopOnSignal(TrainerCallback):
    """On SIGTERM (or SIGINT), finish the current step, save a checkpoint and stop cleanly.

    With `interrupt_validation`, a signal that arrives during validation also abandons the validation at the
    next batch (`ValidationInterrupted`, which the trainer catches: RFT's validation generates for minutes)."""

    def __init__(self, interrupt_validation: bool = False) -> None:
        self.received: int | None = None
        self.interrupt_validation = interrupt_validation
        self._previous: dict[int, Any] = {}

    def install(self) -> StopOnSignal:
        for sig in (signal.SIGTERM, signal.SIGINT):
            # outside the main thread (some launchers) signals cannot be caught: leave them alone
            with contextlib.suppress(ValueError):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.received = signum

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True

    def on_prediction_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if self.received is not None and self.interrupt_validation:
            raise ValidationInterrupted(
                f"signal {self.received} during validation at step {state.global_step}"
            )


class ProgressBar(TrainerCallback):
    """A bar with ETA (tqdm) and the latest loss/LR; validation results as lines. `quiet`: lines only."""

    QUIET_VALIDATION_SECONDS = 30.0
    """In quiet mode, a validation that runs longer prints its progress at most this often."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label, self.quiet, self.bar = label, quiet, None
        self.eval_bar: Any = None
        self._eval_batches = 0
        self._eval_started = self._eval_printed = 0.0

    def on_prediction_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        """Validation progress, batch by batch (a second bar; quiet: a line every 30 s)."""
        if not state.is_world_process_zero:
            return
        loader = kw.get("eval_dataloader")
        total = len(loader) if loader is not None and hasattr(loader, "__len__") else None
        now = time.monotonic()
        if self._eval_batches == 0:
            self._eval_started = self._eval_printed = now
        self._eval_batches += 1
        if not self.quiet:
            if self.eval_bar is None:
                from tqdm.auto import tqdm

                self.eval_bar = tqdm(
                    total=total,
                    desc=f"{self.label} validation",
                    unit="batch",
                    leave=False,
                    dynamic_ncols=True,
                )
            self.eval_bar.update(1)
        elif now - self._eval_printed >= self.QUIET_VALIDATION_SECONDS:
            self._eval_printed = now
            of = f"/{total}" if total else ""
            print(
                f"{self.label}: step {state.global_step} validation: batch {self._eval_batches}{of} "
                f"({now - self._eval_started:.0f} s)",
                flush=True,
            )

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._end_validation()

    def _end_validation(self) -> None:
        if self.eval_bar is not None:
            self.eval_bar.close()
            self.eval_bar = None
        self._eval_batches = 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if state.is_world_process_zero and not self.quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                desc=self.label,
                unit="step",
                dynamic_ncols=True,
            )

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        if self.bar is not None and "reward" in logs:  # RFT: the reward is the curve to watch
            self.bar.set_postfix(reward=f"{logs['reward']:.3f}", kl=f"{logs.get('kl', 0):.4f}", refresh=False)
        elif self.bar is not None and "loss" in logs:
            self.bar.set_postfix(
                loss=f"{logs['loss']:.4f}", lr=f"{logs.get('learning_rate', 0):.2e}", refresh=False
            )
        if "eval_reward" in logs:
            value = logs["eval_reward"]
            shown = f"{value:.4f}" if _finite(value) else "n/a (no sample could be scored)"
            line = f"{self.label}: step {state.global_step}/{state.max_steps} validation reward {shown}"
        elif "eval_loss" in logs:
            line = f"{self.label}: step {state.global_step}/{state.max_steps} validation loss {logs['eval_loss']:.4f}"
        else:
            return
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._end_validation()
        if self.bar is not None:
            self.bar.close()
            self.bar = None
