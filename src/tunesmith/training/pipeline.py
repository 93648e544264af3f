"""`tunesmith train RECIPE`: run the recipe's stages in order, each starting from the previous one's best.

A run lives in `runs/<name>/` (see `tunesmith.runs`). Finished stages (with `result.json` and `best/`) are
skipped on `--resume`; an interrupted stage continues from its last complete checkpoint.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.models.loading import load_tokenizer
from tunesmith.recipe.loading import load_recipe
from tunesmith.recipe.plan import plan
from tunesmith.recipe.resolve import ResolvedRecipe, resolve, start_ref
from tunesmith.runs import RunDir, atomic_write_json, prepare_run
from tunesmith.training import cpt, rft, sft
from tunesmith.training.data import prepare_stage_data
from tunesmith.training.stage import StageResult, StageRun, is_main_process

ENTRIES = {"cpt": cpt.run, "sft": sft.run, "rft": rft.run}


@dataclass
class TrainResult:
    run_dir: Path
    stages: list[StageResult]
    completed: bool


def model_ref(resolved: ResolvedRecipe) -> str:
    return start_ref(resolved.recipe.model)


def train(
    resolved: ResolvedRecipe,
    *,
    runs_root: str | Path | None = None,
    quiet: bool = False,
    force: bool = False,
    callbacks: tuple = (),
) -> TrainResult:
    """Run every stage of a resolved recipe (resuming where a previous attempt stopped).

    Before an RFT stage, the readiness probe (`tunesmith.evaluation.probe`) samples the stage's starting
    checkpoint on its prompts: a hopeless stage (almost no positive reward: do SFT first; almost all
    positive: no signal) is refused unless `force`. `callbacks`: extra trainer callback factories for every
    stage (`StageRun.callbacks`; a sweep's pruner)."""
    recipe = resolved.recipe
    for stage in recipe.stages:  # before any compute is spent
        if stage.technique not in ENTRIES:
            raise UserError(
                f"stage {stage.name}: {stage.technique} training is not available in this version yet — "
                "remove that stage from the recipe"
            )
    run = (
        prepare_run(resolved, runs_root)
        if is_main_process()
        else RunDir(Path(runs_root or recipe.output_dir) / recipe.name)
    )
    base_dir = Path(resolved.source).parent if resolved.source else None
    input_ref: str | Path = model_ref(resolved)
    results: list[StageResult] = []
    for stage, stage_plan in zip(recipe.stages, resolved.stages, strict=True):
        stage_dir = run.root / stage.name
        if (stage_dir / "result.json").exists() and (stage_dir / "best").is_dir():
            if not quiet and is_main_process():
                print(f"{stage.name}: already finished — using {stage_dir / 'best'}")
            input_ref = stage_dir / "best"
            continue
        stage_dir.mkdir(parents=True, exist_ok=True)
        hp = stage.hyperparameters
        data = prepare_stage_data(
            stage,
            stage_dir=stage_dir,
            total_examples=stage_plan.numbers["total_steps"] * hp.global_batch_size,
            seed=hp.seed,
            base_dir=base_dir,
            quiet=quiet or not is_main_process(),
            tokenizer=load_tokenizer(input_ref) if stage.data_mixing.unit == "tokens" else None,
            snapshot=stage_plan.train_data,
        )
        if is_main_process():
            atomic_write_json(
                stage_dir / "config.json",
                {
                    "stage": stage.model_dump(mode="json", exclude_none=True),
                    "derived": stage_plan.numbers,
                    "input": str(input_ref),
                },
            )
        if stage.technique == "rft" and is_main_process():
            readiness_gate(stage, input_ref, data, stage_dir, base_dir=base_dir, force=force, quiet=quiet)
        result = ENTRIES[stage.technique](
            StageRun(
                recipe=recipe,
                stage=stage,
                plan=stage_plan,
                stage_dir=stage_dir,
                input_ref=input_ref,
                data=data,
                quiet=quiet,
                report_to=list(recipe.report_to),
                recipe_dir=base_dir,
                callbacks=callbacks,
            )
        )
        results.append(result)
        if not result.completed:
            return TrainResult(run.root, results, completed=False)
        input_ref = result.best_dir
    return TrainResult(run.root, results, completed=True)


def readiness_gate(
    stage: Any,
    input_ref: str | Path,
    data: Any,
    stage_dir: Path,
    *,
    base_dir: Path | None,
    force: bool,
    quiet: bool,
) -> None:
    """Probe the RFT stage's starting checkpoint (once; kept in `<stage>/probe.json`) and refuse a hopeless
    stage unless forced."""
    import json

    from tunesmith.evaluation.probe import ProbeSettings, probe_rows, render_report

    path = stage_dir / "probe.json"
    if path.exists():
        report = json.loads(path.read_text())
    else:
        from tunesmith.training.rft import read_rows

        settings = ProbeSettings.for_stage(stage)
        from tunesmith.training.data import GENERAL_MARKER

        rows = [r for r in read_rows(data.train_file) if GENERAL_MARKER not in r]  # your prompts only
        report = probe_rows(
            input_ref, rows, stage.rft.reward, settings, base_dir=base_dir, quiet=quiet
        ).to_dict()
        atomic_write_json(path, report)
    if not quiet:
        print(render_report(report))
    if report["verdict"] != "ready":
        if not force:
            raise UserError(
                f"stage {stage.name}: the readiness probe says {report['verdict_text']!r} "
                f"({100 * report['positive_rate']:.1f}% of {report['samples']} samples earned positive reward) — "
                f"{report['advice']}; pass --force to train anyway (the probe is kept in {path})"
            )
        print(f"--force: starting {stage.name} despite the probe's verdict", file=sys.stderr)


def check_recipe(resolved: ResolvedRecipe, *, force: bool, quiet: bool) -> None:
    """Lint before any compute is spent: print the findings; refuse on errors unless forced."""
    from tunesmith.advisor.lint import has_errors, lint, render_findings, summary

    findings = lint(resolved)
    shown = [f for f in findings if f.severity != "info" or not quiet]
    if shown and is_main_process():
        sys.stderr.write(render_findings(shown))
    if has_errors(findings):
        if not force:
            raise UserError(
                f"{summary(findings)} — the recipe has errors (listed above); fix them, or pass --force to train anyway"
            )
        if is_main_process():
            print("--force: training despite lint errors", file=sys.stderr)


def train_command(
    recipe_path: str | None,
    *,
    overrides: list[str] | None = None,
    resume: str | None = None,
    quiet: bool = False,
    force: bool = False,
    runs_root: str | None = None,
    evaluate: bool = True,
) -> int:
    if resume:
        run_dir = Path(resume)
        recipe_file = run_dir / "recipe.resolved.yaml"
        if not recipe_file.exists():
            raise UserError(f"{resume}: not a run folder (no recipe.resolved.yaml) — pass runs/<name>")
        resolved = resolve(load_recipe(recipe_file, overrides), recipe_path=recipe_file)
        runs_root = str(run_dir.parent)
    else:
        if recipe_path is None:
            raise UserError("train needs a RECIPE file, or --resume runs/<name>")
        resolved = plan(recipe_path, overrides)
    check_recipe(resolved, force=force, quiet=quiet)
    result = train(resolved, runs_root=runs_root, quiet=quiet, force=force)
    if is_main_process():
        if result.completed:
            print(
                f"done: {result.run_dir} — best checkpoints: "
                + ", ".join(f"{r.name}: {r.best_dir}" for r in result.stages)
            )
        else:
            stopped = result.stages[-1]
            where = f"at step {stopped.summary['steps']} of {stopped.summary['planned_steps']} in stage {stopped.name}"
            if stopped.summary.get("resumable"):
                print(
                    f"stopped {where}: {stopped.summary['stopped_by_monitor']['message']} — a checkpoint was saved; "
                    f"once fixed, continue with: tunesmith train --resume {result.run_dir}",
                    file=sys.stderr,
                )
            elif stopped.summary.get("stopped_by_monitor"):
                print(
                    f"stopped by the run monitor {where}: {stopped.summary['stopped_by_monitor']['message']} — see "
                    f"{stopped.stage_dir / 'events.jsonl'} for the diagnosis; the best checkpoint so far is in "
                    f"{stopped.best_dir}",
                    file=sys.stderr,
                )
            else:
                print(
                    f"stopped {where}; a checkpoint was saved — continue with: tunesmith train --resume "
                    f"{result.run_dir}",
                    file=sys.stderr,
                )
    if not result.completed:
        if result.stages[-1].summary.get("stopped_by_monitor"):
            return (
                3  # a decision of the monitor, not a crash: distinct from errors (1, 2) and signals (128+N)
            )
        return 128 + int(result.stages[-1].summary.get("stopped_by_signal") or 15)
    # --- evaluation (issue 9): start vs each stage's best on the same items -> runs/<name>/eval/ ---------
    if evaluate and is_main_process():
        from tunesmith.evaluation.runner import evaluate_run

        base_dir = Path(resolved.source).parent if resolved.source else None
        evaluate_run(
            result.run_dir, model_ref(resolved), recipe=resolved.recipe, base_dir=base_dir, quiet=quiet
        )
    # --- end evaluation ------------------------------------------------------------------------------------
    return 0
