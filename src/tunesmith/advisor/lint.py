"""Run the pitfall rules on a resolved recipe and render the findings (`tunesmith lint`; `plan` and
`train` call `lint()` too: `train` refuses when `has_errors(findings)` unless `--force`).

A recipe may acknowledge a finding with a stated reason — `acknowledge: {rule-id: reason}` or
`{rule-id@stage-name: reason}`; an acknowledged finding is shown as info with its reason.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from tunesmith.advisor.findings import SEVERITIES, Finding, exit_code, has_errors, sort_key
from tunesmith.advisor.rules import MIN_REPEAT_EPOCHS, RULES, LintFacts
from tunesmith.advisor.stats import (
    DEFAULT_MAX_EXAMPLES,
    StageDataStats,
    count_unique,
    measure_file,
    measure_snapshot,
    tokenizer_for,
)
from tunesmith.recipe.resolve import ResolvedRecipe

__all__ = [
    "Finding",
    "has_errors",
    "lint",
    "lint_command",
    "measure_stages",
    "plan_command",
    "render_findings",
    "run_rules",
]


def run_rules(resolved: ResolvedRecipe, facts: LintFacts, rule_ids: list[str] | None = None) -> list[Finding]:
    """Every rule's findings (pure: no IO), acknowledgments applied, most severe first."""
    findings: list[Finding] = []
    for rule_id, registered in RULES.items():
        if rule_ids is None or rule_id in rule_ids:
            findings.extend(registered.check(resolved, facts))
    acknowledged = acknowledgments(resolved)
    out = []
    for finding in findings:
        stage_name = finding.where.split("(")[-1].rstrip(")") if "(" in finding.where else ""
        reason = acknowledged.get(f"{finding.rule}@{stage_name}") or acknowledged.get(finding.rule)
        out.append(finding.downgraded(reason) if reason else finding)
    return sorted(out, key=sort_key)


def acknowledgments(resolved: ResolvedRecipe) -> dict[str, str]:
    """`acknowledge` of the recipe (rule id or rule-id@stage-name -> stated reason)."""
    return {rule_id: reason for rule_id, reason in resolved.recipe.acknowledge.items() if reason}


def check_acknowledgments(resolved: ResolvedRecipe) -> None:
    """Every `acknowledge` key names a lint rule (and, after `@`, a stage of the recipe): a typo would
    otherwise silence nothing, in silence. Raises `RecipeError` with the closest id."""
    from tunesmith.errors import RecipeError
    from tunesmith.suggest import did_you_mean

    stages = [stage.name for stage in resolved.recipe.stages]
    for key in resolved.recipe.acknowledge:
        rule_id, at, stage = key.partition("@")
        if rule_id not in RULES:
            raise RecipeError(
                f"acknowledge.{key}: no lint rule {rule_id!r}{did_you_mean(rule_id, RULES)} — use a rule id "
                "that `tunesmith lint` prints"
            )
        if at and stage not in stages:
            raise RecipeError(
                f"acknowledge.{key}: the recipe has no stage {stage!r}{did_you_mean(stage, stages)} — stages: "
                f"{', '.join(stages)}"
            )


def measure_stages(
    resolved: ResolvedRecipe, *, max_examples: int = DEFAULT_MAX_EXAMPLES
) -> dict[int, StageDataStats]:
    """Sample each stage's training file with the family tokenizer (lengths, reasoning traces): the head of
    the data snapshot `resolve()` took, or the file itself for a plan without snapshots."""
    from tunesmith.errors import UserError
    from tunesmith.recipe.resolve import locate_data

    recipe = resolved.recipe
    tokenizer, why = tokenizer_for(recipe.model.family, recipe.model.checkpoint, recipe.model.path)
    base_dir = Path(resolved.source).parent if resolved.source else None
    out: dict[int, StageDataStats] = {}
    for i, stage in enumerate(recipe.stages):
        snapshot = resolved.stages[i].train_data if i < len(resolved.stages) else None
        if tokenizer is None:
            out[i] = StageDataStats(unavailable=why)
        elif snapshot is not None:
            out[i] = measure_snapshot(snapshot, stage.technique, tokenizer, max_examples=max_examples)
        else:
            try:
                path = locate_data(stage.data.train, base_dir)
                out[i] = measure_file(path, stage.technique, tokenizer, max_examples=max_examples)
            except UserError as err:
                out[i] = StageDataStats(unavailable=str(err))
        epochs = resolved.stages[i].numbers.get("epochs") if i < len(resolved.stages) else None
        if (
            snapshot is not None
            and stage.technique == "sft"
            and epochs is not None
            and epochs >= MIN_REPEAT_EPOCHS
        ):
            out[i] = replace(
                out[i], unique_examples=count_unique(snapshot)
            )  # what the narrow-data rule needs
    return out


def lint(
    resolved: ResolvedRecipe,
    *,
    probe_positive_rate: float | None = None,
    measure_data: bool = True,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    stage_data: dict[int, StageDataStats] | None = None,
) -> list[Finding]:
    """The findings for a resolved recipe. `measure_data` samples the training files (lengths, reasoning
    traces; a few thousand lines each) unless `stage_data` (`measure_stages`) is given; `probe_positive_rate`
    (0-1) is the RFT readiness probe's result."""
    from tunesmith.models.catalog import FAMILIES
    from tunesmith.models.loading import unavailable_reason
    from tunesmith.recipe.resolve import start_ref

    check_acknowledgments(resolved)
    model = resolved.recipe.model
    family = FAMILIES.get(model.family) if model.family else None
    # the embedded family is built here (`tunesmith models build tiny`), not downloaded: train says so itself
    downloaded = family is None or family.kind != "embedded"
    if stage_data is None:
        stage_data = measure_stages(resolved, max_examples=max_examples) if measure_data else {}
    facts = LintFacts(
        stage_data=stage_data,
        probe_positive_rate=probe_positive_rate,
        model_unavailable=unavailable_reason(start_ref(model)) if downloaded else None,
    )
    return run_rules(resolved, facts)


def summary(findings: list[Finding]) -> str:
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
    return "lint: " + ", ".join(f"{n} {s}{'s' if n != 1 and s != 'info' else ''}" for s, n in counts.items())


def render_findings(findings: list[Finding]) -> str:
    """One line per finding: `SEVERITY id: where: message — fix (source)`."""
    return "".join(f"{finding}\n" for finding in findings)


def findings_json(findings: list[Finding]) -> list[dict[str, Any]]:
    return [f.to_json() for f in findings]


def lint_command(
    recipe_path: str,
    *,
    overrides: list[str] | None = None,
    strict: bool = False,
    fmt: str = "text",
    probe_positive_rate: float | None = None,
) -> int:
    """`tunesmith lint`: exit 0 when clean (warnings allowed unless `strict`), 1 on errors."""
    from tunesmith.recipe.plan import plan

    resolved = plan(recipe_path, overrides)
    findings = lint(resolved, probe_positive_rate=probe_positive_rate)
    if fmt == "json":
        payload = {"recipe": recipe_path, "findings": findings_json(findings), "exit_code": 0}
        payload["exit_code"] = exit_code(findings, strict=strict)
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_findings(findings))
        print(summary(findings) + (" (--strict: warnings fail)" if strict else ""), file=sys.stderr)
    return exit_code(findings, strict=strict)


def add_packing_estimates(resolved: ResolvedRecipe, stage_data: dict[int, StageDataStats]) -> None:
    """`plan`'s packing line per CPT/SFT stage: the packing rule (`decide_packing`) on the sampled token
    lengths of your file; training applies the same rule to the whole tokenized mix."""
    from tunesmith.data.packing import decide_packing

    for i, (stage, stage_plan) in enumerate(zip(resolved.recipe.stages, resolved.stages, strict=True)):
        if stage.technique in ("rft", "dpo"):  # their trainers do not pack
            continue
        hp, data = stage.hyperparameters, stage_data.get(i)
        setting = None if hp.packing == "auto" else hp.packing
        if data is None or data.lengths is None:
            why = data.unavailable if data is not None else "not measured"
            state = "decided at training" if setting is None else ("on" if setting else "off")
            stage_plan.set("packing", state, f"tokenized lengths unknown here ({why})")
            continue
        grouping = None if hp.length_grouping == "auto" else hp.length_grouping
        decision = decide_packing(data.lengths.lengths, hp.micro_batch_size, setting, grouping)
        where = "" if decision.forced else "; training decides on the whole tokenized mix"
        stage_plan.set("packing", "on" if decision.pack else "off", f"{decision.describe()}{where}")


def plan_command(
    recipe_path: str, *, overrides: list[str] | None = None, out: str | None = None, fmt: str = "text"
) -> int:
    """`tunesmith plan`: the resolved recipe with provenance and derived numbers, then the lint findings
    (here rather than in `recipe.plan`: the recipe layer sits below the advisor)."""
    from tunesmith.recipe.plan import add_parameter_counts, plan, render_plan
    from tunesmith.runs import atomic_write_yaml

    resolved = plan(recipe_path, overrides)
    add_parameter_counts(resolved)
    stage_data = measure_stages(resolved)
    add_packing_estimates(resolved, stage_data)
    findings = lint(resolved, stage_data=stage_data)
    if out:
        atomic_write_yaml(out, resolved.to_dict())
    if fmt == "json":
        json.dump(
            {**resolved.to_json(), "lint": [f.to_json() for f in findings]}, sys.stdout, indent=2, default=str
        )
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_plan(resolved))
        sys.stdout.write("\n== lint ==\n" + render_findings(findings) + summary(findings) + "\n")
        if out:
            sys.stdout.write(f"\nresolved recipe written to {out}\n")
    return 0
