"""The recipe: one typed, strict config tree (the single source of truth for a run).

Vocabulary follows the managed service users migrate from ([nova-recipes]):
`lr`, `min_lr`, `warmup_steps` / `warmup_ratio`, `constant_steps`, `global_batch_size`, `max_length`,
`max_steps` / `max_epochs`, `lora.alpha`, `data_mixing.customer_percent`, `data_mixing.general`,
`save_top_k`, `val_check_interval`, `number_generation`.

Every field left unset (`None`) is filled by `tunesmith.recipe.resolve.resolve()` from the defaults table
(`tunesmith.recipe.defaults`), which records where each value came from. Unknown keys are errors.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from tunesmith.data.curated.catalog import CURATED_CATEGORIES
from tunesmith.data.mixing_rules import mixing_rule_violations
from tunesmith.models.catalog import FAMILIES
from tunesmith.rewards.config import RewardSpec, classify, refuse_coercion
from tunesmith.runs import folder_name_problem
from tunesmith.suggest import did_you_mean
from tunesmith.vocabulary import (
    CATEGORIES,
    CHECKPOINT_STAGES,
    DETECTORS,
    CheckpointStage,
    Mode,
    Technique,
    threshold_names,
)

Percent = Annotated[float, Field(ge=0, le=100)]
PositiveInt = Annotated[int, Field(ge=1)]
Seed = Annotated[
    int, Field(ge=0, le=2**32 - 1)
]  # numpy's seed range (transformers' set_seed seeds numpy too)


class Strict(BaseModel):
    """Base for every recipe node: unknown keys are errors. (Validated on load; `resolve()` then fills values.)"""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_coercion(cls, value: Any, info: ValidationInfo) -> Any:
        """`lr: true` is an error, not 1.0 (and `enabled: 1` not true): no silent conversion."""
        return refuse_coercion(cls, value, info)


class ModelSpec(Strict):
    """The starting checkpoint: a catalog `family` + `checkpoint` stage, or a Hugging Face id / local `path`."""

    family: str | None = Field(None, description="catalog family, e.g. 'tiny' (see `tunesmith models list`)")
    checkpoint: CheckpointStage | None = Field(
        None,
        description="pre-trained | mid-trained | post-trained (with `path`: what kind of checkpoint it is)",
    )
    path: str | None = Field(
        None, description="a Hugging Face id or a local model folder (instead of a family)"
    )
    revision: str | None = Field(None, description="Hugging Face revision (branch, tag or commit) for `path`")

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str | None) -> str | None:
        if value is not None and value not in FAMILIES:
            raise ValueError(f"unknown family {value!r}; known families: {', '.join(FAMILIES)}")
        return value

    @model_validator(mode="after")
    def _family_or_path(self) -> ModelSpec:
        if self.family is None and self.path is None:
            raise ValueError("set `family` (+ `checkpoint`) or `path` (a Hugging Face id or a local folder)")
        if self.family is not None and self.path is not None:
            raise ValueError(
                f"both `family` ({self.family!r}) and `path` ({self.path!r}) are set — keep one: `family` for a "
                "catalog model, `path` for a Hugging Face id or a local folder"
            )
        if self.family is not None and self.path is None:
            family = FAMILIES[self.family]
            if self.checkpoint is not None and family.checkpoint(self.checkpoint) is None:
                have = ", ".join(family.available_stages())
                raise ValueError(
                    f"family {self.family!r} publishes no {self.checkpoint} checkpoint; available: {have}"
                )
        return self


class DataSpec(Strict):
    """Training and validation files (JSONL, .txt for CPT, a datasets folder, or a `builtin:` reference)."""

    train: str = Field(
        ..., description="training data: a file, a datasets folder, or e.g. builtin:brindle/sft"
    )
    validation: str | None = Field(None, description="validation data used to pick the best checkpoint")
    tasks: PositiveInt | None = Field(
        None, description="how many distinct tasks the SFT data covers (lint: 1k-10k each)"
    )


class DataMixing(Strict):
    """Blend the user's data with curated general data ([nova-data-mixing] semantics).

    `customer_percent` is the share of the OVERALL mix drawn from the user's data; `general` gives each
    general category's share of the remaining (general) portion and must sum to 100.
    """

    customer_percent: Percent | None = Field(None, description="percent (0-100) of the mix from your data")
    general: dict[str, Percent] | None = Field(
        None, description="category -> percent of the general portion (sums to 100)"
    )
    general_sources: dict[str, str] = Field(
        default_factory=dict,
        description="category -> data file for categories not built in (or to replace them)",
    )
    general_data: Literal["builtin", "curated", "self"] | None = Field(
        None,
        description="where the general categories' rows come from: builtin (the tiny family's generated world), "
        "curated (open Hugging Face datasets, `tunesmith data mirror`) or self (the start model's own verified "
        "answers to general prompts, generated at train time); default: builtin for the tiny family, curated "
        "for every other model, self when curated data cannot be reached",
    )
    self_replay_prompts: PositiveInt | None = Field(
        None,
        description="general_data: self: replay prompts answered per category (a seeded sample; default: "
        "every replay prompt of the general item bank)",
    )
    general_mirror: str | None = Field(
        None,
        description="offline mirror of the curated data: a folder with one saved dataset per category "
        "(`tunesmith data mirror FOLDER`); default $TUNESMITH_GENERAL_DATA, else streamed from the Hub",
    )
    unit: Literal["examples", "tokens"] | None = Field(None, description="shares count examples or tokens")
    sampling: Literal["with_replacement", "without_replacement"] | None = Field(
        None, description="how the smaller side is sampled when it runs out"
    )
    max_general_repeats: PositiveInt | None = Field(None, description="warn when general data repeats more")
    quality_tail_percent: Percent | None = Field(
        None, description="percent (0-100) of the final training steps reserved for high-quality examples"
    )
    quality_file: str | None = Field(None, description="a file of high-quality examples for the quality tail")

    @model_validator(mode="after")
    def _mixing_rules(self) -> DataMixing:
        # The managed service SDK's rules ([nova-forge-sdk]).
        general = self.general or {}
        known = (
            CATEGORIES
            if self.general_data in ("builtin", "self")
            else tuple(dict.fromkeys(CATEGORIES + CURATED_CATEGORIES))
        )
        for category in general:
            if category not in known and category not in self.general_sources:
                raise ValueError(
                    f"unknown general category {category!r}{did_you_mean(category, known)}; "
                    f"categories: {', '.join(known)} (or give a file for it in `general_sources`)"
                )
        if self.general is not None:  # unset shares are filled by the defaults (then checked by the mixer)
            found = mixing_rule_violations(self.customer_percent, self.general)
            if found:
                raise ValueError(found[0][1])
        return self


class LoraSpec(Strict):
    rank: PositiveInt | None = Field(None, description="LoRA rank r")
    alpha: Annotated[float, Field(gt=0, le=4096)] | None = Field(None, description="LoRA scaling alpha")
    dropout: Annotated[float, Field(ge=0, lt=1)] | None = Field(None, description="dropout on the LoRA path")
    target_modules: list[str] | Literal["all-linear"] | None = Field(
        None, description="module names to adapt, or 'all-linear'"
    )
    plus_lr_ratio: Annotated[float, Field(ge=1, le=100)] | None = Field(
        None,
        description="LoRA+: the B matrices learn at this multiple of the A matrices' LR (1 = plain LoRA; "
        "the service's lora_plus_lr_ratio, 1-70)",
    )


class Hyperparameters(Strict):
    """Optimizer, schedule, batch and checkpointing. Unset values come from the defaults table."""

    lr: Annotated[float, Field(gt=0, le=1)] | None = Field(None, description="peak learning rate")
    min_lr: Annotated[float, Field(ge=0, le=1)] | None = Field(None, description="LR floor at the end")
    warmup_steps: Annotated[int, Field(ge=0)] | None = Field(None, description="linear warmup, in steps")
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] | None = Field(
        None, description="linear warmup as a fraction (0-1) of total optimizer steps"
    )
    constant_steps: Annotated[int, Field(ge=0)] | None = Field(None, description="steps held at peak LR")
    decay: Literal["cosine", "linear"] | None = Field(None, description="shape of the ramp down to min_lr")
    global_batch_size: PositiveInt | None = Field(
        None, description="sequences per optimizer step, all devices"
    )
    micro_batch_size: PositiveInt | None = Field(None, description="sequences per forward pass per device")
    max_length: Annotated[int, Field(ge=8, le=1_048_576)] | None = Field(
        None, description="tokens per sequence"
    )
    max_steps: PositiveInt | None = Field(None, description="optimizer steps (instead of max_epochs)")
    max_epochs: Annotated[float, Field(gt=0, le=100)] | None = Field(
        None, description="passes over your data (instead of max_steps)"
    )
    packing: bool | Literal["auto"] | None = Field(
        None,
        description="CPT/SFT: lay each micro-batch's examples into shared rows instead of padding them "
        "(true / false; auto: when the tokenized lengths make padding fill >= 20% of token slots)",
    )
    length_grouping: bool | Literal["auto"] | None = Field(
        None,
        description="CPT/SFT without packing: regroup the examples of every 16 consecutive steps into steps "
        "of similar lengths (true / false; auto: when padding would fill >= 20% of token slots)",
    )
    gradient_checkpointing: bool | Literal["auto"] | None = Field(
        None,
        description="recompute activations in the backward pass instead of keeping them (true / false; auto: "
        "off in one CPU process, where micro-batches run in chunks instead; on with a GPU or several processes)",
    )
    weight_decay: Annotated[float, Field(ge=0, le=1)] | None = None
    grad_clip: Annotated[float, Field(ge=0)] | None = Field(None, description="max gradient norm; 0 disables")
    adam_beta1: Annotated[float, Field(ge=0, lt=1)] | None = None
    adam_beta2: Annotated[float, Field(ge=0, lt=1)] | None = None
    lora: LoraSpec | None = None
    val_check_interval: PositiveInt | None = Field(None, description="validate every N optimizer steps")
    save_top_k: PositiveInt | None = Field(
        None,
        description="keep the K best checkpoints (CPT: validation loss, SFT: token accuracy, RFT: reward)",
    )
    seed: Seed | None = Field(None, description="stage seed (defaults to the recipe seed)")
    reasoning_enabled: bool | None = Field(
        None, description="the data carries reasoning traces; must match evaluation.reasoning_enabled"
    )

    @model_validator(mode="after")
    def _exclusive(self) -> Hyperparameters:
        if self.warmup_steps is not None and self.warmup_ratio is not None:
            raise ValueError("set warmup_steps or warmup_ratio, not both")
        if self.max_steps is not None and self.max_epochs is not None:
            raise ValueError("set max_steps or max_epochs, not both")
        if self.lr is not None and self.min_lr is not None and self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr:g}) must not exceed lr ({self.lr:g})")
        if (
            self.micro_batch_size is not None
            and self.global_batch_size is not None
            and self.micro_batch_size > self.global_batch_size
        ):
            raise ValueError(
                f"micro_batch_size ({self.micro_batch_size}) must not exceed global_batch_size "
                f"({self.global_batch_size})"
            )
        return self


class RFTSpec(Strict):
    """Reinforcement fine-tuning (GRPO): how candidates are generated and scored."""

    reward: str | RewardSpec | None = Field(
        None,
        description="a built-in verifier (e.g. exact_match), module:function, an http(s) endpoint, or a Lambda ARN; "
        "or an object with `function` and its settings (timeout_s, concurrency, retries, max_failure_rate, "
        "components for a weighted combination...; see tunesmith.rewards.config)",
    )
    number_generation: Annotated[int, Field(ge=2, le=16)] | None = Field(
        None, description="samples per prompt"
    )
    max_new_tokens: PositiveInt | None = None
    temperature: Annotated[float, Field(gt=0, le=2)] | None = None
    kl_coef: Annotated[float, Field(ge=0, le=10)] | None = Field(None, description="KL penalty coefficient")
    probe_positive_rate: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="share (0-1) of probe samples with positive reward on the starting checkpoint"
    )
    drop_zero_variance_groups: bool | None = Field(
        None,
        description="leave groups whose samples all scored the same (no signal) out of the loss (DAPO dynamic "
        "sampling; default true); the dropped share is logged as rft/dropped_group_share",
    )

    @field_validator("reward", mode="before")
    @classmethod
    def _reward(cls, value: Any) -> Any:
        """A name is checked now (did-you-mean, a URL's host, an ARN's parts); a mapping is validated as a
        `RewardSpec` alone, so an error names its field rather than the union's string branch."""
        if isinstance(value, str):
            classify(value)
        elif isinstance(value, dict):
            return RewardSpec.model_validate(value)
        return value


class DPOSpec(Strict):
    """Direct preference optimization: how far the policy may move from the reference (the stage's input)."""

    beta: Annotated[float, Field(ge=0.001, le=0.5)] | None = Field(
        None,
        description="DPO beta: the implicit reward's scale (higher stays closer to the reference; 0.001-0.5)",
    )


class MonitoringSpec(Strict):
    """Run monitoring for one stage: per-detector policy and thresholds (unset: the defaults, each with its
    source, in `tunesmith.monitoring.policies` / `tunesmith.monitoring.detectors`)."""

    enabled: bool | None = Field(None, description="false turns every detector off (default on)")
    policies: dict[str, Literal["warn", "stop", "rollback", "off"]] = Field(
        default_factory=dict,
        description="detector -> warn | stop | rollback | off (e.g. {divergence: stop, plateau: off})",
    )
    thresholds: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="detector -> {threshold name: value} (e.g. {forgetting: {max_drop: 0.2}})",
    )
    probe_interval: PositiveInt | None = Field(
        None, description="optimizer steps between forgetting probes (default: val_check_interval)"
    )
    probe_items_per_category: PositiveInt | None = Field(
        None, description="held-out general items per category in the forgetting probe (default 8)"
    )
    max_rollbacks: Annotated[int, Field(ge=0, le=10)] | None = Field(
        None, description="rollbacks allowed in the stage before a rollback becomes a stop (default 2)"
    )
    rollback_lr_scale: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        None, description="factor (0-1) applied to the LR at each rollback (default 0.5)"
    )
    skip_data: bool | None = Field(
        None,
        description="a rollback also skips the training rows its spike event named as outliers, PaLM-style "
        "(default false)",
    )

    @field_validator("policies", "thresholds")
    @classmethod
    def _known_detectors(cls, value: dict) -> dict:
        for name in value:
            if name not in DETECTORS:
                raise ValueError(
                    f"unknown detector {name!r}{did_you_mean(name, DETECTORS)}; detectors: {', '.join(DETECTORS)}"
                )
        return value

    @field_validator("thresholds")
    @classmethod
    def _known_thresholds(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for detector, values in value.items():
            known = threshold_names(detector)
            for key in values:
                if key not in known:
                    raise ValueError(
                        f"{detector} has no threshold {key!r}{did_you_mean(key, known)}; "
                        f"thresholds: {', '.join(known) or 'none'}"
                    )
                if not math.isfinite(values[key]):
                    raise ValueError(
                        f"{detector}.{key} is {values[key]} — a threshold must be a finite number"
                    )
        return value


class Stage(Strict):
    """One training stage: CPT (unlabeled text), SFT (demonstrations), RFT (prompts + reward) or DPO
    (preference pairs)."""

    name: str | None = Field(None, description="folder name of the stage; defaults to the technique")
    technique: Technique
    mode: Mode | None = Field(None, description="lora | full (default by checkpoint: post-trained -> lora)")
    scale: Literal["standard", "large"] | None = Field(
        None, description="CPT only: 'large' = 1e-4 peak held for constant_steps, then ramp down to ~1e-6"
    )
    data: DataSpec
    data_mixing: DataMixing | None = None
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    rft: RFTSpec | None = None
    dpo: DPOSpec | None = Field(None, description="dpo stages: beta (default 0.1)")
    monitoring: MonitoringSpec | None = Field(
        None, description="detectors, policies (warn/stop/rollback/off) and thresholds for this stage"
    )

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str | None) -> str | None:
        if value is not None:
            _check_folder_name("stage name", value)
        return value

    @model_validator(mode="after")
    def _technique_rules(self) -> Stage:
        if self.technique == "rft" and (self.rft is None or self.rft.reward is None):
            raise ValueError(
                "an rft stage needs `rft.reward` (a verifier name, module:function or endpoint URL)"
            )
        if self.technique != "rft" and self.rft is not None:
            raise ValueError(f"`rft` settings belong to rft stages, not to a {self.technique} stage")
        if self.technique != "dpo" and self.dpo is not None:
            raise ValueError(f"`dpo` settings belong to dpo stages, not to a {self.technique} stage")
        if self.mode == "full" and self.hyperparameters.lora is not None:
            raise ValueError("`hyperparameters.lora` is set but mode is full: remove it or use mode: lora")
        if self.scale is not None and self.technique != "cpt":
            raise ValueError("`scale` applies to cpt stages only")
        return self


class EvaluationSpec(Strict):
    suites: list[Literal["general", "domain"]] = Field(
        default_factory=lambda: ["general", "domain"],
        description="always both: domain gain, general retention",
    )
    domain: str | None = Field(
        None, description="gen_qa JSONL for the domain suite (e.g. builtin:brindle/eval)"
    )
    general_items_per_category: PositiveInt | None = Field(None, description="held-out items per category")
    reasoning_enabled: bool | None = Field(None, description="evaluate with reasoning on (match training)")


def _check_folder_name(what: str, value: str) -> None:
    problem = folder_name_problem(value)
    if problem is not None:
        raise ValueError(
            f"{what} {problem} — it must be a plain folder name (no '/', '\\\\', ':', control characters or "
            "leading '.')"
        )


class Recipe(Strict):
    """A whole customization: starting model, ordered stages, evaluation."""

    name: str = Field(..., description="run name: outputs go to <output_dir>/<name>/")
    model: ModelSpec
    stages: Annotated[list[Stage], Field(min_length=1)]
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    seed: Seed = Field(0, description="fixes data order, mixing and initialization (0 to 2**32-1)")
    output_dir: str = Field("runs", description="folder that holds run folders")
    acknowledge: dict[str, str] = Field(
        default_factory=dict,
        description="lint finding id (or id@stage) -> your stated reason; the finding becomes info",
    )
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list,
        description="experiment trackers passed through to transformers (when installed)",
    )
    imported_from: dict[str, str] = Field(
        default_factory=dict,
        description="recipe key path -> the managed-service recipe field it was imported from (written by "
        "`tunesmith import`; `plan` shows it as the value's origin)",
    )

    @field_validator("name")
    @classmethod
    def _run_name(cls, value: str) -> str:
        _check_folder_name("run name", value)
        return value

    @model_validator(mode="after")
    def _unique_stage_names(self) -> Recipe:
        seen: set[str] = set()
        for index, stage in enumerate(self.stages):
            name = stage.name or stage.technique
            if name in seen:
                if stage.name is None:
                    continue  # resolve() numbers unnamed repeats (sft, sft-2)
                raise ValueError(f"stages[{index}]: stage name {name!r} is used twice")
            seen.add(name)
        return self


# ---------------------------------------------------------------------------------------------------------
# The resolved tree: what `resolve()` returns. Same field names and order as the input types above (so the
# stored recipe and `plan` read the same), but every value that always exists after resolution is required.
# Optional here means "may legitimately be absent": one of max_steps / max_epochs, the CPT-only `scale`, a
# full-rank stage's `lora`, settings without a default (reasoning_enabled, probe_positive_rate, ...).


class Resolved(BaseModel):
    """Base of the resolved nodes: unknown keys are errors; built by `resolve()` from validated input."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


class ResolvedMixing(Resolved):
    customer_percent: float
    general: dict[str, float]
    general_sources: dict[str, str] = Field(default_factory=dict)
    general_data: Literal["builtin", "curated", "self"] = Field(
        "builtin", description="set by resolve(); runs resolved before curated data existed used builtin"
    )
    self_replay_prompts: int | None = None
    general_mirror: str | None = None
    unit: Literal["examples", "tokens"]
    sampling: Literal["with_replacement", "without_replacement"]
    max_general_repeats: int
    quality_tail_percent: float
    quality_file: str | None = None


class ResolvedLora(Resolved):
    rank: int
    alpha: float
    dropout: float
    target_modules: list[str] | Literal["all-linear"]
    plus_lr_ratio: float = Field(1.0, description="1.0 in a run resolved before LoRA+ existed (plain LoRA)")


class ResolvedHyperparameters(Resolved):
    lr: float
    min_lr: float
    warmup_steps: int
    warmup_ratio: float | None = Field(
        None,
        description="always set by resolve(); None only in a recipe read back from a run folder, which states "
        "warmup as warmup_steps alone (so that it validates again as a recipe)",
    )
    constant_steps: int
    decay: Literal["cosine", "linear"]
    global_batch_size: int
    micro_batch_size: int
    max_length: int
    max_steps: int | None = None
    max_epochs: float | None = None
    packing: bool | Literal["auto"]
    length_grouping: bool | Literal["auto"] = "auto"
    gradient_checkpointing: bool | Literal["auto"] = "auto"
    weight_decay: float
    grad_clip: float
    adam_beta1: float
    adam_beta2: float
    lora: ResolvedLora | None = None
    val_check_interval: int
    save_top_k: int
    seed: int
    reasoning_enabled: bool | None = None

    @model_validator(mode="after")
    def _one_duration(self) -> ResolvedHyperparameters:
        assert (self.max_steps is None) != (self.max_epochs is None), "resolve() sets max_steps or max_epochs"
        return self


class ResolvedRFT(Resolved):
    reward: str | RewardSpec
    number_generation: int
    max_new_tokens: int
    temperature: float
    kl_coef: float
    probe_positive_rate: float | None = None
    drop_zero_variance_groups: bool


class ResolvedDPO(Resolved):
    beta: float


class ResolvedStage(Resolved):
    name: str
    technique: Technique
    mode: Mode
    scale: Literal["standard", "large"] | None = None
    data: DataSpec
    data_mixing: ResolvedMixing
    hyperparameters: ResolvedHyperparameters
    rft: ResolvedRFT | None = None
    dpo: ResolvedDPO | None = None
    monitoring: MonitoringSpec | None = None


class ResolvedEvaluation(Resolved):
    suites: list[Literal["general", "domain"]]
    domain: str | None = None
    general_items_per_category: int
    reasoning_enabled: bool | None = None


class ResolvedConfig(Resolved):
    """The whole recipe after `resolve()` (the `recipe` of a `ResolvedRecipe`)."""

    name: str
    model: ModelSpec
    stages: list[ResolvedStage]
    evaluation: ResolvedEvaluation
    seed: int
    output_dir: str
    acknowledge: dict[str, str] = Field(default_factory=dict)
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(default_factory=list)

    def reasoning(self, stage: ResolvedStage | None = None) -> bool:
        """Whether the model thinks before answering (Qwen3's `enable_thinking`), for SFT rendering, GRPO
        prompts, the probes and the evaluation alike: the stage's `hyperparameters.reasoning_enabled`, else
        `evaluation.reasoning_enabled`, else off (direct answers: what demonstrations without reasoning traces
        teach, and what the evaluation's answer-sized token budget fits). Lint's `reasoning-mismatch` warns
        when a stage and the evaluation disagree."""
        if stage is not None and stage.hyperparameters.reasoning_enabled is not None:
            return stage.hyperparameters.reasoning_enabled
        return bool(self.evaluation.reasoning_enabled)


assert set(CHECKPOINT_STAGES) == {"pre-trained", "mid-trained", "post-trained"}
