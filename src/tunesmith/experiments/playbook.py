"""`tunesmith experiments playbook`: the playbook's claims, reproduced on the tiny family.

Each *arm* is a real run through the project's own pipeline: a base recipe (`sft_base` / `rft_base`,
written to `<out>/recipes/`) resolved with the arm's overrides (`recipe.plan.plan`, as `tunesmith train`
and a sweep trial do), trained by `training.pipeline.train` and evaluated by `evaluation.runner.evaluate_run`
(the start's scores come from the evaluation cache after the first arm). Arms live in `<out>/<arm>/`; a
finished arm leaves `<out>/<arm>/playbook-arm.json` and is skipped on the next call, an interrupted one is
continued from its last complete checkpoint. An arm serves every claim that needs it (the 50%-mix arm
serves claims 1-4, 6 and 7). The claims' decision rules are in `experiments.claims`; the table goes to
`<out>/playbook.md` and `<out>/playbook.json`, written atomically.

The arms are short (LoRA SFT from tiny:post-trained, one epoch over the Brindle file at batch 32; GRPO 25
steps) so that the whole set fits in ~30 minutes on a 2-core CPU; `--quick` shrinks every arm to a few steps
for a smoke test, and its table says so ("quick: not evidence").
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.errors import UserError
from tunesmith.evaluation.forgetting import forgetting_table
from tunesmith.experiments import claims
from tunesmith.runs import atomic_write_json, atomic_write_text, atomic_write_yaml, read_json_record

ARM_RECORD = "playbook-arm.json"
SFT_LR = 5e-3
"""The arms' LoRA LR: `recipes/tiny-sft-rft.yaml`'s measured value for a ~100-step LoRA SFT (the tiny
default 1e-2 collapses general skill within its 15-step warmup there: benchmarks/RESULTS.md, RFT)."""
RFT_LR = 3e-4
"""GRPO LR: the measured faster tiny setting (benchmarks/RESULTS.md, RFT: +17.7 reward points in 80-100
steps), so that 25 steps can show a change."""
GENERAL_ITEMS = 30
"""General held-out items per category in each arm's evaluation (150 items: a ~5-point CI half-width)."""
REFERENCE_ARM = "lora-mix50"


@dataclass(frozen=True)
class Arm:
    name: str
    base: str  # "sft" | "rft"
    what: str
    overrides: tuple[str, ...] = ()
    claims: tuple[int, ...] = ()
    after: str | None = None  # an arm whose SFT checkpoint this one starts from


QUICK_EPOCHS = 0.003
"""`--quick`: a sliver of an epoch (2 steps at batch 8 with the 50% mix)."""


def arms(epochs: float = 1) -> list[Arm]:
    """Every arm of the playbook, in the order they run (an arm's `after` runs before it). `epochs`: the
    base recipe's `max_epochs` (the 2-epoch arm doubles it)."""
    mix = "stages[0].data_mixing.customer_percent"
    hp = "stages[0].hyperparameters"
    return [
        Arm(REFERENCE_ARM, "sft", "LoRA r8, 50% general, lr 5e-3, 1 epoch", (), (1, 2, 3, 4, 6, 7)),
        Arm("lora-domain-only", "sft", "the same, domain data only", (f"{mix}=100",), (1,)),
        Arm("lora-mix10", "sft", "the same, 10% general", (f"{mix}=90",), (2,)),
        Arm("lora-mix25", "sft", "the same, 25% general", (f"{mix}=75",), (2,)),
        Arm("lora-mix75", "sft", "the same, 75% general", (f"{mix}=25",), (2,)),
        Arm("lora-lr-x10", "sft", "the 50% mix at lr x10 (5e-2)", (f"{hp}.lr={10 * SFT_LR:g}",), (3,)),
        Arm("lora-2-epochs", "sft", "the 50% mix, 2 epochs", (f"{hp}.max_epochs={2 * epochs:g}",), (4,)),
        Arm(
            "full-lr3e-4",
            "sft",
            "full rank, 50% mix, lr 3e-4",
            ("stages[0].mode=full", f"{hp}.lr=3e-4"),
            (6,),
        ),
        Arm(
            "full-lr1e-3",
            "sft",
            "full rank, 50% mix, lr 1e-3",
            ("stages[0].mode=full", f"{hp}.lr=1e-3"),
            (6,),
        ),
        Arm(
            "lora-rank32",
            "sft",
            "LoRA rank x4 (r32, alpha 64 = 2 x rank)",
            (f"{hp}.lora.rank=32", f"{hp}.lora.alpha=64"),
            (7,),
        ),  # fmt: skip
        Arm("lora-alpha64", "sft", "LoRA alpha x4 (r8, alpha 64)", (f"{hp}.lora.alpha=64",), (7,)),
        Arm("rft-from-start", "rft", "GRPO from tiny:post-trained (Brindle reward ~0)", (), (5,)),
        Arm("rft-after-sft", "rft", "GRPO from the 50%-mix SFT arm's best", (), (5,), after=REFERENCE_ARM),
    ]


def sft_base(seed: int, quick: bool) -> dict[str, Any]:
    """The base recipe every SFT arm overrides."""
    hyperparameters: dict[str, Any] = {"lr": SFT_LR, "global_batch_size": 32, "max_epochs": 1}
    if quick:
        hyperparameters.update(global_batch_size=8, max_epochs=QUICK_EPOCHS)
    stage = {
        "technique": "sft",
        "mode": "lora",
        "data": {"train": "builtin:brindle/sft", "validation": "builtin:brindle/sft-validation"},
        "data_mixing": {"customer_percent": 50},
        "hyperparameters": hyperparameters,
        # the arms measure what training does. A collapse is recorded (claim 3 counts it), not rolled back
        # and then stopped (the default policy: it stopped the domain-only arm at step 27). The forgetting
        # detector is off because checkpoint selection honours its limit: with it, the domain-only and 10%
        # arms kept step 9-10 (within 10 probe points, no domain learned) and their evaluation measured the
        # selection, not the training. The best checkpoint is then the best validation token accuracy, and
        # the KL detectors (collapse, kl_drift) still watch the same general probe.
        "monitoring": {"policies": {"collapse": "warn", "forgetting": "off"}},
    }
    return _recipe("playbook-sft-base", seed, quick, stage)


def rft_base(seed: int, quick: bool) -> dict[str, Any]:
    """The base recipe both RFT arms override (the second one's starting model)."""
    hyperparameters: dict[str, Any] = {"lr": RFT_LR, "max_steps": 25, "val_check_interval": 5}
    rft: dict[str, Any] = {"reward": "builtin:brindle", "number_generation": 8}
    if quick:
        hyperparameters.update(max_steps=1, global_batch_size=4, val_check_interval=1)
        rft["number_generation"] = 2
    stage = {
        "technique": "rft",
        "mode": "full",
        "data": {"train": "builtin:brindle/rft", "validation": "builtin:brindle/rft-validation"},
        "rft": rft,
        "hyperparameters": hyperparameters,
    }
    return _recipe("playbook-rft-base", seed, quick, stage)


def _recipe(name: str, seed: int, quick: bool, stage: dict[str, Any]) -> dict[str, Any]:
    """A one-stage recipe from tiny:post-trained, evaluated on both suites (`--quick`: tiny probes and
    evaluation)."""
    if quick:
        stage["monitoring"] = {**stage.get("monitoring", {}), "probe_items_per_category": 2}
    return {
        "name": name,
        "seed": seed,
        "model": {"family": "tiny", "checkpoint": "post-trained"},
        "stages": [stage],
        "evaluation": {
            "suites": ["general", "domain"],
            "domain": "builtin:brindle/eval",
            "general_items_per_category": 2 if quick else GENERAL_ITEMS,
        },
    }


# --- running the arms ------------------------------------------------------------------------------------
@dataclass
class Setup:
    out: Path
    seed: int
    quick: bool
    quiet: bool = True
    recipes: dict[str, Path] = field(default_factory=dict)

    def write_recipes(self) -> None:
        for base, build in (("sft", sft_base), ("rft", rft_base)):
            self.recipes[base] = atomic_write_yaml(
                self.out / "recipes" / f"{base}.yaml", build(self.seed, self.quick)
            )

    def overrides(self, arm: Arm) -> list[str]:
        extra = []
        if arm.after is not None:
            start = self.out / arm.after / "sft" / "best"
            extra.append(f"model={json.dumps({'path': str(start), 'checkpoint': 'post-trained'})}")
        return [*arm.overrides, *extra, f"name={arm.name}"]


def _row(comparison: Mapping[str, Any], suite: str, metric: str) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in comparison["rows"]
            if r["suite"] == suite and r["category"] == "overall" and r["metric"] == metric
        ),
        None,
    )


def _final_items(run_dir: Path, label: str) -> dict[str, list[dict]]:
    """The evaluated items of one checkpoint (`predictions.jsonl`): suite -> [{id, category, scores}]."""
    items: dict[str, list[dict]] = {}
    for line in (run_dir / "eval" / "predictions.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["checkpoint"] == label:
            keep = {"id": row["id"], "category": row["category"], "scores": row["scores"]}
            items.setdefault(row["suite"], []).append(keep)
    return items


def _stopped(summary: Mapping[str, Any]) -> str | None:
    stop = summary.get("stopped_by_monitor")
    return f"{stop['detector']} at step {stop['step']}" if stop else None


def run_arm(setup: Setup, arm: Arm, progress: Callable[..., Any]) -> dict[str, Any]:
    """Train and evaluate one arm (or continue it); returns and writes its record."""
    from tunesmith.evaluation.runner import evaluate_run
    from tunesmith.recipe.plan import plan
    from tunesmith.training.pipeline import model_ref, resumable, train

    resolved = plan(setup.recipes[arm.base], setup.overrides(arm))
    run_dir = setup.out / arm.name
    started = time.monotonic()
    stage = resolved.recipe.stages[0]
    if resumable(run_dir):
        result = train(resolved, run_dir=run_dir, quiet=setup.quiet, force=True, callbacks=(progress,))
    else:  # new, or a start that left nothing worth continuing
        result = train(resolved, runs_root=setup.out, quiet=setup.quiet, force=True, overwrite=True,
                       callbacks=(progress,))  # fmt: skip
    stage_dir = run_dir / stage.name
    summary = result.stages[-1].summary
    if not result.completed and (summary.get("stopped_by_signal") or summary.get("resumable")):
        raise UserError(
            f"playbook: arm {arm.name} stopped before it finished ({run_dir}) — run the playbook again to "
            "continue it"
        )
    record: dict[str, Any] = {
        "arm": arm.name,
        "seed": setup.seed,
        "quick": setup.quick,
        "what": arm.what,
        "overrides": list(arm.overrides),
        "claims": list(arm.claims),
        "lr": stage.hyperparameters.lr,
        "planned_steps": resolved.stages[0].numbers["total_steps"],
        "steps": summary["steps"],
        "completed": result.completed,
        "stopped": _stopped(summary),  # by a monitor policy: a finding of the arm, not an interruption
        "events": dict(summary["events"]["by_detector"]),
        "best": (summary.get("best") or {}).get("step"),
        "train_seconds": round(time.monotonic() - started, 1),
    }
    if (stage_dir / "probe.json").exists():
        probe = json.loads((stage_dir / "probe.json").read_text())
        record["probe"] = {k: probe[k] for k in ("positive_rate", "verdict")}
    if (stage_dir / "result.json").exists():  # finished, or stopped by the monitor with a checkpoint to keep
        evaluated = time.monotonic()
        payload = evaluate_run(run_dir, model_ref(resolved), recipe=resolved.recipe, quiet=True)
        comparison = payload["comparisons"][-1]
        record["verdict"] = comparison["verdict"]
        record["vs_start"] = {
            "general": _row(comparison, "general", "exact_match"),
            "domain": _row(comparison, "domain", "exact_match"),
            "reward": _row(comparison, "domain", "reward"),
        }
        record["items"] = _final_items(run_dir, payload["checkpoints"][-1]["label"])
        record["eval_seconds"] = round(time.monotonic() - evaluated, 1)
    atomic_write_json(run_dir / ARM_RECORD, record)
    return record


def planned_work(setup: Setup, arm: Arm) -> tuple[int, float]:
    """(optimizer steps, units of work) the arm's plan derives: examples trained per SFT step, completions
    sampled per RFT step. An arm that starts from another arm's checkpoint is planned on the base model (the
    same numbers; the checkpoint may not exist yet)."""
    from tunesmith.recipe.plan import plan

    numbers = plan(setup.recipes[arm.base], [*arm.overrides, f"name={arm.name}"])
    stage, derived = numbers.recipe.stages[0], numbers.stages[0].numbers
    per_step = stage.hyperparameters.global_batch_size * (stage.rft.number_generation if stage.rft else 1)
    return int(derived["total_steps"]), float(derived["total_steps"] * per_step)


class Progress:
    """One bar for the whole set: units of planned work (examples trained, completions sampled), advanced
    by every optimizer step of every arm; its ETA covers the arms still to run."""

    def __init__(self, total: float, quiet: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=round(total), desc="playbook", unit="ex", disable=quiet,
            file=sys.stderr, dynamic_ncols=True, smoothing=0.05,
        )  # fmt: skip
        self.units_per_step = 0.0

    def arm(self, name: str, units: float, steps: int) -> None:
        self.bar.set_postfix_str(name)
        self.units_per_step = units / max(steps, 1)

    def callback(self, watcher: Any, selection: Any) -> Any:
        from transformers import TrainerCallback

        outer = self

        class Step(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                room = outer.bar.total - outer.bar.n
                outer.bar.update(max(0, min(round(outer.units_per_step), room)))

        return Step()

    def finish_arm(self, target: float) -> None:
        """Align the bar with the arms done (a rollback repeats steps; an early stop skips some)."""
        self.bar.update(round(target) - self.bar.n)

    def close(self) -> None:
        self.bar.close()


# --- the table ---------------------------------------------------------------------------------------------
def _change(row: Mapping[str, Any] | None) -> claims.Change | None:
    return claims.Change.from_row(row) if row else None


def _paired(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, suite: str, metric: str
) -> claims.Change | None:
    """b's scores against a's on the same items (paired bootstrap: `evaluation.forgetting`)."""
    if not a or not b or suite not in a.get("items", {}) or suite not in b.get("items", {}):
        return None
    rows = forgetting_table(suite, a["items"][suite], b["items"][suite], metric, with_retention=False)
    return claims.Change.from_row(rows[-1].to_dict())


def _vs_start(record: Mapping[str, Any] | None, key: str) -> claims.Change | None:
    return _change((record or {}).get("vs_start", {}).get(key)) if record else None


def decide_claims(records: Mapping[str, dict[str, Any]]) -> list[claims.ClaimResult]:
    """Every claim's row from the arms' records (missing arms make a claim inconclusive)."""
    r = records.get
    results = []
    mixed, only = r(REFERENCE_ARM), r("lora-domain-only")
    both = [x for x in (only, mixed) if x and x.get("vs_start")]
    results.append(
        claims.claim_mixing(
            {"general": _vs_start(only, "general"), "domain": _vs_start(only, "domain")}
            if len(both) == 2
            else None,
            {"general": _vs_start(mixed, "general"), "domain": _vs_start(mixed, "domain")}
            if len(both) == 2
            else None,
        )  # fmt: skip
    )
    shares = {10: r("lora-mix10"), 25: r("lora-mix25"), 50: mixed, 75: r("lora-mix75")}
    evaluated = {s: x for s, x in shares.items() if x and x.get("vs_start")}
    results.append(
        claims.claim_share(
            _paired(shares[10], shares[75], "general", "exact_match"),
            _paired(shares[10], shares[75], "domain", "exact_match"),
            {s: x["vs_start"]["general"]["after"] for s, x in evaluated.items()},
            {s: x["vs_start"]["domain"]["after"] for s, x in evaluated.items()},
        )
    )
    raised = r("lora-lr-x10")
    results.append(
        claims.claim_lr(
            {"lr": mixed["lr"], "by_detector": mixed["events"], "stopped": mixed.get("stopped")}
            if mixed
            else None,
            {"lr": raised["lr"], "by_detector": raised["events"], "stopped": raised.get("stopped")}
            if raised
            else None,
        )  # fmt: skip
    )
    two = r("lora-2-epochs")
    results.append(
        claims.claim_epochs(
            _paired(mixed, two, "domain", "exact_match"), _paired(mixed, two, "general", "exact_match")
        )
    )
    results.append(
        claims.claim_rft(_vs_start(r("rft-from-start"), "reward"), _vs_start(r("rft-after-sft"), "reward"))
    )
    full = {a.name: r(a.name) for a in arms() if a.name.startswith("full-")}
    full_domain = {a: x["vs_start"]["domain"]["after"] for a, x in full.items() if x and x.get("vs_start")}
    results.append(
        claims.claim_lora(
            mixed["vs_start"]["domain"]["after"] if mixed and mixed.get("vs_start") else None,
            full_domain,
            lambda arm: _paired(full[arm], mixed, "general", "exact_match"),
        )
    )
    rank, alpha = r("lora-rank32"), r("lora-alpha64")
    gains = {a: x["vs_start"]["domain"]["after"] for a, x in (("r8 alpha16", mixed), ("r32 alpha64", rank), ("r8 alpha64", alpha)) if x and x.get("vs_start")}  # fmt: skip
    results.append(
        claims.claim_rank(
            mixed["vs_start"]["domain"]["before"] if mixed and mixed.get("vs_start") else None,
            _paired(alpha, rank, "domain", "exact_match"),
            gains,
        )
    )
    for result in results:
        result.arms = [a.name for a in arms() if result.claim in a.claims]
    return results


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(payload: Mapping[str, Any]) -> str:
    """The table as markdown, from the JSON payload (`playbook.json`)."""
    lines = ["# The playbook's claims on the tiny family (`tunesmith experiments playbook`)", ""]
    if payload["quick"]:
        lines += ["**quick: not evidence** (`--quick` shrinks every arm to a few steps: a smoke test)", ""]
    lines += [
        f"seed {payload['seed']}; {payload['arms_run']} arm(s) trained in this call, {payload['arms_reused']} "
        f"reused; {payload['seconds']:.0f} s; scores in points (0-100); CIs: paired bootstrap, 95%",
        "",
        "| # | claim | expected | decision rule | measured | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in payload["claims"]:
        measured = "<br>".join(_cell(m) for m in r["measured"]) or "–"
        result = r["status"] if r["status"] == claims.HOLDS else f"{r['status']}: {r['reason']}"
        lines.append(
            f"| {r['claim']} | {_cell(r['statement'])} | {_cell(r['expected'])} | {_cell(r['rule'])} | "
            f"{measured} | **{_cell(result)}** |"
        )
    lines += [
        "",
        "| arm | what | steps | events | general (vs start) | domain (vs start) |",
        "|---|---|---|---|---|---|",
    ]
    for record in payload["arms"]:
        events = ", ".join(f"{k} x{v['count']}" for k, v in record["events"].items()) or "none"
        if record.get("stopped"):
            events += f"; stopped: {record['stopped']}"
        vs = record.get("vs_start") or {}
        general = _change(vs.get("general"))
        domain = _change(vs.get("reward") or vs.get("domain"))
        lines.append(
            f"| {record['arm']} | {_cell(record['what'])} | {record['steps']}/{record['planned_steps']} | "
            f"{_cell(events)} | {general.text() if general else '–'} | "
            f"{(domain.text() + (' (reward)' if vs.get('reward') else '')) if domain else '–'} |"
        )
    return "\n".join(lines) + "\n"


def write_table(out: Path, results: list[claims.ClaimResult], meta: dict[str, Any]) -> dict[str, Any]:
    """`playbook.json` (every number; the arms without their per-item scores) and `playbook.md`."""
    arms_out = [{k: v for k, v in record.items() if k != "items"} for record in meta["arms"]]
    payload = {**meta, "arms": arms_out, "claims": [r.to_dict() for r in results]}
    atomic_write_json(out / "playbook.json", payload)
    atomic_write_text(out / "playbook.md", render(payload))
    return payload


def playbook(
    out: str | Path,
    *,
    seed: int = 0,
    quick: bool = False,
    quiet: bool = False,
    only: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the arms, decide every claim, write the table; returns the JSON payload. `only`: train
    just these arms (and the arms they start from) in this call; a claim whose arms are missing is
    inconclusive."""
    started = time.monotonic()
    setup = Setup(Path(out), seed, quick)
    plan_arms = arms(QUICK_EPOCHS if quick else 1)
    by_name = {a.name: a for a in plan_arms}
    wanted = set(by_name if only is None else only)
    unknown = sorted(wanted - set(by_name))
    if unknown:
        raise UserError(f"--arms {','.join(unknown)}: no such arm — the arms are {', '.join(by_name)}")
    wanted |= {by_name[name].after for name in wanted if by_name[name].after}
    records: dict[str, dict[str, Any]] = {}
    for arm in plan_arms:
        path = setup.out / arm.name / ARM_RECORD
        if path.exists():
            record = read_json_record(path, fix=f"delete {path.parent} and run the playbook again")
            if (record.get("seed"), record.get("quick")) != (seed, quick):
                raise UserError(
                    f"{path}: made with seed {record.get('seed')}{' and --quick' if record.get('quick') else ''}, "
                    f"not seed {seed}{' and --quick' if quick else ''} — use another --out, or the same options"
                )
            records[arm.name] = record
    setup.write_recipes()
    todo = [a for a in plan_arms if a.name in wanted and a.name not in records]
    work = {a.name: planned_work(setup, a) for a in todo}
    progress = Progress(sum(w[1] for w in work.values()), quiet)
    done = 0.0
    try:
        for arm in todo:
            steps, units = work[arm.name]
            progress.arm(arm.name, units, steps)
            records[arm.name] = run_arm(setup, arm, progress.callback)
            done += units
            progress.finish_arm(done)
    finally:
        progress.close()
    reused = len([a for a in plan_arms if a.name in records]) - len(todo)
    results = decide_claims(records)
    meta = {
        "quick": quick,
        "seed": seed,
        "arms_run": len(todo),
        "arms_reused": reused,
        "seconds": round(time.monotonic() - started, 1),
        "arms": [records[a.name] for a in plan_arms if a.name in records],
    }
    return write_table(setup.out, results, meta)
