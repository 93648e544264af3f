"""The RFT readiness probe: is there anything for RFT to learn from, on this checkpoint with this reward?

GRPO learns from the *differences* between the samples of one prompt. It needs a band of baseline
success: "struggles with sparse rewards (less than 5 percent positive examples)" (the managed service's
RFT docs, [nova-reward-functions]); "if your reward is nearly always 0 or nearly always 1, fix
the reward before tuning the optimizer" (NVIDIA's GRPO guide, [nvidia-grpo-guide]); groups whose samples
all score the same have zero advantage and give no gradient (DAPO's dynamic sampling drops them, [dapo-2025]).

The probe samples `generations` completions for `prompts` prompts of the stage's data from the checkpoint
(temperature as in training), scores them with the stage's reward, and reports:

- the positive-reward rate (share of samples scoring above `positive_threshold`, default 0),
- the full-score rate (share at the best score seen, when that is the reward's maximum 1.0),
- the share of groups with zero variance (no signal) and its complement, the expected share of useful groups,
- the score distribution (histogram) and mean,

and a verdict. First, if more samples failed to score than the reward's failure policy allows (its
`max_failure_rate`: a timeout, a bad reply, an exception; failed samples score 0), "the reward failed": the
scores say nothing about the checkpoint, so no readiness verdict is given. Otherwise
positive rate < `low` (5%) -> "do SFT first"; > `high` (95%) -> "RFT unnecessary or the
reward is not discriminative"; fewer than `low` of the groups carry signal -> "the reward is not
discriminative" (every prompt is all-right or all-wrong: raise the temperature or generations, or use a
graded reward); otherwise "ready", with the expected share of useful groups.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

VERDICTS = {
    "reward_failed": "the reward failed",
    "sft_first": "do SFT first",
    "saturated": "RFT unnecessary or the reward is not discriminative",
    "no_signal": "the reward is not discriminative on this checkpoint",
    "ready": "ready",
}
EXIT_CODES = {"ready": 0, "sft_first": 1, "saturated": 1, "no_signal": 1, "reward_failed": 3}
"""`tunesmith probe`'s exit code per verdict: 0 ready, 1 a readiness verdict against RFT, 3 the reward failed
(2 stays a user error: a bad option, file or spec)."""
ADVICE = {
    "sft_first": "the model almost never earns reward: teach the task with an SFT stage on demonstrations "
    "(or a CPT -> SFT chain) before RFT",
    "saturated": "almost every sample already earns reward: RFT has nothing to add, or the reward is too lenient "
    "(make it stricter / graded)",
    "no_signal": "each prompt's samples score alike (all right or all wrong), so groups carry no advantage: raise "
    "temperature or number_generation, or use a graded reward",
    "ready": "the reward separates good from bad samples on this checkpoint",
}


@dataclass(frozen=True)
class ProbeSettings:
    prompts: int = 64
    generations: int = 8
    temperature: float = 1.0
    max_new_tokens: int = 32
    seed: int = 0
    positive_threshold: float = 0.0
    low: float = 0.05  # "less than 5 percent positive examples" ([nova-reward-functions])
    high: float = 0.95  # the symmetric bound: nearly every answer already scores
    reasoning: bool = (
        False  # the thinking switch, as in the stage's GRPO prompts (`ResolvedConfig.reasoning`)
    )

    @classmethod
    def for_stage(cls, stage: Any, **overrides: Any) -> ProbeSettings:
        rft = stage.rft
        values = dict(
            generations=rft.number_generation,
            temperature=rft.temperature,
            max_new_tokens=rft.max_new_tokens,
            seed=stage.hyperparameters.seed,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class ProbeReport:
    model: str
    reward: str
    prompts: int
    generations: int
    samples: int
    positive_rate: float
    full_score_rate: float | None
    mean_score: float
    zero_variance_share: float
    useful_group_share: float
    failed_samples: int
    histogram: list[dict[str, float]]
    positives_per_group: dict[str, int]
    verdict: str
    verdict_text: str
    advice: str
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict_for(positive_rate: float, useful_group_share: float, settings: ProbeSettings) -> str:
    if positive_rate < settings.low:
        return "sft_first"
    if positive_rate > settings.high:
        return "saturated"
    if useful_group_share < settings.low:
        return "no_signal"
    return "ready"


def summarize(
    scores: list[list[float]], settings: ProbeSettings, failed: int = 0, reward_failure: str | None = None
) -> dict[str, Any]:
    """Statistics of `scores[prompt][sample]` (pure: tested without a model). `reward_failure`: the reward's
    failure-policy message when more samples failed to score than it allows; the verdict is then
    "reward_failed" with that message as the advice."""
    flat = [s for group in scores for s in group]
    n = len(flat)
    positive = sum(1 for s in flat if s > settings.positive_threshold)
    zero_variance = sum(1 for group in scores if max(group) - min(group) <= 1e-12)
    top = max(flat) if flat else 0.0
    full = sum(1 for s in flat if s >= 1.0 - 1e-9) / n if n and math.isclose(top, 1.0) else None
    per_group: dict[str, int] = {}
    for group in scores:
        k = str(sum(1 for s in group if s > settings.positive_threshold))
        per_group[k] = per_group.get(k, 0) + 1
    positive_rate = positive / n if n else 0.0
    useful = 1 - zero_variance / len(scores) if scores else 0.0
    verdict = "reward_failed" if reward_failure else verdict_for(positive_rate, useful, settings)
    return {
        "samples": n,
        "positive_rate": positive_rate,
        "full_score_rate": full,
        "mean_score": sum(flat) / n if n else 0.0,
        "zero_variance_share": zero_variance / len(scores) if scores else 0.0,
        "useful_group_share": useful,
        "failed_samples": failed,
        "histogram": histogram(flat),
        "positives_per_group": dict(sorted(per_group.items(), key=lambda kv: int(kv[0]))),
        "verdict": verdict,
        "verdict_text": VERDICTS[verdict],
        "advice": reward_failure or ADVICE[verdict],
    }


def histogram(values: list[float], bins: int = 10) -> list[dict[str, float]]:
    """Counts in `bins` equal-width bins over [min(0, lowest), max(1, highest)]."""
    if not values:
        return []
    low, high = min(0.0, min(values)), max(1.0, max(values))
    width = (high - low) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - low) / width), bins - 1)] += 1
    return [
        {"low": round(low + i * width, 6), "high": round(low + (i + 1) * width, 6), "count": c}
        for i, c in enumerate(counts)
    ]


def _distinct(rows: list[dict]) -> list[dict]:
    """`rows` without repeats (same `id`, or same prompt when rows have no id), first occurrence kept."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        key = str(row["id"]) if row.get("id") is not None else json.dumps(_prompt(row), sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def probe_rows(
    model_ref: str | Path,
    rows: list[dict[str, Any]],
    reward_spec: Any,
    settings: ProbeSettings | None = None,
    *,
    base_dir: Path | None = None,
    quiet: bool = False,
) -> ProbeReport:
    """Sample, score and summarize. `rows` are RFT rows (`prompt` or `messages`, `reference_answer`, extra)."""
    import torch

    from tunesmith.evaluation.retention import measure
    from tunesmith.models.generate import answer_of
    from tunesmith.models.loading import load_model, load_tokenizer
    from tunesmith.rewards import RewardSample, load_reward

    settings = settings or ProbeSettings()
    started = time.perf_counter()
    reward = load_reward(reward_spec, base_dir=base_dir, policy=False)  # judged once, on all samples
    rows = _distinct(rows)  # a stage's training file repeats prompts to fill its steps: probe each once
    picked = (
        rows if len(rows) <= settings.prompts else random.Random(settings.seed).sample(rows, settings.prompts)
    )
    prompts = [_prompt(row) for row in picked]
    items = []
    for i, row in enumerate(picked):
        reference = row.get("reference_answer")
        if reference is None and isinstance(row.get("metadata"), dict):
            reference = row["metadata"].get("reference_answer")
        extra = {k: v for k, v in row.items() if k not in ("prompt", "messages", "reference_answer", "id")}
        items.append(
            {
                "id": str(row.get("id", i)),
                "category": "rft",
                "messages": prompts[i],
                "reference": reference,
                "extra": extra,
            }
        )
    tokenizer = load_tokenizer(model_ref)
    model = load_model(model_ref, dtype=torch.float32)
    torch.manual_seed(settings.seed)
    seen: dict[str, Any] = {}

    def score_with_reward(flat_items: list[dict], flat: list[str]) -> list[dict[str, float]]:
        """The reward on every sample, in one call (the reasoning is not scored)."""
        g = settings.generations
        samples = [
            RewardSample(
                id=f"{item['id']}#probe.{k % g}",
                messages=[*item["messages"], {"role": "assistant", "content": answer_of(completion)}],
                reference_answer=item["reference"],
                extra=item["extra"],
            )
            for k, (item, completion) in enumerate(zip(flat_items, flat, strict=True))
        ]
        try:
            seen["results"] = reward.score(samples)
        finally:
            close = getattr(reward, "close", None)
            if close is not None:
                close()
        seen["completions"] = flat
        return [{"reward": result.score} for result in seen["results"]]

    # the one measurement of a model's answers (`evaluation.retention`), sampled and scored by the reward
    measure(
        model,
        tokenizer,
        items,
        max_new_tokens=settings.max_new_tokens,
        num_samples=settings.generations,
        temperature=settings.temperature,
        reasoning=settings.reasoning,
        scorer=score_with_reward,
    )
    results, completions = seen["results"], seen["completions"]
    g = settings.generations
    scores = [[results[i * g + j].score for j in range(g)] for i in range(len(picked))]
    failure = reward.failure_message() if reward.over_max_failure_rate() else None
    stats = summarize(scores, settings, failed=sum(1 for r in results if r.failed), reward_failure=failure)
    examples = [  # as generated: reasoning blocks kept
        {"prompt": prompts[i][-1]["content"], "completion": completions[i * g], "score": scores[i][0]}
        for i in range(min(5, len(picked)))
    ]
    return ProbeReport(
        model=str(model_ref),
        reward=getattr(reward, "name", str(reward_spec)),
        prompts=len(picked),
        generations=g,
        seconds=round(time.perf_counter() - started, 2),
        settings=asdict(settings),
        examples=examples,
        **stats,
    )


def _prompt(row: dict[str, Any]) -> list[dict[str, Any]]:
    messages = row.get("prompt", row.get("messages"))
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    # a conversation that already ends with an answer (SFT form): probe on everything before it
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    return list(messages)


def render_report(report: dict[str, Any]) -> str:
    """The probe as a few readable lines (the verdict last)."""
    full = report.get("full_score_rate")
    lines = [
        f"RFT readiness probe: {report['model']} x {report['reward']}: {report['prompts']} prompts x "
        f"{report['generations']} samples ({report['seconds']} s)",
        f"  positive reward: {100 * report['positive_rate']:.1f}% of samples"
        + (f"; full score: {100 * full:.1f}%" if full is not None else "")
        + f"; mean score {report['mean_score']:.3f}"
        + (f"; {report['failed_samples']} samples failed to score" if report.get("failed_samples") else ""),
        f"  groups with zero variance (no signal): {100 * report['zero_variance_share']:.1f}%; "
        f"useful groups: {100 * report['useful_group_share']:.1f}%",
        "  positives per group: "
        + ", ".join(f"{k}/{report['generations']}: {v}" for k, v in report["positives_per_group"].items()),
        "  scores: " + _bars(report["histogram"]),
    ]
    verdict = report["verdict_text"]
    if report["verdict"] == "ready":
        verdict += (
            f" — expect ~{100 * report['useful_group_share']:.0f}% of groups to carry a learning signal"
        )
    lines.append(f"verdict: {verdict} ({report['advice']})")
    return "\n".join(lines)


def _bars(hist: list[dict[str, float]]) -> str:
    if not hist:
        return "(none)"
    peak = max(h["count"] for h in hist) or 1
    blocks = " ▁▂▃▄▅▆▇█"
    bar = "".join(blocks[round(8 * h["count"] / peak)] for h in hist)
    return f"{hist[0]['low']:g} |{bar}| {hist[-1]['high']:g}"


def default_max_new_tokens(model: str, rows: list[dict[str, Any]]) -> tuple[int, str]:
    """The probe's answer length when none is given, with the reason: sized to the task from the reference
    answers (1.5 x the longest + 8 tokens, as the evaluation does), at most the RFT default of the model's
    size class; without string references, that default (`rft.max_new_tokens` in the defaults table)."""
    from tunesmith.data.formats.rft import reference_answer
    from tunesmith.evaluation.suites import max_new_tokens_for
    from tunesmith.models.catalog import FAMILIES
    from tunesmith.models.loading import load_tokenizer
    from tunesmith.models.parameters import size_class
    from tunesmith.recipe import defaults as table

    family = FAMILIES.get(str(model).split(":")[0])
    sized = size_class(family, None if family else str(model))
    entry = table.lookup("rft.max_new_tokens", {"size_class": sized.name, "technique": "rft"})
    assert entry is not None, "the defaults table sizes rft.max_new_tokens for every class"
    cap = int(entry.value)
    references = [reference_answer(row) for row in rows]
    texts = [r for r in references if isinstance(r, str) and r]
    if not texts:
        return cap, f"no reference answers to size it from: the {sized.name}-class RFT default"
    tokens = max_new_tokens_for(load_tokenizer(model), texts, cap)
    return tokens, f"1.5 x the longest of {len(texts)} reference answers + 8 tokens (at most {cap})"


def probe_command(
    model: str,
    *,
    data: str,
    reward: str,
    prompts: int = 64,
    generations: int = 8,
    temperature: float = 1.0,
    max_new_tokens: int | None = None,
    seed: int = 0,
    out: str | None = None,
    fmt: str = "text",
) -> int:
    """`tunesmith probe`: exit 0 when ready, 1 for a verdict against RFT, 3 when the reward failed
    (`EXIT_CODES`; scriptable as a gate)."""
    import json

    from tunesmith.data.formats import read_examples
    from tunesmith.models.loading import resolve_ref
    from tunesmith.recipe.resolve import locate_data
    from tunesmith.rewards import RewardFailureError
    from tunesmith.runs import atomic_write_json

    path = locate_data(data, None)
    rows = [example.to_row() for example in read_examples(path, "rft")]
    resolve_ref(model)  # a missing model: the loader's one-line error before any work
    if max_new_tokens is None:
        max_new_tokens, why = default_max_new_tokens(model, rows)
        print(f"max_new_tokens {max_new_tokens}: {why}", file=sys.stderr)
    settings = ProbeSettings(
        prompts=prompts,
        generations=generations,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
    )
    try:
        report = probe_rows(model, rows, reward, settings).to_dict()
    except RewardFailureError as err:  # the endpoint could not be reached at all: nothing was scored
        raise RewardFailureError(str(err), exit_code=EXIT_CODES["reward_failed"]) from None
    if out:
        atomic_write_json(Path(out), report)
    print(json.dumps(report, indent=2) if fmt == "json" else render_report(report))
    return EXIT_CODES[report["verdict"]]
