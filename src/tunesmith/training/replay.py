"""Generating a self-replay set: the start model answers the bank's replay prompts, once per cache key.

The model-free half (which prompts, the cache key and entries, the filter, the shares, the mix sources) is
`tunesmith.data.self_replay`. This half loads the recipe's start model, generates greedy answers in batches
of `DEFAULT_BATCH_SIZE` behind a progress bar with an ETA (quiet: a line every 30 s), marks the answers
cut off at `max_new_tokens`, and stores the entry atomically; a second run with the same key reads it back
without loading the model.

Which model: the recipe's start model, for every stage. The general measurement compares each result with
the start, so replaying the start's answers asks every stage to stay where the recipe began (a later stage
replaying an earlier stage's answers would preserve whatever that stage already lost).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunesmith.data.self_replay import (
    CUT_OFF_SLACK,
    DEFAULT_BATCH_SIZE,
    CategoryTally,
    ReplayAnswer,
    ReplaySet,
    ReplaySettings,
    bank,
    cache_key,
    filter_answers,
    pick_items,
    read_cache,
    write_cache,
)

QUIET_SECONDS = 30.0
"""Quiet mode prints the generation's progress at most this often."""


def model_fingerprint(model_ref: str | Path) -> str:
    """The start model's content hash (a local folder's files; a Hub id's cached snapshot), as evaluation
    caches key on it (`tunesmith.evaluation.cache.checkpoint_hash`)."""
    from tunesmith.evaluation.cache import checkpoint_hash
    from tunesmith.models.loading import resolve_ref

    source, revision = resolve_ref(model_ref)
    return checkpoint_hash(source, revision)


def generate_replay(
    model_ref: str | Path,
    picked: Mapping[str, Sequence[dict[str, Any]]],
    settings: ReplaySettings,
    key: str,
    *,
    quiet: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ReplaySet:
    """Greedy answers of `model_ref` to every picked item (batched, with progress), stored under `key`."""
    import torch

    from tunesmith.models.generate import generate_batch, split_reasoning
    from tunesmith.models.loading import load_model, load_tokenizer

    items = [item for category_items in picked.values() for item in category_items]
    started = time.perf_counter()
    tokenizer = load_tokenizer(model_ref)
    model = load_model(model_ref, dtype=torch.float32)
    label = f"self-replay: {len(items)} answers of the start model"
    bar = None
    if not quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc=label, unit="prompt", dynamic_ncols=True, file=sys.stderr)
    else:
        print(f"{label} ...", flush=True)
    answers: list[ReplayAnswer] = []
    printed = time.monotonic()
    try:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            completions = generate_batch(
                model,
                tokenizer,
                [[{"role": "user", "content": item["prompt"]}] for item in batch],
                max_new_tokens=settings.max_new_tokens,
                batch_size=batch_size,
                reasoning=settings.reasoning,
            )
            for item, completion in zip(batch, completions, strict=True):
                reasoning, answer = split_reasoning(completion)
                length = len(tokenizer(completion, add_special_tokens=False)["input_ids"])
                answers.append(
                    ReplayAnswer(
                        id=item["id"],
                        category=item["category"],
                        prompt=item["prompt"],
                        answer=answer,
                        reasoning=reasoning,
                        cut_off=length >= settings.max_new_tokens - CUT_OFF_SLACK,
                    )
                )
            if bar is not None:
                bar.update(len(batch))
            elif time.monotonic() - printed >= QUIET_SECONDS:
                printed = time.monotonic()
                print(
                    f"self-replay: {len(answers)}/{len(items)} answers ({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
    finally:
        if bar is not None:
            bar.close()
    replay = ReplaySet(
        key, str(model_ref), settings.key_fields(), answers, seconds=time.perf_counter() - started
    )
    write_cache(replay)
    return replay


def ensure_replay(
    model_ref: str | Path,
    categories: Sequence[str],
    settings: ReplaySettings,
    *,
    seed: int,
    quiet: bool = False,
) -> tuple[ReplaySet, dict[str, CategoryTally]]:
    """The replay set of `categories` (read from the cache, else generated now) and what the filter kept
    per category; prints where the answers came from and the tally."""
    source = bank()
    picked = pick_items(categories, settings, seed, source)
    key = cache_key(model_fingerprint(model_ref), picked, settings)
    replay = read_cache(key)
    if replay is not None:
        if not quiet:
            print(f"self-replay: {len(replay.answers)} cached answers of the start model ({replay.path})")
    else:
        replay = generate_replay(model_ref, picked, settings, key, quiet=quiet)
        if not quiet:
            print(
                f"self-replay: generated {len(replay.answers)} answers in {replay.seconds:.0f} s, "
                f"cached in {replay.path}"
            )
    tallies = filter_answers(picked, replay.answers, source.score)
    if not quiet:
        for category, tally in tallies.items():
            print(f"  {category}: {tally.describe()}")
    return replay, tallies
