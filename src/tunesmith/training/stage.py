"""The shared stage machinery behind `cpt.py`, `sft.py` and `rft.py`: one stage, trained and exported.

No hand-written loop: the trainers are TRL's, the optimizer transformers' AdamW, the adapters PEFT's. Each
technique file defines a `Technique` (its datasets, its trainer, how its best checkpoint is chosen, what it
adds to the summary) and hands it to `run_stage`, which does the rest the same way for all: the playbook's
schedule (`schedule.py`), metrics, top-k checkpoint selection, atomic checkpoint publication, SIGTERM
handling, monitoring with rollbacks, and the export of the best checkpoint as the next stage's input (LoRA
adapters merged into the weights). This module imports no technique.

Stage folder (`runs/<name>/<stage>/`)::

    config.json        the resolved stage config (recipe values + derived numbers)
    data/              train.jsonl (mixed, in training order), validation.jsonl, mix.json (realized mix)
    schedule.jsonl     the LR planned for every optimizer step
    metrics.jsonl      per step: loss, grad_norm, lr, tokens/s, elapsed; eval_loss at validations
    checkpoints/       checkpoint-N (COMPLETE marker once fully written); top-k by the selection metric + latest
    checkpoints.json   step, validation loss, selection metric and general probe of each kept checkpoint
    best.json          the best checkpoint
    best/              the best model, ready to load (LoRA merged; adapter/ holds the adapter alone)
    events.jsonl       monitoring events (detector, step, action, likely causes); see training/monitor.py
    trace.jsonl        per optimizer step: the train.jsonl rows it trained on (spike tracing, training/trace.py)
    probes.jsonl       the forgetting probe: general accuracy and KL to the start model, every K steps
    monitor.json       attempts and rollbacks (a rollback restores the last good checkpoint, lower LR)
    result.json        written last: the stage is done (or stopped by the monitor), with an events summary
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from accelerate import PartialState
from transformers import Trainer, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

from tunesmith.errors import UserError
from tunesmith.models.loading import load_model, load_tokenizer, stored_dtype
from tunesmith.monitoring import Event, Monitor, MonitorSettings, RunContext
from tunesmith.recipe.resolve import StagePlan
from tunesmith.recipe.schema import ResolvedConfig, ResolvedStage
from tunesmith.runs import (
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    read_json_record,
    read_jsonl_record,
)
from tunesmith.threads import configure_threads
from tunesmith.training.callbacks import (
    INDEX_FIX,
    METRICS_FIX,
    CheckpointKeeper,
    FinalValidation,
    MetricsLogger,
    ProgressBar,
    Selection,
    StopOnSignal,
    checkpoint_problem,
    checkpoint_step,
    complete_checkpoints,
    remove_incomplete_checkpoints,
)
from tunesmith.training.checkpointing import CheckpointingDecision, decide
from tunesmith.training.data import StageDataFiles
from tunesmith.training.monitor import (
    EVENTS_FILE,
    ForgettingProbe,
    MonitorCallback,
    load_state,
    lr_scale_at,
    rewrite_rows,
    save_state,
)
from tunesmith.training.schedule import ApplyLRFactor, LRFactor, Schedule
from tunesmith.training.trace import StepTracer, suspect_rows

RESUMABLE_STOPS = ("reward_endpoint",)
"""Monitor stops caused by infrastructure, not by the training itself: `train --resume` continues them."""


@dataclass
class StageRun:
    """Everything one stage needs, already resolved."""

    recipe: ResolvedConfig
    stage: ResolvedStage
    plan: StagePlan
    stage_dir: Path
    input_ref: str | Path
    data: StageDataFiles
    quiet: bool = False
    report_to: list[str] = field(default_factory=list)
    recipe_dir: Path | None = None  # relative data/reward/schema paths resolve against the recipe's folder
    # extra trainer callbacks, built per attempt from the monitor and the selection (a sweep's pruner)
    callbacks: tuple[Callable[[MonitorCallback, Selection], TrainerCallback], ...] = ()


@dataclass
class StageResult:
    name: str
    stage_dir: Path
    best_dir: Path
    completed: bool  # False when stopped by a signal (resume continues it)
    summary: dict[str, Any]


# --------------------------------------------------------------------------------------------- technique


@dataclass
class Datasets:
    """A stage's training and validation datasets, as its trainer takes them."""

    train: Any
    validation: Any | None

    @property
    def has_validation(self) -> bool:
        return self.validation is not None

    @classmethod
    def from_stage_files(cls, run: StageRun) -> Datasets:
        """The stage's mixed train.jsonl (in training order) and validation.jsonl, as Hugging Face datasets
        (cached in the stage folder)."""
        import datasets

        if run.quiet:
            datasets.disable_progress_bars()
        files = {"train": str(run.data.train_file)}
        if run.data.validation_file is not None:
            files["validation"] = str(run.data.validation_file)
        loaded = datasets.load_dataset(
            "json", data_files=files, cache_dir=str(run.stage_dir / "data" / ".hf-cache")
        )
        return cls(loaded["train"], loaded.get("validation"))


@dataclass
class TrainerInputs:
    """What `run_stage` hands a technique to build one attempt's trainer (a rollback starts a new one)."""

    model: Any
    args: dict[str, Any]  # trainer arguments shared by every technique (`base_args`)
    trainer_kwargs: dict[str, Any]  # processing_class, peft_config, callbacks, schedule, lr_factor
    monitor: MonitorCallback  # for events from outside the detectors (the RFT reward's faults)
    tracer: StepTracer | None = None  # spike tracing: techniques with `traces_rows` feed it (`trace.py`)


class Technique(Protocol):
    """What one technique adds to the shared stage machinery (`cpt.CPT`, `sft.SFT`, `rft.RFT`).

    `run_stage` calls `build_datasets` once, `build_trainer` once per attempt, then `close` and
    `summarize` once at the end."""

    name: str  # the recipe's `technique`
    selection: Selection  # how the best checkpoint is chosen
    watch: Literal["loss", "reward"]  # the curve the monitor's detectors read (`Monitor.watch`)
    batch_counts: str  # what `global_batch_size` counts: "examples" (CPT, SFT) or "prompts" (RFT)
    chunks_micro_batches: bool  # without checkpointing, its trainer runs a micro-batch in chunks of rows

    def build_datasets(self, run: StageRun, tokenizer: Any) -> Datasets: ...

    def build_trainer(self, run: StageRun, datasets: Datasets, inputs: TrainerInputs) -> Trainer: ...

    def close(self) -> None: ...

    def summarize(self, run: StageRun) -> dict[str, Any]: ...


# --------------------------------------------------------------------------------------------- processes


def process_state() -> PartialState:
    """accelerate's view of this process (the same singleton the trainer sets up, with the same device
    choice as `base_args`'s `use_cpu`)."""
    return PartialState(cpu=not torch.cuda.is_available())


def world_size() -> int:
    return process_state().num_processes


def is_main_process() -> bool:
    return process_state().is_main_process


def barrier() -> None:
    """Wait for every process (nothing with one)."""
    process_state().wait_for_everyone()


# --------------------------------------------------------------------------------------------- trainer blocks


def schedule_for(stage: ResolvedStage, plan: StagePlan) -> Schedule:
    hp = stage.hyperparameters
    return Schedule(
        lr=hp.lr,
        min_lr=hp.min_lr,
        warmup_steps=hp.warmup_steps,
        constant_steps=hp.constant_steps,
        total_steps=plan.numbers["total_steps"],
        decay=hp.decay,
    )


def gradient_accumulation(run: StageRun, batch_counts: str = "examples") -> int:
    """global_batch_size / (micro_batch_size x processes); a one-line error when it does not divide."""
    hp = run.stage.hyperparameters
    processes = world_size()
    per_step = hp.micro_batch_size * processes
    if hp.global_batch_size % per_step:
        what = f" ({batch_counts} per step)" if batch_counts != "examples" else ""
        raise UserError(
            f"stage {run.stage.name}: global_batch_size {hp.global_batch_size}{what} is not divisible by "
            f"micro_batch_size {hp.micro_batch_size} x {processes} processes — change micro_batch_size or the "
            "process count"
        )
    return hp.global_batch_size // per_step


def checkpointing_decision(run: StageRun, technique: Technique) -> CheckpointingDecision:
    """Whether the stage recomputes activations (`checkpointing.decide`, on this process's device)."""
    return decide(
        run.stage.hyperparameters.gradient_checkpointing,
        torch.cuda.is_available(),
        world_size(),
        chunked=technique.chunks_micro_batches,
    )


def base_args(run: StageRun, technique: Technique, has_validation: bool, resuming: bool) -> dict[str, Any]:
    """Trainer arguments shared by every technique (optimizer, logging, validation, saving, devices)."""
    hp = run.stage.hyperparameters
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    interval = hp.val_check_interval
    return dict(
        output_dir=str(run.stage_dir / "checkpoints"),
        max_steps=run.plan.numbers["total_steps"],
        learning_rate=hp.lr,
        weight_decay=hp.weight_decay,
        adam_beta1=hp.adam_beta1,
        adam_beta2=hp.adam_beta2,
        max_grad_norm=hp.grad_clip,
        lr_scheduler_type="constant",  # replaced by the playbook schedule in PlaybookSchedule.create_scheduler
        seed=hp.seed,
        data_seed=hp.seed,
        logging_steps=1,
        logging_first_step=True,
        eval_strategy="steps" if has_validation else "no",
        eval_on_start=has_validation and not resuming,  # the starting point's validation, for comparison
        eval_steps=interval if has_validation else None,
        save_strategy="steps",
        save_steps=interval,
        save_total_limit=None,  # CheckpointKeeper keeps the top-k by the selection metric
        report_to=run.report_to or "none",
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=bf16,
        ddp_backend=("nccl" if cuda else "gloo") if world_size() > 1 else None,
        dataloader_num_workers=0,
        gradient_checkpointing=checkpointing_decision(run, technique).checkpointing,
        save_only_model=False,
        gradient_accumulation_steps=gradient_accumulation(run, technique.batch_counts),
    )


def peft_config(stage: ResolvedStage) -> Any:
    if stage.mode != "lora":
        return None
    from peft import LoraConfig

    lora = stage.hyperparameters.lora
    return LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def count_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def run_context(run: StageRun, schedule: Schedule) -> RunContext:
    """The plain facts the monitor's diagnosis refers to; the LR deviation is computed as the lint rule
    `lr-deviates-while-mixing` does (lr / the family default for technique x mode x checkpoint)."""
    from tunesmith.advisor.rules import default_for, input_checkpoints, mixing_on
    from tunesmith.recipe.resolve import ResolvedRecipe, model_size_class

    recipe, stage, hp = run.recipe, run.stage, run.stage.hyperparameters
    resolved = ResolvedRecipe(recipe, {}, [], model_size_class(recipe.model).name)
    index = next((i for i, s in enumerate(recipe.stages) if s is stage), 0)
    try:
        default_lr = default_for(resolved, index, "hyperparameters.lr")
        checkpoint = input_checkpoints(resolved)[index]
    except Exception:  # a stage outside its recipe (tests): no default to compare with
        default_lr, checkpoint = None, None
    general_percent = 100 - stage.data_mixing.customer_percent if mixing_on(stage) else 0.0
    try:
        train_file = str(run.data.train_file.relative_to(run.stage_dir))
    except ValueError:
        train_file = str(run.data.train_file)
    return RunContext(
        stage=stage.name,
        technique=stage.technique,
        mode=stage.mode,
        lr=hp.lr,
        default_lr=default_lr,
        general_percent=general_percent,
        checkpoint=checkpoint,
        warmup_steps=hp.warmup_steps,
        total_steps=schedule.total_steps,
        grad_clip=hp.grad_clip,
        global_batch_size=hp.global_batch_size,
        train_file=train_file,
        lora_alpha=hp.lora.alpha if hp.lora is not None else None,
        kl_coef=stage.rft.kl_coef if stage.rft is not None else None,
    )


def _write_schedule(stage_dir: Path, factor: LRFactor) -> None:
    atomic_write_text(
        stage_dir / "schedule.jsonl",
        "".join(
            json.dumps({"step": s, "lr": factor.lr_at(s)}) + "\n"
            for s in range(factor.schedule.total_steps + 1)
        ),
    )


def rollback_to(stage_dir: Path, step: int, attempt: int | None, selection: Selection) -> None:
    """Discard everything after optimizer step `step`: later checkpoints (also from the index and best.json),
    and metrics rows (kept as `metrics.attempt-<attempt>.jsonl` for the record, unless `attempt` is None)."""
    later = [p for p in complete_checkpoints(stage_dir / "checkpoints") if checkpoint_step(p) > step]
    discard_checkpoints(stage_dir, later, selection)
    metrics = stage_dir / "metrics.jsonl"
    if metrics.exists():
        if attempt is not None:
            shutil.copy2(metrics, stage_dir / f"metrics.attempt-{attempt}.jsonl")
        rows = read_jsonl_record(metrics, fix=METRICS_FIX)
        # from scratch, the start's validation is run again (eval_on_start): drop its old row too
        rewrite_rows(metrics, [r for r in rows if r.get("step", 0) <= step and (step > 0 or "loss" in r)])


def discard_checkpoints(stage_dir: Path, paths: list[Path], selection: Selection) -> None:
    """Delete checkpoint folders, drop them from the index (checkpoints.json) and re-derive best.json."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    index_path = stage_dir / "checkpoints.json"
    names = {p.name for p in paths}
    if index_path.exists():
        index = read_json_record(index_path, fix=INDEX_FIX)
        atomic_write_json(index_path, {k: v for k, v in index.items() if k not in names})
    keeper = CheckpointKeeper(stage_dir, stage_dir / "checkpoints", 1, selection=selection)
    best = keeper.best()
    if best is not None:
        atomic_write_json(stage_dir / "best.json", best)
    elif (stage_dir / "best.json").exists():
        (stage_dir / "best.json").unlink()


def _monitor_settings(stage: ResolvedStage) -> MonitorSettings:
    return MonitorSettings.from_spec(getattr(stage, "monitoring", None))


# --------------------------------------------------------------------------------------------- run_stage


@dataclass
class Attempt:
    """One `trainer.train()` call: a stage has one, plus one per rollback."""

    trainer: Trainer
    keeper: CheckpointKeeper
    watcher: MonitorCallback
    stopper: StopOnSignal
    trainable: int
    total: int
    seconds: float = 0.0

    def rollback_request(self) -> Event | None:
        """The monitor's rollback request that ended this attempt (None: the stage is over)."""
        request = self.watcher.request
        if request is None or request.action != "rollback" or self.stopper.received is not None:
            return None
        return request

    def stop_request(self) -> Event | None:
        request = self.watcher.request
        return request if request is not None and request.action == "stop" else None

    def finished(self, total_steps: int) -> bool:
        """Trained to the last step, stopped by neither a signal nor the monitor."""
        return (
            self.stopper.received is None
            and self.stop_request() is None
            and self.trainer.state.global_step >= total_steps
        )


def run_stage(run: StageRun, technique: Technique) -> StageResult:
    """Train one stage (resuming from its last complete checkpoint if there is one) and export its best.

    The monitor watches every step (`tunesmith.training.monitor`): a `stop` event ends the stage after saving
    a checkpoint; a `rollback` event restores the last complete checkpoint at or before the event's onset and
    trains on from there with the LR scaled by `rollback_lr_scale` (at most `max_rollbacks` times; the
    attempts and scales are kept in monitor.json, so a resume after a crash continues the scaled run).
    """
    assert run.stage.technique == technique.name, (run.stage.technique, technique.name)
    if run.quiet:
        _quiet_libraries()
    configure_threads(announce=not run.quiet)
    if not run.quiet and is_main_process():
        print(f"{run.stage.name}: {checkpointing_decision(run, technique).describe()}", flush=True)
    settings = _monitor_settings(run.stage)
    state = _recover(run, technique.selection)
    tokenizer = load_tokenizer(run.input_ref)
    datasets = technique.build_datasets(run, tokenizer)
    schedule = schedule_for(run.stage, run.plan)
    context = replace(run_context(run, schedule), vocab_size=len(tokenizer))
    total_seconds = 0.0
    while True:
        attempt = _train_attempt(run, technique, datasets, tokenizer, schedule, context, settings, state)
        total_seconds += attempt.seconds
        request = attempt.rollback_request()
        if request is None:
            break
        _roll_back(run, technique.selection, settings, state, request)
        barrier()
    technique.close()
    completed = attempt.finished(schedule.total_steps)
    summary = _summary(run, technique, attempt, schedule, state, total_seconds)
    barrier()
    if is_main_process():
        _publish(run, attempt, summary, completed)
    barrier()
    name = run.stage.name
    return StageResult(name, run.stage_dir, run.stage_dir / "best", completed, summary)


def _quiet_libraries() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("trl").setLevel(logging.ERROR)


def _recover(run: StageRun, selection: Selection) -> dict[str, Any]:
    """The monitor's state (monitor.json); on the main process, finish a rollback a crash interrupted and
    remove checkpoints a crash left half-written."""
    state = load_state(run.stage_dir)
    if is_main_process():
        if state.get("pending_rollback_to") is not None:  # a crash in the middle of a rollback: finish it
            rollback_to(run.stage_dir, state["pending_rollback_to"], state["attempt"] - 1, selection)
            state["pending_rollback_to"] = None
            save_state(run.stage_dir, state)
        removed = remove_incomplete_checkpoints(run.stage_dir / "checkpoints")
        if removed and not run.quiet:
            print(f"{run.stage.name}: removed incomplete checkpoints left by a crash: {', '.join(removed)}")
        _drop_damaged_checkpoints(run, selection)
    return state


def _drop_damaged_checkpoints(run: StageRun, selection: Selection) -> None:
    """Complete-marked checkpoints whose files were since emptied, cut short or made unreadable are removed
    (with a warning); when the latest is one of them, the stage resumes from the newest sound one (its
    later metrics rows are dropped, as after a rollback)."""
    checkpoints = complete_checkpoints(run.stage_dir / "checkpoints")
    damaged = {path: problem for path in checkpoints if (problem := checkpoint_problem(path))}
    if not damaged:
        return
    sound = [p for p in checkpoints if p not in damaged]
    fallback = sound[-1] if sound else None
    for path, problem in damaged.items():
        print(
            f"{run.stage.name}: warning: {path.name} is damaged ({problem}); it is removed", file=sys.stderr
        )
    if checkpoints[-1] in damaged:
        to_step = checkpoint_step(fallback) if fallback else 0
        where = fallback.name if fallback else "the start of the stage (no sound checkpoint is left)"
        print(f"{run.stage.name}: warning: resuming from {where} instead", file=sys.stderr, flush=True)
        rollback_to(run.stage_dir, to_step, None, selection)
    discard_checkpoints(run.stage_dir, [p for p in damaged if p.exists()], selection)


def _train_attempt(
    run: StageRun,
    technique: Technique,
    datasets: Datasets,
    tokenizer: Any,
    schedule: Schedule,
    context: RunContext,
    settings: MonitorSettings,
    state: dict[str, Any],
) -> Attempt:
    """Build a trainer that resumes from the last complete checkpoint (if any) and train until the end, a
    signal or a monitor decision."""
    stage, stage_dir = run.stage, run.stage_dir
    checkpoints = complete_checkpoints(stage_dir / "checkpoints")
    resume_path = checkpoints[-1] if checkpoints else None
    resume_step = checkpoint_step(resume_path) if resume_path else 0
    factor = LRFactor(schedule, state["lr_segments"])
    if is_main_process():
        _write_schedule(stage_dir, factor)
    set_seed(stage.hyperparameters.seed)  # LoRA initialization and everything after it are seeded
    model = load_model(run.input_ref, dtype=torch.float32)
    tracer = _tracer(run, technique, state, resume_step)
    watcher = _monitor_callback(run, technique, settings, context, state, tokenizer, resume_step, tracer)
    # selection reads the probe results the monitor measures at on_step_end, before the trainer saves
    keeper = CheckpointKeeper(
        stage_dir,
        stage_dir / "checkpoints",
        stage.hyperparameters.save_top_k,
        max_general_drop=_selection_drop(settings),
        selection=technique.selection,
        general_probe=watcher.general_accuracy,
    )
    stopper = StopOnSignal().install()
    callbacks = [
        MetricsLogger(stage_dir / "metrics.jsonl", resume_step=resume_step) if is_main_process() else None,
        keeper,
        FinalValidation(datasets.has_validation),
        # the bar before the stopper: a validation batch that completes is shown before a signal abandons the rest
        ProgressBar(f"{stage.name} ({stage.technique}, {stage.mode})", run.quiet),
        stopper,
        ApplyLRFactor(),
        *(make(watcher, technique.selection) for make in run.callbacks),
        tracer,  # before the watcher: a step's rows are recorded when its events are annotated
        watcher,  # last: its stop/rollback decision overrides the flags set before it
    ]
    inputs = TrainerInputs(
        model=model,
        args=base_args(run, technique, datasets.has_validation, resuming=resume_path is not None),
        trainer_kwargs=dict(
            processing_class=tokenizer,
            peft_config=peft_config(stage),
            callbacks=[c for c in callbacks if c is not None],
            schedule=schedule,
            lr_factor=factor,
            lora_plus_ratio=stage.hyperparameters.lora.plus_lr_ratio if stage.mode == "lora" else 1.0,
        ),
        monitor=watcher,
        tracer=tracer,
    )
    trainer = technique.build_trainer(run, datasets, inputs)
    trainer.remove_callback(ProgressCallback)  # replaced by ProgressBar (ETA + validation lines)
    trainer.remove_callback(PrinterCallback)  # metrics go to metrics.jsonl, not the terminal
    trainable, total = count_parameters(trainer.model)
    if not run.quiet and is_main_process():
        rollbacks = len(state["rollbacks"])
        print(_start_line(run, trainable, total, schedule, resume_path, factor, rollbacks), flush=True)
    started = time.monotonic()
    try:
        trainer.train(resume_from_checkpoint=str(resume_path) if resume_path else None)
    finally:
        stopper.uninstall()
        if tracer is not None:
            tracer.close()
    return Attempt(trainer, keeper, watcher, stopper, trainable, total, time.monotonic() - started)


def _start_line(
    run: StageRun,
    trainable: int,
    total: int,
    schedule: Schedule,
    resume_path: Path | None,
    factor: LRFactor,
    rollbacks: int,
) -> str:
    """The stage's first line: what trains from what, how many steps, from where, at which LR scale."""
    stage = run.stage
    where = f", resuming from {resume_path.name}" if resume_path else ""
    scale = factor.rollback_scale(checkpoint_step(resume_path) if resume_path else 0)
    scaled = f", LR x{scale:.3g} after {rollbacks} rollback(s)" if rollbacks else ""
    return (
        f"{stage.name}: {stage.technique} {stage.mode} from {run.input_ref}: {trainable:,} of {total:,} "
        f"parameters trainable ({100 * trainable / total:.1f}%), {schedule.total_steps} steps{where}{scaled}"
    )


def _roll_back(
    run: StageRun, selection: Selection, settings: MonitorSettings, state: dict[str, Any], request: Event
) -> None:
    """Record the rollback in the monitor's state (the last complete checkpoint at or before the onset —
    none: the stage's start — and the scaled LR from there on) and, on the main process, restore it."""
    onset = request.onset_step if request.onset_step is not None else request.step - 1
    good = [
        checkpoint_step(p)
        for p in complete_checkpoints(run.stage_dir / "checkpoints")
        if checkpoint_step(p) <= onset
    ]
    to_step = max(good) if good else 0
    scale = settings.rollback_lr_scale ** (len(state["rollbacks"]) + 1)
    state["rollbacks"].append(
        {
            "attempt": state["attempt"],
            "detector": request.detector,
            "detected_step": request.step,
            "onset_step": request.onset_step,
            "to_step": to_step,
            "lr_scale": scale,
        }
    )
    state["lr_segments"] = [s for s in state["lr_segments"] if s[0] < to_step] + [[to_step, scale]]
    skipped = suspect_rows(request) if settings.skip_data else []
    if skipped:  # `monitoring.skip_data`: the rows the event named as outliers are left out from now on
        state["skipped_rows"] = sorted(set(state.get("skipped_rows", [])) | set(skipped))
        state["rollbacks"][-1]["skipped_rows"] = [i + 1 for i in skipped]
    state["attempt"] += 1
    state["pending_rollback_to"] = to_step
    if is_main_process():
        save_state(run.stage_dir, state)
        rollback_to(run.stage_dir, to_step, state["attempt"] - 1, selection)
        state["pending_rollback_to"] = None
        save_state(run.stage_dir, state)
        message = (
            f"{run.stage.name}: rollback {len(state['rollbacks'])}/{settings.max_rollbacks} after {request.detector} "
            f"at step {request.step}: restoring step {to_step}, LR x{scale:g}"
            + (f", skipping train.jsonl row(s) {', '.join(str(i + 1) for i in skipped)}" if skipped else "")
        )
        print(message, file=sys.stderr, flush=True)


def _summary(
    run: StageRun,
    technique: Technique,
    attempt: Attempt,
    schedule: Schedule,
    state: dict[str, Any],
    train_seconds: float,
) -> dict[str, Any]:
    """result.json's content: what ran, how it ended, the best checkpoint, losses, monitoring events."""
    stage, metrics = run.stage, run.stage_dir / "metrics.jsonl"
    stopped = attempt.stop_request()
    events = attempt.watcher.summary()
    events["rollbacks"] = state["rollbacks"]
    summary: dict[str, Any] = {
        "stage": stage.name,
        "technique": stage.technique,
        "mode": stage.mode,
        "input": str(run.input_ref),
        "steps": attempt.trainer.state.global_step,
        "planned_steps": schedule.total_steps,
        "trainable_parameters": attempt.trainable,
        "total_parameters": attempt.total,
        "train_seconds": round(train_seconds, 2),
        "best": attempt.keeper.best(),
        "final_train_loss": _last(metrics, "loss"),
        "initial_eval_loss": _first(metrics, "eval_loss"),
        "final_eval_loss": _last(metrics, "eval_loss"),
        "stopped_by_signal": attempt.stopper.received,
        "stopped_by_monitor": (
            {k: getattr(stopped, k) for k in ("detector", "step", "message")} if stopped is not None else None
        ),
        "events": events,
        # an infrastructure stop (the reward endpoint failed) is not a verdict on the run: the stage is left
        # unfinished (no result.json), so `train --resume` continues it once the endpoint is back
        "resumable": stopped is not None and stopped.detector in RESUMABLE_STOPS,
    }
    checkpointing = checkpointing_decision(run, technique)
    summary["gradient_checkpointing"] = {
        "on": checkpointing.checkpointing,
        "reason": checkpointing.describe(),
    }
    summary.update(technique.summarize(run))
    return summary


def _publish(run: StageRun, attempt: Attempt, summary: dict[str, Any], completed: bool) -> None:
    """Print the monitoring report; export the best checkpoint and write result.json when the stage is done
    (completed, or stopped by the monitor for a reason a resume would not cure)."""
    events = summary["events"]
    if not run.quiet or events["total"]:
        print(_events_report(run.stage.name, events), file=sys.stderr, flush=True)
    best = attempt.keeper.best()
    stopped = attempt.stop_request() is not None
    if completed or (stopped and not summary["resumable"] and best is not None):
        # the input's tokenizer as loaded: the trainers set a missing pad token to eos on theirs
        change = export_best(run, best, load_tokenizer(run.input_ref), run.stage_dir / "best")
        summary["weights_change"] = change
        if not change["tensors_changed"]:
            print(
                f"{run.stage.name}: the stage did not move the weights: best/ ({best['checkpoint']}) equals its "
                f"input {run.input_ref} in {change['dtype']}"
                + ("" if best.get("moved", True) else " (every update before it ran at LR 0)")
                + " — train longer or at a higher LR (see `tunesmith plan`'s size class)",
                file=sys.stderr,
                flush=True,
            )
        atomic_write_json(run.stage_dir / "result.json", summary)


def _monitor_callback(
    run: StageRun,
    technique: Technique,
    settings: MonitorSettings,
    context: RunContext,
    state: dict[str, Any],
    tokenizer: Any,
    resume_step: int,
    tracer: StepTracer | None = None,
) -> MonitorCallback:
    scale = lr_scale_at(resume_step, state["lr_segments"])
    monitor = Monitor(
        settings,
        replace(context, lr_scale=scale),
        rollbacks_done=len(state["rollbacks"]),
        attempt=state["attempt"],
        watch=technique.watch,
    )
    probe = None
    interval = settings.probe_interval or run.stage.hyperparameters.val_check_interval
    # multi-process: every rank must reach the same decisions, and the probe runs on one rank only
    if settings.probes and world_size() == 1:
        probe = ForgettingProbe(
            tokenizer, settings.probe_items_per_category, run.stage_dir, model_ref=run.input_ref
        )
    return MonitorCallback(
        monitor,
        run.stage_dir,
        probe=probe,
        probe_interval=interval if probe is not None else None,
        resume_step=resume_step,
        main_process=is_main_process(),
        annotate=tracer.annotate if tracer is not None else None,
    )


def _tracer(
    run: StageRun, technique: Technique, state: dict[str, Any], resume_step: int
) -> StepTracer | None:
    """The spike tracer of techniques whose trainer reports each micro-batch's examples (`traces_rows`), in
    one process (each process would see its own share of a step); it skips the rows a rollback left out."""
    if not getattr(technique, "traces_rows", False) or world_size() > 1:
        return None
    return StepTracer(
        run.stage_dir,
        attempt=state["attempt"],
        resume_step=resume_step,
        main_process=is_main_process(),
        skip=frozenset(state.get("skipped_rows", [])),
    )


def _selection_drop(settings: Any) -> float | None:
    """The forgetting limit (0-1) that checkpoint selection respects: the forgetting detector's `max_drop`,
    unless monitoring or that detector is off."""
    if not settings.enabled or settings.policies.get("forgetting") == "off":
        return None
    return settings.make("forgetting").max_drop


def _events_report(name: str, events: dict[str, Any]) -> str:
    """The end-of-stage lines: events by detector and action, rollbacks, the decisive event."""
    if not events["total"]:
        return f"{name}: monitoring: no events"
    parts = [
        f"{detector} x{info['count']} (first at step {info['first_step']}; "
        + ", ".join(f"{a} {n}" for a, n in info["actions"].items())
        + ")"
        for detector, info in events["by_detector"].items()
    ]
    lines = [f"{name}: monitoring: {events['total']} event(s): " + "; ".join(parts)]
    for rb in events.get("rollbacks", []):
        lines.append(
            f"  rollback after {rb['detector']} at step {rb['detected_step']} -> step {rb['to_step']}, LR x{rb['lr_scale']:g}"
        )
    if events.get("first_intervention"):
        first = events["first_intervention"]
        lines.append(f"  first intervention: {first['action']} at step {first['step']} ({first['detector']})")
    lines.append(f"  details: {EVENTS_FILE} in the stage folder")
    return "\n".join(lines)


def _first(path: Path, key: str) -> float | None:
    if not path.exists():
        return None
    values = [row[key] for row in read_jsonl_record(path, fix=METRICS_FIX) if row.get(key) is not None]
    return values[0] if values else None


def _last(path: Path, key: str) -> float | None:
    if not path.exists():
        return None
    values = [row[key] for row in read_jsonl_record(path, fix=METRICS_FIX) if row.get(key) is not None]
    return values[-1] if values else None


def export_best(run: StageRun, best: dict[str, Any] | None, tokenizer: Any, best_dir: Path) -> dict[str, Any]:
    """Publish the best checkpoint as a loadable model folder (LoRA merged into the weights) in the dtype
    the stage's input is stored in (a bf16 start gives a bf16 `best/`). Returns how far it moved from the
    input, compared in that dtype (`weight_change`)."""
    assert best is not None, "a finished stage has at least one saved checkpoint"
    checkpoint = run.stage_dir / "checkpoints" / best["checkpoint"]
    dtype = stored_dtype(run.input_ref)
    with atomic_directory(best_dir) as tmp:
        if run.stage.mode == "lora":
            from peft import PeftModel

            base = load_model(run.input_ref, dtype=torch.float32)
            tuned = PeftModel.from_pretrained(base, str(checkpoint)).merge_and_unload()
            adapter = tmp / "adapter"
            adapter.mkdir()
            for name in ("adapter_config.json", "adapter_model.safetensors"):
                if (checkpoint / name).exists():
                    shutil.copy2(checkpoint / name, adapter / name)
        else:
            from transformers import AutoModelForCausalLM

            tuned = AutoModelForCausalLM.from_pretrained(
                checkpoint, dtype=torch.float32, trust_remote_code=False
            )
        tuned = tuned.to(dtype)
        change = weight_change(load_model(run.input_ref, dtype=dtype), tuned)
        tuned.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        keep_pad_token(tmp, tokenizer.pad_token_id)
        atomic_write_json(
            tmp / "tunesmith_best.json",
            {**best, "stage": run.stage.name, "input": str(run.input_ref), "weights_change": change},
        )
    return change


def keep_pad_token(folder: Path, pad_token_id: int | None) -> None:
    """Write the input's pad token id back into an exported model's configs. TRL's trainers pad a tokenizer
    without a pad token (Llama 3.x Instruct) with eos and set that id on the configs of the model they train;
    the fallback is a padding detail of the run, not a change to ship: a folder with pad = eos would have its
    eos masked out of the labels by collators that mask padding by id."""
    for name in ("config.json", "generation_config.json"):
        path = folder / name
        if not path.exists():
            continue
        config = json.loads(path.read_text(encoding="utf-8"))
        if pad_token_id is None and name == "generation_config.json":
            config.pop("pad_token_id", None)
        else:
            config["pad_token_id"] = pad_token_id
        atomic_write_json(path, config)


def weight_change(start: Any, tuned: Any) -> dict[str, Any]:
    """How many parameter tensors of `tuned` differ from `start` (same dtype), and the largest absolute
    change: 0 tensors changed means the stage left the weights as they were."""
    before = dict(start.named_parameters())
    changed, largest = 0, 0.0
    with torch.no_grad():
        for name, tensor in tuned.named_parameters():
            reference = before.get(name)
            if reference is None or reference.shape != tensor.shape:
                changed += 1
                continue
            delta = (tensor.detach().float() - reference.detach().float()).abs().max().item()
            changed += delta > 0
            largest = max(largest, delta)
    return {
        "tensors_changed": changed,
        "tensors": sum(1 for _ in tuned.named_parameters()),
        "max_abs_change": largest,
        "dtype": str(tuned.dtype).removeprefix("torch."),
    }
