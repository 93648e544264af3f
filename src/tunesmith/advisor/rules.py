"""The pitfall rules: one registry of small pure functions over a resolved recipe.

Each rule is `check(resolved, facts) -> list[Finding]`, registered with `@rule(id, severity, summary)`.
`resolved` is `tunesmith.recipe.resolve.ResolvedRecipe` (every value filled, derived numbers per stage);
`facts` holds the plain values a rule cannot read from the recipe (data statistics, a probe result).
Adding a rule is one function here and one test in tests/unit/test_advisor_rules.py.

Sources are keys of docs/references.md; most rules quote the playbook, [nova-hpo-blog] ("The art and
science of hyperparameter optimization on Amazon Nova Forge": its workflow and pitfalls table). LRs are compared with the family's own default from the defaults
table (`tunesmith.recipe.defaults.lookup`), so the tiny family is judged by its measured values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunesmith.advisor.findings import Finding, Severity
from tunesmith.advisor.stats import StageDataStats
from tunesmith.recipe import defaults as table
from tunesmith.recipe.resolve import ResolvedRecipe
from tunesmith.recipe.resolve import input_checkpoints as stage_input_checkpoints
from tunesmith.recipe.schema import ResolvedConfig, ResolvedStage

RIF = "reasoning-instruction-following"

RFT_PROBE_THRESHOLD = 0.05
"""'Proceed with RFT directly if the base model achieves more than approximately 5 percent positive
reward' ([nova-hpo-blog], recommended workflow)."""


@dataclass(frozen=True)
class LintFacts:
    """Plain values the rules need beyond the recipe: per-stage data statistics (by stage index), the
    RFT readiness probe's positive-reward rate (0-1) when it was run, and whether the model can be loaded."""

    stage_data: dict[int, StageDataStats] = field(default_factory=dict)
    probe_positive_rate: float | None = None
    model_unavailable: str | None = None  # why the start model cannot be loaded here (None: it can)


Check = Callable[[ResolvedRecipe, LintFacts], list[Finding]]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity  # the most severe level the rule reports
    summary: str
    check: Check


RULES: dict[str, Rule] = {}


def rule(rule_id: str, severity: Severity, summary: str) -> Callable[[Check], Check]:
    """Register a rule under a stable id."""

    def register(check: Check) -> Check:
        assert rule_id not in RULES, rule_id
        RULES[rule_id] = Rule(rule_id, severity, summary, check)
        return check

    return register


# ------------------------------------------------------------------------------------------- helpers


def input_checkpoints(resolved: ResolvedRecipe) -> list[str | None]:
    """The kind of checkpoint each stage starts from (`tunesmith.recipe.resolve.input_checkpoints`, the
    rule `resolve()` applies)."""
    recipe = resolved.recipe
    return stage_input_checkpoints(recipe.model.checkpoint, [stage.technique for stage in recipe.stages])


def default_for(resolved: ResolvedRecipe, index: int, key: str, *, scale: str | None = None) -> Any:
    """The family's default `key` for stage `index` (None if the table has none or it is derived)."""
    return stage_default(resolved.recipe, resolved.size_class, index, key, scale=scale)


def stage_default(
    recipe: ResolvedConfig, size_class: str, index: int, key: str, *, scale: str | None = None
) -> Any:
    """`default_for` on a stored resolved recipe and its size class (what a run folder keeps: the evaluation's
    verdict compares a run's LR with its family default this way)."""
    stage = recipe.stages[index]
    kinds = stage_input_checkpoints(recipe.model.checkpoint, [s.technique for s in recipe.stages])
    context = {
        "size_class": size_class,
        "technique": stage.technique,
        "mode": stage.mode,
        "checkpoint": kinds[index],
        "scale": scale or stage.scale or "standard",
    }
    entry = table.lookup(key, context)
    return None if entry is None or isinstance(entry.value, table.Derived) else entry.value


def mixing_on(stage: ResolvedStage) -> bool:
    """True when general data is mixed into the stage."""
    mix = stage.data_mixing
    return mix.customer_percent < 100 and any(share > 0 for share in mix.general.values())


def where(resolved: ResolvedRecipe, index: int) -> str:
    return f"stages[{index}] ({resolved.stages[index].name})"


def _lr_phrase(resolved: ResolvedRecipe, index: int) -> str:
    stage = resolved.recipe.stages[index]
    return f"the {resolved.size_class}-class {stage.technique} {stage.mode} default"


# -------------------------------------------------------------------------------------------- rules


@rule("model-not-available", "error", "the starting model cannot be loaded on this machine")
def model_not_available(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """A catalog family or Hub id that is neither a local folder nor in the Hugging Face cache, while the Hub
    is out of reach (`HF_HUB_OFFLINE`, or no network): `train` would fail at the first load, so say it before
    a run folder is written ([transformers-docs], offline mode)."""
    if facts.model_unavailable is None:
        return []
    return [
        Finding(
            "model-not-available",
            "error",
            facts.model_unavailable,
            "set model.path to a local model folder (what `hf download` or `save_pretrained` writes)",
            "[transformers-docs] offline mode",
            "model",
        )
    ]


@rule("lr-deviates-while-mixing", "error", "LR changed from the family default while data mixing is on")
def lr_deviates_while_mixing(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """'Deviating from the default learning rate when mixing Nova data with your own data is the most common
    source of training instability' ([nova-hpo-blog]; [nova-data-mixing]). Error beyond the
    service's own one-at-a-time sweep grid (default x0.5 .. x2, [nova-sft-docs], [nova-recipes]), else warning."""
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        default = default_for(resolved, i, "hyperparameters.lr")
        if not mixing_on(stage) or default is None:
            continue
        lr = stage.hyperparameters.lr
        ratio = lr / default
        if abs(ratio - 1) <= 0.01:
            continue
        general_percent = 100 - stage.data_mixing.customer_percent
        out.append(
            Finding(
                "lr-deviates-while-mixing",
                "error" if not 0.5 <= ratio <= 2 else "warning",
                f"lr {lr:g} is {ratio:.3g}x {_lr_phrase(resolved, i)} {default:g} while {general_percent:g}% "
                "general data is mixed in (the most common cause of instability)",
                f"use lr {default:g} (drop hyperparameters.lr) and tune the mix instead",
                "[nova-hpo-blog] pitfalls; [nova-data-mixing]",
                where(resolved, i),
            )
        )
    return out


@rule("sft-mix-without-rif", "warning", f"SFT general mix without '{RIF}'")
def sft_mix_without_rif(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """'For SFT, always include the reasoning-instruction-following category ... Skipping this category is a
    common cause of degraded reasoning performance' ([nova-hpo-blog]; [nova-data-mixing])."""
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        if stage.technique != "sft" or not mixing_on(stage):
            continue
        general = stage.data_mixing.general
        if general.get(RIF, 0) > 0:
            continue
        out.append(
            Finding(
                "sft-mix-without-rif",
                "warning",
                f"the general mix ({', '.join(f'{k} {v:g}%' for k, v in general.items())}) has no '{RIF}'",
                f"add data_mixing.general.{RIF} (e.g. 30) and rebalance the shares to 100",
                "[nova-hpo-blog] data mixing strategy; [nova-data-mixing]",
                where(resolved, i),
            )
        )
    return out


@rule("customer-share-far-from-50", "warning", "customer share far from ~50% without a stated reason")
def customer_share_far_from_50(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """'balance your customer data around 50 percent of the total mix for most use cases' ([nova-hpo-blog];
    [nova-data-mixing]). Far = outside 25-75%, the range the service's own mixing experiments
    span (10-75% general data, [nova-sft-docs]). State a reason with `acknowledge` to silence it."""
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        mix = stage.data_mixing
        if stage.technique in ("rft", "dpo") and not mixing_on(stage):
            continue  # RFT and DPO train on prompts + reward / pairs; the service mixes CPT and SFT only ([nova-data-mixing])
        percent = mix.customer_percent
        if abs(percent - 50) <= 25:
            continue
        detail = (
            "no general data is mixed in: domain-only runs lost 45-100 points of general accuracy on the "
            "tiny family ([tiny-feasibility])"
            if percent >= 100
            else f"{100 - percent:g}% of every batch is general data"
        )
        out.append(
            Finding(
                "customer-share-far-from-50",
                "warning",
                f"customer_percent is {percent:g} (recommended ~50): {detail}",
                "set data_mixing.customer_percent: 50, or state why under "
                f"acknowledge: {{customer-share-far-from-50@{resolved.stages[i].name}: <reason>}}",
                "[nova-hpo-blog] data mixing strategy; [nova-data-mixing]",
                where(resolved, i),
            )
        )
    return out


@rule("cpt-pretrained-without-sft", "error", "CPT on a pre-trained checkpoint not followed by SFT")
def cpt_pretrained_without_sft(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """'pre-trained checkpoints have no instructions for tuning. After CPT, you must run SFT to make the
    model useful' ([nova-hpo-blog] checkpoint selection; [nova-cpt-docs])."""
    stages = resolved.recipe.stages
    kinds = input_checkpoints(resolved)
    out = []
    for i, stage in enumerate(stages):
        if stage.technique != "cpt" or kinds[i] != "pre-trained":
            continue
        if any(later.technique == "sft" for later in stages[i + 1 :]):
            continue
        out.append(
            Finding(
                "cpt-pretrained-without-sft",
                "error",
                "CPT starts from a pre-trained checkpoint (no instruction tuning) and no SFT stage follows",
                "add an sft stage after it (demonstrations, LoRA, mixing with reasoning-instruction-following)",
                "[nova-hpo-blog] checkpoint selection; [nova-cpt-docs]",
                where(resolved, i),
            )
        )
    return out


@rule("dpo-before-instruction-tuning", "warning", "DPO on a checkpoint that is not instruction-tuned")
def dpo_before_instruction_tuning(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """DPO refines a model that already follows instructions: 'particularly valuable for refining model
    behavior after initial SFT' ([nova-dpo-docs]); its pairs teach a preference between two answers, not how
    to answer ([rafailov-2023] starts from an SFT model). Warns when a dpo stage starts from a pre- or
    mid-trained checkpoint with no SFT before it."""
    kinds = input_checkpoints(resolved)
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        if stage.technique != "dpo" or kinds[i] in (None, "post-trained"):
            continue
        out.append(
            Finding(
                "dpo-before-instruction-tuning",
                "warning",
                f"DPO starts from a {kinds[i]} checkpoint with no SFT before it: preference pairs refine "
                "answers the model can already give",
                "add an sft stage before it, or start from a post-trained checkpoint",
                "[nova-dpo-docs]; [rafailov-2023]",
                where(resolved, i),
            )
        )
    return out


@rule("lora-from-pretrained", "warning", "LoRA starting from a pre-trained checkpoint")
def lora_from_pretrained(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """'Use post-trained checkpoints as your starting point for LoRA training' ([nova-hpo-blog] training mode;
    [nova-cpt-docs]: Demonstrations | PEFT | Post-Trained)."""
    kinds = input_checkpoints(resolved)
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        if stage.mode != "lora" or kinds[i] != "pre-trained":
            continue
        out.append(
            Finding(
                "lora-from-pretrained",
                "warning",
                f"{stage.technique} with LoRA starts from a pre-trained checkpoint (still no instruction "
                "tuning); LoRA's frozen base keeps what is there, not what is missing",
                "start LoRA from model.checkpoint: post-trained, or train this stage at mode: full",
                "[nova-hpo-blog] training mode; [nova-cpt-docs]",
                where(resolved, i),
            )
        )
    return out


@rule("full-rank-without-lora", "warning", "full rank without a prior LoRA stage")
def full_rank_without_lora(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """'Start with LoRA to validate your pipeline, data quality, and reward function ... Graduate to Full
    Rank when you have confirmed the approach works' ([nova-hpo-blog]). CPT stages
    are exempt: CPT on pre-/mid-trained checkpoints is full rank by default ([nova-cpt-docs])."""
    out = []
    stages = resolved.recipe.stages
    for i, stage in enumerate(stages):
        if stage.technique == "cpt" or stage.mode != "full":
            continue
        if any(prior.mode == "lora" for prior in stages[:i]):
            continue
        out.append(
            Finding(
                "full-rank-without-lora",
                "warning",
                f"{stage.technique} trains at full rank with no LoRA stage validating the pipeline first",
                "run it with mode: lora first; once validated, acknowledge: "
                f"{{full-rank-without-lora@{resolved.stages[i].name}: <the LoRA run>}}",
                "[nova-hpo-blog] recommended workflow",
                where(resolved, i),
            )
        )
    return out


@rule("cpt-multiple-epochs", "error", "more than one epoch of CPT")
def cpt_multiple_epochs(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """'For CPT, process at most one epoch of your dataset' ([nova-hpo-blog]); multiple epochs on limited CPT data
    cause overfitting and memorisation (pitfalls table, [nova-hpo-blog]). Error from two
    epochs, warning between 1.05 and 2 (rounding of max_steps)."""
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        epochs = resolved.stages[i].numbers.get("epochs")
        if stage.technique != "cpt" or epochs is None or epochs <= 1.05:
            continue
        out.append(
            Finding(
                "cpt-multiple-epochs",
                "error" if epochs >= 2 else "warning",
                f"CPT makes {epochs:g} passes over {resolved.stages[i].numbers.get('customer_examples')} "
                "documents (at most 1)",
                "set hyperparameters.max_epochs: 1 (or lower max_steps); add data rather than repeat it",
                "[nova-hpo-blog] pitfalls",
                where(resolved, i),
            )
        )
    return out


@rule("sft-full-multi-epoch", "warning", "SFT full rank with several epochs")
def sft_full_multi_epoch(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """'For SFT, Full Rank training typically needs fewer epochs than LoRA' ([nova-hpo-blog]); full-rank
    guidance is 1 epoch ([nova-sft-docs]), and doubling to 2 epochs dropped MedReason 63.54% -> 61.42%
    ([nova-recipes] [nova-hpo-blog])."""
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        epochs = resolved.stages[i].numbers.get("epochs")
        if stage.technique != "sft" or stage.mode != "full" or epochs is None or epochs < 2:
            continue
        out.append(
            Finding(
                "sft-full-multi-epoch",
                "warning",
                f"full-rank SFT makes {epochs:g} passes over your demonstrations "
                f"({resolved.stages[i].numbers.get('total_steps')} steps); full rank needs ~1",
                "set hyperparameters.max_epochs: 1 and keep the best checkpoint by validation",
                "[nova-hpo-blog] batch size and training duration; [nova-recipes]",
                where(resolved, i),
            )
        )
    return out


MIN_REPEAT_EPOCHS = 1.5
"""Epochs from which an SFT stage repeats its data (at least half of it a second time): below, it shows the
file once (max_steps rounding included) and the file's own duplicates are the data's business (`data
inspect` counts them)."""

MAX_UNIQUE_PASSES = 2.0
"""Passes over the unique demonstrations an SFT stage may make: the managed service's LoRA default is 2
epochs ([nova-sft-docs]), and on narrow data 2 epochs already hurt ([nova-hpo-blog])."""


TINY_EPOCHS_MEASURED = (
    "; on the tiny class the playbook measured the opposite (info, not a warning): a second LoRA epoch over "
    "Brindle added +41.5 domain points [+35, +48] with general +2.0 [-2.7, +6.7] (benchmarks/RESULTS.md, "
    "`tunesmith experiments playbook`, claim 4)"
)
"""Why the rule is only information on the tiny class: its own measurement contradicts the source there."""


@rule(
    "sft-epochs-over-narrow-data", "warning", "SFT repeats narrow data: > ~2 passes over the unique examples"
)
def sft_epochs_over_narrow_data(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """'Doubling to 2 epochs at the same learning rate dropped accuracy to 61.42 percent, confirming that
    overtraining on narrow domain data erodes both domain and general performance' ([nova-hpo-blog]: LoRA SFT
    on MedReason, 1 epoch 63.54%). Fires when a stage of at least `MIN_REPEAT_EPOCHS` epochs sees each unique
    demonstration more than `MAX_UNIQUE_PASSES` times on average (epochs x rows / unique rows)."""
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        numbers = resolved.stages[i].numbers
        epochs, rows = numbers.get("epochs"), numbers.get("customer_examples")
        data = facts.stage_data.get(i)
        unique = data.unique_examples if data is not None else None
        if stage.technique != "sft" or epochs is None or epochs < MIN_REPEAT_EPOCHS or not rows or not unique:
            continue
        passes = epochs * rows / unique
        if passes <= MAX_UNIQUE_PASSES:
            continue
        per_epoch = numbers.get("steps_per_epoch")
        fewer = f"max_steps: {per_epoch} is 1 epoch" if per_epoch else "max_epochs: 1"
        tiny = resolved.size_class == "tiny"
        out.append(
            Finding(
                "sft-epochs-over-narrow-data",
                "info" if tiny else "warning",
                f"SFT makes {epochs:.3g} epochs over {rows:,} rows of which {unique:,} are unique: each unique "
                f"demonstration is seen ~{passes:.1f} times (more than ~{MAX_UNIQUE_PASSES:g}); on narrow data, 1 -> 2 "
                "epochs dropped MedReason 63.54% -> 61.42% (domain and general both eroded)"
                + (TINY_EPOCHS_MEASURED if tiny else ""),
                f"train fewer steps ({fewer}), or add unique demonstrations",
                "[nova-hpo-blog] experiments and insights",
                where(resolved, i),
            )
        )
    return out


@rule("warmup-far-from-15", "warning", "warmup far from ~15% of the steps")
def warmup_far_from_15(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """'Configure warmup steps to approximately 15 percent of your total training steps' ([nova-hpo-blog]).
    Compared with the defaults table's ratio (15%; 1% for large-scale CPT);
    far = more than 10 points away. Runs under 10 steps are skipped (warmup rounds to whole steps)."""
    out = []
    for i in range(len(resolved.recipe.stages)):
        numbers = resolved.stages[i].numbers
        total, warmup = numbers.get("total_steps"), numbers.get("warmup_steps")
        default = default_for(resolved, i, "hyperparameters.warmup_ratio")
        if not total or warmup is None or default is None or total < 10:
            continue
        ratio = warmup / total
        if abs(ratio - default) <= 0.10:
            continue
        out.append(
            Finding(
                "warmup-far-from-15",
                "warning",
                f"warmup is {warmup} of {total} steps ({ratio:.0%}); the default is {default:.0%}",
                f"drop warmup_steps/warmup_ratio (default {round(default * total)} steps) or set warmup_ratio: "
                f"{default:g}",
                "[nova-hpo-blog] learning rate configuration",
                where(resolved, i),
            )
        )
    return out


def probe_rate(stage: ResolvedStage, facts: LintFacts) -> float | None:
    """The RFT probe's positive-reward rate (0-1): from `facts`, else the recipe's `rft.probe_positive_rate`."""
    if facts.probe_positive_rate is not None:
        return facts.probe_positive_rate
    return stage.rft.probe_positive_rate if stage.rft is not None else None


@rule("rft-without-sft-or-probe", "error", "RFT with no SFT before it and no (or a failing) probe result")
def rft_without_sft_or_probe(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """Pitfall 1, 'Skipping SFT before RFT' -> no improvement or degradation. RFT-only is right 'if the base
    model achieves more than approximately 5 percent positive reward'; 'Fall back to SFT if reward scores
    are consistently near zero' ([nova-hpo-blog]). Info without a probe result
    (`train` runs the readiness probe itself before the stage and refuses a hopeless one), error when the
    recorded probe is at or below 5%, info above 95% (RFT may be unnecessary, [nova-hpo-blog])."""
    out = []
    stages = resolved.recipe.stages
    for i, stage in enumerate(stages):
        if stage.technique != "rft" or any(prior.technique == "sft" for prior in stages[:i]):
            continue
        rate = probe_rate(stage, facts)
        source = "[nova-hpo-blog] recommended workflow, pitfalls"
        if rate is None:
            out.append(
                Finding(
                    "rft-without-sft-or-probe",
                    "info",
                    "RFT runs with no SFT stage before it and no probe result in the recipe: `tunesmith train` "
                    "will probe the starting checkpoint first and refuse below 5% positive reward",
                    "check now with `tunesmith probe --model <checkpoint> --data <prompts> --reward <reward>` "
                    "(then record it as rft.probe_positive_rate), or add an sft stage first",
                    source,
                    where(resolved, i),
                )
            )
        elif rate <= RFT_PROBE_THRESHOLD:
            out.append(
                Finding(
                    "rft-without-sft-or-probe",
                    "error",
                    f"the probe found {rate:.1%} positive reward (needs > {RFT_PROBE_THRESHOLD:.0%}) and no SFT "
                    "stage comes first: RFT has nothing to reinforce",
                    "add an sft stage on demonstrations before the rft stage",
                    source,
                    where(resolved, i),
                )
            )
        elif rate > 0.95:
            out.append(
                Finding(
                    "rft-without-sft-or-probe",
                    "info",
                    f"the probe found {rate:.1%} positive reward: RFT may be unnecessary (little to improve)",
                    "check the reward discriminates across quality levels before spending compute",
                    "[nova-hpo-blog] (evaluate first; pitfalls table)",
                    where(resolved, i),
                )
            )
    return out


@rule("rft-lr-raised", "error", "RFT LR raised by more than a small multiplier")
def rft_lr_raised(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """RFT: 'Adjust in small multiplier increments only if needed ... Even a small multiplier increase can
    drop performance below baseline' ([nova-hpo-blog]). Warning above 2x the
    family default, error above 10x."""
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        default = default_for(resolved, i, "hyperparameters.lr")
        if stage.technique != "rft" or default is None:
            continue
        ratio = stage.hyperparameters.lr / default
        if ratio <= 2:
            continue
        out.append(
            Finding(
                "rft-lr-raised",
                "error" if ratio > 10 else "warning",
                f"RFT lr {stage.hyperparameters.lr:g} is {ratio:.3g}x {_lr_phrase(resolved, i)} {default:g}",
                f"start at {default:g} and raise in small steps (<= 2x) only if reward stalls",
                "[nova-hpo-blog] learning rate configuration; [nova-rft-docs]",
                where(resolved, i),
            )
        )
    return out


def task_count(stage: ResolvedStage) -> int:
    """How many tasks the SFT data covers (`data.tasks`; else 1)."""
    return stage.data.tasks or 1


@rule("sft-data-count", "warning", "SFT data outside 1,000-10,000 demonstrations per task")
def sft_data_count(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """SFT needs '1,000-10,000 high-quality demonstrations per task. Quality, consistency, and diversity
    matter more than volume' ([nova-hpo-blog] technique table). Warning below, info
    above."""
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        count = resolved.stages[i].numbers.get("customer_examples")
        if stage.technique != "sft" or count is None:
            continue
        tasks = task_count(stage)
        per_task = count / tasks
        if 1000 <= per_task <= 10000:
            continue
        low = per_task < 1000
        per = f" ({per_task:.0f} per task over {tasks} tasks)" if tasks > 1 else ""
        out.append(
            Finding(
                "sft-data-count",
                "warning" if low else "info",
                f"{count} demonstrations{per}: the playbook asks for 1,000-10,000 per task",
                "collect more high-quality demonstrations (or distil them from reward-passing samples)"
                if low
                else "more is not better past ~10,000 per task: favour quality and diversity, deduplicate",
                "[nova-hpo-blog] customization techniques",
                where(resolved, i),
            )
        )
    return out


@rule("max-length-mismatch", "warning", "max_length far from the data's length distribution")
def max_length_mismatch(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """'Match your max sequence length to your data distribution' ([nova-hpo-blog]).
    SFT/RFT: > 1% of sampled examples (RFT: prompt + max_new_tokens) over max_length are truncated ->
    warning. Any stage: max_length over 8x the 99th-percentile length -> info. CPT splits long documents
    (tunesmith.data.packing), so only the second check applies. No tokenizer -> info."""
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        data = facts.stage_data.get(i)
        if data is None:
            continue
        source = "[nova-hpo-blog] batch size and training duration"
        if data.lengths is None:
            out.append(
                Finding(
                    "max-length-mismatch",
                    "info",
                    f"lengths not measured: {data.unavailable}",
                    "run `tunesmith data inspect FILE --tokenizer MODEL --max-length N` where the model is",
                    source,
                    where(resolved, i),
                )
            )
            continue
        max_length = stage.hyperparameters.max_length
        stats = data.lengths
        extra = stage.rft.max_new_tokens if stage.technique == "rft" and stage.rft else 0
        p50, p99, longest = stats.quantile(0.5), stats.quantile(0.99), stats.lengths[-1]
        sample = f"{len(stats.lengths)}{'+' if stats.capped else ''} sampled examples"
        if stage.technique in ("sft", "rft"):
            over = stats.share_over(max_length - extra)
            if over > 0.01:
                what = "prompt + max_new_tokens" if extra else "examples"
                out.append(
                    Finding(
                        "max-length-mismatch",
                        "warning",
                        f"{over:.1%} of {sample} exceed max_length {max_length} ({what}; p50 {p50}, p99 "
                        f"{p99 + extra}, longest {longest + extra} tokens): they are truncated",
                        f"set hyperparameters.max_length to about {_round_up(p99 + extra)} or shorten them",
                        source,
                        where(resolved, i),
                    )
                )
                continue
        if max_length > 8 * max(p99 + extra, 1) and max_length > 64:
            out.append(
                Finding(
                    "max-length-mismatch",
                    "info",
                    f"max_length {max_length} is {max_length / max(p99 + extra, 1):.0f}x the data's p99 length "
                    f"({p99 + extra} tokens over {sample})",
                    f"a max_length near {_round_up(p99 + extra)} matches the data (less memory per step)",
                    source,
                    where(resolved, i),
                )
            )
    return out


def _round_up(tokens: int) -> int:
    """Next multiple of 64 (at least 64)."""
    return max(64, -(-tokens // 64) * 64)


@rule("reasoning-mismatch", "warning", "reasoning/thinking setting differs between training and evaluation")
def reasoning_mismatch(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """Pitfall 5, mismatched reasoning settings: 'match reasoning_enabled between training and inference'
    ([nova-hpo-blog]; [nova-sft-docs]; [nova-forge-sdk]). Compares the stage's
    `hyperparameters.reasoning_enabled` with `evaluation.reasoning_enabled`; without a stage setting, SFT data
    with reasoning traces (>= 50% of sampled examples) counts as on and data without any as off."""
    evaluation = resolved.recipe.evaluation.reasoning_enabled
    if evaluation is None:
        return []
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        if stage.technique == "cpt":
            continue
        trained = stage.hyperparameters.reasoning_enabled
        basis = "the stage's reasoning setting"
        data = facts.stage_data.get(i)
        if trained is None and data is not None and data.reasoning_share is not None:
            if data.reasoning_share >= 0.5:
                trained, basis = (
                    True,
                    f"{data.reasoning_share:.0%} of the demonstrations carry reasoning traces",
                )
            elif data.reasoning_share == 0:
                trained, basis = False, "no demonstration carries a reasoning trace"
        if trained is None or trained == evaluation:
            continue
        out.append(
            Finding(
                "reasoning-mismatch",
                "warning",
                f"reasoning is {'on' if trained else 'off'} in training ({basis}) but "
                f"{'on' if evaluation else 'off'} in evaluation",
                "use the same reasoning/thinking setting for training, evaluation and serving",
                "[nova-hpo-blog] pitfalls; [nova-forge-sdk]",
                where(resolved, i),
            )
        )
    return out


@rule("no-validation-set", "warning", "a validation set missing (no way to pick the best checkpoint)")
def no_validation_set(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """'Monitor validation loss to select the best SFT checkpoint' ([nova-hpo-blog] recommended workflow); checkpoints
    are kept by validation metric (save_top_k, [nova-recipes] [nova-hpo-blog])."""
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        if stage.data.validation:
            continue
        metric = "reward" if stage.technique == "rft" else "loss"
        out.append(
            Finding(
                "no-validation-set",
                "warning",
                f"no validation data: save_top_k {stage.hyperparameters.save_top_k} cannot rank checkpoints by "
                f"validation {metric}, and overfitting goes unseen",
                "set data.validation to a held-out file (a few hundred examples, not in train)",
                "[nova-hpo-blog] recommended workflow; [nova-recipes]",
                where(resolved, i),
            )
        )
    return out


@rule(
    "pretrained-high-lr-no-rampdown", "warning", "pre-trained checkpoint, large LR, no ramp-down before SFT"
)
def pretrained_high_lr_no_rampdown(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """With a pre-trained checkpoint and a higher LR (such as 1e-4), 'gradually reduce the learning rate back
    to approximately 1e-6 ... before running SFT' ([nova-hpo-blog] checkpoint selection; [nova-recipes]
    4, 5.1). Large = over 2x the family's standard default; ramped down = decay steps > 0 and min_lr within
    2x of the family's floor (standard default / 10: 1e-6 for billion-class CPT)."""
    kinds = input_checkpoints(resolved)
    out = []
    for i, stage in enumerate(resolved.recipe.stages):
        standard = default_for(resolved, i, "hyperparameters.lr", scale="standard")
        if kinds[i] != "pre-trained" or standard is None:
            continue
        hp = stage.hyperparameters
        if hp.lr <= 2 * standard:
            continue
        floor = standard / 10
        decay_steps = resolved.stages[i].numbers.get("decay_steps", 0)
        if decay_steps > 0 and hp.min_lr <= 2 * floor:
            continue
        out.append(
            Finding(
                "pretrained-high-lr-no-rampdown",
                "warning",
                f"lr {hp.lr:g} ({hp.lr / standard:.3g}x the default {standard:g}) on a pre-trained checkpoint "
                f"ends at min_lr {hp.min_lr:g} after {decay_steps} decay steps, not ramped down to ~{floor:g}",
                f"set min_lr: {floor:g} with decay steps (or scale: large for CPT), so the model settles "
                "before SFT",
                "[nova-hpo-blog] checkpoint selection; [nova-cpt-docs]",
                where(resolved, i),
            )
        )
    return out


@rule("sft-after-rft", "warning", "an SFT stage after an RFT stage")
def sft_after_rft(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """The playbook's order is CPT, then SFT, then RFT: RFT refines a model that SFT has already taught the
    task's format ([nova-hpo-blog] recommended workflow). SFT after RFT pulls the policy back toward the
    demonstrations, and supervised updates forget more of what came before than on-policy RL does
    ([rls-razor-2025]), so the RFT stage's gains are the first to go."""
    stages = resolved.recipe.stages
    out = []
    for i, stage in enumerate(stages):
        if stage.technique != "sft" or not any(prior.technique == "rft" for prior in stages[:i]):
            continue
        rft = next(resolved.stages[j].name for j in range(i) if stages[j].technique == "rft")
        out.append(
            Finding(
                "sft-after-rft",
                "warning",
                f"SFT follows the RFT stage '{rft}': it trains toward demonstrations what RFT trained toward the "
                "reward, undoing RFT first",
                "order the stages CPT -> SFT -> RFT (move this SFT stage before the RFT stage)",
                "[nova-hpo-blog] recommended workflow; [rls-razor-2025]",
                where(resolved, i),
            )
        )
    return out


@rule("cpt-only-on-post-trained", "warning", "a CPT-only recipe on a post-trained checkpoint")
def cpt_only_on_post_trained(resolved: ResolvedRecipe, facts: LintFacts) -> list[Finding]:
    """A post-trained checkpoint is the instruction-tuned one; CPT trains it on raw text, which wears away the
    chat behaviour, and the service pairs CPT with SFT after it to restore that behaviour ([nova-cpt-docs]
    checkpoint options; [nova-hpo-blog] checkpoint selection). A recipe of CPT stages alone on a post-trained
    start ends with a model that knows the domain's text but answers worse than the one it started from."""
    stages = resolved.recipe.stages
    kinds = input_checkpoints(resolved)
    if not stages or any(stage.technique != "cpt" for stage in stages) or kinds[0] != "post-trained":
        return []
    return [
        Finding(
            "cpt-only-on-post-trained",
            "warning",
            "every stage is CPT and the start is a post-trained (instruction-tuned) checkpoint: raw-text "
            "training wears away its chat behaviour and no SFT stage restores it",
            "add an sft stage after the CPT (with general data mixed in), or start CPT from the pre-trained or "
            "mid-trained checkpoint",
            "[nova-cpt-docs]; [nova-hpo-blog] checkpoint selection",
            where(resolved, 0),
        )
    ]
