"""The hostile-input corpus of issue 21, as data: recipes, data files, command-line arguments, damaged run
folders and (in `HTTP_CASES`) raw HTTP requests to `tunesmith reward serve`.

A `Case` is run by `test_corpus.py` as `tunesmith <argv>` in a fresh folder holding `files`, in a forked
child of one runner process (tests/hostile/runner.py), under a timeout and a 1 GiB memory bound. Expected:
- `error`: exit 2 and exactly one line on stderr (argparse's usage lines aside) that contains every string
  of `names` (the file, line or key at fault) and none of `not_names`;
- `ok`: exit 0;
- `verdict`: exit 0 or 1 (the probe's gate);
- `reward-failed`: the probe's own verdict when the reward never worked: neither 0 nor 1 nor a crash, and
  the output says so ("reward").
Never: a traceback, `internal error`, a timeout, memory growth past 1 GiB. `unchanged` files must keep
their bytes; `absent` paths must not exist afterwards.

`class` is the issue's failure class: 1 unvalidated inputs reach plan/lint/train, 2 records overwritten,
3 hangs and unbounded memory, 4 internal errors for ordinary conditions, 5 silent coercion, 6 the reward
server, 7 the probe, 8 misleading messages.

Placeholders in argv and in text files: `@D@` the case's folder, `@MODEL@` the micro model's folder.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RUN_NAME = "micro"
RUN = f"runs/{RUN_NAME}"
STAGE = f"{RUN}/sft"


class Fifo:
    """A named pipe nobody writes to (reading it blocks forever)."""


@dataclass(frozen=True)
class Symlink:
    target: str


class Folder:
    """An (empty) directory where a file is expected."""


@dataclass(frozen=True)
class Made:
    """A path made by `make(path, micro_model_dir)` (a damaged copy of the micro model, ...)."""

    make: Callable[[Path, Path], None]


FileContent = str | bytes | Fifo | Symlink | Folder | Made | Callable[[], bytes]


@dataclass(frozen=True)
class Case:
    name: str
    klass: int
    argv: tuple[str, ...]
    files: dict[str, FileContent] = field(default_factory=dict)
    expect: str = "error"  # error | ok | verdict | reward-failed
    names: tuple[str, ...] = ()
    not_names: tuple[str, ...] = ()
    env: dict[str, str | None] = field(default_factory=dict)
    run: Callable[[Path], None] | None = None  # copy the finished run in, then damage the copy
    unchanged: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    timeout_s: float = 10
    stdin: str | None = None  # a file of `files` read as standard input (else /dev/null)
    said: tuple[str, ...] = ()  # an accepted case's output (stdout + stderr) must contain these


# --- building blocks -------------------------------------------------------------------------------------


def jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def sft_rows(count: int, offset: int = 0) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"zq {i + offset}?"},
                {"role": "assistant", "content": f"{(i + offset) % 7}"},
            ]
        }
        for i in range(count)
    ]


def rft_rows(count: int) -> list[dict]:
    return [
        {"id": f"p{i}", "messages": [{"role": "user", "content": f"zq {i}?"}], "reference_answer": str(i % 7)}
        for i in range(count)
    ]


def eval_rows(count: int) -> list[dict]:
    return [{"query": f"zq {i}?", "response": str(i % 7)} for i in range(count)]


TRAIN = jsonl(sft_rows(16))
VALIDATION = jsonl(sft_rows(4, offset=1000))
PROMPTS = jsonl(rft_rows(8))


def base_files() -> dict[str, FileContent]:
    return {"train.jsonl": TRAIN, "val.jsonl": VALIDATION}


def base_recipe() -> dict:
    """The smallest recipe that trains: 4 full-rank SFT steps of the micro model, no general data."""
    return {
        "name": RUN_NAME,
        "model": {"path": "@MODEL@", "checkpoint": "post-trained"},
        "output_dir": "runs",
        # lint-clean: a case's stderr holds its one error line and nothing else
        "acknowledge": {
            "lr-deviates-while-mixing": "micro test model",
            "customer-share-far-from-50": "test",
            "full-rank-without-lora": "test",
            "sft-data-count": "test",
        },
        "stages": [
            {
                "technique": "sft",
                "mode": "full",
                "data": {"train": "train.jsonl", "validation": "val.jsonl"},
                "data_mixing": {"customer_percent": 100},
                "hyperparameters": {
                    "max_steps": 4,
                    "global_batch_size": 4,
                    "micro_batch_size": 4,
                    "val_check_interval": 2,
                    "lr": 0.003,
                    "save_top_k": 2,
                },
            }
        ],
    }


def rft_recipe(reward: Any) -> dict:
    recipe = base_recipe()
    recipe["stages"] = [
        {
            "technique": "rft",
            "mode": "lora",
            "data": {"train": "prompts.jsonl"},
            "data_mixing": {"customer_percent": 100},
            "hyperparameters": {"max_steps": 2, "global_batch_size": 4, "micro_batch_size": 4},
            "rft": {"reward": reward, "number_generation": 2, "max_new_tokens": 4},
        }
    ]
    return recipe


def _set(tree: Any, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        tree = tree[int(key)] if isinstance(tree, list) else tree.setdefault(key, {})
    if value is _DELETE:
        del tree[last]
    elif isinstance(tree, list):
        tree[int(last)] = value
    else:
        tree[last] = value


_DELETE = object()


def micro_recipe(changes: dict[str, Any] | None = None, *, base: dict | None = None) -> str:
    """The base recipe as YAML with dotted-path changes (`stages.0.hyperparameters.lr`)."""
    tree = base if base is not None else base_recipe()
    for dotted, value in (changes or {}).items():
        _set(tree, dotted, value)
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


def recipe_files(changes: dict[str, Any] | None = None, **extra: FileContent) -> dict[str, FileContent]:
    return {**base_files(), "r.yaml": micro_recipe(changes), **extra}


def with_train(content: FileContent, name: str = "bad.jsonl") -> dict[str, FileContent]:
    """The base recipe whose training data is `content`."""
    return recipe_files({"stages.0.data.train": name}, **{name: content})


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The billion-laughs YAML: `width ** levels` leaves from a few hundred bytes."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines)


def nested_bomb_recipe() -> str:
    """An alias bomb nested under `rft.reward.schema`, where the top-level check does not look."""
    recipe = micro_recipe(base=rft_recipe({"function": "json_schema", "schema": "@BOMB@"}))
    bomb = alias_bomb()
    anchors = "\n".join("    " + line for line in bomb.splitlines())
    return "x-anchors:\n" + anchors + "\n" + recipe.replace("'@BOMB@'", "*a9")


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def big_valid_jsonl(rows: int) -> Callable[[], bytes]:
    return lambda: jsonl(sft_rows(rows)).encode()


def gzip_of(text: str) -> Callable[[], bytes]:
    return lambda: gzip.compress(text.encode())


# --- damaging a copy of the finished run ---------------------------------------------------------------


def _unfinish(case_dir: Path) -> Path:
    """The run as a crash after the last checkpoint leaves it: no result, no best."""
    stage = case_dir / STAGE
    for name in ("result.json", "best.json"):
        (stage / name).unlink(missing_ok=True)
    shutil.rmtree(stage / "best", ignore_errors=True)
    return stage


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep)) - 1])


def keep_finished(case_dir: Path) -> None:
    """The finished run as it is."""


def unfinished(case_dir: Path) -> None:
    _unfinish(case_dir)


def truncated_checkpoints_json(case_dir: Path) -> None:
    _truncate(_unfinish(case_dir) / "checkpoints.json")


def truncated_metrics(case_dir: Path) -> None:
    _truncate(_unfinish(case_dir) / "metrics.jsonl", keep=0.6)


def garbage_metrics(case_dir: Path) -> None:
    stage = _unfinish(case_dir)
    with (stage / "metrics.jsonl").open("ab") as handle:
        handle.write(b"\x00\x00\xff{not json\n")


def emptied_latest_checkpoint(case_dir: Path) -> None:
    stage = _unfinish(case_dir)
    (stage / "checkpoints" / "checkpoint-4" / "model.safetensors").write_bytes(b"")


def truncated_latest_weights(case_dir: Path) -> None:
    stage = _unfinish(case_dir)
    _truncate(stage / "checkpoints" / "checkpoint-4" / "model.safetensors")


def deleted_resolved_recipe(case_dir: Path) -> None:
    (_unfinish(case_dir).parent / "recipe.resolved.yaml").unlink()


def garbage_resolved_recipe(case_dir: Path) -> None:
    (_unfinish(case_dir).parent / "recipe.resolved.yaml").write_text("stages: [\n  - {{{\n")


def checkpoints_json_not_a_list(case_dir: Path) -> None:
    (_unfinish(case_dir) / "checkpoints.json").write_text('{"checkpoints": 5}')


def changed_recipe(case_dir: Path) -> None:
    """The user's recipe edited after the run finished (a higher LR)."""
    path = case_dir / "r.yaml"
    path.write_text(path.read_text().replace("lr: 0.003", "lr: 0.005"))


def new_recipe_for_resume(case_dir: Path) -> None:
    _unfinish(case_dir)
    tree = yaml.safe_load((case_dir / "r.yaml").read_text())
    tree["stages"][0]["hyperparameters"]["lr"] = 0.005
    (case_dir / "new.yaml").write_text(yaml.safe_dump(tree))


FINISHED_FILES = (f"{RUN}/recipe.resolved.yaml", f"{STAGE}/result.json", f"{STAGE}/best/model.safetensors")


# --- the cases -----------------------------------------------------------------------------------------

PLAN = ("plan", "r.yaml")
LINT = ("lint", "r.yaml")
TRAIN_ARGS = ("train", "r.yaml", "--quiet", "--no-eval")
INSPECT = ("data", "inspect")
PROBE = ("probe", "--model", "@MODEL@", "--data", "prompts.jsonl", "--prompts", "2", "--generations", "2")
PROBE += ("--max-new-tokens", "4")

REWARD_MODULES = {
    "raising_reward.py": "def score(completion, reference_answer, **extra):\n    raise RuntimeError('down')\n",
    "garbage_reward.py": "def score(completion, reference_answer, **extra):\n    return 'badjson'\n",
    "good_reward.py": "def score(completion, reference_answer, **extra):\n    return float(len(completion) % 2)\n",
}

CASES: list[Case] = [
    # 1 -- plan, lint and train compute from unvalidated inputs -----------------------------------------
    Case("plan-valid-recipe", 1, PLAN, recipe_files(), "ok"),
    Case("lint-valid-recipe", 1, LINT, recipe_files(), "ok"),
    Case("plan-train-gzip", 1, PLAN, with_train(gzip_of(TRAIN), "train.jsonl.gz"), names=("train.jsonl.gz",)),
    Case("lint-train-gzip", 1, LINT, with_train(gzip_of(TRAIN), "train.jsonl.gz"), names=("train.jsonl.gz",)),
    Case("plan-train-yaml", 1, PLAN, with_train("- a: 1\n- b: 2\n" * 6, "train.yaml"), names=("train.yaml",)),
    Case(
        "plan-train-rft-prompts-as-sft",
        1,
        PLAN,
        with_train(PROMPTS, "prompts.jsonl"),
        names=("prompts.jsonl",),
    ),
    Case(
        "lint-train-rft-prompts-as-sft",
        1,
        LINT,
        with_train(PROMPTS, "prompts.jsonl"),
        names=("prompts.jsonl",),
    ),
    Case(
        "plan-train-bad-json-line-3",
        1,
        PLAN,
        with_train(TRAIN.replace("\n", "\n{oops\n", 2).replace("\n{oops\n", "\n", 1)),
        names=("bad.jsonl:3",),
    ),
    Case(
        "lint-train-bad-json-line-3",
        1,
        LINT,
        with_train(TRAIN.replace("\n", "\n{oops\n", 2).replace("\n{oops\n", "\n", 1)),
        names=("bad.jsonl:3",),
    ),
    Case("plan-train-empty", 1, PLAN, with_train(""), names=("bad.jsonl",)),
    Case("plan-train-blank-lines-only", 1, PLAN, with_train("\n\n  \n"), names=("bad.jsonl",)),
    Case(
        "plan-train-missing",
        1,
        PLAN,
        recipe_files({"stages.0.data.train": "nope.jsonl"}),
        names=("nope.jsonl",),
    ),
    Case("plan-train-binary", 1, PLAN, with_train(bytes(range(256)) * 40), names=("bad.jsonl",)),
    Case(
        "plan-train-array-line",
        1,
        PLAN,
        with_train(TRAIN + "[1, 2, 3]\n"),
        names=("bad.jsonl:17",),
    ),
    Case(
        "plan-train-wrong-role",
        1,
        PLAN,
        with_train(jsonl([*sft_rows(3), {"messages": [{"role": "wizard", "content": "hi"}]}])),
        names=("bad.jsonl:4",),
    ),
    Case(
        "plan-validation-malformed",
        1,
        PLAN,
        recipe_files(**{"val.jsonl": VALIDATION + "{broken\n"}),
        names=("val.jsonl:5",),
    ),
    Case(
        "plan-eval-domain-missing",
        1,
        PLAN,
        recipe_files({"evaluation.domain": "missing-eval.jsonl"}),
        names=("missing-eval.jsonl",),
    ),
    Case(
        "plan-eval-domain-malformed",
        1,
        PLAN,
        recipe_files(
            {"evaluation.domain": "eval.jsonl"}, **{"eval.jsonl": jsonl(eval_rows(3)) + '{"query": 1}\n'}
        ),
        names=("eval.jsonl:4",),
    ),
    Case(
        "plan-eval-domain-valid",
        1,
        PLAN,
        recipe_files({"evaluation.domain": "eval.jsonl"}, **{"eval.jsonl": jsonl(eval_rows(5))}),
        "ok",
    ),
    Case(
        "plan-general-source-missing",
        1,
        PLAN,
        recipe_files(
            {
                "stages.0.data_mixing": {
                    "customer_percent": 50,
                    "general": {"mine": 100},
                    "general_sources": {"mine": "general-missing.jsonl"},
                }
            }
        ),
        names=("general-missing.jsonl",),
    ),
    Case(
        "plan-general-source-malformed",
        1,
        PLAN,
        recipe_files(
            {
                "stages.0.data_mixing": {
                    "customer_percent": 50,
                    "general": {"mine": 100},
                    "general_sources": {"mine": "general.jsonl"},
                }
            },
            **{"general.jsonl": TRAIN + "not json at all\n"},
        ),
        names=("general.jsonl:17",),
    ),
    Case(
        "plan-quality-file-missing",
        1,
        PLAN,
        recipe_files(
            {
                "stages.0.data_mixing.quality_tail_percent": 10,
                "stages.0.data_mixing.quality_file": "gold.jsonl",
            }
        ),
        names=("gold.jsonl",),
    ),
    Case(
        "plan-reward-typo",
        1,
        PLAN,
        {"r.yaml": micro_recipe(base=rft_recipe("exact_matchh")), "prompts.jsonl": PROMPTS},
        names=("exact_matchh",),
    ),
    Case(
        "lint-reward-typo",
        1,
        LINT,
        {"r.yaml": micro_recipe(base=rft_recipe("exact_matchh")), "prompts.jsonl": PROMPTS},
        names=("exact_matchh",),
    ),
    Case(
        "plan-reward-bare-http",
        1,
        PLAN,
        {"r.yaml": micro_recipe(base=rft_recipe("http://")), "prompts.jsonl": PROMPTS},
        names=("http://",),
    ),
    Case(
        "plan-reward-malformed-arn",
        1,
        PLAN,
        {"r.yaml": micro_recipe(base=rft_recipe("arn:aws:lambda:nowhere")), "prompts.jsonl": PROMPTS},
        names=("arn:aws:lambda:nowhere",),
    ),
    Case(
        "plan-reward-missing-file",
        1,
        PLAN,
        {"r.yaml": micro_recipe(base=rft_recipe("missing.py:fn")), "prompts.jsonl": PROMPTS},
        names=("missing.py",),
    ),
    Case(
        "plan-reward-missing-function",
        1,
        PLAN,
        {
            "r.yaml": micro_recipe(base=rft_recipe("good_reward.py:nothing_here")),
            "prompts.jsonl": PROMPTS,
            **REWARD_MODULES,
        },
        names=("nothing_here",),
    ),
    Case(
        "plan-reward-schema-file-missing",
        1,
        PLAN,
        {
            "r.yaml": micro_recipe(base=rft_recipe({"function": "json_schema", "schema": "schema.json"})),
            "prompts.jsonl": PROMPTS,
        },
        names=("schema.json",),
    ),
    Case(
        "plan-rft-valid",
        1,
        PLAN,
        {"r.yaml": micro_recipe(base=rft_recipe("exact_match")), "prompts.jsonl": PROMPTS},
        "ok",
    ),
    Case(
        "plan-rft-prompts-given-sft-data",
        1,
        PLAN,
        {"r.yaml": micro_recipe(base=rft_recipe("exact_match")), "prompts.jsonl": TRAIN},
        names=("prompts.jsonl",),
    ),
    Case(
        "train-eval-domain-missing-before-training",
        1,
        ("train", "r.yaml", "--quiet"),
        recipe_files({"evaluation.domain": "missing-eval.jsonl"}),
        names=("missing-eval.jsonl",),
        absent=(STAGE,),
        timeout_s=60,
    ),
    Case(
        "train-bad-data-line-before-training",
        1,
        TRAIN_ARGS,
        with_train(TRAIN + "{oops\n"),
        names=("bad.jsonl:17",),
        absent=(STAGE,),
        timeout_s=60,
    ),
    Case("plan-train-bom", 1, PLAN, with_train("\ufeff" + TRAIN), "ok"),
    Case("plan-train-crlf", 1, PLAN, with_train(TRAIN.replace("\n", "\r\n")), "ok"),
    Case(
        "plan-train-unicode",
        1,
        PLAN,
        with_train(
            jsonl(
                [
                    {
                        "messages": [
                            {"role": "user", "content": f"Grüße 你好 🎉 {i}?"},
                            {"role": "assistant", "content": "ü"},
                        ]
                    }
                    for i in range(8)
                ]
            )
        ),
        "ok",
    ),
    Case(
        "plan-recipe-bom-crlf",
        1,
        PLAN,
        {**base_files(), "r.yaml": "\ufeff" + micro_recipe().replace("\n", "\r\n")},
        "ok",
    ),
    Case("plan-recipe-relative-from-elsewhere", 1, ("plan", "@D@/r.yaml"), recipe_files(), "ok"),
    # data inspect: the reference validator, on the same hostile files
    Case(
        "inspect-gzip",
        1,
        (*INSPECT, "train.jsonl.gz"),
        {"train.jsonl.gz": gzip_of(TRAIN)},
        names=("train.jsonl.gz",),
    ),
    Case("inspect-bom", 1, (*INSPECT, "t.jsonl"), {"t.jsonl": "\ufeff" + TRAIN}, "ok"),
    Case("inspect-crlf", 1, (*INSPECT, "t.jsonl"), {"t.jsonl": TRAIN.replace("\n", "\r\n")}, "ok"),
    Case("inspect-no-final-newline", 1, (*INSPECT, "t.jsonl"), {"t.jsonl": TRAIN.rstrip("\n")}, "ok"),
    Case(
        "inspect-big-valid",
        1,
        (*INSPECT, "big.jsonl"),
        {"big.jsonl": big_valid_jsonl(60_000)},
        "ok",
        timeout_s=60,
    ),
    Case(
        "inspect-long-valid-line",
        1,
        (*INSPECT, "long.jsonl"),
        {"long.jsonl": lambda: json.dumps({"text": "word " * 800_000}).encode() + b"\n"},
        "ok",
        timeout_s=60,
    ),
    Case("inspect-rft-valid", 1, (*INSPECT, "p.jsonl", "--kind", "rft"), {"p.jsonl": PROMPTS}, "ok"),
    Case(
        "inspect-eval-valid",
        1,
        (*INSPECT, "e.jsonl", "--kind", "eval"),
        {"e.jsonl": jsonl(eval_rows(4))},
        "ok",
    ),
    Case(
        "inspect-cpt-unicode",
        1,
        (*INSPECT, "c.jsonl", "--kind", "cpt"),
        {"c.jsonl": jsonl([{"text": "Ωmega — naïve café 🚀 " * 20}] * 5)},
        "ok",
    ),
    Case("inspect-missing", 1, (*INSPECT, "nope.jsonl"), {}, names=("nope.jsonl",)),
    # 2 -- records overwritten or reused silently ------------------------------------------------------
    Case(
        "train-existing-run-name",
        2,
        TRAIN_ARGS,
        run=keep_finished,
        names=("--resume",),
        unchanged=FINISHED_FILES,
    ),
    Case(
        "train-existing-run-changed-recipe",
        2,
        TRAIN_ARGS,
        run=changed_recipe,
        names=("--resume",),
        unchanged=FINISHED_FILES,
    ),
    Case(
        "train-new-recipe-with-resume",
        2,
        ("train", "new.yaml", "--resume", RUN, "--quiet", "--no-eval"),
        run=new_recipe_for_resume,
        names=("new.yaml",),
        unchanged=(f"{RUN}/recipe.resolved.yaml",),
        timeout_s=60,
    ),
    Case(
        "train-resume-finished-run",
        2,
        ("train", "--resume", RUN, "--quiet", "--no-eval"),
        expect="ok",
        run=keep_finished,
        unchanged=FINISHED_FILES,
        timeout_s=60,
    ),
    Case(
        "train-resume-unfinished-run",
        2,
        ("train", "--resume", RUN, "--quiet", "--no-eval"),
        expect="ok",
        run=unfinished,
        timeout_s=60,
    ),
    Case(
        "plan-out-over-own-recipe",
        2,
        (*PLAN, "--out", "r.yaml"),
        recipe_files(),
        names=("r.yaml",),
        unchanged=("r.yaml",),
    ),
    Case(
        "plan-out-over-other-file",
        2,
        (*PLAN, "--out", "notes.txt"),
        recipe_files(**{"notes.txt": "my notes\n"}),
        names=("notes.txt",),
        unchanged=("notes.txt",),
    ),
    Case("plan-out-new-file", 2, (*PLAN, "--out", "resolved.yaml"), recipe_files(), "ok"),
    Case(
        "advise-out-over-existing",
        2,
        ("advise", "--demonstrations", "train.jsonl", "--out", "mine.yaml"),
        {**base_files(), "mine.yaml": "name: hand-written\n"},
        names=("mine.yaml",),
        unchanged=("mine.yaml",),
    ),
    Case(
        "advise-out-new",
        2,
        ("advise", "--demonstrations", "train.jsonl", "--out", "new.yaml"),
        base_files(),
        "ok",
    ),
    Case(
        "export-into-nonempty-folder",
        2,
        ("export", RUN, "--out", "taken"),
        {"taken/keep.txt": "mine\n"},
        names=("taken",),
        run=keep_finished,
        unchanged=("taken/keep.txt",),
        timeout_s=60,
    ),
    # 3 -- hangs and unbounded memory ------------------------------------------------------------------
    Case(
        "plan-alias-bomb-nested",
        3,
        PLAN,
        {"r.yaml": nested_bomb_recipe(), "prompts.jsonl": PROMPTS},
        names=("r.yaml",),
    ),
    Case(
        "lint-alias-bomb-nested",
        3,
        LINT,
        {"r.yaml": nested_bomb_recipe(), "prompts.jsonl": PROMPTS},
        names=("r.yaml",),
    ),
    Case("plan-alias-bomb-top", 3, PLAN, {"r.yaml": alias_bomb()}, names=("r.yaml",)),
    Case(
        "plan-alias-bomb-in-override-free-key",
        3,
        PLAN,
        {**base_files(), "r.yaml": alias_bomb(8, 10) + "\n" + micro_recipe()},
        names=("r.yaml",),
    ),
    Case("inspect-fifo", 3, (*INSPECT, "pipe.jsonl"), {"pipe.jsonl": Fifo()}, names=("pipe.jsonl",)),
    Case("plan-train-fifo", 3, PLAN, with_train(Fifo(), "pipe.jsonl"), names=("pipe.jsonl",)),
    Case("lint-train-fifo", 3, LINT, with_train(Fifo(), "pipe.jsonl"), names=("pipe.jsonl",)),
    Case("plan-recipe-fifo", 3, ("plan", "pipe.yaml"), {"pipe.yaml": Fifo()}, names=("pipe.yaml",)),
    Case("inspect-dev-zero", 3, (*INSPECT, "/dev/zero"), {}, names=("/dev/zero",)),
    Case(
        "plan-train-dev-zero",
        3,
        PLAN,
        recipe_files({"stages.0.data.train": "/dev/zero"}),
        names=("/dev/zero",),
    ),
    Case("plan-recipe-dev-zero", 3, ("plan", "/dev/zero"), {}, names=("/dev/zero",)),
    Case(
        "plan-train-symlink-to-dev-zero",
        3,
        PLAN,
        with_train(Symlink("/dev/zero"), "zero.jsonl"),
        names=("zero.jsonl",),
    ),
    Case(
        "plan-eval-domain-fifo",
        3,
        PLAN,
        recipe_files({"evaluation.domain": "pipe.jsonl"}, **{"pipe.jsonl": Fifo()}),
        names=("pipe.jsonl",),
    ),
    Case(
        "plan-reward-schema-fifo",
        3,
        PLAN,
        {
            "r.yaml": micro_recipe(base=rft_recipe({"function": "json_schema", "schema": "schema.json"})),
            "prompts.jsonl": PROMPTS,
            "schema.json": Fifo(),
        },
        names=("schema.json",),
    ),
    Case(
        "inspect-deep-json",
        3,
        (*INSPECT, "deep.jsonl"),
        {"deep.jsonl": deep_json(100_000) + "\n"},
        names=("deep.jsonl:1",),
    ),
    Case(
        "inspect-deep-json-object",
        3,
        (*INSPECT, "deep.jsonl"),
        {"deep.jsonl": TRAIN + '{"a":' * 50_000 + "1" + "}" * 50_000 + "\n"},
        names=("deep.jsonl:17",),
    ),
    Case(
        "plan-train-deep-json",
        3,
        PLAN,
        with_train(TRAIN + deep_json(100_000) + "\n"),
        names=("bad.jsonl:17",),
    ),
    Case(
        "inspect-unterminated-deep",
        3,
        (*INSPECT, "deep.jsonl"),
        {"deep.jsonl": "[" * 200_000 + "\n"},
        names=("deep.jsonl:1",),
    ),
    Case(
        "plan-recipe-deep-yaml",
        3,
        PLAN,
        {"r.yaml": "name: " + "[" * 50_000 + "]" * 50_000 + "\n"},
        names=("r.yaml",),
    ),
    Case(
        "plan-recipe-huge-document",
        3,
        PLAN,
        {**base_files(), "r.yaml": lambda: (micro_recipe() + "notes: " + "x" * (32 << 20) + "\n").encode()},
        names=("r.yaml",),
        timeout_s=30,
    ),
    Case(
        "plan-max-steps-5000-digits",
        3,
        PLAN,
        {**base_files(), "r.yaml": micro_recipe().replace("max_steps: 4", "max_steps: " + "9" * 5000)},
        names=("r.yaml:", "5000"),
    ),
    Case(
        "inspect-5000-digit-number",
        3,
        (*INSPECT, "p.jsonl", "--kind", "rft"),
        {
            "p.jsonl": PROMPTS
            + '{"id": "z", "messages": [{"role": "user", "content": "q"}], "reference_answer": '
            + "9" * 5000
            + "}\n"
        },
        names=("p.jsonl:9",),
    ),
    Case("inspect-directory", 3, (*INSPECT, "adir"), {"adir": Folder()}, names=("adir",)),
    # 4 -- internal errors for ordinary conditions ------------------------------------------------------
    Case("plan-train-is-directory", 4, PLAN, with_train(Folder(), "data"), names=("data",)),
    Case("plan-recipe-is-directory", 4, ("plan", "adir"), {"adir": Folder()}, names=("adir",)),
    Case("plan-recipe-missing", 4, ("plan", "nope.yaml"), {}, names=("nope.yaml",)),
    Case("plan-recipe-empty", 4, PLAN, {"r.yaml": ""}, names=("r.yaml",)),
    Case("plan-recipe-a-list", 4, PLAN, {"r.yaml": "- 1\n- 2\n"}, names=("r.yaml",)),
    Case(
        "plan-recipe-invalid-utf8",
        4,
        PLAN,
        {**base_files(), "r.yaml": b"name: \xff\xfe\xfa micro\n"},
        names=("r.yaml",),
    ),
    Case(
        "train-output-dir-is-file",
        4,
        TRAIN_ARGS,
        recipe_files({"output_dir": "occupied"}, occupied="a file\n"),
        names=("occupied",),
        unchanged=("occupied",),
    ),
    Case(
        "train-output-dir-unwritable",
        4,
        TRAIN_ARGS,
        recipe_files({"output_dir": "/proc/hostile-runs"}),
        names=("/proc/hostile-runs",),
    ),
    Case(
        "train-output-dir-under-file",
        4,
        TRAIN_ARGS,
        recipe_files({"output_dir": "occupied/runs"}, occupied="a file\n"),
        names=("occupied",),
    ),
    Case(
        "inspect-builtin-home-is-file",
        4,
        (*INSPECT, "builtin:brindle/sft"),
        {"home": "a file\n"},
        names=("TUNESMITH_HOME",),
        env={"TUNESMITH_HOME": "@D@/home"},
    ),
    Case(
        "train-name-too-long",
        4,
        TRAIN_ARGS,
        recipe_files({"name": "n" * 300}),
        names=("name",),
        absent=("runs",),
    ),
    Case(
        "train-name-nul", 4, TRAIN_ARGS, recipe_files({"name": "a\x00b"}), names=("name",), absent=("runs",)
    ),
    Case(
        "train-name-path-traversal",
        4,
        TRAIN_ARGS,
        recipe_files({"name": "../escaped"}),
        names=("name",),
        absent=("escaped",),
    ),
    Case("train-name-empty", 4, TRAIN_ARGS, recipe_files({"name": ""}), names=("name",), absent=("runs",)),
    Case(
        "train-seed-2-pow-70", 4, TRAIN_ARGS, recipe_files({"seed": 2**70}), names=("seed",), absent=(STAGE,)
    ),
    Case(
        "train-report-to-wandb-missing",
        4,
        TRAIN_ARGS,
        recipe_files({"report_to": ["wandb"]}),
        names=("wandb",),
        absent=(STAGE,),
        env={"WANDB_MODE": "offline"},
    ),
    Case(
        "inspect-lone-surrogate",
        4,
        (*INSPECT, "s.jsonl"),
        {
            "s.jsonl": TRAIN
            + '{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "x"}]}\n'
        },
        names=("s.jsonl:17",),
    ),
    Case(
        "plan-train-lone-surrogate",
        4,
        PLAN,
        with_train(
            TRAIN
            + '{"messages": [{"role": "user", "content": "\\udfff"}, {"role": "assistant", "content": "x"}]}\n'
        ),
        names=("bad.jsonl:17",),
    ),
    Case(
        "inspect-garbage-parquet",
        4,
        (*INSPECT, "t.parquet"),
        {"t.parquet": b"PAR1" + os.urandom(500)},
        names=("t.parquet",),
    ),
    Case("inspect-garbage-arrow", 4, (*INSPECT, "t.arrow"), {"t.arrow": b"\x00" * 300}, names=("t.arrow",)),
    Case(
        "inspect-tokenizer-missing",
        4,
        (*INSPECT, "t.jsonl", "--tokenizer", "@D@/nope-tok"),
        {"t.jsonl": TRAIN},
        names=("nope-tok",),
    ),
    Case(
        "reward-serve-port-70000", 4, ("reward", "serve", "exact_match", "--port", "70000"), names=("--port",)
    ),
    Case(
        "reward-serve-port-negative", 4, ("reward", "serve", "exact_match", "--port", "-1"), names=("--port",)
    ),
    Case(
        "reward-serve-port-not-number",
        4,
        ("reward", "serve", "exact_match", "--port", "http"),
        names=("--port",),
    ),
    Case(
        "reward-serve-spec-missing",
        4,
        ("reward", "serve", "missing.py:fn", "--port", "0"),
        names=("missing.py",),
    ),
    Case(
        "reward-serve-token-env-unset",
        4,
        ("reward", "serve", "exact_match", "--port", "0", "--token-env", "HOSTILE_UNSET"),
        names=("HOSTILE_UNSET",),
        env={"HOSTILE_UNSET": None},
    ),
    Case(
        "resume-truncated-checkpoints-json",
        4,
        ("train", "--resume", RUN, "--quiet", "--no-eval"),
        run=truncated_checkpoints_json,
        names=("checkpoints.json",),
        timeout_s=60,
    ),
    Case(
        "resume-checkpoints-json-not-a-list",
        4,
        ("train", "--resume", RUN, "--quiet", "--no-eval"),
        run=checkpoints_json_not_a_list,
        names=("checkpoints.json",),
        timeout_s=60,
    ),
    Case(
        "resume-truncated-metrics",
        4,
        ("train", "--resume", RUN, "--quiet", "--no-eval"),
        run=truncated_metrics,
        names=("metrics.jsonl",),
        timeout_s=60,
    ),
    Case(
        "resume-garbage-metrics-line",
        4,
        ("train", "--resume", RUN, "--quiet", "--no-eval"),
        run=garbage_metrics,
        names=("metrics.jsonl",),
        timeout_s=60,
    ),
    Case(
        "resume-emptied-latest-checkpoint",
        4,
        ("train", "--resume", RUN, "--quiet", "--no-eval"),
        expect="ok",
        run=emptied_latest_checkpoint,
        timeout_s=90,
    ),
    Case(
        "resume-truncated-latest-weights",
        4,
        ("train", "--resume", RUN, "--quiet", "--no-eval"),
        expect="ok",
        run=truncated_latest_weights,
        timeout_s=90,
    ),
    Case(
        "resume-no-resolved-recipe",
        4,
        ("train", "--resume", RUN, "--quiet", "--no-eval"),
        run=deleted_resolved_recipe,
        names=("recipe.resolved.yaml",),
    ),
    Case(
        "resume-garbage-resolved-recipe",
        4,
        ("train", "--resume", RUN, "--quiet", "--no-eval"),
        run=garbage_resolved_recipe,
        names=("recipe.resolved.yaml",),
    ),
    Case("resume-missing-folder", 4, ("train", "--resume", "runs/none", "--quiet"), {}, names=("runs/none",)),
    Case(
        "resume-empty-folder",
        4,
        ("train", "--resume", "empty", "--quiet"),
        {"empty": Folder()},
        names=("empty",),
    ),
    Case("eval-model-missing", 4, ("eval", "--model", "@D@/no-model"), {}, names=("no-model",)),
    Case(
        "probe-model-missing",
        4,
        ("probe", "--model", "@D@/no-model", "--data", "prompts.jsonl", "--reward", "exact_match"),
        {"prompts.jsonl": PROMPTS},
        names=("no-model",),
    ),
    Case(
        "generate-prompts-missing",
        4,
        ("generate", "@MODEL@", "--prompts", "nope.jsonl"),
        {},
        names=("nope.jsonl",),
    ),
    Case("export-not-a-run", 4, ("export", "empty", "--out", "x"), {"empty": Folder()}, names=("empty",)),
    # 5 -- silent coercion or dropping ----------------------------------------------------------------
    Case(
        "plan-duplicate-stages-key",
        5,
        PLAN,
        {
            **base_files(),
            "r.yaml": micro_recipe() + "stages:\n  - technique: cpt\n    data: {train: train.jsonl}\n",
        },
        names=("stages",),
    ),
    Case(
        "plan-duplicate-nested-key",
        5,
        PLAN,
        {
            **base_files(),
            "r.yaml": micro_recipe().replace("    lr: 0.003\n", "    lr: 0.003\n    lr: 0.3\n"),
        },
        names=("lr",),
    ),
    Case("plan-lr-true", 5, PLAN, recipe_files({"stages.0.hyperparameters.lr": True}), names=("lr",)),
    Case(
        "plan-max-steps-true",
        5,
        PLAN,
        recipe_files({"stages.0.hyperparameters.max_steps": True}),
        names=("max_steps",),
    ),
    Case(
        "plan-max-steps-fraction",
        5,
        PLAN,
        recipe_files({"stages.0.hyperparameters.max_steps": 4.5}),
        names=("max_steps",),
    ),
    Case("plan-seed-fraction", 5, PLAN, recipe_files({"seed": 1.5}), names=("seed",)),
    Case("plan-lr-string", 5, PLAN, recipe_files({"stages.0.hyperparameters.lr": "fast"}), names=("lr",)),
    Case(
        "plan-lr-nan",
        5,
        PLAN,
        {**base_files(), "r.yaml": micro_recipe().replace("lr: 0.003", "lr: .nan")},
        names=("lr",),
    ),
    Case(
        "plan-customer-percent-150",
        5,
        PLAN,
        recipe_files({"stages.0.data_mixing.customer_percent": 150}),
        names=("customer_percent",),
    ),
    Case(
        "plan-family-and-path",
        5,
        PLAN,
        recipe_files({"model.family": "tiny"}),
        names=("model",),
    ),
    Case(
        "inspect-rft-ids-1-and-string-1",
        5,
        (*INSPECT, "p.jsonl", "--kind", "rft"),
        {
            "p.jsonl": jsonl(
                [
                    {"id": 1, "messages": [{"role": "user", "content": "a"}], "reference_answer": "1"},
                    {"id": "1", "messages": [{"role": "user", "content": "b"}], "reference_answer": "2"},
                ]
            )
        },
        names=("p.jsonl:2",),
    ),
    Case(
        "inspect-reference-1e999",
        5,
        (*INSPECT, "p.jsonl", "--kind", "rft"),
        {
            "p.jsonl": PROMPTS
            + '{"id": "z", "messages": [{"role": "user", "content": "q"}], "reference_answer": 1e999}\n'
        },
        names=("p.jsonl:9",),
    ),
    Case(
        "inspect-reference-nan",
        5,
        (*INSPECT, "p.jsonl", "--kind", "rft"),
        {
            "p.jsonl": PROMPTS
            + '{"id": "z", "messages": [{"role": "user", "content": "q"}], "reference_answer": NaN}\n'
        },
        names=("p.jsonl:9",),
    ),
    Case(
        "inspect-tool-calls-dropped",
        5,
        (*INSPECT, "t.jsonl", "--kind", "sft"),
        {
            "t.jsonl": TRAIN
            + jsonl(
                [
                    {
                        "messages": [
                            {"role": "user", "content": "weather?"},
                            {
                                "role": "assistant",
                                "content": "Let me check.",
                                "tool_calls": [
                                    {
                                        "id": "c1",
                                        "type": "function",
                                        "function": {"name": "w", "arguments": "{}"},
                                    }
                                ],
                            },
                        ]
                    }
                ]
            )
        },
        names=("t.jsonl:17",),
    ),
    Case(
        "inspect-max-length-negative",
        5,
        (*INSPECT, "t.jsonl", "--max-length", "-5"),
        {"t.jsonl": TRAIN},
        names=("--max-length",),
    ),
    Case(
        "probe-prompts-zero",
        5,
        (*PROBE, "--reward", "exact_match", "--prompts", "0"),
        {"prompts.jsonl": PROMPTS},
        names=("--prompts",),
    ),
    Case(
        "probe-generations-negative",
        5,
        (*PROBE, "--reward", "exact_match", "--generations", "-3"),
        {"prompts.jsonl": PROMPTS},
        names=("--generations",),
    ),
    Case(
        "probe-temperature-negative",
        5,
        (*PROBE, "--reward", "exact_match", "--temperature", "-1"),
        {"prompts.jsonl": PROMPTS},
        names=("--temperature",),
    ),
    Case(
        "probe-temperature-nan",
        5,
        (*PROBE, "--reward", "exact_match", "--temperature", "nan"),
        {"prompts.jsonl": PROMPTS},
        names=("--temperature",),
    ),
    Case(
        "lint-probe-positive-rate-2",
        5,
        (*LINT, "--probe-positive-rate", "2"),
        recipe_files(),
        names=("--probe-positive-rate",),
    ),
    Case(
        "advise-probe-positive-rate-negative",
        5,
        ("advise", "--demonstrations", "train.jsonl", "--probe-positive-rate", "-1"),
        base_files(),
        names=("--probe-positive-rate",),
    ),
    Case(
        "advise-domain-tokens-negative",
        5,
        ("advise", "--demonstrations", "train.jsonl", "--domain-tokens", "-10"),
        base_files(),
        names=("--domain-tokens",),
    ),
    Case(
        "eval-items-per-category-zero",
        5,
        ("eval", "--model", "@MODEL@", "--items-per-category", "0"),
        {},
        names=("--items-per-category",),
    ),
    Case(
        "eval-blend-negative",
        5,
        ("eval", "--model", RUN, "--blend", "-1"),
        run=keep_finished,
        names=("--blend",),
    ),
    Case(
        "export-blend-2",
        5,
        ("export", RUN, "--blend", "2", "--out", "x"),
        run=keep_finished,
        names=("--blend",),
        absent=("x",),
    ),
    Case(
        "generate-batch-size-zero",
        5,
        ("generate", "@MODEL@", "--prompts", "p.jsonl", "--batch-size", "0"),
        {"p.jsonl": PROMPTS},
        names=("--batch-size",),
    ),
    Case(
        "generate-max-new-tokens-negative",
        5,
        ("generate", "@MODEL@", "--prompts", "p.jsonl", "--max-new-tokens", "-1"),
        {"p.jsonl": PROMPTS},
        names=("--max-new-tokens",),
    ),
    Case(
        "reward-serve-max-request-bytes-zero",
        5,
        ("reward", "serve", "exact_match", "--max-request-bytes", "0"),
        {},
        names=("--max-request-bytes",),
    ),
    Case(
        "plan-override-unknown-key",
        8,
        (*PLAN, "stages[0].hyperparameters.warmup_step=3"),
        recipe_files(),
        names=("warmup_step",),
        not_names=("r.yaml:",),
    ),
    Case("plan-override-lr", 5, (*PLAN, "stages[0].hyperparameters.lr=0.001"), recipe_files(), "ok"),
    # 7 -- the probe's verdict when the reward never worked ----------------------------------------------
    Case(
        "probe-reward-always-raises",
        7,
        (*PROBE, "--reward", "raising_reward.py:score"),
        {"prompts.jsonl": PROMPTS, **REWARD_MODULES},
        "reward-failed",
        timeout_s=60,
    ),
    Case(
        "probe-reward-returns-garbage",
        7,
        (*PROBE, "--reward", "garbage_reward.py:score"),
        {"prompts.jsonl": PROMPTS, **REWARD_MODULES},
        "reward-failed",
        timeout_s=60,
    ),
    Case(
        "probe-reward-endpoint-down",
        7,
        (*PROBE, "--reward", "http://127.0.0.1:9/score"),
        {"prompts.jsonl": PROMPTS},
        "reward-failed",
        timeout_s=120,
    ),
    Case(
        "probe-reward-works",
        7,
        (*PROBE, "--reward", "good_reward.py:score"),
        {"prompts.jsonl": PROMPTS, **REWARD_MODULES},
        "verdict",
        timeout_s=60,
    ),
    Case(
        "probe-reward-typo",
        7,
        (*PROBE, "--reward", "exact_matchh"),
        {"prompts.jsonl": PROMPTS},
        names=("exact_matchh",),
    ),
    Case(
        "probe-data-is-sft",
        7,
        (*PROBE, "--reward", "exact_match"),
        {"prompts.jsonl": TRAIN},
        names=("prompts.jsonl",),
    ),
    Case(
        "probe-data-fifo",
        7,
        (*PROBE, "--reward", "exact_match"),
        {"prompts.jsonl": Fifo()},
        names=("prompts.jsonl",),
    ),
    # 8 -- misleading messages ------------------------------------------------------------------------
    Case(
        "plan-reward-mapping-bad-field",
        8,
        PLAN,
        {
            "r.yaml": micro_recipe(base=rft_recipe({"function": "numeric", "tolerence": 0.1})),
            "prompts.jsonl": PROMPTS,
        },
        names=("tolerence",),
        not_names=("rft.reward.str",),
    ),
    Case(
        "plan-reward-mapping-bad-value",
        8,
        PLAN,
        {
            "r.yaml": micro_recipe(base=rft_recipe({"function": "numeric", "tolerance": -1})),
            "prompts.jsonl": PROMPTS,
        },
        names=("tolerance",),
        not_names=("rft.reward.str",),
    ),
    Case("inspect-utf32", 8, (*INSPECT, "t.jsonl"), {"t.jsonl": TRAIN.encode("utf-32")}, names=("UTF-32",)),
    Case(
        "inspect-utf16",
        8,
        (*INSPECT, "t.jsonl"),
        {"t.jsonl": TRAIN.encode("utf-16")},
        names=("UTF-16",),
        not_names=("UTF-32",),
    ),
    Case(
        "inspect-cr-only",
        8,
        (*INSPECT, "t.jsonl"),
        {"t.jsonl": TRAIN.replace("\n", "\r")},
        names=("t.jsonl", "CR"),
        not_names=("truncated",),
    ),
    Case(
        "inspect-duplicate-json-keys",
        8,
        (*INSPECT, "t.jsonl", "--kind", "cpt"),
        {"t.jsonl": jsonl([{"text": f"note {i}"} for i in range(4)]) + '{"text": "a", "text": ""}\n'},
        names=("t.jsonl:5", "duplicate"),
    ),
    Case(
        "plan-override-bad-value",
        8,
        (*PLAN, "stages[0].hyperparameters.lr=fast"),
        recipe_files(),
        names=("stages[0].hyperparameters.lr",),
        not_names=("r.yaml:",),
    ),
    Case(
        "plan-override-bad-path",
        8,
        (*PLAN, "stages[3].hyperparameters.lr=0.1"),
        recipe_files(),
        names=("stages[3]",),
        not_names=("r.yaml:",),
    ),
    Case(
        "plan-unknown-key-did-you-mean",
        8,
        PLAN,
        recipe_files({"stages.0.hyperparameters.warmup_step": 3}),
        names=("r.yaml:", "warmup_steps"),
    ),
    Case(
        "plan-recipe-tab-indent",
        8,
        PLAN,
        {**base_files(), "r.yaml": "name: micro\nmodel:\n\tpath: x\n"},
        names=("r.yaml:3",),
    ),
    Case(
        "plan-recipe-python-tag",
        8,
        PLAN,
        {**base_files(), "r.yaml": "name: !!python/object/apply:os.system ['echo pwned']\n"},
        names=("r.yaml",),
    ),
]


def materialize(folder: Path, files: dict[str, FileContent], model_dir: Path) -> None:
    """Write a case's files into `folder` (placeholders in text replaced)."""
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Fifo):
            os.mkfifo(path)
        elif isinstance(content, Symlink):
            path.symlink_to(content.target)
        elif isinstance(content, Folder):
            path.mkdir(exist_ok=True)
        elif isinstance(content, Made):
            content.make(path, model_dir)
        elif isinstance(content, str):
            path.write_bytes(substitute(content, folder, model_dir).encode("utf-8", "surrogatepass"))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content())


def substitute(text: str, folder: Path, model_dir: Path) -> str:
    return text.replace("@D@", str(folder)).replace("@MODEL@", str(model_dir))
