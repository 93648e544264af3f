"""The embedded `tiny` family: a ~1M-parameter Llama built from the project's own general data.

`tunesmith models build tiny` trains three checkpoints in one deterministic chain, mirroring the managed
service's checkpoint options ([nova-cpt-docs]):

1. `pre-trained`: next-token loss on general prose (`data.general` kind "text") packed into 128-token
   blocks, constant LR after a short warmup, no chat format. It continues text; it does not follow the
   chat template.
2. `mid-trained`: continued from pre-trained with the LR ramped down linearly, with chat-formatted
   demonstrations mixed into the packed stream (full-sequence loss): follows instructions partly.
3. `post-trained`: SFT on general chat demonstrations with the chat template, loss on the assistant
   tokens only, warmup + cosine decay: follows instructions well.

Sizes and rates follow [tiny-feasibility] (measured on this machine kind): model "M"
(d128, 4 layers, tied embeddings, ~1.06M parameters, ~12k tokens/s on 2 cores), batch 64 for SFT,
post-train LR 2e-3. The training loop is a compact plain-torch loop on purpose: this is the "model
vendor's" pre-training, not a user run, and the same model through TRL's SFTTrainer costs ~1.6x per step
([tiny-feasibility]), which would break the <= 10 minute build budget. User stages (training/) use TRL.

The built family ships inside the package (`models/shipped/tiny`, ~13 MB of safetensors and its build
report): a build's weights depend on the machine and on torch's thread count, so one shipped family gives
every user the same start and the same numbers, and a first run trains at once. `tunesmith models build
tiny` rebuilds it from this code into `<TUNESMITH_HOME>/models/tiny` and compares it with the shipped one;
`replay_prefix` re-runs the first steps of each stage from the shipped checkpoints, which a test compares
with the losses the build recorded (`first_losses`).

A build is published atomically (`runs.atomic_directory`), so a killed build never leaves a half
family that a later call picks up. `build_report.json` records per-category exact-match accuracy on the
held-out split for each checkpoint, seconds per stage, parameters and tokens/s.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tunesmith import paths
from tunesmith.data import domain, general
from tunesmith.errors import ModelError
from tunesmith.models.catalog import CHECKPOINT_STAGES
from tunesmith.models.tokenizer import ChatEncoder, build_tiny_tokenizer
from tunesmith.runs import atomic_directory, atomic_write_json, package_versions
from tunesmith.threads import configure_threads

BUILD_VERSION = 2
"""Bump when the recipe below changes: a cached family with another version is rebuilt."""

REPORT_NAME = "build_report.json"

MODEL_CONFIG: dict = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
}
"""Model "M" of [tiny-feasibility]: d128 / 4 layers / tied embeddings = ~1.06M parameters."""

BLOCK_TOKENS = 128
"""Packed block length for pre- and mid-training (the longest chat example is ~70 tokens)."""


@dataclass(frozen=True)
class BuildPhase:
    """How one checkpoint is trained. `num_steps` is scaled by `steps_scale` in `build_family`."""

    stage: str
    num_steps: int
    lr: float
    schedule: str  # "constant" | "ramp_down" | "cosine"
    batch_size: int  # packed blocks (pre/mid) or conversations (post)
    warmup_steps: int = 0
    chat_share: float = 0.0  # share of documents that are chat demonstrations (mid-training)
    min_lr_ratio: float = 0.1


PLANS: tuple[BuildPhase, ...] = (
    BuildPhase("pre-trained", num_steps=300, lr=2e-3, schedule="constant", batch_size=32, warmup_steps=30),
    BuildPhase("mid-trained", num_steps=150, lr=2e-3, schedule="ramp_down", batch_size=32, chat_share=0.6),
    BuildPhase("post-trained", num_steps=1500, lr=2e-3, schedule="cosine", batch_size=64, warmup_steps=50),
)

CATEGORY_WEIGHTS: dict[str, float] = {"math": 2.0, "knowledge": 1.5}
"""Relative share of each general category in the build's data (default 1.0). Arithmetic is learned last
([tiny-feasibility]: add/sub .95-.97 when every other task is at 1.00) and knowledge must be memorised,
so they get more of the budget; measured: uniform shares left math at 0.17 after 1200 SFT steps."""

BUILD_THREADS = 2
"""torch threads of a build unless TUNESMITH_THREADS/OMP_NUM_THREADS say otherwise (at most the cores there
are): fixed, because the weights depend on the thread count (the build report records it)."""

EVAL_ITEMS_PER_CATEGORY = 60
EVAL_DOMAIN_ITEMS = 100


FIRST_LOSSES = 20
"""Steps of each stage whose losses the build report records (`first_losses`), for `replay_prefix`."""


def shipped_dir() -> Path:
    """The family shipped inside the package."""
    return Path(__file__).resolve().parent / "shipped" / "tiny"


def build_dir() -> Path:
    """Where `tunesmith models build tiny` writes a rebuild: `<TUNESMITH_HOME>/models/tiny`."""
    return paths.models_dir() / "tiny"


def family_dir() -> Path:
    """The family `tiny:<stage>` names: the shipped one (a checkout without it falls back to a local build).

    A rebuild is not used in its place: its weights differ with the machine and thread count, and every
    documented number is measured on the shipped family. Name a rebuilt checkpoint by its folder instead.
    """
    shipped = shipped_dir()
    return shipped if is_built(shipped) else build_dir()


def family(quiet: bool = True) -> dict[str, Path]:
    """Stage -> model folder of the family `tiny:<stage>` names; builds it only when none is shipped or built."""
    folder = family_dir()
    if is_built(folder):
        return {stage: folder / stage for stage in CHECKPOINT_STAGES}
    return build_family(seed=0, quiet=quiet)


# --- data ------------------------------------------------------------------------------------------------
def _documents(seed: int, chat_share: float, encoder: ChatEncoder) -> Iterator[list[int]]:
    """Token ids of general documents, categories drawn uniformly; a `chat_share` of them are chat
    demonstrations in the chat format instead of prose."""
    rng = random.Random(f"tiny:documents:{seed}:{chat_share}")
    texts = {c: general.stream(c, "text", seed=seed) for c in general.CATEGORIES}
    chats = {c: general.stream(c, "sft", seed=seed) for c in general.CATEGORIES}
    weights = [CATEGORY_WEIGHTS.get(c, 1.0) for c in general.CATEGORIES]
    while True:
        category = rng.choices(general.CATEGORIES, weights)[0]
        if rng.random() < chat_share:
            messages = next(chats[category])["messages"]
            yield encoder.chat(messages[0]["content"], messages[1]["content"])[0]
        else:
            yield encoder.text(next(texts[category])["text"])


def _packed_batches(
    docs: Iterator[list[int]], batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(input_ids, labels) batches of `BLOCK_TOKENS`-long blocks cut from the concatenated documents."""
    buffer: list[int] = []
    while True:
        while len(buffer) < batch_size * BLOCK_TOKENS:
            buffer += next(docs)
        ids = torch.tensor(buffer[: batch_size * BLOCK_TOKENS]).view(batch_size, BLOCK_TOKENS)
        del buffer[: batch_size * BLOCK_TOKENS]
        yield ids, ids.clone()


def _chat_batches(
    seed: int, batch_size: int, encoder: ChatEncoder
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Right-padded chat demonstrations, labels only on the assistant tokens (answer + `</s>`)."""
    rng = random.Random(f"tiny:chat:{seed}")
    chats = {c: general.stream(c, "sft", seed=seed + 1) for c in general.CATEGORIES}
    weights = [CATEGORY_WEIGHTS.get(c, 1.0) for c in general.CATEGORIES]
    while True:
        rows = []
        for _ in range(batch_size):
            messages = next(chats[rng.choices(general.CATEGORIES, weights)[0]])["messages"]
            rows.append(encoder.chat(messages[0]["content"], messages[1]["content"]))
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((batch_size, width), encoder.pad_id)
        labels = torch.full((batch_size, width), -100)
        for i, (ids, start) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, start : len(ids)] = input_ids[i, start : len(ids)]
        yield input_ids, labels


# --- training --------------------------------------------------------------------------------------------
def lr_at(plan: BuildPhase, step: int, num_steps: int) -> float:
    """The learning rate of `plan` at `step` (0-based) of `num_steps`."""
    if step < plan.warmup_steps:
        return plan.lr * (step + 1) / plan.warmup_steps
    if plan.schedule == "constant":
        return plan.lr
    progress = (step - plan.warmup_steps) / max(1, num_steps - plan.warmup_steps)
    floor = plan.lr * plan.min_lr_ratio
    if plan.schedule == "ramp_down":
        return plan.lr - (plan.lr - floor) * progress
    assert plan.schedule == "cosine", plan.schedule
    return floor + (plan.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _train(
    model, batches: Iterator, plan: BuildPhase, num_steps: int, on_step: Callable[[float], None]
) -> dict:
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.lr, betas=(0.9, 0.95), weight_decay=0.01)
    model.train()
    tokens, losses = 0, []
    start = time.perf_counter()
    for step in range(num_steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(plan, step, num_steps)
        input_ids, labels = next(batches)
        # Right padding only: pads come after every real token, so no attention mask is needed.
        loss = model(input_ids=input_ids, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        tokens += input_ids.numel()
        losses.append(loss.item())
        on_step(losses[-1])
    seconds = time.perf_counter() - start
    tail = losses[-20:] or [float("nan")]
    return {
        "num_steps": num_steps,
        "first_losses": [round(x, 5) for x in losses[:FIRST_LOSSES]],
        "train_seconds": round(seconds, 1),
        "tokens": tokens,
        "tokens_per_second": round(tokens / max(seconds, 1e-9)),
        "final_loss": round(sum(tail) / len(tail), 4),
    }


def evaluation_rows() -> tuple[list[dict], list[dict]]:
    """The held-out general (per category) and Brindle evaluation rows the build report scores."""
    general_rows = [
        row
        for c in general.CATEGORIES
        for row in general.sample(c, "eval", EVAL_ITEMS_PER_CATEGORY, seed=0, split="eval")
    ]
    return general_rows, domain.sample("eval", EVAL_DOMAIN_ITEMS, seed=0, split="eval")


def measure(model, tokenizer) -> dict[str, float]:
    """Exact-match accuracy per general category, their mean, and Brindle accuracy (held-out items)."""
    from tunesmith.models.generate import accuracy_by_category

    general_rows, domain_rows = evaluation_rows()
    scores, _ = accuracy_by_category(model, tokenizer, general_rows, max_new_tokens=24)
    result = {c: round(scores.get(c, 0.0), 4) for c in general.CATEGORIES}
    result["general_mean"] = round(sum(result.values()) / len(general.CATEGORIES), 4)
    domain_scores, _ = accuracy_by_category(model, tokenizer, domain_rows, max_new_tokens=40)
    result["brindle"] = round(domain_scores.get(domain.NAME, 0.0), 4)
    return result


def new_model(seed: int = 0, **overrides):
    """A randomly initialised tiny Llama (seeded). `overrides` change `MODEL_CONFIG` (e.g. a micro model)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **{**MODEL_CONFIG, **overrides},
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


# --- the family ------------------------------------------------------------------------------------------
def _read_report(folder: Path) -> dict | None:
    try:
        return json.loads((folder / REPORT_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_built(folder: Path, seed: int | None = None, steps_scale: float | None = None) -> bool:
    """True when `folder` holds a complete family (and, if given, one built with this seed / scale)."""
    report = _read_report(folder)
    if not report or report.get("build_version") != BUILD_VERSION:
        return False
    if seed is not None and report.get("seed") != seed:
        return False
    if steps_scale is not None and report.get("steps_scale") != steps_scale:
        return False
    return all((folder / stage / "model.safetensors").is_file() for stage in CHECKPOINT_STAGES)


def build_family(
    seed: int = 0,
    force: bool = False,
    quiet: bool = False,
    *,
    steps_scale: float = 1.0,
    out_dir: str | os.PathLike[str] | None = None,
    evaluate: bool = True,
) -> dict[str, Path]:
    """Build (or reuse) the three tiny checkpoints; returns stage -> model folder.

    `steps_scale` shortens every stage (e.g. 0.02 for a seconds-long determinism test), `out_dir`
    replaces `family_dir()`, and `evaluate=False` skips the accuracy measurement.
    """
    from tqdm.auto import tqdm

    folder = Path(out_dir) if out_dir is not None else build_dir()
    result = {stage: folder / stage for stage in CHECKPOINT_STAGES}
    if not force and is_built(folder, seed=seed, steps_scale=steps_scale):
        return result

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bar is the only one
    previous_threads = torch.get_num_threads()
    # the weights depend on the thread count (the report records it): TUNESMITH_THREADS fixes it. Measured
    # on a 2-core machine, idle: 2 threads 0.19 s per packed step, 1 thread 0.34 s; beside other jobs 2
    # threads took up to 6.6 s per packed step (OpenMP workers spin-waiting on taken cores)
    # not the free-cores rule of training: a build's weights must not depend on how busy the machine was
    configure_threads(default=BUILD_THREADS)
    started = time.perf_counter()
    tokenizer, encoder = build_tiny_tokenizer(), ChatEncoder()
    model = new_model(seed)
    steps = {plan.stage: max(1, round(plan.num_steps * steps_scale)) for plan in PLANS}
    report: dict = {
        "family": "tiny",
        "build_version": BUILD_VERSION,
        "seed": seed,
        "steps_scale": steps_scale,
        "params": sum(p.numel() for p in model.parameters()),
        "model_config": MODEL_CONFIG,
        "threads": torch.get_num_threads(),
        "stages": {},
    }
    try:
        with (
            atomic_directory(folder) as tmp,
            tqdm(
                total=sum(steps.values()), disable=quiet, unit="step", desc="tiny", dynamic_ncols=True
            ) as bar,
        ):

            def on_step(loss: float) -> None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

            for plan in PLANS:
                torch.manual_seed(seed + len(report["stages"]))
                bar.set_description(f"tiny {plan.stage}")
                stage_start = time.perf_counter()
                batches = _stage_batches(plan, seed, len(report["stages"]), encoder)
                stats = _train(model, batches, plan, steps[plan.stage], on_step)
                model.save_pretrained(tmp / plan.stage)
                tokenizer.save_pretrained(tmp / plan.stage)
                if evaluate:
                    eval_start = time.perf_counter()
                    stats["accuracy"] = measure(model, tokenizer)
                    stats["eval_seconds"] = round(time.perf_counter() - eval_start, 1)
                stats["seconds"] = round(time.perf_counter() - stage_start, 1)
                report["stages"][plan.stage] = {**asdict(plan), **stats}
            report["build_seconds"] = round(time.perf_counter() - started, 1)
            report["packages"] = package_versions()
            atomic_write_json(tmp / REPORT_NAME, report)
    finally:
        torch.set_num_threads(previous_threads)
    return result


def _stage_batches(plan: BuildPhase, seed: int, index: int, encoder: ChatEncoder) -> Iterator:
    if plan.stage == "post-trained":
        return _chat_batches(seed, plan.batch_size, encoder)
    return _packed_batches(_documents(seed + index, plan.chat_share, encoder), plan.batch_size)


def replay_prefix(
    folder: str | os.PathLike[str] | None = None, steps: int = FIRST_LOSSES
) -> dict[str, list[float]]:
    """Re-run the first `steps` steps of every stage of a built family, each from the family's previous
    checkpoint (pre-trained: a new model), with the build's seed, schedule and thread count; returns
    stage -> losses. Equal to the report's `first_losses` when this code still builds that family."""
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder = Path(folder) if folder is not None else family_dir()
    report = load_report(folder)
    if report is None:
        raise ModelError(f"{folder}: no tiny family build report — run `tunesmith models build tiny`")
    seed, scale = report["seed"], report.get("steps_scale", 1.0)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(int(report.get("threads") or BUILD_THREADS))
    encoder, out = ChatEncoder(), {}
    try:
        for index, plan in enumerate(PLANS):
            if index == 0:
                model = new_model(seed)
            else:
                model = LlamaForCausalLM.from_pretrained(folder / PLANS[index - 1].stage)
            torch.manual_seed(seed + index)
            num_steps = max(1, round(plan.num_steps * scale))
            losses: list[float] = []
            stop = min(steps, num_steps)

            def on_step(loss: float, losses=losses, stop=stop) -> None:
                losses.append(loss)
                if len(losses) >= stop:
                    raise _PrefixDone

            with contextlib.suppress(_PrefixDone):
                _train(model, _stage_batches(plan, seed, index, encoder), plan, num_steps, on_step)
            out[plan.stage] = [round(x, 5) for x in losses]
    finally:
        torch.set_num_threads(previous_threads)
    return out


class _PrefixDone(Exception):
    """Stops `_train` after a replay's prefix."""


def load_report(folder: str | os.PathLike[str] | None = None) -> dict | None:
    """The build report of a built family, or None."""
    return _read_report(Path(folder) if folder is not None else family_dir())


def format_report(report: dict) -> str:
    """The accuracy table of a build report (rows: checkpoints; columns: categories + Brindle)."""
    columns = [*general.CATEGORIES, "general_mean", "brindle"]
    short = {"reasoning-instruction-following": "reas-instr", "instruction-following": "instr"}
    header = f"{'checkpoint':<14}" + "".join(f"{short.get(c, c):>13}" for c in columns) + f"{'seconds':>9}"
    lines = [header]
    for stage, stats in report.get("stages", {}).items():
        accuracy = stats.get("accuracy", {})
        cells = "".join(f"{accuracy.get(c, float('nan')):>13.2f}" for c in columns)
        lines.append(f"{stage:<14}{cells}{stats.get('seconds', 0):>9.0f}")
    lines.append(
        f"params {report.get('params', 0):,}  build {report.get('build_seconds', 0):.0f} s  seed {report.get('seed')}"
    )
    return "\n".join(lines)


def compare_reports(built: dict, shipped: dict) -> list[str]:
    """Lines comparing a rebuild's accuracy with the shipped family's, per checkpoint (points)."""
    lines = []
    for stage, stats in built.get("stages", {}).items():
        mine = stats.get("accuracy") or {}
        theirs = (shipped.get("stages", {}).get(stage) or {}).get("accuracy") or {}
        if not mine or not theirs:
            continue
        general_gap = 100 * (mine["general_mean"] - theirs["general_mean"])
        domain_gap = 100 * (mine["brindle"] - theirs["brindle"])
        lines.append(
            f"  {stage:<13} general {100 * mine['general_mean']:.1f} vs shipped {100 * theirs['general_mean']:.1f} "
            f"({general_gap:+.1f} pts), Brindle {100 * mine['brindle']:.1f} vs {100 * theirs['brindle']:.1f} "
            f"({domain_gap:+.1f} pts)"
        )
    return lines


def build_command(family: str = "tiny", seed: int = 0, force: bool = False, quiet: bool = False) -> int:
    """`tunesmith models build tiny`: rebuild the family from code into TUNESMITH_HOME (or reuse that
    rebuild), print its accuracy and how it compares with the shipped family."""
    if family != "tiny":
        raise ModelError(
            f"models build {family}: only the embedded family 'tiny' can be built — real families load from the Hub or a local folder"
        )
    folder = build_dir()
    cached = not force and is_built(folder, seed=seed, steps_scale=1.0)
    started = time.perf_counter()
    stages = build_family(seed=seed, force=force, quiet=quiet, out_dir=folder)
    seconds = time.perf_counter() - started
    report = load_report(folder) or {}
    verb = "reused the rebuilt" if cached else "rebuilt the"
    print(f"{verb} tiny family (seed {seed}) in {seconds:.1f} s at {folder}")
    for stage, path in stages.items():
        print(f"  {stage:<13} {path}")
    print(format_report(report))
    shipped = load_report(shipped_dir())
    if shipped is not None and folder != shipped_dir():
        print("against the shipped family (what `tiny:<stage>` names):")
        for line in compare_reports(report, shipped):
            print(line)
        print(f"train from this rebuild by its folder: `model: {{path: {stages['post-trained']}}}`")
    return 0
