"""`tunesmith advise`: from what the user has (an inventory) to the playbook's stage sequence and a recipe.

The playbook's "Recommended workflow" ([nova-hpo-blog]; digest in
[nova-hpo-blog]):

- demonstrations + a verifiable reward: SFT with LoRA (mixing with reasoning-instruction-following,
  default LRs, best checkpoint by validation loss), then RFT on the SFT checkpoint;
- a reward but no labels: probe the base first; RFT directly only above ~5% positive reward, else SFT first;
- the base lacks the domain's vocabulary: CPT first, then SFT (required), then optionally RFT.
  "CPT is only needed when the base model lacks domain vocabulary or knowledge your task requires";
- full rank only after LoRA is validated; the starting checkpoint follows the data scale ([nova-cpt-docs]).

`recommend()` is pure (plain values in, `Advice` out); `advise()` measures the files, then calls it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunesmith.advisor.rules import RFT_PROBE_THRESHOLD
from tunesmith.advisor.stats import VocabularyGap
from tunesmith.errors import UserError

UNKNOWN_WORD_RATE_THRESHOLD = 0.10
"""Above this share of domain words unknown to the base, it 'lacks domain vocabulary' (our threshold, an
inference: the playbook gives the criterion, not a number)."""
UNKNOWN_TOKEN_RATE_THRESHOLD = 0.01
"""Above this share of unknown-token ids the tokenizer cannot even spell the domain (same status)."""

PRETRAINED_TOKENS = 100e9  # '>100 billion tokens' -> pre-trained ([nova-hpo-blog]; [nova-cpt-docs])
MIDTRAINED_TOKENS = 10e9  # '>10B tokens -> partially or fully pre-trained', '<10B -> GA' ([nova-cpt-docs])
LARGE_SCALE_TOKENS = (
    1e12  # '>1T tokens ... higher learning rate (such as 1e-4)' with a ramp-down ([nova-hpo-blog])
)

WORKFLOW = "[nova-hpo-blog] recommended workflow"


@dataclass(frozen=True)
class Inventory:
    """What the user has. Files are paths or `builtin:` references."""

    family: str = "tiny"
    domain_text: str | None = None
    domain_tokens: int | None = None  # overrides the measured/estimated token count
    demonstrations: str | None = None
    prompts: str | None = None
    reward: str | None = None
    preferences: str | None = None  # DPO preference pairs
    probe_positive_rate: float | None = None  # 0-1, from the RFT readiness probe
    target: Literal["domain", "domain+general"] = "domain+general"
    vocabulary: Literal["auto", "known", "unknown"] = "auto"


@dataclass(frozen=True)
class Step:
    """One step of the recommended sequence. `runnable` is False when its data is missing."""

    technique: str  # "probe" | "cpt" | "sft" | "dpo" | "rft"
    reason: str
    source: str
    mode: str | None = None
    data: str | None = None
    runnable: bool = True


@dataclass
class Advice:
    inventory: Inventory
    checkpoint: str
    steps: list[Step]
    measurements: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scale: str | None = None  # CPT scale ("large" for > 1T tokens)
    customer_percent: float = 50.0

    @property
    def sequence(self) -> list[str]:
        """The training stages in order, e.g. ['sft', 'rft'] (the probe is not a stage)."""
        return [s.technique for s in self.steps if s.technique != "probe"]

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.inventory.family,
            "target": self.inventory.target,
            "checkpoint": self.checkpoint,
            "sequence": self.sequence,
            "steps": [vars(s) for s in self.steps],
            "measurements": self.measurements,
            "notes": self.notes,
        }


def needs_cpt(gap: VocabularyGap | None, vocabulary: str = "auto") -> tuple[bool, str]:
    """Whether the base lacks the domain's vocabulary, and the sentence that says why."""
    if vocabulary == "known":
        return False, "you stated the base knows the domain's vocabulary (--vocabulary known)"
    if vocabulary == "unknown":
        return True, "you stated the base lacks the domain's vocabulary (--vocabulary unknown)"
    if gap is None:
        return False, "the vocabulary gap could not be measured (no tokenizer here); pass --vocabulary"
    lacks = (
        gap.unknown_word_rate > UNKNOWN_WORD_RATE_THRESHOLD
        or gap.unknown_token_rate > UNKNOWN_TOKEN_RATE_THRESHOLD
    )
    verdict = "lacks" if lacks else "knows"
    return lacks, (
        f"the base {verdict} the domain's vocabulary: {gap.unknown_word_rate:.1%} of {gap.words} words are "
        f"unknown to it (threshold {UNKNOWN_WORD_RATE_THRESHOLD:.0%}), unknown-token rate "
        f"{gap.unknown_token_rate:.2%}"
    )


def checkpoint_for_cpt(tokens: int, available: list[str]) -> tuple[str, str]:
    """The starting checkpoint for CPT by data scale ([nova-cpt-docs]), and why."""
    if tokens >= PRETRAINED_TOKENS:
        wanted, why = "pre-trained", f"{tokens:.3g} tokens >= 100B: pre-trained is most plastic"
    elif tokens >= MIDTRAINED_TOKENS:
        wanted, why = "mid-trained", f"{tokens:.3g} tokens in 10B-100B: mid-trained balances plasticity"
    else:
        wanted, why = "post-trained", f"{tokens:.3g} tokens < 10B: post-trained keeps alignment (LoRA start)"
    if wanted not in available:
        fallback = "pre-trained" if wanted == "mid-trained" and "pre-trained" in available else "post-trained"
        why += f"; the family publishes no {wanted} checkpoint, so {fallback}"
        wanted = fallback
    return wanted, why


def recommend(
    inventory: Inventory,
    *,
    gap: VocabularyGap | None = None,
    domain_tokens: int | None = None,
    demonstration_count: int | None = None,
    available_checkpoints: list[str] | None = None,
    size_class: str = "tiny",
) -> Advice:
    """The playbook's sequence for `inventory` (pure; the measurements come in as plain values)."""
    inv = inventory
    has_reward = bool(inv.prompts and inv.reward)
    if bool(inv.prompts) != bool(inv.reward):
        raise UserError("advise: RFT needs both --prompts FILE and --reward SPEC (a verifier or endpoint)")
    if not (inv.domain_text or inv.demonstrations or has_reward or inv.preferences):
        raise UserError(
            "advise: nothing to train on — pass --demonstrations FILE, --prompts FILE --reward SPEC, "
            "--preferences FILE or --domain-text FILE"
        )
    available = available_checkpoints or ["pre-trained", "mid-trained", "post-trained"]
    steps: list[Step] = []
    measurements: list[str] = []
    notes: list[str] = []
    checkpoint, scale = "post-trained", None
    checkpoint_why = "post-trained keeps instruction following and is the recommended start for LoRA"

    cpt = False
    if inv.domain_text:
        cpt, why = needs_cpt(gap, inv.vocabulary)
        measurements.append(f"domain text {inv.domain_text}: {why}")
        if gap is not None and gap.top_unknown:
            measurements.append(
                f"  most frequent unknown words: {', '.join(gap.top_unknown)} ({gap.reference})"
            )
        if domain_tokens is not None:
            measurements.append(f"  about {domain_tokens:,} tokens of domain text")
        if cpt:
            checkpoint, checkpoint_why = checkpoint_for_cpt(domain_tokens or 0, available)
            if size_class == "billion" and (domain_tokens or 0) >= LARGE_SCALE_TOKENS:
                scale = "large"
            steps.append(
                Step(
                    "cpt",
                    f"{why}; CPT absorbs it from unlabeled text. Checkpoint by data scale: {checkpoint_why}"
                    + ("; > 1T tokens: scale large (1e-4 peak, ramp down to ~1e-6)" if scale else ""),
                    f"{WORKFLOW}; [nova-cpt-docs]",
                    mode="lora" if checkpoint == "post-trained" else "full",
                    data=inv.domain_text,
                )
            )
        else:
            notes.append(f"no CPT: {why} ('CPT is only needed when the base model lacks domain vocabulary')")
    if demonstration_count is not None:
        measurements.append(f"demonstrations {inv.demonstrations}: {demonstration_count:,} examples")

    sft_reason = None
    if inv.demonstrations:
        sft_reason = (
            "demonstrations teach the target behaviour: SFT with LoRA first, mixing with "
            "reasoning-instruction-following, default LRs, best checkpoint by validation loss"
        )
    elif cpt:
        sft_reason = "SFT must follow CPT to make the model useful (pre-trained checkpoints have no instruction tuning)"
    rft_reason = None
    probe_step = None
    if has_reward:
        rate = inv.probe_positive_rate
        if inv.demonstrations or cpt:
            rft_reason = "RFT on the SFT checkpoint optimizes further through the reward signal"
            if not inv.demonstrations and rate is not None and rate > RFT_PROBE_THRESHOLD:
                notes.append(
                    f"the probe found {rate:.1%} positive reward, but after CPT the model still needs SFT first"
                )
        elif rate is None:
            probe_step = Step(
                "probe",
                "reward but no demonstrations: evaluate the base on a representative sample of prompts first; "
                f"RFT directly only if more than ~{RFT_PROBE_THRESHOLD:.0%} of samples earn positive reward, "
                "otherwise SFT first (re-run advise with --probe-positive-rate X)",
                WORKFLOW,
                data=inv.prompts,
                runnable=False,
            )
            rft_reason = (
                f"RFT directly, if the probe finds more than ~{RFT_PROBE_THRESHOLD:.0%} positive reward"
            )
        elif rate > RFT_PROBE_THRESHOLD:
            rft_reason = (
                f"the probe found {rate:.1%} positive reward (> {RFT_PROBE_THRESHOLD:.0%}): RFT directly on the "
                "base, which can already partly do the task"
            )
            if rate > 0.95:
                notes.append(f"{rate:.1%} positive reward: RFT may be unnecessary ([nova-hpo-blog])")
        else:
            sft_reason = (
                f"the probe found {rate:.1%} positive reward (<= {RFT_PROBE_THRESHOLD:.0%}): reward-guided "
                "learning needs baseline competency — fall back to SFT on demonstrations first "
                "(1,000-10,000 per task; none given: collect or label them)"
            )
            rft_reason = "RFT on the SFT checkpoint once SFT has established the behaviour"
    if probe_step:
        steps.append(probe_step)
    if sft_reason:
        steps.append(
            Step(
                "sft",
                sft_reason,
                WORKFLOW,
                mode="lora",
                data=inv.demonstrations,
                runnable=bool(inv.demonstrations),
            )
        )
    if inv.preferences:
        after = "the SFT checkpoint" if sft_reason else f"the {checkpoint} start"
        steps.append(
            Step(
                "dpo",
                f"preference pairs refine behaviour the model already has: DPO on {after}, before any RFT "
                "(its reference is the stage's input; no general data is mixed in)",
                "[nova-dpo-docs]; [rafailov-2023]",
                mode="lora",
                data=inv.preferences,
            )
        )
    if rft_reason:
        steps.append(Step("rft", rft_reason, WORKFLOW, mode="lora", data=inv.prompts))
    elif cpt and not has_reward:
        notes.append("optionally follow with RFT once you have prompts and a verifiable reward")

    customer = 50.0
    if inv.target == "domain":
        customer = 75.0
        notes.append(
            "target is the domain task only: 75% customer data (a 75/25 mix kept MMLU 0.74 vs 0.75 with a "
            "12-point F1 gain, [nova-mixing-blog]); still mixed, since domain-only data destabilizes training"
        )
    else:
        notes.append(
            "target domain + general: 50% customer data, general shares include reasoning-instruction-following "
            "([nova-data-mixing])"
        )
    notes.append(
        "LoRA at the family's default LRs throughout; consider full rank only after the LoRA run is validated "
        "([nova-hpo-blog])"
    )
    notes.append(
        "evaluate on both the domain task and general benchmarks before and after ([nova-evaluation])"
    )
    if size_class == "tiny":
        notes.append("tiny family: defaults measured on this machine ([tiny-feasibility])")
    return Advice(inv, checkpoint, steps, measurements, notes, scale, customer)


# -------------------------------------------------------------------------------------------- recipe


def validation_for(ref: str) -> str | None:
    """A held-out file next to `ref`: `builtin:X` -> `builtin:X-validation`; `a/b.jsonl` -> `a/b-validation.jsonl`
    or `a/b.validation.jsonl` when it exists."""
    if ref.startswith("builtin:"):
        from tunesmith.data.builtin import builtin_refs

        candidate = f"{ref}-validation"
        return candidate if candidate in builtin_refs() else None
    path = Path(ref)
    for name in (f"{path.stem}-validation{path.suffix}", f"{path.stem}.validation{path.suffix}"):
        if (path.parent / name).exists():
            return str(path.parent / name)
    return None


def _ref_for(ref: str, out_dir: Path | None) -> str:
    if ref.startswith("builtin:") or out_dir is None:
        return ref
    return os.path.relpath(Path(ref).resolve(), out_dir.resolve())


def to_recipe(advice: Advice, name: str = "advised", out_dir: Path | None = None) -> dict[str, Any]:
    """The recommended recipe as plain data (validates with `load_recipe`). Raises `UserError` when a stage
    lacks its data (e.g. SFT recommended but no demonstrations given)."""
    missing = [s for s in advice.steps if s.technique != "probe" and not s.runnable]
    if missing:
        raise UserError(
            f"advise: the recommended {missing[0].technique.upper()} stage has no data — pass "
            "--demonstrations FILE (1,000-10,000 per task) to write a recipe"
        )
    stages = []
    for step in advice.steps:
        if step.technique == "probe":
            continue
        assert step.data is not None
        data: dict[str, Any] = {"train": _ref_for(step.data, out_dir)}
        validation = validation_for(step.data)
        if validation:
            data["validation"] = _ref_for(validation, out_dir)
        stage: dict[str, Any] = {"technique": step.technique, "mode": step.mode, "data": data}
        if step.technique == "cpt" and advice.scale:
            stage["scale"] = advice.scale
        if step.technique in ("cpt", "sft"):
            stage["data_mixing"] = {"customer_percent": advice.customer_percent}
        if step.technique == "rft":
            stage["rft"] = {"reward": advice.inventory.reward}
        stages.append(stage)
    return {
        "name": name,
        "model": {"family": advice.inventory.family, "checkpoint": advice.checkpoint},
        "stages": stages,
        "evaluation": {"suites": ["general", "domain"]},
    }


# ------------------------------------------------------------------------------------------ measuring


def advise(inventory: Inventory) -> Advice:
    """Measure the inventory's files (vocabulary gap, token count, demonstration count), then recommend."""
    from tunesmith.advisor.stats import estimate_tokens, tokenizer_for, vocabulary_gap
    from tunesmith.models.catalog import FAMILIES
    from tunesmith.recipe.resolve import count_examples, locate_data

    if inventory.family not in FAMILIES:
        raise UserError(f"advise: unknown family {inventory.family!r} — use one of: {', '.join(FAMILIES)}")
    if inventory.probe_positive_rate is not None and not 0 <= inventory.probe_positive_rate <= 1:
        raise UserError(
            f"advise: --probe-positive-rate {inventory.probe_positive_rate:g} is not a fraction — give 0-1 "
            "(e.g. 0.12 for 12%)"
        )
    family = FAMILIES[inventory.family]
    gap, tokens, demos = None, inventory.domain_tokens, None
    notes = []
    if inventory.domain_text:
        path = locate_data(inventory.domain_text)
        tokenizer, why = tokenizer_for(inventory.family, "post-trained", None)
        if tokenizer is not None:
            if inventory.vocabulary == "auto":
                gap = vocabulary_gap(path, inventory.family, tokenizer)
            if tokens is None:
                tokens = estimate_tokens(path, tokenizer)
        else:
            notes.append(f"domain text not measured: {why}")
            if tokens is None and path.is_file():
                tokens = path.stat().st_size // 4
                notes.append("token count estimated as bytes / 4; pass --domain-tokens N for the real count")
    if inventory.demonstrations:
        demos = count_examples(inventory.demonstrations, kind="sft")
    if inventory.prompts:
        locate_data(inventory.prompts)  # fail early on a missing file
    if inventory.preferences:
        count_examples(inventory.preferences, kind="dpo")  # fail early on a missing or malformed file
    advice = recommend(
        inventory,
        gap=gap,
        domain_tokens=tokens,
        demonstration_count=demos,
        available_checkpoints=family.available_stages(),
        size_class=family.size_class,
    )
    advice.notes[:0] = notes
    return advice


def render_advice(advice: Advice) -> str:
    inv = advice.inventory
    lines = [f"advice for family {inv.family} (target: {inv.target}), starting from {advice.checkpoint}"]
    if advice.measurements:
        lines += ["", "measured:"] + [f"  {m}" for m in advice.measurements]
    lines += ["", "recommended sequence: " + " -> ".join(s.upper() for s in advice.sequence)]
    for number, step in enumerate(advice.steps, 1):
        head = f"  {number}. {step.technique}"
        if step.mode:
            head += f" ({step.mode})"
        if step.data:
            head += f" on {step.data}"
        if not step.runnable and step.technique != "probe":
            head += "  [data missing]"
        lines += [head, f"     why: {step.reason}", f"     source: {step.source}"]
    lines += ["", "notes:"] + [f"  - {n}" for n in advice.notes]
    return "\n".join(lines) + "\n"


def advise_command(
    inventory: Inventory, *, out: str | None = None, name: str | None = None, fmt: str = "text"
) -> int:
    """`tunesmith advise`: print the sequence; with `out`, write the recipe and lint it (exit 1 on errors)."""
    import json
    import sys

    from tunesmith.advisor.findings import has_errors
    from tunesmith.advisor.lint import lint, render_findings, summary
    from tunesmith.recipe.loading import validate_recipe
    from tunesmith.recipe.resolve import resolve
    from tunesmith.runs import atomic_write_yaml

    advice = advise(inventory)
    findings = []
    if out:
        out_path = Path(out)
        data = to_recipe(advice, name=name or out_path.stem, out_dir=out_path.parent)
        resolved = resolve(validate_recipe(data, source=out), recipe_path=out_path)
        findings = lint(resolved, probe_positive_rate=inventory.probe_positive_rate)
        atomic_write_yaml(out_path, data)
    if fmt == "json":
        payload = advice.to_json()
        if out:
            payload["recipe"] = out
            payload["lint"] = [f.to_json() for f in findings]
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_advice(advice))
        if out:
            sys.stdout.write(f"\nrecipe written to {out} — check it with `tunesmith plan {out}`\n")
            sys.stdout.write(render_findings(findings))
            sys.stdout.write(summary(findings) + "\n")
    return 1 if has_errors(findings) else 0
