"""Training stages on the tiny family, end to end (the training issue's acceptance run).

Measured, each through the real pipeline (`tunesmith train`, evaluation at the end):

- domain SFT with LoRA (`recipes/tiny-sft-lora-mixed.yaml`) and at full rank (`recipes/tiny-sft-full-mixed.yaml`):
  Brindle exact match before -> after and wall time (target: >= 0.60 within 600 s);
- CPT on Brindle's unlabeled documents (first stage of `recipes/tiny-cpt-sft.yaml`): perplexity of the
  held-out domain documents (`builtin:brindle/cpt-validation`) before -> after (target: >= 30% lower);
- the CPT -> SFT chain from that one recipe with one command (both stages finish; domain gain).

Baseline: the starting checkpoints themselves (tiny:post-trained for SFT, tiny:mid-trained for CPT).

    .venv/bin/python benchmarks/train_tiny.py [--runs-root /tmp/tunesmith-train-bench] [--parts sft,cpt]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SFT_RECIPES = {
    "lora": REPO / "recipes" / "tiny-sft-lora-mixed.yaml",
    "full": REPO / "recipes" / "tiny-sft-full-mixed.yaml",
}
CHAIN_RECIPE = REPO / "recipes" / "tiny-cpt-sft.yaml"


def _overall(comparison: dict, suite: str) -> dict:
    return next(
        r for r in comparison["rows"]
        if r["suite"] == suite and r["category"] == "overall" and r["metric"] == "exact_match"
    )  # fmt: skip


def _train(recipe: Path, runs_root: Path) -> tuple[Path, float]:
    from tunesmith.training.pipeline import train_command

    name = yaml.safe_load(recipe.read_text())["name"]
    shutil.rmtree(runs_root / name, ignore_errors=True)
    started = time.perf_counter()
    assert train_command(str(recipe), runs_root=str(runs_root), quiet=True) == 0
    return runs_root / name, time.perf_counter() - started


def domain_perplexity(model_ref: str | Path) -> float:
    """Perplexity of the held-out Brindle documents (every token, as CPT trains)."""
    from tunesmith.data.builtin import resolve_builtin
    from tunesmith.evaluation.suites import perplexity
    from tunesmith.models.loading import load_model, load_tokenizer

    docs = [
        json.loads(line)["text"]
        for line in resolve_builtin("builtin:brindle/cpt-validation").read_text().splitlines()
    ]
    model, tokenizer = load_model(model_ref), load_tokenizer(model_ref)
    return perplexity(model, tokenizer, [""] * len(docs), docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-root", default="/tmp/tunesmith-train-bench")
    parser.add_argument("--parts", default="sft,cpt")
    args = parser.parse_args()
    runs_root = Path(args.runs_root)
    parts = set(args.parts.split(","))

    from tunesmith.models import tiny

    tiny.family()
    checks: list[tuple[str, bool]] = []
    summary: dict[str, dict] = {}
    if "sft" in parts:
        for mode, recipe in SFT_RECIPES.items():
            run_dir, seconds = _train(recipe, runs_root)
            comparison = json.loads((run_dir / "eval" / "evaluation.json").read_text())["comparisons"][-1]
            domain, general = _overall(comparison, "domain"), _overall(comparison, "general")
            result = json.loads((run_dir / "sft" / "result.json").read_text())
            summary[f"sft-{mode}"] = {
                "seconds_train_and_eval": round(seconds, 1), "train_seconds": result["train_seconds"],
                "steps": result["steps"], "best": result["best"]["checkpoint"],
                "trainable_parameters": result["trainable_parameters"], "total_parameters": result["total_parameters"],
                "domain_before": domain["before"], "domain_after": domain["after"],
                "general_before": general["before"], "general_after": general["after"],
                "general_retention": general["retention"], "verdict": comparison["verdict"],
            }  # fmt: skip
            print(f"sft {mode}: {json.dumps(summary[f'sft-{mode}'])}", flush=True)
            checks.append((f"sft {mode}: domain exact match >= 0.60", domain["after"] >= 0.60))
            checks.append((f"sft {mode}: within 600 s", seconds <= 600))
    if "cpt" in parts:
        run_dir, seconds = _train(CHAIN_RECIPE, runs_root)
        before = domain_perplexity("tiny:mid-trained")
        after = domain_perplexity(run_dir / "cpt" / "best")
        comparison = json.loads((run_dir / "eval" / "evaluation.json").read_text())["comparisons"][-1]
        domain = _overall(comparison, "domain")
        cpt = json.loads((run_dir / "cpt" / "result.json").read_text())
        sft = json.loads((run_dir / "sft" / "result.json").read_text())
        summary["cpt-sft chain"] = {
            "seconds_train_and_eval": round(seconds, 1), "cpt_steps": cpt["steps"], "sft_steps": sft["steps"],
            "domain_perplexity_before": round(before, 3), "domain_perplexity_after_cpt": round(after, 3),
            "perplexity_reduction": round(1 - after / before, 4),
            "cpt_validation_loss": [cpt["initial_eval_loss"], cpt["best"]["eval_loss"]],
            "domain_after_chain": domain["after"], "verdict": comparison["verdict"],
        }  # fmt: skip
        print(f"cpt -> sft: {json.dumps(summary['cpt-sft chain'])}", flush=True)
        checks.append(("cpt: domain perplexity >= 30% lower", after <= 0.7 * before and math.isfinite(after)))
        checks.append(("chain: both stages finished from one command", (run_dir / "sft" / "best").is_dir()))
    print()
    for what, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
