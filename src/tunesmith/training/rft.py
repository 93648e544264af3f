"""RFT stage: GRPO through TRL's GRPOTrainer (+ PEFT for LoRA), scored by a `tunesmith.rewards` reward.

Everything around the trainer is the shared stage machinery (`tunesmith.training.stage`): the playbook's
LR schedule, metrics, top-k checkpoints (here by *validation reward*, highest first: GRPO's validation
loss is a policy-gradient surrogate, not a quality measure), atomic checkpoint publication, SIGTERM
handling, resume, monitoring (the RFT detectors: reward collapse, stuck-low reward, saturation, KL spike,
on the reward and KL streams instead of the loss; plus the general-skill probe) and the export of the best
checkpoint.

What is RFT-specific lives here (`RFT`, the stage's `Technique`):

- `grpo_config`: the recipe's `number_generation`, `max_new_tokens`, `temperature`, `kl_coef` and LR mapped
  onto TRL's GRPOConfig. `global_batch_size` counts *prompts* per optimizer step (the SMTJ semantics,
  [nova-rft-docs]): each step scores `global_batch_size x number_generation` samples.
- `RewardBridge`: TRL's reward-function call -> the reward contract's samples (`id`, `messages` ending
  with the generated assistant turn, its reasoning block removed, `reference_answer`, extra dataset
  fields) -> `RewardFunction.score`. Prompts are rendered with the recipe's thinking switch
  (`ResolvedConfig.reasoning`, TRL's `chat_template_kwargs`), as in SFT, the probes and the evaluation.
  A sample whose scoring failed (endpoint fault after retries) is recorded with score 0 and counted, and is
  handed to TRL as unscorable (None): TRL then gives it zero advantage, so an endpoint outage does not
  teach the policy to avoid whatever it happened to be saying. Past the reward's failure-rate threshold,
  the stage stops (saved, resumable) with the client's one-line message as a `reward_endpoint` event.
- General mixing: with `data_mixing` on an RFT stage, general prompts (with their answers as references)
  join the batches and are scored by `GENERAL_REWARD`, never by your reward (an endpoint for your domain
  need not understand them); the readiness probe looks at your prompts only.
- `RFTTrainer.drop_zero_variance_groups`: groups whose samples all scored the same carry no signal (zero
  advantage under group normalization) yet still count in the token-level loss normalization; DAPO's
  dynamic sampling drops them ([dapo-2025]). Dropped groups are masked out of the loss and their
  share is logged as `rft/dropped_group_share` (next to TRL's `frac_reward_zero_std`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from tunesmith.errors import UserError
from tunesmith.models.generate import answer_of
from tunesmith.models.templates import thinking_kwargs
from tunesmith.monitoring.events import Event
from tunesmith.recipe.resolve import RFT_MAX_VALIDATION_PROMPTS
from tunesmith.training.callbacks import Selection, StopOnSignal, ValidationInterrupted
from tunesmith.training.data import GENERAL_MARKER
from tunesmith.training.monitor import MonitorCallback, read_rows
from tunesmith.training.schedule import PlaybookSchedule
from tunesmith.training.stage import (
    Datasets,
    StageResult,
    StageRun,
    TrainerInputs,
    run_stage,
)

GENERAL_REWARD = "exact_match"
"""The verifier of general prompts mixed into an RFT stage: their references are the general data's exact
answers, judged as the general evaluation judges them (exact match, whitespace collapsed)."""

ROW_KEY = "_row"
"""The dataset column that points each prompt back to its full row (reference answers may be any JSON
value, which Arrow columns cannot always hold; the bridge reads them from the rows themselves)."""


def run(stage_run: StageRun) -> StageResult:
    return run_stage(stage_run, RFT())


# --------------------------------------------------------------------------------------------- data


def prompt_dataset(rows: list[dict[str, Any]], prefix: str) -> Any:
    """The GRPO dataset: `prompt` (chat messages) and the row pointer; everything else stays in `rows`."""
    import datasets

    return datasets.Dataset.from_list(
        [{"prompt": row["prompt"], ROW_KEY: f"{prefix}{i}"} for i, row in enumerate(rows)]
    )


def validation_subset(rows: list[dict[str, Any]], limit: int, seed: int) -> list[dict[str, Any]]:
    """At most `limit` validation prompts (a fixed random subset): every validation scores each prompt
    `number_generation` times, so its cost grows with the prompt count."""
    if len(rows) <= limit:
        return rows
    import random

    picked = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in picked]


# --------------------------------------------------------------------------------------------- reward


class RewardBridge:
    """TRL reward function -> the reward contract. `__name__` names the reward in TRL's logs."""

    def __init__(self, reward: Any, rows: dict[str, dict[str, Any]], name: str = "reward") -> None:
        self.reward = reward
        self.rows = rows
        self.__name__ = name
        self.calls = 0
        self.failure: str | None = None  # the failure policy's stop message, once raised
        self.on_failure: Any = None  # set by the stage: (message) -> None
        from tunesmith.rewards import load_reward

        self.general_reward = load_reward(GENERAL_REWARD)

    def samples(self, prompts: list[Any], completions: list[Any], pointers: list[str]) -> list[Any]:
        from tunesmith.rewards import RewardSample

        out = []
        for i, (prompt, completion, pointer) in enumerate(zip(prompts, completions, pointers, strict=True)):
            row = self.rows[pointer]
            text = completion[-1]["content"] if isinstance(completion, list) else str(completion)
            text = answer_of(text)  # a reasoning block (Qwen3's <think>...</think>) is not scored
            messages = (
                list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            ) + [{"role": "assistant", "content": text}]
            reference = row.get("reference_answer")
            metadata = row.get("metadata")
            if reference is None and isinstance(metadata, dict):  # the Bedrock form: under metadata
                reference = metadata.get("reference_answer")
            extra = {
                k: v for k, v in row.items() if k not in ("prompt", "reference_answer", "id", GENERAL_MARKER)
            }
            sample_id = f"{row.get('id', pointer)}#{self.calls}.{i}"
            out.append(RewardSample(id=sample_id, messages=messages, reference_answer=reference, extra=extra))
        return out

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        from tunesmith.rewards import RewardFailureError

        pointers = columns[ROW_KEY]
        samples = self.samples(prompts, completions, pointers)
        self.calls += 1
        if self.failure is not None:  # already stopping: do not hammer a failing endpoint
            return [None] * len(samples)
        general = [GENERAL_MARKER in self.rows[p] for p in pointers]
        scores: list[float | None] = [None] * len(samples)
        mine = [i for i, g in enumerate(general) if not g]
        try:
            results = self.reward.score([samples[i] for i in mine]) if mine else []
        except RewardFailureError as err:
            self.failure = str(err)
            if self.on_failure is not None:
                self.on_failure(self.failure)
            return scores
        for i, r in zip(mine, results, strict=True):
            scores[i] = None if r.failed else float(r.score)
        theirs = [i for i, g in enumerate(general) if g]
        if theirs:  # general prompts of the mix: their own verifier, never the user's reward (endpoint)
            for i, r in zip(theirs, self.general_reward.score([samples[i] for i in theirs]), strict=True):
                scores[i] = None if r.failed else float(r.score)
        return scores


# --------------------------------------------------------------------------------------------- trainer


class RFTTrainer(PlaybookSchedule, GRPOTrainer):
    """GRPOTrainer with the playbook schedule and optional dropping of zero-variance groups."""

    def __init__(self, *args: Any, drop_zero_variance_groups: bool = True, **kwargs: Any) -> None:
        self._drop_zero_variance = drop_zero_variance_groups
        super().__init__(*args, **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Validation; a stop signal during it (`StopOnSignal(interrupt_validation=True)`) abandons it: no
        validation reward for this step, and the trainer saves and stops as after any signalled step (after
        step 1 when it was the starting point's validation: a checkpoint exists to resume from)."""
        try:
            return super().evaluate(*args, **kwargs)
        except ValidationInterrupted as stop:
            self._metrics["eval"].clear()  # a partial validation is no measurement
            self.model.train()
            if self.state.global_step > 0:  # the start's validation: step 1 runs, then saves and stops
                self.control.should_save = True
                self.control.should_training_stop = True
            print(f"{stop}: validation abandoned; saving and stopping", file=sys.stderr, flush=True)
            return {}

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        if self.model.training and self._drop_zero_variance:
            advantages, mask = output["advantages"], output["completion_mask"]
            g = self.num_generations
            if advantages.numel() % g == 0:
                flat = advantages.view(-1, g) if advantages.dim() == 1 else advantages.view(-1, g, 1)
                no_signal = (flat == 0).reshape(flat.shape[0], -1).all(dim=1)  # every advantage exactly 0
                keep = (~no_signal).repeat_interleave(g).to(mask.dtype).unsqueeze(-1)
                output["completion_mask"] = mask * keep
                self._metrics["train"]["rft/dropped_group_share"].append(no_signal.float().mean().item())
        return output


def grpo_config(run: StageRun, base: dict[str, Any], has_validation: bool, eval_prompts: int) -> GRPOConfig:
    """TRL's GRPOConfig for the stage: the shared trainer arguments (`base`) plus the RFT block."""
    hp, rft = run.stage.hyperparameters, run.stage.rft
    g = rft.number_generation
    eval_batch = g * max(1, min(eval_prompts, hp.micro_batch_size))
    while has_validation and (eval_prompts * g) % eval_batch:
        eval_batch -= g
    return GRPOConfig(
        **base,
        per_device_train_batch_size=hp.micro_batch_size * g,  # completions per device per micro-step
        per_device_eval_batch_size=max(eval_batch, g),
        num_generations=g,
        max_completion_length=rft.max_new_tokens,
        temperature=rft.temperature,
        beta=rft.kl_coef,
        loss_type="dapo",  # token-level normalization (DAPO; TRL's default, [dapo-2025])
        epsilon_high=0.28,  # clip-higher (DAPO: eps_low 0.2, eps_high 0.28; [dapo-2025])
        scale_rewards="group",
        shuffle_dataset=True,
        log_completions=False,
        chat_template_kwargs=thinking_kwargs(run.recipe.reasoning(run.stage)),  # as SFT and evaluation render
    )


def reward_event(step: int, stage: str, message: str) -> Event:
    """The failure policy's stop, as a monitoring event (written, printed and enforced like a detector's)."""
    return Event(
        detector="reward_endpoint",
        step=step,
        action="stop",
        message=message,
        causes=(
            "the reward endpoint is down, overloaded or too slow: check it with `tunesmith reward serve` / "
            "its logs, raise timeout_s or lower concurrency",
            "the reward function raises on some completions: test it on the stage's data first",
        ),
        stage=stage,
    )


def fault_event(step: int, stage: str, info: dict[str, Any]) -> Event:
    """One reward fault (timeout, HTTP 500, malformed reply, missing/duplicated id, NaN score...)."""
    fault = info.get("fault") or info.get("action") or info.get("event", "fault")
    detector = "reward_fault" if info.get("event") == "reward_fault" else "reward_failure_policy"
    return Event(
        detector=detector,
        step=step,
        action="warn",
        message=f"reward {fault}: {json.dumps({k: v for k, v in info.items() if k != 'event'}, default=str)}",
        causes=(),
        details=dict(info),
        stage=stage,
    )


def mean_or_none(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def reward_summary(metrics_path: Path) -> dict[str, Any]:
    """First/last mean training reward and validation reward from metrics.jsonl."""
    rows = read_rows(metrics_path)
    train = [(r["step"], r["reward"]) for r in rows if r.get("reward") is not None]
    evals = [(r["step"], r["eval_reward"]) for r in rows if r.get("eval_reward") is not None]
    head, tail = train[:5], train[-5:]
    return {
        "initial_train_reward": mean_or_none([v for _, v in head]),
        "final_train_reward": mean_or_none([v for _, v in tail]),
        "initial_eval_reward": evals[0][1] if evals else None,
        "final_eval_reward": evals[-1][1] if evals else None,
        "best_eval_reward": max((v for _, v in evals), default=None),
    }


# --------------------------------------------------------------------------------------------- stage wiring


class RFT:
    """The RFT technique (`stage.Technique`). The datasets, the reward and its bridge outlive one attempt (a
    rollback makes a new trainer, not a new reward client)."""

    name = "rft"
    selection = Selection(metric="eval_reward", higher_is_better=True)
    watch: Literal["loss", "reward"] = "reward"
    batch_counts = "prompts"
    chunks_micro_batches = False  # GRPO's training step keeps a micro-batch of completions whole

    def __init__(self, validation_prompts: int = RFT_MAX_VALIDATION_PROMPTS) -> None:
        self.max_validation_prompts = validation_prompts
        self.validation_prompts = 0
        self.watcher: MonitorCallback | None = None
        self.step = 0
        self.reward: Any = None
        self.bridge: RewardBridge | None = None
        self.stage_name = "rft"

    def build_datasets(self, run: StageRun, tokenizer: Any) -> Datasets:
        """The prompt datasets (validation: a fixed subset), the reward and the bridge to it."""
        from tunesmith.rewards import load_reward

        stage = run.stage
        if stage.rft is None or stage.rft.reward is None:
            raise UserError(
                f"stage {stage.name}: an rft stage needs rft.reward (a built-in verifier, module:function, an "
                "http(s) endpoint or a Lambda ARN) — add it to the recipe"
            )
        train_rows = read_rows(run.data.train_file)
        limit = run.plan.numbers.get("validation_prompts", self.max_validation_prompts)  # resolve sized it
        val_rows = (
            validation_subset(read_rows(run.data.validation_file), limit, stage.hyperparameters.seed)
            if run.data.validation_file is not None
            else []
        )
        datasets = Datasets(
            prompt_dataset(train_rows, "t"), prompt_dataset(val_rows, "v") if val_rows else None
        )
        self.validation_prompts = len(val_rows)
        rows = {f"t{i}": r for i, r in enumerate(train_rows)} | {f"v{i}": r for i, r in enumerate(val_rows)}
        self.reward = load_reward(stage.rft.reward, on_event=self._on_event, base_dir=run.recipe_dir)
        self.bridge = RewardBridge(self.reward, rows)
        self.bridge.on_failure = self._on_failure
        self.stage_name = stage.name
        return datasets

    def _on_event(self, info: dict[str, Any]) -> None:
        if self.watcher is not None:
            self.watcher.record([fault_event(self.step, self.stage_name, info)], echo=False)

    def _on_failure(self, message: str) -> None:
        if self.watcher is not None:
            self.watcher.record([reward_event(self.step, self.stage_name, message)])

    def build_trainer(self, run: StageRun, datasets: Datasets, inputs: TrainerInputs) -> RFTTrainer:
        self.watcher = inputs.monitor  # the reward's faults and failure policy become monitoring events
        for callback in inputs.trainer_kwargs["callbacks"]:
            if isinstance(callback, StopOnSignal):
                callback.interrupt_validation = True  # a validation generates for minutes: stop inside it
        args = grpo_config(run, inputs.args, datasets.has_validation, self.validation_prompts)
        trainer = RFTTrainer(
            model=inputs.model,
            reward_funcs=[self.bridge],
            args=args,
            train_dataset=datasets.train,
            eval_dataset=datasets.validation,
            drop_zero_variance_groups=run.stage.rft.drop_zero_variance_groups is not False,
            **inputs.trainer_kwargs,
        )
        trainer.add_callback(_TrackStep(self))
        return trainer

    def close(self) -> None:
        close = getattr(self.reward, "close", None)
        if close is not None:
            close()

    def summarize(self, run: StageRun) -> dict[str, Any]:
        """Training and validation rewards (metrics.jsonl) and the reward client's counters."""
        stats = getattr(self.reward, "stats", None)
        return {
            **reward_summary(run.stage_dir / "metrics.jsonl"),
            "reward": {
                "name": getattr(self.reward, "name", "reward"),
                **(stats.to_dict() if stats is not None else {}),
            },
        }


class _TrackStep(TrainerCallback):
    """Keeps RFT.step at the optimizer step being computed (events are stamped with it)."""

    def __init__(self, setup: RFT) -> None:
        self.setup = setup

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.setup.step = state.global_step + 1
