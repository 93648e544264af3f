#!/usr/bin/env bash
# The whole test suite, from a fresh clone: setup (idempotent), lint (ruff, the import layers), then pytest
# (unit + end-to-end on the tiny family, which is built once per run into .cache/tunesmith unless
# TUNESMITH_HOME is set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/lint-imports  # the layer contract in pyproject.toml (also run by tests/unit/test_layers.py)
.venv/bin/python -m pytest "$@"
