"""Evaluation speed on the tiny model: 500 held-out general items, batched greedy generation.

Acceptance (issue 9): evaluating 500 general items on the tiny model takes under 60 s on this machine.

Measures, on `tiny:post-trained` (the built family; `tunesmith models build tiny` first), with the cache
off so every figure is a real computation:

- `generate+score`: the 500 items (about 100 per category; the `knowledge` pool holds ~50 held-out prompts,
  the rest fill up) through `suites.answer_items` at the batch sizes given;
- `perplexity`: the general-text perplexity (100 held-out prose documents);
- `cached`: the same evaluation again through `evaluate_checkpoint` with the cache on (should be ~free).

Baseline: the tiny family's own build-report measurement (`tiny.measure`, 300 general + 100 domain items,
`eval_seconds` in build_report.json), reported as seconds per item for comparison.

Usage::

    .venv/bin/python benchmarks/eval_speed.py [--items 500] [--batch-sizes 32,64,128,256]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--batch-sizes", default="32,64,128,256")
    parser.add_argument("--model", default="tiny:post-trained")
    args = parser.parse_args()

    from tunesmith.evaluation import suites
    from tunesmith.evaluation.runner import EvalConfig, evaluate_checkpoint, resolve_eval_model
    from tunesmith.models import tiny
    from tunesmith.models.loading import load_model, load_tokenizer

    per_category = args.items // 5
    items = suites.general_items(per_category)
    while len(items) < args.items:
        per_category += 5
        items = suites.general_items(per_category)
    items = items[: args.items]
    started = time.perf_counter()
    model, tokenizer = load_model(args.model), load_tokenizer(args.model)
    load_seconds = time.perf_counter() - started
    max_new = suites.max_new_tokens_for(tokenizer, [i["reference"] for i in items], 256)
    print(f"model {args.model}, {len(items)} items, torch threads {torch.get_num_threads()}, "
          f"max_new_tokens {max_new} (derived), load {load_seconds:.1f} s")  # fmt: skip
    started = time.perf_counter()  # first call: lazy initialisation inside torch/transformers
    suites.answer_items(model, tokenizer, items[:8], max_new_tokens=max_new, batch_size=8)
    print(f"  warm-up (8 items): {time.perf_counter() - started:.1f} s")
    results = {}
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        started = time.perf_counter()
        answered = suites.answer_items(model, tokenizer, items, max_new_tokens=max_new, batch_size=batch_size)
        seconds = time.perf_counter() - started
        accuracy = sum(a["scores"]["exact_match"] for a in answered) / len(answered)
        results[f"generate_bs{batch_size}"] = seconds
        print(f"  generate+score, batch {batch_size:>4}: {seconds:6.1f} s  ({len(items) / seconds:6.1f} items/s), "
              f"exact match {accuracy:.3f}")  # fmt: skip
    started = time.perf_counter()
    ppl = suites.general_perplexity(model, tokenizer)
    results["perplexity"] = time.perf_counter() - started
    print(f"  general-text perplexity {ppl:.3f}: {results['perplexity']:.1f} s")

    with tempfile.TemporaryDirectory() as home:  # the full suite, cold then cached
        previous = os.environ.get("TUNESMITH_HOME")
        family = tiny.family_dir()
        os.environ["TUNESMITH_HOME"] = home
        checkpoint = resolve_eval_model(
            family / "post-trained" if args.model == "tiny:post-trained" else args.model
        )
        config = EvalConfig(suites=("general",), general_items_per_category=per_category)
        for label in ("cold", "cached"):
            started = time.perf_counter()
            evaluate_checkpoint(checkpoint, config, quiet=True)
            results[f"suite_{label}"] = time.perf_counter() - started
            print(
                f"  general suite ({label}, {per_category}/category + perplexity): {results[f'suite_{label}']:.2f} s"
            )
        if previous is not None:
            os.environ["TUNESMITH_HOME"] = previous
    report = tiny.load_report() or {}
    post = (report.get("stages") or {}).get("post-trained") or {}
    if post.get("eval_seconds"):
        print(f"  baseline: build report measure() {post['eval_seconds']} s for 400 items "
              f"({post['eval_seconds'] / 400 * 1000:.0f} ms/item)")  # fmt: skip
    best = min(v for k, v in results.items() if k.startswith("generate_"))
    verdict = "PASS" if best < 60 else "FAIL"
    print(f"acceptance (500 items < 60 s): {verdict} — best {best:.1f} s")
    print(json.dumps({"items": len(items), **{k: round(v, 2) for k, v in results.items()}}))


if __name__ == "__main__":
    main()
