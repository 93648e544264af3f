"""Evaluate checkpoints, compare them, write the forgetting report: `tunesmith eval` and the end of `train`.

Flow: resolve each checkpoint reference -> for every suite, look the result up in the cache (checkpoint
content hash, suite, item-set hash, settings) or compute it (generation + scoring + perplexity) -> compare
"before" and "after" item by item (`forgetting.forgetting_table`) -> one verdict line -> `evaluation.json`,
`forgetting.csv` and `predictions.jsonl`, written atomically.

Model references: a model folder, a stage folder (`runs/<name>/<stage>`: its `best/`), a run folder
(`runs/<name>`: its last finished stage), or what `tunesmith.models.loading` accepts (`tiny:post-trained`,
a Hub id). For a checkpoint inside a run, the default baseline is the run's starting checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tunesmith.errors import ModelError, UserError
from tunesmith.evaluation import cache, retention, suites
from tunesmith.evaluation.forgetting import (
    ChangeRow,
    RunSettings,
    forgetting_table,
    regression_levers,
    verdict,
)
from tunesmith.evaluation.lm_eval_adapter import DEFAULT_TASKS, REAL_MODEL_PARAMETERS, run_tasks
from tunesmith.evaluation.metrics import METRICS, resolve_reward
from tunesmith.models.generate import answer_of
from tunesmith.runs import atomic_write_json, atomic_write_jsonl, atomic_write_text

if TYPE_CHECKING:
    from tunesmith.recipe.schema import ResolvedConfig

SUITES: tuple[str, ...] = ("general", "domain")
LM_EVAL_SUITE = "general/lm-eval"


def default_items_per_category() -> int:
    """General items per category for a checkpoint evaluated outside any run: the defaults table's value
    (a run uses its resolved `evaluation.general_items_per_category`)."""
    from tunesmith.recipe.defaults import lookup

    entry = lookup("evaluation.general_items_per_category", {})
    assert entry is not None, "the defaults table has evaluation.general_items_per_category"
    return int(entry.value)


@dataclass
class EvalConfig:
    """What to evaluate and how (a run passes its resolved `evaluation` block)."""

    suites: tuple[str, ...] = SUITES
    general_items_per_category: int = field(default_factory=default_items_per_category)
    domain: str | None = None  # gen_qa file or builtin: reference
    reward: str | dict | None = None  # any reward spec (tunesmith.rewards): the "rft_eval" score
    lm_eval_tasks: tuple[str, ...] | None = None  # None: DEFAULT_TASKS for real models, none for small
    lm_eval_include: str | None = None
    lm_eval_limit: int | None = None
    max_new_tokens: int = 256  # cap; the per-suite value is derived from the references (reasoning: the cap)
    reasoning: bool = False  # the thinking switch (`ResolvedConfig.reasoning`); blocks are not scored
    batch_size: int = 128
    use_cache: bool = True
    base_dir: Path | None = None  # where relative data paths are also looked up (the recipe's folder)

    def __post_init__(self) -> None:
        unknown = [s for s in self.suites if s not in SUITES]
        if unknown or not self.suites:
            raise UserError(f"--suites {','.join(self.suites)}: unknown suite — use general, domain or both")
        if "domain" in self.suites and not self.domain:
            raise UserError(
                "the domain suite needs a gen_qa file — pass --domain FILE (or set evaluation.domain in the recipe)"
            )


@dataclass
class EvalModel:
    """A model reference, resolved: what to load, how to name it, and the run it belongs to (if any)."""

    ref: str
    load_ref: str | Path
    label: str
    run_dir: Path | None = None
    stage: str | None = None
    recipe: ResolvedConfig | None = None  # the run's resolved recipe, when it was read to find the stage


@dataclass
class Scores:
    """One checkpoint's results, suite -> result dict (items, summary, perplexity, seconds, cached)."""

    checkpoint: EvalModel
    content_hash: str
    suites: dict[str, dict] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


# --- model references ----------------------------------------------------------------------------------
def _run_of(folder: Path) -> Path | None:
    return folder if (folder / "recipe.resolved.yaml").is_file() else None


def load_run_recipe(run_dir: Path) -> ResolvedConfig:
    """A run's stored resolved recipe (`recipe.resolved.yaml`), parsed once into the typed tree."""
    from tunesmith.recipe.loading import load_stored_recipe
    from tunesmith.recipe.schema import ResolvedConfig

    return ResolvedConfig.model_validate(load_stored_recipe(run_dir / "recipe.resolved.yaml"))


def _finished_stages(run_dir: Path, recipe: ResolvedConfig) -> list[str]:
    return [stage.name for stage in recipe.stages if (run_dir / stage.name / "best").is_dir()]


def run_start_ref(run_dir: Path, recipe: ResolvedConfig | None = None) -> str:
    """The starting checkpoint of a run, from its resolved recipe (read from the run when not given)."""
    from tunesmith.recipe.resolve import start_ref

    return start_ref((recipe or load_run_recipe(run_dir)).model)


def _stage_checkpoint(run_dir: Path, stage: str, recipe: ResolvedConfig | None = None) -> EvalModel:
    """A finished stage of a run (what `resolve_eval_model(run_dir / stage)` gives)."""
    folder = run_dir / stage
    return EvalModel(str(folder), folder / "best", f"{run_dir.name}/{stage}", run_dir, stage, recipe)


def resolve_eval_model(ref: str | Path) -> EvalModel:
    """A model reference -> `EvalModel` (see the module docstring for the accepted forms)."""
    text = str(ref)
    folder = Path(text).expanduser()
    if folder.is_dir():
        if (folder / "best").is_dir():
            run_dir = _run_of(folder.parent)
            if run_dir is not None:
                checkpoint = _stage_checkpoint(run_dir, folder.name)
                checkpoint.ref = text
                return checkpoint
            return EvalModel(text, folder / "best", text)
        if (folder / "config.json").is_file():
            run_dir = _run_of(folder.parent.parent) if folder.name == "best" else None
            stage = folder.parent.name if run_dir else None
            label = f"{run_dir.name}/{stage}" if run_dir else text
            return EvalModel(text, folder, label, run_dir, stage)
        if _run_of(folder):
            recipe = load_run_recipe(folder)
            finished = _finished_stages(folder, recipe)
            if not finished:
                raise ModelError(
                    f"{text}: this run has no finished stage yet — train it first, or pass a stage"
                )
            checkpoint = _stage_checkpoint(folder, finished[-1], recipe)
            checkpoint.ref = text
            return checkpoint
        raise ModelError(
            f"{text}: not a model folder (no config.json), stage folder (no best/) or run folder — check the path"
        )
    from tunesmith.models.loading import resolve_ref

    source, revision = resolve_ref(text)  # fails fast with one line for an unknown family/stage/path
    return EvalModel(text, source if isinstance(source, Path) else text, text)


# --- evaluating one checkpoint ---------------------------------------------------------------------------
def _is_real_model(load_ref: str | Path) -> bool:
    folder = Path(str(load_ref))
    if not folder.is_dir():
        return True  # Hub models of the catalog are real models
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors")) + sum(
        p.stat().st_size for p in folder.glob("*.bin")
    )
    return weights >= 2 * REAL_MODEL_PARAMETERS  # bf16 bytes


class _Lazy:
    """Load the model and tokenizer only when a suite misses the cache."""

    def __init__(self, load_ref: str | Path) -> None:
        self.load_ref, self._pair = load_ref, None

    def get(self):
        if self._pair is None:
            from transformers.utils import logging as hf_logging

            from tunesmith.models.loading import load_model, load_tokenizer

            hf_logging.disable_progress_bar()
            self._pair = (load_model(self.load_ref), load_tokenizer(self.load_ref))
        return self._pair


def _answer_budget(tokenizer, config: EvalConfig, items: list[dict]) -> int:
    """New tokens per answer: sized to the references, or the whole cap when the model reasons first."""
    if config.reasoning:
        return config.max_new_tokens
    return suites.max_new_tokens_for(tokenizer, [i["reference"] for i in items], config.max_new_tokens)


def _general(lazy: _Lazy, config: EvalConfig, items: list[dict]) -> dict:
    """The general suite: `retention.measure` on the model's general items (the tiny world's, answered within
    a budget sized to the references, or the real bank's, each category within its own budget), plus the
    perplexity of held-out prose (the tiny world's text, or the real bank's human-written prose)."""
    model, tokenizer = lazy.get()
    real_suite = retention.metric_of(items) == retention.REAL_METRIC
    if config.reasoning:  # a reasoning block comes first: every item gets the whole cap
        items = [{**item, "max_new_tokens": config.max_new_tokens} for item in items]
    max_new = config.max_new_tokens if real_suite else _answer_budget(tokenizer, config, items)
    measured = retention.measure(
        model,
        tokenizer,
        items,
        max_new_tokens=max_new,
        batch_size=config.batch_size,
        reasoning=config.reasoning,
    )
    if real_suite:
        perplexity = {"prose": retention.prose_perplexity(model, tokenizer)}
        max_new = max(int(item["max_new_tokens"]) for item in items)
    else:
        perplexity = {"general_text": suites.general_perplexity(model, tokenizer)}
    return {
        "items": measured.rows,
        "summary": suites.summarize(measured.rows),
        "perplexity": perplexity,
        "uniform_perplexity": suites.uniform_perplexity(model),
        "max_new_tokens": max_new,
    }


def with_reward(reward) -> retention.Scorer:
    """`retention.score_item` plus the reward, scored in one batched call (endpoints see batches, not one
    request per item)."""

    def score(items, completions):
        rows = [
            retention.score_item(item, completion)
            for item, completion in zip(items, completions, strict=True)
        ]
        triples = [
            (item["messages"], answer_of(completion), item["reference"])
            for item, completion in zip(items, completions, strict=True)
        ]
        batch = getattr(reward, "score_batch", None)
        values = batch(triples) if batch is not None else [float(reward(p, r)) for _, p, r in triples]
        return [{**row, "reward": value} for row, value in zip(rows, values, strict=True)]

    return score


def _domain(lazy: _Lazy, config: EvalConfig, items: list[dict]) -> dict:
    model, tokenizer = lazy.get()
    reward = resolve_reward(config.reward) if config.reward else None
    max_new = _answer_budget(tokenizer, config, items)
    answered = retention.measure(
        model,
        tokenizer,
        items,
        max_new_tokens=max_new,
        batch_size=config.batch_size,
        reasoning=config.reasoning,
        scorer=with_reward(reward) if reward is not None else None,
    ).rows
    return {
        "items": answered,
        "summary": suites.summarize(answered),
        "perplexity": {"domain_answers": suites.answer_perplexity(model, tokenizer, items)},
        "uniform_perplexity": suites.uniform_perplexity(model),
        "max_new_tokens": max_new,
    }


def _cached(
    key_parts: tuple[str, str, str, dict], config: EvalConfig, compute, *, store: bool = True
) -> dict:
    key = cache.entry_key(*key_parts)
    if config.use_cache:
        hit = cache.load(key)
        if hit is not None:
            return {**hit, "cached": True}
    started = time.perf_counter()
    result = compute()
    result["seconds"] = round(time.perf_counter() - started, 2)
    if store:
        cache.store(key, result)
    return {**result, "cached": False}


def evaluate_checkpoint(checkpoint: EvalModel, config: EvalConfig, *, quiet: bool = False) -> Scores:
    """Every configured suite on one checkpoint (cached results reused; `Scores.messages`: skip lines)."""
    revision = None
    if not isinstance(checkpoint.load_ref, Path) and "@" in str(checkpoint.load_ref):
        revision = str(checkpoint.load_ref).partition("@")[2]
    scores = Scores(checkpoint, cache.checkpoint_hash(checkpoint.load_ref, revision))
    lazy = _Lazy(checkpoint.load_ref)
    settings = {"max_new_tokens_cap": config.max_new_tokens, "metrics": sorted(METRICS)}
    if config.reasoning:  # part of the cache key (left out when off: earlier results stay valid)
        settings["reasoning"] = True
    if "general" in config.suites:
        items = retention.general_items(checkpoint.load_ref, config.general_items_per_category)
        general_settings = dict(settings)
        if retention.metric_of(items) == retention.REAL_METRIC:  # results of an older scorer are not reused
            general_settings["scorer"] = retention.SCORER_VERSION
        key = (scores.content_hash, "general", suites.items_hash(items), general_settings)
        scores.suites["general"] = _cached(key, config, lambda: _general(lazy, config, items))
        tasks = config.lm_eval_tasks
        if tasks is None:
            tasks = DEFAULT_TASKS if _is_real_model(checkpoint.load_ref) else ()
        if tasks:
            lm_settings = {
                "tasks": list(tasks),
                "include": config.lm_eval_include,
                "limit": config.lm_eval_limit,
                **({"reasoning": True} if config.reasoning else {}),
            }
            result = _cached(
                (scores.content_hash, LM_EVAL_SUITE, "", lm_settings),
                config,
                lambda: _lm_eval(lazy, config, tasks),
                store=False,  # stored below only when no task was skipped
            )
            if not result.get("skipped") and not result["cached"] and config.use_cache:
                cache.store(cache.entry_key(scores.content_hash, LM_EVAL_SUITE, "", lm_settings), result)
            scores.messages += result.get("skipped", [])
            if result["items"]:
                scores.suites[LM_EVAL_SUITE] = result
    if "domain" in config.suites:
        assert config.domain is not None
        path = suites.resolve_data(config.domain, config.base_dir)
        items = suites.domain_items(path)
        key = (scores.content_hash, "domain", suites.items_hash(items), {**settings, "reward": config.reward})
        scores.suites["domain"] = _cached(key, config, lambda: _domain(lazy, config, items))
    if not quiet:
        for message in scores.messages:
            print(f"{checkpoint.label}: {message}", file=sys.stderr)
    return scores


def _lm_eval(lazy: _Lazy, config: EvalConfig, tasks: tuple[str, ...]) -> dict:
    model, tokenizer = lazy.get()
    result = run_tasks(
        model,
        tokenizer,
        tasks,
        include_path=config.lm_eval_include,
        limit=config.lm_eval_limit,
        reasoning=config.reasoning,
    )
    return {"items": result.items, "summary": result.summary, "skipped": result.skipped}


# --- comparing two ---------------------------------------------------------------------------------------
def domain_metric(config: EvalConfig) -> str:
    """The domain metric the verdict uses: the reward when one is configured, else exact match."""
    return "reward" if config.reward else "exact_match"


def run_settings(run_dir: Path, recipe: ResolvedConfig, stage: str) -> RunSettings | None:
    """What the verdict's advice needs about the stage of a run that produced a checkpoint: its resolved
    mixing, mode, LR and LoRA values, the family's default LR (from the size class in `plan.json`) and the
    epochs over the customer data (the plan's derived `epochs`). None when the stage is not in the recipe."""
    from tunesmith.advisor.rules import stage_default
    from tunesmith.runs import read_json_record

    index = next((i for i, s in enumerate(recipe.stages) if s.name == stage), None)
    if index is None:
        return None
    spec = recipe.stages[index]
    hp = spec.hyperparameters
    plan: dict = {}
    if (run_dir / "plan.json").is_file():
        plan = read_json_record(run_dir / "plan.json", fix="restore it, or rerun the run with --overwrite")
    size_class = plan.get("size_class")
    numbers = plan["stages"][index].get("numbers", {}) if len(plan.get("stages", [])) > index else {}
    # the checkpoint carries every earlier stage's training: an unmixed stage (RFT, say) after a mixed one is
    # part of a run that already mixes, and that stage's mix is the one to change
    mixing = next(
        (s.data_mixing for s in reversed(recipe.stages[: index + 1]) if s.data_mixing.customer_percent < 100),
        spec.data_mixing,
    )
    return RunSettings(
        technique=spec.technique,
        mode=spec.mode,
        customer_percent=mixing.customer_percent,
        general=dict(mixing.general),
        lr=hp.lr,
        default_lr=stage_default(recipe, size_class, index, "hyperparameters.lr") if size_class else None,
        epochs=numbers.get("epochs"),
        lora_rank=hp.lora.rank if spec.mode == "lora" and hp.lora else None,
        lora_alpha=hp.lora.alpha if spec.mode == "lora" and hp.lora else None,
        run=str(run_dir / stage),
    )


def _settings_of(scores: Scores) -> RunSettings | None:
    """`run_settings` of a checkpoint inside a run (None for a bare model or a run without its recipe)."""
    checkpoint = scores.checkpoint
    if checkpoint.run_dir is None or checkpoint.stage is None:
        return None
    recipe = checkpoint.recipe or load_run_recipe(checkpoint.run_dir)
    return run_settings(checkpoint.run_dir, recipe, checkpoint.stage)


def _general_metric(result: dict) -> str:
    """The general suite's metric: the real bank's `score`, or the tiny world's `exact_match`."""
    items = result.get("items") or []
    return retention.REAL_METRIC if items and retention.REAL_METRIC in items[0]["scores"] else "exact_match"


def compare(before: Scores, after: Scores, config: EvalConfig, *, seed: int = 0) -> dict:
    """The forgetting report of `after` against `before` on the same items: rows, perplexities, verdict (its
    advice fits the run that produced `after`: `forgetting.advice`)."""
    rows: list[ChangeRow] = []
    general_rows = domain_rows = None
    if "general" in before.suites and "general" in after.suites:
        general_rows = forgetting_table(
            "general",
            before.suites["general"]["items"],
            after.suites["general"]["items"],
            _general_metric(before.suites["general"]),
            seed=seed,
        )
        rows += general_rows
    if LM_EVAL_SUITE in before.suites and LM_EVAL_SUITE in after.suites:
        shared = {i["id"] for i in before.suites[LM_EVAL_SUITE]["items"]} & {
            i["id"] for i in after.suites[LM_EVAL_SUITE]["items"]
        }
        pick = [[i for i in s.suites[LM_EVAL_SUITE]["items"] if i["id"] in shared] for s in (before, after)]
        if shared:
            rows += forgetting_table(LM_EVAL_SUITE, pick[0], pick[1], "score", seed=seed)
    if "domain" in before.suites and "domain" in after.suites:
        primary = domain_metric(config)
        metrics = [primary] + [m for m in before.suites["domain"]["items"][0]["scores"] if m != primary]
        for metric in metrics:
            table = forgetting_table(
                "domain",
                before.suites["domain"]["items"],
                after.suites["domain"]["items"],
                metric,
                seed=seed,
                with_retention=False,
            )
            domain_rows = domain_rows or table
            rows += table
    perplexity = {}
    for suite in ("general", "domain"):
        for name, value in (before.suites.get(suite, {}).get("perplexity") or {}).items():
            perplexity[name] = {
                "before": value,
                "after": (after.suites.get(suite, {}).get("perplexity") or {}).get(name),
                "uniform": before.suites[suite].get("uniform_perplexity"),  # None in results cached before
            }
    settings = _settings_of(after)
    return {
        "before": before.checkpoint.label,
        "after": after.checkpoint.label,
        "verdict": verdict(general_rows, domain_rows, settings),
        "levers": regression_levers(general_rows, settings),
        "rows": [r.to_dict() for r in rows],
        "perplexity": perplexity,
    }


# --- output ----------------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "before", "after", "suite", "category", "metric", "items", "score_before", "score_after", "change",
    "retention", "ci_low", "ci_high", "significant", "direction", "kept", "kept_low", "kept_high",
)  # fmt: skip


def forgetting_csv(comparisons: list[dict]) -> str:
    """All comparisons' rows as CSV (scores 0-1)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for comparison in comparisons:
        for row in comparison["rows"]:
            writer.writerow(
                [
                    comparison["before"],
                    comparison["after"],
                    row["suite"],
                    row["category"],
                    row["metric"],
                    row["items"],
                    f"{row['before']:.4f}",
                    f"{row['after']:.4f}",
                    f"{row['change']:.4f}",
                    "" if row["retention"] is None else f"{row['retention']:.4f}",
                    f"{row['ci_low']:.4f}",
                    f"{row['ci_high']:.4f}",
                    row["significant"],
                    row["direction"],
                    *(
                        "" if row.get(k) is None else f"{row[k]:.4f}"
                        for k in ("kept", "kept_low", "kept_high")
                    ),
                ]  # fmt: skip
            )
    return buffer.getvalue()


def checkpoint_summary(scores: Scores) -> dict:
    return {
        "label": scores.checkpoint.label,
        "ref": scores.checkpoint.ref,
        "content_hash": scores.content_hash,
        "suites": {
            name: {
                k: v
                for k, v in result.items()
                if k in {"summary", "perplexity", "uniform_perplexity", "seconds", "cached", "max_new_tokens"}
            }
            for name, result in scores.suites.items()
        },
        "messages": scores.messages,
    }


def write_report(out_dir: str | Path, checkpoints: list[Scores], comparisons: list[dict]) -> list[Path]:
    """`evaluation.json`, `forgetting.csv` (when there is a comparison) and `predictions.jsonl` in `out_dir`,
    each written atomically; returns the files written."""
    out = Path(out_dir)
    written = [out / "evaluation.json"]
    payload = {
        "verdict": comparisons[-1]["verdict"] if comparisons else None,
        "checkpoints": [checkpoint_summary(s) for s in checkpoints],
        "comparisons": comparisons,
    }
    atomic_write_json(out / "evaluation.json", payload)
    if comparisons:
        atomic_write_text(out / "forgetting.csv", forgetting_csv(comparisons))
        written.append(out / "forgetting.csv")
    atomic_write_jsonl(
        out / "predictions.jsonl",
        [
            {"checkpoint": s.checkpoint.label, "suite": suite, **item}
            for s in checkpoints
            for suite, result in s.suites.items()
            for item in result["items"]
        ],
    )
    return [*written, out / "predictions.jsonl"]


def _pct(value: float) -> str:
    return f"{value * 100:5.1f}"


def render_comparison(comparison: dict) -> str:
    """The forgetting table as text (points = percentage points; * = beyond noise, 95% bootstrap CI)."""
    lines = [f"{comparison['before']} -> {comparison['after']}"]
    header = f"  {'suite':<16}{'category':<34}{'metric':<18}{'before':>7}{'after':>7}{'change':>8}  {'95% CI':<16}{'retained':>9}{'kept':>7}"
    lines.append(header)
    single = {(r["suite"], r["metric"]) for r in comparison["rows"] if r["category"] != "overall"}
    single = {k for k in single if sum(1 for r in comparison["rows"] if (r["suite"], r["metric"]) == k) == 2}
    for row in comparison["rows"]:
        if (row["suite"], row["metric"]) in single and row["category"] != "overall":
            continue  # one category: its row equals the overall row
        retained = "" if row["retention"] is None else f"{row['retention']:.0%}"
        kept = "" if row.get("kept") is None else f"{row['kept']:.0%}"
        ci = f"[{row['ci_low'] * 100:+.0f}, {row['ci_high'] * 100:+.0f}]"
        mark = "*" if row["significant"] else " "
        lines.append(
            f"  {row['suite']:<16}{row['category']:<34}{row['metric']:<18}{_pct(row['before']):>7}"
            f"{_pct(row['after']):>7}{row['change'] * 100:+8.1f}{mark} {ci:<16}{retained:>9}{kept:>7}"
        )
    for name, values in comparison["perplexity"].items():
        after = values["after"]
        lines.append(
            f"  perplexity {name}: {values['before']:.3f} -> "
            + (f"{after:.3f}" if after is not None else "-")
            + _uniform_note(values.get("uniform"))
        )
    lines.append(f"verdict: {comparison['verdict']}")
    return "\n".join(lines)


def _uniform_note(uniform: int | None) -> str:
    """What a perplexity is measured against: a uniform guess scores the vocabulary size."""
    if uniform is None:
        return ""
    return f"  (a uniform guess scores {uniform}; above it = confidently wrong)"


def render_scores(scores: Scores) -> str:
    lines = [f"{scores.checkpoint.label}"]
    for suite, result in scores.suites.items():
        cached = " (cached)" if result.get("cached") else f" ({result.get('seconds', 0):.1f} s)"
        for metric, summary in result["summary"].items():
            if suite == "general" and metric != _general_metric(result):
                continue  # general items are scored by one metric; the others are kept in the JSON
            if suite == LM_EVAL_SUITE:
                lines.append(f"  {suite} {metric}: {summary.get('score', 0):.3f} ({summary.get('metric')})")
                continue
            by_category = ", ".join(f"{c} {v:.2f}" for c, v in summary["by_category"].items())
            lines.append(f"  {suite} {metric}: {summary['overall']:.3f}  [{by_category}]{cached}")
            cached = ""
        for name, value in (result.get("perplexity") or {}).items():
            lines.append(
                f"  {suite} perplexity {name}: {value:.3f}{_uniform_note(result.get('uniform_perplexity'))}"
            )
    return "\n".join(lines)


# --- entry points ------------------------------------------------------------------------------------------
def eval_command(
    model: str,
    *,
    suites_arg: str = "general,domain",
    domain: str | None = None,
    baseline: str | None = None,
    out: str | None = None,
    fmt: str = "text",
    reward: str | None = None,
    items_per_category: int | None = None,
    lm_eval_tasks: str | None = None,
    lm_eval_include: str | None = None,
    lm_eval_limit: int | None = None,
    no_cache: bool = False,
    weights: Path | None = None,
    weights_label: str | None = None,
) -> int:
    """`tunesmith eval`: scores of one checkpoint, or its forgetting report against a baseline. `weights`:
    a model folder evaluated in place of the checkpoint's own (a blend), keeping its run and baseline."""
    from tunesmith.threads import configure_threads

    checkpoint = resolve_eval_model(model)
    if weights is not None:
        checkpoint.load_ref, checkpoint.label = Path(weights), f"{checkpoint.label} ({weights_label})"
    requested = tuple(s.strip() for s in suites_arg.split(",") if s.strip())
    recipe = checkpoint.recipe
    if recipe is None and checkpoint.run_dir is not None:
        recipe = checkpoint.recipe = load_run_recipe(checkpoint.run_dir)
    if recipe is not None:
        reward = reward or _recipe_reward(recipe)
        domain = domain or recipe.evaluation.domain
    if domain is None and "domain" in requested and suites_arg == "general,domain":
        requested = ("general",)  # the default asks for both; without a domain file, general alone
        print("eval: no domain file (--domain FILE) — evaluating the general suite only", file=sys.stderr)
    tasks = None
    if lm_eval_tasks is not None:
        tasks = tuple(t.strip() for t in lm_eval_tasks.split(",") if t.strip() and t.strip() != "none")
    config = EvalConfig(
        suites=requested,
        general_items_per_category=items_per_category
        or (recipe.evaluation.general_items_per_category if recipe else default_items_per_category()),
        domain=domain,
        reward=reward,
        lm_eval_tasks=tasks,
        lm_eval_include=lm_eval_include,
        lm_eval_limit=lm_eval_limit,
        use_cache=not no_cache,
        reasoning=recipe.reasoning() if recipe is not None else False,
    )
    quiet = fmt == "json"
    if isinstance(checkpoint.load_ref, Path) and checkpoint.load_ref.is_dir():
        from tunesmith.models.validation import check_model_folder

        check_model_folder(checkpoint.load_ref)  # a damaged folder is an input error, said before any work
    configure_threads()  # once the inputs are known good: a refused command prints only its error line
    after = evaluate_checkpoint(checkpoint, config, quiet=quiet)
    if baseline is None and checkpoint.run_dir is not None:
        baseline = run_start_ref(checkpoint.run_dir, recipe)
    checkpoints, comparisons = [after], []
    if baseline is not None:
        before = evaluate_checkpoint(resolve_eval_model(baseline), config, quiet=quiet)
        checkpoints = [before, after]
        comparisons = [compare(before, after, config)]
    out_dir = Path(out) if out else (checkpoint.run_dir / "eval" if checkpoint.run_dir else None)
    if out_dir is not None:
        written = write_report(out_dir, checkpoints, comparisons)
    if fmt == "json":
        print(json.dumps({
            "verdict": comparisons[-1]["verdict"] if comparisons else None,
            "checkpoints": [checkpoint_summary(s) for s in checkpoints],
            "comparisons": comparisons,
            "out": str(out_dir) if out_dir else None,
        }, indent=2))  # fmt: skip
        return 0
    for scores in checkpoints:
        print(render_scores(scores))
    for comparison in comparisons:
        print(render_comparison(comparison))
    if out_dir is not None:
        print("written: " + ", ".join(str(path) for path in written))
    return 0


def _recipe_reward(recipe: ResolvedConfig) -> str | dict | None:
    """The last RFT stage's reward (any spec the rewards client can call: built-in, module:function,
    endpoint, Lambda): the domain suite is then also scored by it (the managed service's "rft_eval").
    An object spec is passed as the plain data the run stores (it is part of the result cache key)."""
    for stage in reversed(recipe.stages):
        if stage.rft is not None and stage.rft.reward:
            spec = stage.rft.reward
            return spec if isinstance(spec, str) else spec.model_dump(mode="json", exclude_none=True)
    return None


def evaluate_run(
    run_dir: str | Path,
    start_ref: str | Path,
    *,
    recipe: ResolvedConfig | None = None,
    base_dir: Path | None = None,
    quiet: bool = False,
) -> dict:
    """The end of `tunesmith train`: the starting checkpoint and every stage's best on the same items,
    each stage compared with the start, then each later stage with the one before it (what RFT added to
    SFT, say); the report goes to `<run>/eval/`. `recipe` is the run's resolved recipe (read from the run
    folder when not given). Returns the JSON payload."""
    run_dir = Path(run_dir)
    recipe = recipe or load_run_recipe(run_dir)
    spec = recipe.evaluation
    requested = tuple(spec.suites)
    if "domain" in requested and not spec.domain:
        requested = tuple(s for s in requested if s != "domain")
        if not quiet:
            print("eval: no evaluation.domain file in the recipe — general suite only", file=sys.stderr)
    if not requested:
        return {}
    config = EvalConfig(
        suites=requested,
        general_items_per_category=spec.general_items_per_category,
        domain=spec.domain,
        reward=_recipe_reward(recipe),
        base_dir=base_dir,
        reasoning=recipe.reasoning(),
    )
    start = resolve_eval_model(start_ref)
    start.label = f"start ({start.label})"
    checkpoints = [evaluate_checkpoint(start, config, quiet=quiet)]
    for stage in _finished_stages(run_dir, recipe):
        checkpoints.append(
            evaluate_checkpoint(_stage_checkpoint(run_dir, stage, recipe), config, quiet=quiet)
        )
    # what each later stage added on top of the one before it (e.g. RFT over SFT), then every stage against
    # the start (last: the final stage against the start, whose verdict is the run's)
    comparisons = [
        compare(previous, current, config)
        for previous, current in zip(checkpoints[1:], checkpoints[2:], strict=False)
    ] + [compare(checkpoints[0], scores, config) for scores in checkpoints[1:]]
    write_report(run_dir / "eval", checkpoints, comparisons)
    if not quiet:
        for comparison in comparisons:
            print(render_comparison(comparison))
    elif comparisons:
        print(f"eval: {comparisons[-1]['verdict']}")
    return json.loads((run_dir / "eval" / "evaluation.json").read_text())
