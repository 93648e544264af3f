"""Direct preference optimization (DPO, [rafailov-2023]): preference pairs move the policy toward the chosen
answer and away from the rejected one, with beta holding it near the reference model.

Data: `{"prompt", "chosen", "rejected"}` or the service's Bedrock candidates form
(`tunesmith.data.formats.preference`), written to train.jsonl in TRL's conversational preference form. The
reference model is the stage's input: with LoRA, TRL's DPOTrainer scores it with the adapter disabled; at full
rank it keeps a frozen copy of the model as loaded. No general data is mixed in (no general preference pairs
are built in: `defaults`, data_mixing); the forgetting probe and the forgetting table measure what DPO costs.

The trainer is TRL's `DPOTrainer` with the playbook schedule (and LoRA+ groups when set). The best checkpoint
has the lowest validation DPO loss (the held-out pairs' -log sigmoid of the reward margin); TRL logs each
validation's reward accuracy (`eval_rewards/accuracies`: the share of held-out pairs whose implicit reward
prefers the chosen answer) and margin beside it, which `metrics.jsonl` keeps.
"""

from __future__ import annotations

from typing import Any, Literal

from trl import DPOConfig, DPOTrainer

from tunesmith.threads import configure_threads
from tunesmith.training.callbacks import Selection
from tunesmith.training.schedule import PlaybookSchedule
from tunesmith.training.stage import Datasets, StageResult, StageRun, TrainerInputs, run_stage


class PreferenceTrainer(PlaybookSchedule, DPOTrainer):
    """TRL's DPOTrainer with the playbook schedule."""


class DPO:
    """The DPO technique (`stage.Technique`)."""

    name = "dpo"
    selection = Selection(metric="eval_loss", higher_is_better=False)
    watch: Literal["loss", "reward"] = "loss"
    batch_counts = "examples"
    chunks_micro_batches = False  # DPOTrainer keeps each micro-batch whole (chosen and rejected together)

    def build_datasets(self, run: StageRun, tokenizer: Any) -> Datasets:
        return Datasets.from_stage_files(run)

    def build_trainer(self, run: StageRun, datasets: Datasets, inputs: TrainerInputs) -> PreferenceTrainer:
        hp = run.stage.hyperparameters
        args = DPOConfig(
            **inputs.args,
            per_device_train_batch_size=hp.micro_batch_size,
            per_device_eval_batch_size=hp.micro_batch_size,
            max_length=hp.max_length,
            beta=run.stage.dpo.beta,
        )
        return PreferenceTrainer(
            model=inputs.model,
            args=args,
            train_dataset=datasets.train,
            eval_dataset=datasets.validation,
            **inputs.trainer_kwargs,
        )

    def close(self) -> None:
        pass

    def summarize(self, run: StageRun) -> dict[str, Any]:
        return {"threads": configure_threads(announce=False).describe()}


def run(stage_run: StageRun) -> StageResult:
    return run_stage(stage_run, DPO())
