"""`tunesmith demo`: the story the product exists for, on the embedded default, in a few minutes.

Two runs from the shipped `tiny:post-trained` checkpoint on the demo domain (Brindle, a fictional parts
supplier), each a real `tunesmith train` run through the same pipeline, from recipes shipped next to this
file (`experiments/recipes/`, readable and copyable):

1. `domain-only`: full-rank SFT on the Brindle demonstrations alone: the domain is learned, general skill
   is lost (catastrophic forgetting).
2. `mixed-rft`: the same SFT with 50% curated general data mixed in: the domain is learned, general skill
   kept; then RFT on that SFT checkpoint with the domain's verifiable reward, after the readiness probe.

Each run is evaluated like `tunesmith train` evaluates (start vs every stage's best on the same held-out
items, paired-bootstrap CIs; the start is scored once and cached), and gets its HTML report. The terminal
shows one progress bar for the whole pipeline and a summary of a few lines; everything the runs print goes to
`<out>/demo.log`. Re-running continues: a finished run is not trained again, an interrupted one resumes.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.runs import atomic_write_json, atomic_write_text, read_json_record

RECIPES = Path(__file__).resolve().parent / "recipes"
RERUN = "delete the demo's folder (or pass another --out) and run `tunesmith demo` again"


@dataclass(frozen=True)
class Arm:
    name: str  # run folder under <out>/
    recipe: str  # file in RECIPES
    label: str  # what the summary calls its stages, by stage name


ARMS = (
    Arm("domain-only", "demo-domain-only.yaml", "SFT, domain data only"),
    Arm("mixed-rft", "demo-mixed-rft.yaml", "SFT, 50% general mixed in"),
)

RFT_STEP_EQUIVALENT = 15
"""Progress units one RFT (GRPO) step counts for, in batch-32 SFT steps: measured on 2 idle cores, the demo's
RFT took 4.6 s per step (32 prompts x 8 samples) and its SFT 0.29-0.37 s."""

EVAL_STEP_EQUIVALENT = 0.25
"""Progress units one evaluated item counts for, in training steps (an item is a short greedy generation;
measured on 2 cores: about a quarter of a batch-32 tiny SFT step), so the ETA covers the evaluations too."""


# --- running -----------------------------------------------------------------------------------------------
QUICK = {"max_steps": 4, "val_check_interval": 2, "warmup_steps": 1, "constant_steps": 0}
"""`--quick`: every stage this short, 2 general items per category: a smoke test of the pipeline, not evidence."""


def _resolve(arm: Arm, out: Path, seed: int, overrides: list[str], quick: bool):
    from tunesmith.recipe.loading import load_recipe
    from tunesmith.recipe.plan import plan

    path = RECIPES / arm.recipe
    extra = []
    if quick:
        stages = len(load_recipe(path).stages)
        extra = [f"stages[{i}].hyperparameters.{k}={v}" for i in range(stages) for k, v in QUICK.items()]
        extra.append("evaluation.general_items_per_category=2")
    return plan(
        path, [f"name={arm.name}", f"output_dir={json.dumps(str(out))}", f"seed={seed}", *extra, *overrides]
    )


def _eval_items(resolved) -> int:
    """Items one evaluated checkpoint costs (general held-out items + domain items)."""
    from tunesmith.evaluation.runner import default_items_per_category
    from tunesmith.evaluation.suites import domain_items, general_items, resolve_data

    evaluation = resolved.recipe.evaluation
    general = len(general_items(evaluation.general_items_per_category or default_items_per_category()))
    domain = len(domain_items(resolve_data(evaluation.domain, RECIPES))) if evaluation.domain else 0
    return general + domain


class _Progress:
    """One bar for the whole demo: training steps plus evaluation work, with the phase as its text."""

    def __init__(self, total: float, stream: Any, quiet: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=round(total),
            file=stream,
            disable=quiet,
            unit="step",
            desc="demo",
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
        )
        self._warming = False

    def phase(self, text: str) -> None:
        self.bar.set_description_str(f"demo: {text}")

    def training_begins(self) -> None:
        """Measure the step rate from the end of the stage's first step: the model load before it and that
        step's own warm-up are no typical step (counted in, the first ETA of a fresh clone's demo read
        8:19:46: one step after 22 s of start-up, ~1,400 to go). The elapsed time still counts from the start."""
        self._warming = True

    def advance(self, units: float) -> None:
        room = self.bar.total - self.bar.n
        n = max(0, min(round(units), room))
        if self._warming and not self.bar.disable:  # counted, but not timed
            self._warming = False
            self.bar.n += n
            self.bar.last_print_n = self.bar.n
            self.bar.last_print_t = self.bar._time()
            return
        self.bar.update(n)

    def close(self) -> None:
        self.bar.update(self.bar.total - self.bar.n)
        self.bar.close()


def _step_units(resolved) -> dict[str, float]:
    """Stage name -> progress units per optimizer step."""
    return {s.name: RFT_STEP_EQUIVALENT if s.technique == "rft" else 1.0 for s in resolved.recipe.stages}


def _training_units(resolved) -> float:
    units = _step_units(resolved)
    return sum(
        units[s.name] * p.numbers["total_steps"]
        for s, p in zip(resolved.recipe.stages, resolved.stages, strict=True)
    )


def _step_callback(progress: _Progress, units: dict[str, float]):
    """A trainer callback factory (`training.pipeline.train(callbacks=...)`): the stage's units per step."""
    from transformers import TrainerCallback

    class Steps(TrainerCallback):
        def __init__(self, weight: float) -> None:
            self.weight = weight

        def on_train_begin(self, args, state, control, **kwargs):
            progress.training_begins()

        def on_step_end(self, args, state, control, **kwargs):
            progress.advance(self.weight)

    return lambda watcher, selection: Steps(units.get(watcher.stage_dir.name, 1.0))


def _finished(run_dir: Path) -> bool:
    return (run_dir / "eval" / "evaluation.json").is_file()


def _run_arm(arm: Arm, resolved, out: Path, progress: _Progress, eval_units: float) -> dict:
    """Train (or resume, or reuse) one arm, then evaluate it; returns its evaluation payload."""
    from tunesmith.evaluation.runner import evaluate_run
    from tunesmith.training.pipeline import check_recipe, model_ref, resumable, train

    run_dir = out / arm.name
    stages = len(resolved.recipe.stages)
    if _finished(run_dir):
        progress.advance(_training_units(resolved) + (stages + 1) * eval_units)
        return read_json_record(run_dir / "eval" / "evaluation.json", fix=RERUN)
    progress.phase(f"training {arm.name}")
    check_recipe(resolved, force=False, quiet=True)
    try:
        result = train(
            resolved,
            runs_root=out,
            quiet=True,
            run_dir=run_dir if resumable(run_dir) else None,
            overwrite=run_dir.exists() and not resumable(run_dir),
            callbacks=(_step_callback(progress, _step_units(resolved)),),
        )
    except UserError as err:
        if not (run_dir / "rft" / "probe.json").is_file() or not resumable(run_dir):
            raise
        # the readiness probe refused RFT on the SFT checkpoint: a finding the summary reports, not a failure
        print(f"demo: {err}")
        result = None
    if result is not None and not result.completed:
        stopped = result.stages[-1]
        raise UserError(
            f"demo: {arm.name} stopped at step {stopped.summary['steps']} of stage {stopped.name} — see "
            f"{out / 'demo.log'}; run `tunesmith demo` again to continue it"
        )
    progress.phase(f"evaluating {arm.name}")
    payload = evaluate_run(run_dir, model_ref(resolved), recipe=resolved.recipe, quiet=True)
    progress.advance((stages + 1) * eval_units)
    return payload


def _write_report(run_dir: Path) -> Path:
    """The run's HTML report (what `tunesmith report` writes)."""
    from tunesmith.reporting import write_report

    return write_report(run_dir)


# --- the summary -------------------------------------------------------------------------------------------
def _checkpoint_scores(payload: dict) -> dict[str, dict[str, float]]:
    """label -> {general, domain}: overall exact match, 0-100."""
    out = {}
    for checkpoint in payload["checkpoints"]:
        suites = checkpoint["suites"]
        out[checkpoint["label"]] = {
            suite: 100 * suites[suite]["summary"]["exact_match"]["overall"]
            for suite in ("general", "domain")
            if suite in suites
        }
    return out


def _overall_row(payload: dict, before: str, after: str, suite: str) -> dict | None:
    for comparison in payload["comparisons"]:
        if comparison["before"] == before and comparison["after"] == after:
            for row in comparison["rows"]:
                if row["suite"] == suite and row["category"] == "overall":
                    return row
    return None


def _general_cell(row: dict | None, before: float, after: float) -> str:
    if row is None:
        return f"{after:5.1f}"
    significant = row["significant"] and row["direction"] == "drop"
    judgement = "lost: a significant drop" if significant else "kept: no significant drop"
    return f"{after:5.1f}  ({after - before:+5.1f} [{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}]; {judgement})"


def _events(run_dir: Path) -> list[str]:
    """'stage: detector xN' for every stage of a run with monitoring events."""
    out = []
    for result in sorted(run_dir.glob("*/result.json")):
        summary = read_json_record(result, fix=RERUN)
        events = summary.get("events") or {}
        for detector, info in (events.get("by_detector") or {}).items():
            out.append(
                f"{result.parent.name}: {detector} x{info['count']} (first at step {info['first_step']})"
            )
    return out


def _probe(run_dir: Path) -> dict | None:
    for path in run_dir.glob("*/probe.json"):
        return read_json_record(path, fix=RERUN)
    return None


def summarize(out: Path, payloads: dict[str, dict], seconds: float, seed: int, reports: dict) -> dict:
    """The demo's numbers (JSON-ready) from the arms' evaluation payloads."""
    only, mixed = payloads["domain-only"], payloads["mixed-rft"]
    start_label = only["checkpoints"][0]["label"]
    scores_only, scores_mixed = _checkpoint_scores(only), _checkpoint_scores(mixed)
    start = scores_only[start_label]
    labels_mixed = [c["label"] for c in mixed["checkpoints"]]
    rows = [{"arm": "start", "label": start_label, **start, "general_row": None}]
    only_after = only["checkpoints"][-1]["label"]
    rows.append(
        {
            "arm": "domain-only",
            "label": only_after,
            **scores_only[only_after],
            "general_row": _overall_row(only, start_label, only_after, "general"),
        }
    )
    for label in labels_mixed[1:]:
        rows.append(
            {
                "arm": "mixed-rft",
                "label": label,
                **scores_mixed[label],
                "general_row": _overall_row(mixed, labels_mixed[0], label, "general"),
            }
        )
    probe = _probe(out / "mixed-rft")
    return {
        "seed": seed,
        "seconds": round(seconds, 1),
        "rows": rows,
        "probe": None
        if probe is None
        else {
            k: probe.get(k) for k in ("verdict", "verdict_text", "positive_rate", "samples", "mean_reward")
        },
        "events": {arm: _events(out / arm) for arm in payloads},
        "verdicts": {arm: payload.get("verdict") for arm, payload in payloads.items()},
        "reports": {arm: str(path) for arm, path in reports.items() if path is not None},
    }


def render(summary: dict, out: Path) -> str:
    rows = summary["rows"]
    start = rows[0]
    names = {
        "domain-only": "SFT, domain data only",
        "sft": "SFT, 50% general mixed in",
        "rft": "+ RFT on that SFT",
    }
    general_items = next((r["general_row"]["items"] for r in rows if r["general_row"]), None)
    lines = [
        f"tunesmith demo: tiny:post-trained on Brindle (a fictional parts supplier), seed {summary['seed']}, "
        f"{summary['seconds'] / 60:.1f} min",
        f"  {'':<28}{'Brindle exact match':<23}general accuracy"
        + (f" ({general_items} held-out items, change [95% CI])" if general_items else ""),
        f"  {'start':<28}{start['domain']:5.1f}{'':<18}{start['general']:5.1f}",
    ]
    previous_domain = start["domain"]
    for row in rows[1:]:
        stage = row["label"].rsplit("/", 1)[-1]
        name = names["domain-only"] if row["arm"] == "domain-only" else names.get(stage, stage)
        base = start["domain"] if stage != "rft" else previous_domain
        gain = f"({row['domain'] - base:+5.1f}{' over SFT' if stage == 'rft' else ''})"
        lines.append(
            f"  {name:<28}{row['domain']:5.1f} {gain:<17}{_general_cell(row['general_row'], start['general'], row['general'])}"
        )
        if row["arm"] == "mixed-rft":
            previous_domain = row["domain"]
    only = rows[1]
    mixed_sft = next((r for r in rows if r["arm"] == "mixed-rft"), None)
    if mixed_sft is not None:
        lines.append(
            f"  mixed vs domain-only SFT: general {mixed_sft['general']:.1f} vs {only['general']:.1f} "
            f"({mixed_sft['general'] - only['general']:+.1f} points), Brindle {mixed_sft['domain']:.1f} vs "
            f"{only['domain']:.1f} ({mixed_sft['domain'] - only['domain']:+.1f})"
        )
    probe = summary.get("probe")
    if probe:
        lines.append(
            f"  readiness probe before RFT: {probe['verdict_text']} ({100 * probe['positive_rate']:.0f}% of "
            f"{probe['samples']} samples earned reward)"
        )
    events = "; ".join(f"{arm}: {', '.join(items) or 'none'}" for arm, items in summary["events"].items())
    lines.append(f"  monitoring events: {events}")
    for arm, verdict in summary["verdicts"].items():
        lines.append(f"  verdict, {arm}: {verdict}")
    where = ", ".join(summary["reports"].values()) or f"{out}/*/eval/"
    lines.append(f"  reports: {where}; log: {out / 'demo.log'}")
    return "\n".join(lines)


# --- the command -------------------------------------------------------------------------------------------
def demo_command(
    out: str = "runs/demo",
    *,
    seed: int = 0,
    overrides: list[str] | None = None,
    quiet: bool = False,
    quick: bool = False,
) -> int:
    """`tunesmith demo`: both arms (resuming what exists), their reports, the summary on stdout and in
    `<out>/summary.md` + `summary.json`."""
    out_dir = Path(out).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"demo --out {out}: exists and is not a folder — choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    overrides = list(overrides or [])
    started = time.monotonic()
    resolved = {arm.name: _resolve(arm, out_dir, seed, overrides, quick) for arm in ARMS}
    eval_units = {name: EVAL_STEP_EQUIVALENT * _eval_items(r) for name, r in resolved.items()}
    total = sum(_training_units(r) + (len(r.stages) + 1) * eval_units[name] for name, r in resolved.items())
    terminal = sys.stderr
    payloads, reports = {}, {}
    progress = _Progress(total, terminal, quiet)
    with (out_dir / "demo.log").open("a", encoding="utf-8") as log:
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                for arm in ARMS:
                    payloads[arm.name] = _run_arm(
                        arm, resolved[arm.name], out_dir, progress, eval_units[arm.name]
                    )
                    progress.phase(f"report {arm.name}")
                    reports[arm.name] = _write_report(out_dir / arm.name)
        finally:
            progress.close()
    summary = summarize(out_dir, payloads, time.monotonic() - started, seed, reports)
    summary["quick"] = quick
    text = render(summary, out_dir)
    if quick:
        text = (
            "--quick: a few steps per stage, a handful of items: a smoke test of the pipeline, not evidence\n"
            + text
        )
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "summary.md", text + "\n")
    print(text)
    return 0
