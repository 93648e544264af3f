"""`tunesmith train RECIPE`: run the recipe's stages in order, each starting from the previous one's best.

A run lives in `runs/<name>/` (see `tunesmith.runs`). A new run never writes into an existing folder: that
is refused unless `--resume` (continue it) or `--overwrite` (replace it). Finished stages (with
`result.json` and `best/`) are skipped on `--resume`; an interrupted stage continues from its last complete
checkpoint. `--resume` with a recipe (or overrides) checks it against the stored one: only resume-safe
keys (`RESUME_SAFE`) may differ. A start that fails before anything resumable was written removes the new
folder again (and puts back the one `--overwrite` moved aside).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.models.loading import load_tokenizer
from tunesmith.recipe.loading import load_recipe
from tunesmith.recipe.plan import plan
from tunesmith.recipe.resolve import ResolvedRecipe, resolve, start_ref
from tunesmith.runs import (
    RunDir,
    atomic_write_json,
    atomic_write_yaml,
    clean_stale_temp_dirs,
    keep_or_discard,
    prepare_run,
    read_json_record,
    run_exists_message,
    set_active_run,
)
from tunesmith.training.callbacks import complete_checkpoints
from tunesmith.training.data import prepare_stage_data
from tunesmith.training.resuming import check_resume, data_fingerprints, record_resume
from tunesmith.training.stage import StageResult, StageRun, barrier, is_main_process, world_size

ENTRIES = {
    "cpt": "tunesmith.training.cpt",
    "sft": "tunesmith.training.sft",
    "rft": "tunesmith.training.rft",
    "dpo": "tunesmith.training.dpo",
}
"""technique -> the module whose `run(StageRun)` trains it, imported when a stage needs it (TRL's GRPO trainer
alone takes ~1.5 s to import: an SFT run does not pay for it)."""


def stage_entry(technique: str) -> Any:
    return importlib.import_module(ENTRIES[technique]).run


TRACKER_PACKAGES = {
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
    "tensorboard": ("tensorboard", "tensorboardX"),
}
"""`report_to` -> the packages transformers' integration needs (any one of them)."""

RESUME_SAFE = ("evaluation", "acknowledge", "report_to")
"""Recipe keys a resumed run may change: they act after training (evaluation), on lint findings, or on
logging only. Anything else would make the finished part of the run disagree with its record."""


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
    run_dir: Path | None = None,
    overwrite: bool = False,
    callbacks: tuple = (),
) -> TrainResult:
    """Run every stage of a resolved recipe in a new run folder, or continue the existing `run_dir`.

    Before an RFT stage, the readiness probe (`tunesmith.evaluation.probe`) samples the stage's starting
    checkpoint on its prompts: a hopeless stage (almost no positive reward: do SFT first; almost all
    positive: no signal) is refused unless `force`. `callbacks`: extra trainer callback factories for every
    stage (`StageRun.callbacks`; a sweep's pruner)."""
    recipe = resolved.recipe
    check_trainable(resolved)
    aside = None
    if run_dir is not None:
        run = RunDir(run_dir)
        if is_main_process():
            clean_stale_temp_dirs(run.root)  # temp files of writes a crash interrupted
    elif is_main_process():
        extra = {"data": data_fingerprints(resolved)}  # what `--resume` compares (`training.resuming`)
        run, aside = prepare_run(resolved, runs_root, overwrite=overwrite, manifest_extra=extra)
    else:
        run = RunDir(Path(runs_root or recipe.output_dir) / recipe.name)
    barrier()  # the other processes write into the run folder only once the main one has published it
    set_active_run(run.root)
    if run_dir is not None or not is_main_process():
        return _train_stages(resolved, run, quiet=quiet, force=force, callbacks=callbacks)
    try:
        result = _train_stages(resolved, run, quiet=quiet, force=force, callbacks=callbacks)
    except BaseException:
        keep = resumable(run.root)
        keep_or_discard(run, aside, keep=keep)
        if not keep:
            set_active_run(None)
        raise
    keep_or_discard(run, aside, keep=True)
    return result


def check_trainable(resolved: ResolvedRecipe) -> None:
    """What must hold before a run folder is made: every technique is available, every tracker installed."""
    recipe = resolved.recipe
    for stage in recipe.stages:  # before any compute is spent
        if stage.technique not in ENTRIES:
            raise UserError(
                f"stage {stage.name}: {stage.technique} training is not available in this version yet — "
                "remove that stage from the recipe"
            )
    for tracker in recipe.report_to:
        packages = TRACKER_PACKAGES[tracker]
        if not any(importlib.util.find_spec(name) for name in packages):
            raise UserError(
                f"report_to: {tracker} is not installed — `pip install {packages[0]}`, or remove {tracker} "
                "from report_to"
            )


def resumable(root: Path) -> bool:
    """Did the run write anything worth continuing: a finished stage or a complete checkpoint?"""
    if not root.is_dir():
        return False
    for stage_dir in (p for p in root.iterdir() if p.is_dir()):
        if (stage_dir / "result.json").exists():
            return True
        if complete_checkpoints(stage_dir / "checkpoints"):
            return True
    return False


def _train_stages(
    resolved: ResolvedRecipe, run: RunDir, *, quiet: bool, force: bool, callbacks: tuple = ()
) -> TrainResult:
    recipe = resolved.recipe
    base_dir = Path(resolved.source).parent if resolved.source else None
    input_ref: str | Path = model_ref(resolved)
    results: list[StageResult] = []
    for stage, stage_plan in zip(recipe.stages, resolved.stages, strict=True):
        stage_dir = run.root / stage.name
        if (stage_dir / "result.json").exists() and (stage_dir / "best").is_dir():
            if not quiet and is_main_process():
                print(f"{stage.name}: already finished — using {stage_dir / 'best'}")
            summary = read_json_record(stage_dir / "result.json", fix="rerun the run with --overwrite")
            results.append(StageResult(stage.name, stage_dir, stage_dir / "best", True, summary))
            input_ref = stage_dir / "best"
            continue
        stage_dir.mkdir(parents=True, exist_ok=True)
        hp = stage.hyperparameters
        if stage.data_mixing.general_data == "self" and world_size() > 1:
            if is_main_process():  # one process generates the replay set; the others read it from the cache
                prepare_replay(resolved, stage, stage_dir)
            barrier()
        data = prepare_stage_data(
            stage,
            stage_dir=stage_dir,
            total_examples=stage_plan.numbers["total_steps"] * hp.global_batch_size,
            seed=hp.seed,
            base_dir=base_dir,
            quiet=quiet or not is_main_process(),
            tokenizer=load_tokenizer(input_ref) if stage.data_mixing.unit == "tokens" else None,
            snapshot=stage_plan.train_data,
            start_model=model_ref(resolved),
            reasoning=recipe.reasoning(stage),
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
            readiness_gate(
                stage,
                input_ref,
                data,
                stage_dir,
                base_dir=base_dir,
                force=force,
                quiet=quiet,
                reasoning=recipe.reasoning(stage),
            )
        result = stage_entry(stage.technique)(
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


def prepare_replay(resolved: ResolvedRecipe, stage: Any, stage_dir: Path) -> None:
    """Generate the stage's self-replay answers (progress as lines) before the other processes read them from
    the cache (a resumed stage has its training file already)."""
    if (stage_dir / "data" / "train.jsonl").exists():
        return
    from tunesmith.data.self_replay import ReplaySettings
    from tunesmith.training.replay import ensure_replay

    mixing = stage.data_mixing
    categories = [c for c, share in mixing.general.items() if share > 0 and c not in mixing.general_sources]
    if categories:
        settings = ReplaySettings.for_stage(mixing, resolved.recipe.reasoning(stage))
        ensure_replay(model_ref(resolved), categories, settings, seed=stage.hyperparameters.seed, quiet=True)


def readiness_gate(
    stage: Any,
    input_ref: str | Path,
    data: Any,
    stage_dir: Path,
    *,
    base_dir: Path | None,
    force: bool,
    quiet: bool,
    reasoning: bool = False,
) -> None:
    """Probe the RFT stage's starting checkpoint (once; kept in `<stage>/probe.json`) and refuse a hopeless
    stage unless forced."""
    from tunesmith.evaluation.probe import ProbeSettings, probe_rows, render_report

    path = stage_dir / "probe.json"
    if path.exists():
        report = read_json_record(path, fix="delete it and resume: the probe runs again")
    else:
        from tunesmith.training.rft import read_rows

        settings = ProbeSettings.for_stage(stage, reasoning=reasoning)
        from tunesmith.training.data import GENERAL_MARKER

        rows = [r for r in read_rows(data.train_file) if GENERAL_MARKER not in r]  # your prompts only
        report = probe_rows(
            input_ref, rows, stage.rft.reward, settings, base_dir=base_dir, quiet=quiet
        ).to_dict()
        if report["verdict"] == "reward_failed":  # not a verdict on the checkpoint: not kept, not forceable
            raise UserError(f"stage {stage.name}: the readiness probe could not score: {report['advice']}")
        atomic_write_json(path, report)
    if not quiet:
        print(render_report(report))
    if report["verdict"] != "ready":
        run_root = stage_dir.parent  # a run with a finished stage is kept (and continued), else removed
        how_to_force = (
            f"to train anyway: tunesmith train --resume {run_root} --force (the probe is kept in {path})"
            if resumable(run_root)
            else "pass --force to train anyway"
        )
        if not force:
            raise UserError(
                f"stage {stage.name}: the readiness probe says {report['verdict_text']!r} "
                f"({100 * report['positive_rate']:.1f}% of {report['samples']} samples earned positive reward) — "
                f"{report['advice']}; {how_to_force}"
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


def recipe_changes(stored: ResolvedRecipe, given: ResolvedRecipe) -> tuple[list[str], list[str]]:
    """The keys in which `given` differs from a run's `stored` recipe (name and output_dir aside: a resumed
    run keeps its folder), and those of them a resumed run cannot take (not in `RESUME_SAFE`)."""
    old, new = stored.to_dict(), given.to_dict()
    new["name"], new["output_dir"] = old["name"], old["output_dir"]
    changed = _differences(old, new)
    return changed, [key for key in changed if key.split(".")[0].split("[")[0] not in RESUME_SAFE]


def stored_recipe(run_dir: Path) -> ResolvedRecipe:
    """A run folder's recipe (`recipe.resolved.yaml`), resolved again against its original folder."""
    recipe_file = run_dir / "recipe.resolved.yaml"
    if not run_dir.is_dir() or not recipe_file.exists():
        raise UserError(f"--resume {run_dir}: not a run folder (no recipe.resolved.yaml) — pass runs/<name>")
    plan_json = read_json_record(run_dir / "plan.json", fix="restore it, or start again with --overwrite")
    return resolve(load_recipe(recipe_file), recipe_path=plan_json.get("source") or str(recipe_file))


def resume_recipe(run_dir: Path, recipe_path: str | None, overrides: list[str]) -> ResolvedRecipe:
    """The recipe a resumed run continues with: the stored one; with a recipe file or overrides, that one —
    refused when it differs from the stored one in anything but `RESUME_SAFE` keys (the differing keys are
    named). Relative paths resolve against the original recipe's folder (`plan.json`'s source)."""
    recipe_file = run_dir / "recipe.resolved.yaml"
    stored = stored_recipe(run_dir)
    source = stored.source or str(recipe_file)
    if recipe_path is None and not overrides:
        return stored
    if recipe_path is not None:
        given = plan(Path(recipe_path).absolute(), overrides)
    else:
        given = resolve(load_recipe(recipe_file, overrides), recipe_path=source)
    changed, unsafe = recipe_changes(stored, given)
    if unsafe:
        what = f"{recipe_path} differs" if recipe_path is not None else "the overrides differ"
        raise UserError(
            f"--resume {run_dir}: {what} from the run's recipe in {', '.join(unsafe[:8])}"
            f"{' and more' if len(unsafe) > 8 else ''} — resume with the stored recipe (`tunesmith train "
            f"--resume {run_dir}`), or start a new run with those values (--name NEW_NAME)"
        )
    if not changed:
        return stored
    given.recipe = given.recipe.model_copy(
        update={"name": stored.recipe.name, "output_dir": stored.recipe.output_dir}
    )
    if is_main_process():
        atomic_write_yaml(recipe_file, given.to_dict())
        atomic_write_json(run_dir / "plan.json", given.to_json())
        print(f"--resume: using the new values of {', '.join(changed)}", file=sys.stderr)
    return given


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Key paths (`stages[0].hyperparameters.lr`) where two plain-data trees differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(old) + [k for k in new if k not in old]
        return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{path}.{k}" if path else k)]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            d
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for d in _differences(a, b, f"{path}[{i}]")
        ]
    return [] if old == new else [path]


def train_command(
    recipe_path: str | None,
    *,
    overrides: list[str] | None = None,
    resume: str | None = None,
    quiet: bool = False,
    force: bool = False,
    runs_root: str | None = None,
    evaluate: bool = True,
    name: str | None = None,
    overwrite: bool = False,
    accept_changes: bool = False,
) -> int:
    overrides = list(overrides or [])
    if name is not None:  # as a JSON string: taken literally, not parsed as YAML
        overrides.append(f"name={json.dumps(name)}")
    run_dir = None
    if resume:
        if overwrite or name is not None:
            raise UserError("--resume continues a run as it is — drop --overwrite/--name, or drop --resume")
        if recipe_path is not None and "=" in recipe_path and not Path(recipe_path).exists():
            overrides.insert(0, recipe_path)  # `train --resume RUN key=value`: an override, not a recipe
            recipe_path = None
        run_dir = Path(resume)
        resolved = resume_recipe(run_dir, recipe_path, overrides)
        resumed = check_resume(run_dir, resolved, accept=accept_changes)  # versions, data, stage folders
    else:
        if recipe_path is None:
            raise UserError("train needs a RECIPE file, or --resume runs/<name>")
        resolved = plan(Path(recipe_path).absolute(), overrides)
        target = Path(runs_root or resolved.recipe.output_dir) / resolved.recipe.name
        if target.exists() and not overwrite:  # before lint prints anything (prepare_run checks again)
            raise UserError(run_exists_message(target))
    check_recipe(resolved, force=force, quiet=quiet)
    if resume and is_main_process():
        record_resume(run_dir, resumed)
    result = train(
        resolved, runs_root=runs_root, quiet=quiet, force=force, run_dir=run_dir, overwrite=overwrite
    )
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
