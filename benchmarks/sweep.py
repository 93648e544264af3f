"""`tunesmith sweep` against the exhaustive grid, and the mix-ratio preset's table, on the tiny family.

Acceptance (issue 16): a sweep over >= 12 configurations (general share x LR multiplier x LoRA alpha) picks a
configuration within 1 point of domain score and 1 point of general retention of the exhaustive grid's pick
(every configuration trained in full: `--no-prune`, same space, same rule: `sweeps.objectives.RULE`) while
spending at most 30% of the grid's training steps. Training is deterministic per seed, so a sweep trial
and its grid twin give the same numbers.

Three sweeps of `recipes/tiny-sft-lora-mixed.yaml` (LoRA SFT, 50% general by default), each a real
`tunesmith sweep` command with its own SQLite study under `--work`:

1. `grid`: the space, every configuration in full (`--no-prune`);
2. `sweep`: the same space with successive halving (`--eta`, `--min-fraction`), configurations queued in
   the grid's order;
3. `mix-ratio`: `--preset mix-ratio` in full (general share 10/25/50/75%).

Resumable: each sweep continues its study (finished trials are not trained again), so an interrupted
benchmark is re-run with the same command. Results go to `--out` (JSON) and, with `--append-results`, a
section appended to benchmarks/RESULTS.md. On 2 CPU cores the full size takes hours (~3-4 min per
400-step run plus evaluation): `--max-steps`, `--items-per-category` and the value lists shrink it to a
smoke test (which is not the acceptance).

Usage::

    .venv/bin/python benchmarks/sweep.py [--work /tmp/tunesmith-sweep-bench] [--out sweep.json]
        [--shares 25,50,75] [--lr-multipliers 0.5,2] [--alpha-multipliers 1,4] [--eta 3] [--min-fraction 0.111]
        [--max-steps N] [--items-per-category N] [--skip-mix-ratio] [--append-results]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import yaml

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "tiny-sft-lora-mixed.yaml"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _space(args: argparse.Namespace) -> dict:
    return {
        "stages[0].data_mixing.customer_percent": [100 - int(s) for s in _floats(args.shares)],
        "stages[0].hyperparameters.lr": {"multipliers": _floats(args.lr_multipliers)},
        "stages[0].hyperparameters.lora.alpha": {"multipliers": _floats(args.alpha_multipliers)},
    }


def _overrides(args: argparse.Namespace) -> list[str]:
    out = [f"output_dir={args.work / 'runs'}"]
    if args.max_steps:
        out += [
            f"stages[0].hyperparameters.max_steps={args.max_steps}",
            f"stages[0].hyperparameters.val_check_interval={max(1, args.max_steps // 4)}",
            f"stages[0].hyperparameters.warmup_steps={max(1, args.max_steps // 7)}",
        ]
    if args.items_per_category:
        out.append(f"evaluation.general_items_per_category={args.items_per_category}")
    return out


def _run_sweep(name: str, extra: list[str], args: argparse.Namespace) -> dict:
    from tunesmith.cli import main as cli

    started = time.monotonic()
    argv = ["sweep", str(RECIPE), *_overrides(args), "--name", name, "--quiet", *extra]
    code = cli(argv)
    assert code == 0, f"tunesmith {' '.join(argv)} exited {code}"
    sweep_dir = args.work / "runs" / name
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    with (sweep_dir / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    return {
        "name": name,
        "summary": summary,
        "trials": trials,
        "seconds_this_call": round(time.monotonic() - started, 1),
    }


def _steps(result: dict) -> int:
    """Training steps the sweep spent: each configuration's run counted once at the step it reached."""
    by_run: dict[str, int] = {}
    for row in result["trials"]:
        if row["steps"]:
            by_run[row["run_dir"]] = max(by_run.get(row["run_dir"], 0), int(row["steps"]))
    return sum(by_run.values())


def compare(grid: dict, sweep: dict) -> dict:
    g, s = grid["summary"]["recommended"], sweep["summary"]["recommended"]
    grid_steps, sweep_steps = _steps(grid), _steps(sweep)
    out = {
        "configurations": len({row["config"] for row in grid["trials"]}),  # a retried trial is one
        "grid_pick": g,
        "sweep_pick": s,
        "grid_steps": grid_steps,
        "sweep_steps": sweep_steps,
        "step_fraction": round(sweep_steps / grid_steps, 4) if grid_steps else None,
        "sweep_path": [
            {
                k: row[k]
                for k in (
                    "trial",
                    "state",
                    "config",
                    "steps",
                    "pruned_step",
                    "domain_score",
                    "general_retention_percent",
                )
            }
            for row in sweep["trials"]
        ],
    }
    if g is not None and s is not None:
        out["domain_score_gap_points"] = round(g["domain_score"] - s["domain_score"], 3)
        out["retention_gap_points"] = round(
            g["general_retention_percent"] - s["general_retention_percent"], 3
        )
        out["passes"] = bool(
            out["configurations"] >= 12
            and abs(out["domain_score_gap_points"]) <= 1.0
            and abs(out["retention_gap_points"]) <= 1.0
            and out["step_fraction"] is not None
            and out["step_fraction"] <= 0.30
        )
    else:
        out["passes"] = False
    return out


def mix_table(result: dict) -> list[dict]:
    rows = []
    for row in result["trials"]:
        if row["state"] != "COMPLETE":
            continue
        customer = int(row["config"].split("customer_percent=")[1].split()[0])
        rows.append(
            {
                "general_share_percent": 100 - customer,
                "domain_score": float(row["domain_score"]),
                "domain_gain_points": float(row["domain_gain_points"]),
                "general_retention_percent": float(row["general_retention_percent"]),
                "significant_regression": row["significant_regression"] == "True",
            }
        )
    return sorted(rows, key=lambda r: r["general_share_percent"])


def render(report: dict) -> str:
    from tunesmith.sweeps.space import config_label

    c = report["comparison"]
    lines = [
        "",
        f"## Sweeps: successive halving vs the exhaustive grid (`benchmarks/sweep.py`) — issue 16, {report['date']}",
        "",
        f"Settings: {json.dumps(report['settings'])}. Machine: {report['machine']}.",
        "",
    ]
    steps = report["settings"].get("max_steps")
    if len(report["comparison"]["sweep_path"]) < 12 or (steps and steps < 100):
        lines += [
            "**Reduced smoke test** (fewer steps, items and configurations than the acceptance): it shows the",
            "benchmark runs end to end; its numbers say nothing about the acceptance.",
            "",
        ]
    elif steps:
        items = report["settings"].get("items_per_category")
        lines += [
            f"Each configuration trains {steps} steps instead of the recipe's 400"
            + (f" and is scored on {items} general items per category" if items else "")
            + " so that the grid fits in a session on 2 cores; the acceptance's criteria are applied unchanged.",
            "",
        ]
    lines += [
        f"- configurations: {c['configurations']}; grid steps {c['grid_steps']}, sweep steps {c['sweep_steps']} "
        f"(fraction {c['step_fraction']})",
    ]
    for label, pick in (("grid", c["grid_pick"]), ("sweep", c["sweep_pick"])):
        if pick is None:
            lines.append(f"- {label} pick: none met the rule")
        else:
            lines.append(
                f"- {label} pick: trial {pick['trial']} ({config_label(pick['config'])}): domain {pick['domain_score']:.1f} "
                f"({pick['domain_gain_points']:+.1f} pts), general retained {pick['general_retention_percent']:.1f}%"
            )
    if "domain_score_gap_points" in c:
        lines.append(
            f"- gaps (grid - sweep): domain {c['domain_score_gap_points']:+.2f} pts, retention {c['retention_gap_points']:+.2f} pts"
        )
    lines.append(
        f"- acceptance (>= 12 configurations, both gaps <= 1 point, <= 30% of the steps): {'PASS' if c['passes'] else 'FAIL'}"
    )
    lines += ["", "Sweep path (trial, state, steps reached; a pruned trial stopped there):", ""]
    for row in c["sweep_path"]:
        lines.append(f"    {row['trial']:>3} {row['state']:<9} {row['steps']:>5}  {row['config']}")
    if report.get("mix_ratio"):
        lines += [
            "",
            "mix-ratio preset (LoRA SFT, defaults otherwise):",
            "",
            "| general share | domain score | domain gain | general retained | significant regression |",
            "|---|---|---|---|---|",
        ]
        for r in report["mix_ratio"]:
            lines.append(
                f"| {r['general_share_percent']}% | {r['domain_score']:.1f} | {r['domain_gain_points']:+.1f} | "
                f"{r['general_retention_percent']:.1f}% | {'yes' if r['significant_regression'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/tunesmith-sweep-bench"))
    parser.add_argument(
        "--out", type=Path, help="write the report as JSON (default <work>/sweep-benchmark.json)"
    )
    parser.add_argument("--shares", default="25,50,75", help="general shares, percent")
    parser.add_argument("--lr-multipliers", default="0.5,2")
    parser.add_argument("--alpha-multipliers", default="1,4")
    parser.add_argument("--eta", default="3")
    parser.add_argument("--min-fraction", default=str(1 / 9))
    parser.add_argument("--max-steps", type=int, help="shrink every run (smoke test; not the acceptance)")
    parser.add_argument("--items-per-category", type=int, help="general held-out items per category")
    parser.add_argument("--skip-mix-ratio", action="store_true")
    parser.add_argument(
        "--append-results", action="store_true", help="append a section to benchmarks/RESULTS.md"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    space = args.work / "space.yaml"
    space.write_text(yaml.safe_dump(_space(args), sort_keys=False))

    grid = _run_sweep("bench-grid", ["--space", str(space), "--no-prune"], args)
    sweep = _run_sweep(
        "bench-sweep", ["--space", str(space), "--eta", args.eta, "--min-fraction", args.min_fraction], args
    )
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{__import__('os').cpu_count()} CPU cores",
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in {"out", "append_results"}
        },
        "comparison": compare(grid, sweep),
        "grid": grid["summary"],
        "sweep": sweep["summary"],
    }
    if not args.skip_mix_ratio:
        report["mix_ratio"] = mix_table(
            _run_sweep("bench-mix-ratio", ["--preset", "mix-ratio", "--no-prune"], args)
        )
    out = args.out or args.work / "sweep-benchmark.json"
    from tunesmith.runs import atomic_write_json

    atomic_write_json(out, report)
    text = render(report)
    print(text)
    print(f"written: {out}")
    if args.append_results:
        with RESULTS.open("a", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
