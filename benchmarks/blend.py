"""Blending back into the start (`--blend W`) against mixing, measured on the tiny family at evaluation cost.

For a domain-only and a mixed full-rank SFT run (`recipes/tiny-sft-full-domain-only.yaml`,
`recipes/tiny-sft-full-mixed.yaml`, trained by `benchmarks/forgetting_acceptance.py`), each stage's best is
blended with its starting checkpoint at W in {0, 0.25, 0.5, 0.75, 1} (`W x fine-tuned + (1 - W) x start`,
`tunesmith.serving.blend`) and evaluated like `tunesmith eval --blend W`: Brindle exact match (domain) and
general held-out accuracy with its retention against the start and the paired-bootstrap 95% CI. The table
answers: where is the best trade-off, and does blending a domain-only run reach what mixing reaches?

Baseline: W = 1.0 (the fine-tuned model as trained) and W = 0.0 (the start). No training; ~1 minute per
evaluated checkpoint on 2 CPU cores (cached by content on a second run).

Usage::

    .venv/bin/python benchmarks/blend.py [--runs-root /tmp/tunesmith-acceptance-runs]
        [--runs tiny-sft-full-domain-only,tiny-sft-full-mixed] [--weights 0,0.25,0.5,0.75,1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def _overall(rows: list[dict], suite: str) -> dict:
    return next(
        r for r in rows if r["suite"] == suite and r["category"] == "overall" and r["metric"] == "exact_match"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-root", default="/tmp/tunesmith-acceptance-runs")
    parser.add_argument("--runs", default="tiny-sft-full-domain-only,tiny-sft-full-mixed")
    parser.add_argument("--weights", default="0,0.25,0.5,0.75,1")
    parser.add_argument("--out", metavar="FILE.json", help="also write the rows as JSON")
    args = parser.parse_args()

    from tunesmith.evaluation.runner import (
        EvalConfig,
        EvalModel,
        compare,
        evaluate_checkpoint,
        resolve_eval_model,
    )
    from tunesmith.serving.blend import save_blend, stage_input

    weights = [float(w) for w in args.weights.split(",")]
    config = EvalConfig(domain="builtin:brindle/eval")
    rows = []
    for name in args.runs.split(","):
        best = Path(args.runs_root) / name / "sft" / "best"
        assert best.is_dir(), f"{best}: train the run first (benchmarks/forgetting_acceptance.py)"
        start_ref = stage_input(best)
        start = evaluate_checkpoint(resolve_eval_model(start_ref), config, quiet=True)
        for weight in weights:
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="blend-bench-") as tmp:
                save_blend(best, start_ref, weight, tmp)
                label = f"{name} blend {weight:g}"
                scores = evaluate_checkpoint(EvalModel(label, Path(tmp), label), config, quiet=True)
            comparison = compare(start, scores, config)
            general, domain = _overall(comparison["rows"], "general"), _overall(comparison["rows"], "domain")
            drops = [
                r["category"]
                for r in comparison["rows"]
                if r["suite"] == "general" and r["direction"] == "drop"
            ]
            rows.append({
                "run": name, "weight": weight, "domain": domain["after"], "domain_start": domain["before"],
                "general": general["after"], "general_start": general["before"], "retention": general["retention"],
                "general_ci": [general["ci_low"], general["ci_high"]], "general_drops": drops,
                "seconds": round(time.perf_counter() - started, 1),
            })  # fmt: skip
            row = rows[-1]
            print(
                f"{name:<30} W={weight:<5g} domain {row['domain']:.3f}  general {row['general']:.3f} "
                f"(retained {row['retention']:.1%}, CI [{row['general_ci'][0] * 100:+.1f}, "
                f"{row['general_ci'][1] * 100:+.1f}]) drops: {','.join(drops) or '-'}  {row['seconds']:.0f} s",
                flush=True,
            )
    print(
        "\n| run | W | Brindle exact match | general accuracy | general retained | general change, 95% CI | significant drops |"
    )
    print("|---|---:|---:|---:|---:|---|---|")
    for row in rows:
        low, high = row["general_ci"]
        print(
            f"| {row['run']} | {row['weight']:g} | {row['domain']:.3f} | {row['general']:.3f} | "
            f"{row['retention']:.1%} | {(row['general'] - row['general_start']) * 100:+.1f} [{low * 100:+.1f}, "
            f"{high * 100:+.1f}] | {', '.join(row['general_drops']) or '-'} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
