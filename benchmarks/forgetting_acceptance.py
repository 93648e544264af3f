"""Forgetting and its cure, measured end to end on the tiny family (the evaluation's acceptance run).

Acceptance (issue 9), on the tiny family:

- domain-only full-rank SFT (`recipes/tiny-sft-full-domain-only.yaml`: customer_percent 100, lr 3e-4,
  800 steps) shows a significant general drop, flagged by the verdict;
- the same SFT with 50% general data (`recipes/tiny-sft-full-mixed.yaml`) retains >= 95% of general
  accuracy with no significant regression in any category;
- both show the domain gain (Brindle exact match, significant).

Each recipe runs through `tunesmith train` (the real pipeline, with the automatic evaluation at its end:
starting checkpoint vs the stage's best on the same items); the script then reads
`runs/<name>/eval/evaluation.json`, prints the forgetting tables and verdicts, and checks the criteria.
Takes ~2-5 minutes per run on 2 CPU cores. The stage's final checkpoint is evaluated too, as a check on
the pipeline's choice of the best checkpoint.

`--seeds 0,1,2` trains the mixed recipe once per seed (runs `<name>-seed<N>`): single runs of a 1M-parameter
model swing by several points, so the criteria are checked on every seed and the summary counts the passes.

Usage::

    .venv/bin/python benchmarks/forgetting_acceptance.py [--runs-root /tmp/acceptance-runs] [--reuse]
        [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPES = {
    "domain-only": REPO / "recipes" / "tiny-sft-full-domain-only.yaml",
    "mixed": REPO / "recipes" / "tiny-sft-full-mixed.yaml",
}


def _overall(rows: list[dict], suite: str, metric: str = "exact_match") -> dict:
    return next(
        r for r in rows if r["suite"] == suite and r["category"] == "overall" and r["metric"] == metric
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-root", default="/tmp/tunesmith-acceptance-runs")
    parser.add_argument("--reuse", action="store_true", help="re-evaluate existing runs instead of training")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds for the mixed recipe")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]

    from tunesmith.evaluation.runner import (
        EvalConfig,
        compare,
        evaluate_checkpoint,
        evaluate_run,
        render_comparison,
        resolve_eval_model,
        run_start_ref,
    )
    from tunesmith.models import tiny
    from tunesmith.training.pipeline import train_command

    tiny.family()  # the shipped family: nothing is built
    checks: list[tuple[str, bool]] = []
    summary = {}
    import yaml

    runs = [("domain-only", RECIPES["domain-only"], None)]
    runs += [("mixed" if len(seeds) == 1 else f"mixed seed {seed}", RECIPES["mixed"], seed) for seed in seeds]
    for label, recipe, seed in runs:
        name = yaml.safe_load(recipe.read_text())["name"]
        overrides = []
        if seed is not None and len(seeds) > 1:
            name = f"{name}-seed{seed}"
            overrides = [f"name={name}", f"stages[0].hyperparameters.seed={seed}"]
        run_dir = Path(args.runs_root) / name
        started = time.perf_counter()
        if args.reuse and (run_dir / "sft" / "result.json").exists():
            evaluate_run(run_dir, run_start_ref(run_dir), quiet=True)
        else:
            code = train_command(  # a fresh run: replaces one left by an earlier call
                str(recipe),
                overrides=overrides,
                runs_root=args.runs_root,
                quiet=True,
                force=False,
                overwrite=True,
            )
            assert code == 0, f"{label}: tunesmith train exited {code}"
        seconds = time.perf_counter() - started
        report = json.loads((run_dir / "eval" / "evaluation.json").read_text())
        comparison = report["comparisons"][-1]
        print(f"\n=== {label}: {recipe.name} ({seconds:.0f} s train + eval) ===")
        print(render_comparison(comparison))
        # the final checkpoint too: a check on the pipeline's choice of the best one
        final = max(
            (run_dir / "sft" / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])
        )
        config = EvalConfig(domain="builtin:brindle/eval")
        start = evaluate_checkpoint(resolve_eval_model(run_start_ref(run_dir)), config, quiet=True)
        last = evaluate_checkpoint(resolve_eval_model(final), config, quiet=True)
        last.checkpoint.label = f"{name}/sft/{final.name} (final)"
        final_comparison = compare(start, last, config)
        print(render_comparison(final_comparison))
        final_general = _overall(final_comparison["rows"], "general")
        summary[f"{label} (final {final.name})"] = {
            "retention": final_general["retention"], "general_ci": [final_general["ci_low"], final_general["ci_high"]],
            "domain_after": _overall(final_comparison["rows"], "domain")["after"], "verdict": final_comparison["verdict"],
        }  # fmt: skip
        general = _overall(comparison["rows"], "general")
        domain = _overall(comparison["rows"], "domain")
        drops = [
            r["category"] for r in comparison["rows"] if r["suite"] == "general" and r["direction"] == "drop"
        ]
        summary[label] = {
            "general_before": general["before"], "general_after": general["after"],
            "retention": general["retention"], "general_ci": [general["ci_low"], general["ci_high"]],
            "domain_before": domain["before"], "domain_after": domain["after"],
            "domain_ci": [domain["ci_low"], domain["ci_high"]], "drops": drops,
            "verdict": comparison["verdict"], "seconds": round(seconds, 1),
        }  # fmt: skip
        checks.append((f"{label}: domain gain significant", domain["direction"] == "gain"))
        if label == "domain-only":
            checks.append((f"{label}: general drop significant", general["direction"] == "drop"))
            checks.append((f"{label}: verdict flags it", "significant regression" in comparison["verdict"]))
        else:
            checks.append((f"{label}: retention >= 95%", (general["retention"] or 0) >= 0.95))
            checks.append(
                (f"{label}: no significant regression", not drops and general["direction"] != "drop")
            )
            checks.append((f"{label}: verdict says so", "no significant regression" in comparison["verdict"]))
            final_drops = [
                r for r in final_comparison["rows"] if r["suite"] == "general" and r["direction"] == "drop"
            ]
            checks.append(
                (f"{label} (final checkpoint): retention >= 95%", (final_general["retention"] or 0) >= 0.95)
            )
            checks.append((f"{label} (final checkpoint): no significant regression", not final_drops))
    print()
    for what, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    if len(seeds) > 1:
        passed = [
            seed for seed in seeds if all(ok for what, ok in checks if what.startswith(f"mixed seed {seed}:"))
        ]
        print(
            f"mixed: the best checkpoint passes every check in {len(passed)} of {len(seeds)} seeds {passed}"
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
