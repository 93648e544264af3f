"""resolve(recipe) -> ResolvedRecipe: every unset value filled from the defaults table, with provenance.

Each leaf value records where it came from: `user` (the recipe or an override), `default: <source>` (the
defaults table's sentence and reference) or `derived: <formula>`. Derived numbers (optimizer steps,
epochs, warmup steps, tokens per step, the LR at each schedule phase) are computed from the data size,
batch and length — never guessed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from tunesmith.errors import RecipeError
from tunesmith.models import parameters
from tunesmith.models.catalog import FAMILIES
from tunesmith.monitoring.policies import MonitorSettings
from tunesmith.recipe import defaults as table
from tunesmith.recipe.schema import (
    DataMixing,
    DPOSpec,
    Hyperparameters,
    LoraSpec,
    ModelSpec,
    Recipe,
    ResolvedConfig,
    Stage,
)
from tunesmith.vocabulary import CATEGORIES

if TYPE_CHECKING:
    from tunesmith.data.snapshot import DataSnapshot


@dataclass(frozen=True)
class Provenance:
    origin: str  # "user" | "imported" | "default" | "derived"
    detail: str = ""

    def __str__(self) -> str:
        return self.origin if not self.detail else f"{self.origin}: {self.detail}"


@dataclass
class StagePlan:
    """The derived numbers of one stage (all computed, with the formula beside each)."""

    name: str
    technique: str
    mode: str
    input: str
    numbers: dict[str, Any] = field(default_factory=dict)
    formulas: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    train_data: DataSnapshot | None = None  # the training file's snapshot (resolve takes it once)
    validation_data: DataSnapshot | None = None
    quality_data: DataSnapshot | None = None  # data_mixing.quality_file
    general_data: dict[str, DataSnapshot] = field(default_factory=dict)  # data_mixing.general_sources

    def set(self, key: str, value: Any, formula: str) -> Any:
        self.numbers[key] = value
        self.formulas[key] = formula
        return value


@dataclass
class ResolvedRecipe:
    """The resolved recipe (`recipe`: every value filled), where each value came from, and the stage plans."""

    recipe: ResolvedConfig
    provenance: dict[str, Provenance]
    stages: list[StagePlan]
    size_class: str
    source: str | None = None
    domain_data: DataSnapshot | None = None  # evaluation.domain, validated as gen_qa before any training
    size_reason: str = ""  # why this size class (`plan` shows it)

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data (what `plan --out` writes and runs store); it loads and validates
        again as a recipe (warmup is given as the derived `warmup_steps` only)."""
        data = self.recipe.model_dump(mode="json", exclude_none=True)
        for stage in data["stages"]:
            stage["hyperparameters"].pop("warmup_ratio", None)
        return data

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.to_dict(),
            "provenance": {
                path: {"origin": p.origin, "detail": p.detail} for path, p in self.provenance.items()
            },
            "stages": [
                {
                    "name": s.name,
                    "technique": s.technique,
                    "mode": s.mode,
                    "input": s.input,
                    "numbers": s.numbers,
                    "formulas": s.formulas,
                    "notes": s.notes,
                }
                for s in self.stages
            ],
            "size_class": self.size_class,
            "size_reason": self.size_reason,
            "source": self.source,
        }


def resolve(recipe: Recipe, *, recipe_path: str | Path | None = None) -> ResolvedRecipe:
    """Fill every unset value and compute the derived numbers. Raises `RecipeError` on contradictions.

    The input is filled on a copy, then validated once into the resolved types (`ResolvedConfig`), whose
    fields are required wherever a value always exists after resolution."""
    provenance: dict[str, Provenance] = {}
    _mark_user(recipe, provenance)
    for path in [p for p in provenance if p.startswith("imported_from")]:
        del provenance[path]  # the record itself, not a value of the run
    for path, service_field in recipe.imported_from.items():  # `tunesmith import` wrote these values
        if path in provenance:
            provenance[path] = Provenance("imported", service_field)
    recipe = recipe.model_copy(deep=True)
    base_dir = Path(recipe_path).parent if recipe_path else None
    if recipe.model.path:  # the model folder is input too: checked first, before its config is read for sizes
        from tunesmith.models.validation import check_model_path

        techniques = [stage.technique for stage in recipe.stages]
        check_model_path(
            recipe.model.path, conversations=next((t for t in techniques if t in POST_TRAINING), None)
        )

    family = FAMILIES.get(recipe.model.family) if recipe.model.family else None
    sized = model_size_class(recipe.model)
    size_class = sized.name
    if family is None:
        provenance["model.family"] = Provenance("derived", f"no catalog family: {sized.reason}")
    if family is not None and recipe.model.checkpoint is None and recipe.model.path is None:
        recipe.model.checkpoint = family.default_stage()
        provenance["model.checkpoint"] = Provenance(
            "default",
            "post-trained keeps instruction following; the start for LoRA and small data "
            "([nova-hpo-blog], [nova-cpt-docs])"
            if recipe.model.checkpoint == "post-trained"
            else f"{family.name} publishes no post-trained checkpoint: its latest published stage",
        )

    plans: list[StagePlan] = []
    input_kinds = input_checkpoints(recipe.model.checkpoint, [stage.technique for stage in recipe.stages])
    used_names: dict[str, int] = {}
    for index, (stage, checkpoint_kind) in enumerate(zip(recipe.stages, input_kinds, strict=True)):
        prefix = f"stages[{index}]"
        if stage.name is None:
            base = stage.technique
            used_names[base] = used_names.get(base, 0) + 1
            stage.name = base if used_names[base] == 1 else f"{base}-{used_names[base]}"
            provenance[f"{prefix}.name"] = Provenance("derived", "the technique (numbered when repeated)")
        context = {
            "size_class": size_class,
            "technique": stage.technique,
            "checkpoint": checkpoint_kind,
            "scale": stage.scale or "standard",
        }
        input_desc = (
            f"{recipe.model.family or recipe.model.path} {recipe.model.checkpoint or ''}".strip()
            if index == 0
            else f"best checkpoint of stage '{recipe.stages[index - 1].name}'"
        )
        plans.append(_resolve_stage(stage, prefix, context, recipe, provenance, base_dir, input_desc))

    _resolve_evaluation(recipe, provenance, size_class)
    domain = recipe.evaluation.domain
    return ResolvedRecipe(
        ResolvedConfig.model_validate(recipe, from_attributes=True),
        provenance,
        plans,
        size_class,
        str(recipe_path) if recipe_path else None,
        snapshot_of(domain, "eval", base_dir, key="evaluation.domain") if domain else None,
        sized.reason,
    )


def model_size_class(model: ModelSpec) -> parameters.SizeClass:
    """The defaults' size class of a recipe's model, with the reason: the catalog family's, else from the
    parameter count of the path's config (`tunesmith.models.parameters.size_class`)."""
    family = FAMILIES.get(model.family) if model.family else None
    return parameters.size_class(family, None if family else start_ref(model))


def start_ref(model: ModelSpec) -> str:
    """The model reference a recipe's first stage starts from (`family:checkpoint`, or the path / Hub id
    with `@revision`): what training loads and what evaluation compares against."""
    if model.path:
        return f"{model.path}@{model.revision}" if model.revision else model.path
    return f"{model.family}:{model.checkpoint}"


POST_TRAINING = ("sft", "rft", "dpo")
"""Techniques after which a checkpoint counts as post-trained (instruction following); CPT keeps its
input's kind."""


def input_checkpoints(start: str | None, techniques: list[str]) -> list[str | None]:
    """The kind of checkpoint each stage starts from: `start` (the recipe's model) for the first stage,
    then the kind the stage before it left (SFT and RFT make it post-trained)."""
    kinds: list[str | None] = []
    kind = start
    for technique in techniques:
        kinds.append(kind)
        if technique in POST_TRAINING:
            kind = "post-trained"
    return kinds


def _mark_user(recipe: Recipe, provenance: dict[str, Provenance]) -> None:
    """Every value present in the recipe as given is the user's (pydantic's `model_fields_set`, walked
    recursively; mappings are walked key by key except the category shares and sources, shown whole)."""

    def walk(node: Any, path: str) -> None:
        if isinstance(node, BaseModel):
            given = node.model_fields_set
            values = {name: getattr(node, name) for name in type(node).model_fields if name in given}
            walk_mapping({k: v for k, v in values.items() if v is not None}, path)
        elif isinstance(node, dict) and not path.endswith((".general", ".general_sources")):
            walk_mapping(node, path)
        elif isinstance(node, list) and node and all(isinstance(x, (dict, BaseModel)) for x in node):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        elif node is not None:
            provenance[path] = Provenance("user")

    def walk_mapping(node: dict[str, Any], path: str) -> None:
        if not node and path:
            provenance[path] = Provenance("user")
        for key, value in node.items():
            walk(value, f"{path}.{key}" if path else key)

    walk(recipe, "")


def _fill(
    obj: Any,
    attr: str,
    path: str,
    key: str,
    context: dict[str, Any],
    provenance: dict[str, Provenance],
    derive: Any = None,
) -> Any:
    """Fill `obj.attr` from the defaults table unless the user set it; record provenance."""
    current = getattr(obj, attr)
    if current is not None:
        return current
    entry = table.lookup(key, context)
    if entry is None:
        return None
    if isinstance(entry.value, table.Derived):
        value = derive() if derive is not None else None
        if value is None:
            return None
        setattr(obj, attr, value)
        provenance[path] = Provenance("derived", f"{entry.value.formula} — {entry.source}")
        return value
    value = entry.value.copy() if isinstance(entry.value, dict) else entry.value
    setattr(obj, attr, value)
    provenance[path] = Provenance("default", entry.source)
    return value


def _resolve_stage(
    stage: Stage,
    prefix: str,
    context: dict[str, Any],
    recipe: Recipe,
    provenance: dict[str, Provenance],
    base_dir: Path | None,
    input_desc: str,
) -> StagePlan:
    """Resolve one stage in order: its mode, the data-mixing defaults, the step-free optimizer values (plus
    LoRA / RFT defaults), the data files, data size -> steps, the schedule, batch and tokens."""
    _fill(stage, "mode", f"{prefix}.mode", "mode", context, provenance)
    assert stage.name is not None and stage.mode is not None, "resolve() names the stage and fills its mode"
    plan = StagePlan(stage.name, stage.technique, stage.mode, input_desc)
    scope = _StageScope(stage, prefix, {**context, "mode": stage.mode}, provenance, plan)
    _fill_data_mixing(scope, recipe.model, base_dir)
    _fill_step_free_values(scope, recipe.seed)
    _fill_lora_and_rft(scope)
    _read_stage_data(stage, plan, base_dir, prefix)
    total_steps = _derive_steps(scope)
    _derive_schedule(scope, total_steps)
    _derive_batch_and_tokens(scope, total_steps)
    return plan


@dataclass
class _StageScope:
    """What the steps of one stage's resolution share: the stage, its provenance path prefix, the
    defaults-table context, the provenance being recorded and the plan being built."""

    stage: Stage
    prefix: str
    context: dict[str, Any]
    provenance: dict[str, Provenance]
    plan: StagePlan

    @property
    def hp(self) -> Hyperparameters:
        return self.stage.hyperparameters

    @property
    def hpp(self) -> str:
        return f"{self.prefix}.hyperparameters"

    @property
    def mix(self) -> DataMixing:
        assert self.stage.data_mixing is not None, "_fill_data_mixing runs first"
        return self.stage.data_mixing

    def fill(self, obj: Any, attr: str, path: str, key: str, derive: Any = None) -> Any:
        """`_fill` with this stage's context and provenance."""
        return _fill(obj, attr, f"{self.prefix}.{path}", key, self.context, self.provenance, derive)

    def fill_hp(self, attr: str, derive: Any = None) -> Any:
        return self.fill(self.hp, attr, f"hyperparameters.{attr}", f"hyperparameters.{attr}", derive)


def _fill_data_mixing(scope: _StageScope, model: ModelSpec, base_dir: Path | None) -> None:
    """The data-mixing defaults (needed for the epoch arithmetic) and where each general category's rows come
    from (checked now, shown by `plan`); raises `RecipeError` when general data is asked for but the technique
    has no default general mix, `DataError` when curated data cannot be served (offline without a mirror)."""
    stage = scope.stage
    if stage.data_mixing is None:
        stage.data_mixing = DataMixing()
    mix = stage.data_mixing
    mp = f"{scope.prefix}.data_mixing"
    scope.fill(mix, "customer_percent", "data_mixing.customer_percent", "data_mixing.customer_percent")
    if mix.general is None:
        if (mix.customer_percent or 0) >= 100:
            mix.general = {}
            scope.provenance[f"{mp}.general"] = Provenance(
                "derived", "customer_percent is 100: no general data"
            )
        else:
            scope.fill(mix, "general", "data_mixing.general", "data_mixing.general")
            if not mix.general:
                raise RecipeError(
                    f"{mp}: customer_percent is {mix.customer_percent:g} but {stage.technique} has no default "
                    "general mix — set data_mixing.general: {category: percent} or customer_percent: 100"
                )
    for attr in ("unit", "sampling", "max_general_repeats", "quality_tail_percent"):
        scope.fill(mix, attr, f"data_mixing.{attr}", f"data_mixing.{attr}")
    _fill_general_data(scope, model, base_dir)


def _fill_general_data(scope: _StageScope, model: ModelSpec, base_dir: Path | None) -> None:
    """`general_data` (built-in world data for the tiny family and models derived from it, curated Hub data
    for every other model), the curated mirror folder, and one plan note per category naming its source."""
    from tunesmith.data import self_replay
    from tunesmith.data.curated.load import MIRROR_ENV, check_sources, hub_offline, mirror_folder

    mix, mp = scope.mix, f"{scope.prefix}.data_mixing"
    shared = [category for category, share in (mix.general or {}).items() if share > 0]
    from_files = [category for category in shared if category in mix.general_sources]
    asked = [category for category in shared if category not in mix.general_sources]
    if mix.general_data is None:
        mix.general_data, why = _default_general_data(model)
        if (  # offline without a mirror, the curated default gives way to the start model's own answers
            mix.general_data == "curated"
            and asked
            and all(category in CATEGORIES for category in asked)
            and mix.general_mirror is None
            and mirror_folder(None) is None
            and (hub_offline() or not _hub_reachable())
        ):
            mix.general_data, why = "self", self_replay.FALLBACK_WHY
        scope.provenance[f"{mp}.general_data"] = Provenance("derived", why)
    for category in from_files:
        scope.plan.notes.append(f"general data: {category} <- file {mix.general_sources[category]}")
    if mix.general_data in ("builtin", "self"):
        unknown = [category for category in asked if category not in CATEGORIES]
        if unknown:
            what = "built-in general data" if mix.general_data == "builtin" else "self-replay prompt bank"
            raise RecipeError(
                f"{mp}.general.{unknown[0]}: the {what} has no such category — use one of "
                f"{', '.join(CATEGORIES)}, give a file in general_sources, or set general_data: curated"
            )
    if mix.general_data == "self":
        if asked:
            scope.plan.notes.append(self_replay.plan_note(asked, start_ref(model), mix.self_replay_prompts))
        return
    if mix.general_data == "builtin":
        for category in asked:
            scope.plan.notes.append(
                f"general data: {category} <- built-in generated world (tunesmith.data.general)"
            )
        return
    if mix.general_mirror is None and mirror_folder(None) is not None:
        mix.general_mirror = mirror_folder(None)
        scope.provenance[f"{mp}.general_mirror"] = Provenance("derived", f"${MIRROR_ENV}")
    if mix.general_mirror is not None:
        folder = Path(mix.general_mirror).expanduser()
        if (
            not folder.is_absolute()
            and not folder.exists()
            and base_dir is not None
            and (base_dir / folder).exists()
        ):
            folder = base_dir / folder
        mix.general_mirror = str(folder.resolve()) if folder.exists() else str(folder)
    for category, origin in check_sources(
        asked, mix.general_mirror, where=mp, hub_reachable=_hub_reachable
    ).items():
        scope.plan.notes.append(f"general data: {category} <- {origin}")


def _hub_reachable() -> bool:
    """The model loader's 3-second probe of the Hub (`tunesmith.models.loading`), used for datasets too."""
    from tunesmith.models.loading import _hub_reachable as probe

    return probe()


def _default_general_data(model: ModelSpec) -> tuple[str, str]:
    """(general_data, why): the tiny world's generated data only fits models that read its character
    vocabulary (the tiny family, or a folder trained from it); every other model gets curated data."""
    family = FAMILIES.get(model.family) if model.family else None
    if model.path is None and family is not None and family.kind == "embedded":
        return "builtin", f"the {family.name} family is trained on the built-in world's data"
    if model.path is not None and reads_tiny_vocabulary(Path(model.path).expanduser()):
        return "builtin", "the model folder uses the tiny family's tokenizer: its built-in world data fits it"
    return "curated", "a real model family: open curated datasets per category (tunesmith.data.curated)"


def reads_tiny_vocabulary(folder: Path) -> bool:
    """True when `folder/tokenizer.json` is the tiny family's character-level tokenizer (read only when it
    is small: a real tokenizer.json is megabytes)."""
    from tunesmith.models.tokenizer import vocabulary

    path = folder / "tokenizer.json"
    try:
        if path.stat().st_size > 64 * 1024:
            return False
        return json.loads(path.read_text(encoding="utf-8")).get("model", {}).get("vocab") == vocabulary()
    except (OSError, ValueError, AttributeError):
        return False


def _fill_step_free_values(scope: _StageScope, recipe_seed: int) -> None:
    """The optimizer and schedule values that do not depend on the step count; raises `RecipeError` for
    min_lr above lr and a micro batch that does not divide the global batch."""
    hp, hpp = scope.hp, scope.hpp
    lr = scope.fill_hp("lr")
    scope.fill_hp("min_lr", derive=lambda: lr / 10)
    for attr in (
        "decay",
        "global_batch_size",
        "max_length",
        "weight_decay",
        "grad_clip",
        "adam_beta1",
        "adam_beta2",
        "save_top_k",
        "packing",
        "length_grouping",
        "gradient_checkpointing",
    ):
        scope.fill_hp(attr)
    scope.fill_hp("micro_batch_size", derive=lambda: hp.global_batch_size)
    scope.fill_hp("seed", derive=lambda: recipe_seed)
    if hp.min_lr > hp.lr:
        raise RecipeError(f"{hpp}.min_lr ({hp.min_lr:g}) exceeds lr ({hp.lr:g}) — set min_lr <= lr")
    if hp.micro_batch_size > hp.global_batch_size:
        raise RecipeError(
            f"{hpp}.micro_batch_size ({hp.micro_batch_size}) exceeds global_batch_size ({hp.global_batch_size})"
        )
    if hp.global_batch_size % hp.micro_batch_size:
        raise RecipeError(
            f"{hpp}: global_batch_size ({hp.global_batch_size}) is not a multiple of micro_batch_size "
            f"({hp.micro_batch_size}) — pick a micro batch that divides it"
        )


def _fill_lora_and_rft(scope: _StageScope) -> None:
    """The LoRA adapter defaults (LoRA mode) and the RFT sampling / loss defaults (RFT stages)."""
    stage, hp = scope.stage, scope.hp
    if stage.mode == "lora":
        if hp.lora is None:
            hp.lora = LoraSpec()
        for attr in ("rank", "alpha", "dropout", "target_modules", "plus_lr_ratio"):
            scope.fill(hp.lora, attr, f"hyperparameters.lora.{attr}", f"hyperparameters.lora.{attr}")
    if stage.technique == "dpo":
        if stage.dpo is None:
            stage.dpo = DPOSpec()
        scope.fill(stage.dpo, "beta", "dpo.beta", "dpo.beta")
    if stage.technique == "rft":
        for attr in (
            "number_generation",
            "max_new_tokens",
            "temperature",
            "kl_coef",
            "drop_zero_variance_groups",
        ):
            scope.fill(stage.rft, attr, f"rft.{attr}", f"rft.{attr}")


def _read_stage_data(stage: Stage, plan: StagePlan, base_dir: Path | None, prefix: str) -> None:
    """The stage's inputs, each validated once before anything is computed from it: one snapshot of the
    training file (and of the validation file, quality file and general-source files, if any), kept on the
    plan for the step arithmetic and for training; the reward spec (RFT) is checked without calling it."""
    kind = stage.technique
    plan.train_data = snapshot_of(stage.data.train, kind, base_dir, key=f"{prefix}.data.train")
    if stage.data.validation:
        plan.validation_data = snapshot_of(
            stage.data.validation, kind, base_dir, key=f"{prefix}.data.validation"
        )
    mixing = stage.data_mixing
    if mixing is not None and mixing.quality_file:
        key = f"{prefix}.data_mixing.quality_file"
        plan.quality_data = snapshot_of(mixing.quality_file, kind, base_dir, key=key)
    for category, ref in (mixing.general_sources if mixing is not None else {}).items():
        key = f"{prefix}.data_mixing.general_sources.{category}"
        plan.general_data[category] = snapshot_of(ref, kind, base_dir, key=key)
    if stage.rft is not None and stage.rft.reward is not None:
        from tunesmith.rewards.loading import check_reward

        check_reward(stage.rft.reward, base_dir=base_dir, where=f"{prefix}.rft.reward")


def _derive_steps(scope: _StageScope) -> int:
    """Data size -> steps, from the data snapshots `_read_stage_data` took: examples per epoch, steps per
    epoch, total steps and epochs. Returns the total optimizer steps."""
    stage, plan, hp = scope.stage, scope.plan, scope.hp
    assert plan.train_data is not None, "_read_stage_data runs first"
    customer_examples = plan.train_data.examples
    plan.set("customer_examples", customer_examples, f"valid examples in {stage.data.train}")
    if plan.validation_data is not None:
        plan.set(
            "validation_examples", plan.validation_data.examples, f"valid examples in {stage.data.validation}"
        )
        if stage.technique == "rft":
            plan.set(
                "validation_prompts",
                min(plan.validation_data.examples, RFT_MAX_VALIDATION_PROMPTS, hp.global_batch_size),
                f"min(validation_examples, {RFT_MAX_VALIDATION_PROMPTS}, global_batch_size): a fixed subset, so "
                "one validation generates no more than one training step does",
            )
    share = scope.mix.customer_percent / 100
    examples_per_epoch = math.ceil(customer_examples / share) if share > 0 else None
    if examples_per_epoch is not None:
        plan.set(
            "examples_per_epoch",
            examples_per_epoch,
            "ceil(customer_examples / (customer_percent / 100)) — your data once, plus general data",
        )
        plan.set(
            "steps_per_epoch",
            math.ceil(examples_per_epoch / hp.global_batch_size),
            "ceil(examples_per_epoch / global_batch_size)",
        )

    if hp.max_steps is None and hp.max_epochs is None:
        steps_entry = table.lookup("hyperparameters.max_steps", scope.context)
        epochs_entry = table.lookup("hyperparameters.max_epochs", scope.context)
        if steps_entry and (not epochs_entry or steps_entry.specificity >= epochs_entry.specificity):
            scope.fill_hp("max_steps")
        else:
            scope.fill_hp("max_epochs")
    if hp.max_steps is not None:
        total_steps = hp.max_steps
        plan.set("total_steps", total_steps, "max_steps")
        if examples_per_epoch:
            plan.set(
                "epochs",
                round(total_steps * hp.global_batch_size / examples_per_epoch, 4),
                "total_steps * global_batch_size / examples_per_epoch",
            )
    else:
        if examples_per_epoch is None:
            raise RecipeError(
                f"{scope.hpp}: customer_percent is 0, so an epoch of your data is undefined — set max_steps"
            )
        total_steps = max(1, math.ceil(hp.max_epochs * examples_per_epoch / hp.global_batch_size))
        plan.set("total_steps", total_steps, "ceil(max_epochs * examples_per_epoch / global_batch_size)")
        plan.set("epochs", hp.max_epochs, "max_epochs")
    return total_steps


def _derive_schedule(scope: _StageScope, total_steps: int) -> None:
    """The schedule phase boundaries: warmup (steps <-> ratio), constant and decay steps, the LR at each
    boundary, and the validation interval; raises `RecipeError` when warmup + constant exceed the steps."""
    plan, hp, hpp, provenance = scope.plan, scope.hp, scope.hpp, scope.provenance
    if hp.warmup_steps is None:
        ratio = hp.warmup_ratio
        if ratio is None:
            entry = table.lookup("hyperparameters.warmup_ratio", scope.context)
            ratio = entry.value
            provenance[f"{hpp}.warmup_ratio"] = Provenance("default", entry.source)
            hp.warmup_ratio = ratio
        hp.warmup_steps = round(ratio * total_steps)
        provenance[f"{hpp}.warmup_steps"] = Provenance(
            "derived", f"round(warmup_ratio {ratio:g} * total_steps {total_steps})"
        )
    else:
        hp.warmup_ratio = round(hp.warmup_steps / total_steps, 6)
        provenance[f"{hpp}.warmup_ratio"] = Provenance("derived", "warmup_steps / total_steps")
    if hp.constant_steps is None:
        scope.fill_hp(
            "constant_steps", derive=lambda: max(0, total_steps - hp.warmup_steps - round(0.2 * total_steps))
        )
    decay_steps = total_steps - hp.warmup_steps - hp.constant_steps
    if decay_steps < 0:
        raise RecipeError(
            f"{hpp}: warmup_steps ({hp.warmup_steps}) + constant_steps ({hp.constant_steps}) exceed the stage's "
            f"{total_steps} optimizer steps — lower them or train longer"
        )
    plan.set("warmup_steps", hp.warmup_steps, "warmup")
    plan.set("constant_steps", hp.constant_steps, "held at peak lr")
    plan.set("decay_steps", decay_steps, "total_steps - warmup_steps - constant_steps")
    plan.set(
        "lr_phases",
        {
            "step 0": 0.0,
            f"step {hp.warmup_steps} (end of warmup)": hp.lr,
            f"step {hp.warmup_steps + hp.constant_steps} (end of constant)": hp.lr,
            f"step {total_steps} (end, {hp.decay} ramp-down)": hp.min_lr,
        },
        "linear warmup from 0 -> constant at lr -> ramp down to min_lr",
    )
    scope.fill_hp(
        "val_check_interval", derive=lambda: validation_interval(total_steps, validation_cost(scope))
    )


RFT_MAX_VALIDATION_PROMPTS = 64
"""The most validation prompts an RFT stage scores each time (each sampled `number_generation` times)."""

VALIDATION_SHARE = 0.1
"""The most time validation may take relative to the training between two validations. A quarter let the
forgetting probe make a 20-step run of the 30M stand-in on short examples 18% slower than bare TRL (five probes
of 40 items, ~1.2 s each against 1.5 s steps; benchmarks/RESULTS.md); long runs validate every
total_steps // 10 steps either way."""


def validation_cost(scope: _StageScope) -> float:
    """One validation's cost in training steps: SFT/CPT score `validation_examples` with a forward pass,
    about a third of a training step's forward and backward per token ([kaplan-2020]: 2N vs 6N FLOPs), and
    the forgetting probe, which runs with it unless `monitoring.probe_interval` spaces it apart, scores its
    general items the same way; RFT generates for `validation_prompts` as a training step does for
    `global_batch_size` prompts."""
    numbers, batch = scope.plan.numbers, scope.hp.global_batch_size
    if scope.stage.technique == "rft":
        return numbers.get("validation_prompts", 0) / batch
    monitoring = MonitorSettings.from_spec(scope.stage.monitoring)
    probe = monitoring.probe_items() if monitoring.probe_interval is None else 0
    return (numbers.get("validation_examples", 0) + probe) / (3 * batch)


def validation_interval(total_steps: int, cost_steps: float) -> int:
    """Steps between validations: about ten per stage (so save_top_k has candidates), but far enough apart
    that validating takes at most `VALIDATION_SHARE` of the training time; never more than the stage."""
    spaced = math.ceil(cost_steps / VALIDATION_SHARE - 1e-9)
    return max(1, min(total_steps, max(total_steps // 10, spaced)))


def _derive_batch_and_tokens(scope: _StageScope, total_steps: int) -> None:
    """Batch and tokens: gradient accumulation, samples / tokens per step and in total, and how many of the
    customer's and general examples the stage sees."""
    stage, plan, hp, mix = scope.stage, scope.plan, scope.hp, scope.mix
    share = mix.customer_percent / 100
    plan.set(
        "gradient_accumulation",
        hp.global_batch_size // hp.micro_batch_size,
        "global_batch_size / micro_batch_size (per process count 1; divided by the number of processes)",
    )
    if stage.technique == "rft":
        samples = hp.global_batch_size * stage.rft.number_generation
        plan.set("samples_per_step", samples, "global_batch_size prompts * number_generation")
        plan.set(
            "generated_tokens_per_step_max",
            samples * stage.rft.max_new_tokens,
            "samples_per_step * max_new_tokens",
        )
    else:
        tokens_per_step = hp.global_batch_size * hp.max_length
        plan.set(
            "tokens_per_step_max", tokens_per_step, "global_batch_size * max_length (padded upper bound)"
        )
        plan.set(
            "total_tokens_max",
            tokens_per_step * total_steps,
            "max_length * global_batch_size * total_steps ([nova-recipes])",
        )
    plan.set(
        "customer_examples_seen",
        round(total_steps * hp.global_batch_size * share),
        "total_steps * global_batch_size * customer_percent / 100",
    )
    if mix.general:
        plan.set(
            "general_examples_seen",
            round(total_steps * hp.global_batch_size * (1 - share)),
            "total_steps * global_batch_size * (1 - customer_percent / 100)",
        )


def _resolve_evaluation(recipe: Recipe, provenance: dict[str, Provenance], size_class: str) -> None:
    ev = recipe.evaluation
    _fill(
        ev,
        "general_items_per_category",
        "evaluation.general_items_per_category",
        "evaluation.general_items_per_category",
        {"size_class": size_class},
        provenance,
    )
    if ev.domain is None:
        for stage in recipe.stages:
            if stage.data.train.startswith("builtin:brindle/"):
                ev.domain = "builtin:brindle/eval"
                provenance["evaluation.domain"] = Provenance(
                    "derived", "the built-in demo domain's held-out set"
                )
                break
    if "suites" not in {p.split(".")[-1] for p in provenance if p.startswith("evaluation.")}:
        provenance["evaluation.suites"] = Provenance(
            "default",
            "'Always evaluate both the domain task and general benchmarks' ([nova-cpt-docs]; [nova-evaluation])",
        )


def count_examples(ref: str, base_dir: Path | None = None, kind: str | None = None) -> int:
    """How many valid examples a data reference holds (JSONL records, .txt documents, rows of a parquet file
    or datasets folder); an invalid line raises `DataError` as `data inspect` does."""
    return snapshot_of(ref, kind, base_dir).examples


def snapshot_of(
    ref: str, kind: str | None, base_dir: Path | None = None, *, key: str | None = None
) -> DataSnapshot:
    """One streaming pass over a data reference (`tunesmith.data.snapshot`), validated as `data inspect`
    validates it: an unreadable file or any invalid line raises `DataError` (`FILE:LINE: what — fix`); a
    folder that is not a saved datasets folder raises `RecipeError`. `key` (the recipe key naming the file)
    is put in front of a not-found message."""
    from tunesmith.data.snapshot import check_data_folder, take_snapshot

    try:
        path = locate_data(ref, base_dir)
    except RecipeError as err:
        raise RecipeError(f"{key}: {err}" if key else str(err)) from None
    check_data_folder(path, ref)
    snapshot = take_snapshot(path, kind)
    if snapshot.records == 0:  # nothing readable: the reader's own error (a damaged parquet file) says why
        raise RecipeError(snapshot.error or f"{ref}: the data file is empty — it needs at least one example")
    return snapshot.check()


def locate_data(ref: str, base_dir: Path | None = None) -> Path:
    """A data reference as a local path: `builtin:` refs are materialized; relative paths are tried from the
    current folder, then from the recipe's folder."""
    if ref.startswith("builtin:"):
        from tunesmith.data.builtin import resolve_builtin

        return resolve_builtin(ref)
    path = Path(ref).expanduser()
    if path.exists():
        return path
    if base_dir is not None and not path.is_absolute() and (base_dir / path).exists():
        return base_dir / path
    raise RecipeError(
        f"{ref}: data file not found — check the path (relative paths are read from the current "
        "folder or the recipe's folder)"
    )
