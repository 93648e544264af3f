"""Continued pre-training (CPT): next-token loss on ALL tokens of unlabeled domain text.

Data: `{"text"}` JSONL or .txt, blended with general text by category (`data_mixing`). Playbook: at most
one epoch of CPT data ([nova-hpo-blog]), and CPT on a pre-trained checkpoint must be followed by SFT
([nova-cpt-docs]). The trainer is TRL's SFTTrainer on a text dataset, which computes the language-modeling
loss on every token; `sft.py` uses the same trainer on conversations tokenized with their assistant masks.
"""

from __future__ import annotations

from typing import Any, Literal

from trl import SFTConfig, SFTTrainer

from tunesmith.training.callbacks import Selection
from tunesmith.training.schedule import PlaybookSchedule
from tunesmith.training.stage import Datasets, StageResult, StageRun, TrainerInputs, run_stage


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
        return Datasets(loaded["train"], loaded.get("validation"))

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
