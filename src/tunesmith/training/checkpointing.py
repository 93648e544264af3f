"""Activation memory: recompute it (gradient checkpointing) or run each micro-batch in chunks.

Training keeps every layer's activations from the forward pass for the backward pass. Gradient
checkpointing (TRL's default, `SFTConfig.gradient_checkpointing=True`) keeps only each layer's input and
recomputes the rest during the backward pass: about one more forward pass, a third of a step's compute
([chen-2016]). Running a micro-batch as several forward/backward passes over its rows ("chunks") bounds
the same memory without recomputing anything, and gives the same gradient: every chunk's loss is its
share of the step's summed token losses (`num_items_in_batch`), so the chunks' gradients add up to the
micro-batch's.

The rule (`decide`), in one place:

- `hyperparameters.gradient_checkpointing: true` / `false` decides.
- `auto`: off in a single process on CPU. There a step is compute-bound and memory is host RAM, so the
  recomputation is pure cost. Measured on the 30M Llama stand-in (issue 18, packed micro-batches of 16,
  2 cores): checkpointing 2.50 s a step and 1.16-1.20 GB peak RSS; no checkpointing, one row per chunk:
  1.93-2.06 s and 1.10 GB; no checkpointing, no chunks: 1.78-1.82 s but 1.64 GB.
- `auto` keeps checkpointing on a GPU (memory, not compute, is what runs out there, and small chunks
  would leave the device idle) and with several processes (a chunk's backward pass would synchronize
  gradients across processes once per chunk).

A chunk holds whole rows (a packed row, or one padded example; `rows_per_chunk`): as many as
`CHUNK_BYTES` of activations hold at the model's size (`activation_bytes_per_token`), or as many as
checkpointing itself would keep memory for (each layer's input for every token, plus one layer's
activations while it is recomputed) if that is more; at least one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunesmith.data.packing import model_sizes

CHUNK_BYTES = 64 * 2**20
"""Activations one chunk may hold (bytes) when checkpointing would hold less: on the tiny family a whole
packed micro-batch of 64 (~5k token slots) is ~4 chunks; below ~1k token slots per pass the per-pass
overhead shows (measured: one row of 256 per pass, 0.73-0.87 s a step against 0.61-0.63 s at 4 passes)."""


@dataclass(frozen=True)
class CheckpointingDecision:
    """Whether a stage recomputes activations, and why (printed on the stage's first lines)."""

    checkpointing: bool
    reason: str

    def describe(self) -> str:
        state = "on" if self.checkpointing else "off"
        return f"gradient checkpointing {state} ({self.reason})"


def decide(
    setting: bool | str | None, cuda: bool, processes: int, chunked: bool = True
) -> CheckpointingDecision:
    """The rule: the recipe's `hyperparameters.gradient_checkpointing`, else (auto) off in one CPU process.
    `chunked`: whether the technique runs its micro-batches in chunks without checkpointing (CPT and SFT do;
    RFT's trainer does not split its micro-batches of completions, so it keeps their activations whole)."""
    kept = "micro-batches run in chunks" if chunked else "every micro-batch's activations kept whole"
    if isinstance(setting, bool):
        how = kept if not setting else "activations recomputed in the backward pass"
        return CheckpointingDecision(setting, f"hyperparameters.gradient_checkpointing; {how}")
    if cuda:
        return CheckpointingDecision(True, "auto: on a GPU memory is what runs out")
    if processes > 1:
        return CheckpointingDecision(
            True, f"auto: {processes} processes synchronize gradients per backward pass"
        )
    if not chunked:
        return CheckpointingDecision(
            False, f"auto: one CPU process, where recomputing costs compute and memory is host RAM; {kept}"
        )
    return CheckpointingDecision(
        False,
        "auto: one CPU process; micro-batches run in chunks of rows instead of recomputing activations, "
        "same gradients, about a quarter less compute",
    )


def activation_bytes_per_token(config: Any, bytes_per_value: int = 4) -> tuple[float, float] | None:
    """(bytes a token keeps across all layers without checkpointing, bytes it keeps with checkpointing).

    Per layer and token a decoder layer keeps about 10 x hidden values (norms, q/k/v and rotary outputs,
    attention output, residuals) and 4 x intermediate (gate, up, activation, product); checkpointing keeps
    the layer's input (hidden values) for every layer, and one layer's full activations while it is
    recomputed. None when the config lacks the sizes."""
    sizes = model_sizes(config)
    if sizes is None:
        return None
    layer = (10 * sizes.hidden + 4 * sizes.inner) * bytes_per_value
    return sizes.layers * layer, sizes.layers * sizes.hidden * bytes_per_value + layer


def rows_per_chunk(rows: int, width: int, per_token: tuple[float, float] | None) -> int:
    """Rows of `width` token slots one forward/backward pass takes, for a micro-batch of `rows` rows: as
    many as `CHUNK_BYTES` of activations hold, or what checkpointing would keep for the whole micro-batch if
    that is more; at least one row (`rows`: no chunking; also when `per_token` is None)."""
    if per_token is None or rows <= 1:
        return rows
    without, with_checkpointing = per_token
    budget = max(CHUNK_BYTES, rows * width * with_checkpointing)
    return max(1, min(rows, int(budget // (width * without))))


def split_rows(inputs: dict[str, Any], per_chunk: int) -> list[dict[str, Any]]:
    """A collated micro-batch as chunks of `per_chunk` rows: every tensor whose first dimension is the
    row count is sliced, everything else (counts, flags) is shared."""
    rows = int(inputs["input_ids"].shape[0])
    return [
        {
            key: value[start : start + per_chunk]
            if getattr(value, "ndim", 0) > 0 and value.shape[0] == rows
            else value
            for key, value in inputs.items()
        }
        for start in range(0, rows, per_chunk)
    ]
