"""`tunesmith import`: managed-service recipes (written here in the service's `run:` / `training_config:`
layout, not copied from its repository) become tunesmith recipes whose `plan` shows the same values, each
with the service field it came from; S3 paths and service ids are named for replacement; fields that
cannot be honored are listed one per line; other kinds and malformed files get one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tunesmith.cli import main
from tunesmith.recipe.importing import import_service_recipe
from tunesmith.recipe.plan import plan, provenance_rows

SFT_LORA = """
## Nova 2.0-style LoRA SFT, written for this test
run:
  name: brindle-lora-sft
  model_type: amazon.nova-2-lite-v1:0:256k
  model_name_or_path: nova-lite-2/prod
  replicas: 4
  data_s3_path: s3://my-bucket/brindle/train.jsonl
  validation_data_s3_path: s3://my-bucket/brindle/val.jsonl
  output_s3_path: s3://my-bucket/out/
training_config:
  max_steps: 120
  save_steps: 120
  save_top_k: 3
  max_length: 512
  global_batch_size: 16
  reasoning_enabled: false
  val_check_interval: 20
  limit_val_batches: 2
  lr_scheduler:
    warmup_steps: 18
    min_lr: 2.0e-6
  optim_config:
    lr: 2.0e-5
    weight_decay: 0.01
    adam_beta1: 0.9
    adam_beta2: 0.95
  peft:
    peft_scheme: "lora"
    lora_tuning:
      alpha: 96
      lora_plus_lr_ratio: 32.0
  model_importance_score:
    fine_tuned_model: 1.0
data_mixing:
  dataset_catalog: sft_1p5_text_chat
  sources:
    customer_data:
      percent: 60
    nova_data:
      reasoning-instruction-following: 50
      math: 30
      knowledge: 20
"""

SFT_FULL_NEMO = """
run:
  name: full-sft
  model_type: amazon.nova-lite-v1:0:300k
  model_name_or_path: nova-lite/prod
  replicas: 4
  data_s3_path: s3://bucket/train.jsonl
  output_s3_path: s3://bucket/out
training_config:
  max_length: 1024
  global_batch_size: 16
  trainer:
    max_epochs: 1
  model:
    hidden_dropout: 0.0
    attention_dropout: 0.0
    ffn_dropout: 0.0
    optim:
      lr: 5.0e-6
      name: distributed_fused_adam
      adam_w_mode: true
      eps: 1.0e-6
      weight_decay: 0.0
      betas:
        - 0.9
        - 0.999
      sched:
        warmup_steps: 10
        constant_steps: 0
        min_lr: 5.0e-7
    peft:
      peft_scheme: null
  model_importance_score:
    fine_tuned_model: 0.8
"""

CPT = """
run:
  name: brindle-cpt
  model_type: amazon.nova-2-lite-v1:0:256k
  model_name_or_path: nova-lite-2/pretraining-text-CE
  replicas: 8
  data_s3_path: s3://bucket/cpt.jsonl
  output_s3_path: s3://bucket/out
training_config:
  task_type: cpt
  max_length: 256
  global_batch_size: 32
  trainer:
    max_steps: 40
    val_check_interval: 10
    limit_val_batches: 2
  model:
    hidden_dropout: 0.0
    attention_dropout: 0.0
    optim:
      optimizer: adam
      lr: 1.0e-5
      name: distributed_fused_adam
      adam_w_mode: true
      eps: 1.0e-6
      weight_decay: 0.0
      adam_beta1: 0.9
      adam_beta2: 0.95
      sched:
        warmup_steps: 6
        constant_steps: 4
        min_lr: 1.0e-6
data_mixing:
  dataset_catalog: cpt_text_lite
  sources:
    customer_data:
      percent: 70
    nova_data:
      math: 40
      reasoning: 40
      agents: 20
"""

RFT = """
run:
  name: brindle-rft
  model_type: amazon.nova-2-lite-v1:0:256k
  model_name_or_path: nova-lite-2/prod
  replicas: 2
  generation_replicas: 2
  rollout_worker_replicas: 1
  reward_lambda_arn: arn:aws:lambda:us-east-1:123456789012:function:SageMaker-brindle-reward
  data_s3_path: s3://bucket/rft.jsonl
  output_s3_path: s3://bucket/out
training_config:
  max_length: 2048
  global_batch_size: 64
  reasoning_effort: high
  data:
    shuffle: false
  rollout:
    rollout_strategy:
      type: off_policy_async
      age_tolerance: 2
    advantage_strategy:
      number_generation: 4
    generator:
      max_new_tokens: 64
      set_random_seed: true
      temperature: 1
      top_k: 0
    rewards:
      api_endpoint:
        lambda_arn: arn:aws:lambda:us-east-1:123456789012:function:SageMaker-brindle-reward
        lambda_concurrency_limit: 12
  trainer:
    max_steps: 30
    save_steps: 30
    save_top_k: 2
    refit_freq: 4
    clip_ratio_high: 0.2
    ent_coeff: 0.001
    loss_scale: 1
    kl_loss_coef: 0.002
    lr_scheduler:
      warmup_steps: 3
      min_lr: 1.0e-7
    optim_config:
      lr: 7.0e-7
      weight_decay: 0.0
      adam_beta1: 0.9
      adam_beta2: 0.95
    peft:
      peft_scheme: lora
      lora_tuning:
        alpha: 32
        loraplus_lr_ratio: 64.0
"""


DPO_LORA = """
run:
  name: brindle-dpo
  model_type: amazon.nova-lite-v1:0:300k
  model_name_or_path: nova-lite/prod
  replicas: 4
  data_s3_path: s3://bucket/pairs.jsonl
  output_s3_path: s3://bucket/out
training_config:
  max_length: 1024
  global_batch_size: 32
  trainer:
    max_epochs: 2
  model:
    hidden_dropout: 0.0
    attention_dropout: 0.0
    ffn_dropout: 0.0
    optim:
      lr: 1.0e-5
      name: distributed_fused_adam
      adam_w_mode: true
      eps: 1.0e-08
      weight_decay: 0.01
      betas:
        - 0.9
        - 0.999
      sched:
        warmup_steps: 10
        constant_steps: 0
        min_lr: 1.0e-6
    dpo_cfg:
      beta: 0.2
    peft:
      peft_scheme: "lora"
      lora_tuning:
        loraplus_lr_ratio: 20.0
        alpha: 64
        adapter_dropout: 0.01
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _plan_rows(recipe: Path) -> dict[str, tuple[str, str]]:
    return {path: (value, origin) for path, value, origin in provenance_rows(plan(recipe))}


def test_lora_sft_plan_shows_every_value_as_imported(tmp_path, capsys) -> None:
    service = _write(tmp_path, "sft.yaml", SFT_LORA)
    out = tmp_path / "recipe.yaml"
    code = main(
        ["import", str(service), "--model", "tiny", "--data", "builtin:brindle/sft", "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    rows = _plan_rows(out)
    hp = "stages[0].hyperparameters"
    expected = {
        f"{hp}.lr": ("2e-05", "training_config.optim_config.lr"),
        f"{hp}.min_lr": ("2e-06", "training_config.lr_scheduler.min_lr"),
        f"{hp}.warmup_steps": ("18", "training_config.lr_scheduler.warmup_steps"),
        f"{hp}.global_batch_size": ("16", "training_config.global_batch_size"),
        f"{hp}.max_length": ("512", "training_config.max_length"),
        f"{hp}.max_steps": ("120", "training_config.max_steps"),
        f"{hp}.weight_decay": ("0.01", "training_config.optim_config.weight_decay"),
        f"{hp}.adam_beta2": ("0.95", "training_config.optim_config.adam_beta2"),
        f"{hp}.val_check_interval": ("20", "training_config.val_check_interval"),
        f"{hp}.save_top_k": ("3", "training_config.save_top_k"),
        f"{hp}.reasoning_enabled": ("False", "training_config.reasoning_enabled"),
        f"{hp}.lora.alpha": ("96", "training_config.peft.lora_tuning.alpha"),
        f"{hp}.lora.plus_lr_ratio": ("32", "training_config.peft.lora_tuning.lora_plus_lr_ratio"),
        "stages[0].mode": ("lora", "training_config.peft.peft_scheme"),
        "stages[0].data_mixing.customer_percent": ("60", "data_mixing.sources.customer_data.percent"),
        "stages[0].data_mixing.general": (
            "{reasoning-instruction-following: 50, math: 30, knowledge: 20}",
            "data_mixing.sources.nova_data",
        ),
        "model.checkpoint": ("post-trained", "run.model_name_or_path"),
        "name": ("brindle-lora-sft", "run.name"),
    }
    for key, (value, field) in expected.items():
        assert rows[key] == (value, f"imported: {field}"), key
    # S3 paths and service ids are named with what replaces them
    for needle in (
        "run.data_s3_path 's3://my-bucket/brindle/train.jsonl' -> stages[0].data.train 'builtin:brindle/sft'",
        "run.validation_data_s3_path 's3://my-bucket/brindle/val.jsonl' -> nothing yet",
        "run.model_type 'amazon.nova-2-lite-v1:0:256k' (a service model id) -> model 'tiny'",
        "run.output_s3_path",
    ):
        assert needle in printed
    # every other field is listed once, with its reason
    not_honored = printed.split("not honored:\n")[1].splitlines()
    assert sorted(line.split(" ")[2] for line in not_honored) == sorted(
        [
            "run.replicas",
            "training_config.save_steps",
            "training_config.limit_val_batches",
            "data_mixing.dataset_catalog",
        ]
    )
    assert "training_config.model_importance_score.fine_tuned_model 1.0: no merge-back" in printed


def test_full_rank_nemo_layout_maps_betas_schedule_and_epochs(tmp_path) -> None:
    service = _write(tmp_path, "full.yaml", SFT_FULL_NEMO)
    imported = import_service_recipe(service, model="tiny", data="builtin:brindle/sft")
    assert imported.kind == "sft" and imported.mode == "full"
    hp = imported.recipe["stages"][0]["hyperparameters"]
    assert (hp["lr"], hp["min_lr"], hp["warmup_steps"], hp["constant_steps"]) == (5e-6, 5e-7, 10, 0)
    assert (hp["adam_beta1"], hp["adam_beta2"], hp["max_epochs"], hp["max_length"]) == (0.9, 0.999, 1.0, 1024)
    assert "lora" not in hp
    origins = imported.recipe["imported_from"]
    assert origins["stages[0].hyperparameters.adam_beta2"] == "training_config.model.optim.betas[1]"
    listed = "\n".join(imported.unsupported)
    for field in ("eps", "hidden_dropout", "attention_dropout", "ffn_dropout", "replicas"):
        assert f".{field} " in listed
    # a merge-back weight below 1 is not a recipe setting: the line says how to do it
    assert "fine_tuned_model 0.8: tunesmith blends after training" in listed and "--blend 0.8" in listed
    assert any("adam_w_mode True" in line for line in imported.same)
    out = tmp_path / "r.yaml"
    out.write_text(yaml.safe_dump(imported.recipe))
    rows = _plan_rows(out)
    assert rows["stages[0].hyperparameters.constant_steps"] == (
        "0",
        "imported: training_config.model.optim.sched.constant_steps",
    )


def test_cpt_recipe_keeps_the_known_categories_rescaled_and_lists_the_rest(tmp_path) -> None:
    service = _write(tmp_path, "cpt.yaml", CPT)
    imported = import_service_recipe(service, model="tiny", data="builtin:brindle/cpt")
    stage = imported.recipe["stages"][0]
    assert (stage["technique"], stage["mode"]) == ("cpt", "full")
    assert imported.recipe["model"] == {"family": "tiny", "checkpoint": "mid-trained"}
    assert stage["data_mixing"] == {"customer_percent": 70.0, "general": {"math": 50.0, "reasoning": 50.0}}
    assert any(
        "nova_data.agents 20: tunesmith has no general category 'agents'" in x for x in imported.unsupported
    )
    hp = stage["hyperparameters"]
    assert (hp["max_steps"], hp["val_check_interval"], hp["constant_steps"], hp["adam_beta2"]) == (
        40,
        10,
        4,
        0.95,
    )
    out = tmp_path / "r.yaml"
    out.write_text(yaml.safe_dump(imported.recipe))
    rows = _plan_rows(out)
    assert rows["stages[0].data_mixing.general"][1].startswith(
        "imported: data_mixing.sources.nova_data (the known"
    )


def test_rft_recipe_maps_generation_kl_lambda_and_loraplus(tmp_path, capsys) -> None:
    service = _write(tmp_path, "rft.yaml", RFT)
    out = tmp_path / "recipe.yaml"
    assert (
        main(["import", str(service), "--model", "tiny", "--data", "builtin:brindle/rft", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    rows = _plan_rows(out)
    rft, hp = "stages[0].rft", "stages[0].hyperparameters"
    assert rows[f"{rft}.number_generation"] == (
        "4",
        "imported: training_config.rollout.advantage_strategy.number_generation",
    )
    assert rows[f"{rft}.kl_coef"] == ("0.002", "imported: training_config.trainer.kl_loss_coef")
    assert rows[f"{rft}.max_new_tokens"] == (
        "64",
        "imported: training_config.rollout.generator.max_new_tokens",
    )
    assert rows[f"{rft}.reward.function"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:SageMaker-brindle-reward",
        "imported: run.reward_lambda_arn",
    )
    assert rows[f"{rft}.reward.concurrency"][0] == "12"
    assert rows[f"{hp}.lr"] == ("7e-07", "imported: training_config.trainer.optim_config.lr")
    assert rows[f"{hp}.min_lr"] == ("1e-07", "imported: training_config.trainer.lr_scheduler.min_lr")
    assert rows[f"{hp}.lora.plus_lr_ratio"] == (
        "64",
        "imported: training_config.trainer.peft.lora_tuning.loraplus_lr_ratio",
    )
    assert rows[f"{hp}.lora.alpha"] == ("32", "imported: training_config.trainer.peft.lora_tuning.alpha")
    not_honored = printed.split("not honored:\n")[1]
    for field in (
        "refit_freq",
        "clip_ratio_high",
        "ent_coeff",
        "loss_scale",
        "age_tolerance",
        "reasoning_effort",
        "top_k",
    ):
        assert f".{field} " in not_honored, field
    assert "set global_batch_size 16" in printed  # the HyperPod batch meaning, spelled out


def test_rft_reward_can_be_replaced_by_a_local_verifier(tmp_path) -> None:
    service = _write(tmp_path, "rft.yaml", RFT)
    imported = import_service_recipe(
        service, model="tiny", data="builtin:brindle/rft", reward="builtin:brindle"
    )
    assert imported.recipe["stages"][0]["rft"]["reward"] == "builtin:brindle"
    assert any("-> rft.reward 'builtin:brindle' (--reward)" in line for line in imported.replaced)


@pytest.mark.parametrize(
    ("evaluation", "expected"),
    [
        (
            "task: mmlu\n  strategy: zs_cot\n  metric: accuracy",
            "tunesmith eval --model tiny --suites general --lm-eval mmlu",
        ),
        (
            "task: gen_qa\n  strategy: gen_qa\n  metric: all",
            "tunesmith eval --model tiny --domain data.jsonl",
        ),
    ],
)
def test_evaluation_recipes_become_the_eval_command(tmp_path, evaluation, expected) -> None:
    text = (
        "run:\n  name: ev\n  model_type: amazon.nova-2-lite-v1:0:256k\n  model_name_or_path: nova-lite-2/prod\n"
        "  replicas: 1\n  data_s3_path: s3://b/gen_qa.jsonl\n  output_s3_path: s3://b/out\n"
        f"evaluation:\n  {evaluation}\ninference:\n  max_new_tokens: 8196\n  top_k: -1\n  top_p: 1.0\n  temperature: 0\n"
    )
    imported = import_service_recipe(_write(tmp_path, "eval.yaml", text), model="tiny", data="data.jsonl")
    assert imported.command == expected and imported.recipe is None
    listed = "\n".join(imported.unsupported)
    assert "inference.max_new_tokens" in listed and "inference.top_p" in listed and "run.replicas" in listed


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "run: {name: ppo-run}\ntraining_config: {ppo_actor_train: {lr: 3.0e-6}, ppo_critic: {lr: 3.0e-6}}\n",
            "PPO",
        ),
        ("run: {name: nova-pro-distill}\ntraining_config: {distillation: {teacher: x}}\n", "distillation"),
        (
            "run: {name: mm}\ntraining_config: {max_length: 10}\n"
            "data_mixing: {dataset_catalog: sft_1p5_mm_chat, sources: {customer_data: {percent: 50}}}\n",
            "multi-modal",
        ),
        (
            "run: {name: dpo}\ntraining_config: {model: {dpo_cfg: {beta: 0.9}}}\n",
            "stages[0].dpo.beta",  # outside the service's allowed 0.001-0.5: tunesmith's schema says so
        ),
        ("run: {name: mtrl}\nbatch: {training_batch_size: 32}\nrl: {loss_fn: ppo}\n", "multi-turn RFT"),
        ("run: {name: x}\nevaluation: {task: llm_judge}\n", "no judge evaluation yet"),
        ("- just\n- a list\n", "not a managed-service recipe"),
        ("run: {name: x}\n", "no `training_config:`"),
        (
            "run: {name: x}\ntraining_config: {optim_config: {lr: fast}}\n",
            "training_config.optim_config.lr: expected a number",
        ),
        (
            "run: {name: x}\ntraining_config: {max_steps: 10.5}\n",
            "training_config.max_steps: expected an integer",
        ),
        ("run: [\n", "fix the YAML syntax"),
    ],
)
def test_other_kinds_and_malformed_recipes_get_one_line(tmp_path, capsys, text, needle) -> None:
    service = _write(tmp_path, "svc.yaml", text)
    assert main(["import", str(service), "--model", "tiny", "--data", "x.jsonl"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


def test_dpo_recipe_maps_beta_loraplus_and_the_schedule(tmp_path) -> None:
    service = _write(tmp_path, "dpo.yaml", DPO_LORA)
    out = tmp_path / "recipe.yaml"
    assert (
        main(["import", str(service), "--model", "tiny", "--data", "builtin:brindle/dpo", "--out", str(out)])
        == 0
    )
    rows = _plan_rows(out)
    hp = "stages[0].hyperparameters"
    assert rows["stages[0].technique"][0] == "dpo"
    assert rows["stages[0].dpo.beta"] == ("0.2", "imported: training_config.model.dpo_cfg.beta")
    assert rows[f"{hp}.lora.plus_lr_ratio"] == (
        "20",
        "imported: training_config.model.peft.lora_tuning.loraplus_lr_ratio",
    )
    assert rows[f"{hp}.lora.dropout"] == (
        "0.01",
        "imported: training_config.model.peft.lora_tuning.adapter_dropout",
    )
    assert rows[f"{hp}.lr"] == ("1e-05", "imported: training_config.model.optim.lr")
    assert rows[f"{hp}.min_lr"] == ("1e-06", "imported: training_config.model.optim.sched.min_lr")
    assert rows[f"{hp}.warmup_steps"] == ("10", "imported: training_config.model.optim.sched.warmup_steps")
    assert rows[f"{hp}.max_epochs"] == ("2", "imported: training_config.trainer.max_epochs")
    assert rows[f"{hp}.global_batch_size"] == ("32", "imported: training_config.global_batch_size")
    assert rows[f"{hp}.weight_decay"] == ("0.01", "imported: training_config.model.optim.weight_decay")
