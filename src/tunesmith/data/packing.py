"""Packing short examples into `max_length` sequences without attention across example boundaries.

We use what TRL and transformers provide rather than a hand-written block mask:

- `trl.pack_dataset` (best-fit decreasing, "bfd") groups tokenized examples into rows of at most
  `max_length` tokens and records each row's example lengths in a `seq_lengths` column.
- TRL's padding-free collator (`DataCollatorForLanguageModeling(padding_free=True)`) flattens a batch
  and emits `position_ids` that restart at 0 for every example and no `attention_mask`.
- transformers (`masking_utils.find_packed_sequence_indices`) turns restarting `position_ids` into a
  block-diagonal causal mask for the sdpa/eager attention (and varlen kernels for flash attention), so a
  token never attends to another example. `tests/unit/test_data_packing.py` proves it: logits of an
  example are the same packed or alone.
- Caveat (transformers 5.x `masking_utils._preprocess_mask_arguments`): packed sequences are only detected
  when there is no `attention_mask` and no KV cache, so the forward pass must run with `use_cache=False`
  (SFTTrainer's `compute_loss` sets it; a custom loop must too).

What training uses (`InBatchPacking`, on when `decide_packing` says it pays): each micro-batch keeps its
examples (so steps, epochs, examples and tokens seen, validation batches are what they were unpacked), but
they are laid out in as few rows of the batch's longest length as first-fit decreasing allows, with
restarting `position_ids`, instead of one padded row each. Attention per row costs what the padded batch's
did; the padding it no longer computes is the gain. The loss is the same: the labels that cross an example
boundary are -100 and transformers' `num_items_in_batch` counts `labels[..., 1:]`
(`tests/unit/test_packing_training.py`, within 1e-4 through the trainer).

For SFT with `SFTTrainer`, `sft_packing_config(max_length)` gives the `SFTConfig` fields that switch the
same machinery on (`packing=True`, `packing_strategy="bfd"`, `padding_free=True`). For CPT, documents
longer than `max_length` are split ("bfd_split") instead of truncated so no text is lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Strategy = Literal["bfd", "bfd_split"]

TOKENS_KEY = "packed_tokens"
"""The collator's count of real tokens in a packed batch: `num_input_tokens_seen` cannot tell padding from
an end-of-sequence token when the pad token is the eos token (Llama 3 has no pad token)."""

MIN_PADDING_SHARE = 0.2
"""Pack when padded micro-batches would spend at least this share (0-1) of their token slots on padding.
Below it the rows saved are few, and a packed batch still pays its mask and position bookkeeping."""


def default_strategy(kind: str) -> Strategy:
    """SFT keeps conversations whole (overflow truncated); CPT splits long documents (no token lost)."""
    return "bfd_split" if kind == "cpt" else "bfd"


def sft_packing_config(max_length: int, kind: str = "sft") -> dict[str, Any]:
    """Keyword arguments for `trl.SFTConfig` that pack without cross-example attention."""
    return {
        "packing": True,
        "packing_strategy": default_strategy(kind),
        "padding_free": True,
        "max_length": max_length,
    }


def pack_sequences(
    sequences: Iterable[Sequence[int]] | Any,
    max_length: int,
    *,
    strategy: Strategy = "bfd",
    labels: Iterable[Sequence[int]] | None = None,
) -> Any:
    """Pack tokenized examples (lists of token ids, or a `datasets.Dataset` with `input_ids`) into rows of
    at most `max_length` tokens. Returns a `datasets.Dataset` with `input_ids` (+ `labels`) and
    `seq_lengths` (the example lengths of each row), ready for `packed_collator`."""
    from datasets import Dataset
    from trl import pack_dataset

    if max_length <= 0:
        raise ValueError(f"max_length must be positive, not {max_length}")
    if isinstance(sequences, Dataset):
        dataset = sequences
    else:
        columns: dict[str, list[list[int]]] = {"input_ids": [list(ids) for ids in sequences]}
        if labels is not None:
            columns["labels"] = [list(ids) for ids in labels]
        dataset = Dataset.from_dict(columns)
    return pack_dataset(dataset, max_length, strategy=strategy)


def packed_collator(pad_token_id: int) -> Any:
    """TRL's padding-free collator: one flattened row per batch, `position_ids` restarting per example,
    labels of each example's first token masked (-100), no `attention_mask`."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=True)


def packing_efficiency(seq_lengths: Iterable[Sequence[int]], max_length: int) -> float:
    """Share (0-1) of the `max_length` slots of packed rows that hold real tokens."""
    rows = [sum(lengths) for lengths in seq_lengths]
    return sum(rows) / (len(rows) * max_length) if rows else 0.0


# --------------------------------------------------------------------------------------------- in-batch packing


def expected_padding_share(lengths: Sequence[int], micro_batch_size: int) -> float:
    """Share (0-1) of token slots that padding fills when `micro_batch_size` examples drawn at random from
    `lengths` are padded to their longest: 1 - mean length / E[longest of the batch]. With the lengths
    sorted, P(longest <= L_i) = (i/n)^b, so E[longest] = sum_i L_i ((i/n)^b - ((i-1)/n)^b). Order-free, so
    `plan` (a sample of your file) and training (the whole mix) apply the same formula."""
    import numpy as np

    ordered = np.sort(np.asarray(lengths, dtype=np.float64))
    n = len(ordered)
    if n == 0 or micro_batch_size <= 1:
        return 0.0
    rank = np.arange(n + 1, dtype=np.float64) / n
    expected_longest = float((ordered * np.diff(rank**micro_batch_size)).sum())
    return max(0.0, 1 - float(ordered.mean()) / expected_longest) if expected_longest > 0 else 0.0


@dataclass(frozen=True)
class PackingDecision:
    """Whether a stage packs its micro-batches, and why (shown by `plan` and on the stage's first line)."""

    pack: bool
    padding_share: float  # expected share (0-1) of padded token slots without packing
    micro_batch_size: int
    examples: int  # lengths the decision was taken on
    forced: bool  # the recipe's `hyperparameters.packing` decided, not the lengths
    group: bool = False  # unpacked: steps of similar lengths (`length_grouped_steps`)

    def describe(self) -> str:
        state = "on" if self.pack else "off"
        padding = f"padding would fill {100 * self.padding_share:.0f}% of token slots"
        grouped = (
            f"; steps grouped by length within windows of {GROUP_WINDOW_STEPS} (hyperparameters.length_grouping)"
            if self.group
            else ""
        )
        if self.forced:
            return f"packing {state} (hyperparameters.packing; {padding}){grouped}"
        if self.micro_batch_size <= 1:
            return "packing off (micro_batch_size 1: nothing to pad)"
        rule = ">=" if self.pack else "<"
        return (
            f"packing {state} ({padding} at micro_batch_size {self.micro_batch_size} over {self.examples} "
            f"examples, {rule} {100 * MIN_PADDING_SHARE:.0f}%){grouped}"
        )


def decide_packing(
    lengths: Sequence[int], micro_batch_size: int, setting: bool | None, grouping: bool | None = False
) -> PackingDecision:
    """The packing rule, in one place: `setting` True/False (the recipe's `hyperparameters.packing`) forces
    it; None (auto) packs when micro-batches of random examples would spend >= `MIN_PADDING_SHARE` of their
    token slots on padding. Unpacked, `grouping` (`hyperparameters.length_grouping`) True groups steps by
    length; None (auto) does when padding would pass the same share (packing was switched off where it
    would pay)."""
    share = expected_padding_share(lengths, micro_batch_size)
    pays = micro_batch_size > 1 and share >= MIN_PADDING_SHARE
    pack = setting if setting is not None else pays
    group = not pack and (grouping if grouping is not None else pays)
    return PackingDecision(pack, share, micro_batch_size, len(lengths), setting is not None, bool(group))


def first_fit_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` grouped into rows of at most `capacity` tokens (first-fit decreasing), each row
    in the examples' original order."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for row, free in enumerate(room):
            if lengths[index] <= free:
                rows[row].append(index)
                room[row] -= lengths[index]
                break
        else:
            rows.append([index])
            room.append(capacity - lengths[index])
    return [sorted(row) for row in rows]


@dataclass(frozen=True)
class ModelSizes:
    """The sizes of a decoder's text stack that its per-token costs follow (`model_sizes`)."""

    hidden: int
    layers: int
    inner: int  # MLP width (4 x hidden when the config does not say)
    vocab: int
    heads: int
    kv_heads: int


def model_sizes(config: Any) -> ModelSizes | None:
    """A transformers config's text sizes (a multimodal config's text config); None when it lacks them."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    try:
        hidden, layers = int(text.hidden_size), int(text.num_hidden_layers)
        inner = int(getattr(text, "intermediate_size", None) or 4 * hidden)
        vocab = int(getattr(text, "vocab_size", 0) or 0)
        heads = int(getattr(text, "num_attention_heads", 1) or 1)
        kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    except (AttributeError, TypeError, ValueError):
        return None
    if hidden <= 0 or layers <= 0:
        return None
    return ModelSizes(hidden, layers, inner, vocab, heads, kv_heads)


def attention_cost(config: Any) -> float | None:
    """A context token's share of a token's training cost, so that a row of C tokens costs C (1 + a C) per
    layer stack: per token the weight matrices cost about 2 (q, o + k, v at their head share + 3 MLP
    matrices) x hidden x width FLOPs a layer plus the LM head, and attention 4 x C x hidden a layer (scores
    and their weighted sum; a masked kernel computes the whole C x C square). [kaplan-2020] counts the same
    terms. None when the config lacks the sizes (then rows are as long as the batch's longest example)."""
    sizes = model_sizes(config)
    if sizes is None:
        return None
    hidden = sizes.hidden
    projections = (2 + 2 * sizes.kv_heads / sizes.heads) * hidden * hidden + 3 * hidden * sizes.inner
    per_token = sizes.layers * 2 * projections + 2 * hidden * sizes.vocab
    return sizes.layers * 4 * hidden / per_token


CAPACITY_STEP = 1.06
"""Row capacities `row_capacity` tries, from the batch's longest example up: each 6% above the last."""


def row_capacity(lengths: Sequence[int], max_length: int | None, cost: float | None) -> int:
    """The row length that makes a packed micro-batch cheapest: rows(C) x C x (1 + cost x C) over
    capacities C from the longest example up to `max_length` (rows by first-fit decreasing). Longer rows
    hold more examples and leave less padding; their attention costs more per token. `cost` None or no
    room above the longest example: the longest example's length."""
    longest = max(lengths)
    if cost is None or max_length is None or max_length <= longest:
        return longest
    top = min(max_length, sum(lengths))
    candidates, capacity = [longest, top], float(longest)
    while capacity * CAPACITY_STEP < top:
        capacity *= CAPACITY_STEP
        candidates.append(int(capacity))
    ordered = sorted(lengths, reverse=True)

    def price(capacity: int) -> float:
        return _row_count(ordered, capacity) * capacity * (1 + cost * capacity)

    return min(candidates, key=lambda c: (price(c), c))


def _row_count(descending: Sequence[int], capacity: int) -> int:
    """Rows first-fit decreasing needs (lengths sorted longest first), without building them."""
    room: list[int] = []
    for length in descending:
        for row, free in enumerate(room):
            if length <= free:
                room[row] = free - length
                break
        else:
            room.append(capacity - length)
    return len(room)


@dataclass
class InBatchPacking:
    """A collator: one micro-batch of tokenized examples (`input_ids`, optional `labels` or loss mask) -> rows
    holding whole examples (first-fit decreasing), with `position_ids` that restart at every example and
    no `attention_mask` (transformers then masks block-causally). Rows are as long as `row_capacity`
    finds cheapest between the batch's longest example and `max_length`, given the model's
    `attention_cost` (None: the longest example's length). Each example's first label is -100 (it would
    be predicted from the previous example); padding has labels -100 and position 0 (every pad token is a
    sequence of its own). `TOKENS_KEY` holds the real token count (the trainer counts it as tokens seen
    and drops it before the forward pass)."""

    pad_token_id: int
    max_length: int | None = None
    attention_cost: float | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        ids = [list(example["input_ids"]) for example in examples]
        labels = [_labels(example) for example in examples]
        lengths = [len(x) for x in ids]
        capacity = row_capacity(lengths, self.max_length, self.attention_cost)
        rows = first_fit_rows(lengths, capacity)
        input_ids = torch.full((len(rows), capacity), self.pad_token_id, dtype=torch.long)
        row_labels = torch.full((len(rows), capacity), -100, dtype=torch.long)
        position_ids = torch.zeros((len(rows), capacity), dtype=torch.long)
        for row, members in enumerate(rows):
            offset = 0
            for index in members:
                end = offset + lengths[index]
                input_ids[row, offset:end] = torch.tensor(ids[index], dtype=torch.long)
                row_labels[row, offset:end] = torch.tensor(labels[index], dtype=torch.long)
                row_labels[row, offset] = -100
                position_ids[row, offset:end] = torch.arange(lengths[index])
                offset = end
        return {
            "input_ids": input_ids,
            "labels": row_labels,
            "position_ids": position_ids,
            TOKENS_KEY: torch.tensor(sum(lengths)),
        }


def _labels(example: dict[str, Any]) -> list[int]:
    """An example's labels: its `labels`, else its `input_ids` with the tokens outside its loss mask
    (`assistant_masks` from a chat template, `completion_mask` for prompt/completion rows; 0 = no loss) set
    to -100, as TRL's own collator does."""
    labels = list(example.get("labels", example["input_ids"]))
    mask = example.get("assistant_masks", example.get("completion_mask"))
    if mask is not None and "labels" not in example:
        labels = [label if keep else -100 for label, keep in zip(labels, mask, strict=True)]
    return labels


GROUP_WINDOW_STEPS = 16
"""Steps whose examples `length_grouped_steps` regroups: the examples of 16 consecutive steps are sorted by
length and cut into steps again. Within 16 steps the mix's order (its quality tail last) holds; on the
benchmark's mixed data (30% long examples) the padded token slots fall by about half."""


def length_grouped_steps(
    lengths: Sequence[int], examples_per_step: int, window_steps: int = GROUP_WINDOW_STEPS, seed: int = 0
) -> list[int]:
    """Training order with steps of similar lengths, for unpacked batches: within each window of
    `window_steps` consecutive steps, the examples sorted by length (ties: the earlier first) are cut into
    steps again, and the window's steps run in a seeded random order (so that long steps do not always come
    first). Unlike `length_sorted_steps` this changes which examples share a step (as transformers'
    `group_by_length` does), not which examples a window of steps trains on; every example is kept once."""
    import random

    rng = random.Random(seed)
    order: list[int] = []
    window = examples_per_step * max(1, window_steps)
    for start in range(0, len(lengths), window):
        indices = sorted(range(start, min(start + window, len(lengths))), key=lambda i: (-lengths[i], i))
        steps = [indices[i : i + examples_per_step] for i in range(0, len(indices), examples_per_step)]
        full = [s for s in steps if len(s) == examples_per_step]
        rng.shuffle(full)  # a short last step (the end of the data) stays last
        for step in full + steps[len(full) :]:
            order.extend(step)
    return order


def length_sorted_steps(lengths: Sequence[int], examples_per_step: int) -> list[int]:
    """Training order with length-grouped micro-batches that change no optimizer step: the examples stay in
    their windows of `examples_per_step` (one optimizer step each, all processes together), in order, and
    each window is sorted by length (longest first), so that the step's micro-batches hold similar
    lengths and pad (or pack) less. The step's examples, hence its loss (a sum over tokens / the step's
    token count), are the same; the data order (the mix's quality tail last) holds step by step."""
    order: list[int] = []
    for start in range(0, len(lengths), examples_per_step):
        window = range(start, min(start + examples_per_step, len(lengths)))
        order.extend(sorted(window, key=lambda i: (-lengths[i], i)))
    return order


def dataset_lengths(dataset: Any, column: str = "input_ids") -> list[int]:
    """Token count of every row of a tokenized `datasets.Dataset`, read column-wise (Arrow), in order."""
    import pyarrow.compute as pc

    lengths: list[int] = []
    for table in dataset.select_columns([column]).with_format("arrow").iter(batch_size=10_000):
        lengths.extend(pc.list_value_length(table[column]).to_pylist())
    return lengths
