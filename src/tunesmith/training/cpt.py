"""Continued pre-training (CPT): next-token loss on ALL tokens of unlabeled domain text.

Data: `{"text"}` JSONL or .txt, blended with general text by category (`data_mixing`). Playbook: at most
one epoch of CPT data ([nova-hpo-blog]), and CPT on a pre-trained checkpoint must be followed by SFT
([nova-cpt-docs]). The trainer is TRL's SFTTrainer on a text dataset, which computes the language-modeling
loss on every token; `sft.py` uses the same trainer on conversations tokenized with their assistant masks.
"""

from __future__ import annotations

from typing import Any, Literal

from trl import SFTConfig, SFTTrainer

from tunesmith.errors import UserError
from tunesmith.training.callbacks import Selection
from tunesmith.training.schedule import PlaybookSchedule
from tunesmith.training.stage import Datasets, StageResult, StageRun, TrainerInputs, run_stage

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
    """TRL's SFTTrainer with the playbook schedule (CPT and SFT stages)."""


class CPT:
    """The CPT technique (`stage.Technique`): JSON datasets as mixed, TRL's SFTTrainer, lowest validation
    loss (perplexity is what CPT optimizes)."""

    name = "cpt"
    selection = Selection(metric="eval_loss", higher_is_better=False)
    watch: Literal["loss", "reward"] = "loss"
    batch_counts = "examples"

    def build_datasets(self, run: StageRun, tokenizer: Any) -> Datasets:
        """The mixed train.jsonl (in training order) and validation.jsonl, as Hugging Face datasets."""
        import datasets

        if run.quiet:
            datasets.disable_progress_bars()
        files = {"train": str(run.data.train_file)}
        if run.data.validation_file is not None:
            files["validation"] = str(run.data.validation_file)
        loaded = datasets.load_dataset(
            "json", data_files=files, cache_dir=str(run.stage_dir / "data" / ".hf-cache")
        )
        if "text" not in loaded["train"].column_names:  # chat rows (SFT builds on these datasets)
            return Datasets(loaded["train"], loaded.get("validation"))
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
            packing=False,
            include_num_input_tokens_seen="non_padding",
        )
        return LMTrainer(
            model=inputs.model,
            args=args,
            train_dataset=datasets.train,
            eval_dataset=datasets.validation,
            **inputs.trainer_kwargs,
        )

    def close(self) -> None:
        pass

    def summarize(self, run: StageRun) -> dict[str, Any]:
        return {}


def run(stage_run: StageRun) -> StageResult:
    return run_stage(stage_run, CPT())
