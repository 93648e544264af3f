"""Run one CPT or SFT stage with TRL's SFTTrainer (+ PEFT for LoRA): the shared block behind `cpt.py`/`sft.py`.

No hand-written loop: the trainer is TRL's, the optimizer transformers' AdamW, the adapters PEFT's. We add
the playbook's schedule (`schedule.py`), metrics, top-k checkpoint selection (`selection_metric`), atomic
checkpoint publication, SIGTERM handling, and the export of the best checkpoint as the next stage's input
(LoRA adapters merged into the weights).

Stage folder (`runs/<name>/<stage>/`)::

    config.json        the resolved stage config (recipe values + derived numbers)
    data/              train.jsonl (mixed, in training order), validation.jsonl, mix.json (realized mix)
    schedule.jsonl     the LR planned for every optimizer step
    metrics.jsonl      per step: loss, grad_norm, lr, tokens/s, elapsed; eval_loss at validations
    checkpoints/       checkpoint-N (COMPLETE marker once fully written); top-k by `selection_metric` + latest
    checkpoints.json   step, validation loss, selection metric and general probe of each kept checkpoint
    best.json          the best checkpoint
    best/              the best model, ready to load (LoRA merged; adapter/ holds the adapter alone)
    events.jsonl       monitoring events (detector, step, action, likely causes); see training/monitor.py
    probes.jsonl       the forgetting probe: general accuracy and KL to the start model, every K steps
    monitor.json       attempts and rollbacks (a rollback restores the last good checkpoint, lower LR)
    result.json        written last: the stage is done (or stopped by the monitor), with an events summary
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from trl import SFTConfig, SFTTrainer

from tunesmith.errors import UserError
from tunesmith.models.loading import load_model, load_tokenizer
from tunesmith.monitoring import Monitor, MonitorSettings, RunContext
from tunesmith.recipe.resolve import StagePlan
from tunesmith.recipe.schema import Recipe, Stage
from tunesmith.runs import atomic_directory, atomic_write_json, atomic_write_text
from tunesmith.training.callbacks import (
    CheckpointKeeper,
    FinalValidation,
    MetricsLogger,
    ProgressBar,
    StopOnSignal,
    checkpoint_step,
    complete_checkpoints,
    remove_incomplete_checkpoints,
)
from tunesmith.training.data import StageData
from tunesmith.training.monitor import (
    EVENTS_FILE,
    ForgettingProbe,
    MonitorCallback,
    load_state,
    lr_scale_at,
    read_rows,
    rewrite_rows,
    save_state,
)
from tunesmith.training.schedule import Schedule, lr_multiplier

GENERATION_MARKER = "{% generation %}"
RESUMABLE_STOPS = ("reward_endpoint",)
"""Monitor stops caused by infrastructure, not by the training itself: `train --resume` continues them."""


@dataclass
class StageRun:
    """Everything one stage needs, already resolved."""

    recipe: Recipe
    stage: Stage
    plan: StagePlan
    stage_dir: Path
    input_ref: str | Path
    data: StageData
    quiet: bool = False
    report_to: list[str] = field(default_factory=list)
    recipe_dir: Path | None = None  # relative data/reward/schema paths resolve against the recipe's folder


@dataclass
class StageResult:
    name: str
    stage_dir: Path
    best_dir: Path
    completed: bool  # False when stopped by a signal (resume continues it)
    summary: dict[str, Any]


class LRFactor:
    """The LR multiplier at optimizer step `step`: the playbook schedule's shape x the rollback scale of
    that step (1 until a rollback; `rollback_lr_scale`^n after the n-th). The scheduler gets it wrapped in a
    plain function: LambdaLR's state_dict stores (and on resume restores) the attributes of callable
    objects, which would bring back the segments saved in the checkpoint; it skips functions."""

    def __init__(self, schedule: Schedule, segments: list[list[float]] | None = None) -> None:
        self.schedule, self.segments = schedule, [list(s) for s in segments or []]

    def __call__(self, step: int) -> float:
        return lr_scale_at(step, self.segments) * lr_multiplier(step, schedule=self.schedule)

    def lr_at(self, step: int) -> float:
        return self.schedule.lr * self(step)


class PlaybookSchedule:
    """Trainer mixin: the playbook's warmup -> constant -> ramp-down schedule (scaled after rollbacks)."""

    def __init__(
        self, *args: Any, schedule: Schedule, lr_factor: LRFactor | None = None, **kwargs: Any
    ) -> None:
        self._tunesmith_schedule = schedule
        self._tunesmith_factor = lr_factor or LRFactor(schedule)
        super().__init__(*args, **kwargs)

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self.lr_scheduler is None:
            from torch.optim.lr_scheduler import LambdaLR

            factor = self._tunesmith_factor
            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, lambda step: factor(step))
            self._created_lr_scheduler = True
        return self.lr_scheduler


class _Trainer(PlaybookSchedule, SFTTrainer):
    """SFTTrainer with the playbook schedule (CPT and SFT stages)."""


class _ApplyLRFactor(TrainerCallback):
    """After a resume the optimizer's param groups hold the LR saved in the checkpoint; set them from the
    scheduler so the first resumed step already uses the (rollback-scaled) schedule."""

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        optimizer, scheduler = kw.get("optimizer"), kw.get("lr_scheduler")
        if optimizer is None or scheduler is None or not hasattr(scheduler, "lr_lambdas"):
            return
        for group, base, factor in zip(
            optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=False
        ):
            group["lr"] = base * factor(scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what the trainer logs


def schedule_for(stage: Stage, plan: StagePlan) -> Schedule:
    hp = stage.hyperparameters
    return Schedule(
        lr=hp.lr,
        min_lr=hp.min_lr,
        warmup_steps=hp.warmup_steps,
        constant_steps=hp.constant_steps,
        total_steps=plan.numbers["total_steps"],
        decay=hp.decay,
    )


def supports_assistant_masks(tokenizer: Any) -> bool:
    """Whether the chat template marks assistant turns (`{% generation %}`), as TRL's assistant_only_loss needs."""
    return GENERATION_MARKER in (getattr(tokenizer, "chat_template", None) or "")


def _to_prompt_completion(row: dict[str, Any]) -> dict[str, Any]:
    """Conversation -> (prompt = everything before the last assistant turn, completion = that turn), for
    chat templates without assistant markers: TRL then computes the loss on the completion only."""
    messages = row["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return {"prompt": messages[:last], "completion": [messages[last]]}


def _load_datasets(run: StageRun, tokenizer: Any) -> tuple[Any, Any, dict[str, Any]]:
    import datasets

    if run.quiet:
        datasets.disable_progress_bars()
    files = {"train": str(run.data.train_file)}
    if run.data.validation_file is not None:
        files["validation"] = str(run.data.validation_file)
    loaded = datasets.load_dataset(
        "json", data_files=files, cache_dir=str(run.stage_dir / "data" / ".hf-cache")
    )
    train, validation = loaded["train"], loaded.get("validation")
    loss_options: dict[str, Any] = {}
    if run.stage.technique == "sft":
        if supports_assistant_masks(tokenizer):
            loss_options["assistant_only_loss"] = True
        else:
            train = train.map(_to_prompt_completion, remove_columns=["messages"])
            if validation is not None:
                validation = validation.map(_to_prompt_completion, remove_columns=["messages"])
            loss_options["completion_only_loss"] = True
    return train, validation, loss_options


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _base_args(run: StageRun, has_validation: bool, resuming: bool) -> dict[str, Any]:
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
        save_total_limit=None,  # CheckpointKeeper keeps the top-k by `selection_metric`
        report_to=run.report_to or "none",
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=bf16,
        ddp_backend=("nccl" if cuda else "gloo") if world_size() > 1 else None,
        dataloader_num_workers=0,
        save_only_model=False,
    )


def gradient_accumulation(run: StageRun) -> int:
    """global_batch_size / (micro_batch_size x processes); a one-line error when it does not divide (for
    RFT the batch counts prompts)."""
    hp = run.stage.hyperparameters
    processes = world_size()
    per_step = hp.micro_batch_size * processes
    if hp.global_batch_size % per_step:
        what = " (prompts per step)" if run.stage.technique == "rft" else ""
        raise UserError(
            f"stage {run.stage.name}: global_batch_size {hp.global_batch_size}{what} is not divisible by "
            f"micro_batch_size {hp.micro_batch_size} x {processes} processes — change micro_batch_size or the "
            "process count"
        )
    return hp.global_batch_size // per_step


def _training_args(
    run: StageRun, loss_options: dict[str, Any], has_validation: bool, resuming: bool = False
) -> SFTConfig:
    hp = run.stage.hyperparameters
    return SFTConfig(
        **_base_args(run, has_validation, resuming),
        per_device_train_batch_size=hp.micro_batch_size,
        per_device_eval_batch_size=hp.micro_batch_size,
        gradient_accumulation_steps=gradient_accumulation(run),
        train_sampling_strategy="sequential",  # the mixture's order is the training order (quality tail)
        shuffle_dataset=False,
        max_length=hp.max_length,
        packing=False,
        include_num_input_tokens_seen="non_padding",
        **loss_options,
    )


def _peft_config(stage: Stage) -> Any:
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
    from tunesmith.models.catalog import FAMILIES
    from tunesmith.recipe.resolve import ResolvedRecipe

    recipe, stage, hp = run.recipe, run.stage, run.stage.hyperparameters
    family = FAMILIES.get(recipe.model.family) if recipe.model.family else None
    resolved = ResolvedRecipe(recipe, {}, [], family.size_class if family else "billion")
    index = next((i for i, s in enumerate(recipe.stages) if s is stage), 0)
    try:
        default_lr = default_for(resolved, index, "hyperparameters.lr")
        checkpoint = input_checkpoints(resolved)[index]
    except Exception:  # a stage outside its recipe (tests): no default to compare with
        default_lr, checkpoint = None, None
    general_percent = 100 - (stage.data_mixing.customer_percent or 0) if mixing_on(stage) else 0.0
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


def selection_metric(technique: str) -> dict[str, Any]:
    """How a stage's best checkpoint is chosen.

    - CPT: the lowest validation loss (perplexity is what CPT optimizes).
    - SFT: the highest validation token accuracy (TRL's `mean_token_accuracy`: the share of answer tokens
      the model ranks first). Measured on the tiny family (benchmarks/RESULTS.md, forgetting): the
      validation loss bottoms out mid-run and then rises as the model grows over-confident on the answers
      it gets wrong, while exact match keeps improving (domain 0.82 at the lowest-loss checkpoint, 0.935 at
      the last; validation loss 0.455 -> 0.623), and the lowest-loss pick sat in the mid-run general dip
      in most mixed runs measured; token accuracy peaks late, where exact match does.
    - RFT: the highest validation reward (GRPO's validation loss is a policy-gradient surrogate, not a
      quality measure).
    """
    if technique == "rft":
        return {"metric": "eval_reward", "higher_is_better": True}
    if technique == "sft":
        return {"metric": "eval_mean_token_accuracy", "higher_is_better": True}
    return {}


def rollback_to(stage_dir: Path, step: int, attempt: int, technique: str = "sft") -> None:
    """Discard everything after optimizer step `step`: later checkpoints (also from the index and best.json),
    and metrics/probe rows (kept as `metrics.attempt-<attempt>.jsonl` for the record)."""
    checkpoints_dir = stage_dir / "checkpoints"
    for path in complete_checkpoints(checkpoints_dir):
        if checkpoint_step(path) > step:
            shutil.rmtree(path, ignore_errors=True)
    index_path = stage_dir / "checkpoints.json"
    if index_path.exists():
        index = {k: v for k, v in json.loads(index_path.read_text()).items() if v["step"] <= step}
        atomic_write_json(index_path, index)
    keeper = CheckpointKeeper(stage_dir, checkpoints_dir, 1, **selection_metric(technique))
    best = keeper.best()
    if best is not None:
        atomic_write_json(stage_dir / "best.json", best)
    elif (stage_dir / "best.json").exists():
        (stage_dir / "best.json").unlink()
    metrics = stage_dir / "metrics.jsonl"
    if metrics.exists():
        shutil.copy2(metrics, stage_dir / f"metrics.attempt-{attempt}.jsonl")
        rows = read_rows(metrics)
        # from scratch, the start's validation is run again (eval_on_start): drop its old row too
        rewrite_rows(metrics, [r for r in rows if r.get("step", 0) <= step and (step > 0 or "loss" in r)])


def _monitor_settings(stage: Stage) -> MonitorSettings:
    return MonitorSettings.from_spec(getattr(stage, "monitoring", None))


def run_stage(run: StageRun) -> StageResult:
    """Train one stage (resuming from its last complete checkpoint if there is one) and export its best.

    The monitor watches every step (`tunesmith.training.monitor`): a `stop` event ends the stage after saving
    a checkpoint; a `rollback` event restores the last complete checkpoint at or before the event's onset and
    trains on from there with the LR scaled by `rollback_lr_scale` (at most `max_rollbacks` times; the
    attempts and scales are kept in monitor.json, so a resume after a crash continues the scaled run).
    """
    stage, stage_dir = run.stage, run.stage_dir
    if run.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        logging.getLogger("trl").setLevel(logging.ERROR)
    checkpoints_dir = stage_dir / "checkpoints"
    settings = _monitor_settings(stage)
    state = load_state(stage_dir)
    if is_main_process():
        if state.get("pending_rollback_to") is not None:  # a crash in the middle of a rollback: finish it
            rollback_to(stage_dir, state["pending_rollback_to"], state["attempt"] - 1, stage.technique)
            state["pending_rollback_to"] = None
            save_state(stage_dir, state)
        removed = remove_incomplete_checkpoints(checkpoints_dir)
        if removed and not run.quiet:
            print(f"{stage.name}: removed incomplete checkpoints left by a crash: {', '.join(removed)}")
    tokenizer = load_tokenizer(run.input_ref)
    rft_setup = None
    if stage.technique == "rft":
        from tunesmith.training.rft import RFTSetup

        rft_setup = RFTSetup(run)
        train, validation, loss_options = rft_setup.train, rft_setup.validation, {}
    else:
        train, validation, loss_options = _load_datasets(run, tokenizer)
    schedule = schedule_for(stage, run.plan)
    context = run_context(run, schedule)
    total_seconds = 0.0
    while True:
        resume_from = complete_checkpoints(checkpoints_dir)
        resume_path = resume_from[-1] if resume_from else None
        resume_step = int(resume_path.name.split("-")[-1]) if resume_path else 0
        factor = LRFactor(schedule, state["lr_segments"])
        if is_main_process():
            _write_schedule(stage_dir, factor)
        set_seed(stage.hyperparameters.seed)  # LoRA initialization and everything after it are seeded
        model = load_model(run.input_ref, dtype=torch.float32)
        resuming = resume_path is not None
        keeper = CheckpointKeeper(
            stage_dir,
            checkpoints_dir,
            stage.hyperparameters.save_top_k,
            max_general_drop=_selection_drop(settings),
            **selection_metric(stage.technique),
        )
        stopper = StopOnSignal().install()
        watcher = _monitor_callback(run, settings, context, state, tokenizer, resume_step)
        callbacks = [
            MetricsLogger(stage_dir / "metrics.jsonl", resume_step=resume_step)
            if is_main_process()
            else None,
            keeper,
            FinalValidation(validation is not None),
            stopper,
            ProgressBar(f"{stage.name} ({stage.technique}, {stage.mode})", run.quiet),
            _ApplyLRFactor(),
            watcher,
        ]
        common = dict(
            processing_class=tokenizer,
            peft_config=_peft_config(stage),
            callbacks=[c for c in callbacks if c is not None],
            schedule=schedule,
            lr_factor=factor,
        )
        if rft_setup is not None:
            rft_setup.attach(watcher)
            trainer = rft_setup.make_trainer(
                run, model=model, base_args=_base_args(run, validation is not None, resuming), **common
            )
        else:
            args = _training_args(run, loss_options, validation is not None, resuming=resuming)
            trainer = _Trainer(model=model, args=args, train_dataset=train, eval_dataset=validation, **common)
        trainer.remove_callback(ProgressCallback)  # replaced by ProgressBar (ETA + validation lines)
        trainer.remove_callback(PrinterCallback)  # metrics go to metrics.jsonl, not the terminal
        trainable, total = count_parameters(trainer.model)
        if not run.quiet and is_main_process():
            where = f", resuming from {resume_path.name}" if resume_path else ""
            scale = factor(resume_step) / max(lr_multiplier(resume_step, schedule=schedule), 1e-12)
            scaled = (
                f", LR x{scale:.3g} after {len(state['rollbacks'])} rollback(s)" if state["rollbacks"] else ""
            )
            print(
                f"{stage.name}: {stage.technique} {stage.mode} from {run.input_ref}: {trainable:,} of {total:,} "
                f"parameters trainable ({100 * trainable / total:.1f}%), {schedule.total_steps} steps{where}{scaled}",
                flush=True,
            )
        started = time.monotonic()
        try:
            trainer.train(resume_from_checkpoint=str(resume_path) if resume_path else None)
        finally:
            stopper.uninstall()
        total_seconds += time.monotonic() - started
        request = watcher.request
        if request is None or request.action != "rollback" or stopper.received is not None:
            break
        # rollback: the last complete checkpoint at or before the onset (none: the stage's start)
        onset = request.onset_step if request.onset_step is not None else request.step - 1
        good = [
            checkpoint_step(p) for p in complete_checkpoints(checkpoints_dir) if checkpoint_step(p) <= onset
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
        state["attempt"] += 1
        state["pending_rollback_to"] = to_step
        if is_main_process():
            save_state(stage_dir, state)
            rollback_to(stage_dir, to_step, state["attempt"] - 1, stage.technique)
            state["pending_rollback_to"] = None
            save_state(stage_dir, state)
            message = (
                f"{stage.name}: rollback {len(state['rollbacks'])}/{settings.max_rollbacks} after {request.detector} "
                f"at step {request.step}: restoring step {to_step}, LR x{scale:g}"
            )
            print(message, file=sys.stderr, flush=True)
        if world_size() > 1:
            torch.distributed.barrier()
    if rft_setup is not None:
        rft_setup.close()
    stopped = watcher.request if watcher.request is not None and watcher.request.action == "stop" else None
    completed = (
        stopper.received is None and stopped is None and trainer.state.global_step >= schedule.total_steps
    )
    best_dir = stage_dir / "best"
    events = watcher.summary()
    events["rollbacks"] = state["rollbacks"]
    summary: dict[str, Any] = {
        "stage": stage.name,
        "technique": stage.technique,
        "mode": stage.mode,
        "input": str(run.input_ref),
        "steps": trainer.state.global_step,
        "planned_steps": schedule.total_steps,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "train_seconds": round(total_seconds, 2),
        "best": keeper.best(),
        "final_train_loss": _last(stage_dir / "metrics.jsonl", "loss"),
        "initial_eval_loss": _first(stage_dir / "metrics.jsonl", "eval_loss"),
        "final_eval_loss": _last(stage_dir / "metrics.jsonl", "eval_loss"),
        "stopped_by_signal": stopper.received,
        "stopped_by_monitor": (
            {k: getattr(stopped, k) for k in ("detector", "step", "message")} if stopped is not None else None
        ),
        "events": events,
        # an infrastructure stop (the reward endpoint failed) is not a verdict on the run: the stage is left
        # unfinished (no result.json), so `train --resume` continues it once the endpoint is back
        "resumable": stopped is not None and stopped.detector in RESUMABLE_STOPS,
    }
    if rft_setup is not None:
        from tunesmith.training.rft import reward_summary

        summary.update(reward_summary(stage_dir / "metrics.jsonl"))
        summary["reward"] = rft_setup.summary()
    if world_size() > 1:
        torch.distributed.barrier()
    if is_main_process():
        if not run.quiet or events["total"]:
            print(_events_report(stage.name or stage.technique, events), file=sys.stderr, flush=True)
        if completed or (stopped is not None and not summary["resumable"] and keeper.best() is not None):
            export_best(run, keeper.best(), tokenizer, best_dir)
            atomic_write_json(stage_dir / "result.json", summary)
    if world_size() > 1:
        torch.distributed.barrier()
    return StageResult(stage.name or stage.technique, stage_dir, best_dir, completed, summary)


def _monitor_callback(
    run: StageRun,
    settings: MonitorSettings,
    context: RunContext,
    state: dict[str, Any],
    tokenizer: Any,
    resume_step: int,
) -> MonitorCallback:
    from dataclasses import replace

    scale = lr_scale_at(resume_step, state["lr_segments"])
    monitor = Monitor(
        settings,
        replace(context, lr_scale=scale),
        rollbacks_done=len(state["rollbacks"]),
        attempt=state["attempt"],
    )
    probe = None
    interval = settings.probe_interval or run.stage.hyperparameters.val_check_interval
    wants_probe = settings.enabled and any(
        settings.policies.get(name) != "off" for name in ("forgetting", "kl_drift")
    )
    # multi-process: every rank must reach the same decisions, and the probe runs on one rank only
    if wants_probe and world_size() == 1:
        probe = ForgettingProbe(tokenizer, settings.probe_items_per_category, run.stage_dir)
    return MonitorCallback(
        monitor,
        run.stage_dir,
        probe=probe,
        probe_interval=interval if probe is not None else None,
        resume_step=resume_step,
        main_process=is_main_process(),
        rft=run.stage.technique == "rft",
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
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get(key) is not None:
            return row[key]
    return None


def _last(path: Path, key: str) -> float | None:
    if not path.exists():
        return None
    value = None
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get(key) is not None:
            value = row[key]
    return value


def export_best(run: StageRun, best: dict[str, Any] | None, tokenizer: Any, best_dir: Path) -> None:
    """Publish the best checkpoint as a loadable model folder (LoRA merged into the weights)."""
    assert best is not None, "a finished stage has at least one saved checkpoint"
    checkpoint = run.stage_dir / "checkpoints" / best["checkpoint"]
    with atomic_directory(best_dir) as tmp:
        if run.stage.mode == "lora":
            from peft import PeftModel

            base = load_model(run.input_ref, dtype=torch.float32)
            merged = PeftModel.from_pretrained(base, str(checkpoint)).merge_and_unload()
            merged.save_pretrained(tmp)
            adapter = tmp / "adapter"
            adapter.mkdir()
            for name in ("adapter_config.json", "adapter_model.safetensors"):
                if (checkpoint / name).exists():
                    shutil.copy2(checkpoint / name, adapter / name)
        else:
            from transformers import AutoModelForCausalLM

            AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(
            tmp / "tunesmith_best.json", {**best, "stage": run.stage.name, "input": str(run.input_ref)}
        )
