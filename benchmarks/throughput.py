"""Throughput: `tunesmith train` (A) against a bare TRL `SFTTrainer` script (B), run alternately (issue 18).

Same model, data, hyperparameters (full rank, lr 3e-4, batch, steps, max_length) and training examples:

- A: `python -m tunesmith.cli train RECIPE --quiet --no-eval --force`: one SFT stage, monitoring on (the
  forgetting probe and checkpoints every `val_check_interval`), `hyperparameters.packing` false and true,
  everything else at tunesmith's defaults (so "packing off" on the mixed data groups the examples of every
  16 steps by length, `hyperparameters.length_grouping: auto`; and on CPU, one process, gradient
  checkpointing is off with each micro-batch run in chunks of rows, `hyperparameters.gradient_checkpointing:
  auto`).
- B: this file with `--child-trl`: `SFTTrainer` with TRL's defaults (gradient checkpointing, no packing,
  logging every 10 steps, its own thread count) plus the same loss mask (assistant-only where the chat
  template marks assistant turns, else prompt -> completion), the same precision as A (fp32 weights; bf16
  autocast on CUDA only, where TRL's default would autocast on CPU too) and `include_num_input_tokens_seen="non_padding"`
  (a per-step sum) so that it reports the same useful-token count.

Each pair runs A (packing off), B, A (packing on), in that order, at least 3 pairs. Per run: useful
(non-padding) tokens per second over the training loop (first to last step, from the run's own per-step
log), median step time, whole-process time (spawn to exit) and peak memory (the child's max RSS from
`wait4`); then the median over pairs of A/B tokens/s, B/A whole-process time (> 1: A is faster) and
A/B peak memory. Models: the tiny family (post-trained) and a random-initialized ~30M-parameter Llama
(`build_stand_in("llama3", size="30m")`). Data: "mixed" (Brindle questions, 70% alone and 30% joined
3-8 at a time: short and long examples mixed) and "brindle" (the Brindle SFT file as it is).

The threads part runs tiny A with packing while one other process keeps a core busy, with the automatic
thread choice and with `TUNESMITH_THREADS=1` (and idle, for reference). The GPU part runs only with CUDA:
bf16, a ~0.5B Llama from a config (random init), max_length 2048, packing (B: TRL's bfd packing), and
prints tokens/s and MFU = 6 x parameters x tokens/s / peak bf16 FLOP/s, on "long" data (10-120
Brindle pairs per example, up to 2048 tokens). There B packs whole rows of 2048 tokens (so its 32 rows per
step hold more examples than A's 32), which is TRL's packing as users switch it on.

    .venv/bin/python benchmarks/throughput.py            # the full run: appends to benchmarks/RESULTS.md
                                                         # (hours on a 2-core machine at 100 steps: the
                                                         # 30M model takes ~3-7 s a step; --steps shrinks it)
    .venv/bin/python benchmarks/throughput.py --quick    # smoke run (few steps, 1 pair, nothing recorded)

The machine must be otherwise quiet for the figures to mean anything (the busy part makes its own load).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
INTERVENING = ("non_finite", "spike_frequency", "divergence", "forgetting", "collapse")
"""Detectors whose default policy rolls back or stops a run (`monitoring/policies.py`)."""
RESULTS = REPO / "benchmarks" / "RESULTS.md"
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
}
"""Dense bf16 peak FLOP/s by GPU name (vendor data sheets, without sparsity)."""


@dataclass
class Setup:
    model: str  # "tiny" | "30m" | "0.5b"
    data: str  # "mixed" | "brindle"
    steps: int
    global_batch_size: int
    micro_batch_size: int
    max_length: int
    lr: float = 3e-4


@dataclass
class RunResult:
    who: str  # "A packing off" | "A packing on" | "B"
    tokens_per_second: float
    median_step_seconds: float
    process_seconds: float
    peak_rss_mb: float
    useful_tokens: int
    steps: int
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- inputs


def _python() -> str:
    return sys.executable


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1", **extra}
    if not extra.get("OMP_NUM_THREADS"):
        env.pop("OMP_NUM_THREADS", None)  # each side chooses its own threads (A: tunesmith.threads)
    return env


def model_folder(name: str, workdir: Path) -> Path:
    """The model of a setup: the tiny family's post-trained checkpoint (built if missing) or a stand-in."""
    if name == "tiny":
        from tunesmith.models import tiny

        return tiny.family(quiet=False)["post-trained"]
    from tunesmith.models.stand_ins import build_stand_in

    folder = workdir / f"llama3-{name}"
    dtype = "bfloat16" if name == "0.5b" else "float32"
    if not (folder / "stand_in.json").exists():
        build_stand_in("llama3", folder, size=name, dtype=dtype)
    return folder


def _brindle_pairs() -> list[tuple[str, str]]:
    from tunesmith.data.builtin import resolve_builtin

    pairs = []
    for line in resolve_builtin("builtin:brindle/sft").read_text(encoding="utf-8").splitlines():
        messages = json.loads(line)["messages"]
        texts = ["".join(part["text"] for part in m["content"]) for m in messages]
        pairs.append((texts[0], texts[-1]))
    return pairs


def data_file(name: str, workdir: Path, examples: int, model: Path, max_length: int, seed: int = 0) -> Path:
    """OpenAI-chat JSONL both sides read. "brindle": the Brindle SFT pairs in file order (repeated to
    `examples`); "mixed": 70% single pairs, 30% 3-8 pairs joined into one long question and answer; "long"
    (GPU): 10-120 pairs joined. Joined pairs are cut to fit `max_length` tokens of the model's chat
    template, so that nothing is truncated."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # measuring an over-long candidate is not an error
    tokenizer = AutoTokenizer.from_pretrained(model)
    rng = random.Random(seed)
    pairs = _brindle_pairs()

    def row(group: list[tuple[str, str]]) -> dict:
        question, answer = " ".join(q for q, _ in group), "; ".join(a for _, a in group)
        return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}

    def length(messages: list[dict]) -> int:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    rows = []
    for i in range(examples):
        if name == "brindle":
            rows.append(row([pairs[i % len(pairs)]]))
            continue
        if name == "long":  # the GPU part: 10-120 pairs, up to max_length 2048
            group = rng.sample(pairs, rng.randint(10, 120))
        else:
            group = [rng.choice(pairs)] if rng.random() < 0.7 else rng.sample(pairs, rng.randint(3, 8))
        while len(group) > 1 and length(row(group)["messages"]) > max_length:
            group = group[: max(1, len(group) * 3 // 4)] if len(group) > 8 else group[:-1]
        rows.append(row(group))
    path = workdir / f"{name}-{model.name}-{examples}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------- the runs


def _spawn(command: list[str], env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """Run a child; (whole seconds, peak RSS in MB, exit code). The RSS is the child's own (`wait4`)."""
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - started, usage.ru_maxrss / 1024, process.returncode


def _summarize(who: str, rows: list[dict], seconds: float, rss: float, extra: dict) -> RunResult:
    """rows: {step, tokens (cumulative non-padding), elapsed (s)} per optimizer step. Tokens/s from the end
    of step 1 to the last step (step 1 carries the warm-up)."""
    rows = sorted(rows, key=lambda r: r["step"])
    if len(rows) < 2:
        raise SystemExit(f"{who}: fewer than 2 steps logged — raise --steps")
    first, last = rows[0], rows[-1]
    steps = [b["elapsed"] - a["elapsed"] for a, b in zip(rows, rows[1:], strict=False)]
    tokens = last["tokens"] - first["tokens"]
    return RunResult(
        who,
        tokens_per_second=tokens / max(last["elapsed"] - first["elapsed"], 1e-9),
        median_step_seconds=statistics.median(steps),
        process_seconds=seconds,
        peak_rss_mb=rss,
        useful_tokens=last["tokens"],
        steps=last["step"],
        extra=extra,
    )


def run_a(
    setup: Setup, model: Path, data: Path, workdir: Path, packing: bool, env: dict[str, str]
) -> RunResult:
    """`tunesmith train` on a one-stage SFT recipe, monitoring on, no evaluation."""
    name = f"a-{setup.model}-{setup.data}-{'packed' if packing else 'padded'}"
    model_spec = {"family": "tiny"} if setup.model == "tiny" else {"path": str(model)}
    recipe = {
        "name": name,
        "model": {**model_spec, "checkpoint": "post-trained"},
        "output_dir": str(workdir / "runs"),
        "stages": [
            {
                "technique": "sft",
                "mode": "full",
                "data": {"train": str(data)},
                "data_mixing": {"customer_percent": 100},
                "hyperparameters": {
                    "lr": setup.lr,
                    "max_steps": setup.steps,
                    "global_batch_size": setup.global_batch_size,
                    "micro_batch_size": setup.micro_batch_size,
                    "max_length": setup.max_length,
                    "packing": packing,
                },
                # detectors run (the monitoring cost is part of A) but only record: a rollback or stop would
                # train a different number of steps than B (the Brindle-only data makes general skill
                # collapse at this LR, which is the monitor's job to catch, not this benchmark's)
                "monitoring": {"policies": dict.fromkeys(INTERVENING, "warn")},
            }
        ],
    }
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    run_dir = workdir / "runs" / name
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    command = [_python(), "-m", "tunesmith.cli", "train", str(path), "--quiet", "--no-eval", "--force"]
    seconds, rss, code = _spawn(command, env, workdir / f"{name}.log")
    if code != 0:
        raise SystemExit(f"A failed (exit {code}); see {workdir / f'{name}.log'}")
    stage = run_dir / "sft"
    rows = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [
        {"step": r["step"], "tokens": r["tokens"], "elapsed": r["elapsed_seconds"]}
        for r in rows
        if "loss" in r
    ]
    result = json.loads((stage / "result.json").read_text())
    extra = {"packing": result.get("packing", {}).get("reason"), "threads": result.get("threads")}
    return _summarize(f"A packing {'on' if packing else 'off'}", steps, seconds, rss, extra)


def run_b(
    setup: Setup, model: Path, data: Path, workdir: Path, env: dict[str, str], packing: bool = False
) -> RunResult:
    """This file as `--child-trl`: a bare TRL script (see `child_trl`)."""
    name = f"b-{setup.model}-{setup.data}"
    config = {
        **asdict(setup),
        "model_path": str(model),
        "data": str(data),
        "out": str(workdir / name),
        "packing": packing,
    }
    config_path = workdir / f"{name}.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    command = [_python(), str(Path(__file__).resolve()), "--child-trl", str(config_path)]
    seconds, rss, code = _spawn(command, env, workdir / f"{name}.log")
    if code != 0:
        raise SystemExit(f"B failed (exit {code}); see {workdir / f'{name}.log'}")
    report = json.loads((workdir / name / "steps.json").read_text())
    return _summarize("B", report["steps"], seconds, rss, {"threads": report["threads"]})


def child_trl(config_path: str) -> None:
    """B: what a user writes by hand with TRL (the module docstring lists the only departures)."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    config = json.loads(Path(config_path).read_text())
    out = Path(config["out"])
    cuda = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(config["model_path"])
    dataset = datasets.load_dataset("json", data_files=config["data"], split="train")
    options: dict[str, Any] = {}
    if "{% generation %}" in (tokenizer.chat_template or ""):
        options["assistant_only_loss"] = True
    else:  # prompt -> last assistant turn, the loss on the completion (TRL's default for that format)

        def split(row: dict) -> dict:
            messages = row["messages"]
            return {"prompt": messages[:-1], "completion": messages[-1:]}

        dataset = dataset.map(split, remove_columns=["messages"])
    if config["packing"]:
        options["packing"] = True
    # fp32 weights, as A loads them; on CUDA both train under bf16 autocast (`bf16=True`)
    model = AutoModelForCausalLM.from_pretrained(config["model_path"], dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=config["micro_batch_size"],
        gradient_accumulation_steps=config["global_batch_size"] // config["micro_batch_size"],
        learning_rate=config["lr"],
        max_steps=config["steps"],
        max_length=config["max_length"],
        save_strategy="no",
        report_to="none",
        bf16=cuda,
        use_cpu=not cuda,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        **options,
    )
    rows: list[dict] = []
    started = time.monotonic()

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            rows.append(
                {
                    "step": state.global_step,
                    "tokens": state.num_input_tokens_seen,
                    "elapsed": time.monotonic() - started,
                }
            )

    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=[Clock()]
    )
    trainer.train()
    out.mkdir(parents=True, exist_ok=True)
    (out / "steps.json").write_text(json.dumps({"steps": rows, "threads": torch.get_num_threads()}))


# --------------------------------------------------------------------------------------------- reporting


def _median_ratios(pairs: list[tuple[RunResult, RunResult]]) -> dict[str, float]:
    return {
        "tokens_per_second A/B": statistics.median(
            a.tokens_per_second / b.tokens_per_second for a, b in pairs
        ),
        "whole process B/A": statistics.median(b.process_seconds / a.process_seconds for a, b in pairs),
        "peak memory A/B": statistics.median(a.peak_rss_mb / b.peak_rss_mb for a, b in pairs),
        "median step B/A": statistics.median(b.median_step_seconds / a.median_step_seconds for a, b in pairs),
    }


def _targets(ratios: dict[str, float], packing: bool) -> str:
    """Issue 18's CPU acceptance: tokens/s A/B >= 1.0 (packing off) or >= 1.5 (on), whole process B/A
    >= 1.0, peak memory A/B <= 1.1."""
    checks = [
        ("tokens/s", ratios["tokens_per_second A/B"] >= (1.5 if packing else 1.0)),
        ("whole process", ratios["whole process B/A"] >= 1.0),
        ("peak memory", ratios["peak memory A/B"] <= 1.1),
    ]
    return ", ".join(f"{name} {'met' if ok else 'NOT met'}" for name, ok in checks)


def _row(r: RunResult) -> str:
    return (
        f"| {r.who} | {r.tokens_per_second:,.0f} | {r.median_step_seconds:.3f} | {r.process_seconds:.1f} | "
        f"{r.peak_rss_mb:,.0f} | {r.useful_tokens:,} |"
    )


def cpu_part(setups: list[Setup], pairs: int, workdir: Path) -> list[str]:
    lines = []
    for setup in setups:
        model = model_folder(setup.model, workdir)
        data = data_file(setup.data, workdir, setup.steps * setup.global_batch_size, model, setup.max_length)
        runs: dict[str, list[RunResult]] = {"A packing off": [], "B": [], "A packing on": []}
        for index in range(pairs):
            for who in ("A packing off", "B", "A packing on"):
                if who == "B":
                    result = run_b(setup, model, data, workdir, _env())
                else:
                    result = run_a(setup, model, data, workdir, who.endswith("on"), _env())
                runs[who].append(result)
                print(f"  pair {index + 1}/{pairs} {setup.model}/{setup.data} {_row(result)}", flush=True)
        header = (
            f"\n**{setup.model}, {setup.data} data**: {setup.steps} steps, batch {setup.global_batch_size} "
            f"(micro {setup.micro_batch_size}), max_length {setup.max_length}, lr {setup.lr:g}, {pairs} pairs; "
            f"A's packing decision: {runs['A packing on'][0].extra['packing']}; A: {runs['A packing on'][0].extra['threads']}; "
            f"B torch threads {runs['B'][0].extra['threads']}\n"
        )
        lines.append(header)
        lines += ["| run | useful tokens/s | median step (s) | whole process (s) | peak RSS (MB) | useful tokens |",
                  "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for results in runs.values():
            lines += [_row(r) for r in results]
        for who in ("A packing off", "A packing on"):
            ratios = _median_ratios(list(zip(runs[who], runs["B"], strict=True)))
            lines.append(
                f"\n{who} vs B, medians over pairs: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
            )
            if setup.data == "mixed":
                lines.append(f"issue 18 targets ({who}, mixed data): " + _targets(ratios, who.endswith("on")))
        print("\n".join(lines[-(len(runs) * pairs + 7) :]), flush=True)
    return lines


def threads_part(steps: int, workdir: Path) -> list[str]:
    """Tiny A (packing on) idle, then beside one process that keeps a core busy: automatic threads vs 1."""
    setup = Setup("tiny", "brindle", steps, 64, 64, 256)
    model = model_folder("tiny", workdir)
    data = data_file("brindle", workdir, steps * 64, model, 256)
    results = [("idle, automatic", run_a(setup, model, data, workdir, True, _env()))]
    hog = subprocess.Popen([_python(), "-c", "while True: pass"])
    try:
        time.sleep(2)  # let the hog show in /proc/stat
        results.append(("one core busy, automatic", run_a(setup, model, data, workdir, True, _env())))
        results.append(
            (
                "one core busy, TUNESMITH_THREADS=1",
                run_a(setup, model, data, workdir, True, _env(TUNESMITH_THREADS="1")),
            )
        )
        results.append(
            (
                "one core busy, TUNESMITH_THREADS=2",
                run_a(setup, model, data, workdir, True, _env(TUNESMITH_THREADS="2")),
            )
        )
    finally:
        hog.kill()
        hog.wait()
    lines = [f"\n**threads** (tiny, Brindle, packing on, {steps} steps, batch 64):\n",
             "| condition | threads line | median step (s) | useful tokens/s |", "|---|---|---:|---:|"]  # fmt: skip
    lines += [
        f"| {label} | {r.extra['threads'] or '(none printed)'} | {r.median_step_seconds:.3f} | {r.tokens_per_second:,.0f} |"
        for label, r in results
    ]
    print("\n".join(lines), flush=True)
    return lines


def gpu_part(steps: int, workdir: Path, peak_tflops: float | None) -> list[str]:
    import torch

    if not torch.cuda.is_available():
        print("GPU section skipped: no CUDA device", flush=True)
        return ["\nGPU section skipped: no CUDA device"]
    name = torch.cuda.get_device_name(0)
    peak = (
        peak_tflops * 1e12
        if peak_tflops
        else next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    )
    setup = Setup("0.5b", "long", steps, 32, 8, 2048, lr=3e-4)
    model = model_folder("0.5b", workdir)
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        params = sum(
            p.numel()
            for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model)).parameters()
        )
    data = data_file("long", workdir, steps * setup.global_batch_size, model, setup.max_length)
    a = run_a(setup, model, data, workdir, True, _env())
    b = run_b(setup, model, data, workdir, _env(), packing=True)
    lines = [f"\n**GPU** ({name}, bf16, {params / 1e6:.0f}M-parameter Llama, max_length 2048, packing, {steps} steps):\n",
             "| run | useful tokens/s | MFU | median step (s) | whole process (s) |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in (a, b):
        mfu = f"{6 * params * r.tokens_per_second / peak:.1%}" if peak else "n/a (pass --peak-tflops)"
        lines.append(
            f"| {r.who} | {r.tokens_per_second:,.0f} | {mfu} | {r.median_step_seconds:.3f} | {r.process_seconds:.1f} |"
        )
    print("\n".join(lines), flush=True)
    return lines


def _machine() -> str:
    import torch
    import transformers
    import trl

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    load = os.getloadavg()[0]
    return (
        f"{cpu}, {len(os.sched_getaffinity(0))} cores, 1-minute load {load:.1f} at the start; torch {torch.__version__}, "
        f"transformers {transformers.__version__}, trl {trl.__version__}; commit {commit}"
    )


def record(lines: list[str], command: str, machine: str) -> None:
    """Append the section to benchmarks/RESULTS.md atomically (write a temporary file, then rename)."""
    from tunesmith.runs import atomic_write_text

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = [f"\n## Throughput: tunesmith train (A) vs bare TRL SFTTrainer (B), {stamp}\n",
               f"- Machine: {machine}", f"- Command: `{command}`", *lines, ""]  # fmt: skip
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    atomic_write_text(RESULTS, text.rstrip("\n") + "\n" + "\n".join(section) + "\n")
    print(f"appended to {RESULTS}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few steps, 1 pair, nothing recorded")
    parser.add_argument("--pairs", type=int, default=3, help="A/B pairs per setup (>= 3 for the record)")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per CPU run")
    parser.add_argument("--models", default="tiny,30m", help="comma-separated: tiny, 30m")
    parser.add_argument("--data", default="mixed,brindle", help="comma-separated: mixed, brindle")
    parser.add_argument("--parts", default="cpu,threads,gpu", help="comma-separated: cpu, threads, gpu")
    parser.add_argument("--gpu-steps", type=int, default=30)
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="GPU bf16 peak, if its name is not known"
    )
    parser.add_argument("--workdir", default="/tmp/tunesmith-throughput")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--child-trl", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_trl:
        child_trl(args.child_trl)
        return 0
    if args.quick:
        args.pairs, args.steps, args.gpu_steps = 1, 6, 4
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    batch = {"tiny": (64, 64, 256), "30m": (16, 16, 512)}
    setups = [
        Setup(model, data, args.steps, *batch[model])
        for model in args.models.split(",")
        for data in args.data.split(",")
        if not (args.quick and data == "brindle")
    ]
    parts = args.parts.split(",")
    machine = _machine()  # the load before this script adds its own
    lines: list[str] = []
    if "cpu" in parts:
        lines += cpu_part(setups, args.pairs, workdir)
    if "threads" in parts:
        lines += threads_part(args.steps, workdir)
    if "gpu" in parts:
        lines += gpu_part(args.gpu_steps, workdir, args.peak_tflops)
    if not (args.quick or args.no_record):
        record(lines, "python benchmarks/throughput.py " + " ".join(sys.argv[1:]), machine)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    sys.exit(main())
