"""Supervised fine-tuning (SFT): loss on the assistant's tokens only, in every assistant turn.

Data: Bedrock-conversation or OpenAI-chat demonstrations, blended with general demonstrations (always with
`reasoning-instruction-following`, [nova-hpo-blog]). Each conversation is tokenized here with its
assistant mask (`tunesmith.models.templates`: the template's own `{% generation %}` markers, TRL's training
variant of the template, or the mask found by rendering), with the recipe's thinking switch
(`ResolvedConfig.reasoning`); TRL's SFTTrainer turns the mask into labels. The trainer is CPT's
(`cpt.py`).
"""

from __future__ import annotations

from typing import Any

from tunesmith.models.templates import TrainingTemplate, tokenize_conversation, training_template
from tunesmith.training.callbacks import Selection
from tunesmith.training.cpt import CPT
from tunesmith.training.stage import Datasets, StageResult, StageRun, run_stage


def tokenize_conversations(dataset: Any, tokenizer: Any, template: TrainingTemplate, reasoning: bool) -> Any:
    """A `messages` dataset -> `input_ids` + `assistant_masks` (what SFTTrainer turns into labels)."""

    def tokenize(row: dict[str, Any]) -> dict[str, list[int]]:
        return tokenize_conversation(tokenizer, row["messages"], template, reasoning=reasoning)

    return dataset.map(tokenize, remove_columns=dataset.column_names)


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
        template = training_template(tokenizer)
        reasoning = run.recipe.reasoning(run.stage)
        train = tokenize_conversations(datasets.train, tokenizer, template, reasoning)
        validation = datasets.validation
        if validation is not None:
            validation = tokenize_conversations(validation, tokenizer, template, reasoning)
        return Datasets(train, validation)


def run(stage_run: StageRun) -> StageResult:
    return run_stage(stage_run, SFT())
