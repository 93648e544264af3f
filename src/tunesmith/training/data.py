"""A stage's training and validation data: the user's file blended with general data, materialized once.

The mixture (`tunesmith.data.mixing`) is streamed into `<stage>/data/train.jsonl` in training order (the
trainer reads it sequentially: the mix's interleaving and quality tail *are* the order), with exactly
`total_steps x global_batch_size` examples, so a resumed run reads the very same file. The realized mix
is stored as `<stage>/data/mix.json` and printed as a table; each row's origin (the user's file and line, or
the general category and row) as `<stage>/data/origins.bin` (`tunesmith.data.origins`, for spike tracing).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tunesmith.data.formats import read_examples
from tunesmith.data.mixing import (
    GENERAL_ROW_KIND,
    CustomerData,
    MixReport,
    MixSpec,
    Source,
    builtin_general_sources,
    file_source,
    mix,
)
from tunesmith.data.origins import OriginsWriter
from tunesmith.data.snapshot import DataSnapshot
from tunesmith.recipe.resolve import locate_data
from tunesmith.recipe.schema import ResolvedStage


@dataclass
class StageDataFiles:
    train_file: Path
    validation_file: Path | None
    train_examples: int
    validation_examples: int
    mix_report: dict[str, Any] | None


GENERAL_MARKER = "general_category"
"""RFT rows from the general mix carry their category under this key (see `tunesmith.training.rft`)."""


def row_for_trainer(example: Any, kind: str) -> dict[str, Any]:
    """CPT -> {"text"}; SFT -> {"messages"} (OpenAI chat form, system first when present); RFT -> {"prompt",
    "reference_answer", **extra}. A message's
    `reasoning_content` (Bedrock `reasoningContent`) is kept: chat templates that render reasoning use it."""
    if kind == "cpt":
        return {"text": example.text if example.text is not None else example.render_text()}
    if kind == "dpo":  # {"prompt", "chosen", "rejected"} in TRL's conversational form
        return example.to_row()
    if kind == "rft":  # {"prompt", "reference_answer"?, **extra}: extra fields go to the reward
        row = example.to_row()
        if example.source != "customer":  # a general prompt mixed in: scored by the general verifier
            row[GENERAL_MARKER] = example.source.removeprefix("general:")
        return row
    messages = []
    for m in example.messages or []:
        message = {"role": m["role"], "content": m["content"]}
        if m.get("reasoning_content"):
            message["reasoning_content"] = m["reasoning_content"]
        messages.append(message)
    return {"messages": messages}


def _write_rows(path: Path, rows: Any) -> int:
    """Stream rows to a JSONL file, atomically (temp file + rename); returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return count


def prepare_stage_data(
    stage: ResolvedStage,
    *,
    stage_dir: Path,
    total_examples: int,
    seed: int,
    base_dir: Path | None = None,
    quiet: bool = False,
    tokenizer: Any = None,
    snapshot: DataSnapshot | None = None,
    start_model: str | Path | None = None,
    reasoning: bool = False,
) -> StageDataFiles:
    """Build (or reuse, when resuming) the stage's mixed training file and its validation file.

    `snapshot` is the training file's snapshot from `resolve()` (`StagePlan.train_data`): the mix takes its
    counts instead of pre-scanning the file again. With `data_mixing.unit: tokens` the shares count tokens
    (measured with `tokenizer`, one pass of its own); the mix then holds about `total_examples x mean tokens
    per customer example` tokens. `start_model` is the recipe's start (self-replay answers come from it; see
    `tunesmith.training.replay`) and `reasoning` the stage's thinking switch for generating them."""
    kind = stage.technique
    data_dir = stage_dir / "data"
    train_file = data_dir / "train.jsonl"
    validation_file = data_dir / "validation.jsonl" if stage.data.validation else None
    mix_file = data_dir / "mix.json"
    if train_file.exists() and (validation_file is None or validation_file.exists()):
        report = json.loads(mix_file.read_text()) if mix_file.exists() else None
        return StageDataFiles(
            train_file,
            validation_file,
            _count_lines(train_file),
            _count_lines(validation_file) if validation_file else 0,
            report,
        )

    customer_path = locate_data(stage.data.train, base_dir)
    mixing = stage.data_mixing
    general = dict(mixing.general)
    quality_file = str(locate_data(mixing.quality_file, base_dir)) if mixing.quality_file else None
    customer = None
    if mixing.customer_percent > 0:
        if snapshot is not None and mixing.unit == "examples":
            assert snapshot.path == customer_path, (snapshot.path, customer_path)
            customer = CustomerData.from_snapshot(snapshot, quality_file=quality_file)
        else:
            customer = CustomerData(customer_path, kind, quality_file=quality_file)
    unfiled = [c for c in general if c not in mixing.general_sources]
    if mixing.general_data == "curated":
        from tunesmith.data.curated.load import curated_sources

        sources = curated_sources(unfiled, kind, mirror=mixing.general_mirror, seed=seed) if unfiled else {}
    elif mixing.general_data == "self":
        sources, general = self_replay_sources(
            start_model, mixing, unfiled, kind, seed=seed, reasoning=reasoning, quiet=quiet
        )
    else:
        sources = builtin_general_sources(unfiled, kind, seed=seed) if unfiled else {}
    for category, ref in mixing.general_sources.items():
        if category in general:
            sources[category] = file_source(category, locate_data(ref, base_dir), kind, seed=seed)
    spec = replace(MixSpec.from_mixing(mixing), general=general)
    length = None
    total = total_examples
    if spec.unit == "tokens":
        from tunesmith.data.inspect import example_length_fn

        assert tokenizer is not None, "a token-unit mix needs the stage's tokenizer"
        length = example_length_fn(tokenizer)
        if customer is not None:
            customer.scan(length)
            total = round(total_examples * customer.tokens / max(1, customer.count))
    mixture = mix(customer, sources, spec, seed=seed, total=total, length=length, kind=kind)
    # each row's origin (file:line or general category + row) for spike tracing; saved before train.jsonl
    origins = OriginsWriter(data_dir).track(mixture)
    count = _write_rows(train_file, (row_for_trainer(example, kind) for example in origins))
    report: MixReport = mixture.report
    report.save(mix_file)
    if not quiet:
        print(report.render_table())
    validation_count = 0
    if validation_file is not None:
        rows = [
            row_for_trainer(e, kind)
            for e in read_examples(locate_data(stage.data.validation, base_dir), kind)
        ]
        if mixing.general_data not in ("curated", "self"):  # those: the customer's validation rows only
            rows += general_validation_rows(
                len(rows), mixing.customer_percent, {c: general[c] for c in unfiled}, kind, seed=seed
            )
        validation_count = _write_rows(validation_file, rows)
    return StageDataFiles(train_file, validation_file, count, validation_count, report.to_dict())


def self_replay_sources(
    start_model: str | Path | None,
    mixing: Any,
    categories: list[str],
    kind: str,
    *,
    seed: int,
    reasoning: bool,
    quiet: bool,
) -> tuple[dict[str, Source], dict[str, float]]:
    """Mix sources of the start model's kept replay answers (generated now, or read from the cache) and the
    general shares after categories with too few kept answers are left out (`tunesmith.data.self_replay`)."""
    from tunesmith.data.self_replay import ReplaySettings, replay_sources, surviving_shares
    from tunesmith.training.replay import ensure_replay

    shares = dict(mixing.general)
    if not categories:
        return {}, shares
    assert start_model is not None, "general_data: self needs the recipe's start model"
    settings = ReplaySettings.for_stage(mixing, reasoning)
    _, tallies = ensure_replay(start_model, categories, settings, seed=seed, quiet=quiet)
    shares, lines = surviving_shares(shares, {c: t.kept for c, t in tallies.items()})
    for line in lines:
        print(line, file=sys.stderr)
    return replay_sources(tallies, shares, kind, seed=seed), shares


#: seed offset of the general validation rows: a stream apart from the training streams (seed + 1000 x pass)
VALIDATION_SEED_OFFSET = 1_000_003


def general_validation_rows(
    customer_rows: int, customer_percent: float, general: dict[str, float], kind: str, *, seed: int
) -> list[dict[str, Any]]:
    """General examples to add to the validation set in the training mix's shares.

    Checkpoint selection by validation loss on the user's data alone picks checkpoints in the middle of a
    general-skill dip (measured on the tiny family, 50% mix, full rank: best-by-domain-loss checkpoint at
    step 160 retained 87% of general accuracy, the final one 97%). Validating on the mix makes the best
    checkpoint the one that is best on what the run is asked to do: the domain AND the general data. Rows
    come from the built-in streams' training split with their own seed (the evaluation split stays unseen).
    """
    from tunesmith.data import general as general_data
    from tunesmith.data.mixing import largest_remainder

    if not general or customer_percent >= 100 or customer_rows == 0 or sum(general.values()) <= 0:
        return []
    total_general = round(customer_rows * (100 - customer_percent) / customer_percent)
    counts = largest_remainder(total_general, general)
    from tunesmith.data.mixing import as_rft_prompt

    rows: list[dict[str, Any]] = []
    for category, n in counts.items():
        for row in general_data.sample(
            category, GENERAL_ROW_KIND[kind], n, seed=seed + VALIDATION_SEED_OFFSET
        ):
            if kind == "cpt":
                rows.append({"text": row["text"]})
            elif kind == "rft":
                prompt = as_rft_prompt(row)
                rows.append({"prompt": prompt["messages"], "reference_answer": prompt["reference_answer"],
                             GENERAL_MARKER: category})  # fmt: skip
            else:
                rows.append({"messages": row["messages"]})
    return rows


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())
