"""Run monitoring on the tiny family: are doomed runs caught early, healthy runs left alone, and is it cheap?

Acceptance (issue 7):
- divergent runs (LR x10, x30, x100 the default with 50% mixing; a corrupted data shard) are stopped or
  rolled back within 10% of their planned steps after the onset;
- zero stops/rollbacks on healthy runs with different seeds (default settings);
- monitoring overhead on step time < 3% (the same run with and without monitoring).

The base recipe is the tiny family's default SFT stage (recipes/tiny-sft-lora-mixed.yaml: post-trained,
LoRA, lr 1e-2, 50% general mix, 400 steps). Onset of a divergent run: for the LR runs, the first step at
which its smoothed loss (rolling median of 9 steps) exceeds 1.5x the smoothed loss of the healthy run with
the same seed (the healthy seed-0 run is the reference); for the corrupted shard, the first step trained on
the corrupted window (known by construction). Detection: the first stop/rollback event.

    .venv/bin/python benchmarks/monitoring.py [--healthy-seeds 10] [--steps 400] [--out /tmp/tunesmith-monitoring]

Prints one table per part and writes `summary.json` into --out. Runs one training job at a time.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BASE_RECIPE = REPO / "recipes" / "tiny-sft-lora-mixed.yaml"
SMOOTH = 9

MODEL_PATH: str | None = None  # --model-path: a tiny-family checkpoint folder instead of the catalog family
TINY_LORA_SFT = {  # the tiny family's LoRA SFT defaults (recipe/defaults.py), spelled out for a model path
    "lr": 1e-2,
    "global_batch_size": 64,
    "micro_batch_size": 64,
    "max_length": 256,
    "max_steps": 400,
    "lora": {"rank": 8, "alpha": 16},
}


def recipe_for(
    name: str, out: Path, *, seed: int, steps: int | None, lr: float | None, monitoring: dict | None
):
    import yaml

    from tunesmith.recipe.loading import validate_recipe
    from tunesmith.recipe.resolve import resolve

    data = yaml.safe_load(BASE_RECIPE.read_text())
    data["name"] = name
    data["seed"] = seed
    data["output_dir"] = str(out)
    stage = data["stages"][0]
    hp = stage.setdefault("hyperparameters", {})
    if MODEL_PATH is not None:
        data["model"] = {"path": MODEL_PATH, "checkpoint": "mid-trained"}
        hp.update(json.loads(json.dumps(TINY_LORA_SFT)))
    if steps is not None:
        hp["max_steps"] = steps
    if lr is not None:
        hp["lr"] = lr
    if monitoring is not None:
        stage["monitoring"] = monitoring
    return resolve(validate_recipe(data, source=name), recipe_path=BASE_RECIPE)


def corrupting(first_step: int, last_step: int, seed: int = 0):
    """A wrapper for prepare_stage_data that replaces every example trained at steps first..last with
    shuffled-character garbage (both turns), in place in the mixed training file."""
    from tunesmith.training import data as data_module

    real = data_module.prepare_stage_data

    def prepare(stage, **kw):
        result = real(stage, **kw)
        batch = stage.hyperparameters.global_batch_size
        rng = random.Random(seed)
        lines = result.train_file.read_text(encoding="utf-8").splitlines()
        for i in range((first_step - 1) * batch, min(last_step * batch, len(lines))):
            row = json.loads(lines[i])
            for message in row.get("messages", []):
                chars = list(message["content"])
                rng.shuffle(chars)
                message["content"] = "".join(chars)
            lines[i] = json.dumps(row)
        result.train_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return result

    return prepare


def run(name: str, out: Path, *, corrupt: tuple[int, int] | None = None, **kw: Any) -> dict[str, Any]:
    """Train one run (fresh folder) and collect its numbers."""
    import shutil

    from tunesmith.training import pipeline

    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    resolved = recipe_for(name, out, **kw)
    original = pipeline.prepare_stage_data
    if corrupt is not None:
        pipeline.prepare_stage_data = corrupting(*corrupt)
    started = time.perf_counter()
    try:
        result = pipeline.train(resolved, runs_root=out, quiet=True)
    finally:
        pipeline.prepare_stage_data = original
    seconds = time.perf_counter() - started
    stage = result.stages[-1]
    stage_dir = stage.stage_dir
    events = (
        [json.loads(x) for x in (stage_dir / "events.jsonl").read_text().splitlines()]
        if (stage_dir / "events.jsonl").exists()
        else []
    )
    first_attempt = stage_dir / "metrics.attempt-0.jsonl"
    metrics_path = first_attempt if first_attempt.exists() else stage_dir / "metrics.jsonl"
    metrics = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]
    probes = (
        [json.loads(x) for x in (stage_dir / "probes.jsonl").read_text().splitlines()]
        if (stage_dir / "probes.jsonl").exists()
        else []
    )
    decisive = [e for e in events if e["action"] in ("stop", "rollback")]
    return {
        "name": name,
        "seconds": round(seconds, 1),
        "planned_steps": stage.summary["planned_steps"],
        "steps": stage.summary["steps"],
        "completed": stage.completed,
        "events": [{k: e[k] for k in ("detector", "step", "action", "attempt")} for e in events],
        "first_intervention": decisive[0] if decisive else None,
        "summary": stage.summary.get("events"),
        "train_seconds": stage.summary["train_seconds"],
        "losses": {r["step"]: r["loss"] for r in metrics if "loss" in r},
        "step_seconds": step_seconds(metrics),
        "probes": probes,
        "final_eval_loss": stage.summary.get("final_eval_loss"),
    }


def step_seconds(metrics: list[dict[str, Any]]) -> list[float]:
    """Wall seconds between consecutive training-loss rows (steps with an evaluation excluded)."""
    evals = {r["step"] for r in metrics if "eval_loss" in r}
    rows = [r for r in metrics if "loss" in r]
    return [
        b["elapsed_seconds"] - a["elapsed_seconds"]
        for a, b in zip(rows, rows[1:], strict=False)
        if b["step"] == a["step"] + 1 and b["step"] not in evals and a["step"] not in evals
    ]


def smoothed(losses: dict[int, float]) -> dict[int, float]:
    steps = sorted(losses)
    out = {}
    for i, step in enumerate(steps):
        window = [losses[s] for s in steps[max(0, i - SMOOTH + 1) : i + 1]]
        out[step] = statistics.median(window)
    return out


def onset_vs(reference: dict[int, float], losses: dict[int, float], factor: float = 1.5) -> int | None:
    ref, mine = smoothed(reference), smoothed(losses)
    for step in sorted(mine):
        if step in ref and (mine[step] != mine[step] or mine[step] > factor * ref[step]):  # NaN counts
            return step
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--healthy-seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=None, help="shorten every run (default: 400)")
    parser.add_argument("--out", default="/tmp/tunesmith-monitoring")
    parser.add_argument("--parts", default="healthy,lr,corrupt,overhead")
    parser.add_argument("--model-path", default=None, help="a tiny checkpoint folder (default: the family)")
    args = parser.parse_args()
    global MODEL_PATH
    MODEL_PATH = args.model_path
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(2)
    parts = set(args.parts.split(","))
    summary_path = out / "summary.json"
    summary: dict[str, Any] = json.loads(summary_path.read_text()) if summary_path.exists() else {}

    def save() -> None:
        summary_path.write_text(json.dumps(summary, indent=1))

    default_lr = 1e-2  # the tiny family's LoRA SFT default (recipe/defaults.py)
    if "healthy" in parts:
        rows = []
        for seed in range(args.healthy_seeds):
            r = run(f"healthy-seed{seed}", out, seed=seed, steps=args.steps, lr=None, monitoring=None)
            rows.append(r)
            print(
                f"healthy seed {seed}: {r['steps']}/{r['planned_steps']} steps, events "
                f"{[(e['detector'], e['step'], e['action']) for e in r['events']]}, {r['seconds']} s",
                flush=True,
            )
            summary.setdefault("healthy", {})[str(seed)] = {k: v for k, v in r.items() if k != "losses"}
            summary.setdefault("reference_losses", {})[str(seed)] = r["losses"]
            save()
    reference = {int(k): v for k, v in summary.get("reference_losses", {}).get("0", {}).items()}
    if "lr" in parts:
        for multiple in (10, 30, 100):
            r = run(
                f"lr-x{multiple}", out, seed=0, steps=args.steps, lr=default_lr * multiple, monitoring=None
            )
            losses = {int(k): v for k, v in r["losses"].items()}
            r["onset_step"] = onset_vs(reference, losses) if reference else None
            summary.setdefault("divergent", {})[f"lr-x{multiple}"] = {
                k: v for k, v in r.items() if k != "losses"
            }
            save()
            print(
                f"lr x{multiple}: onset {r['onset_step']}, first intervention {r['first_intervention']}",
                flush=True,
            )
    if "corrupt" in parts:
        planned = args.steps or 400
        first, last = planned // 2, planned // 2 + planned // 10
        r = run(
            "corrupt-shard", out, seed=0, steps=args.steps, lr=None, monitoring=None, corrupt=(first, last)
        )
        r["onset_step"] = first
        r["corrupt_window"] = [first, last]
        summary.setdefault("divergent", {})["corrupt-shard"] = {k: v for k, v in r.items() if k != "losses"}
        save()
        print(f"corrupt shard {first}-{last}: first intervention {r['first_intervention']}", flush=True)
    if "overhead" in parts:
        off = run("overhead-off", out, seed=0, steps=args.steps, lr=None, monitoring={"enabled": False})
        on = summary.get("healthy", {}).get("0") or run(
            "healthy-seed0", out, seed=0, steps=args.steps, lr=None, monitoring=None
        )
        summary["overhead"] = {
            "off": {k: off[k] for k in ("train_seconds", "steps")},
            "on": {k: on[k] for k in ("train_seconds", "steps")},
            "median_step_seconds_off": statistics.median(off["step_seconds"]),
            "median_step_seconds_on": statistics.median(on["step_seconds"]),
            "probe_seconds": (on.get("summary") or {}).get("probe_seconds"),
            "monitor_seconds": (on.get("summary") or {}).get("monitor_seconds"),
        }
        save()
    report(summary, args.steps or 400)
    return 0


def report(summary: dict[str, Any], planned: int) -> None:
    print("\n## healthy runs (default settings)")
    print("| seed | steps | warn events | stop/rollback | seconds |")
    print("|---:|---:|---|---:|---:|")
    for seed, r in sorted(summary.get("healthy", {}).items(), key=lambda kv: int(kv[0])):
        warns = ", ".join(f"{e['detector']}@{e['step']}" for e in r["events"] if e["action"] == "warn") or "-"
        hard = sum(e["action"] != "warn" for e in r["events"])
        print(f"| {seed} | {r['steps']}/{r['planned_steps']} | {warns} | {hard} | {r['seconds']} |")
    print("\n## divergent runs")
    print(
        "| run | onset step | first stop/rollback (detector, step, action) | latency (steps) | limit (10%) | pass |"
    )
    print("|---|---:|---|---:|---:|---|")
    for name, r in summary.get("divergent", {}).items():
        first = r["first_intervention"]
        onset = r.get("onset_step")
        if first is None:
            print(f"| {name} | {onset} | none | - | {planned // 10} | {'n/a' if onset is None else 'FAIL'} |")
            continue
        latency = first["step"] - onset if onset is not None else None
        ok = latency is not None and latency <= planned // 10
        print(
            f"| {name} | {onset} | {first['detector']} @ {first['step']} ({first['action']}) | {latency} | "
            f"{planned // 10} | {'PASS' if ok else 'CHECK'} |"
        )
    if "overhead" in summary:
        o = summary["overhead"]
        total = 100 * (o["on"]["train_seconds"] / o["off"]["train_seconds"] - 1)
        median = 100 * (o["median_step_seconds_on"] / o["median_step_seconds_off"] - 1)
        print("\n## overhead (seed 0, same run with and without monitoring)")
        print(
            f"train seconds off {o['off']['train_seconds']} / on {o['on']['train_seconds']} ({total:+.1f}%); median step "
            f"off {o['median_step_seconds_off']:.4f} s / on {o['median_step_seconds_on']:.4f} s ({median:+.1f}%); "
            f"probe {o['probe_seconds']} s, detectors {o['monitor_seconds']} s in total"
        )


if __name__ == "__main__":
    sys.exit(main())
