"""The curated general data: each general category mapped to an open instruction dataset on the Hub.

The open counterpart of the managed service's curated general mix ([nova-data-mixing]): the same category
names (`reasoning-instruction-following`, `instruction-following`, `math`, `reasoning`, `knowledge`, plus
`code` and `multilingual`), each drawn from one public dataset with its license stated: SmolTalk
[smoltalk-2025], Tulu 3's persona sets [tulu3-personas-if] [tulu3-personas-code], GSM8K [gsm8k-2021],
Mixture-of-Thoughts [mixture-of-thoughts], Dolly 15k [dolly-15k] and the Aya dataset [aya-dataset]. Permissive licenses
only (Apache-2.0, MIT, ODC-BY); the one share-alike dataset (`knowledge`: CC-BY-SA-3.0) is flagged, and no
dataset is non-commercial. Dataset ids, configs, splits, columns and licenses were checked against the
dataset cards; `revision` is None (the default branch) where no commit was pinned: `tunesmith data mirror`
records the commit it copied in the mirror's manifest.

Each entry says how a row becomes the project's SFT form (`{"messages": [{"role", "content"}, ...]}`):
a `messages` column already in OpenAI chat form, or a `prompt` column (plus an optional `context` column
appended to it) answered by a `response` column. `keep` filters rows on one column's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class CuratedDataset:
    """One category's dataset on the Hugging Face Hub and how its rows map to chat messages."""

    category: str
    dataset_id: str
    config: str | None
    split: str
    license: str
    reference: str  # key in docs/references.md
    messages: str | None = None  # column holding OpenAI chat messages
    prompt: str | None = None  # or: the column with the user's request ...
    response: str | None = None  # ... and the column with the answer
    context: str | None = None  # optional column appended to the prompt (blank values are skipped)
    keep: tuple[str, tuple[str, ...]] | None = None  # (column, accepted values): other rows are skipped
    revision: str | None = None
    share_alike: bool = False
    note: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the mapping reads (a mirror must have them)."""
        named = (self.messages, self.prompt, self.response, self.context, self.keep[0] if self.keep else None)
        return tuple(column for column in named if column is not None)

    def describe(self) -> str:
        """`id [config/split @revision], LICENSE` — what `plan` shows for the category."""
        where = "/".join(part for part in (self.config, self.split) if part)
        revision = f" @{self.revision}" if self.revision else ""
        flag = ", share-alike" if self.share_alike else ""
        return f"{self.dataset_id} [{where}{revision}], {self.license}{flag}"

    def to_messages(self, row: Mapping[str, Any]) -> list[dict[str, str]] | None:
        """The row as chat messages ending with the assistant's answer; None for a row the mapping skips
        (filtered out by `keep`, empty, or not ending with an answer)."""
        if self.keep is not None and row.get(self.keep[0]) not in self.keep[1]:
            return None
        if self.messages is not None:
            return _chat(row.get(self.messages))
        prompt, answer = row.get(self.prompt or ""), row.get(self.response or "")
        if not _text(prompt) or not _text(answer):
            return None
        context = row.get(self.context) if self.context else None
        if _text(context):
            prompt = f"{prompt}\n\n{context}"
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _chat(value: Any) -> list[dict[str, str]] | None:
    if not isinstance(value, list):
        return None
    messages = []
    for message in value:
        if not isinstance(message, Mapping) or message.get("role") not in ROLES:
            return None
        if not _text(message.get("content")):
            return None
        messages.append({"role": message["role"], "content": message["content"]})
    if not messages or messages[-1]["role"] != "assistant" or all(m["role"] != "user" for m in messages):
        return None
    return messages


CATALOG: dict[str, CuratedDataset] = {
    entry.category: entry
    for entry in (
        CuratedDataset(
            "reasoning-instruction-following",
            "HuggingFaceTB/smoltalk",
            "smol-magpie-ultra",
            "train",
            "Apache-2.0",
            "smoltalk-2025",
            messages="messages",
            note="multi-turn, complex tasks (Magpie-Ultra); the SmolLM2 instruct mix",
        ),
        CuratedDataset(
            "instruction-following",
            "allenai/tulu-3-sft-personas-instruction-following",
            None,
            "train",
            "ODC-BY-1.0",
            "tulu3-personas-if",
            messages="messages",
            note="29,980 prompts with 1-3 verifiable constraints (IFEval taxonomy)",
        ),
        CuratedDataset(
            "math",
            "openai/gsm8k",
            "main",
            "train",
            "MIT",
            "gsm8k-2021",
            prompt="question",
            response="answer",
            note="7,473 grade-school word problems; answers reason step by step and end with '#### N'",
        ),
        CuratedDataset(
            "reasoning",
            "open-r1/Mixture-of-Thoughts",
            "science",
            "train",
            "Apache-2.0",
            "mixture-of-thoughts",
            messages="messages",
            note="science questions with long reasoning traces (<think> blocks): truncated to max_length",
        ),
        CuratedDataset(
            "knowledge",
            "databricks/databricks-dolly-15k",
            None,
            "train",
            "CC-BY-SA-3.0",
            "dolly-15k",
            prompt="instruction",
            response="response",
            context="context",
            keep=("category", ("open_qa", "closed_qa", "general_qa")),
            share_alike=True,
            note="human-written question answering; share-alike: a redistributed mix must keep CC-BY-SA",
        ),
        CuratedDataset(
            "code",
            "allenai/tulu-3-sft-personas-code",
            None,
            "train",
            "ODC-BY-1.0",
            "tulu3-personas-code",
            messages="messages",
            note="persona-driven coding tasks (Tulu 3 SFT mix); not in the default shares",
        ),
        CuratedDataset(
            "multilingual",
            "CohereForAI/aya_dataset",
            None,
            "train",
            "Apache-2.0",
            "aya-dataset",
            prompt="inputs",
            response="targets",
            note="human-annotated prompts and answers in many languages; not in the default shares",
        ),
    )
}
"""Category -> its curated dataset."""

CURATED_CATEGORIES: tuple[str, ...] = tuple(CATALOG)
