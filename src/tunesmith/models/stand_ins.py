"""Offline stand-ins of real model families: random-initialized folders built the way the Hub's are.

No weights can be downloaded on an air-gapped machine (or in CI), yet the Hugging Face code path must be
exercised with the real architectures, tokenizers and chat templates, not only with the embedded tiny
family. `build_stand_in("qwen3", folder)` writes a folder that `transformers.AutoModelForCausalLM` and
`AutoTokenizer` load like `Qwen/Qwen3-0.6B`:

- the real architecture class from a small config (`Qwen3ForCausalLM`, `LlamaForCausalLM`, `Qwen2ForCausalLM`),
  random-initialized with a fixed seed, saved in bf16 like the real checkpoints;
- a byte-level BPE tokenizer trained here on the built-in general and Brindle text, with the family's real
  special tokens (`<|im_start|>`, `<|im_end|>`, `<|endoftext|>`; `<|begin_of_text|>`, `<|eot_id|>`, ...), the
  family's quirks (Qwen3's `<think>`/`</think>` are added tokens that are *not* special; Llama 3.x Instruct
  has no pad token and adds `<|begin_of_text|>` itself);
- the chat template the family ships, taken from TRL's copies of the originals (`trl/chat_templates/`);
- the family's generation config (several eos ids, sampling defaults).

The weights are noise: a stand-in answers nothing right. It is there to prove that loading, chat rendering,
training, generation, evaluation and export work on the real formats. `size` picks the scale: "micro" for
unit tests (~0.3M parameters, built in about a second), "30m" for CPU benchmarks, "0.5b" for GPU benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from tunesmith.errors import UserError


@dataclass(frozen=True)
class StandInFamily:
    """What makes a family's folder look like the real one."""

    architecture: str  # transformers config class name prefix, e.g. "Qwen3"
    template: str  # file in trl/chat_templates/
    special_tokens: tuple[str, ...]  # special added tokens, in id order after the BPE vocabulary
    plain_added_tokens: tuple[str, ...]  # added tokens that are NOT special (decoded like text)
    bos: str | None
    eos: str  # the tokenizer's eos (the chat turn end for instruct models)
    pad: str | None  # None: the folder has no pad token (Llama 3.x Instruct)
    add_bos: bool  # the tokenizer prepends bos itself (post-processor), as Llama 3's does
    config_eos: tuple[str, ...]  # config.json's eos_token_id (one id or a list)
    generation: dict  # generation_config.json, token ids given by name in *_token_id keys
    config_extra: dict = field(default_factory=dict)


_QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

FAMILIES: dict[str, StandInFamily] = {
    # Qwen/Qwen3-0.6B: eos <|im_end|>, pad <|endoftext|>, no bos; <think> tokens are plain added tokens.
    "qwen3": StandInFamily(
        architecture="Qwen3",
        template="qwen3.jinja",
        special_tokens=_QWEN_SPECIALS,
        plain_added_tokens=(
            "<tool_call>",
            "</tool_call>",
            "<tool_response>",
            "</tool_response>",
            "<think>",
            "</think>",
        ),
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        add_bos=False,
        config_eos=("<|im_end|>",),
        generation={
            "bos_token_id": "<|endoftext|>",
            "eos_token_id": ["<|im_end|>", "<|endoftext|>"],
            "pad_token_id": "<|endoftext|>",
            "do_sample": True,
            "temperature": 0.6,
            "top_k": 20,
            "top_p": 0.95,
        },
        config_extra={
            "rope_theta": 1_000_000.0,
            "tie_word_embeddings": True,
            "max_position_embeddings": 40960,
        },
    ),
    # meta-llama/Llama-3.2-1B-Instruct: bos added by the tokenizer, eos <|eot_id|>, NO pad token.
    "llama3": StandInFamily(
        architecture="Llama",
        template="llama3_2.jinja",
        special_tokens=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|reserved_special_token_0|>",
            "<|reserved_special_token_1|>",
            "<|finetune_right_pad_id|>",
            "<|reserved_special_token_2|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eom_id|>",
            "<|eot_id|>",
            "<|python_tag|>",
        ),
        plain_added_tokens=(),
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad=None,
        add_bos=True,
        config_eos=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
        generation={
            "bos_token_id": "<|begin_of_text|>",
            "eos_token_id": ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
            "do_sample": True,
            "temperature": 0.6,
            "top_p": 0.9,
        },
        config_extra={
            "rope_theta": 500_000.0,
            "tie_word_embeddings": True,
            "max_position_embeddings": 131072,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 32.0,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8192,
            },
        },
    ),
    # Qwen/Qwen2.5-0.5B-Instruct: the previous Qwen architecture (no q/k norm), ChatML without thinking.
    "qwen2.5": StandInFamily(
        architecture="Qwen2",
        template="qwen2_5.jinja",
        special_tokens=_QWEN_SPECIALS,
        plain_added_tokens=("<tool_call>", "</tool_call>"),
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        add_bos=False,
        config_eos=("<|im_end|>",),
        generation={
            "bos_token_id": "<|endoftext|>",
            "eos_token_id": ["<|im_end|>", "<|endoftext|>"],
            "pad_token_id": "<|endoftext|>",
            "do_sample": True,
            "temperature": 0.7,
            "top_k": 20,
            "top_p": 0.8,
            "repetition_penalty": 1.05,
        },
        config_extra={
            "rope_theta": 1_000_000.0,
            "tie_word_embeddings": True,
            "max_position_embeddings": 32768,
        },
    ),
}

SIZES: dict[str, dict] = {
    # ~0.3M parameters with the 2,048-token vocabulary: unit and e2e tests
    "micro": {
        "vocab_size": 2048,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
    },
    # ~30M parameters: CPU throughput benchmarks
    "30m": {
        "vocab_size": 8192,
        "hidden_size": 512,
        "intermediate_size": 1376,
        "num_hidden_layers": 8,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 64,
    },
    # ~0.5B parameters, Qwen3-0.6B's shape with a small vocabulary: GPU benchmarks
    "0.5b": {
        "vocab_size": 8192,
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
    },
}


def template_text(name: str) -> str:
    """A chat template shipped with TRL (copies of the families' originals)."""
    import trl

    path = Path(trl.__file__).parent / "chat_templates" / name
    if not path.is_file():
        raise UserError(f"{name}: TRL {trl.__version__} ships no such chat template in {path.parent}")
    return path.read_text(encoding="utf-8")


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def default_corpus(rows_per_source: int = 300) -> Iterator[str]:
    """Text from the built-in general categories and the Brindle domain (no files written)."""
    from tunesmith.data import domain, general

    for category in general.CATEGORIES:
        for kind in ("text", "sft"):
            for row in general.sample(category, kind, rows_per_source, seed=0):
                yield from _strings(row)
    for kind in ("cpt", "sft"):
        for row in domain.sample(kind, rows_per_source, seed=0):
            yield from _strings(row)


def train_tokenizer(family: StandInFamily, vocab_size: int, corpus: Iterable[str] | None = None):
    """A byte-level BPE tokenizer trained on `corpus`, dressed as `family`'s (a `PreTrainedTokenizerFast`)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(family.special_tokens) - len(family.plain_added_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus if corpus is not None else default_corpus(), trainer)
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in family.special_tokens])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in family.plain_added_tokens])
    if family.add_bos:
        bos = family.bos
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, backend.token_to_id(bos))]
        )
    else:
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
    tokens = {"eos_token": family.eos}
    if family.bos is not None:
        tokens["bos_token"] = family.bos
    if family.pad is not None:
        tokens["pad_token"] = family.pad
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        chat_template=template_text(family.template),
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
        **tokens,
    )


def build_stand_in(
    kind: str,
    folder: str | Path,
    *,
    size: str = "micro",
    seed: int = 0,
    dtype: str = "bfloat16",
    corpus: Iterable[str] | None = None,
) -> Path:
    """Write a random-initialized `kind` folder (see the module docstring) and return its path."""
    import torch
    import transformers

    if kind not in FAMILIES:
        raise UserError(f"unknown stand-in family {kind!r}; known: {', '.join(FAMILIES)}")
    if size not in SIZES:
        raise UserError(f"unknown stand-in size {size!r}; known: {', '.join(SIZES)}")
    family = FAMILIES[kind]
    shape = dict(SIZES[size])
    tokenizer = train_tokenizer(family, shape.pop("vocab_size"), corpus)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tokenizer.get_vocab()}
    config_class = getattr(transformers, f"{family.architecture}Config")
    model_class = getattr(transformers, f"{family.architecture}ForCausalLM")
    eos_ids = [ids[t] for t in family.config_eos]
    config = config_class(
        vocab_size=len(tokenizer),
        bos_token_id=ids[family.bos] if family.bos else ids[family.generation["bos_token_id"]],
        eos_token_id=eos_ids[0] if len(eos_ids) == 1 else eos_ids,
        pad_token_id=ids[family.pad] if family.pad else None,
        **shape,
        **family.config_extra,
    )
    torch.manual_seed(seed)
    model = model_class(config).to(getattr(torch, dtype))
    generation = {
        key: ([ids[t] for t in value] if isinstance(value, list) else ids[value]) if key.endswith("_token_id")
        else value
        for key, value in family.generation.items()
    }  # fmt: skip
    model.generation_config = transformers.GenerationConfig(**generation)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "stand_in.json").write_text(
        json.dumps({"family": kind, "size": size, "seed": seed, "dtype": dtype}, indent=2) + "\n",
        encoding="utf-8",
    )
    return folder


def sample_corpus(n: int = 50) -> list[str]:
    """A few corpus strings (for tests that need text the stand-in tokenizer knows)."""
    return list(islice(default_corpus(20), n))


def sample_conversations(n: int) -> list[list[dict]]:
    """`n` Brindle-style conversations in OpenAI chat form: two assistant turns in two of three, one in the
    rest, a system prompt in every other (for tests and benchmarks of multi-turn SFT)."""
    rows = []
    for i in range(n):
        price = i % 9 + 1
        messages = [{"role": "system", "content": "Answer about Brindle parts."}] if i % 2 else []
        messages += [
            {"role": "user", "content": f"Brindle: price of part {i}?"},
            {"role": "assistant", "content": f"{price} brix"},
        ]
        if i % 3:
            messages += [
                {"role": "user", "content": "And two of them?"},
                {"role": "assistant", "content": f"2 x {price} = {2 * price} brix"},
            ]
        rows.append(messages)
    return rows
