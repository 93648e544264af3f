"""LoRA+ on the tiny family: the playbook's reference SFT arm with and without `lora.plus_lr_ratio`.

The arm is `tunesmith experiments playbook`'s `lora-mix50` (LoRA r8 / alpha 16 SFT from tiny:post-trained,
50% general data, lr 5e-3, batch 32, one epoch of the Brindle file, seed 0), trained through `tunesmith
train` once per arm (ratio 1 = plain LoRA, the baseline). Each run is evaluated against the start (its own
forgetting table) and against the first arm on the same items (paired bootstrap, 95% CI): does LoRA+ gain
domain points, and at what general cost?

Usage::

    .venv/bin/python benchmarks/loraplus.py [--arms 1@5e-3,16@5e-3,16@5e-4] [--out /tmp/tunesmith-loraplus]
        [--model PATH] [--steps N]

Each arm is `ratio@lr`; the first is the baseline the others are compared with. An arm whose run folder
already holds a trained stage is not trained again.

`--model PATH` trains a local Hugging Face folder instead of the tiny family (e.g. SmolLM2-135M-Instruct,
with `--steps` to keep it short); its evaluation uses the built-in Brindle domain suite and the general suite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def arm_name(ratio: float, lr: float) -> str:
    return f"loraplus-{ratio:g}-lr{lr:g}"


def recipe(ratio: float, lr: float, out: Path, model: str | None, steps: int | None) -> dict:
    from tunesmith.experiments.playbook import GENERAL_ITEMS, sft_base

    data = sft_base(seed=0, quick=False)
    data["name"] = arm_name(ratio, lr)
    data["output_dir"] = str(out)
    stage = data["stages"][0]
    stage["hyperparameters"]["lr"] = lr
    stage["hyperparameters"]["lora"] = {"plus_lr_ratio": ratio}
    # LoRA+ arms lower the A matrices' LR on purpose (their B matrices learn at ratio x lr)
    data["acknowledge"] = {"lr-deviates-while-mixing": "LoRA+ benchmark: the LR of the A matrices is an arm"}
    if model is not None:
        data["model"] = {"path": model, "checkpoint": "post-trained"}
        data["acknowledge"]["customer-share-far-from-50"] = "benchmark"
    if steps is not None:
        stage["hyperparameters"].pop("max_epochs")
        stage["hyperparameters"].update(max_steps=steps, global_batch_size=8)
    data["evaluation"]["general_items_per_category"] = GENERAL_ITEMS
    return data


def overall(comparison: dict, suite: str) -> dict:
    return next(
        r
        for r in comparison["rows"]
        if r["suite"] == suite and r["category"] == "overall" and r["metric"] == "exact_match"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default="1@5e-3,16@5e-3,16@5e-4")
    parser.add_argument("--out", default="/tmp/tunesmith-loraplus")
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    from tunesmith.evaluation.runner import (
        EvalConfig,
        compare,
        evaluate_checkpoint,
        resolve_eval_model,
        run_start_ref,
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arms = [tuple(float(x) for x in arm.split("@")) for arm in args.arms.split(",")]
    seconds: dict[tuple[float, ...], float | None] = {}
    for ratio, lr in arms:
        name = arm_name(ratio, lr)
        seconds[(ratio, lr)] = None
        if (out / name / "sft" / "best").is_dir():
            continue
        path = out / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe(ratio, lr, out, args.model, args.steps), sort_keys=False))
        started = time.perf_counter()
        command = [sys.executable, "-m", "tunesmith.cli", "train", str(path), "--quiet", "--no-eval"]
        subprocess.run(command, check=True, cwd=REPO)
        seconds[(ratio, lr)] = time.perf_counter() - started

    from tunesmith.experiments.playbook import GENERAL_ITEMS

    config = EvalConfig(domain="builtin:brindle/eval", general_items_per_category=GENERAL_ITEMS)
    scores = {
        arm: evaluate_checkpoint(resolve_eval_model(out / arm_name(*arm) / "sft"), config) for arm in arms
    }
    start = evaluate_checkpoint(resolve_eval_model(run_start_ref(out / arm_name(*arms[0]))), config)
    print(
        "\n| plus_lr_ratio | lr (A) | train s | domain (vs start) | general (vs start) | domain vs first arm | "
        "general vs first arm |"
    )
    print("|---:|---:|---:|---|---|---|---|")
    for arm in arms:
        own = compare(start, scores[arm], config)
        base = compare(scores[arms[0]], scores[arm], config)

        def cell(row: dict) -> str:
            return (
                f"{row['before'] * 100:.1f} -> {row['after'] * 100:.1f}, {row['change'] * 100:+.1f} "
                f"[{row['ci_low'] * 100:+.1f}, {row['ci_high'] * 100:+.1f}]"
            )

        print(
            f"| {arm[0]:g} | {arm[1]:g} | {seconds[arm] or 0:.0f} | {cell(overall(own, 'domain'))} | "
            f"{cell(overall(own, 'general'))} "
            f"| {cell(overall(base, 'domain'))} | {cell(overall(base, 'general'))} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
