"""Supervised fine-tuning (SFT): loss on the assistant's tokens only.

Data: Bedrock-conversation or OpenAI-chat demonstrations, blended with general demonstrations (always with
`reasoning-instruction-following`, [nova-hpo-blog]). When the chat template marks assistant turns
(`{% generation %}`), every assistant turn of a conversation is learned (TRL `assistant_only_loss`);
otherwise each conversation becomes prompt -> last assistant turn (TRL `completion_only_loss`). The
trainer is CPT's (TRL's SFTTrainer, `cpt.py`) with that loss mask.
"""

from __future__ import annotations

from typing import Any

from tunesmith.training.callbacks import Selection
from tunesmith.training.cpt import CPT
from tunesmith.training.stage import Datasets, StageResult, StageRun, run_stage

GENERATION_MARKER = "{% generation %}"


def supports_assistant_masks(tokenizer: Any) -> bool:
    """Whether the chat template marks assistant turns (`{% generation %}`), as TRL's assistant_only_loss needs."""
    return GENERATION_MARKER in (getattr(tokenizer, "chat_template", None) or "")


def to_prompt_completion(row: dict[str, Any]) -> dict[str, Any]:
    """Conversation -> (prompt = everything before the last assistant turn, completion = that turn), for
    chat templates without assistant markers: TRL then computes the loss on the completion only."""
    messages = row["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return {"prompt": messages[:last], "completion": [messages[last]]}


class SFT(CPT):
    """The SFT technique (`stage.Technique`): CPT's datasets and trainer with the loss on answers only.

    Its best checkpoint has the highest validation token accuracy (TRL's `mean_token_accuracy`: the share of
    answer tokens the model ranks first), not the lowest validation loss. Measured on the tiny family
    (benchmarks/RESULTS.md, forgetting): the validation loss bottoms out mid-run and then rises as the model
    grows over-confident on the answers it gets wrong, while exact match keeps improving (domain 0.82 at the
    lowest-loss checkpoint, 0.935 at the last; validation loss 0.455 -> 0.623), and the lowest-loss pick sat
    in the mid-run general dip in most mixed runs measured; token accuracy peaks late, where exact match does.
    """

    name = "sft"
    selection = Selection(metric="eval_mean_token_accuracy", higher_is_better=True)

    def build_datasets(self, run: StageRun, tokenizer: Any) -> Datasets:
        datasets = super().build_datasets(run, tokenizer)
        if supports_assistant_masks(tokenizer):
            self.loss_options = {"assistant_only_loss": True}
            return datasets
        self.loss_options = {"completion_only_loss": True}
        train = datasets.train.map(to_prompt_completion, remove_columns=["messages"])
        validation = datasets.validation
        if validation is not None:
            validation = validation.map(to_prompt_completion, remove_columns=["messages"])
        return Datasets(train, validation)


def run(stage_run: StageRun) -> StageResult:
    return run_stage(stage_run, SFT())
