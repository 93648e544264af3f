"""The defaults table: every value `resolve()` fills in, with the sentence and reference it comes from.

One table, keyed by the family's size class (`tiny` | `billion`, from the checkpoint catalog) x technique
(cpt | sft | rft) x mode (lora | full) x starting checkpoint x CPT scale. A lookup returns the most specific
entry whose conditions all match. Billion-parameter families inherit the managed service's calibrated
numbers (the recipes [nova-recipes] and the playbook [nova-hpo-blog]); the embedded `tiny` family
carries its own, measured on this machine ([tiny-feasibility], [tiny-results]). Every source cites its
references by key: docs/references.md.

Values of type `Derived` are computed by `resolve()` from other values (the formula is shown in `plan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunesmith.vocabulary import CATEGORIES


@dataclass(frozen=True)
class Derived:
    """A value computed from others; `formula` is what `plan` shows."""

    formula: str


@dataclass(frozen=True)
class Default:
    key: str
    value: Any
    source: str
    size_class: str | None = None
    technique: str | None = None
    mode: str | None = None
    checkpoint: str | None = None
    scale: str | None = None

    def matches(self, context: dict[str, str | None]) -> bool:
        return all(
            want is None or context.get(dim) == want
            for dim, want in (
                ("size_class", self.size_class),
                ("technique", self.technique),
                ("mode", self.mode),
                ("checkpoint", self.checkpoint),
                ("scale", self.scale),
            )
        )

    @property
    def specificity(self) -> int:
        """How many conditions the entry sets; `scale` outranks the others (an explicit opt-in)."""
        plain = sum(x is not None for x in (self.size_class, self.technique, self.mode, self.checkpoint))
        return plain + (10 if self.scale is not None else 0)


_EVEN_GENERAL = {category: round(100 / len(CATEGORIES), 6) for category in CATEGORIES}
_EVEN_GENERAL[CATEGORIES[-1]] = round(100 - sum(list(_EVEN_GENERAL.values())[:-1]), 6)

H = "hyperparameters."
M = "data_mixing."

DEFAULTS: tuple[Default, ...] = (
    # ---- mode, by starting checkpoint --------------------------------------------------------------
    Default(
        "mode",
        "lora",
        "post-trained checkpoints are the recommended start for LoRA/PEFT ([nova-hpo-blog]; [nova-cpt-docs])",
        checkpoint="post-trained",
    ),
    Default(
        "mode",
        "full",
        "mid-trained suits full-rank training; default full rank to mid-trained ([nova-cpt-docs])",
        checkpoint="mid-trained",
    ),
    Default(
        "mode",
        "full",
        "a pre-trained checkpoint is most plastic and is trained at full rank ([nova-cpt-docs])",
        checkpoint="pre-trained",
    ),
    Default(
        "mode",
        "lora",
        "'LoRA first to validate the pipeline; full rank only once the approach is proven' "
        "([nova-hpo-blog] recommended workflow)",
    ),
    # ---- learning rate ----------------------------------------------------------------------------
    Default(
        H + "lr",
        1e-5,
        "'The recommended learning rate is 1e-5 for LoRA' SFT ([nova-hpo-blog])",
        size_class="billion",
        technique="sft",
        mode="lora",
    ),
    Default(
        H + "lr",
        5e-6,
        "'... and 5e-6 for full-rank SFT' ([nova-hpo-blog]; Nova 1.0 full-rank recipes)",
        size_class="billion",
        technique="sft",
        mode="full",
    ),
    Default(
        H + "lr",
        1e-5,
        "CPT recipes use lr 1e-5 (Nova 1.0 and 2.0 CPT recipes, [nova-recipes])",
        size_class="billion",
        technique="cpt",
    ),
    Default(
        H + "lr",
        1e-4,
        "very large CPT budgets 'can use a higher learning rate (such as 1e-4)' held for "
        "constant_steps, then ramped down ([nova-hpo-blog])",
        size_class="billion",
        technique="cpt",
        scale="large",
    ),
    Default(
        H + "lr",
        7e-7,
        "HyperPod RFT recipe optim_config.lr 7e-7 (full rank; [nova-rft-docs])",
        size_class="billion",
        technique="rft",
        mode="full",
    ),
    Default(
        H + "lr",
        1e-5,
        "RFT LoRA: TEMPLATES/Bedrock RFT default learningRate 1e-5 ([nova-recipes])",
        size_class="billion",
        technique="rft",
        mode="lora",
    ),
    Default(
        H + "lr",
        3e-4,
        "tiny family, full rank, 50% mix, measured on the built family (benchmarks/RESULTS.md, forgetting; "
        "3 seeds each, best checkpoint, 751 held-out general items): 3e-4 x 800 steps kept general accuracy "
        "within -0.9..+0.1 points (no significant drop), 1e-3 x 400 lost 2.8-4.9 points (significant in "
        "every seed), Brindle 0.88-0.93 either way; [tiny-feasibility]'s 1e-3 came from a simpler world, where 3e-4 "
        "in 400 steps learned too slowly and 3e-3 was unstable",
        size_class="tiny",
        technique="sft",
        mode="full",
    ),
    Default(
        H + "lr",
        1e-2,
        "tiny family, LoRA r8: 1e-2 mixed reached gen 0.97 / domain 0.90; 1e-3 learned "
        "the domain poorly (0.29) ([tiny-feasibility], table M)",
        size_class="tiny",
        technique="sft",
        mode="lora",
    ),
    Default(
        H + "lr",
        1e-3,
        "tiny family CPT: the full-rank scale of [tiny-feasibility] (1e-3, 'learned the domain'); the managed service "
        "uses the same lr for CPT and LoRA SFT ([nova-recipes])",
        size_class="tiny",
        technique="cpt",
        mode="full",
    ),
    Default(
        H + "lr",
        1e-2,
        "tiny family CPT with LoRA: the tiny LoRA scale ([tiny-feasibility])",
        size_class="tiny",
        technique="cpt",
        mode="lora",
    ),
    Default(
        H + "lr",
        1e-4,
        "tiny family RFT, full rank, measured (benchmarks/RESULTS.md, RFT; 32 prompts x 8 samples, constant LR): "
        "1e-4 raised held-out greedy Brindle reward 0.44 -> 0.52 / 0.56 / 0.58 at steps 50 / 75 / 100 while "
        "general accuracy moved -0.0 / -1.4 / -3.0 points; 3e-4 gained +11 by step 80 but cost 8 general "
        "points; 3x below tiny full-rank SFT (3e-4), as RFT LRs sit below SFT LRs ([nova-rft-docs])",
        size_class="tiny",
        technique="rft",
        mode="full",
    ),
    Default(
        H + "lr",
        3e-3,
        "tiny family RFT with LoRA r8, measured (benchmarks/RESULTS.md, RFT): 3e-3 at 32 prompts x 8 samples "
        "raised held-out greedy Brindle reward 0.44 -> 0.50 by step 50-75 but general accuracy fell 7-12 points "
        "(full rank at 1e-4 forgets less on this family); 1e-3 and 1e-4 at 16 prompts moved nothing but noise "
        "([nova-rft-docs]: RFT LRs sit below SFT LRs)",
        size_class="tiny",
        technique="rft",
        mode="lora",
    ),
    Default(
        H + "lr",
        1e-5,
        "DPO recipes: lr 1e-5 (Nova 1.0 DPO, LoRA and full rank; [nova-recipes])",
        size_class="billion",
        technique="dpo",
    ),
    Default(
        H + "lr",
        3e-4,
        "tiny family DPO with LoRA r8 after SFT, measured on the built-in Brindle pairs (benchmarks/RESULTS.md, "
        "DPO; [tiny-results]): 3e-4 kept Brindle and general skill (no significant change) for +2 points of "
        "held-out preference accuracy; 3e-3 gained +9 points but lost 28 Brindle and 11 general points",
        size_class="tiny",
        technique="dpo",
        mode="lora",
    ),
    Default(
        H + "lr",
        1e-4,
        "tiny family DPO at full rank: the tiny full-rank RFT scale (benchmarks/RESULTS.md, RFT; [tiny-results]); "
        "not measured for DPO",
        size_class="tiny",
        technique="dpo",
        mode="full",
    ),
    # ---- schedule -----------------------------------------------------------------------------------
    Default(
        H + "min_lr",
        Derived("lr / 10"),
        "Nova recipes pair lr 1e-5 with min_lr 1e-6 and 5e-6 with 5e-7 "
        "([nova-recipes]); cosine is typically decayed to 10% of max LR ([hagele-2024])",
    ),
    Default(
        H + "min_lr",
        1e-6,
        "after a 1e-4 peak, 'a ramp back to about 1e-6' ([nova-hpo-blog], [nova-cpt-docs])",
        size_class="billion",
        technique="cpt",
        scale="large",
    ),
    Default(
        H + "warmup_ratio",
        0.15,
        "'Configure warmup steps to approximately 15 percent of your total training steps' ([nova-hpo-blog])",
    ),
    Default(
        H + "warmup_ratio",
        0.01,
        "large-scale CPT re-warms over about 1% of steps (Ibrahim et al., [ibrahim-2024]); "
        "15% of a very long run would waste the peak",
        technique="cpt",
        scale="large",
    ),
    Default(H + "constant_steps", 0, "every Nova recipe sets constant_steps: 0 ([nova-recipes])"),
    Default(
        H + "constant_steps",
        Derived("total_steps - warmup_steps - 20% of total_steps"),
        "large-scale CPT holds the peak, then cools down over the last 20% of steps (WSD; Hagele et al. "
        "use a 20% cooldown, MiniCPM finds ~10% sufficient; [minicpm-2024] [hagele-2024])",
        technique="cpt",
        scale="large",
    ),
    Default(
        H + "decay",
        "cosine",
        "warmup_steps/constant_steps/min_lr is NeMo's CosineAnnealing triplet; the "
        "schedule is most likely linear warmup -> constant -> cosine to min_lr ([nova-recipes])",
    ),
    # ---- batch and length ---------------------------------------------------------------------------
    Default(
        H + "global_batch_size",
        32,
        "Nova 2.0 SFT recipes: global_batch_size 32 ([nova-recipes])",
        size_class="billion",
        technique="sft",
    ),
    Default(
        H + "global_batch_size",
        256,
        "Nova CPT recipes: global_batch_size 256 ([nova-recipes])",
        size_class="billion",
        technique="cpt",
    ),
    Default(
        H + "global_batch_size",
        64,
        "SMTJ RFT recipe: global_batch_size 64 prompts per step ([nova-rft-docs])",
        size_class="billion",
        technique="rft",
    ),
    Default(
        H + "global_batch_size",
        64,
        "DPO recipes: global_batch_size 64 (Nova Micro / Lite DPO; [nova-recipes])",
        size_class="billion",
        technique="dpo",
    ),
    Default(
        H + "global_batch_size",
        64,
        "tiny family: batch 64 (about 1.1k tokens per step) ([tiny-feasibility] setup)",
        size_class="tiny",
    ),
    Default(
        H + "global_batch_size",
        32,
        "tiny family RFT: 32 prompts x number_generation samples per step; 16 (the TEMPLATES minimum, "
        "[nova-recipes]) gave too noisy a gradient on the tiny family (benchmarks/RESULTS.md, RFT)",
        size_class="tiny",
        technique="rft",
    ),
    Default(
        H + "micro_batch_size",
        Derived("global_batch_size (no accumulation)"),
        "the tiny family fits a whole batch in memory ([tiny-feasibility]: batch 64 and 256 run alike)",
        size_class="tiny",
    ),
    Default(
        H + "micro_batch_size",
        4,
        "billion-parameter models: 4 sequences per device per pass, the rest by "
        "gradient accumulation; only memory changes, since 'global_batch_size is the batch parameter across all "
        "methods' ([nova-hpo-blog])",
        size_class="billion",
    ),
    Default(
        H + "max_length",
        256,
        "tiny family: its tasks and domain documents are < 200 characters; 'Match your "
        "max sequence length to your data distribution' ([nova-hpo-blog])",
        size_class="tiny",
    ),
    Default(
        H + "max_length",
        4096,
        "billion-parameter open families: 4096 tokens, the g5/g6 recipes' length "
        "class ([nova-recipes]); match it to your data's length distribution ([nova-hpo-blog])",
        size_class="billion",
    ),
    Default(
        H + "max_epochs",
        2,
        "LoRA SFT: Nova 1.0 LoRA recipes max_epochs 2; [nova-sft-docs] LoRA 'Epochs 2' ([nova-recipes])",
        size_class="billion",
        technique="sft",
        mode="lora",
    ),
    Default(
        H + "max_epochs",
        1,
        "full-rank SFT needs fewer epochs than LoRA; [nova-sft-docs] full rank 'Epochs 1' ([nova-recipes] [nova-hpo-blog])",
        size_class="billion",
        technique="sft",
        mode="full",
    ),
    Default(
        H + "max_epochs",
        2,
        "DPO recipes: LoRA max_epochs 2 ([nova-recipes])",
        technique="dpo",
        mode="lora",
    ),
    Default(
        H + "max_epochs",
        3,
        "DPO recipes: full-rank max_epochs 3 ([nova-recipes])",
        technique="dpo",
        mode="full",
    ),
    Default(
        H + "max_epochs",
        1,
        "'For CPT, process at most one epoch of your dataset' ([nova-hpo-blog])",
        technique="cpt",
    ),
    Default(
        H + "max_epochs",
        1,
        "RFT hyperparameter guidance: 'Epochs 1' ([nova-rft-docs])",
        size_class="billion",
        technique="rft",
    ),
    Default(
        H + "max_steps",
        400,
        "tiny family domain runs: 300-400 steps at batch 64 ([tiny-feasibility], recommendation)",
        size_class="tiny",
        technique="sft",
    ),
    Default(
        H + "max_steps",
        800,
        "tiny family, full rank at its lr 3e-4: 800 steps reach Brindle 0.88-0.91 with a 50% mix "
        "(benchmarks/RESULTS.md, forgetting), as 1e-3 did in 400 ([tiny-feasibility]: 300-400 steps at 1e-3)",
        size_class="tiny",
        technique="sft",
        mode="full",
    ),
    Default(
        H + "max_steps",
        100,
        "tiny family RFT: the HyperPod RFT recipe's max_steps 100 ([nova-rft-docs])",
        size_class="tiny",
        technique="rft",
    ),
    # ---- optimizer -------------------------------------------------------------------------------------
    Default(
        H + "weight_decay",
        0.01,
        "DPO recipes: weight_decay 0.01 ([nova-recipes])",
        size_class="billion",
        technique="dpo",
    ),
    Default(
        H + "weight_decay",
        0.0,
        "'Weight decay defaults to zero' ([nova-hpo-blog]; all Nova recipes, [nova-recipes])",
    ),
    Default(
        H + "grad_clip",
        1.0,
        "grad_clip_norm 1.0 in the MTRL recipe ([nova-recipes]); clip 1.0 in Wortsman et al. ([wortsman-2023])",
    ),
    Default(H + "adam_beta1", 0.9, "Nova 2.0 recipes adam_beta1 0.9 ([nova-recipes])"),
    Default(H + "adam_beta2", 0.95, "Nova 2.0 recipes adam_beta2 0.95 ([nova-recipes])"),
    # ---- LoRA ------------------------------------------------------------------------------------------
    Default(
        H + "lora.rank",
        32,
        "[nova-hpo-blog] experiments and RFT guidance use rank 32 ([nova-recipes])",
        size_class="billion",
    ),
    Default(
        H + "lora.rank",
        8,
        "tiny family: r8 adapts 9-17% of the parameters ([tiny-feasibility])",
        size_class="tiny",
    ),
    Default(
        H + "lora.alpha",
        64,
        "'The default alpha scaling factor of 64 works for most tasks' ([nova-hpo-blog]); "
        "SFT recipes alpha 64 ([nova-recipes] [nova-hpo-blog])",
        size_class="billion",
    ),
    Default(
        H + "lora.alpha",
        32,
        "RFT recipes: LoRA alpha 32 ([nova-rft-docs])",
        size_class="billion",
        technique="rft",
    ),
    Default(
        H + "lora.alpha",
        16,
        "tiny family: alpha = 2 x rank ('Typically set to 2x the LoRA rank', TEMPLATES, "
        "[nova-recipes]); 64 at rank 8 would scale updates 8x at the tiny LoRA LR",
        size_class="tiny",
    ),
    Default(H + "lora.dropout", 0.0, "dropouts default to zero ([nova-hpo-blog], regularization)"),
    Default(
        H + "lora.target_modules",
        "all-linear",
        "LoRA on all linear layers ([biderman-2024]; [lora-without-regret])",
    ),
    Default(
        H + "lora.plus_lr_ratio",
        1.0,
        "plain LoRA (one LR for both matrices): no service recipe sets LoRA+ for this technique (its CPT "
        "recipes train at full rank, [nova-recipes])",
    ),
    Default(
        H + "lora.plus_lr_ratio",
        64.0,
        "Nova 2.0 LoRA SFT recipes: lora_plus_lr_ratio 64 (allowed 1-70) ([nova-recipes]); B matrices at a "
        "multiple of A's LR ([hayou-2024])",
        size_class="billion",
        technique="sft",
    ),
    Default(
        H + "lora.plus_lr_ratio",
        64.0,
        "Nova 2.0 LoRA RFT recipes (HyperPod and SMTJ): lora_plus_lr_ratio 64 ([nova-recipes], "
        "[nova-rft-docs]; the multi-turn RFT recipe uses 32); B matrices at a multiple of A's LR ([hayou-2024])",
        size_class="billion",
        technique="rft",
    ),
    Default(
        H + "lora.plus_lr_ratio",
        20.0,
        "Nova 1.0 LoRA DPO recipes: loraplus_lr_ratio 20 ([nova-recipes]); B matrices at a multiple of A's LR "
        "([hayou-2024])",
        size_class="billion",
        technique="dpo",
    ),
    Default(
        H + "lora.plus_lr_ratio",
        1.0,
        "tiny family: plain LoRA. Measured on the 188-step mixed LoRA SFT (benchmarks/RESULTS.md, LoRA+; "
        "[tiny-results]): ratio 16 at the plain LR collapsed the run; 16 and 64 with B at about the plain LR "
        "learned 19-28 fewer Brindle points, general within noise",
        size_class="tiny",
    ),
    # ---- validation and checkpoints ----------------------------------------------------------------------
    Default(
        H + "val_check_interval",
        Derived(
            "max(total_steps // 10, ceil(10 x one validation's cost in training steps)), between 1 and "
            "total_steps; the cost is (validation_examples + the forgetting probe's items) / (3 x global_batch_size) "
            "(RFT: validation_prompts / global_batch_size)"
        ),
        "about ten validations per stage so save_top_k has candidates to choose from (Nova's 2500 assumes long "
        "runs, [nova-recipes]), each taking at most a tenth of the training between two (a quarter made a short run "
        "measurably slower than bare TRL: benchmarks/RESULTS.md); scoring is a forward pass, about a third of a training step per token ([kaplan-2020]: 2N vs 6N FLOPs)",
    ),
    Default(
        H + "packing",
        "auto",
        "pack when padding would fill >= 20% of token slots (tunesmith.data.packing.decide_packing), "
        "examples kept apart by restarting position_ids, as in TRL's padding-free collator "
        "([trl-docs] packing, padding-free)",
    ),
    Default(
        H + "length_grouping",
        "auto",
        "without packing, group the examples of every 16 consecutive steps into steps of similar lengths when "
        "padding would fill >= 20% of token slots (tunesmith.data.packing.decide_packing), as transformers' "
        "group_by_length does over its mega-batches ([transformers-docs] `group_by_length`)",
    ),
    Default(
        H + "gradient_checkpointing",
        "auto",
        "off in one CPU process, where each micro-batch runs in chunks of rows instead (same gradients, no "
        "recomputation: one forward pass less per step); on with a GPU or several processes, as TRL's "
        "default (tunesmith.training.checkpointing.decide; [chen-2016])",
    ),
    Default(
        H + "save_top_k",
        5,
        "'save_top_k: 5 (Keep top K best checkpoints)' (Nova SFT/RFT recipes, [nova-recipes])",
    ),
    Default(
        H + "seed",
        Derived("recipe seed"),
        "one seed fixes data order, mixing and initialization (runs are reproducible per seed: [tiny-results])",
    ),
    # ---- data mixing ---------------------------------------------------------------------------------------
    Default(
        M + "customer_percent",
        50.0,
        "'balance your customer data around 50 percent of the total mix for "
        "most use cases' ([nova-hpo-blog], [nova-data-mixing])",
    ),
    Default(
        M + "customer_percent",
        100.0,
        "RFT trains on your prompts and reward only; the service mixes data for CPT and SFT ([nova-data-mixing])",
        technique="rft",
    ),
    Default(
        M + "general",
        dict(_EVEN_GENERAL),
        "even shares across the built-in categories, which include "
        "'reasoning-instruction-following' ('For SFT, always include the reasoning-instruction-following "
        "category', [nova-hpo-blog], [nova-data-mixing]); even 50% mixing kept the tiny family at 0.945-1.00 ([tiny-feasibility])",
    ),
    Default(
        M + "general",
        {},
        "RFT has no default general mix: the service mixes data for CPT and SFT only "
        "([nova-data-mixing]); name categories yourself to mix general prompts into RFT",
        technique="rft",
    ),
    Default(
        M + "unit",
        "examples",
        "the service's percentages are shares of training samples ([nova-data-mixing])",
    ),
    Default(
        M + "sampling",
        "with_replacement",
        "general data is sampled with replacement so the customer data "
        "sets the epoch ([nova-data-mixing] semantics)",
    ),
    Default(
        M + "max_general_repeats",
        4,
        "warn when a general example would be seen more than 4 times "
        "(repetition beyond ~4 epochs starts to cost; Muennighoff et al., [muennighoff-2023])",
    ),
    Default(
        M + "quality_tail_percent",
        0.0,
        "opt-in: 'Place your highest-quality data toward the end of "
        "training' ([nova-hpo-blog], [nova-data-mixing]) applies when you mark examples as high quality",
    ),
    Default(
        M + "customer_percent",
        100.0,
        "DPO trains on your preference pairs only: tunesmith has no general preference pairs to mix in, and "
        "beta's pull toward the reference model (the stage's input) is DPO's own guard against drifting "
        "([rafailov-2023]); the forgetting table measures what it costs",
        technique="dpo",
    ),
    Default(
        M + "general",
        {},
        "DPO has no general mix: no general preference pairs are built in, and the service mixes CPT and SFT "
        "data only ([nova-data-mixing])",
        technique="dpo",
    ),
    # ---- DPO -----------------------------------------------------------------------------------------------
    Default(
        "dpo.beta",
        0.1,
        "DPO recipes dpo_cfg.beta 0.1, allowed 0.001-0.5 ([nova-recipes]); 0.1 is also the DPO paper's "
        "common setting ([rafailov-2023])",
    ),
    # ---- RFT -----------------------------------------------------------------------------------------------
    Default("rft.number_generation", 8, "number_generation 8 (HyperPod RFT recipe; [nova-rft-docs])"),
    Default(
        "rft.max_new_tokens",
        2048,
        "Bedrock RFT inferenceMaxTokens default 2048 ([nova-rft-docs])",
        size_class="billion",
    ),
    Default(
        "rft.max_new_tokens",
        32,
        "tiny family: answers are < 32 characters ([tiny-feasibility] tasks)",
        size_class="tiny",
    ),
    Default("rft.temperature", 1.0, "RFT generator temperature 1 (all RFT recipes, [nova-rft-docs])"),
    Default("rft.kl_coef", 0.001, "SMTJ RFT kl_loss_coef 0.001 ([nova-rft-docs])"),
    Default(
        "rft.drop_zero_variance_groups",
        True,
        "DAPO dynamic sampling drops groups whose rewards are all equal (zero advantage, no gradient); in "
        "its ablation ladder that step took AIME 42 -> 50 ([dapo-2025])",
    ),
    # ---- evaluation ----------------------------------------------------------------------------------------
    Default(
        "evaluation.general_items_per_category",
        60,
        "60 held-out items per general category ([tiny-feasibility] setup)",
    ),
)


def lookup(key: str, context: dict[str, str | None]) -> Default | None:
    """The most specific default for `key` whose conditions match `context` (None if the key has none)."""
    best: Default | None = None
    for entry in DEFAULTS:
        if (
            entry.key == key
            and entry.matches(context)
            and (best is None or entry.specificity > best.specificity)
        ):
            best = entry
    return best


def keys() -> list[str]:
    seen: dict[str, None] = {}
    for entry in DEFAULTS:
        seen.setdefault(entry.key, None)
    return list(seen)
