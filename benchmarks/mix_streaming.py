"""Streaming mix over a file larger than memory: peak resident memory and throughput.

Acceptance (issue 5): a streaming mix of a 2 GB file stays under 500 MB of resident memory.

Each phase runs in its own subprocess, so its peak RSS (VmHWM of /proc/self/status) is its own:

- baseline `lines`: plain line iteration over the file (`for line in open(path, "rb")`), the floor;
- baseline `json`: line iteration + `json.loads`, what any JSONL reader must at least do;
- `mix`: tunesmith's `mix()` (streaming pre-scan that validates and counts + the mixed stream with the
  embedded general data), consuming every example.

Usage::

    .venv/bin/python benchmarks/mix_streaming.py --size-gb 2          # generates /tmp/..., deletes it after
    .venv/bin/python benchmarks/mix_streaming.py --path big.jsonl     # an existing CPT JSONL file

Prints a table (seconds, lines/s, MB/s, peak RSS, time ratio vs the `lines` baseline) and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

MIB = 1024 * 1024
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
]


def generate(path: str, size_bytes: int, seed: int = 0) -> int:
    """A CPT JSONL file of ~`size_bytes` with short documents of varied length (10-400 characters)."""
    rng = random.Random(seed)
    vocabulary = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 70))) for _ in range(4096)]
    lines = 0
    written = 0
    with open(path, "wb", buffering=8 * MIB) as handle:
        while written < size_bytes:
            chunk = b"".join(
                json.dumps({"text": f"doc {lines + i}: {vocabulary[rng.randrange(4096)]}"}).encode() + b"\n"
                for i in range(50_000)
            )
            handle.write(chunk)
            written += len(chunk)
            lines += 50_000
    return lines


def _peak_rss_bytes() -> int:
    """This process's peak resident memory. `/proc/self/status` VmHWM belongs to the current address space
    (getrusage's ru_maxrss would carry the parent's peak over fork + exec on Linux)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _phase(phase: str, path: str, customer_percent: float, general: str) -> dict:
    start = time.perf_counter()
    count = 0
    if phase == "lines":
        with open(path, "rb") as handle:
            for _ in handle:
                count += 1
    elif phase == "json":
        with open(path, "rb") as handle:
            for line in handle:
                json.loads(line)
                count += 1
    else:
        from tunesmith.data.mixing import CustomerData, MixSpec, builtin_general_sources, mix, rows_source

        categories = {"knowledge": 50, "reasoning-instruction-following": 50}
        if general == "builtin":
            sources = builtin_general_sources(categories, "cpt", seed=0)
        else:
            sources = {
                name: rows_source(name, lambda epoch, name=name: _fake_rows(name), "cpt")
                for name in categories
            }
        spec = MixSpec(customer_percent, categories, "examples", "without_replacement", 4, 0.0)
        mixture = mix(CustomerData(path), sources, spec, seed=0)
        scanned = time.perf_counter()
        for _ in mixture:
            count += 1
        report = mixture.report.to_dict()
        result_extra = {"scan_seconds": scanned - start, "mix_report": report}
    seconds = time.perf_counter() - start
    peak_rss = _peak_rss_bytes()
    result = {"phase": phase, "seconds": seconds, "count": count, "peak_rss_bytes": peak_rss}
    if phase == "mix":
        result.update(result_extra)
    return result


def _fake_rows(name: str):
    index = 0
    while True:
        yield {"text": f"{name} general document {index}"}
        index += 1


def run_phase(phase: str, path: str, customer_percent: float, general: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        phase,
        "--path",
        path,
        "--customer-percent",
        str(customer_percent),
        "--general",
        general,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--path", help="an existing CPT JSONL file (not deleted)")
    parser.add_argument("--customer-percent", type=float, default=90.0)
    parser.add_argument("--general", choices=["builtin", "fake"], default="builtin")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_phase(args.child, args.path, args.customer_percent, args.general)))
        return

    made = None
    path = args.path
    if path is None:
        handle, made = tempfile.mkstemp(prefix="tunesmith-mix-", suffix=".jsonl", dir="/tmp")
        os.close(handle)
        path = made
        start = time.perf_counter()
        generate(path, int(args.size_gb * 1024 * MIB))
        print(f"generated {path} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    try:
        size = os.path.getsize(path)
        results = [
            run_phase(phase, path, args.customer_percent, args.general) for phase in ("lines", "json", "mix")
        ]
    finally:
        if made:
            os.unlink(made)
    lines = results[0]["count"]
    base = results[0]["seconds"]
    print(
        f"file: {size / MIB:.0f} MiB, {lines} lines; mix: customer {args.customer_percent:g}%, general {args.general}"
    )
    print(f"{'phase':<22}{'seconds':>9}{'lines/s':>12}{'MB/s':>8}{'peak RSS MiB':>14}{'time vs lines':>15}")
    for result in results:
        name = {"lines": "baseline: lines", "json": "baseline: json.loads", "mix": "tunesmith mix"}[
            result["phase"]
        ]
        print(
            f"{name:<22}{result['seconds']:>9.1f}{lines / result['seconds']:>12,.0f}{size / 1e6 / result['seconds']:>8.1f}"
            f"{result['peak_rss_bytes'] / MIB:>14.0f}{result['seconds'] / base:>14.1f}x"
        )
    mix_result = results[2]
    print(f"mix: pre-scan {mix_result['scan_seconds']:.1f} s, {mix_result['count']} examples out")
    verdict = "PASS" if mix_result["peak_rss_bytes"] < 500 * 1e6 else "FAIL"
    print(f"acceptance (peak RSS < 500 MB): {verdict} ({mix_result['peak_rss_bytes'] / 1e6:.0f} MB)")
    summary = {r["phase"]: {k: v for k, v in r.items() if k != "mix_report"} for r in results}
    summary["file_bytes"] = size
    summary["lines"] = lines
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
