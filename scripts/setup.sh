#!/usr/bin/env bash
# Idempotent setup: a virtual environment in .venv with torch (CPU wheel) first, then tunesmith[dev].
# Re-runs in a second when nothing changed (stamp keyed on pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.setup-stamp
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing torch==2.13.0 (CPU) and tunesmith[dev] into .venv ..."
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  # torch first, pinned: any other spec pulls a multi-GB CUDA build on this machine kind.
  .venv/bin/python -m pip install -q torch==2.13.0 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import torch, transformers, trl, peft, tunesmith" || { echo "setup: install failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
