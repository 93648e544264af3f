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

For SFT with `SFTTrainer`, `sft_packing_config(max_length)` gives the `SFTConfig` fields that switch the
same machinery on (`packing=True`, `packing_strategy="bfd"`, `padding_free=True`). For CPT, documents
longer than `max_length` are split ("bfd_split") instead of truncated so no text is lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

Strategy = Literal["bfd", "bfd_split"]


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
