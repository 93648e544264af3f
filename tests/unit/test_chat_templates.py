"""Chat templates done right on the real families' stand-ins (Qwen3, Llama 3.2 Instruct).

- SFT trains every assistant turn of a multi-turn conversation, and nothing else: checked on the labels of
  the dataset the stage builds and hands to TRL's SFTTrainer, against the templates' own renderings.
- The thinking switch reaches the template the same way in training and generation, and a Qwen3-style
  answer with a `<think>` block is scored on its answer through the tool's own decode-and-score path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoTokenizer

from tunesmith.models.templates import tokenize_conversation, training_template

SYSTEM = "You answer Brindle part questions."
TURNS = [
    ("What does a B-12 bracket cost?", "The B-12 bracket costs 4 dollars."),
    ("And the hinge?", "The H-3 hinge costs 7 dollars."),
]
REASONING = "The catalog lists the H-3 hinge at 7."

# The end of an assistant turn, as each family's real template writes it.
END_OF_TURN = {"qwen3": "<|im_end|>\n", "llama3": "<|eot_id|>", "qwen2.5": "<|im_end|>\n"}
# What comes before the answer in an assistant turn: Qwen3's training template keeps every turn's block.
BLOCK = {
    "qwen3": lambda reasoning: f"<think>\n{reasoning}\n</think>\n\n",
    "llama3": lambda reasoning: "",
    # no thinking in Qwen2.5 (traces are not rendered); TRL's training variant also marks the newline after
    # the role header, which the inference prompt already holds: one token more, as TRL trains it
    "qwen2.5": lambda reasoning: "\n",
}


def _conversation(with_reasoning: bool = False) -> list[dict]:
    messages = [{"role": "system", "content": SYSTEM}]
    for index, (question, answer) in enumerate(TURNS):
        messages.append({"role": "user", "content": question})
        turn = {"role": "assistant", "content": answer}
        if with_reasoning and index == 1:
            turn["reasoning_content"] = REASONING
        messages.append(turn)
    return messages


def _labeled_runs(input_ids: list[int], labels: list[int], tokenizer) -> list[str]:
    """The decoded stretches of consecutive tokens that carry loss."""
    runs, current = [], []
    for token, label in zip(input_ids, labels, strict=True):
        if label != -100:
            assert label == token
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


def _expected_runs(kind: str, with_reasoning: bool) -> list[str]:
    return [
        BLOCK[kind](REASONING if with_reasoning and index == 1 else "") + answer + END_OF_TURN[kind]
        for index, (_, answer) in enumerate(TURNS)
    ]


def _stage_run(tmp_path: Path, model_dir: Path, stage: dict, evaluation: dict, examples: int):
    """The first stage's `StageRun`, as `tunesmith train` builds it (resolve -> stage data)."""
    from tunesmith.recipe.loading import load_recipe
    from tunesmith.recipe.resolve import resolve
    from tunesmith.training.data import prepare_stage_data
    from tunesmith.training.stage import StageRun

    recipe = {
        "name": "templates",
        "model": {"path": str(model_dir)},
        "output_dir": str(tmp_path / "runs"),
        "stages": [stage],
        "evaluation": evaluation,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    resolved = resolve(load_recipe(path), recipe_path=path)
    resolved_stage, plan = resolved.recipe.stages[0], resolved.stages[0]
    stage_dir = tmp_path / "runs" / "templates" / resolved_stage.name
    data = prepare_stage_data(
        resolved_stage,
        stage_dir=stage_dir,
        total_examples=examples,
        seed=0,
        quiet=True,
        snapshot=plan.train_data,
    )
    return StageRun(resolved.recipe, resolved_stage, plan, stage_dir, model_dir, data, quiet=True)


def _sft_stage_trainer(tmp_path: Path, model_dir: Path, rows: list[dict], *, reasoning: bool | None):
    """The SFT stage's trainer, built as `run_stage` builds it (datasets -> TRL's SFTTrainer), untrained."""
    from tunesmith.models.loading import load_model, load_tokenizer
    from tunesmith.training.schedule import LRFactor
    from tunesmith.training.sft import SFT
    from tunesmith.training.stage import TrainerInputs, base_args, schedule_for

    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stage = {
        "technique": "sft",
        "mode": "full",
        "data": {"train": str(train)},
        "data_mixing": {"customer_percent": 100},
        "hyperparameters": {"max_steps": 1, "global_batch_size": len(rows), "micro_batch_size": len(rows)},
    }
    run = _stage_run(tmp_path, model_dir, stage, {"reasoning_enabled": reasoning}, len(rows))
    technique = SFT()
    tokenizer = load_tokenizer(model_dir)
    datasets = technique.build_datasets(run, tokenizer)
    schedule = schedule_for(run.stage, run.plan)
    inputs = TrainerInputs(
        model=load_model(model_dir, dtype=torch.float32),
        args=base_args(run, technique, has_validation=False, resuming=False),
        trainer_kwargs=dict(
            processing_class=tokenizer, callbacks=[], schedule=schedule, lr_factor=LRFactor(schedule)
        ),
        monitor=None,
    )
    return technique.build_trainer(run, datasets, inputs), tokenizer


@pytest.mark.parametrize("kind", ["qwen3", "llama3", "qwen2.5"])
def test_every_assistant_turn_of_a_two_turn_conversation_carries_loss(stand_ins, tmp_path, kind) -> None:
    rows = [{"messages": _conversation()}, {"messages": _conversation(with_reasoning=True)}]
    trainer, tokenizer = _sft_stage_trainer(tmp_path, stand_ins[kind], rows, reasoning=False)
    fed = trainer.train_dataset
    assert len(fed) == 2
    for index, with_reasoning in enumerate((False, True)):
        input_ids, labels = fed[index]["input_ids"], fed[index]["labels"]
        # both assistant turns, whole, end-of-turn token included; no system or user token
        assert _labeled_runs(input_ids, labels, tokenizer) == _expected_runs(kind, with_reasoning)
        unlabeled = tokenizer.decode([t for t, label in zip(input_ids, labels, strict=True) if label == -100])
        assert SYSTEM in unlabeled and all(question in unlabeled for question, _ in TURNS)
        assert not any(answer in unlabeled for _, answer in TURNS)
        # the trained sequence is the template's own rendering of the conversation
        template = training_template(tokenizer)
        rendered = tokenizer.apply_chat_template(
            rows[index]["messages"], chat_template=template.text, tokenize=False, enable_thinking=False
        )
        assert tokenizer.decode(input_ids) == rendered


def test_the_family_templates_take_the_expected_path(stand_ins) -> None:
    qwen3 = AutoTokenizer.from_pretrained(stand_ins["qwen3"])
    llama3 = AutoTokenizer.from_pretrained(stand_ins["llama3"])
    assert training_template(qwen3).source == "trl"  # TRL's qwen3_training.jinja
    assert "{%- generation %}" in training_template(qwen3).text
    assert training_template(llama3).source == "rendered"  # TRL ships no Llama 3.2 training variant
    assert training_template(AutoTokenizer.from_pretrained(stand_ins["qwen2.5"])).source == "trl"


def test_the_rendered_mask_matches_the_original_template_on_the_last_turn(stand_ins) -> None:
    """Llama's mask is found by rendering: its last turn is exactly what the original template adds after
    the inference prompt (`add_generation_prompt=True`)."""
    tokenizer = AutoTokenizer.from_pretrained(stand_ins["llama3"])
    messages = _conversation()
    out = tokenize_conversation(tokenizer, messages, training_template(tokenizer), reasoning=None)
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    assert full.startswith(prompt)
    last = _labeled_runs(
        out["input_ids"],
        [t if m else -100 for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True)],
        tokenizer,
    )[-1]
    assert last == full[len(prompt) :]


def test_a_template_that_rewrites_earlier_turns_is_a_one_line_error(stand_ins) -> None:
    """The original Qwen3 template drops earlier turns' reasoning once a later user turn follows: the
    rendered mask cannot place those turns, and says so instead of training on the wrong tokens."""
    from tunesmith.errors import ModelError
    from tunesmith.models.templates import TrainingTemplate

    tokenizer = AutoTokenizer.from_pretrained(stand_ins["qwen3"])
    original = TrainingTemplate(tokenizer.chat_template, "rendered")
    messages = _conversation(with_reasoning=True)
    messages[2]["reasoning_content"] = "first thoughts"  # an earlier turn with reasoning
    with pytest.raises(ModelError, match="not prefix-preserving"):
        tokenize_conversation(tokenizer, messages, original, reasoning=True)
    single = _conversation()[:3]  # one turn: nothing follows it, the original template is fine
    out = tokenize_conversation(tokenizer, single, original, reasoning=False)
    runs = _labeled_runs(
        out["input_ids"],
        [t if m else -100 for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True)],
        tokenizer,
    )
    assert runs == [TURNS[0][1] + "<|im_end|>\n"]  # the empty block is in the prompt (enable_thinking=False)


def test_a_tokenizer_without_a_chat_template_is_a_one_line_error(stand_ins) -> None:
    from tunesmith.errors import ModelError

    tokenizer = AutoTokenizer.from_pretrained(stand_ins["llama3"])
    tokenizer.chat_template = None
    with pytest.raises(ModelError, match="no chat template"):
        training_template(tokenizer)


class ScriptedModel(torch.nn.Module):
    """Answers each prompt with a fixed completion (token ids), through the same `generate` call
    `generate_batch` makes; records what it was asked. The decoding and scoring after it are the tool's."""

    def __init__(self, completions: list[list[int]], generation_config) -> None:
        super().__init__()
        self.completions = completions
        self.generation_config = generation_config
        self.calls: list[dict] = []
        self.device = torch.device("cpu")

    def generate(self, input_ids, attention_mask, *, max_new_tokens, pad_token_id, eos_token_id, **options):
        self.calls.append({"input_ids": input_ids, "eos_token_id": eos_token_id, "options": options})
        rows = [ids[:max_new_tokens] for ids in self.completions[: input_ids.shape[0]]]
        self.completions = self.completions[input_ids.shape[0] :]
        width = max(len(r) for r in rows)
        new = torch.tensor([r + [pad_token_id] * (width - len(r)) for r in rows])
        return torch.cat([input_ids, new], dim=1)


@pytest.mark.parametrize("reasoning", [False, True])
def test_a_qwen3_answer_with_a_reasoning_block_is_scored_on_its_answer(stand_ins, reasoning) -> None:
    """Decode (the `<think>` tags are plain text in Qwen3: decoding keeps them) -> strip the block -> exact
    match, token F1 and the Brindle reward all 1.0; the block is kept with the prediction."""
    from transformers import GenerationConfig

    from tunesmith.evaluation.metrics import resolve_reward
    from tunesmith.evaluation.retention import measure
    from tunesmith.evaluation.runner import with_reward
    from tunesmith.evaluation.suites import domain_items, resolve_data

    tokenizer = AutoTokenizer.from_pretrained(stand_ins["qwen3"])
    items = domain_items(resolve_data("builtin:brindle/eval"))[:3]
    texts = [
        f"<think>\nLook it up: {i}.\n</think>\n\n{item['reference']}<|im_end|>"
        for i, item in enumerate(items)
    ]
    completions = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    config = GenerationConfig.from_pretrained(stand_ins["qwen3"])
    model = ScriptedModel(completions, config)
    answered = measure(
        model,
        tokenizer,
        items,
        max_new_tokens=64,
        batch_size=8,
        scorer=with_reward(resolve_reward("builtin:brindle")),
        reasoning=reasoning,
    ).rows
    for index, (item, row) in enumerate(zip(items, answered, strict=True)):
        assert row["prediction"] == item["reference"]
        assert row["reasoning"] == f"Look it up: {index}."
        assert row["scores"]["exact_match"] == 1.0
        assert row["scores"]["token_f1"] == 1.0
        assert row["scores"]["reward"] == 1.0
    (call,) = model.calls
    prompt = tokenizer.decode(call["input_ids"][0])
    expected_end = "<|im_start|>assistant\n" + ("" if reasoning else "<think>\n\n</think>\n\n")
    assert prompt.endswith(expected_end)  # the thinking switch reached the template
    stops = {tokenizer.convert_ids_to_tokens(i) for i in call["eos_token_id"]}
    assert stops == {"<|im_end|>", "<|endoftext|>"}  # every eos the generation config lists


def test_rft_rewards_score_the_answer_without_its_reasoning_block() -> None:
    from tunesmith.rewards import load_reward
    from tunesmith.training.rft import ROW_KEY, RewardBridge

    rows = {
        "t0": {
            "prompt": [{"role": "user", "content": "Brindle: name of FY9?"}],
            "reference_answer": "glimmet",
        }
    }
    bridge = RewardBridge(load_reward("exact_match"), rows)
    completions = [
        [{"role": "assistant", "content": "<think>\nFY9 is the glimmet.\n</think>\n\nglimmet"}],
        [{"role": "assistant", "content": "<think>\n\n</think>\n\nglimmet"}],
        [{"role": "assistant", "content": "<think>\nglimmet"}],  # never answered: the block alone
    ]
    prompts = [rows["t0"]["prompt"]] * 3
    assert bridge(prompts, completions, **{ROW_KEY: ["t0"] * 3}) == [1.0, 1.0, 0.0]


@pytest.mark.parametrize(("stage_setting", "evaluation_setting"), [(None, None), (None, True), (True, False)])
def test_one_reasoning_setting_drives_grpo_prompts_and_evaluation(
    stand_ins, tmp_path, stage_setting, evaluation_setting
) -> None:
    """`ResolvedConfig.reasoning`: the stage's setting, else the evaluation's, else off; GRPO renders its
    prompts with it (TRL's chat_template_kwargs), the evaluation with the evaluation's."""
    from tunesmith.training.rft import RFT, grpo_config
    from tunesmith.training.stage import base_args

    stage = {
        "technique": "rft",
        "mode": "lora",
        "data": {"train": "builtin:brindle/rft"},
        "data_mixing": {"customer_percent": 100},
        "rft": {"reward": "builtin:brindle", "number_generation": 2},
        "hyperparameters": {"max_steps": 1, "global_batch_size": 2, "micro_batch_size": 2},
    }
    if stage_setting is not None:
        stage["hyperparameters"]["reasoning_enabled"] = stage_setting
    run = _stage_run(tmp_path, stand_ins["qwen3"], stage, {"reasoning_enabled": evaluation_setting}, 2)
    expected = stage_setting if stage_setting is not None else bool(evaluation_setting)
    assert run.recipe.reasoning(run.stage) is expected
    assert run.recipe.reasoning() is bool(evaluation_setting)
    config = grpo_config(run, base_args(run, RFT(), has_validation=False, resuming=False), False, 0)
    assert config.chat_template_kwargs == {"enable_thinking": expected}


@pytest.mark.parametrize("kind", ["qwen3", "llama3"])
def test_the_forgetting_probe_forces_the_direct_answer_and_pads_with_eos(stand_ins, tmp_path, kind) -> None:
    """The in-training probe scores each general answer teacher-forced right after the direct-answer prompt
    (Qwen3: after the empty `<think>` block, where SFT puts answers without reasoning); Llama's missing pad
    token falls back to eos."""
    from tunesmith.evaluation.retention import forced_inputs
    from tunesmith.models.loading import load_model
    from tunesmith.training.monitor import ForgettingProbe

    tokenizer = AutoTokenizer.from_pretrained(stand_ins[kind])
    probe = ForgettingProbe(tokenizer, 1, tmp_path)
    answers = [item["reference"] for item in probe.items]
    input_ids, attention, scored = forced_inputs(tokenizer, probe.messages, answers)
    row = 0
    ids = input_ids[row][attention[row].bool()].tolist()
    first = int(scored[row].nonzero()[0])
    prompt, answer = tokenizer.decode(ids[:first]), tokenizer.decode(ids[first:])
    assert prompt.endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
        if kind == "qwen3"
        else "assistant<|end_header_id|>\n\n"
    )
    assert answer == answers[row] + tokenizer.eos_token
    pads = input_ids[attention == 0]
    assert pads.numel() > 0 and set(pads.tolist()) == {tokenizer.pad_token_id or tokenizer.eos_token_id}
    result = probe.measure(load_model(stand_ins[kind], dtype=torch.float32))
    assert 0.0 <= result["general_accuracy"] <= 1.0 and result["kl"] == 0.0
    # per category and per item, so two probes can be compared item by item
    assert len(result["items"]) == len(probe.items) and set(result["items"]) <= {"0", "1"}
    assert result["general_accuracy"] == pytest.approx(
        result["items"].count("1") / len(probe.items), abs=1e-4
    )
    assert set(result["categories"]) == set(probe.categories)


def test_the_probe_scores_the_same_in_chunks(stand_ins, tmp_path, monkeypatch) -> None:
    """The probe runs its items a few at a time (bounded logits memory at real vocabularies): the same
    items right, the same token accuracy, and no KL to its own start, whatever the chunk size."""
    from tunesmith.evaluation import retention
    from tunesmith.models.loading import load_model
    from tunesmith.training import monitor

    tokenizer = AutoTokenizer.from_pretrained(stand_ins["qwen3"])
    model = load_model(stand_ins["qwen3"], dtype=torch.float32)
    probe = monitor.ForgettingProbe(tokenizer, 2, tmp_path)
    monkeypatch.setattr(retention, "TEACHER_FORCED_CHUNK", 1000)
    whole = probe.measure(model)  # one pass; stores the KL reference
    monkeypatch.setattr(retention, "TEACHER_FORCED_CHUNK", 3)
    chunked = probe.measure(model)
    assert chunked["items"] == whole["items"] and chunked["categories"] == whole["categories"]
    assert chunked["token_accuracy"] == pytest.approx(whole["token_accuracy"], abs=1e-4)
    assert chunked["kl"] == pytest.approx(0.0, abs=1e-4)


def test_a_reasoning_evaluation_gets_the_whole_token_cap(stand_ins) -> None:
    """Answers without reasoning get a budget sized to the references; reasoning comes first, so it gets
    the cap (a 4-token budget would end every think block before the answer)."""
    from tunesmith.evaluation.runner import EvalConfig, _answer_budget

    tokenizer = AutoTokenizer.from_pretrained(stand_ins["qwen3"])
    items = [{"reference": "glimmet"}]
    direct = _answer_budget(tokenizer, EvalConfig(suites=("general",), reasoning=False), items)
    thinking = _answer_budget(tokenizer, EvalConfig(suites=("general",), reasoning=True), items)
    assert direct < 32 and thinking == EvalConfig.max_new_tokens == 256


def test_a_template_whose_markers_cover_nothing_is_a_one_line_error(stand_ins) -> None:
    from tunesmith.errors import ModelError
    from tunesmith.models.templates import TrainingTemplate

    tokenizer = AutoTokenizer.from_pretrained(stand_ins["qwen3"])
    broken = TrainingTemplate(
        "{% for m in messages %}{{ m['content'] }}{% endfor %}{% generation %}{% endgeneration %}", "own"
    )
    with pytest.raises(ModelError, match="marks no assistant token"):
        tokenize_conversation(tokenizer, _conversation(), broken, reasoning=False)
