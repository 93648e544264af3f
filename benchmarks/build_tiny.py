"""Build the tiny family from scratch into a fresh cache and print its accuracy table and timings.

    .venv/bin/python benchmarks/build_tiny.py [--seed 0] [--steps-scale 1.0]

Compares the rebuild with the family shipped in the package (`tiny.compare_reports`: general and Brindle
accuracy per checkpoint), which is what "a rebuild reaches the shipped checkpoints' quality" means.
Baseline for speed: the feasibility prototype, benchmarks/RESULTS.md "Tiny-model feasibility" (model M, ~12.6k tokens/s, 0.99 mean general accuracy after
~300 s of post-training from scratch). The build's own budget is <= 600 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from tunesmith.models import tiny


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps-scale", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        tiny.build_family(seed=args.seed, steps_scale=args.steps_scale, out_dir=tmp, force=True)
        seconds = time.perf_counter() - started
        report = tiny.load_report(tmp)
    print(tiny.format_report(report))
    for stage, stats in report["stages"].items():
        print(
            f"{stage:<14} steps {stats['num_steps']:>5}  {stats['tokens_per_second']:>6} tok/s  loss {stats['final_loss']}"
        )
    print(f"wall {seconds:.0f} s (budget 600 s), {report['threads']} threads")
    shipped = tiny.load_report(tiny.shipped_dir())
    if shipped is not None:
        print(f"against the shipped family (built with {shipped['threads']} thread(s)):")
        print("\n".join(tiny.compare_reports(report, shipped)))
    print(json.dumps({"build_seconds": report["build_seconds"], "params": report["params"]}))


if __name__ == "__main__":
    main()
