"""The trainer side of run monitoring: feeds the trainer's streams to `tunesmith.monitoring.Monitor`, writes
and prints events, applies the policies, and runs the forgetting probe.

Files in the stage folder:

    events.jsonl     one line per event (append-only: a rollback's history stays; a resume after a crash
                     drops the current attempt's events past the resumed step, which will be seen again)
    probes.jsonl     the forgetting probe at each probe step: general accuracy (0-1), KL to the start model,
                     accuracy per category and each item (1 = right)
    probe_reference.pt   the start model's answers and top-k log-probs on the probe prompts (for the KL)
    monitor.json     attempts, rollbacks done, the LR scale segments (read on resume)

Policies act through the trainer's control flags: `stop` saves a checkpoint and ends training; `rollback`
ends training *without* saving the bad step and leaves `request` set, and `run_stage` restores the last
good complete checkpoint and continues with the LR scaled down (`tunesmith.training.stage`).

The forgetting probe (every `probe_interval` steps and at the start) is the one general-skill measurement
(`tunesmith.evaluation.retention.measure`) on a few held-out general items per category, the model's own
suite (`retention.general_items`): for the tiny world, one teacher-forced forward pass whose exact match
(every answer token, and the end-of-sequence token, is the argmax given the correct prefix) is exactly when
greedy decoding reproduces the answer, without the cost of generating (a first version generated: 17.7 s
per probe on the tiny family, against ~0.2 s per training step); for a real model, its answers generated
and scored by the real bank's `score`. Plus the forward KL(start || current) in nats per answer token (a
proxy that needs no correctness judgment; RL's Razor uses forward KL to the start policy as the forgetting
predictor, [rls-razor-2025]), on the reference answers (tiny world) or on the start model's own answers
(real bank). Only the start model's top-k log-probs are stored, so the KL ignores the tail mass outside
them (exact for the tiny family's 100-token vocabulary).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunesmith.errors import UserError
from tunesmith.monitoring import Event, Monitor, summarize
from tunesmith.monitoring.stats import is_finite
from tunesmith.runs import atomic_write_bytes, atomic_write_json, read_json_record

EVENTS_FILE = "events.jsonl"
PROBES_FILE = "probes.jsonl"
STATE_FILE = "monitor.json"
REFERENCE_FILE = "probe_reference.pt"
KL_TOP_K = 256
PROBE_GENERATION_BATCH = 32
"""Generated probe items per batch (a real model's probe; teacher-forced items run
`retention.TEACHER_FORCED_CHUNK` per forward pass)."""


def append_line(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line atomically: a single O_APPEND write of the whole line, then fsync."""
    data = (json.dumps(row) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The JSON rows of a run's JSONL record (metrics, probes, events); a torn last line (a crash mid-write)
    is dropped, a damaged line before it is a one-line `UserError` naming FILE:LINE."""
    if not path.exists():
        return []
    lines = path.read_bytes().splitlines()
    rows = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            row = None
        if not isinstance(row, dict):
            if number == len(lines):
                continue  # a torn last line after a crash
            raise UserError(
                f"{path}:{number}: damaged line (not a JSON object) — delete that line (or restore the file) "
                "and resume again"
            )
        rows.append(row)
    return rows


def rewrite_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    from tunesmith.runs import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


# --------------------------------------------------------------------------------------------- state


def load_state(stage_dir: Path) -> dict[str, Any]:
    path = stage_dir / STATE_FILE
    if path.exists():
        fix = "restore it; deleting it resumes at the unscaled LR, forgetting the rollbacks done"
        return read_json_record(path, fix=fix)
    return {"attempt": 0, "rollbacks": [], "lr_segments": [], "pending_rollback_to": None}


def save_state(stage_dir: Path, state: dict[str, Any]) -> None:
    atomic_write_json(stage_dir / STATE_FILE, state)


def lr_scale_at(step: int, segments: list[list[float]]) -> float:
    """The LR factor at optimizer step `step` (0-based): the last segment starting at or before it."""
    scale = 1.0
    for start, factor in segments:
        if step >= start:
            scale = factor
    return scale


# --------------------------------------------------------------------------------------------- probe


class ForgettingProbe:
    """General skill on a few held-out items, measured by the one general-skill measurement
    (`evaluation.retention.measure`), and KL to the start model, on a fixed item set."""

    def __init__(
        self,
        tokenizer: Any,
        items_per_category: int,
        stage_dir: Path | None,
        *,
        items: list[tuple[str, dict[str, Any]]] | None = None,
        model_ref: str | Path | None = None,
    ):
        """The general items of the model `model_ref` (`retention.general_items`: the tiny world's, the
        default, or the real bank's), `items_per_category` each; or `items` ((category, {query, response} or
        {messages, reference}) pairs): the same measurement of other answers (a sweep's domain probe). With
        `stage_dir` None no KL reference is kept (KL reported as 0)."""
        from tunesmith.evaluation import retention

        self.tokenizer = tokenizer
        if items is None:
            ref = "tiny" if model_ref is None else model_ref
            self.items = retention.general_items(ref, items_per_category)
        else:
            self.items = [
                {
                    "id": str(index),
                    "category": category,
                    "messages": row.get("messages") or [{"role": "user", "content": row["query"]}],
                    "reference": row["response"] if "response" in row else row["reference"],
                }
                for index, (category, row) in enumerate(items)
            ]
        # a real model's answers are generated and scored (they never match a terse reference token for
        # token); exact-match items are scored in one teacher-forced pass, which equals greedy exact match
        self.mode = (
            "generate" if retention.metric_of(self.items) == retention.REAL_METRIC else "teacher-forced"
        )
        self.categories = [item["category"] for item in self.items]
        self.messages = [item["messages"] for item in self.items]
        self.reference_path = stage_dir / REFERENCE_FILE if stage_dir is not None else None
        self.reference: dict[str, Any] | None = None
        self._inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        if self.reference_path is not None and self.reference_path.exists():
            self.reference = torch.load(self.reference_path, weights_only=True)

    @torch.no_grad()
    def measure(self, model: Any) -> dict[str, float]:
        """{general_accuracy, token_accuracy, kl, seconds, categories, items}; the first call stores the
        start model's top-k log-probs (on the reference answers, or for generated items on the start model's
        own answers) as the KL reference."""
        from tunesmith.evaluation import retention

        started = time.perf_counter()
        measured = retention.measure(
            model, self.tokenizer, self.items, mode=self.mode, batch_size=PROBE_GENERATION_BATCH
        )
        scores = measured.values()
        correct = [value >= 1.0 for value in scores]
        token_accuracy = measured.token_accuracy
        picked_rows = measured.logprobs
        if self.reference_path is not None and not picked_rows:  # generated: KL on the start's answers
            picked_rows = self._forced(model, measured)
        accuracy = sum(scores) / len(scores)
        by_category: dict[str, list[float]] = {}
        for category, value in zip(self.categories, scores, strict=True):
            by_category.setdefault(category, []).append(value)
        if self.reference_path is None:
            kl = 0.0
        elif self.reference is None:
            picked = torch.cat(picked_rows)
            k = min(KL_TOP_K, picked.shape[-1])
            top_logp, top_ids = picked.topk(k, dim=-1)
            self.reference = {"top_ids": top_ids, "top_logp": top_logp}
            if self.mode == "generate":
                self.reference["answers"] = [row["prediction"] for row in measured.rows]
            atomic_write_bytes(self.reference_path, _to_bytes(self.reference))
            kl = 0.0
        else:
            picked = torch.cat(picked_rows)
            current = picked.gather(-1, self.reference["top_ids"])
            p0 = self.reference["top_logp"].exp()
            kl = (p0 * (self.reference["top_logp"] - current)).sum(-1).mean().item()
            kl = max(kl, 0.0) if math.isfinite(kl) else float("inf")
        return {
            "general_accuracy": round(accuracy, 4),
            # the share of answer tokens right: it moves long before exact match does (teacher-forced items)
            "token_accuracy": round(token_accuracy if token_accuracy is not None else accuracy, 4),
            "kl": round(kl, 5),
            "seconds": round(time.perf_counter() - started, 3),
            # which categories move, and each item (1 = right), for paired comparisons between probes
            "categories": {c: round(sum(v) / len(v), 4) for c, v in by_category.items()},
            "items": "".join("1" if right else "0" for right in correct),
        }

    def _forced(self, model: Any, measured: Any) -> list[torch.Tensor]:
        """Answer-position log-probs of the start model's own answers (stored with the reference; this
        measurement's answers on the first call), forced through `model`: the KL of generated items."""
        from tunesmith.evaluation import retention

        if self._inputs is None:
            answers = (self.reference or {}).get("answers") or [row["prediction"] for row in measured.rows]
            self._inputs = retention.forced_inputs(self.tokenizer, self.messages, answers)
        return retention.forced_logprobs(model, *self._inputs)[2]


def _to_bytes(obj: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------- callback


class MonitorCallback(TrainerCallback):
    """Feeds every logged metrics row and the forgetting probe to the `Monitor`; writes, prints and enforces
    the events. `request` is the stop/rollback event that ended training (None otherwise).

    `general_accuracy` (step -> the probe's general accuracy, 0-1) is the probe record checkpoint selection
    reads (`CheckpointKeeper(general_probe=...)`): the probe runs at `on_step_end`, before the trainer saves
    that step's checkpoint. `probes.jsonl` is its record on disk, read back only on resume."""

    def __init__(
        self,
        monitor: Monitor,
        stage_dir: Path,
        *,
        probe: ForgettingProbe | None = None,
        probe_interval: int | None = None,
        resume_step: int = 0,
        main_process: bool = True,
        print_events: bool = True,
        annotate: Callable[[list[Event], Any], list[Event]] | None = None,
    ) -> None:
        self.monitor = monitor
        # names a spike's rows (`trace.StepTracer.annotate`): events, the model -> the events with their rows
        self.annotate = annotate
        self.stage_dir = stage_dir
        self.events_path = stage_dir / EVENTS_FILE
        self.probes_path = stage_dir / PROBES_FILE
        self.probe = probe
        self.probe_interval = probe_interval
        self.main_process = main_process
        self.print_events = print_events
        self.request: Event | None = None
        self.probe_seconds = 0.0
        self.monitor_seconds = 0.0
        self.resume_step = resume_step
        # the history up to the resumed step, replayed on every process so that all reach the same decisions
        probes = [p for p in read_rows(self.probes_path) if p["step"] <= resume_step]
        metrics = [r for r in read_rows(stage_dir / "metrics.jsonl") if r.get("step", 0) <= resume_step]
        if main_process:
            attempt = monitor.attempt
            kept = [
                e
                for e in read_rows(self.events_path)
                if e.get("attempt", 0) < attempt or e["step"] <= resume_step
            ]
            if self.events_path.exists():
                rewrite_rows(self.events_path, kept)
            if self.probes_path.exists():
                rewrite_rows(self.probes_path, probes)
        monitor.replay(metrics, probes)
        self._probed_steps = {p["step"] for p in probes}
        self.general_accuracy: dict[int, float] = {}
        self.general_items: dict[int, str] = {}  # each probe's items (1 = right), for paired comparisons
        for row in probes:
            self._keep_accuracy(row["step"], row.get("general_accuracy"), row.get("items"))

    def _keep_accuracy(self, step: int, accuracy: Any, items: str | None = None) -> None:
        if is_finite(accuracy):
            self.general_accuracy[step] = accuracy
        if items:
            self.general_items[step] = items

    # -- streams ------------------------------------------------------------------------------------------
    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if state.global_step == 0:
            self._run_probe(state.global_step, kw.get("model"), control)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        if not logs:
            return
        started = time.perf_counter()
        events = self.monitor.observe(state.global_step, logs)
        if events and self.annotate is not None:
            events = self.annotate(events, kw.get("model"))
        self._handle(events, control)
        self.monitor_seconds += time.perf_counter() - started

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        step = state.global_step
        if self.probe_interval and (step % self.probe_interval == 0 or step >= state.max_steps):
            self._run_probe(step, kw.get("model"), control)
        if self.request is not None:  # keep the decision if a later flag would undo it
            self._enforce(self.request, control)

    def probe_at(self, step: int, model: Any, control: TrainerControl) -> None:
        """Run the forgetting probe at `step` now, off its interval (a sweep's rung); once per step."""
        self._run_probe(step, model, control)

    def _run_probe(self, step: int, model: Any, control: TrainerControl) -> None:
        if self.probe is None or model is None or step in self._probed_steps:
            return
        self._probed_steps.add(step)
        started = time.perf_counter()
        result = self.probe.measure(model)
        self.probe_seconds += time.perf_counter() - started
        if self.main_process:
            append_line(self.probes_path, {"step": step, "attempt": self.monitor.attempt, **result})
        self._keep_accuracy(step, result["general_accuracy"], result.get("items"))
        self._handle(self.monitor.observe_probe(step, result["general_accuracy"], result["kl"]), control)

    # -- policy -------------------------------------------------------------------------------------------
    def record(
        self, events: list[Event], control: TrainerControl | None = None, *, echo: bool = True
    ) -> None:
        """Events from outside the detectors (e.g. the reward client's faults and failure policy): written,
        printed (unless `echo` is False) and enforced like the detectors' (a `stop` ends the stage at the next
        step end)."""
        self.monitor.events += events
        self._handle(events, control or TrainerControl(), echo=echo)

    def _handle(self, events: list[Event], control: TrainerControl, *, echo: bool = True) -> None:
        for event in events:
            if self.main_process:
                append_line(self.events_path, event.to_json())
                if self.print_events and echo:
                    _print(event.render())
        decisive = self.monitor.decision(events)
        if decisive is not None and self.request is None:
            self.request = decisive
        if self.request is not None:
            self._enforce(self.request, control)

    @staticmethod
    def _enforce(event: Event, control: TrainerControl) -> None:
        control.should_training_stop = True
        if event.action == "stop":
            control.should_save = True  # 'save and end the stage'
        else:  # rollback: the current weights are bad; do not publish them as a checkpoint
            control.should_save = False
            control.should_evaluate = False

    def summary(self) -> dict[str, Any]:
        rows = (
            read_rows(self.events_path) if self.main_process else [e.to_json() for e in self.monitor.events]
        )
        out = summarize(rows)
        out["probe_seconds"] = round(self.probe_seconds, 3)
        out["monitor_seconds"] = round(self.monitor_seconds, 3)
        return out


def _print(text: str) -> None:
    try:
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)
    except Exception:  # pragma: no cover - tqdm is a dependency; plain print as a fallback
        print(text, file=sys.stderr, flush=True)
