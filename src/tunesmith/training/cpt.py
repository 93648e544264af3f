"""Continued pre-training (CPT): next-token loss on ALL tokens of unlabeled domain text.

Data: `{"text"}` JSONL or .txt, blended with general text by category (`data_mixing`). Playbook: at most
one epoch of CPT data ([nova-hpo-blog]), and CPT on a pre-trained checkpoint must be followed by SFT
([nova-cpt-docs]). The trainer is TRL's SFTTrainer on a text dataset, which computes
the language-modeling loss on every token.
"""

from __future__ import annotations

from tunesmith.training.stage import StageResult, StageRun, run_stage


def run(stage_run: StageRun) -> StageResult:
    assert stage_run.stage.technique == "cpt"
    return run_stage(stage_run)
