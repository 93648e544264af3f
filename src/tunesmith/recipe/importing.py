"""`tunesmith import SERVICE.yaml`: a managed-service recipe ([nova-recipes] `run:` / `training_config:`
layout) as a tunesmith recipe.

Every field of the service recipe ends in exactly one of four lists, so nothing is dropped silently:

- **mapped**: written into the tunesmith recipe, with the service field it came from (`imported_from`, which
  `plan` shows as the value's origin: "imported: training_config.optim_config.lr");
- **replaced**: S3 paths and service model ids, named with what replaces them (the `--model` and `--data`
  the user gives, or what to set by hand);
- **same**: settings that already are tunesmith's behaviour (AdamW, no merge-back at weight 1.0, greedy
  evaluation);
- **not honored**: one line each, with the reason.

The layouts read: Nova 2.0 SFT (`training_config.{lr_scheduler, optim_config, peft}`), RFT (the same under
`training_config.trainer`, plus `rollout`), Nova 1.0 SFT / CPT and Nova 2.0 CPT (NeMo style:
`training_config.model.optim.{lr, betas | adam_beta1/2, sched}`), `data_mixing`, and evaluation recipes
(`evaluation.task`: printed as the equivalent `tunesmith eval` command), and DPO (`dpo_cfg.beta`). Recipes of
a kind tunesmith does not run (PPO, distillation, multi-modal, multi-turn RFT) are refused in one line.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.bounded import LimitError, read_bytes_bounded
from tunesmith.data.curated.catalog import CURATED_CATEGORIES
from tunesmith.errors import RecipeError
from tunesmith.models.catalog import FAMILIES
from tunesmith.runs import folder_name_problem
from tunesmith.vocabulary import CATEGORIES

SERVICE_CHECKPOINTS = (
    ("pretraining-text-RD", "pre-trained"),
    ("pretraining-text-partial", "pre-trained"),
    ("pretraining-text-CE", "mid-trained"),
    ("pretraining-text-full", "mid-trained"),
    ("pretraining-mm-full", "mid-trained"),
    ("/prod", "post-trained"),
)
"""The service's checkpoint names ([nova-cpt-docs]: pre-trained after the ramp-down / constant stage,
mid-trained, post-trained = `prod`) -> tunesmith's checkpoint kinds."""

NOT_HONORED = {
    "replicas": "tunesmith trains on this machine's devices (several GPUs: torchrun); replica counts do not apply",
    "generation_replicas": "generation runs in the training process (TRL's GRPO), not on separate replicas",
    "rollout_worker_replicas": "generation runs in the training process (TRL's GRPO), not on separate workers",
    "eps": "tunesmith's AdamW keeps torch's eps (1e-8)",
    "save_steps": "tunesmith saves at every validation (val_check_interval) and keeps the save_top_k best",
    "limit_val_batches": "tunesmith validates on the whole validation file (plan shows its size)",
    "hidden_dropout": "tunesmith keeps the model's own dropout settings (no dropout override)",
    "attention_dropout": "tunesmith keeps the model's own dropout settings (no dropout override)",
    "ffn_dropout": "tunesmith keeps the model's own dropout settings (no dropout override)",
    "reasoning_effort": "tunesmith's thinking switch is on/off (hyperparameters.reasoning_enabled), not an effort level",
    "shuffle": "tunesmith's data order is set by the mix and the seed",
    "type": "tunesmith's GRPO generates on-policy in the training process (no asynchronous off-policy rollouts)",
    "age_tolerance": "tunesmith's GRPO generates on-policy (no stale rollouts to tolerate)",
    "set_random_seed": "sampling is seeded by the stage seed",
    "top_k": "tunesmith samples from the full distribution (no top-k cut)",
    "refit_freq": "tunesmith's GRPO updates the generating policy every step",
    "clip_ratio_high": "tunesmith uses TRL's GRPO clipping defaults (not a recipe setting)",
    "ent_coeff": "tunesmith's GRPO has no entropy bonus",
    "loss_scale": "tunesmith's GRPO loss is TRL's, unscaled",
    "constant_steps": "",  # mapped when numeric; listed only if it could not be
    "dataset_catalog": "tunesmith mixes its own general categories (data_mixing.general_data), not the "
    "service's catalog",
    "output_s3_path": "",  # replaced (see `_replaced`)
    "task_type": "",
    "peft_scheme": "",
}


@dataclass
class Imported:
    """The result of an import: the tunesmith recipe (None for an evaluation recipe, which becomes `command`)
    and the four lists (see the module docstring)."""

    kind: str  # "cpt" | "sft" | "dpo" | "rft" | "evaluation"
    mode: str | None
    recipe: dict[str, Any] | None
    command: str | None = None
    replaced: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)


class _Reader:
    """The service recipe with the fields read so far (each read marks a leaf as consumed)."""

    def __init__(self, doc: dict[str, Any], source: str) -> None:
        self.doc, self.source = doc, source
        self.consumed: set[str] = set()

    def get(self, *paths: str) -> tuple[Any, str | None]:
        """The first of `paths` (dotted) present in the recipe, and its path; every present one is consumed
        (a value the service writes in two places, like the reward Lambda, is read once)."""
        found: tuple[Any, str | None] = (None, None)
        for path in paths:
            node: Any = self.doc
            for part in path.split("."):
                if not isinstance(node, dict) or part not in node:
                    break
                node = node[part]
            else:
                if isinstance(node, dict):
                    continue
                self.consumed.add(path)
                if found[1] is None:
                    found = (node, path)
        return found

    def number(self, *paths: str, integer: bool = False) -> tuple[float | int | None, str | None]:
        value, path = self.get(*paths)
        if value is None:
            return None, None
        if isinstance(value, bool) or not isinstance(value, int | float) or (integer and value != int(value)):
            raise RecipeError(
                f"{self.source}: {path}: expected {'an integer' if integer else 'a number'}, got {value!r} — fix "
                "the service recipe"
            )
        return (int(value) if integer else float(value)), path

    def leaves(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []

        def walk(node: Any, path: str) -> None:
            if isinstance(node, dict) and node:
                for key, value in node.items():
                    walk(value, f"{path}.{key}" if path else str(key))
            else:
                out.append((path, node))

        walk(self.doc, "")
        return out


def read_service_recipe(path: str | Path) -> dict[str, Any]:
    """The service recipe as data, read under the project's YAML bounds; one-line `RecipeError` otherwise."""
    from tunesmith.recipe.loading import _parse

    path = Path(path)
    try:
        text = read_bytes_bounded(path).decode("utf-8-sig")
    except FileNotFoundError:
        raise RecipeError(f"{path}: service recipe not found — check the path") from None
    except LimitError as err:
        raise RecipeError(f"{path}: {err} — pass the service recipe's .yaml file") from None
    except UnicodeDecodeError as err:
        raise RecipeError(f"{path}: not UTF-8 text (byte {err.start}) — save the recipe as UTF-8") from None
    data = _parse(text, path)
    if not isinstance(data, dict) or not isinstance(data.get("run"), dict):
        raise RecipeError(
            f"{path}: not a managed-service recipe — expected a mapping with `run:` and `training_config:` (or "
            "`evaluation:`), as in the service's recipe files"
        )
    if not isinstance(data.get("training_config"), dict) and not isinstance(data.get("evaluation"), dict):
        if any(key in data for key in ("rl", "schedule", "batch")):
            raise RecipeError(
                f"{path}: a multi-turn RFT (MTRL) recipe — tunesmith import reads single-turn recipes only; "
                "write a tunesmith rft stage by hand"
            )
        raise RecipeError(
            f"{path}: the recipe has `run:` but no `training_config:` or `evaluation:` mapping — it is not a "
            "training or evaluation recipe tunesmith can import"
        )
    return data


def _refuse_other_kinds(doc: dict[str, Any], source: str) -> None:
    """One line for a recipe of a kind tunesmith does not run."""
    config = doc.get("training_config") or {}
    keys = set(doc) | set(config)
    name = str(doc["run"].get("name", "")).lower()
    catalog = str((doc.get("data_mixing") or {}).get("dataset_catalog", ""))
    if any(str(k).startswith("ppo_") for k in keys) or "ppo" in name:
        kind = "PPO (reward model, critic and actor replicas)"
    elif any("distill" in str(k) for k in keys) or "distill" in name:
        kind = "data distillation from a teacher model"
    elif (
        "_mm" in catalog or "mm_" in catalog or any(str(k) in ("image", "video", "multimodal") for k in keys)
    ):
        kind = "multi-modal training (image / video data)"
    else:
        return
    raise RecipeError(
        f"{source}: a {kind} recipe — tunesmith runs CPT, SFT, DPO and RFT only; import one of those instead"
    )


def _find_key(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(_find_key(v, key) for v in node.values())
    return False


def _technique(doc: dict[str, Any]) -> str:
    config = doc["training_config"]
    if "rollout" in config or "reward_lambda_arn" in doc["run"]:
        return "rft"
    if _find_key(config, "dpo_cfg"):
        return "dpo"
    name = str(doc["run"].get("name", "")).lower()
    if config.get("task_type") == "cpt" or "pretrain" in name or "cpt" in name.split("-"):
        return "cpt"
    return "sft"


def _checkpoint(service_model: Any) -> str | None:
    text = str(service_model or "")
    for marker, kind in SERVICE_CHECKPOINTS:
        if marker in text:
            return kind
    return None


def import_service_recipe(
    path: str | Path,
    *,
    model: str,
    data: str,
    validation: str | None = None,
    reward: str | None = None,
) -> Imported:
    """Read a service recipe and build the tunesmith recipe (see the module docstring). `model`: a catalog
    family or a local model folder / Hugging Face id; `data`: the local training file; `validation` and
    `reward` replace the service's validation S3 path and reward Lambda when given."""
    source = str(path)
    doc = read_service_recipe(path)
    reader = _Reader(doc, source)
    if isinstance(doc.get("evaluation"), dict) and not isinstance(doc.get("training_config"), dict):
        return _import_evaluation(reader, model, data)
    _refuse_other_kinds(doc, source)
    technique = _technique(doc)
    out = Imported(technique, None, None)
    imported: dict[str, str] = {}

    def put(node: dict[str, Any], key: str, value: Any, recipe_path: str, service_path: str | None) -> None:
        node[key] = value
        if service_path is not None:
            imported[recipe_path] = service_path

    name, name_path = reader.get("run.name")
    recipe_name = str(name) if name and folder_name_problem(str(name)) is None else Path(source).stem
    recipe: dict[str, Any] = {"name": recipe_name}
    if name_path:
        imported["name"] = name_path
    model_spec, model_path = _model(reader, model, out)
    recipe["model"] = model_spec
    if model_path:
        imported["model.checkpoint"] = model_path
    _replaced(reader, out, data, validation)

    sp = "stages[0]"
    stage: dict[str, Any] = {"technique": technique}
    scheme, scheme_path = reader.get(
        "training_config.peft.peft_scheme",
        "training_config.model.peft.peft_scheme",
        "training_config.trainer.peft.peft_scheme",
    )
    mode = "lora" if str(scheme).lower() == "lora" else "full"
    put(stage, "mode", mode, f"{sp}.mode", scheme_path)
    out.mode = mode
    stage["data"] = {"train": data, **({"validation": validation} if validation else {})}
    if technique == "dpo" and isinstance(doc.get("data_mixing"), dict):
        out.unsupported.append(
            "data_mixing: tunesmith mixes no general data into DPO (no general preference pairs)"
        )
        reader.consumed.update(path for path, _ in reader.leaves() if path.startswith("data_mixing."))
    mixing = _mixing(reader, out, model_spec, sp, imported)
    if mixing:
        stage["data_mixing"] = mixing
    stage["hyperparameters"] = _hyperparameters(reader, out, mode, f"{sp}.hyperparameters", imported, put)
    if technique == "rft":
        stage["rft"] = _rft(reader, out, f"{sp}.rft", imported, put, reward)
    if technique == "dpo":
        beta, where = reader.number("training_config.model.dpo_cfg.beta", "training_config.dpo_cfg.beta")
        if beta is not None:
            stage["dpo"] = {}
            put(stage["dpo"], "beta", beta, f"{sp}.dpo.beta", where)
    recipe["stages"] = [stage]
    recipe["imported_from"] = imported
    _same_and_not_honored(reader, out)
    out.recipe = recipe
    return out


def _model(reader: _Reader, model: str, out: Imported) -> tuple[dict[str, Any], str | None]:
    service_model, where = reader.get("run.model_name_or_path")
    model_type, type_where = reader.get("run.model_type")
    kind = _checkpoint(service_model)
    family = FAMILIES.get(model)
    spec: dict[str, Any] = {"family": model} if family is not None else {"path": model}
    if kind is not None and (family is None or family.checkpoint(kind) is not None):
        spec["checkpoint"] = kind
    elif kind is not None:
        out.unsupported.append(
            f"{where} {service_model!r} ({kind}): family {model!r} publishes no {kind} checkpoint — its "
            "default checkpoint is used"
        )
        where = None
    if service_model is not None:
        out.replaced.append(
            f"{where or 'run.model_name_or_path'} {service_model!r} (a service model) -> model {model!r}"
        )
    if model_type is not None:
        out.replaced.append(f"{type_where} {model_type!r} (a service model id) -> model {model!r}")
    return spec, where if "checkpoint" in spec else None


def _replaced(reader: _Reader, out: Imported, data: str, validation: str | None) -> None:
    train, where = reader.get("run.data_s3_path")
    if train is not None:
        out.replaced.append(f"{where} {train!r} -> stages[0].data.train {data!r}")
    val, where = reader.get("run.validation_data_s3_path")
    if val:
        target = (
            repr(validation) if validation else "nothing yet: set stages[0].data.validation to a local file"
        )
        out.replaced.append(f"{where} {val!r} -> {target}")
    listed, where = reader.get("run.validation_data_s3_path_list")
    if listed:
        out.unsupported.append(f"{where}: tunesmith validates on one file (stages[0].data.validation)")
    output, where = reader.get("run.output_s3_path")
    if output is not None:
        out.replaced.append(f"{where} {output!r} -> output_dir 'runs' (local run folders)")


def _mixing(
    reader: _Reader, out: Imported, model_spec: dict[str, Any], sp: str, imported: dict[str, str]
) -> dict[str, Any]:
    from tunesmith.recipe.resolve import _default_general_data
    from tunesmith.recipe.schema import ModelSpec

    percent, where = reader.number("data_mixing.sources.customer_data.percent")
    shares = (reader.doc.get("data_mixing") or {}).get("sources", {}).get("nova_data")
    mixing: dict[str, Any] = {}
    if percent is not None:
        mixing["customer_percent"] = percent
        imported[f"{sp}.data_mixing.customer_percent"] = where
    if not isinstance(shares, dict) or not shares:
        return mixing
    general_data, _ = _default_general_data(ModelSpec.model_validate(model_spec))
    known = CATEGORIES if general_data == "builtin" else tuple(dict.fromkeys(CATEGORIES + CURATED_CATEGORIES))
    kept: dict[str, float] = {}
    for category in shares:
        share, path = reader.number(f"data_mixing.sources.nova_data.{category}")
        if category in known:
            kept[str(category)] = float(share or 0)
        elif share:
            out.unsupported.append(
                f"{path} {share:g}: tunesmith has no general category {category!r} for this model (categories: "
                f"{', '.join(known)}) — its share goes to the others"
            )
    total = sum(kept.values())
    if total <= 0 and not any(shares.values()):
        return mixing  # every share 0: customer data only
    if total <= 0:
        out.unsupported.append(
            "data_mixing.sources.nova_data: none of its categories exists in tunesmith — the default general "
            "mix is used"
        )
        return mixing
    if abs(total - 100) > 0.01:
        kept = {k: round(100 * v / total, 6) for k, v in kept.items()}
        kept[next(iter(kept))] = round(100 - sum(list(kept.values())[1:]), 6)
    mixing["general"] = kept
    imported[f"{sp}.data_mixing.general"] = "data_mixing.sources.nova_data" + (
        "" if abs(total - 100) <= 0.01 else f" (the known categories, rescaled from {total:g} to 100)"
    )
    return mixing


_OPTIM = (
    "training_config.optim_config",
    "training_config.trainer.optim_config",
    "training_config.model.optim",
    "training_config.optim",
)
_SCHED = (
    "training_config.lr_scheduler",
    "training_config.trainer.lr_scheduler",
    "training_config.model.optim.sched",
    "training_config.optim.sched",
)
_LORA = (
    "training_config.peft.lora_tuning",
    "training_config.model.peft.lora_tuning",
    "training_config.trainer.peft.lora_tuning",
)


def _hyperparameters(
    reader: _Reader, out: Imported, mode: str, hp_path: str, imported: dict[str, str], put: Any
) -> dict[str, Any]:
    hp: dict[str, Any] = {}

    def number(key: str, paths: list[str], integer: bool = False) -> None:
        value, where = reader.number(*paths, integer=integer)
        if value is not None:
            put(hp, key, value, f"{hp_path}.{key}", where)

    number("lr", [f"{p}.lr" for p in _OPTIM])
    number("min_lr", [f"{p}.min_lr" for p in _SCHED])
    number("warmup_steps", [f"{p}.warmup_steps" for p in _SCHED], integer=True)
    number("constant_steps", [f"{p}.constant_steps" for p in _SCHED], integer=True)
    number("weight_decay", [f"{p}.weight_decay" for p in _OPTIM])
    number("adam_beta1", [f"{p}.adam_beta1" for p in _OPTIM])
    number("adam_beta2", [f"{p}.adam_beta2" for p in _OPTIM])
    betas, where = reader.get(*(f"{p}.betas" for p in _OPTIM))
    if betas is not None:
        if not (
            isinstance(betas, list) and len(betas) == 2 and all(isinstance(b, int | float) for b in betas)
        ):
            raise RecipeError(
                f"{reader.source}: {where}: expected [beta1, beta2], got {betas!r} — fix the service recipe"
            )
        put(hp, "adam_beta1", float(betas[0]), f"{hp_path}.adam_beta1", f"{where}[0]")
        put(hp, "adam_beta2", float(betas[1]), f"{hp_path}.adam_beta2", f"{where}[1]")
    number("global_batch_size", ["training_config.global_batch_size"], integer=True)
    number("max_length", ["training_config.max_length"], integer=True)
    number("grad_clip", ["training_config.grad_clip_norm", "training_config.trainer.grad_clip_norm"])
    steps, steps_where = reader.number(
        "training_config.max_steps", "training_config.trainer.max_steps", integer=True
    )
    epochs, epochs_where = reader.number("training_config.trainer.max_epochs", "training_config.max_epochs")
    if steps is not None:
        put(hp, "max_steps", steps, f"{hp_path}.max_steps", steps_where)
        if epochs is not None:
            out.unsupported.append(
                f"{epochs_where} {epochs:g}: max_steps is set too — tunesmith takes one of them (max_steps)"
            )
    elif epochs is not None:
        put(hp, "max_epochs", epochs, f"{hp_path}.max_epochs", epochs_where)
    number(
        "val_check_interval",
        ["training_config.val_check_interval", "training_config.trainer.val_check_interval"],
        integer=True,
    )
    number("save_top_k", ["training_config.save_top_k", "training_config.trainer.save_top_k"], integer=True)
    reasoning, where = reader.get("training_config.reasoning_enabled")
    if isinstance(reasoning, bool):
        put(hp, "reasoning_enabled", reasoning, f"{hp_path}.reasoning_enabled", where)
    elif reasoning is not None:
        raise RecipeError(
            f"{reader.source}: {where}: expected true or false, got {reasoning!r} — fix the service recipe"
        )
    lora: dict[str, Any] = {}
    alpha, where = reader.number(*(f"{p}.alpha" for p in _LORA))
    ratio, ratio_where = reader.number(
        *(f"{p}.{key}" for p in _LORA for key in ("lora_plus_lr_ratio", "loraplus_lr_ratio"))
    )
    dropout, dropout_where = reader.number(*(f"{p}.adapter_dropout" for p in _LORA))
    rank, rank_where = reader.number(*(f"{p}.lora_rank" for p in _LORA), integer=True)
    if mode == "lora":
        for key, value, where_ in (
            ("alpha", alpha, where),
            ("plus_lr_ratio", ratio, ratio_where),
            ("dropout", dropout, dropout_where),
            ("rank", rank, rank_where),
        ):
            if value is not None:
                put(lora, key, value, f"{hp_path}.lora.{key}", where_)
        if lora:
            hp["lora"] = lora
    else:
        for value, where_ in (
            (alpha, where),
            (ratio, ratio_where),
            (dropout, dropout_where),
            (rank, rank_where),
        ):
            if value is not None:
                out.unsupported.append(
                    f"{where_} {value:g}: the recipe trains at full rank (peft_scheme null)"
                )
    return hp


def _rft(
    reader: _Reader, out: Imported, rft_path: str, imported: dict[str, str], put: Any, reward: str | None
) -> dict[str, Any]:
    rft: dict[str, Any] = {}
    for key, paths, integer in (
        ("number_generation", ["training_config.rollout.advantage_strategy.number_generation"], True),
        ("max_new_tokens", ["training_config.rollout.generator.max_new_tokens"], True),
        ("temperature", ["training_config.rollout.generator.temperature"], False),
        ("kl_coef", ["training_config.trainer.kl_loss_coef", "training_config.kl_loss_coef"], False),
    ):
        value, where = reader.number(*paths, integer=integer)
        if value is not None:
            put(rft, key, value, f"{rft_path}.{key}", where)
    arn, where = reader.get(
        "run.reward_lambda_arn", "training_config.rollout.rewards.api_endpoint.lambda_arn"
    )
    concurrency, c_where = reader.number(
        "training_config.rollout.rewards.api_endpoint.lambda_concurrency_limit", integer=True
    )
    if reward is not None:
        rft["reward"] = reward
        if arn is not None:
            out.replaced.append(f"{where} {arn!r} -> rft.reward {reward!r} (--reward)")
        if concurrency is not None:
            out.unsupported.append(f"{c_where} {concurrency}: the Lambda is replaced by --reward")
    elif arn is not None:
        spec: dict[str, Any] = {}
        put(spec, "function", str(arn), f"{rft_path}.reward.function", where)
        if concurrency is not None:
            put(spec, "concurrency", concurrency, f"{rft_path}.reward.concurrency", c_where)
        rft["reward"] = spec
        out.replaced.append(
            f"{where} {arn!r}: kept (tunesmith calls the Lambda with your AWS credentials) — or pass --reward "
            "with a local verifier, module:function or http endpoint"
        )
    else:
        raise RecipeError(
            f"{reader.source}: an RFT recipe without a reward (run.reward_lambda_arn) — pass --reward with a "
            "verifier name, module:function or http endpoint"
        )
    batch, where = reader.number("training_config.global_batch_size", integer=True)
    if batch is not None and rft.get("number_generation"):
        out.same.append(
            f"{where} {batch}: tunesmith counts prompts per step (the SMTJ meaning); a HyperPod recipe counts "
            f"samples (prompts x number_generation): for its samples per step set global_batch_size "
            f"{max(1, batch // rft['number_generation'])}"
        )
    return rft


def _same_and_not_honored(reader: _Reader, out: Imported) -> None:
    """Every leaf not read yet: a setting tunesmith already has (`same`), or one it cannot honor."""
    for path, value in reader.leaves():
        if path in reader.consumed:
            continue
        key = path.rsplit(".", 1)[-1]
        shown = f"{path} {value!r}" if not isinstance(value, dict) else path
        if key == "adam_w_mode" and value is True or key in ("name", "optimizer") and ".optim" in path:
            out.same.append(f"{shown}: tunesmith trains with AdamW (decoupled weight decay)")
        elif path == "training_config.model_importance_score.fine_tuned_model":
            if value == 1.0:
                out.same.append(f"{shown}: no merge-back, as tunesmith trains by default")
            else:
                out.unsupported.append(
                    f"{shown}: tunesmith blends after training, not in the recipe — `tunesmith export RUN --blend "
                    f"{value}` (and `tunesmith eval --model RUN --blend {value}` to measure it)"
                )
        elif path == "training_config.task_type" or path.endswith("peft.peft_scheme"):
            continue  # read while deciding the technique and mode
        else:
            reason = NOT_HONORED.get(key) or "tunesmith has no such setting"
            out.unsupported.append(f"{shown}: {reason}")


EVAL_TASKS = {
    "mmlu": "mmlu",
    "mmlu_pro": "mmlu_pro",
    "bbh": "bbh",
    "gpqa": "gpqa",
    "math": "hendrycks_math",
    "ifeval": "ifeval",
}
"""The service's benchmark tasks ([nova-evaluation]) -> lm-eval task names (`tunesmith eval --lm-eval`)."""


def _import_evaluation(reader: _Reader, model: str, data: str | None) -> Imported:
    out = Imported("evaluation", None, None)
    _model(reader, model, out)
    task, where = reader.get("evaluation.task")
    command = ["tunesmith", "eval", "--model", model]
    if task == "gen_qa":
        command += ["--domain", data or "DOMAIN.jsonl"]
        source, s_where = reader.get("run.data_s3_path")
        if source is not None:
            out.replaced.append(f"{s_where} {source!r} -> --domain {data!r}")
    elif task in EVAL_TASKS:
        command += ["--suites", "general", "--lm-eval", EVAL_TASKS[task]]
    elif task in ("llm_judge", "rubric_llm_judge"):
        raise RecipeError(
            f"{reader.source}: an {task} evaluation recipe — tunesmith has no judge evaluation yet; evaluate with "
            "`tunesmith eval` (general and domain suites)"
        )
    else:
        raise RecipeError(
            f"{reader.source}: {where or 'evaluation.task'} {task!r}: not an evaluation tunesmith runs — use one of "
            f"{', '.join([*EVAL_TASKS, 'gen_qa'])}"
        )
    temperature, t_where = reader.number("inference.temperature")
    if temperature is not None and temperature != 0:
        out.unsupported.append(f"{t_where} {temperature:g}: tunesmith evaluates greedily (temperature 0)")
    elif temperature is not None:
        out.same.append(f"{t_where} 0: tunesmith evaluates greedily")
    for leaf in ("evaluation.strategy", "evaluation.metric"):
        value, path = reader.get(leaf)
        if value is not None:
            out.same.append(f"{path} {value!r}: the task's own scoring (lm-eval, or exact match for gen_qa)")
    _same_and_not_honored(reader, out)
    out.command = shlex.join(command)
    return out


def render(imported: Imported, source: str, out_path: str | None) -> str:
    """What `tunesmith import` prints: where the recipe went (or the eval command), then the lists."""
    lines = []
    if imported.command is not None:
        lines.append(f"{source}: an evaluation recipe; the equivalent tunesmith command:")
        lines.append(f"  {imported.command}")
    else:
        target = out_path or "stdout"
        mapped = len(imported.recipe.get("imported_from", {})) if imported.recipe else 0
        lines.append(
            f"{source}: {imported.kind} ({imported.mode}) recipe, {mapped} field(s) mapped -> {target} "
            "(`tunesmith plan` shows each as 'imported: <service field>')"
        )
    for title, items in (
        ("to replace (service paths and ids)", imported.replaced),
        ("already tunesmith's behaviour", imported.same),
        ("not honored", imported.unsupported),
    ):
        if items:
            lines.append(f"{title}:")
            lines += [f"  {item}" for item in items]
    return "\n".join(lines) + "\n"


def import_command(
    path: str,
    *,
    model: str,
    data: str,
    validation: str | None = None,
    reward: str | None = None,
    out: str | None = None,
) -> int:
    """`tunesmith import`: import, validate the written recipe as `plan` will read it, write it (or print
    it), and print the lists."""
    import sys

    import yaml

    from tunesmith.recipe.loading import validate_recipe
    from tunesmith.runs import atomic_write_text

    imported = import_service_recipe(path, model=model, data=data, validation=validation, reward=reward)
    if imported.recipe is not None:
        validate_recipe(imported.recipe, source=f"{path} (imported)")
        text = yaml.safe_dump(imported.recipe, sort_keys=False, allow_unicode=True)
        header = f"# imported from {Path(path).name} by `tunesmith import`; check the lists it printed\n"
        if out is not None:
            atomic_write_text(Path(out), header + text)
        else:
            sys.stdout.write(header + text)
    print(render(imported, path, out), end="", file=sys.stdout if out is not None else sys.stderr)
    return 0
