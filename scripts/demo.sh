#!/usr/bin/env bash
# The demo on the embedded default: build (or reuse) the tiny model family, look at the demo domain's data,
# plan and lint the example recipe, then train it — SFT with LoRA on the fictional company Brindle's
# demonstrations with 50% general data — and print the forgetting table: domain skill up, general kept.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
tunesmith models build tiny
tunesmith models list
tunesmith data inspect builtin:brindle/sft --max-length 256
tunesmith plan recipes/tiny-sft-lora-mixed.yaml
tunesmith train recipes/tiny-sft-lora-mixed.yaml --overwrite  # a second demo replaces the first run
