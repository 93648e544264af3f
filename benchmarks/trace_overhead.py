"""What spike tracing costs per optimizer step: the same SFT stage with tracing on (A) and off (B).

The stage is the tiny family's default LoRA SFT (recipes/tiny-sft-lora-mixed.yaml: 50% general mix, batch
64) for `--steps` steps, without validation or forgetting probes (they would add irregular time to some
steps). A and B alternate (A B, B A, A B, ...) with the same seed, in one process; a step's time is the wall
time between two consecutive step ends (data loading and collation, forward, backward, optimizer, every
callback), and the first `--warmup` steps of each run are left out. Tracing off means the SFT technique
does not trace (`traces_rows = False`): no index column, no collator wrapper, no per-step record.

Besides the A/B difference (noisy on a shared machine), the tracer's own work is timed inside run A: the
collator wrapper, `StepTracer.add` and the per-step write, summed per step.

    .venv/bin/python benchmarks/trace_overhead.py [--pairs 4] [--steps 40] [--out /tmp/tunesmith-trace]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainerCallback

REPO = Path(__file__).resolve().parents[1]
BASE_RECIPE = REPO / "recipes" / "tiny-sft-lora-mixed.yaml"


class StepClock(TrainerCallback):
    """The wall time between consecutive step ends."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.seconds: list[float] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.seconds.append(now - self.last)
        self.last = now


class Stopwatch:
    """Accumulates the time spent in wrapped functions."""

    def __init__(self) -> None:
        self.total = 0.0

    def wrap(self, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - started

        return timed


def recipe(out: Path, steps: int) -> Path:
    data = yaml.safe_load(BASE_RECIPE.read_text())
    stage = data["stages"][0]
    stage["data"].pop("validation")
    stage["hyperparameters"] = {"max_steps": steps, "val_check_interval": steps, "seed": 0}
    stage["monitoring"] = {"policies": {"forgetting": "off", "kl_drift": "off"}}
    data["output_dir"] = str(out / "runs")
    data.pop("evaluation", None)
    data["acknowledge"]["no-validation-set@sft"] = "a timing run"
    path = out / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_once(path: Path, traced: bool, out: Path, warmup: int) -> dict[str, Any]:
    from tunesmith.recipe.loading import load_recipe
    from tunesmith.recipe.resolve import resolve
    from tunesmith.training import trace
    from tunesmith.training.cpt import CPT
    from tunesmith.training.pipeline import train

    shutil.rmtree(out / "runs", ignore_errors=True)
    CPT.traces_rows = traced  # the SFT technique inherits it
    clock, tracer_time = StepClock(), Stopwatch()
    originals = (trace.TracingCollator.__call__, trace.StepTracer.add, trace.StepTracer.on_step_end)
    inner_time = Stopwatch()
    if traced:  # the wrapper's own time: its total minus the wrapped collator's
        trace.TracingCollator.__call__ = tracer_time.wrap(originals[0])
        trace.StepTracer.add = tracer_time.wrap(originals[1])
        trace.StepTracer.on_step_end = tracer_time.wrap(originals[2])
        bind = trace.StepTracer.bind

        def timed_bind(self: Any, trainer: Any) -> None:
            bind(self, trainer)
            trainer.data_collator.inner = inner_time.wrap(trainer.data_collator.inner)

        trace.StepTracer.bind = timed_bind
    try:
        result = train(
            resolve(load_recipe(path)), runs_root=out / "runs", quiet=True, callbacks=(lambda w, s: clock,)
        )
    finally:
        trace.TracingCollator.__call__, trace.StepTracer.add, trace.StepTracer.on_step_end = originals
        if traced:
            trace.StepTracer.bind = bind
    stage = result.stages[0].stage_dir
    assert (stage / "trace.jsonl").exists() == traced
    timed = clock.seconds[warmup:]
    steps = len(clock.seconds) + 1
    return {
        "traced": traced,
        "median_step_s": statistics.median(timed),
        "mean_step_s": statistics.fmean(timed),
        "tracer_s_per_step": (tracer_time.total - inner_time.total) / steps if traced else 0.0,
        "trace_bytes": (stage / "trace.jsonl").stat().st_size if traced else 0,
        "origins_bytes": (stage / "data" / "origins.bin").stat().st_size,
    }


def column_cost(rows: int = 25_600, batch: int = 64, length: int = 120) -> dict[str, float]:
    """The extra `example_index` read with each row (outside the timers above): a 64-row fetch from a
    tokenized dataset with and without the column, and the one-time cost of adding it."""
    import random

    from datasets import Dataset

    from tunesmith.training.trace import with_example_index

    rng = random.Random(0)
    plain = Dataset.from_dict(
        {"input_ids": [[rng.randrange(100) for _ in range(length)] for _ in range(rows)]}
    )
    started = time.perf_counter()
    indexed = with_example_index(plain)
    added = time.perf_counter() - started

    def fetch(dataset: Any) -> float:
        times = []
        for k in range(30):
            began = time.perf_counter()
            dataset.__getitems__(list(range(k * batch, (k + 1) * batch)))
            times.append(time.perf_counter() - began)
        return statistics.median(times)

    with_index = statistics.median(fetch(indexed) for _ in range(5))
    without = statistics.median(fetch(plain) for _ in range(5))
    return {
        "add_column_ms": 1000 * added,
        "fetch_ms_with": 1000 * with_index,
        "fetch_ms_without": 1000 * without,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", default="/tmp/tunesmith-trace")
    parser.add_argument("--column-only", action="store_true", help="only the index column's fetch cost")
    args = parser.parse_args()
    if args.column_only:
        print(json.dumps({k: round(v, 3) for k, v in column_cost().items()}))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = recipe(out, args.steps)
    load = os.getloadavg()[0]
    runs = []
    for pair in range(args.pairs):
        for traced in (True, False) if pair % 2 == 0 else (False, True):
            row = run_once(path, traced, out, args.warmup)
            runs.append(row)
            arm = "A (traced)" if traced else "B (off)   "
            print(
                f"pair {pair + 1} {arm}: median step {row['median_step_s'] * 1000:.1f} ms, mean "
                f"{row['mean_step_s'] * 1000:.1f} ms, tracer {row['tracer_s_per_step'] * 1e6:.0f} us/step",
                flush=True,
            )
    a = [r for r in runs if r["traced"]]
    b = [r for r in runs if not r["traced"]]
    ratios = [ra["median_step_s"] / rb["median_step_s"] for ra, rb in zip(a, b, strict=True)]
    summary = {
        "pairs": args.pairs,
        "steps": args.steps,
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "a_median_step_ms": round(1000 * statistics.median(r["median_step_s"] for r in a), 2),
        "b_median_step_ms": round(1000 * statistics.median(r["median_step_s"] for r in b), 2),
        "pair_ratios_a_over_b": [round(x, 4) for x in ratios],
        "median_ratio": round(statistics.median(ratios), 4),
        "tracer_us_per_step": round(1e6 * statistics.median(r["tracer_s_per_step"] for r in a), 1),
        "tracer_share_of_step": round(
            statistics.median(r["tracer_s_per_step"] / r["median_step_s"] for r in a), 5
        ),
        "trace_bytes_per_step": round(statistics.median(r["trace_bytes"] for r in a) / args.steps, 1),
        "runs": runs,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
