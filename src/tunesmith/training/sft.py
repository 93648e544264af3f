"""Supervised fine-tuning (SFT): loss on the assistant's tokens only.

Data: Bedrock-conversation or OpenAI-chat demonstrations, blended with general demonstrations (always with
`reasoning-instruction-following`, [nova-hpo-blog]). When the chat template marks assistant turns
(`{% generation %}`), every assistant turn of a conversation is learned (TRL `assistant_only_loss`);
otherwise each conversation becomes prompt -> last assistant turn (TRL `completion_only_loss`).
"""

from __future__ import annotations

from tunesmith.training.stage import StageResult, StageRun, run_stage


def run(stage_run: StageRun) -> StageResult:
    assert stage_run.stage.technique == "sft"
    return run_stage(stage_run)
