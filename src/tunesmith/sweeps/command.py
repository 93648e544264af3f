"""`tunesmith sweep RECIPE --space SPACE.yaml | --preset NAMES [--trials N]`: set up, validate, run, report.

Order: resolve the base recipe and lint it -> parse the space (file and/or presets) and check every value
against the recipe schema (a malformed space fails here, with one line naming the key) -> open the study
(SQLite `runs/<sweep>/study.db` unless `--storage URL`; re-running continues it) -> queue the grid (a space
of lists, no `--trials`) or sample `--trials N` with Optuna's TPE sampler -> run trials -> report.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.recipe.loading import load_recipe
from tunesmith.recipe.plan import plan
from tunesmith.sweeps import report
from tunesmith.sweeps.live import LiveView
from tunesmith.sweeps.presets import preset_space
from tunesmith.sweeps.space import Space, grid, load_space, validate_against
from tunesmith.sweeps.storage import (
    default_url,
    make_storage,
    open_study,
    optuna_module,
)
from tunesmith.sweeps.synchronous import slot_counts
from tunesmith.sweeps.trial import SweepSetup, execute
from tunesmith.sweeps.workers import enqueue_missing, run_worker


def build_space(args: argparse.Namespace, setup_value: Any, recipe: Path, overrides: list[str]) -> Space:
    if not args.space and not args.preset:
        raise UserError("sweep needs --space SPACE.yaml or --preset NAMES (mix-ratio, lr, lora, epochs)")
    space: Space | None = load_space(args.space, setup_value) if args.space else None
    if args.preset:
        presets = preset_space(args.preset, args.stage, setup_value)
        space = presets if space is None else space.merged(presets)
    assert space is not None
    validate_against(space, lambda extra: load_recipe(recipe, [*overrides, *extra]))
    return space


def sweep_command(args: argparse.Namespace, *, finished: Callable[[Path], None] | None = None) -> int:
    """Run the sweep; `finished(sweep_dir)` once its summary is written (the CLI writes the report)."""
    from tunesmith.runs import check_new_file, check_run_name
    from tunesmith.training.pipeline import check_recipe

    optuna = optuna_module()
    recipe_path = Path(args.recipe)
    overrides = list(args.overrides or [])
    if args.name is not None:
        check_run_name(args.name)
    if args.export:  # before hours of trials: the recommended recipe must not replace a file in silence
        check_new_file(args.export, force=args.force, option="--export")
    base = plan(recipe_path, overrides)
    # --eta, --min-fraction, --trials, --stage: ranges checked by argparse (`sweeps.arguments`)
    setup = SweepSetup(
        recipe_path,
        base,
        Space(),
        Path(),
        overrides,
        not args.no_prune,
        args.eta,
        args.min_fraction,
        args.quiet,
    )
    space = build_space(args, setup.base_value, recipe_path, overrides)  # before any training
    setup.space = space
    name = args.name or f"{base.recipe.name}-sweep"
    sweep_dir = Path(base.recipe.output_dir) / name
    setup.trials_dir = sweep_dir / "trials"
    check_recipe(base, force=args.force, quiet=True)
    configs = None if args.trials is not None else grid(space, setup.base_value)
    total = args.trials if configs is None else len(configs)
    if args.worker and not args.storage:
        raise UserError(
            "--worker joins a shared study: pass --storage postgresql://... (the same URL as the first command)"
        )
    sweep_dir.mkdir(parents=True, exist_ok=True)
    storage = make_storage(
        args.storage or default_url(sweep_dir),
        heartbeat_seconds=args.heartbeat_seconds,
        grace_seconds=args.grace_seconds,
    )
    sampler = optuna.samplers.TPESampler(seed=base.recipe.seed, constraints_func=_constraint)
    study = open_study(storage, name, create=not args.worker, sampler=sampler)
    counts = None
    if configs is not None and setup.prune:  # a grid: synchronous successive halving (`sweeps.synchronous`)
        setup.levels = setup.schedule_levels()
        counts = slot_counts(len(configs), len(setup.levels) + 1, setup.eta)
        total = sum(counts)  # trials: every configuration to the first rung, then the promotions
    if configs is not None and not args.worker:
        added = enqueue_missing(study, configs, slot_counts=counts)
        if added and not args.quiet:
            print(f"sweep {name}: {len(configs)} configurations ({added} queued now) in {space.source}")
    elif not args.quiet:
        print(f"sweep {name}: {total} trials sampled from {space.source}")
    live = LiveView(study, sweep_dir, total)
    run_worker(
        study,
        lambda trial: execute(setup, trial),
        budget=args.trials,
        heartbeat_seconds=args.heartbeat_seconds,
        on_finished=live.on_finished,
    )
    live.write_csv()
    if args.worker:
        return 0
    summary = report.summarize(study.get_trials(deepcopy=False))
    report.write_summary(sweep_dir, summary)
    print(report.render(summary))
    print(
        f"written: {sweep_dir / 'trials.csv'}, {sweep_dir / 'sweep.json'}; trial runs in {setup.trials_dir}"
    )
    if finished is not None:
        finished(sweep_dir)
    if args.export:
        out = report.export_recipe(recipe_path, overrides, summary, Path(args.export))
        print(f"exported: {out} — train it with: tunesmith train {out}")
    return 0


def _constraint(trial: Any) -> list[float]:
    """TPE's constraint (<= 0 feasible): no significant general regression."""
    objectives = trial.user_attrs.get("objectives")
    return [1.0 if objectives is None or objectives["significant_regression"] else -1.0]
