"""The tiny family's tokenizer: character level, built instantly, no training.

Vocabulary: 8 special tokens, then printable ASCII (space to `~`) and the newline — 104 tokens. A
character-level WordLevel tokenizer is what [tiny-feasibility] measured (`generate`,
`save_pretrained`, PEFT and TRL `SFTTrainer` all work with it).

Chat format (the `chat_template`), one turn per role, each turn ended by the eos token `</s>`::

    <s><|user|>Compute 2 + 3.</s><|assistant|>5</s>

The assistant content and its `</s>` sit inside `{% generation %}` markers, so
`apply_chat_template(..., return_assistant_tokens_mask=True)` marks exactly the tokens the model must
learn, which is what TRL's `assistant_only_loss=True` needs (TRL checks both the markers and that the
end-of-turn token is inside them: trl/chat_template_utils.py `is_chat_template_stop_token_trained`).
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SYSTEM, USER, ASSISTANT = "<|system|>", "<|user|>", "<|assistant|>"
EXTRA = "<|extra|>"  # reserved (keeps the special block at 8 tokens)
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK, SYSTEM, USER, ASSISTANT, EXTRA)
CHARACTERS: tuple[str, ...] = tuple(chr(c) for c in range(32, 127)) + ("\n",)

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "<|assistant|>{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}"
    "{%- else -%}"
    "<|{{ message['role'] }}|>{{ message['content'] }}{{ eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


def vocabulary() -> dict[str, int]:
    """token -> id: specials first (pad = 0), then the characters."""
    return {token: index for index, token in enumerate(SPECIAL_TOKENS + CHARACTERS)}


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """The character-level tokenizer with its chat template (deterministic, no training)."""
    backend = Tokenizer(models.WordLevel(vocab=vocabulary(), unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    bos_id = vocabulary()[BOS]
    backend.post_processor = processors.TemplateProcessing(  # like Llama: plain text starts with <s>
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        additional_special_tokens=[SYSTEM, USER, ASSISTANT, EXTRA],
        padding_side="left",
        model_max_length=256,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


class ChatEncoder:
    """Fast id encoding of the chat format for the builder (equal to `apply_chat_template`; tested).

    Rendering the Jinja template costs far more than the training step of a 1M-parameter model per example,
    so the builder encodes characters through a lookup table instead.
    """

    def __init__(self) -> None:
        vocab = vocabulary()
        self._ids = vocab
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (vocab[t] for t in (PAD, BOS, EOS, UNK))
        self.user_id, self.assistant_id = vocab[USER], vocab[ASSISTANT]

    def chars(self, text: str) -> list[int]:
        ids, unk = self._ids, self.unk_id
        return [ids.get(ch, unk) for ch in text]

    def text(self, text: str) -> list[int]:
        """A pre-training document: `<s>text</s>`."""
        return [self.bos_id, *self.chars(text), self.eos_id]

    def prompt(self, user: str) -> list[int]:
        """`<s><|user|>user</s><|assistant|>` (the generation prompt)."""
        return [self.bos_id, self.user_id, *self.chars(user), self.eos_id, self.assistant_id]

    def chat(self, user: str, assistant: str) -> tuple[list[int], int]:
        """Ids of a one-turn conversation and the index where the assistant's tokens start."""
        prompt = self.prompt(user)
        return prompt + self.chars(assistant) + [self.eos_id], len(prompt)
