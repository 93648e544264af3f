"""DPO on the tiny family: does a `technique: dpo` stage raise held-out preference accuracy, and at what
general cost?

One LoRA DPO stage from tiny:post-trained on the built-in Brindle pairs (`builtin:brindle/dpo`: the right
answer chosen, a near miss rejected), trained through `tunesmith train` with its evaluation (the forgetting
table: general and Brindle suites against the start). Held-out preference accuracy is measured here on the
200 pairs of `builtin:brindle/dpo-validation` (prompts disjoint from training): a pair counts as right when
the model gives the chosen answer a higher total log-probability than the rejected one (its own likelihood,
not DPO's implicit reward, so the start is measured on the same footing). Start and best are compared on
the same pairs (paired bootstrap, 95% CI, `evaluation.forgetting.forgetting_table`).

Usage::

    .venv/bin/python benchmarks/dpo.py [--out /tmp/tunesmith-dpo] [--steps 60] [--batch 16] [--lr 3e-3]
        [--model tiny:post-trained | PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def pair_logps(model, tokenizer, prompt: list[dict], answer: str) -> float:
    """Total log-probability of `answer` as the assistant's reply to `prompt` (chat template tokens)."""
    import torch

    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
    full = tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": answer}], tokenize=True, return_dict=False
    )
    assert full[: len(head)] == head, "the chat template does not extend the prompt"
    ids = torch.tensor([full])
    with torch.no_grad():
        logits = model(ids).logits[0, :-1].float()
    logps = torch.log_softmax(logits, dim=-1)
    targets = ids[0, 1:]
    picked = logps[torch.arange(len(targets)), targets]
    return float(picked[len(head) - 1 :].sum())


def preference_items(ref: str | Path, pairs: list[dict]) -> list[dict]:
    import torch

    from tunesmith.models.loading import load_model, load_tokenizer

    torch.set_num_threads(1)  # one small forward pass per answer: threads only contend on a shared machine

    model, tokenizer = load_model(ref), load_tokenizer(ref)
    model.eval()
    items = []
    for index, pair in enumerate(pairs):
        prompt = pair["prompt"]
        chosen = pair_logps(model, tokenizer, prompt, pair["chosen"][0]["content"])
        rejected = pair_logps(model, tokenizer, prompt, pair["rejected"][0]["content"])
        items.append(
            {"id": str(index), "category": "brindle-pairs", "scores": {"right": float(chosen > rejected)}}
        )
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/tunesmith-dpo")
    parser.add_argument("--model", default="tiny:post-trained")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=None, help="default: the defaults table's")
    args = parser.parse_args()
    from tunesmith.data.builtin import resolve_builtin
    from tunesmith.data.formats.reader import read_examples
    from tunesmith.evaluation.forgetting import forgetting_table

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    family, _, stage = args.model.partition(":")
    model = (
        {"family": family, "checkpoint": stage}
        if stage
        else {"path": args.model, "checkpoint": "post-trained"}
    )
    hyperparameters = {"max_steps": args.steps, "global_batch_size": args.batch}
    if args.lr is not None:
        hyperparameters["lr"] = args.lr
    recipe = {
        "name": "dpo-brindle",
        "model": model,
        "output_dir": str(out),
        "stages": [
            {
                "technique": "dpo",
                "mode": "lora",
                "data": {"train": "builtin:brindle/dpo", "validation": "builtin:brindle/dpo-validation"},
                "hyperparameters": hyperparameters,
            }
        ],
        "evaluation": {"general_items_per_category": 30},
    }
    path = out / "dpo-brindle.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    run = out / "dpo-brindle"
    started = time.perf_counter()
    if not (run / "dpo" / "best").is_dir():
        subprocess.run(
            [sys.executable, "-m", "tunesmith.cli", "train", str(path), "--quiet"], check=True, cwd=REPO
        )
    seconds = time.perf_counter() - started
    pairs = [e.to_row() for e in read_examples(resolve_builtin("builtin:brindle/dpo-validation"), "dpo")]
    start_ref = model.get("path") or f"{family}:{stage}"
    before = preference_items(start_ref, pairs)
    after = preference_items(run / "dpo" / "best", pairs)
    (row,) = [
        r
        for r in forgetting_table("pairs", before, after, "right", with_retention=False)
        if r.category == "overall"
    ]
    print(
        f"held-out preference accuracy ({len(pairs)} pairs): {row.before:.3f} -> {row.after:.3f}, "
        f"{row.change * 100:+.1f} points [{row.ci_low * 100:+.1f}, {row.ci_high * 100:+.1f}], "
        f"significant: {row.significant}; train+eval {seconds:.0f} s"
    )
    evaluation = run / "eval" / "evaluation.json"
    if evaluation.is_file():
        data = json.loads(evaluation.read_text())
        for comparison in data.get("comparisons", []):
            for r in comparison["rows"]:
                if r["category"] == "overall":
                    print(
                        f"  {r['suite']:<8} {r['metric']:<12} {r['before']:.3f} -> {r['after']:.3f} "
                        f"({r['change'] * 100:+.1f} [{r['ci_low'] * 100:+.1f}, {r['ci_high'] * 100:+.1f}])"
                    )


if __name__ == "__main__":
    main()
