"""Chat templates for training: every assistant turn of a conversation carries loss, nothing else does.

SFT learns the tokens the model must produce after the prompt it sees at inference, in every assistant turn
of a multi-turn conversation (not only the last one). Which tokens those are depends on the model's chat
template; three cases, most specific first:

1. **The template marks its assistant turns** with `{% generation %}` (the tiny family's): transformers'
   `apply_chat_template(return_assistant_tokens_mask=True)` gives the mask.
2. **TRL ships a training variant of the template** (Qwen3's `qwen3.jinja` -> `qwen3_training.jinja`:
   markers added, and every turn keeps its `<think>` block, so an earlier turn renders the same whatever
   follows it): the variant is TRL's `get_training_chat_template`, the function TRL's SFTTrainer calls for
   `assistant_only_loss`, then case 1 with it.
3. **Neither** (Llama 3.2 Instruct's template): the mask is found by rendering. Turn i's tokens are what
   `render(messages[: i + 1])` adds to `render(messages[:i], add_generation_prompt=True)`: exactly what the
   model writes after its inference prompt, end-of-turn token included. That needs a template whose earlier
   turns render the same in the longer conversation (prefix-preserving); a conversation where it does not is
   a one-line `ModelError`, never a silent loss of turns.

`reasoning` is the recipe's thinking switch (`ResolvedConfig.reasoning`): it is passed to the template as
`enable_thinking` (Qwen3's name; templates without the switch ignore it), here as in generation
(`tunesmith.models.generate.render_prompt`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunesmith.errors import ModelError

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class TrainingTemplate:
    """The template SFT renders with, and how its assistant tokens are found."""

    text: str  # the jinja template
    source: str  # "own" (markers in the tokenizer's template), "trl" (TRL's training variant), "rendered"

    @property
    def marked(self) -> bool:
        return self.source != "rendered"


def thinking_kwargs(reasoning: bool | None) -> dict[str, bool]:
    """The template variable of the thinking switch (None: the template's own default)."""
    return {} if reasoning is None else {"enable_thinking": reasoning}


def training_template(tokenizer: Any) -> TrainingTemplate:
    """The template SFT trains with (see the module docstring); a tokenizer without a chat template is a
    one-line `ModelError` (SFT data are conversations)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named variants: the default one is the chat template
        template = template.get("default")
    if not template:
        raise ModelError(
            "the model's tokenizer has no chat template, and SFT renders conversations with it — start SFT "
            "from an instruct (post-trained) checkpoint, or add a chat_template to its tokenizer_config.json"
        )
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(template):
        return TrainingTemplate(template, "own")

    try:
        variant = get_training_chat_template(tokenizer)
    except ValueError:  # TRL has no training variant of this template
        return TrainingTemplate(template, "rendered")
    return TrainingTemplate(variant or template, "trl" if variant else "own")


def tokenize_conversation(
    tokenizer: Any, messages: Messages, template: TrainingTemplate, *, reasoning: bool | None
) -> dict[str, list[int]]:
    """`input_ids` of the whole conversation and `assistant_masks` (1 on every assistant turn's tokens)."""
    extra = thinking_kwargs(reasoning)
    if template.marked:
        out = tokenizer.apply_chat_template(
            messages,
            chat_template=template.text,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
            **extra,
        )
        input_ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    else:
        text, spans = assistant_spans(tokenizer, messages, template.text, extra)
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        input_ids = list(encoded["input_ids"])
        mask = [
            int(any(start < end_span and end > start_span for start_span, end_span in spans))
            for start, end in encoded["offset_mapping"]
        ]
    if not any(mask):  # the trainer would drop the conversation silently: a template fault, said once
        raise ModelError(
            "the chat template marks no assistant token in a conversation that has an assistant turn — check "
            "the {% generation %} / {% endgeneration %} markers of the model's chat_template "
            "(tokenizer_config.json)"
        )
    return {"input_ids": input_ids, "assistant_masks": mask}


def assistant_spans(
    tokenizer: Any, messages: Messages, template: str, extra: dict[str, Any]
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant turn (case 3)."""

    def render(part: Messages, prompt: bool) -> str:
        return tokenizer.apply_chat_template(
            part, chat_template=template, tokenize=False, add_generation_prompt=prompt, **extra
        )

    text = render(messages, False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        head, turn = render(messages[:index], True), render(messages[: index + 1], False)
        if not (turn.startswith(head) and text.startswith(turn)):
            raise ModelError(
                f"the chat template renders assistant turn {index} of a conversation differently once later "
                "turns follow (not prefix-preserving), so its tokens cannot be told apart — add "
                "{% generation %} / {% endgeneration %} around the assistant output in the template "
                "(tokenizer_config.json chat_template), or train on single-turn conversations"
            )
        spans.append((len(head), len(turn)))
    return text, spans
