"""RFT end to end on the tiny family: the readiness probe's verdicts and what RFT adds (issue 8's acceptance).

1. `tunesmith probe` on the post-trained checkpoint with the Brindle reward: expected "do SFT first"
   (the post-trained model has never seen the domain: reward ~0).
2. `tunesmith train recipes/tiny-sft-rft.yaml`: a short LoRA SFT stage (50% general mix), then the pipeline
   probes the SFT checkpoint before the RFT stage (expected "ready", kept in `runs/<name>/rft/probe.json`),
   then GRPO (full rank, builtin:brindle reward) on the Brindle prompts.
3. The automatic evaluation compares the SFT checkpoint with the RFT checkpoint on the same held-out items:
   the Brindle eval prompts (never trained on: hash split) scored by the reward (greedy, the deployed
   behaviour) and the general held-out items (exact match, 60 per category). Criteria: the domain mean
   reward rises (the margin and its bootstrap CI are reported) and general accuracy drops by at most 2 points.
   The mean reward of *sampled* completions (temperature 1, 4 per prompt, what GRPO optimizes) is
   measured on the same held-out prompts too.

Usage::

    .venv/bin/python benchmarks/rft_acceptance.py [--runs-root /tmp/rft-acceptance]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "tiny-sft-rft.yaml"


def _row(rows: list[dict], suite: str, metric: str, category: str = "overall") -> dict:
    return next(
        r for r in rows if r["suite"] == suite and r["category"] == category and r["metric"] == metric
    )


def sampled_reward(model_ref: str | Path, samples: int = 4, seed: int = 0) -> float:
    """Mean Brindle reward of sampled completions (temperature 1) on the held-out eval prompts."""
    import torch

    from tunesmith.data.builtin import resolve_builtin
    from tunesmith.data.domain import reward
    from tunesmith.evaluation.suites import domain_items
    from tunesmith.models.generate import generate_batch
    from tunesmith.models.loading import load_model, load_tokenizer

    items = domain_items(resolve_builtin("builtin:brindle/eval"))
    model, tokenizer = load_model(model_ref), load_tokenizer(model_ref)
    torch.manual_seed(seed)
    outputs = generate_batch(
        model, tokenizer, [i["messages"] for i in items], 32, num_samples=samples, temperature=1.0
    )
    return sum(reward(o, items[k // samples]["reference"]) for k, o in enumerate(outputs)) / len(outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-root", default="/tmp/tunesmith-rft-acceptance")
    args = parser.parse_args()

    import yaml

    from tunesmith.evaluation.probe import ProbeSettings, probe_rows, render_report
    from tunesmith.models import tiny
    from tunesmith.training.pipeline import train_command
    from tunesmith.training.rft import read_rows

    tiny.family()  # the shipped family: nothing is built
    checks: list[tuple[str, bool]] = []
    summary: dict = {}

    # 1. the probe on the post-trained checkpoint
    from tunesmith.data.builtin import resolve_builtin

    prompts = [
        {"prompt": r["messages"], **{k: v for k, v in r.items() if k != "messages"}}
        for r in read_rows(resolve_builtin("builtin:brindle/rft"))
    ]
    started = time.perf_counter()
    post = probe_rows("tiny:post-trained", prompts, "builtin:brindle", ProbeSettings()).to_dict()
    print(render_report(post))
    summary["probe_post_trained"] = {
        k: post[k] for k in ("positive_rate", "mean_score", "verdict", "seconds")
    }
    checks.append(("probe on post-trained says 'do SFT first'", post["verdict"] == "sft_first"))

    # 2. SFT -> (probe) -> RFT through the pipeline, evaluated at the end
    name = yaml.safe_load(RECIPE.read_text())["name"]
    run_dir = Path(args.runs_root) / name
    started = time.perf_counter()
    code = train_command(str(RECIPE), runs_root=args.runs_root, quiet=True, force=False, overwrite=True)
    seconds = time.perf_counter() - started
    assert code == 0, f"train exited {code}"
    probe = json.loads((run_dir / "rft" / "probe.json").read_text())
    print(render_report(probe))
    summary["probe_after_sft"] = {
        k: probe[k] for k in ("positive_rate", "useful_group_share", "mean_score", "verdict", "seconds")
    }
    checks.append(("probe after the SFT stage says 'ready'", probe["verdict"] == "ready"))

    # 3. RFT over SFT on the same held-out items
    from tunesmith.evaluation.runner import render_comparison

    report = json.loads((run_dir / "eval" / "evaluation.json").read_text())
    step = next(
        c for c in report["comparisons"] if c["before"].endswith("/sft") and c["after"].endswith("/rft")
    )
    print(render_comparison(step))
    domain = _row(step["rows"], "domain", "reward")
    exact = _row(step["rows"], "domain", "exact_match")
    general = _row(step["rows"], "general", "exact_match")
    result = json.loads((run_dir / "rft" / "result.json").read_text())
    sampled = {
        "sft": sampled_reward(run_dir / "sft" / "best"),
        "rft": sampled_reward(run_dir / "rft" / "best"),
    }
    summary["rft_over_sft"] = {
        "domain_reward": [domain["before"], domain["after"], domain["change"], domain["ci_low"], domain["ci_high"]],
        "domain_exact_match": [exact["before"], exact["after"], exact["change"]],
        "domain_sampled_reward": [round(sampled["sft"], 4), round(sampled["rft"], 4)],
        "general": [general["before"], general["after"], general["change"], general["ci_low"], general["ci_high"]],
        "rft_steps": result["steps"],
        "rft_train_seconds": result["train_seconds"],
        "reward_calls": result["reward"],
        "best": result["best"],
        "events": result["events"]["by_detector"],
        "pipeline_seconds": round(seconds, 1),
    }  # fmt: skip
    start_vs_rft = report["comparisons"][-1]
    summary["start_vs_rft_verdict"] = start_vs_rft["verdict"]
    checks.append(
        (f"RFT raises held-out domain reward ({domain['change']:+.3f})", domain["direction"] == "gain")
    )
    checks.append((f"general drop <= 2 points ({100 * general['change']:+.1f})", general["change"] >= -0.02))
    print(f"\nsampled (T=1) held-out reward: SFT {sampled['sft']:.3f} -> RFT {sampled['rft']:.3f}")
    print(f"pipeline: {seconds:.0f} s (SFT + probe + RFT + evaluation)")
    for what, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
