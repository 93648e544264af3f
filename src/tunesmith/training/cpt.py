"""Continued pre-training (CPT): next-token loss on ALL tokens of unlabeled domain text.

Data: `{"text"}` JSONL or .txt, blended with general text by category (`data_mixing`). Playbook: at most
one epoch of CPT data ([nova-hpo-blog]), and CPT on a pre-trained checkpoint must be followed by SFT
([nova-cpt-docs]). The trainer is TRL's SFTTrainer on a text dataset, which computes the language-modeling
loss on every token; `sft.py` uses the same trainer on conversations tokenized with their assistant masks.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from trl import SFTConfig, SFTTrainer

from tunesmith.data.packing import (
    TOKENS_KEY,
    InBatchPacking,
    PackingDecision,
    attention_cost,
    dataset_lengths,
    decide_packing,
    length_grouped_steps,
    length_sorted_steps,
)
from tunesmith.errors import UserError
from tunesmith.threads import configure_threads
from tunesmith.training.callbacks import Selection
from tunesmith.training.checkpointing import (
    activation_bytes_per_token,
    rows_per_chunk,
    split_rows,
)
from tunesmith.training.schedule import PlaybookSchedule
from tunesmith.training.stage import (
    Datasets,
    StageResult,
    StageRun,
    TrainerInputs,
    checkpointing_decision,
    is_main_process,
    run_stage,
)
from tunesmith.training.trace import EXAMPLE_IDS, EXAMPLE_INDEX, StepTracer, with_example_index

DOCUMENT_SEPARATORS = ("<|endoftext|>", "<|end_of_text|>")
"""The document separators of the open families' pre-training (Qwen/GPT-2 style `<|endoftext|>`, Llama 3's
`<|end_of_text|>`): the token that ends a document, which an instruct tokenizer's eos (`<|im_end|>`,
`<|eot_id|>`: the end of a chat turn) is not."""


def document_separator(tokenizer: Any) -> str:
    """The token that ends each CPT document: the family's document separator when the tokenizer has it as a
    special token, else its eos (base models and the tiny family end documents with eos)."""
    special = set(tokenizer.all_special_tokens) | {
        token.content for token in getattr(tokenizer, "added_tokens_decoder", {}).values() if token.special
    }
    for token in DOCUMENT_SEPARATORS:
        if token in special:
            return token
    if tokenizer.eos_token is None:
        raise UserError(
            "the tokenizer has no eos token and no document separator (<|endoftext|>, <|end_of_text|>): CPT cannot "
            "mark where a document ends — set eos_token in the model folder's tokenizer_config.json"
        )
    return tokenizer.eos_token


class LMTrainer(PlaybookSchedule, SFTTrainer):
    """TRL's SFTTrainer with the playbook schedule (CPT and SFT stages); `train_order` (set by `CPT`): the
    example order to train in (`length_sorted_steps`), instead of the dataset's."""

    train_order: list[int] | None = None
    tracer: StepTracer | None = None  # spike tracing: gets each micro-batch's example indices
    activation_bytes: tuple[float, float] | None = None
    """Set without gradient checkpointing: `checkpointing.activation_bytes_per_token` of the model, which
    sizes the chunks each micro-batch runs in (`training_step`)."""

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = self.train_dataset if train_dataset is None else train_dataset  # columns removed: a copy
        if self.train_order is None or len(dataset) != len(self.train_order):
            return super()._get_train_sampler(train_dataset)
        return self.train_order  # a DataLoader takes any sized iterable of indices as its sampler

    def _track_num_input_tokens(self, inputs: dict[str, Any]) -> None:
        """Tokens seen of a packed batch: the collator's count (padding and eos may share an id)."""
        if TOKENS_KEY not in inputs or self.args.include_num_input_tokens_seen != "non_padding":
            return super()._track_num_input_tokens(inputs)
        tokens = torch.as_tensor(inputs[TOKENS_KEY], device=self.args.device, dtype=torch.int64)
        self.state.num_input_tokens_seen += self.accelerator.gather(tokens).sum().item()

    def _set_signature_columns_if_needed(self) -> None:
        """TRL's columns plus the example index (`trace.EXAMPLE_INDEX`), which the collator takes off."""
        super()._set_signature_columns_if_needed()
        if self._signature_columns is not None and EXAMPLE_INDEX not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, EXAMPLE_INDEX]

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        """One micro-batch; without gradient checkpointing, in chunks of rows (`checkpointing.rows_per_chunk`).
        Each chunk's loss is its summed token losses over the step's `num_items_in_batch` (TRL's
        `compute_loss`), so the chunks' gradients and losses add up to the micro-batch's. Without that count
        a loss would be a per-chunk mean: no chunking then."""
        examples = inputs.pop(EXAMPLE_IDS, None)  # the micro-batch's examples, for spike tracing
        if examples is not None and self.tracer is not None:
            self.tracer.add(examples)
        ids = inputs.get("input_ids")
        if self.activation_bytes is None or num_items_in_batch is None or getattr(ids, "ndim", 0) != 2:
            return super().training_step(model, inputs, num_items_in_batch)
        per_chunk = rows_per_chunk(int(ids.shape[0]), int(ids.shape[1]), self.activation_bytes)
        if per_chunk >= ids.shape[0]:
            return super().training_step(model, inputs, num_items_in_batch)
        losses = []  # a loop, not a comprehension: zero-argument super() needs the method's own frame
        for chunk in split_rows(inputs, per_chunk):
            losses.append(super().training_step(model, chunk, num_items_in_batch))
        return torch.stack(losses).sum()

    def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        inputs.pop(TOKENS_KEY, None)  # a count, not a model input (`_prepare_inputs` gave us a copy)
        return super().compute_loss(model, inputs, *args, **kwargs)


class CPT:
    """The CPT technique (`stage.Technique`): JSON datasets as mixed, TRL's SFTTrainer, lowest validation
    loss (perplexity is what CPT optimizes)."""

    name = "cpt"
    selection = Selection(metric="eval_loss", higher_is_better=False)
    watch: Literal["loss", "reward"] = "loss"
    batch_counts = "examples"
    chunks_micro_batches = True  # `LMTrainer.training_step`
    traces_rows = True  # the trainer reports each micro-batch's examples (`trace.StepTracer`)

    def __init__(self) -> None:
        self.packing: PackingDecision | None = None  # decided once, on the first attempt's tokenized data
        self._order: list[int] | None = None  # length-grouped micro-batches within each step (`_pack`)

    def build_datasets(self, run: StageRun, tokenizer: Any) -> Datasets:
        """The mixed train.jsonl (in training order) and validation.jsonl, as Hugging Face datasets; CPT's
        documents tokenized with the separator."""
        rows = Datasets.from_stage_files(run)
        if "text" not in rows.train.column_names:  # chat rows (SFT builds on these datasets)
            return rows
        loaded = {"train": rows.train, **({"validation": rows.validation} if rows.has_validation else {})}
        separator_id = tokenizer.convert_tokens_to_ids(document_separator(tokenizer))

        def tokenize(batch: dict[str, list[Any]]) -> dict[str, list[list[int]]]:
            return {"input_ids": [tokenizer(text)["input_ids"] + [separator_id] for text in batch["text"]]}

        # documents are tokenized here, so TRL keeps the separator (it would end each with the tokenizer's eos)
        tokenized = {
            split: data.map(tokenize, batched=True, remove_columns=data.column_names)
            for split, data in loaded.items()
        }
        return Datasets(tokenized["train"], tokenized.get("validation"))

    def build_trainer(self, run: StageRun, datasets: Datasets, inputs: TrainerInputs) -> LMTrainer:
        hp = run.stage.hyperparameters
        args = SFTConfig(
            **inputs.args,
            per_device_train_batch_size=hp.micro_batch_size,
            per_device_eval_batch_size=hp.micro_batch_size,
            train_sampling_strategy="sequential",  # the mixture's order is the training order (quality tail)
            shuffle_dataset=False,
            max_length=hp.max_length,
            packing=False,  # TRL's packing regroups examples into rows: steps would no longer count examples
            include_num_input_tokens_seen="non_padding",
        )
        trainer = LMTrainer(
            model=inputs.model,
            args=args,
            # each row's index in train.jsonl rides along for spike tracing (`trace.TracingCollator`)
            train_dataset=with_example_index(datasets.train) if inputs.tracer else datasets.train,
            eval_dataset=datasets.validation,
            **inputs.trainer_kwargs,
        )
        self._pack(run, trainer)
        if inputs.tracer is not None:
            trainer.tracer = inputs.tracer
            inputs.tracer.bind(trainer)  # wraps the collator chosen by `_pack`
        if not checkpointing_decision(run, self).checkpointing:
            trainer.activation_bytes = activation_bytes_per_token(trainer.model.config, 2 if args.bf16 else 4)
        return trainer

    def _pack(self, run: StageRun, trainer: LMTrainer) -> None:
        """Decide packing on the tokenized training set (TRL's prepared dataset: cached by `datasets`, so
        a rollback's or a resume's trainer does not tokenize again) and, when on, pack every micro-batch
        (training and validation alike, so validation batches hold the same examples as unpacked). With
        several micro-batches per step, each step's examples are grouped by length (`length_sorted_steps`)."""
        hp = run.stage.hyperparameters
        if self.packing is None:
            lengths = dataset_lengths(trainer.train_dataset)
            setting = None if hp.packing == "auto" else hp.packing
            grouping = None if hp.length_grouping == "auto" else hp.length_grouping
            self.packing = decide_packing(lengths, hp.micro_batch_size, setting, grouping)
            if self.packing.group:  # unpacked and padding would pay: steps of similar lengths
                self._order = length_grouped_steps(lengths, hp.global_batch_size, seed=hp.seed)
            elif hp.micro_batch_size < hp.global_batch_size:  # several micro-batches per step: group them
                self._order = length_sorted_steps(lengths, hp.global_batch_size)
            if not run.quiet and is_main_process():
                print(f"{run.stage.name}: {self.packing.describe()}", flush=True)
        trainer.train_order = self._order
        if self.packing.pack:
            tokenizer = trainer.processing_class
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            cost = attention_cost(trainer.model.config)
            trainer.data_collator = InBatchPacking(
                pad_token_id=pad, max_length=hp.max_length, attention_cost=cost
            )

    def close(self) -> None:
        pass

    def summarize(self, run: StageRun) -> dict[str, Any]:
        summary: dict[str, Any] = {"threads": configure_threads(announce=False).describe()}
        if self.packing is not None:
            summary["packing"] = {
                "on": self.packing.pack,
                "length_grouped": self.packing.group,
                "reason": self.packing.describe(),
            }
        return summary


def run(stage_run: StageRun) -> StageResult:
    return run_stage(stage_run, CPT())
