"""The hostile corpus, round two (issue 32): the model folder is input too, every name and `--out` goes
through one guard, runs know the versions that wrote them, and the smaller items of the issue.

Same `Case` as round one (cases.py); `class` continues its numbering: 9 model folders, 10 names and outputs,
11 resume across versions and stage folders, 12 the smaller items (commands' inputs and the playbook's
pitfalls). A damaged model folder is a copy of the micro model (`model_copy`), changed by one function.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cases import (
    _DELETE,
    PROMPTS,
    RUN,
    TRAIN,
    Case,
    FileContent,
    Folder,
    Made,
    base_files,
    base_recipe,
    micro_recipe,
    recipe_files,
    with_train,
)

PLAN = ("plan", "r.yaml")
LINT = ("lint", "r.yaml")
TRAIN_ARGS = ("train", "r.yaml", "--quiet", "--no-eval")
MODEL = "@D@/m"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TUNESMITH_GENERAL_DATA": None}  # curated general data cannot be served
CUSTOM_CODE = (
    "import pathlib\npathlib.Path('pwned').write_text('custom code ran')\n"
    "from transformers import LlamaConfig\n\nclass EvilConfig(LlamaConfig):\n    model_type = 'evil'\n"
)


# --- damaged copies of the micro model -----------------------------------------------------------------
def model_copy(damage: Callable[[Path], None] | None = None) -> Made:
    def make(path: Path, model_dir: Path) -> None:
        shutil.copytree(model_dir, path)
        if damage is not None:
            damage(path)

    return Made(make)


def edit_json(name: str, changes: dict[str, Any]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        for key, value in changes.items():
            if value is _DELETE:
                data.pop(key, None)
            else:
                data[key] = value
        (folder / name).write_text(json.dumps(data))

    return damage


def config(**changes: Any) -> Made:
    return model_copy(edit_json("config.json", changes))


def remove(*names: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        for name in names:
            (folder / name).unlink()

    return damage


def truncate(name: str, keep: float = 0.5) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: int(len(data) * keep)])

    return damage


def no_chat_template(folder: Path) -> None:
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    edit_json("tokenizer_config.json", {"chat_template": _DELETE})(folder)


def pickled_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": [0.0] * 8}))


def custom_code(folder: Path) -> None:
    """`auto_map` to a configuration module that writes `pwned` into the current folder when imported."""
    (folder / "configuration_evil.py").write_text(CUSTOM_CODE)
    auto_map = {"AutoConfig": "configuration_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.Evil"}
    edit_json("config.json", {"model_type": "evil", "auto_map": auto_map})(folder)


def sharded_missing_shard(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {
        "metadata": {},
        "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors",
        },
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def huge_header(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes((1 << 40).to_bytes(8, "little") + data[8:])


def only(name: str, content: bytes) -> Made:
    def make(path: Path, model_dir: Path) -> None:
        path.mkdir()
        (path / name).write_bytes(content)

    return Made(make)


def config_only() -> Made:
    def make(path: Path, model_dir: Path) -> None:
        path.mkdir()
        shutil.copy(model_dir / "config.json", path / "config.json")

    return Made(make)


def config_cut() -> Made:
    def damage(folder: Path) -> None:
        text = (folder / "config.json").read_text()
        (folder / "config.json").write_text(text[: len(text) // 2])

    return model_copy(damage)


def with_model(model: FileContent, changes: dict[str, Any] | None = None) -> dict[str, FileContent]:
    """The base recipe on the model folder `m` (a damaged copy)."""
    return {**recipe_files({"model.path": MODEL, **(changes or {})}), "m": model}


GENERAL_MIX = {
    "model.path": "./nope-model",
    "stages.0.data_mixing.customer_percent": 50,
}


# --- the cases -----------------------------------------------------------------------------------------
MODEL_CASES: list[Case] = [
    Case("plan-model-copy-valid", 9, PLAN, with_model(model_copy()), "ok"),
    Case("lint-model-copy-valid", 9, LINT, with_model(model_copy()), "ok"),
    Case(
        "plan-model-missing-before-general-data",
        9,
        PLAN,
        recipe_files(GENERAL_MIX),
        names=("nope-model", "no such model folder"),
        not_names=("general",),
        env=OFFLINE,
    ),
    Case(
        "lint-model-missing-before-general-data",
        9,
        LINT,
        recipe_files(GENERAL_MIX),
        names=("nope-model", "no such model folder"),
        not_names=("general",),
        env=OFFLINE,
    ),
    Case(
        "train-model-missing",
        9,
        TRAIN_ARGS,
        recipe_files({"model.path": "./nope-model"}),
        names=("nope-model",),
        absent=("runs",),
    ),
    Case(
        "plan-model-relative-missing-under-existing-folder",
        9,
        PLAN,
        {**recipe_files({"model.path": "models/mine"}), "models": Folder()},
        names=("models/mine", "no such model folder"),
    ),
    Case(
        "plan-model-gguf-file-missing",
        9,
        PLAN,
        recipe_files({"model.path": "weights-q4.gguf"}),
        names=("weights-q4.gguf", "no such GGUF file"),
    ),
    Case(
        "plan-model-gguf-only-folder",
        9,
        PLAN,
        with_model(only("weights-q4.gguf", b"GGUF" + bytes(60))),
        names=("weights-q4.gguf", "model.path"),
    ),
    Case(
        "plan-model-config-only",
        9,
        PLAN,
        with_model(config_only()),
        names=("no weights",),
    ),
    Case("plan-model-config-cut", 9, PLAN, with_model(config_cut()), names=("config.json", "not valid JSON")),
    Case(
        "plan-model-config-a-list",
        9,
        PLAN,
        with_model(model_copy(lambda f: (f / "config.json").write_text("[1, 2]"))),
        names=("config.json", "JSON object"),
    ),
    Case(
        "plan-model-unknown-model-type",
        9,
        PLAN,
        with_model(config(model_type="llamma")),
        names=("config.json", "llamma", "llama"),
    ),
    Case("plan-model-no-model-type", 9, PLAN, with_model(config(model_type=_DELETE)), names=("model_type",)),
    Case(
        "plan-model-not-causal-lm",
        9,
        PLAN,
        with_model(config(model_type="t5")),
        names=("config.json", "t5", "causal"),
    ),
    Case(
        "plan-model-truncated-weights",
        9,
        PLAN,
        with_model(model_copy(truncate("model.safetensors"))),
        names=("model.safetensors", "truncated"),
    ),
    Case(
        "lint-model-truncated-weights",
        9,
        LINT,
        with_model(model_copy(truncate("model.safetensors"))),
        names=("model.safetensors", "truncated"),
    ),
    Case(
        "train-model-truncated-weights",
        9,
        TRAIN_ARGS,
        with_model(model_copy(truncate("model.safetensors"))),
        names=("model.safetensors", "truncated"),
        absent=("runs",),
    ),
    Case(
        "plan-model-weights-header-huge",
        9,
        PLAN,
        with_model(model_copy(huge_header)),
        names=("model.safetensors",),
    ),
    Case(
        "plan-model-weights-extra-bytes",
        9,
        PLAN,
        with_model(model_copy(lambda f: (f / "model.safetensors").open("ab").write(b"\0" * 64))),
        names=("model.safetensors", "damaged"),
    ),
    Case(
        "plan-model-shard-missing",
        9,
        PLAN,
        with_model(model_copy(sharded_missing_shard)),
        names=("model-00002-of-00002.safetensors", "missing"),
    ),
    Case(
        "plan-model-pickled-bin",
        9,
        PLAN,
        with_model(model_copy(pickled_weights)),
        names=("pytorch_model.bin", "safetensors"),
        not_names=("weights_only",),
    ),
    Case(
        "train-model-pickled-bin",
        9,
        TRAIN_ARGS,
        with_model(model_copy(pickled_weights)),
        names=("pytorch_model.bin",),
        not_names=("weights_only",),
        absent=("runs",),
    ),
    Case(
        "plan-model-no-tokenizer",
        9,
        PLAN,
        with_model(model_copy(remove("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"))),
        names=("no tokenizer",),
        not_names=("p99",),
    ),
    Case(
        "plan-model-sft-no-chat-template",
        9,
        PLAN,
        with_model(model_copy(no_chat_template)),
        names=("chat template", "SFT"),
    ),
    Case(
        "plan-model-cpt-no-chat-template",
        9,
        PLAN,
        {
            **with_model(
                model_copy(no_chat_template),
                {
                    "stages.0.technique": "cpt",
                    "stages.0.data.train": "c.jsonl",
                    "stages.0.data.validation": _DELETE,
                },
            ),
            "c.jsonl": "".join(json.dumps({"text": f"note {i} about zq"}) + "\n" for i in range(16)),
        },
        "ok",
    ),
    Case("plan-model-dtype-bfloat17", 9, PLAN, with_model(config(dtype="bfloat17")), names=("bfloat17",)),
    Case(
        "train-model-dtype-bfloat17",
        9,
        TRAIN_ARGS,
        with_model(config(dtype="bfloat17")),
        names=("bfloat17",),
        absent=("runs",),
    ),
    Case(
        "plan-model-vocab-below-tokenizer",
        9,
        PLAN,
        with_model(config(vocab_size=50)),
        names=("vocab_size", "50", "104"),
    ),
    Case(
        "plan-model-weights-of-a-smaller-model",
        9,
        PLAN,
        with_model(config(num_hidden_layers=4)),
        names=("config.json", "parameters", "smaller model"),
    ),
    Case(
        "plan-model-zero-layers",
        9,
        PLAN,
        with_model(config(num_hidden_layers=0)),
        names=("num_hidden_layers",),
    ),
    Case(
        "plan-model-layers-a-string",
        9,
        PLAN,
        with_model(config(num_hidden_layers="4")),
        names=("num_hidden_layers",),
    ),
    Case(
        "plan-model-custom-code",
        9,
        PLAN,
        with_model(model_copy(custom_code)),
        names=("auto_map", "config.json"),
        not_names=("trust_remote_code",),
        absent=("pwned",),
    ),
    Case(
        "plan-model-custom-tokenizer-code",
        9,
        PLAN,
        with_model(
            model_copy(edit_json("tokenizer_config.json", {"auto_map": {"AutoTokenizer": ["tok.Tok", None]}}))
        ),
        names=("auto_map", "tokenizer_config.json"),
        absent=("pwned",),
    ),
    Case(
        "train-model-custom-code",
        9,
        TRAIN_ARGS,
        with_model(model_copy(custom_code)),
        names=("auto_map",),
        absent=("pwned", "runs"),
    ),
    Case(
        "plan-model-path-a-file",
        9,
        PLAN,
        {**recipe_files({"model.path": "@D@/weights.bin"}), "weights.bin": b"\0" * 16},
        names=("weights.bin", "not a model folder"),
    ),
    Case(
        "eval-model-truncated-weights",
        9,
        ("eval", "--model", MODEL, "--suites", "general"),
        {"m": model_copy(truncate("model.safetensors"))},
        names=("model.safetensors", "truncated"),
    ),
    Case(
        "eval-model-custom-code",
        9,
        ("eval", "--model", MODEL, "--suites", "general"),
        {"m": model_copy(custom_code)},
        names=("auto_map",),
        absent=("pwned",),
    ),
    Case(
        "generate-model-custom-code",
        9,
        ("generate", MODEL, "--prompts", "p.jsonl"),
        {"m": model_copy(custom_code), "p.jsonl": PROMPTS},
        names=("auto_map",),
        absent=("pwned",),
    ),
    Case(
        "generate-model-pickled-bin",
        9,
        ("generate", MODEL, "--prompts", "p.jsonl"),
        {"m": model_copy(pickled_weights), "p.jsonl": PROMPTS},
        names=("pytorch_model.bin",),
        not_names=("weights_only",),
    ),
    Case(
        "serve-model-custom-code",
        9,
        ("serve", MODEL, "--port", "0"),
        {"m": model_copy(custom_code)},
        names=("auto_map",),
        absent=("pwned",),
    ),
    Case(
        "probe-model-no-tokenizer",
        9,
        ("probe", "--model", MODEL, "--data", "prompts.jsonl", "--reward", "exact_match"),
        {"m": model_copy(remove("tokenizer.json")), "prompts.jsonl": PROMPTS},
        names=("no tokenizer",),
    ),
    Case(
        "inspect-tokenizer-custom-code",
        9,
        ("data", "inspect", "t.jsonl", "--tokenizer", MODEL),
        {"m": model_copy(custom_code), "t.jsonl": TRAIN},
        "ok",  # the tokenizer loads with transformers' own class (tokenizer_config.json names it): no code runs
        absent=("pwned",),
    ),
]


def stage_best_custom_code(case_dir: Path) -> None:
    """The finished run's best checkpoint asks for custom code (a folder someone edited)."""
    custom_code(case_dir / RUN / "sft" / "best")


MODEL_CASES.append(
    Case(
        "export-best-custom-code",
        9,
        ("export", RUN, "--out", "exported"),
        run=stage_best_custom_code,
        names=("auto_map",),
        absent=("pwned", "exported"),
        timeout_s=30,
    )
)

# --- 10: every user-chosen name and output path goes through one guard ------------------------------------
SWEEP = ("sweep", "r.yaml", "--preset", "lr", "--trials", "1", "--quiet")
GENERATE = ("generate", "@MODEL@", "--prompts", "p.jsonl", "--max-new-tokens", "2")
PROBE_OUT = ("probe", "--model", "@MODEL@", "--data", "prompts.jsonl", "--reward", "exact_match")
PROBE_OUT += ("--prompts", "2", "--generations", "2", "--max-new-tokens", "2", "--out", "probe.json")
MINE = "my own notes\n"


def user_file_at_report(case_dir: Path) -> None:
    report = case_dir / RUN / "report"
    shutil.rmtree(report, ignore_errors=True)
    report.write_text(MINE)


def user_folder_at_report(case_dir: Path) -> None:
    report = case_dir / RUN / "report"
    shutil.rmtree(report, ignore_errors=True)
    report.mkdir()
    (report / "notes.txt").write_text(MINE)


NAME_CASES: list[Case] = [
    Case(
        "sweep-name-path-escape",
        10,
        (*SWEEP, "--name", "../../escape"),
        recipe_files(),
        names=("--name", "../../escape", "'/'"),
        absent=("runs", "../../escape", "../escape"),
    ),
    Case(
        "sweep-name-empty",
        10,
        (*SWEEP, "--name", ""),
        recipe_files(),
        names=("--name", "empty"),
        absent=("runs",),
    ),
    Case(
        "sweep-name-hidden",
        10,
        (*SWEEP, "--name", ".hidden"),
        recipe_files(),
        names=("--name", ".hidden"),
        absent=("runs",),
    ),
    Case(
        "train-name-option-escape",
        10,
        (*TRAIN_ARGS, "--name", "../../escape"),
        recipe_files(),
        names=("name",),
        absent=("runs", "../../escape", "../escape"),
    ),
    Case(
        "advise-name-escape",
        10,
        ("advise", "--demonstrations", "train.jsonl", "--name", "../x", "--out", "new.yaml"),
        base_files(),
        names=("--name", "../x"),
        absent=("new.yaml",),
    ),
    Case(
        "sweep-export-over-existing",
        10,
        (*SWEEP, "--export", "best.yaml"),
        recipe_files(**{"best.yaml": MINE}),
        names=("--export", "best.yaml", "--force"),
        unchanged=("best.yaml",),
        absent=("runs",),
    ),
    Case(
        "sweep-export-is-folder",
        10,
        (*SWEEP, "--export", "adir"),
        recipe_files(adir=Folder()),
        names=("--export", "adir", "folder"),
        absent=("runs",),
    ),
    Case(
        "generate-out-over-existing",
        10,
        (*GENERATE, "--out", "out.jsonl"),
        {"p.jsonl": PROMPTS, "out.jsonl": MINE},
        names=("--out", "out.jsonl", "--force"),
        unchanged=("out.jsonl",),
    ),
    Case(
        "generate-out-over-existing-force",
        10,
        (*GENERATE, "--out", "out.jsonl", "--force"),
        {"p.jsonl": PROMPTS, "out.jsonl": MINE},
        "ok",
        timeout_s=60,
    ),
    Case(
        "generate-out-new",
        10,
        (*GENERATE, "--out", "out.jsonl"),
        {"p.jsonl": PROMPTS},
        "ok",
        timeout_s=60,
    ),
    Case(
        "probe-out-over-existing",
        10,
        PROBE_OUT,
        {"prompts.jsonl": PROMPTS, "probe.json": MINE},
        names=("--out", "probe.json", "--force"),
        unchanged=("probe.json",),
    ),
    Case(
        "probe-out-over-existing-force",
        10,
        (*PROBE_OUT, "--force"),
        {"prompts.jsonl": PROMPTS, "probe.json": MINE},
        "verdict",
        timeout_s=60,
    ),
    Case(
        "report-over-user-file",
        10,
        ("report", RUN),
        run=user_file_at_report,
        names=("report", "did not write"),
        unchanged=(f"{RUN}/report",),
    ),
    Case(
        "report-over-user-folder",
        10,
        ("report", RUN),
        run=user_folder_at_report,
        names=("report", "did not write"),
        unchanged=(f"{RUN}/report/notes.txt",),
    ),
    Case(
        "report-rewrites-its-own", 10, ("report", RUN), expect="ok", run=lambda case_dir: None, timeout_s=60
    ),
]

# --- 11: resume across versions, data and stage folders -----------------------------------------------------
RESUME = ("train", "--resume", RUN, "--quiet", "--no-eval")


def written_with(**versions: str) -> Callable[[Path], None]:
    def damage(case_dir: Path) -> None:
        path = case_dir / RUN / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["packages"].update(versions)
        path.write_text(json.dumps(manifest))

    return damage


def data_changed(case_dir: Path) -> None:
    with (case_dir / "train.jsonl").open("a") as handle:
        handle.write(
            json.dumps(
                {"messages": [{"role": "user", "content": "new?"}, {"role": "assistant", "content": "1"}]}
            )
            + "\n"
        )


def stage_renamed(case_dir: Path) -> None:
    (case_dir / RUN / "sft").rename(case_dir / RUN / "sft-old")


RESUME_CASES: list[Case] = [
    Case(
        "resume-transformers-major-changed",
        11,
        RESUME,
        run=written_with(transformers="4.57.1"),
        names=("--resume", "transformers 4.57.1", "--accept-changes"),
    ),
    Case(
        "resume-trl-major-changed",
        11,
        RESUME,
        run=written_with(trl="0.20.0"),
        names=("trl 0.20.0", "--accept-changes"),
    ),
    Case(
        "resume-transformers-major-accepted",
        11,
        (*RESUME, "--accept-changes"),
        run=written_with(transformers="4.57.1"),
        expect="ok",
        timeout_s=60,
    ),
    Case(
        "resume-tunesmith-version-changed",
        11,
        RESUME,
        run=written_with(tunesmith="0.0.1", peft="0.1.0"),
        expect="ok",
        timeout_s=60,
    ),
    Case(
        "resume-data-changed",
        11,
        RESUME,
        run=data_changed,
        names=("train.jsonl", "data changed", "--accept-changes"),
    ),
    Case(
        "resume-stage-folder-renamed",
        11,
        RESUME,
        run=stage_renamed,
        names=("sft-old", "stage sft", "step 0"),
        absent=(f"{RUN}/sft",),
    ),
]


# --- 12: the smaller items: commands' inputs and the playbook's pitfalls --------------------------------------
def chat_row(*messages: dict[str, Any]) -> str:
    return json.dumps({"messages": list(messages)}) + "\n"


USER = {"role": "user", "content": "zq 1?"}
TOOL_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
}
TOOL_RESULT = {"role": "tool", "tool_call_id": "c1", "content": "42"}
RFT_STAGE = {
    "technique": "rft",
    "mode": "lora",
    "data": {"train": "prompts.jsonl"},
    "data_mixing": {"customer_percent": 100},
    "hyperparameters": {"max_steps": 2, "global_batch_size": 4, "micro_batch_size": 4},
    "rft": {"reward": "exact_match", "number_generation": 2, "max_new_tokens": 4},
}
CPT_STAGE = {
    "technique": "cpt",
    "mode": "lora",
    "data": {"train": "c.jsonl"},
    "data_mixing": {"customer_percent": 100},
    "hyperparameters": {"max_steps": 2, "global_batch_size": 4, "micro_batch_size": 4},
}
CPT_ROWS = "".join(json.dumps({"text": f"note {i} about zq"}) + "\n" for i in range(16))


def two_stages(first: dict[str, Any] | None, second: dict[str, Any] | None) -> dict[str, FileContent]:
    """The base recipe's SFT stage with `first` before it and `second` after it (None: nothing)."""
    recipe = base_recipe()
    sft = recipe["stages"][0]
    recipe["stages"] = [s for s in (first, sft, second) if s is not None]
    return {
        **base_files(),
        "r.yaml": micro_recipe(base=recipe),
        "prompts.jsonl": PROMPTS,
        "c.jsonl": CPT_ROWS,
    }


SMALL_CASES: list[Case] = [
    Case(
        "inspect-folder-of-jsonl",
        12,
        ("data", "inspect", "d"),
        {"d/a.jsonl": TRAIN, "d/b.jsonl": TRAIN},
        names=("d", "datasets folder"),
    ),
    Case(
        "plan-train-folder-of-jsonl",
        12,
        PLAN,
        {**recipe_files({"stages.0.data.train": "d"}), "d/a.jsonl": TRAIN},
        names=("d", "datasets folder"),
    ),
    Case(
        "chat-non-utf8-line",
        12,
        ("chat", "@MODEL@", "--max-new-tokens", "2"),
        {"in.txt": b"\xff\xfe zq?\nzq 1?\n"},
        "ok",
        stdin="in.txt",
        said=("not UTF-8", "model> "),
        timeout_s=30,
    ),
    Case(
        "inspect-tool-call-turn",
        12,
        ("data", "inspect", "t.jsonl", "--kind", "sft"),
        {"t.jsonl": chat_row(USER, TOOL_CALL)},
        names=("t.jsonl:1", "tool_calls", "not supported"),
        not_names=("content is empty",),
    ),
    Case(
        "plan-tool-result-turn",
        12,
        PLAN,
        with_train(chat_row(USER, {"role": "assistant", "content": "let me look"}, TOOL_RESULT)),
        names=("bad.jsonl:1", "messages[2]", "tool_call_id"),
        not_names=("content is empty", "role 'tool'\""),
    ),
    Case(
        "plan-forgetting-threshold-nan",
        12,
        PLAN,
        recipe_files({"stages.0.monitoring": {"thresholds": {"forgetting": {"max_drop": float("nan")}}}}),
        names=("max_drop", "finite"),
    ),
    Case(
        "plan-forgetting-threshold-inf",
        12,
        PLAN,
        recipe_files({"stages.0.monitoring": {"thresholds": {"forgetting": {"max_drop": float("inf")}}}}),
        names=("max_drop", "finite"),
    ),
    Case(
        "plan-acknowledge-unknown-rule",
        12,
        PLAN,
        recipe_files({"acknowledge.lr-deviates-while-mixng": "typo"}),
        names=("acknowledge.lr-deviates-while-mixng", "lr-deviates-while-mixing"),
    ),
    Case(
        "lint-acknowledge-unknown-stage",
        12,
        LINT,
        recipe_files({"acknowledge.full-rank-without-lora@sfft": "typo"}),
        names=("sfft", "sft"),
    ),
    Case(
        "train-acknowledge-unknown-rule",
        12,
        TRAIN_ARGS,
        recipe_files({"acknowledge.no-such-rule": "x"}),
        names=("no-such-rule",),
        absent=("runs",),
    ),
    Case(
        "lint-sft-after-rft",
        12,
        ("lint", "r.yaml", "--format", "json"),
        two_stages(RFT_STAGE, None),
        "verdict",
        said=('"sft-after-rft"',),
    ),
    Case(
        "lint-cpt-only-on-post-trained",
        12,
        ("lint", "r.yaml", "--format", "json"),
        {**base_files(), "c.jsonl": CPT_ROWS, "r.yaml": micro_recipe({"stages": [CPT_STAGE]})},
        "verdict",
        said=('"cpt-only-on-post-trained"',),
    ),
    Case(
        "lint-cpt-then-sft-on-post-trained",
        12,
        ("lint", "r.yaml", "--format", "json"),
        two_stages(CPT_STAGE, None),
        "verdict",
    ),
]

ROUND_TWO: list[Case] = [*MODEL_CASES, *NAME_CASES, *RESUME_CASES, *SMALL_CASES]
