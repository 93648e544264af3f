#!/usr/bin/env bash
# The demo on the embedded default: build (or reuse) the tiny model family, show what exists, then plan
# the example SFT-with-mixing recipe (every value with its source and the derived numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
tunesmith models build tiny
tunesmith models list
tunesmith data inspect builtin:brindle/sft --max-length 256
tunesmith plan recipes/tiny-sft-lora-mixed.yaml
