#!/usr/bin/env bash
# The demo on the embedded default (the tiny model family ships inside the package: nothing is built or
# downloaded): `tunesmith demo` trains the demo domain (Brindle, a fictional parts supplier) twice from
# tiny:post-trained — SFT on the domain data only, and the same SFT with 50% general data mixed in — then RFT
# on the mixed SFT checkpoint after the readiness probe; it evaluates each on held-out items and prints a
# short summary (domain gain, general retained or lost, what RFT added) with the path of each run's HTML
# report. A second call reuses the finished runs; `tunesmith demo --out DIR` starts a fresh one elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/tunesmith demo
